"""The algorithm registry: the one place a merge algorithm declares what it is and what it needs.

One declaration per algorithm drives ``--list``, parameter parsing and checks, ``--dry-run``'s SVD count,
the engine's dispatch, the man page and shell completion. The contract is written once, in the docstring
of :func:`algorithm`. Importing this module, or the algorithm modules, never imports torch.
"""

from __future__ import annotations

import difflib
import inspect
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from asrmerge.errors import UsageError

FULL_SET = (3, 6)
"""(per task, fixed): tensor-sized buffers of one merge's full working set, (3T + 6) x numel
(asrmerge.merge.operands.working_set), and the default ``stats_set``."""

SPACES = ("params", "tau", "subspace")
RETURNS = ("matrix", "rule", "stats")
# parameters the engine consumes itself: the algorithm function never sees them
ENGINE_PARAMS = ("lam", "mean_scale")


@dataclass(frozen=True)
class P:
    """Metadata of one parameter, for ``Annotated[type, P(...)]`` in an algorithm's signature.

    Attributes:
        accepts: an interval such as ``"(0,1]"`` or ``"[1,100]"``, or a tuple of choices.
        doc: one line for ``--list`` and the man page.
        default: how a default decided at run time is shown (``"1/T"``); the signature's default is ``None``.
        source: where the default comes from (the paper, the reference code, "ours").
        resolve: for a run-time default, the value for T tasks (``lambda T: 1 / T``).
    """

    accepts: str | tuple[str, ...] | None = None
    doc: str = ""
    default: str | None = None
    source: str = ""
    resolve: Callable[[int], Any] | None = None


@dataclass(frozen=True)
class Lam:
    """The scaling factor lambda of a task-vector algorithm: W* = W_0 + lambda * tau* (applied by the engine)."""

    default: float
    doc: str = "scaling factor lambda"
    source: str = ""
    accepts: str = "(0,3]"


@dataclass(frozen=True)
class Param:
    """A parameter as the CLI sees it (``-p name=value``)."""

    name: str
    type: type
    default: Any
    required: bool
    accepts: str | tuple[str, ...] | None
    doc: str
    default_doc: str | None = None
    source: str = ""
    resolve: Callable[[int], Any] | None = None

    @property
    def choices(self) -> tuple[str, ...] | None:
        return self.accepts if isinstance(self.accepts, tuple) else None

    def describe_default(self) -> str:
        if self.required:
            return "required"
        if self.default_doc:
            return self.default_doc
        return format_value(self.default)

    def parse(self, text: str) -> Any:
        """Convert and check one value given on the command line."""
        t = text.strip()
        try:
            if self.type is bool:
                low = t.lower()
                if low not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                value: Any = low in ("true", "1", "yes")
            elif self.type is int:
                value = int(t)
            elif self.type is float:
                value = float(t)
                if not math.isfinite(value):
                    raise ValueError
            else:
                value = t
        except ValueError:
            raise UsageError(f"{self.name}={text!r} is not a valid {self.type.__name__}", subject="-p",
                             hint=f"{self.name}: {self.doc}") from None
        self.check(value)
        return value

    def check(self, value: Any, *, subject: str = "-p", hint: str | None = None) -> None:
        """Raise a usage error unless ``value`` is one of the choices, or lies in the accepted interval.

        Args:
            value: the parsed value.
            subject: where it was given: ``-p`` (the message names the parameter: ``beta=1.5 is out of range
                (0,1]``), or an option of its own, such as svd-inspect's ``--beta`` (``1.5 is not in (0, 1]``).
            hint: the next step (default: the parameter's doc line, or the closest choice).
        Raises:
            UsageError: naming ``subject``.
        """
        own = subject != "-p"
        if self.choices is not None:
            if value not in self.choices:
                near = difflib.get_close_matches(str(value), self.choices, n=1)
                what = f"{value!r}" if own else f"{self.name}={value!r}"
                raise UsageError(f"{what} is not one of {', '.join(self.choices)}", subject=subject,
                                 hint=hint or (f"did you mean {near[0]!r}?" if near else f"use one of {', '.join(self.choices)}"))
        elif isinstance(self.accepts, str) and isinstance(value, int | float) and not interval_contains(self.accepts, value):
            message = (f"{value} is not in {self.accepts.replace(',', ', ')}" if own else
                       f"{self.name}={format_value(value)} is out of range {self.accepts}")
            raise UsageError(message, subject=subject, hint=hint or f"{self.name}: {self.doc}")

    def value_for(self, value: Any, T: int) -> Any:
        """``value``, or the run-time default for T tasks when it is ``None``; checked."""
        if value is None and self.resolve is not None:
            value = self.resolve(T)
            self.check(value)
        return value


