"""Small random inputs with Whisper tensor names for the peer comparisons, as state dicts and safetensors files.

Each :class:`InputSet` is a base W_0 and T fine-tunes W_t (full weights, so both peers and asrmerge read the
same files). The tensor names cover the policy classes of docs/algorithms.md section 2: ``svd`` matrices (tall
and wide), ``mean`` vectors, a 3-D conv kernel, and 2-D ``mean`` tables (which FusionBench must be told
about through ``exclude_keys``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file

SHAPES: dict[str, tuple[int, ...]] = {
    "model.encoder.layers.0.fc1.weight": (24, 10),  # svd, tall
    "model.encoder.layers.0.fc1.bias": (24,),  # mean
    "model.decoder.layers.0.fc2.weight": (10, 24),  # svd, wide
    "model.decoder.layers.0.self_attn.q_proj.weight": (16, 16),  # svd, square
    "model.encoder.layers.0.self_attn_layer_norm.weight": (16,),  # mean
    "model.encoder.conv1.weight": (8, 4, 3),  # mean, 3-D
    "model.decoder.embed_tokens.weight": (30, 10),  # mean, 2-D
    "model.decoder.embed_positions.weight": (6, 10),  # mean, 2-D
}


def classes(names: list[str] | None = None) -> dict[str, str]:
    """asrmerge's default policy class of each tensor name."""
    from asrmerge.io.tensors import TensorInfo
    from asrmerge.merge.policy import Policy

    shapes = SHAPES if names is None else {n: SHAPES[n] for n in names}
    return {n: Policy().classify(TensorInfo(n, s, "F32")) for n, s in shapes.items()}


def exclude_keys(sd: dict[str, torch.Tensor]) -> list[str]:
    """FusionBench ``exclude_keys`` for parity (docs/algorithms.md section 2): every 2-D key not of class svd."""
    from asrmerge.io.tensors import TensorInfo
    from asrmerge.merge.policy import Policy

    return sorted(k for k, v in sd.items() if v.dim() == 2 and Policy().classify(TensorInfo(k, tuple(v.shape), "F32")) != "svd")


@dataclass
class InputSet:
    """A base and T fine-tunes, in memory and on disk."""

    name: str
    base: dict[str, torch.Tensor]
    fts: list[dict[str, torch.Tensor]]
    dir: Path | None = None
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def T(self) -> int:  # noqa: N802
        return len(self.fts)

    @property
    def taus(self) -> list[dict[str, torch.Tensor]]:
        return [{k: ft[k] - self.base[k] for k in self.base} for ft in self.fts]

    @property
    def base_path(self) -> Path:
        return self.paths["base"]

    @property
    def ft_paths(self) -> list[Path]:
        return [self.paths[f"ft{i}"] for i in range(self.T)]

    def save(self, root: Path) -> InputSet:
        self.dir = root / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        for key, sd in [("base", self.base), *((f"ft{i}", ft) for i, ft in enumerate(self.fts))]:
            p = self.dir / f"{key}.safetensors"
            save_file({k: v.contiguous() for k, v in sd.items()}, p, metadata={"format": "pt"})
            self.paths[key] = p
        return self


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def dense(name: str, *, T: int = 3, seed: int = 0, dtype: torch.dtype = torch.float32, scale: float = 0.1,
          shared: float = 0.5, task_scales: list[float] | None = None,
          shapes: dict[str, tuple[int, ...]] | None = None) -> InputSet:
    """Full-rank fine-tunes: tau_t = scale * (shared * c + (1 - shared) * e_t) with Gaussian c, e_t.

    The shared component makes the tasks positively correlated (mean cosine about 0.5), as real fine-tunes
    of one base are; every matrix is full rank with probability 1.
    """
    g = _gen(seed)
    shapes = shapes or SHAPES
    base = {k: torch.randn(s, generator=g, dtype=torch.float64) for k, s in shapes.items()}
    common = {k: torch.randn(s, generator=g, dtype=torch.float64) for k, s in shapes.items()}
    fts = []
    for t in range(T):
        a = scale * (task_scales[t] if task_scales else 1.0)
        fts.append({k: base[k] + a * (shared * common[k] + (1 - shared) * torch.randn(s, generator=g, dtype=torch.float64))
                    for k, s in shapes.items()})
    return InputSet(name, {k: v.to(dtype) for k, v in base.items()}, [{k: v.to(dtype) for k, v in ft.items()} for ft in fts])


def opposed(name: str, *, seed: int = 1) -> InputSet:
    """T = 2 with tau_2 = -0.8 tau_1 + noise: the mean cosine q is about -0.97 on every tensor."""
    g = _gen(seed)
    base = {k: torch.randn(s, generator=g) for k, s in SHAPES.items()}
    t1 = {k: 0.1 * torch.randn(s, generator=g) for k, s in SHAPES.items()}
    t2 = {k: -0.8 * t1[k] + 0.02 * torch.randn(s, generator=g) for k, s in SHAPES.items()}
    return InputSet(name, base, [{k: base[k] + t1[k] for k in base}, {k: base[k] + t2[k] for k in base}])


def dyadic(shape: tuple[int, ...], g: torch.Generator, lo: int = -8, hi: int = 8, denom: float = 8.0) -> torch.Tensor:
    """Values k/denom with integer k: sums and differences of a few are exact in fp32."""
    return torch.randint(lo, hi + 1, shape, generator=g).to(torch.float32) / denom


