"""The algorithm registry: one declaration per algorithm drives ``--list``, validation, docs and completion.

An algorithm is a function decorated with :func:`algorithm`. Its keyword-only parameters are the
``-p name=value`` options: the annotation ``Annotated[type, P(range_or_choices, doc)]`` gives the type,
the accepted values and a doc line; the default is the default (``None`` with ``P(default="1/T")``
for values resolved at run time); no default means required. The first docstring line is the
algorithm's summary. Importing this module, or the algorithm modules, never imports torch.
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

SPACES = ("weights", "tau", "subspace")


@dataclass(frozen=True)
class P:
    """Metadata of one parameter: accepted values (``"(0,1]"`` interval, or a tuple of choices) and a doc line."""

    accepts: str | tuple[str, ...] | None = None
    doc: str = ""
    default: str | None = None  # how a run-time default is described (``"1/T"``)
    source: str = ""  # where the default comes from (paper, reference code, "ours")


@dataclass(frozen=True)
class Param:
    """A parameter as the CLI sees it."""

    name: str
    type: type
    default: Any
    required: bool
    accepts: str | tuple[str, ...] | None
    doc: str
    default_doc: str | None = None
    source: str = ""

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

    def check(self, value: Any) -> None:
        if self.choices is not None:
            if value not in self.choices:
                near = difflib.get_close_matches(str(value), self.choices, n=1)
                hint = f"did you mean {near[0]!r}?" if near else f"use one of {', '.join(self.choices)}"
                raise UsageError(f"{self.name}={value!r} is not one of {', '.join(self.choices)}", subject="-p", hint=hint)
        elif isinstance(self.accepts, str) and isinstance(value, int | float) and not interval_contains(self.accepts, value):
            raise UsageError(f"{self.name}={format_value(value)} is out of range {self.accepts}", subject="-p",
                             hint=f"{self.name}: {self.doc}")


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


@dataclass(frozen=True)
class Algorithm:
    """A registered merge algorithm."""

    name: str
    fn: Callable[..., Any]
    summary: str
    paper: str
    space: str
    params: tuple[Param, ...]
    min_tasks: int = 1
    needs_base: bool = True
    aliases: dict[str, Any] = field(default_factory=dict)  # fixed parameter values (tsvm-ns: orth=ns)
    batched: Callable[..., Any] | None = None  # the same rule over a list of same-shape matrices (GPU batching)

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


REGISTRY: dict[str, Algorithm] = {}

MEAN_SCALE = Param("mean_scale", str, "lam", False, ("lam", "1"),
                   "class-mean tensors: W0 + lam * mean(tau) ('lam', as the reference code) or W0 + mean(tau) ('1')",
                   source="ALGORITHMS.md section 2")


def _params(fn: Callable[..., Any]) -> tuple[Param, ...]:
    out = []
    for name, p in inspect.signature(fn).parameters.items():
        if p.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        hint = eval(p.annotation, fn.__globals__) if isinstance(p.annotation, str) else p.annotation
        meta = next((m for m in getattr(hint, "__metadata__", ()) if isinstance(m, P)), P())
        base = typing.get_args(hint)[0] if hasattr(hint, "__metadata__") else hint
        if typing.get_origin(base) in (typing.Union, types.UnionType):
            base = next(a for a in typing.get_args(base) if a is not type(None))
        required = p.default is inspect.Parameter.empty
        out.append(Param(name, base, None if required else p.default, required, meta.accepts, meta.doc,
                         meta.default, meta.source))
    return tuple(out)


def algorithm(name: str, *, space: str, paper: str, min_tasks: int = 1, needs_base: bool = True,
              aliases: dict[str, dict[str, Any]] | None = None,
              batched: Callable[..., Any] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn`` as the merge algorithm ``name`` (and any ``aliases``: name -> fixed parameters).

    Args:
        name: the CLI name (``--algo name``).
        space: ``weights`` (full parameters), ``tau`` (element-wise on task vectors) or ``subspace``
            (matrix rule for tensors of class ``svd``).
        paper: the citation shown by ``--list``.
        min_tasks: fewer inputs are a usage error.
        needs_base: whether ``--base`` is required.
        batched: optional ``fn(list_of_tasks, **params) -> list of results | None`` for same-shape matrices,
            used with ``--batch`` (GPUs); it must equal the per-matrix rule to 1e-5 (ALGORITHMS.md section 3).
    """
    if space not in SPACES:
        raise ValueError(space)

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        summary = (inspect.getdoc(fn) or "").splitlines()[0]
        params = _params(fn)
        if space == "subspace":
            params += (MEAN_SCALE,)
        REGISTRY[name] = Algorithm(name, fn, summary, paper, space, params, min_tasks, needs_base, batched=batched)
        for alias, fixed in (aliases or {}).items():
            kept = tuple(p for p in params if p.name not in fixed)
            REGISTRY[alias] = Algorithm(alias, fn, f"{summary} ({', '.join(f'{k}={v}' for k, v in fixed.items())})",
                                        paper, space, kept, min_tasks, needs_base, dict(fixed), batched)
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
    import asrmerge.merge  # noqa: F401

    return list(REGISTRY)
