"""Statistics an algorithm asks for before it can merge element-wise, computed exactly over a stream.

Element-wise algorithms that need whole-tensor (or whole-model, ``scope=model``) statistics are written
as generators: they ``yield`` a list of requests and receive the list of results, possibly several times,
then ``return`` a rule mapping a chunk (:class:`asrmerge.merge.operands.Operands`) to its merged values::

    def ties(tasks, *, density):
        k = max(1, int(density * tasks.scope_numel))
        thr = yield [KthLargest(lambda c, t=t: c.tau(t).abs(), k) for t in range(tasks.T)]
        return lambda c: ...  # uses thr

The engine evaluates requests over every chunk of the scope: in memory when the tensor fits, otherwise
in streaming passes (exact radix selection for order statistics), so memory stays flat in T and in size.
Plain algorithms return a tensor (whole-tensor result) or a rule directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from asrmerge.linalg.select import RadixSelect, kth_largest

if TYPE_CHECKING:
    from torch import Tensor

    from asrmerge.merge.operands import Operands

ValueFn = Callable[["Operands"], "Tensor"]
Rule = Callable[["Operands"], "Tensor"]


@dataclass
class KthLargest:
    """The k-th largest of ``fn(chunk)``'s elements over the scope (1-based, repeats counted)."""

    fn: ValueFn
    k: int
    per_tensor: bool = False  # with scope=model: over this tensor only
    fresh: bool = False  # fn returns a new tensor on every call, which the selection may reorder in place


@dataclass
class Total:
    """The sum over chunks of ``fn(chunk)`` (any shape, e.g. a T x T Gram matrix)."""

    fn: ValueFn
    per_tensor: bool = False


@dataclass
class Extreme:
    """The max (``largest=True``) or min of ``fn(chunk)``'s elements over the scope."""

    fn: ValueFn
    largest: bool = True
    per_tensor: bool = False


Request = KthLargest | Total | Extreme


class Accumulator:
    """Evaluates one request across chunks; ``streamed`` order statistics take several sweeps (radix), in-memory
    ones (``streamed=False``) take the scope as one chunk and are selected as it arrives, so that a list of
    requests holds one request's values at a time."""

    def __init__(self, req: Request, dtype: torch.dtype, streamed: bool) -> None:
        self.req = req
        self.result: Any = None
        self._radix = RadixSelect(req.k, dtype) if isinstance(req, KthLargest) and streamed else None
        self._finished = False
        self._acc: Any = None

    @property
    def done(self) -> bool:
        return self._radix.done if self._radix is not None else self._finished

    def start_pass(self) -> None:
        if self._radix is not None:
            self._radix.start_pass()

    def feed(self, chunk: Operands, fn: ValueFn | None = None) -> None:
        """Add ``chunk``'s values (``fn`` overrides the request's function: same statistic, another tensor)."""
        v = (fn or self.req.fn)(chunk)
        if self._radix is not None:
            self._radix.feed(v)
        elif isinstance(self.req, KthLargest):  # in memory the scope is one chunk: select now, keep one float
            if self._acc is not None:
                raise ValueError("an in-memory order statistic takes its scope as one chunk")
            self._acc = kth_largest(v, self.req.k, overwrite=self.req.fresh)
        elif isinstance(self.req, Total):
            v = v.to(torch.float64)
            self._acc = v if self._acc is None else self._acc + v
        elif v.numel():
            m = float(v.max() if self.req.largest else v.min())
            self._acc = m if self._acc is None else (max(self._acc, m) if self.req.largest else min(self._acc, m))

    def end_pass(self) -> None:
        if self._radix is not None:
            self._radix.end_pass()
            if self._radix.done:
                self.result = self._radix.value
            return
        if isinstance(self.req, KthLargest):
            self.result = self._acc
        elif isinstance(self.req, Total):
            self.result = self._acc.cpu() if self._acc is not None else torch.zeros((), dtype=torch.float64)
        else:
            self.result = self._acc if self._acc is not None else float("nan")
        self._acc = None
        self._finished = True
