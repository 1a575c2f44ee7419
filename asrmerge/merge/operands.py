"""What an algorithm sees of one tensor: W_0, the W_t or tau_t of every task, weights, and DARE draws.

A :class:`Operands` covers one tensor, or a range of its rows (a chunk) when the engine streams a tensor too
large to hold T times. Reads are lazy, upcast to the compute dtype on the compute device, checked for
NaN/Inf, and cached for the object's life when the engine allows it. tau_t is read from a task vector or
computed as W_t - W_0; W_t is read from a model or computed as W_0 + tau_t. Where every task is a LoRA
adapter, a matrix's task vectors are also available as their low-rank factors (:meth:`Operands.factors`).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from asrmerge.errors import UsageError
from asrmerge.io.tensors import finite
from asrmerge.merge.registry import FULL_SET

if TYPE_CHECKING:
    from collections.abc import Callable

    from torch import Tensor

    from asrmerge.io.checkpoint import Checkpoint


@dataclass
class Inputs:
    """The opened inputs of one merge."""

    base: Checkpoint | None
    sources: list[Checkpoint]
    is_taskvec: list[bool]
    weights: list[float]
    dtype: torch.dtype = torch.float32
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def T(self) -> int:  # noqa: N802  (the paper's notation)
        return len(self.sources)

    @property
    def reference(self) -> Checkpoint:
        """The checkpoint whose names, shapes and dtypes the output takes: the base, else the first input."""
        return self.base if self.base is not None else self.sources[0]

    def read(self, ckpt: Checkpoint, name: str, rows: tuple[int, int] | None, *, widen: bool = True) -> Tensor:
        """Tensor ``name`` (or its rows) from ``ckpt``, checked finite, on the compute device, in the compute
        dtype; with ``widen=False`` in its stored dtype where that is exactly representable in the compute
        dtype (fp16 or bf16 for fp32), for a caller whose next operation promotes it anyway."""
        return self._read(ckpt, name, rows, widen)[0]

    def difference(self, ckpt: Checkpoint, name: str, rows: tuple[int, int] | None, base: Tensor,
                   view: Callable[[Tensor], Tensor]) -> Tensor:
        """view(W) - base for tensor ``name`` (or its rows) of ``ckpt``, as ``torch.sub`` gives it.

        On the CPU W is widened to the compute dtype first (a mixed-dtype subtraction takes 2.6x a conversion
        and a same-dtype one: 8.2 ms against 3.1 ms for 6.5 M fp16 entries, one core), and where widening made
        a new tensor the difference is taken in place in it: the same values, without a third tensor-sized
        buffer (the out-of-place subtraction took 8.9 of the 70 s of a profiled one-worker large-v3 ties merge
        at T = 10; with this and the in-place selection of ``select.kth_largest`` that merge went from 64 s
        to 54 s). On other devices W travels in its stored dtype (half the bytes for fp16) and the
        subtraction widens it, exactly.
        """
        w, fresh = self._read(ckpt, name, rows, widen=self.device.type == "cpu")
        w = view(w)
        return w.sub_(base) if fresh and w.dtype == base.dtype else torch.sub(w, base)

    def _read(self, ckpt: Checkpoint, name: str, rows: tuple[int, int] | None, widen: bool) -> tuple[Tensor, bool]:
        """(the tensor as :meth:`read` gives it, whether it is a new tensor this call owns: a conversion's copy)."""
        t = ckpt.get(name) if rows is None else ckpt.get_range(name, *rows)
        finite(t, name, ckpt.label)
        if not widen and t.is_floating_point() and torch.promote_types(t.dtype, self.dtype) == self.dtype:
            out = t.to(device=self.device, non_blocking=True)
        else:
            out = t.to(device=self.device, dtype=self.dtype, non_blocking=True)
        return out, out is not t and out.untyped_storage().data_ptr() != t.untyped_storage().data_ptr()

    def factor_rank(self, name: str) -> int | None:
        """R = sum_t r_t when every input gives tensor ``name`` as LoRA factors (rank 0 where an adapter leaves
        it alone), else None (a full fine-tune or task vector among the inputs, a bias or a saved copy)."""
        total = 0
        for src in self.sources:
            f = src.lora_factors(name)
            if f is None:
                return None
            total += f.rank
        return total


def working_set(T: int, numel: int, dtype: torch.dtype, per_task: int = FULL_SET[0], fixed: int = FULL_SET[1]) -> int:
    """Bytes one merge of ``numel`` elements per input may hold at once, in the compute dtype.

    The budget rule of the engine (chunk sizes, batches, work in flight) and of ``--dry-run``: the T inputs
    as read, the T upcast copies the :class:`Operands` cache keeps (tau_t or W_t), a stack of T for the
    algorithms that take one, and six tensor-sized temporaries (W_0, sums, masks, the result): (3T + 6) x
    numel elements. A ``stats`` algorithm's statistics phase may declare a smaller count
    (``per_task`` T + ``fixed``; the registry's ``stats_set``).
    """
    return (per_task * T + fixed) * numel * (torch.finfo(dtype).bits // 8)


def draw_seed(seed: int, name: str, t: int) -> int:
    """The DARE generator seed of (task t, tensor name): the first 8 bytes of SHA-256("{seed}:{name}:{t}")."""
    digest = hashlib.sha256(f"{seed}:{name}:{t}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class Draws:
    """Uniform draws for DARE masks, consumed in row order across the chunks of one pass over a tensor.

    Draws come from a CPU ``torch.Generator`` per (seed, tensor, task), so they are the same on every
    device, thread count and chunking.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._gens: dict[tuple[int, int], torch.Generator] = {}

    def next(self, seed: int, t: int, shape: tuple[int, ...]) -> Tensor:
        g = self._gens.get((seed, t))
        if g is None:
            g = self._gens[(seed, t)] = torch.Generator().manual_seed(draw_seed(seed, self.name, t))
        return torch.rand(shape, generator=g, dtype=torch.float32)


class Operands:
    """One tensor (or rows ``rows`` of it) across the base and the T tasks.

    Attributes:
        name: canonical tensor name.
        cls: its policy class (``svd``, ``svd-flat``, ``mean``).
        full_shape: the whole tensor's shape; ``shape`` is this chunk's.
        T, weights: task count and per-task weights w_t.
        scope_numel: elements the algorithm's statistics run over (this tensor, or the model for scope=model).
        memo: scratch space kept across parameter combinations of a sweep (same tensor).
    """

    def __init__(self, inputs: Inputs, name: str, cls: str, *, rows: tuple[int, int] | None = None,
                 cache: bool = True, draws: Draws | None = None, scope_numel: int | None = None,
                 memo: dict[Any, Any] | None = None, matrix: bool = False) -> None:
        self.inputs = inputs
        self.name = name
        self.cls = cls
        info = inputs.reference.infos[name]
        self.full_shape = info.shape
        self.rows = rows
        self.shape = info.shape if rows is None else (rows[1] - rows[0], *info.shape[1:])
        self.numel = math.prod(self.shape)
        self.scope_numel = scope_numel if scope_numel is not None else math.prod(info.shape)
        self.T = inputs.T
        self.weights = list(inputs.weights)
        self.dtype = inputs.dtype
        self.device = inputs.device
        self.cache = cache
        self.memo = memo if memo is not None else {}
        self.matrix = matrix  # svd-flat: present N-D tensors as (shape[0], rest)
        self._draws = draws or Draws(name)
        self._cache: dict[Any, Tensor] = {}

    @property
    def matrix_shape(self) -> tuple[int, int]:
        """(m, n) of the matrix the matrix rules see: ``shape``, or (shape[0], rest) for svd-flat."""
        return self.shape[0], math.prod(self.shape[1:])

    def _view(self, t: Tensor) -> Tensor:
        return t.reshape(t.shape[0], -1) if self.matrix else t

    def cached(self, key: Any, make: Any) -> Tensor:
        """``make()``, computed once per chunk (when caching is on): for values several rules share."""
        return self._get(("user", key), make)

    def _get(self, key: Any, make: Any) -> Tensor:
        if key in self._cache:
            return self._cache[key]
        value = make()
        if self.cache:
            self._cache[key] = value
        return value

    @property
    def has_base(self) -> bool:
        return self.inputs.base is not None

    def base(self) -> Tensor:
        """W_0 in the compute dtype."""
        if self.inputs.base is None:
            raise UsageError("this algorithm needs the base model", subject="--base", hint="pass --base BASE")
        base = self.inputs.base
        return self._get("base", lambda: self._view(self.inputs.read(base, self.name, self.rows)))

    def tau(self, t: int) -> Tensor:
        """tau_t = W_t - W_0 (read directly from a task vector input)."""
        def make() -> Tensor:
            src = self.inputs.sources[t]
            if self.inputs.is_taskvec[t]:
                return self._view(self.inputs.read(src, self.name, self.rows))
            return self.inputs.difference(src, self.name, self.rows, self.base(), self._view)  # W_t - W_0

        return self._get(("tau", t), make)

    def theta(self, t: int) -> Tensor:
        """W_t, the task's full weights (W_0 + tau_t for a task vector input)."""
        def make() -> Tensor:
            src = self.inputs.sources[t]
            raw = self._view(self.inputs.read(src, self.name, self.rows))
            return self.base() + raw if self.inputs.is_taskvec[t] else raw

        return self._get(("theta", t), make)

    def taus(self) -> Tensor:
        """All tau_t stacked along a new first dimension: shape (T, *shape)."""
        return torch.stack([self.tau(t) for t in range(self.T)])

    def thetas(self) -> Tensor:
        return torch.stack([self.theta(t) for t in range(self.T)])

    def weighted_sum(self) -> Tensor:
        """sum_t w_t tau_t, one task at a time (a new tensor: the cached task vectors are left as they are)."""
        out = self.weights[0] * self.tau(0)
        for t in range(1, self.T):
            out.add_(self.tau(t), alpha=self.weights[t])
        return out

    def factors(self) -> tuple[list[Tensor], list[Tensor]] | None:
        """(B'_t, A_t) with w_t tau_t = B'_t A_t (the weight and the LoRA scale folded into B'_t, m x r_t; A_t
        r_t x n), in the compute dtype on the compute device, when every task gives this matrix as LoRA
        factors (docs/algorithms.md section 6.5); None otherwise, or for a chunk of rows."""
        if self.rows is not None:
            return None
        bs, as_ = [], []
        for t, src in enumerate(self.inputs.sources):
            f = src.lora_factors(self.name)
            if f is None:
                return None
            b = finite(f.b, self.name, src.label).to(device=self.device, dtype=self.dtype)
            bs.append((self.weights[t] * f.scale) * b)
            as_.append(finite(f.a, self.name, src.label).to(device=self.device, dtype=self.dtype))
        return bs, as_

    def weight_tensor(self) -> Tensor:
        """w_t shaped (T, 1, ..., 1) to broadcast over a stack."""
        return torch.tensor(self.weights, dtype=self.dtype, device=self.device).reshape(-1, *([1] * len(self.shape)))

    def uniform(self, seed: int, t: int) -> Tensor:
        """u ~ U[0,1) per element of this chunk for task t (DARE), the same on every device and chunking."""
        return self._get(("u", seed, t), lambda: self._draws.next(seed, t, self.shape).to(self.device))

    def rows_view(self, rows: tuple[int, int], draws: Draws) -> Operands:
        """Rows ``rows`` of this whole tensor as a chunk that shares what this one has cached (as slices, no
        copies) and reads the rest; ``draws`` is shared by the chunks of one pass, taken in row order."""
        chunk = Operands(self.inputs, self.name, self.cls, rows=rows, draws=draws, scope_numel=self.scope_numel,
                         matrix=self.matrix)
        n = self.shape[0] if self.shape else 1
        for key, value in self._cache.items():
            if value.dim() and value.shape[0] == n and value.numel() == self.numel:
                chunk._cache[key] = value[rows[0]:rows[1]]
        return chunk

    def release(self) -> None:
        self._cache.clear()
