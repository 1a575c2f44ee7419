"""The streaming merge: for each tensor name, read it from every input, merge, write to every output, release.

Peak memory is one tensor's working set (its inputs in the compute dtype, the algorithm's temporaries and
the output buffers), whatever T is: tensors whose working set exceeds the budget are streamed in row
chunks, with the statistics element-wise algorithms need computed exactly in extra passes
(:mod:`asrmerge.merge.stream`). ``scope=model`` statistics stream over the whole model the same way
before the merge pass. On the CPU an element-wise rule runs over cache-sized row blocks (``block_rows``)
even where the tensor fits. A parameter sweep computes each decomposition once and writes every lambda.

Where every input gives a matrix as LoRA factors (adapters), the subspace algorithms with a core rule compute
it on the small cores of the factors and lift the result (docs/algorithms.md section 6.5), without forming
the dense task vectors; ``plan.merged_in_core`` records those tensors.

Outputs: W* = W_0 + lambda * s * tau* for task-vector algorithms (s: the ``--lam`` group factor),
W* itself for parameter-space algorithms (W_0 + s (W* - W_0) when s != 1), W_0 bit for bit for class
``base``. Non-finite results are errors naming the tensor.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, Protocol

import torch

from asrmerge.errors import AsrmergeError
from asrmerge.io.tensors import all_finite, torch_dtype
from asrmerge.io.writer import CheckpointWriter
from asrmerge.merge.operands import Draws, Operands, working_set
from asrmerge.merge.policy import MATRIX_CLASSES
from asrmerge.merge.stream import Accumulator, Rule
from asrmerge.progress import NoProgress, Progress

if TYPE_CHECKING:
    from torch import Tensor

    from asrmerge.merge.plan import Plan

Warn = Callable[[str], None]
Piece = tuple[tuple[int, int] | None, "Tensor", "Tensor | None"]  # rows, merged values, W_0 rows


def _rows(shape: tuple[int, ...]) -> int:
    return shape[0] if shape else 1


def chunk_rows(plan: Plan, shape: tuple[int, ...]) -> int:
    """Rows per chunk so that one chunk's working set stays within the budget."""
    per_row = working_set(plan.inputs.T, max(1, math.prod(shape) // max(1, _rows(shape))), plan.inputs.dtype)
    return max(1, plan.budget // per_row)


BLOCK_BYTES = 16 << 20
"""Working set of one cache block of an element-wise rule on the CPU (working_set's count); see block_rows."""


def block_rows(plan: Plan, shape: tuple[int, ...]) -> int:
    """Rows per block an element-wise rule runs over on the CPU, whether or not the tensor fits the budget.

    A rule's passes over T task-sized temporaries then stay in the processor's cache instead of streaming
    through main memory on every pass; the values are those of the whole-tensor evaluation, bit for bit
    (rules are element-wise, and DARE's draws are the same in any row chunking). On other devices, where
    large kernels pay, the whole tensor (or the budget's chunk) is one block.
    """
    if plan.inputs.device.type != "cpu":
        return _rows(shape)
    per_row = working_set(plan.inputs.T, max(1, math.prod(shape) // max(1, _rows(shape))), plan.inputs.dtype)
    return max(1, BLOCK_BYTES // per_row)


def _chunks(plan: Plan, name: str, step: int) -> Iterator[tuple[int, int]]:
    n = _rows(plan.inputs.reference.infos[name].shape)
    for r0 in range(0, n, step):
        yield r0, min(n, r0 + step)


def _run_requests(gen: Any, feeds: Callable[[list[Accumulator]], None], first: Any, dtype: torch.dtype,
                  streamed: bool) -> Any:
    """Drive an algorithm generator: evaluate each yielded request list with ``feeds``; return its rule."""
    reqs = first
    while True:
        accs = [Accumulator(r, dtype, streamed) for r in reqs]
        while not all(a.done for a in accs):
            live = [a for a in accs if not a.done]
            for a in live:
                a.start_pass()
            feeds(live)
            for a in live:
                a.end_pass()
        try:
            reqs = gen.send([a.result for a in accs])
        except StopIteration as stop:
            return stop.value


def _fits(plan: Plan, shape: tuple[int, ...]) -> bool:
    return chunk_rows(plan, shape) >= _rows(shape)


def _pieces(plan: Plan, name: str, cls: str, combo: dict[str, Any], memo: dict[Any, Any],
            model_rule: Rule | None) -> tuple[Iterator[Piece], str]:
    """The merged values of one tensor under one parameter combination, chunk by chunk, and their kind.

    Kind: ``update`` (tau*, to scale by lambda), ``update-fixed`` (tau* added without lambda) or ``weights``
    (W* itself). Dispatch on what the algorithm declared it returns (``registry.algorithm``).
    """
    algo = plan.algo
    kind = "model" if algo.space == "params" else "update"
    if algo.space == "subspace":
        if cls in MATRIX_CLASSES:
            return _matrix_pieces(plan, name, cls, combo, memo), kind
        fixed = combo.get("mean_scale") == "1"
        return _stream_rule(plan, name, cls, class_mean), "update-fixed" if fixed else kind
    if model_rule is not None:
        return _stream_rule(plan, name, cls, model_rule), kind
    tasks = Operands(plan.inputs, name, cls, memo=memo, cache=plan.in_memory(name))
    if algo.returns == "rule":
        rule = algo.call(tasks, combo)
    else:
        rule = _rule_from_stats(plan, name, cls, tasks, combo, memo)
    return _rule_pieces(plan, name, cls, tasks, rule), kind


def class_mean(c: Operands) -> Tensor:
    """tau* of a class-mean tensor under a subspace algorithm: (1/T) sum_t w_t tau_t (docs/algorithms.md section 2)."""
    return (c.weight_tensor() * c.taus()).sum(0) / c.T


def _matrix_pieces(plan: Plan, name: str, cls: str, combo: dict[str, Any], memo: dict[Any, Any]) -> Iterator[Piece]:
    """A ``matrix`` algorithm's tau* of one whole matrix (class svd, or svd-flat reshaped)."""
    inputs = plan.inputs
    shape = inputs.reference.infos[name].shape
    tasks = Operands(inputs, name, cls, memo=memo, matrix=cls == "svd-flat", cache=_fits(plan, shape))
    value = in_core_space(plan, tasks, combo)
    if value is None:
        value = plan.algo.call(tasks, combo)
    yield None, value.reshape(shape), tasks.base().reshape(shape) if inputs.base is not None else None
    tasks.release()


def in_core_space(plan: Plan, tasks: Operands, combo: dict[str, Any]) -> Tensor | None:
    """tau* of a whole matrix computed on the cores of its LoRA factors and lifted (docs/algorithms.md section
    6.5), or None where the algorithm's matrix rule must run on the dense task vectors instead.

    The bases and cores are kept in the tensor's memo for the other combinations of a sweep. With R = 0 (no
    adapter changes the matrix) every task vector is zero, and so is tau*.
    """
    name = tasks.name
    if plan.core_rank(name) is None or not plan.algo.in_core(combo):
        return None
    from asrmerge.linalg.core import CoreSpace

    shape = tasks.full_shape
    m, n = shape[0], math.prod(shape[1:])
    if "core" not in tasks.memo:
        factors = tasks.factors()
        assert factors is not None  # plan.core_rank checked every input
        tasks.memo["core"] = CoreSpace.of(*factors, (m, n)) if plan.core_rank(name) else None
    space: CoreSpace | None = tasks.memo["core"]
    plan.merged_in_core.add(name)
    if space is None:
        return torch.zeros((m, n), dtype=tasks.dtype, device=tasks.device)
    result: Tensor = space.lift(plan.algo.call_core(space, combo))
    return result


def _rule_from_stats(plan: Plan, name: str, cls: str, tasks: Operands, combo: dict[str, Any],
                     memo: dict[Any, Any]) -> Rule:
    """Run a ``stats`` algorithm: answer its statistic requests over the tensor (in memory, or in streaming passes
    over row chunks when it does not fit), and return the rule it gives back."""
    inputs = plan.inputs
    gen = plan.algo.call(tasks, combo)
    try:
        first = next(gen)
    except StopIteration as stop:  # needed no statistics after all
        rule: Rule = stop.value
        return rule
    if tasks.cache:  # the tensor fits: every request over the one chunk in memory
        def feeds(accs: list[Accumulator]) -> None:
            for a in accs:
                a.feed(tasks)
        return _run_requests(gen, feeds, first, inputs.dtype, streamed=False)
    step = chunk_rows(plan, inputs.reference.infos[name].shape)

    def feeds_streamed(accs: list[Accumulator]) -> None:
        draws = Draws(name)
        for rows in _chunks(plan, name, step):
            c = Operands(inputs, name, cls, rows=rows, draws=draws, memo=memo, cache=True)
            for a in accs:
                a.feed(c)
    return _run_requests(gen, feeds_streamed, first, inputs.dtype, streamed=True)


def _rule_pieces(plan: Plan, name: str, cls: str, tasks: Operands, rule: Rule) -> Iterator[Piece]:
    """``rule`` over ``tasks``: over the whole tensor where it fits and is one block, else in row chunks."""
    yield from _stream_rule(plan, name, cls, rule, tasks)
    tasks.release()


def _stream_rule(plan: Plan, name: str, cls: str, rule: Rule, tasks: Operands | None = None) -> Iterator[Piece]:
    """``rule`` over the tensor in row chunks: the budget's, or the CPU's cache blocks (block_rows).

    ``tasks``: the whole tensor's operands, whose cached values (an in-memory statistics phase's task
    vectors) the chunks slice instead of reading again, on the CPU, where the chunks are small blocks; on
    other devices they are released first, since a chunk may take the whole budget.
    """
    inputs = plan.inputs
    shape = inputs.reference.infos[name].shape
    step = min(chunk_rows(plan, shape), block_rows(plan, shape))
    if step >= _rows(shape):
        c = tasks if tasks is not None else Operands(inputs, name, cls)
        yield None, rule(c), c.base() if inputs.base is not None else None
        return
    if tasks is not None and inputs.device.type != "cpu":
        tasks.release()
    draws = Draws(name)
    for rows in _chunks(plan, name, step):
        if tasks is not None:
            c = tasks.rows_view(rows, draws)
        else:
            c = Operands(inputs, name, cls, rows=rows, draws=draws, cache=True)
        yield rows, rule(c), c.base() if inputs.base is not None else None


def _finalize(value: Tensor, base: Tensor | None, kind: str, lam: float | None, scale: float) -> Tensor:
    if kind == "model":
        return value if scale == 1.0 or base is None else torch.add(base, value - base, alpha=scale)
    factor = scale * (1.0 if kind == "update-fixed" or lam is None else lam)
    assert base is not None
    return torch.add(base, value, alpha=factor)


def merge_tensor(plan: Plan, name: str, model_rules: dict[tuple[int, str], Any],
                 batched: dict[tuple[int, str], Tensor] | None = None) -> list[Tensor]:
    """Every output's merged tensor ``name`` (in the outputs' order), cast to its output dtype.

    ``batched`` holds tau* already computed by a batched call, by (combination index, name).
    """
    inputs = plan.inputs
    info = inputs.reference.infos[name]
    out_dtype = torch_dtype(next(i.dtype for i in plan.out_infos if i.name == name))
    cls = plan.classes[name]
    if cls == "base":
        assert inputs.base is not None
        w0 = inputs.base.get(name).to(out_dtype)
        return [w0] * len(plan.outputs)
    scale = plan.lam_scale(name)
    memo: dict[Any, Any] = {}
    results: list[Tensor | None] = [None] * len(plan.outputs)
    for ci, combo in enumerate(plan.combos):
        mine = [(oi, o) for oi, o in enumerate(plan.outputs) if o.combo is combo]
        bufs: dict[int, Tensor] = {}
        if batched is not None and (ci, name) in batched:
            kind = "update"
            pieces: Iterator[Piece] = iter([(None, batched[(ci, name)].reshape(info.shape),
                                             Operands(inputs, name, cls).base())])
        else:
            pieces, kind = _pieces(plan, name, cls, combo, memo, model_rules.get((ci, name)))
        for rows, value, base in pieces:
            for oi, out in mine:
                merged = _finalize(value, base, kind, out.lam, scale).to("cpu", out_dtype)
                if not all_finite(merged):
                    raise AsrmergeError(f"tensor {name}: the merge produced NaN or Inf in {out_dtype}",
                                        subject=plan.algo.name,
                                        hint="check the inputs and parameters (a weight sum of 0? an extreme lam? "
                                             "values beyond the output dtype's range?)")
                if rows is None:  # the whole tensor at once: no copy
                    bufs[oi] = merged.reshape(info.shape)
                    continue
                if oi not in bufs:
                    bufs[oi] = torch.empty(info.shape, dtype=out_dtype)
                bufs[oi][rows[0]:rows[1]].copy_(merged.reshape(rows[1] - rows[0], *info.shape[1:]))
        for oi, _ in mine:
            results[oi] = bufs[oi]
    return [r for r in results if r is not None]


def model_scope_rules(plan: Plan) -> dict[tuple[int, str], Any]:
    """For ``scope=model`` combinations: each tensor's rule, after statistics streamed over the whole model."""
    rules: dict[tuple[int, str], Any] = {}
    inputs = plan.inputs
    names = [n for n, c in plan.classes.items() if c != "base"]
    total = sum(inputs.reference.infos[n].numel for n in names)
    for ci, combo in enumerate(plan.combos):
        if combo.get("scope") != "model" or plan.algo.returns != "stats":
            continue
        gens = {n: plan.algo.call(Operands(inputs, n, plan.classes[n], scope_numel=total, cache=False), combo)
                for n in names}
        pending = {}
        for n, g in gens.items():
            try:
                pending[n] = next(g)
            except StopIteration as stop:
                rules[(ci, n)] = stop.value
        while pending:
            first = next(iter(pending.values()))
            shared = [None if r.per_tensor else Accumulator(r, inputs.dtype, streamed=True) for r in first]
            own = {n: [Accumulator(r, inputs.dtype, streamed=True) if r.per_tensor else None for r in reqs]
                   for n, reqs in pending.items()}
            live = [a for a in shared if a is not None] + [a for accs in own.values() for a in accs if a is not None]
            while not all(a.done for a in live):
                active = [a for a in live if not a.done]
                for a in active:
                    a.start_pass()
                for n, reqs in pending.items():
                    draws = Draws(n)
                    for rows in _chunks(plan, n, chunk_rows(plan, inputs.reference.infos[n].shape)):
                        c = Operands(inputs, n, plan.classes[n], rows=rows, draws=draws, cache=True, scope_numel=total)
                        for j, r in enumerate(reqs):
                            acc = shared[j] or own[n][j]
                            assert acc is not None
                            if not acc.done:
                                acc.feed(c, r.fn)  # the same statistic, through this tensor's closure
                for a in active:
                    a.end_pass()
            nxt = {}
            for n, g in gens.items():
                if n not in pending:
                    continue
                results = [(shared[j] or own[n][j]).result for j in range(len(first))]  # type: ignore[union-attr]
                try:
                    nxt[n] = g.send(results)
                except StopIteration as stop:
                    rules[(ci, n)] = stop.value
            pending = nxt
    return rules


class Sink(Protocol):
    def write(self, name: str, tensor: Tensor) -> None: ...


def execute(plan: Plan, *, progress: Progress | None = None, warn: Warn | None = None,
        sinks: Sequence[Sink] | None = None) -> None:
    """Execute ``plan``: write every output, atomically (all of them, or none on failure).

    Args:
        plan: from :func:`asrmerge.merge.plan.make_plan`.
        progress: receives one advance per tensor.
        warn: receives warnings (one line each).
        sinks: receivers of each output's tensors instead of files (the Python API), in outputs' order.
    """
    progress = progress or NoProgress()
    inputs = plan.inputs
    names = list(inputs.reference.infos)
    support = inputs.reference.support_files() or next(
        (f for f in (s.support_files() for s in inputs.sources) if f), {})
    if warn is not None and inputs.base is not None:
        _warn_frozen_positions(plan, warn)
    progress.start(len(names), "statistics")
    model_rules = model_scope_rules(plan)
    with ExitStack() as stack:
        writers: list[Sink] = list(sinks) if sinks is not None else [
            stack.enter_context(CheckpointWriter(o.path, plan.out_infos, metadata=o.metadata,
                                                 shard_size=plan.shard_size, support=support, force=plan.force,
                                                 inputs=plan.specs))
            for o in plan.outputs]
        progress.start(len(names), f"merge {plan.algo.name}")
        for name, tensors in _ordered(plan, names, model_rules):
            for w, t in zip(writers, tensors, strict=True):
                w.write(name, t)
            progress.advance(name)


def _ordered(plan: Plan, names: list[str], model_rules: dict[tuple[int, str], Any]) -> Iterator[tuple[str, list[Tensor]]]:
    """(name, merged tensors) in ``names`` order, merged on ``plan.workers`` threads.

    Several tensors are merged at once (LAPACK and torch kernels release the GIL, and each worker reads
    its own inputs, so reading overlaps computing); ``LOOKAHEAD`` tensors per worker are submitted ahead of
    the one written next, within ``IN_FLIGHT`` memory budgets, so peak memory does not grow with the number
    of tensors or tasks.
    """
    workers = plan.workers
    if plan.batch > 1 and plan.algo.batched is not None:
        yield from _batched(plan, names, model_rules)
        return
    if workers <= 1:
        for name in names:
            yield name, merge_tensor(plan, name, model_rules)
        return
    from collections import deque
    from concurrent.futures import Future, ThreadPoolExecutor

    from asrmerge.merge.plan import IN_FLIGHT, LOOKAHEAD

    cap = IN_FLIGHT * plan.budget
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one core per worker: no oversubscription
    pool = ThreadPoolExecutor(workers, thread_name_prefix="asrmerge")
    pending: deque[tuple[str, Future[list[Tensor]], int]] = deque()
    inflight = 0
    try:
        for name in names:
            cost = plan.working_set(name)
            while pending and (len(pending) > LOOKAHEAD * workers or inflight + cost > cap):
                done, fut, c = pending.popleft()
                yield done, fut.result()
                inflight -= c
            pending.append((name, pool.submit(merge_tensor, plan, name, model_rules), cost))
            inflight += cost
        while pending:
            done, fut, c = pending.popleft()
            yield done, fut.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(threads)


def batches(plan: Plan, names: list[str]) -> list[list[str]]:
    """Units of work in ``names`` order: same-shape ``svd`` matrices grouped (up to ``plan.batch`` each, and as
    many as twice the memory budget holds), looking ahead a few batches; every other tensor alone."""
    infos = plan.inputs.reference.infos
    lookahead = 4 * plan.batch
    taken: set[str] = set()
    units = []
    for i, name in enumerate(names):
        if name in taken:
            continue
        taken.add(name)
        unit = [name]
        if plan.classes[name] == "svd" and plan.core_rank(name) is None:  # core-space matrices go alone
            shape = infos[name].shape
            per = working_set(plan.inputs.T, infos[name].numel, plan.inputs.dtype)
            size = max(1, min(plan.batch, (2 * plan.budget) // max(per, 1)))
            for other in names[i + 1:i + 1 + lookahead]:
                if len(unit) >= size:
                    break
                if (other not in taken and plan.classes[other] == "svd" and infos[other].shape == shape
                        and plan.core_rank(other) is None):
                    unit.append(other)
                    taken.add(other)
        units.append(unit)
    return units


def _batched(plan: Plan, names: list[str], model_rules: dict[tuple[int, str], Any]) -> Iterator[tuple[str, list[Tensor]]]:
    """Like :func:`_ordered`, computing each batch of same-shape matrices in one batched call per stage."""
    ready: dict[str, list[Tensor]] = {}
    first_of = {unit[0]: unit for unit in batches(plan, names)}
    for name in names:
        unit = first_of.get(name)
        if unit is not None and len(unit) > 1:
            values: dict[tuple[int, str], Tensor] = {}
            for ci, combo in enumerate(plan.combos):
                tasks = [Operands(plan.inputs, n, "svd") for n in unit]
                out = plan.algo.call_batched(tasks, combo)
                if out is not None:
                    values.update({(ci, n): v for n, v in zip(unit, out, strict=True)})
            for n in unit:
                ready[n] = merge_tensor(plan, n, model_rules, batched=values)
        if name not in ready:
            ready[name] = merge_tensor(plan, name, model_rules)
        yield name, ready.pop(name)


def _warn_frozen_positions(plan: Plan, warn: Warn) -> None:
    name = "model.encoder.embed_positions.weight"
    if name not in plan.classes:
        return
    tasks = Operands(plan.inputs, name, plan.classes[name], cache=False)
    for t in range(tasks.T):
        if bool(tasks.tau(t).any()):
            warn(f"{plan.inputs.sources[t].label}: {name} differs from the base (Whisper's encoder positions are a "
                 "frozen sinusoid); it is merged like any other tensor")
            return