def pole(name: str, *, seed: int = 2) -> InputSet:
    """T = 2 with tau_2 = -tau_1 exactly (dyadic values): q = -1, the pole of model-stock's eta."""
    g = _gen(seed)
    base = {k: dyadic(s, g) for k, s in SHAPES.items()}
    tau = {k: dyadic(s, g, 1, 4, 64.0) * torch.where(torch.rand(s, generator=g) < 0.5, -1.0, 1.0) for k, s in SHAPES.items()}
    return InputSet(name, base, [{k: base[k] + tau[k] for k in base}, {k: base[k] - tau[k] for k in base}])


def tied(name: str, *, seed: int = 3) -> InputSet:
    """T = 1, every |tau| equal (+-1/8): every magnitude ties at the top-k threshold."""
    g = _gen(seed)
    base = {k: dyadic(s, g) for k, s in SHAPES.items()}
    sign = {k: torch.where(torch.rand(s, generator=g) < 0.5, -1.0, 1.0) for k, s in SHAPES.items()}
    return InputSet(name, base, [{k: base[k] + 0.125 * sign[k] for k in base}])


def zero_sign(name: str, *, seed: int = 4) -> InputSet:
    """T = 2, mostly negative small tau, plus a set of large entries where tau_1 = +1 and tau_2 = -1 exactly.

    There the elected sign's sum is exactly 0: asrmerge takes +1 (docs/algorithms.md section 5.2 step 2), FusionBench
    takes the model-wide majority sign, here -1.
    """
    g = _gen(seed)
    base = {k: dyadic(s, g) for k, s in SHAPES.items()}
    fts: list[dict[str, torch.Tensor]] = [{}, {}]
    for k, s in SHAPES.items():
        small = [-dyadic(s, g, 1, 8, 1024.0) for _ in range(2)]
        cancel = torch.rand(s, generator=g) < 0.05
        fts[0][k] = base[k] + torch.where(cancel, 1.0, small[0])
        fts[1][k] = base[k] + torch.where(cancel, -1.0, small[1])
    return InputSet(name, base, fts)


def orthogonal_rank1(name: str, *, T: int = 3, seed: int = 5, dtype: torch.dtype = torch.float64) -> InputSet:
    """Rank-1 task vectors on the svd matrices, mutually orthogonal (U_i^T U_j = 0, V_i^T V_j = 0); dense elsewhere.

    The base is 0, so W_t - W_0 reproduces tau_t exactly (a nonzero base would add rounding noise of full
    rank, about eps * |W_0|, and the matrices would no longer be numerically rank-deficient).
    """
    g = _gen(seed)
    cls = classes()
    base = {k: torch.zeros(s, dtype=torch.float64) for k, s in SHAPES.items()}
    taus: list[dict[str, torch.Tensor]] = [{} for _ in range(T)]
    for k, s in SHAPES.items():
        if cls[k] == "svd":
            u, _ = torch.linalg.qr(torch.randn(s[0], T, generator=g, dtype=torch.float64))
            v, _ = torch.linalg.qr(torch.randn(s[1], T, generator=g, dtype=torch.float64))
            for t in range(T):
                taus[t][k] = (0.5 + t) * 0.1 * torch.outer(u[:, t], v[:, t])
        else:
            for t in range(T):
                taus[t][k] = 0.1 * torch.randn(s, generator=g, dtype=torch.float64)
    return InputSet(name, {k: v.to(dtype) for k, v in base.items()},
                    [{k: (base[k] + tau[k]).to(dtype) for k in base} for tau in taus])


def disjoint(name: str, *, T: int = 3, seed: int = 6) -> InputSet:
    """Dense task vectors on disjoint supports (entry i belongs to task perm(i) mod T), on larger tensors.

    The merged update then shows each task's DARE mask and rescale factor separately.
    """
    g = _gen(seed)
    shapes = {"model.encoder.layers.0.fc1.weight": (96, 64), "model.encoder.layers.0.fc1.bias": (96,),
              "model.decoder.layers.0.self_attn.q_proj.weight": (64, 64)}
    base = {k: torch.randn(s, generator=g) for k, s in shapes.items()}
    fts: list[dict[str, torch.Tensor]] = [{} for _ in range(T)]
    for k, s in shapes.items():
        owner = (torch.randperm(int(torch.tensor(s).prod()), generator=g) % T).reshape(s)
        for t in range(T):
            fts[t][k] = base[k] + torch.where(owner == t, 0.1 * torch.randn(s, generator=g), 0.0)
    return InputSet(name, base, fts)


def small_norm(name: str, *, seed: int = 7) -> InputSet:
    """T = 3 full-weight inputs for karcher; the third has Frobenius norm 0.3 on every tensor."""
    g = _gen(seed)
    base = {k: torch.zeros(s) for k, s in SHAPES.items()}
    fts = [{k: torch.randn(s, generator=g) for k, s in SHAPES.items()} for _ in range(2)]
    third = {}
    for k, s in SHAPES.items():
        x = torch.randn(s, generator=g)
        third[k] = 0.3 * x / x.norm()
    return InputSet(name, base, [*fts, third])