def interval_contains(spec: str, x: float) -> bool:
    """Whether ``x`` lies in an interval written like ``(0,1]`` or ``[0,inf)``."""
    lo_b, hi_b = spec[0], spec[-1]
    lo_s, hi_s = spec[1:-1].split(",")
    lo, hi = float(lo_s), float(hi_s)
    ok_lo = x > lo if lo_b == "(" else x >= lo
    ok_hi = x < hi if hi_b == ")" else x <= hi
    return ok_lo and ok_hi


def format_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v) if v != int(v) or abs(v) >= 1e16 else f"{v:.1f}"
    return str(v)


SvdCount = Callable[[int, dict[str, Any]], int]
CoreExact = Callable[[dict[str, Any]], bool]
Products = Callable[[int, dict[str, Any], int, int, bool], float]
TopK = Callable[[int, dict[str, Any], int, int], "tuple[int, bool] | None"]


@dataclass(frozen=True)
class Algorithm:
    """A registered merge algorithm (see :func:`algorithm` for what each field means)."""

    name: str
    fn: Callable[..., Any]
    summary: str
    paper: str
    space: str
    returns: str
    params: tuple[Param, ...]  # the function's own, then lam, then mean_scale (subspace)
    min_tasks: int = 1
    needs_base: bool = True
    fixed: dict[str, Any] = field(default_factory=dict)  # parameter values an alias fixes (tsvm-ns: orth=ns)
    batched: Callable[..., Any] | None = None
    svds: SvdCount | None = None
    identity: dict[str, Any] | None = None
    own: frozenset[str] = frozenset()  # the keyword parameters fn takes
    core: Callable[..., Any] | None = None
    core_exact: CoreExact | None = None
    products: Products | None = None
    stats_set: tuple[int, int] = FULL_SET
    top_k: TopK | None = None

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        names = [p.name for p in self.params]
        near = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean {near[0]!r}?" if near else f"{self.name} takes {', '.join(names) or 'no parameters'}"
        raise UsageError(f"{self.name} has no parameter {name!r}", subject="-p", hint=hint)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params if not p.required}

    @property
    def has_lam(self) -> bool:
        return any(p.name == "lam" for p in self.params)

    def call(self, tasks: Any, combo: dict[str, Any]) -> Any:
        """``fn(tasks, **own parameters of combo)``: what it returns is this algorithm's ``returns`` kind."""
        return self.fn(tasks, **self._own(combo))

    def call_batched(self, batch: list[Any], combo: dict[str, Any]) -> Any:
        """The batched rule over same-shape matrices: a list of results, or ``None`` (use the per-matrix rule)."""
        assert self.batched is not None
        return self.batched(batch, **self._own(combo))

    def in_core(self, combo: dict[str, Any]) -> bool:
        """Whether, with these parameters, the merge of low-rank task vectors may be computed in their core space
        (docs/algorithms.md section 6.5): the algorithm declares a core rule, exact for these parameters."""
        return self.core is not None and (self.core_exact is None or self.core_exact(combo))

    def call_core(self, space: Any, combo: dict[str, Any]) -> Any:
        """``core(space, **own parameters of combo)``: tau* as a core of ``space`` (lift it for the matrix)."""
        assert self.core is not None
        return self.core(space, **self._own(combo))

    def _own(self, combo: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in combo.items() if k in self.own}

    def svd_count(self, T: int, combo: dict[str, Any]) -> int:
        """Decompositions per matrix of class svd for T tasks with these parameters (0 outside the subspace space)."""
        return self.svds(T, combo) if self.svds is not None else 0

    def product_count(self, T: int, combo: dict[str, Any], m: int, n: int, spectral_ns: bool = False) -> float:
        """Multiply-adds of the matrix products per m x n matrix of class svd besides the SVDs (Newton-Schulz,
        projections, the recombination), for ``--dry-run``'s estimate; 0 where the algorithm declares none.
        ``spectral_ns``: Newton-Schulz may take its spectral route on this device and dtype
        (:func:`asrmerge.linalg.newton_schulz.uses_spectral`)."""
        return self.products(T, combo, m, n, spectral_ns) if self.products is not None else 0.0

    def task_top_k(self, T: int, combo: dict[str, Any], m: int, n: int) -> tuple[int, bool] | None:
        """(k, spectrum) where each of the T task SVDs of an m x n matrix needs only its top k triplets (and,
        with ``spectrum``, every singular value): they may take the Gram route
        (:func:`asrmerge.linalg.gram.uses_gram`); ``None`` where they need every triplet."""
        return self.top_k(T, combo, m, n) if self.top_k is not None else None


REGISTRY: dict[str, Algorithm] = {}

