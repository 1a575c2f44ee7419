"""Shared helpers and hypothesis strategies for the merge-algorithm tests (docs/algorithms.md section 7).

Every test drives the real planner and engine through :func:`asrmerge.merge.api.merge`. Inputs are small
(2..12 rows and columns) and built from seeds, so one example costs a few milliseconds.

The tensor names matter to the policy (docs/algorithms.md section 2): :data:`SVD` is a ``svd``-class matrix
(the matrix path of iso-c, iso-cts, tsvm and boosted-tsvm), :data:`BIAS` and :data:`NORM` are ``mean``
class, and :data:`CONV` is a 3-D ``mean`` tensor that tests turn into class ``base`` with a policy rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from asrmerge.merge.api import merge
from asrmerge.merge.registry import REGISTRY, names

SVD = "model.encoder.layers.0.fc1.weight"
BIAS = "model.encoder.layers.0.fc1.bias"
NORM = "model.encoder.layers.0.final_layer_norm.weight"
CONV = "model.encoder.conv1.weight"

FP = (torch.float32, torch.float64)
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}  # docs/algorithms.md section 7: relative, unless stated

# every registered algorithm, by its declared space: a new algorithm joins the property tests by registering
ALGOS = tuple(names())
PARAM_SPACE = tuple(a for a in ALGOS if REGISTRY[a].space == "params")
TAU_SPACE = tuple(a for a in ALGOS if REGISTRY[a].space == "tau")
SUBSPACE = tuple(a for a in ALGOS if REGISTRY[a].space == "subspace")
# random algorithms (a seed parameter: DARE) are permutation-invariant only in distribution
DETERMINISTIC = tuple(a for a in ALGOS if not any(p.name == "seed" for p in REGISTRY[a].params))

# Deterministic example streams, so a CI run never turns red by chance; few examples keep the files fast.
PROPS = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                        HealthCheck.filter_too_much])  # the assume()s are by design
FEW = settings(PROPS, max_examples=15)

# Task-set structures of section 7.12: zero, rank-1, duplicated tasks, antiparallel pairs, tiny norms; plus
# low rank, and "cancel" (tasks summing to a rank-1 matrix: a rank-deficient sum of full-rank tasks).
KINDS = ("random", "lowrank", "rank1", "duplicated", "antiparallel", "tiny", "zero", "cancel")
TINY = {torch.float64: (1e-12, 1e-100), torch.float32: (1e-7, 1e-30)}


@dataclass
class Case:
    """One tensor's merge inputs: W_0 and the task vectors tau_t (all in ``dtype``)."""

    base: torch.Tensor
    taus: list[torch.Tensor]
    weights: list[float] | None
    kind: str
    dtype: torch.dtype
    seed: int

    @property
    def T(self) -> int:  # noqa: N802  (the spec's notation)
        return len(self.taus)

    @property
    def thetas(self) -> list[torch.Tensor]:
        return [self.base + t for t in self.taus]

    def w(self) -> list[float]:
        return self.weights if self.weights is not None else [1.0] * self.T

    def scale(self) -> float:
        """A magnitude for relative comparisons of outputs W* = W_0 + ..."""
        values = [self.base.abs().max(), *(t.abs().max() for t in self.taus)]
        return float(max(values))


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def orthonormal(m: int, k: int, g: torch.Generator) -> torch.Tensor:
    """An m x k matrix with orthonormal columns (fp64), k <= m."""
    q, r = torch.linalg.qr(torch.randn(m, k, generator=g, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def from_svd(u: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """U diag(s) V^T."""
    return (u * s) @ v.mT


def make_taus(kind: str, T: int, m: int, n: int, seed: int, dtype: torch.dtype) -> list[torch.Tensor]:
    """T task vectors of shape (m, n) with the structure ``kind`` (see :data:`KINDS`)."""
    g = generator(seed)
    r = min(m, n)

    def rnd() -> torch.Tensor:
        return torch.randn(m, n, generator=g, dtype=torch.float64)

    def low(rank: int) -> torch.Tensor:
        return torch.randn(m, rank, generator=g, dtype=torch.float64) @ torch.randn(rank, n, generator=g, dtype=torch.float64)

    if kind == "random":
        taus = [rnd() for _ in range(T)]
    elif kind == "lowrank":
        taus = [low(int(torch.randint(1, max(2, r), (1,), generator=g))) for _ in range(T)]
    elif kind == "rank1":
        taus = [low(1) for _ in range(T)]
    elif kind == "duplicated":
        taus = [rnd() for _ in range(T)]
        if T >= 2:
            taus[1] = taus[0].clone()
    elif kind == "antiparallel":
        taus = [rnd() for _ in range(T)]
        if T >= 2:
            taus[1] = -taus[0]
    elif kind == "tiny":
        big, small = TINY[dtype]
        factor = small if seed % 2 else big
        taus = [rnd() * factor for _ in range(T)]
    elif kind == "zero":
        taus = [torch.zeros(m, n, dtype=torch.float64) for _ in range(T)]
    elif kind == "cancel":
        taus = [rnd() for _ in range(T - 1)]
        taus.append(low(1) - sum(taus, torch.zeros(m, n, dtype=torch.float64)))
    else:
        raise ValueError(kind)
    return [t.to(dtype) for t in taus]


@st.composite
def cases(draw: Any, *, kinds: tuple[str, ...] = KINDS, tasks: tuple[int, int] = (1, 4),
          dtypes: tuple[torch.dtype, ...] = FP, weighted: bool = True, zero_base: bool | None = None,
          rows: tuple[int, int] = (2, 12), cols: tuple[int, int] = (2, 12)) -> Case:
    """A :class:`Case`: dtype, shape, T, structure, seed, optional positive weights, W_0 random or zero."""
    dtype = draw(st.sampled_from(dtypes))
    m = draw(st.integers(*rows))
    n = draw(st.integers(*cols))
    T = draw(st.integers(*tasks))
    kind = draw(st.sampled_from(kinds))
    seed = draw(st.integers(0, 2**31 - 1))
    weights = None
    if weighted and draw(st.booleans()):
        weights = draw(st.lists(st.sampled_from([0.25, 0.5, 1.0, 1.5, 2.0, 3.0]), min_size=T, max_size=T))
    zero = draw(st.booleans()) if zero_base is None else zero_base
    g = generator(seed + 1)
    base = torch.zeros(m, n, dtype=dtype) if zero else torch.randn(m, n, generator=g, dtype=torch.float64).to(dtype)
    return Case(base, make_taus(kind, T, m, n, seed, dtype), weights, kind, dtype, seed)


def run(algo: str, case: Case, *, params: dict[str, Any] | None = None, weights: list[float] | None = None,
        taus: list[torch.Tensor] | None = None, name: str = SVD, policy: str | None = None,
        models: bool = False) -> torch.Tensor:
    """W* of the one tensor ``name`` merged from ``case`` (task vectors over W_0; full models with ``models``)."""
    xs = case.taus if taus is None else taus
    inputs = [{name: (case.base + t if models else t)} for t in xs]
    out = merge(algo, inputs, base={name: case.base}, taskvecs=not models, params=params,
                weights=case.weights if weights is None else weights, policy=policy, compute_dtype=case.dtype)
    assert isinstance(out, dict)
    return out[name]


def named(x: torch.Tensor) -> str:
    """:data:`SVD` for a matrix, :data:`BIAS` (class mean) for anything else."""
    return SVD if x.dim() == 2 else BIAS


def merge_one(algo: str, taus: list[torch.Tensor], base: torch.Tensor | None = None, *,
              params: dict[str, Any] | None = None, weights: list[float] | None = None, name: str | None = None,
              dtype: torch.dtype = torch.float64, policy: str | None = None) -> torch.Tensor:
    """W* of one tensor from explicit task vectors (W_0 = 0 unless given): the hand-computed cases' harness."""
    w0 = torch.zeros_like(taus[0]) if base is None else base
    name = name or named(w0)
    out = merge(algo, [{name: t} for t in taus], base={name: w0}, taskvecs=True, params=params, weights=weights,
                policy=policy, compute_dtype=dtype)
    assert isinstance(out, dict)
    return out[name]


def merge_models(algo: str, thetas: list[torch.Tensor], base: torch.Tensor | None = None, *,
                 params: dict[str, Any] | None = None, weights: list[float] | None = None, name: str | None = None,
                 dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """W* of one tensor from full weights W_t (no base unless given)."""
    name = name or named(thetas[0])
    out = merge(algo, [{name: t} for t in thetas], base=None if base is None else {name: base}, params=params,
                weights=weights, compute_dtype=dtype)
    assert isinstance(out, dict)
    return out[name]


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype = torch.float64, *,
                 scale: float = 0.0, tol: float | None = None, what: str = "") -> None:
    """max |actual - expected| <= tol * max(max |expected|, scale): relative in the max norm.

    With nothing to scale by (expected == 0 and scale == 0) the two must be equal.
    """
    tol = TOL[dtype] if tol is None else tol
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    a, e = actual.double(), expected.double()
    assert bool(torch.isfinite(a).all()), f"{what}: non-finite values"
    ref = max(float(e.abs().max()) if e.numel() else 0.0, scale)
    err = float((a - e).abs().max()) if e.numel() else 0.0
    assert err <= tol * ref or err == 0.0, f"{what}: max error {err:.3g} > {tol:g} x {ref:.3g}"


def exact(rows: list[list[Fraction | int]] | list[Fraction | int], dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A tensor from exact (Fraction or int) hand-computed values."""
    return torch.tensor(_floats(rows), dtype=dtype)


def _floats(x: Any) -> Any:
    return [_floats(v) for v in x] if isinstance(x, list) else float(x)


def hadamard4() -> torch.Tensor:
    """H = (1/2) [[1,1,1,1],[1,1,-1,-1],[1,-1,1,-1],[1,-1,-1,1]]: orthogonal, symmetric, exact in binary."""
    return 0.5 * torch.tensor([[1, 1, 1, 1], [1, 1, -1, -1], [1, -1, 1, -1], [1, -1, -1, 1]], dtype=torch.float64)


def numerical_rank(x: torch.Tensor) -> int:
    """rho(A) of docs/algorithms.md section 1, computed here independently of the package."""
    s = torch.linalg.svdvals(x)
    if s.numel() == 0 or float(s[0]) == 0.0:
        return 0
    tol = max(x.shape) * torch.finfo(x.dtype).eps * float(s[0])
    return int((s > tol).sum())


INT = "model.decoder.token_ids"  # a non-float tensor: class base whatever the rules say


def state(x: torch.Tensor, ints: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """A small checkpoint built linearly from one matrix, with a tensor of every policy class.

    Names are deliberately not in alphabetical order, to check that outputs keep the base's order.
    """
    out = {SVD: x, BIAS: x[:, 0].contiguous(), NORM: x[0].contiguous(), CONV: torch.stack([x, x.flip(0)], -1)}
    out[INT] = torch.arange(x.shape[0]) if ints is None else ints
    return out


def run_state(algo: str, case: Case, *, params: dict[str, Any] | None = None, policy: str | None = None,
              out_dtype: str | None = None, compute_dtype: torch.dtype | None = None,
              models: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(W_0, W*) as checkpoints of every policy class, merged from ``case``."""
    base = state(case.base)
    inputs = [state(case.base + t if models else t) for t in case.taus]
    out = merge(algo, inputs, base=base, taskvecs=not models, params=params, weights=case.weights, policy=policy,
                compute_dtype=compute_dtype or (case.dtype if case.dtype in FP else torch.float32), out_dtype=out_dtype)
    assert isinstance(out, dict)
    return base, out


def fp32_resolves(algo: str, case: Case, *, params: dict[str, Any] | None = None,
                  taus: list[torch.Tensor] | None = None, weights: list[float] | None = None) -> bool:
    """Whether this fp32 merge is well-conditioned at fp32 precision: moving every input entry by ~2 ulp moves
    the result by at most half the fp32 tolerance.

    The polar factor and Newton-Schulz are ill-conditioned on nearly rank-deficient concatenations
    (duplicated or cancelling tasks): there fp32 rounding moves the result by kappa * eps, and by ~485 eps with
    orth=ns (section 3: NS multiplies singular values below ~1e-3 by ~485). A fixed fp32 tolerance of 1e-5 is
    meaningful only where fp32 resolves the result; fp64 examples are always kept.
    """
    if case.dtype != torch.float32:
        return True
    xs = case.taus if taus is None else taus
    g = generator(case.seed + 7)
    nudged = [t * (1 + 2.0**-22 * torch.randint(-1, 2, t.shape, generator=g).to(t.dtype)) for t in xs]
    a = run(algo, case, params=params, taus=xs, weights=weights)
    b = run(algo, case, params=params, taus=nudged, weights=weights)
    return float((a.double() - b.double()).abs().max()) <= 0.5 * TOL[torch.float32] * case.scale()


def dare_keep(seed: int, name: str, t: int, shape: tuple[int, ...], p: float) -> torch.Tensor:
    """The DARE keep-mask of section 3, written from the spec: u ~ U[0,1) in fp32 from a CPU torch.Generator
    seeded with the first 8 bytes of SHA-256("{seed}:{name}:{t}"), keep where u >= p.

    Our reading of "the first 8 bytes" as a seed: little-endian, top bit cleared (a non-negative int64).
    """
    import hashlib

    digest = hashlib.sha256(f"{seed}:{name}:{t}".encode()).digest()
    g = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
    return torch.rand(shape, generator=g, dtype=torch.float32) >= p


def ns_scalar(x: float, coeffs: str = "muon", steps: int = 5) -> float:
    """What Newton-Schulz does to one normalised singular value: x <- a x + b x^3 + c x^5, step by step."""
    from asrmerge.linalg.svd import NS_COEFFS

    table = NS_COEFFS[coeffs]
    for i in range(1, steps + 1):
        a, b, c = table[min(i, len(table)) - 1]
        x = a * x + b * x**3 + c * x**5
    return x


def run_ids(runs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Test ids that name the algorithm and its parameters (not a position, which a new algorithm would shift,
    and with it the examples derandomized hypothesis draws)."""
    return [f"{a}[{','.join(f'{k}={v}' for k, v in p.items())}]" if p else a for a, p in runs]