MEAN_SCALE = Param("mean_scale", str, "lam", False, ("lam", "1"),
                   "class-mean tensors: W0 + lam * mean(tau) ('lam', as the reference code) or W0 + mean(tau) ('1')",
                   source="docs/algorithms.md section 2")


def _params(fn: Callable[..., Any]) -> tuple[Param, ...]:
    out = []
    for name, p in inspect.signature(fn).parameters.items():
        if p.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        if name in ENGINE_PARAMS:
            raise TypeError(f"{fn.__qualname__}: {name} is the engine's; declare lambda with algorithm(lam=Lam(...))")
        hint = eval(p.annotation, fn.__globals__) if isinstance(p.annotation, str) else p.annotation
        meta = next((m for m in getattr(hint, "__metadata__", ()) if isinstance(m, P)), P())
        base = typing.get_args(hint)[0] if hasattr(hint, "__metadata__") else hint
        if typing.get_origin(base) in (typing.Union, types.UnionType):
            base = next(a for a in typing.get_args(base) if a is not type(None))
        required = p.default is inspect.Parameter.empty
        if p.default is None and not required and meta.resolve is None:
            raise TypeError(f"{fn.__qualname__}: {name} defaults to None; give P(resolve=...) its run-time value")
        out.append(Param(name, base, None if required else p.default, required, meta.accepts, meta.doc,
                         meta.default, meta.source, meta.resolve))
    return tuple(out)


def algorithm(name: str, *, space: str, returns: str, paper: str, lam: Lam | None = None, svds: SvdCount | None = None,
              min_tasks: int = 1, needs_base: bool = True, presets: dict[str, dict[str, Any]] | None = None,
              batched: Callable[..., Any] | None = None, identity: dict[str, Any] | None = None,
              core: Callable[..., Any] | None = None, core_exact: CoreExact | None = None,
              products: Products | None = None, top_k: TopK | None = None,
              stats_set: tuple[int, int] = FULL_SET) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn`` as the merge algorithm ``name``. This is the whole algorithm contract.

    Adding an algorithm is one module in ``asrmerge/merge/`` (every module there that is not part of the
    engine is imported, and so registered, by the package) and one test file; its section in
    docs/algorithms.md and ``bin/gen-man`` keep the documentation in step (tests check both).

    The function: ``fn(tasks, *, param: Annotated[type, P(...)] = default, ...)``. ``tasks`` is a
    :class:`asrmerge.merge.operands.Operands`: one tensor (or a chunk of its rows) across the base and the T
    tasks, read lazily in the compute dtype on the compute device. Its keyword-only parameters are the
    ``-p name=value`` options, typed, range-checked and shown by ``--list``: ``P(accepts, doc)`` gives the
    accepted interval or choices and a doc line; no default means required; a default of ``None`` needs
    ``P(default="1/T", resolve=lambda T: 1 / T)``, its value for T tasks. The first docstring line is the
    summary. The function never sees ``lam`` or ``mean_scale``: the engine applies them.

    Args:
        name: the CLI name (``--algo name``).
        space: ``params`` (the output is W* itself: parameter space), ``tau`` (element-wise on task
            vectors: the output is tau*, and W* = W_0 + lambda tau*) or ``subspace`` (a matrix rule for
            tensors of class ``svd``/``svd-flat``; tensors of class ``mean`` get the weighted mean task
            vector, scaled as ``mean_scale`` says; class ``base`` keeps W_0).
        returns: what ``fn`` returns, which decides how the engine runs it:

            - ``matrix`` (``subspace`` only): tau* of one whole matrix, a tensor of ``tasks.shape``;
            - ``rule``: a function ``rule(chunk) -> values`` that the engine applies to the whole tensor
              or, when it exceeds the memory budget, to each chunk of rows;
            - ``stats``: ``fn`` is a generator that first ``yield``s lists of statistic requests
              (:mod:`asrmerge.merge.stream`: ``KthLargest``, ``Total``, ``Extreme``), receives each list's
              exact values (computed in memory or in streaming passes, over the tensor or, with
              ``scope=model``, the model), and finally ``return``s a rule as above.
        paper: the citation shown by ``--list``.
        lam: the algorithm's lambda (default, doc, source); ``None`` for ``weights`` algorithms. It becomes
            the parameter ``lam`` (sweeping it reuses every other result).
        svds: decompositions per svd-class matrix, ``svds(T, params)``, for ``--dry-run``'s estimate.
        products: multiply-adds of the other matrix products per svd-class m x n matrix,
            ``products(T, params, m, n, spectral_ns)`` (Newton-Schulz, projections), for ``--dry-run``'s
            estimate; ``spectral_ns`` says whether Newton-Schulz may take its spectral route there.
        top_k: ``top_k(T, params, m, n)``: (k, spectrum) where T of ``svds`` (one per task) need only
            the top k singular triplets of an m x n matrix (and with ``spectrum`` its singular values), so
            that the dry run costs the Gram route where it applies; or ``None``.
        min_tasks: fewer inputs are a usage error.
        needs_base: whether ``--base`` is required.
        presets: further names, each with some parameters fixed (``{"tsvm-ns": {"orth": "ns"}}``).
        batched: optional ``batched(list_of_tasks, **params) -> list | None``: the same rule for many
            same-shape matrices at once (``--batch``, GPUs), equal to the per-matrix rule to 1e-5 relative
            (docs/algorithms.md section 3); ``None`` where only the per-matrix rule applies.
        identity: parameters with which one task returns W_1 (docs/algorithms.md section 7.1), or ``None``
            if the algorithm is not the identity on one task by design; the property tests use it.
        core: optional (``subspace`` only) ``core(space, **params) -> Tensor``: the same rule on the cores of
            low-rank task vectors (``space``: a :class:`asrmerge.linalg.core.CoreSpace`), returning tau* as a
            core, which the engine lifts. The engine uses it for a matrix that every input gives as LoRA
            factors of total rank R < min(m, n) (docs/algorithms.md section 6.5). It must equal the matrix
            rule to 1e-5 relative in fp32 (``tests/test_merge_core.py`` checks every registered one).
        core_exact: ``core_exact(params)``: whether ``core`` is exact with these parameters (default: always);
            where it is not, the engine keeps the matrix rule.
        stats_set: (a, b) for a ``stats`` algorithm: its statistics over one whole tensor in memory hold at most
            (a T + b) x numel elements of the compute dtype (the cached task vectors, W_0, each request's
            values and the selection's temporaries). The engine computes them in memory where that is
            within the budget and streams them otherwise; the rule then runs over row blocks of what the
            statistics cached. Default: the full working set, (3T + 6).
    """
    if space not in SPACES:
        raise ValueError(f"{name}: space {space!r} is not one of {SPACES}")
    if returns not in RETURNS:
        raise ValueError(f"{name}: returns {returns!r} is not one of {RETURNS}")
    if (returns == "matrix") != (space == "subspace"):
        raise ValueError(f"{name}: subspace algorithms return matrices, the others rules or stats")
    if (lam is None) != (space == "params"):
        raise ValueError(f"{name}: task-vector algorithms declare lam=Lam(...); parameter-space ones have none")
    if core is not None and space != "subspace":
        raise ValueError(f"{name}: only subspace algorithms have a core-space rule")

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if (returns == "stats") != inspect.isgeneratorfunction(fn):
            raise TypeError(f"{name}: returns='stats' exactly when the function is a generator")
        summary = (inspect.getdoc(fn) or "").splitlines()[0]
        own = _params(fn)
        params = own
        if lam is not None:
            params += (Param("lam", float, lam.default, False, lam.accepts, lam.doc, source=lam.source),)
        if space == "subspace":
            params += (MEAN_SCALE,)
        keys = frozenset(p.name for p in own)

        def make(alg: str, summ: str, kept: tuple[Param, ...], fixed: dict[str, Any]) -> Algorithm:
            return Algorithm(alg, fn, summ, paper, space, returns, kept, min_tasks, needs_base, fixed, batched, svds,
                             identity if not fixed else None, keys, core, core_exact, products,
                             stats_set, top_k)

        REGISTRY[name] = make(name, summary, params, {})
        for alias, fixed in (presets or {}).items():
            kept = tuple(p for p in params if p.name not in fixed)
            REGISTRY[alias] = make(alias, f"{summary} ({', '.join(f'{k}={v}' for k, v in fixed.items())})", kept,
                                   dict(fixed))
        return fn

    return register


def get(name: str) -> Algorithm:
    """The algorithm called ``name``, or a usage error suggesting the closest name."""
    import asrmerge.merge  # noqa: F401  (registers every algorithm)

    if name in REGISTRY:
        return REGISTRY[name]
    near = difflib.get_close_matches(name, list(REGISTRY), n=1, cutoff=0.4)
    hint = f"did you mean {near[0]!r}?" if near else "see asrmerge merge --list"
    raise UsageError(f"unknown algorithm {name!r}", subject="--algo", hint=hint)


def names() -> list[str]:
    """Every algorithm name, in ``--list`` order: by space (parameters, task vectors, subspaces), then by name."""
    import asrmerge.merge  # noqa: F401

    return sorted(REGISTRY, key=lambda n: (SPACES.index(REGISTRY[n].space), n))
