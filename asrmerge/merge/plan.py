"""A merge before it runs: parameters checked, inputs opened and matched, tensors classified, outputs named.

Everything here reads headers (and the few rows a fingerprint needs), never whole tensors, so every usage
error and incompatibility is reported before the first byte of arithmetic, and ``--dry-run`` can say what
a merge will do and cost.
"""

from __future__ import annotations

import itertools
import math
import os
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import torch

from asrmerge.device import KERNELS
from asrmerge.device import resolve as resolve_device
from asrmerge.errors import InputError, UsageError
from asrmerge.inputs import check_stdin, open_base, open_input, require_base, require_from, require_together
from asrmerge.io.checkpoint import Checkpoint, MemoryBackend
from asrmerge.io.metadata import provenance
from asrmerge.io.tensors import TensorInfo
from asrmerge.io.writer import check_destination
from asrmerge.linalg.core import worthwhile
from asrmerge.linalg.gram import eigh_units, gram_products, uses_gram
from asrmerge.linalg.newton_schulz import uses_spectral
from asrmerge.merge import registry
from asrmerge.merge.operands import Inputs, working_set
from asrmerge.merge.policy import MATRIX_CLASSES, Policy, group_scale, parse_rules

DEFAULT_BUDGET = 512 << 20  # bytes of working set per tensor before the engine streams it in chunks
IN_FLIGHT = 4
"""Budgets of working set the engine's workers may hold among the tensors submitted and not yet written."""
LOOKAHEAD = 4
"""Tensors per worker the engine submits ahead of the one it writes next.

Outputs are written in order, so a worker that finishes a small tensor while a large one ahead of it is still
running takes the next only if it was submitted. With one tensor ahead per worker and two budgets in flight,
32 large-v3 matrices (boosted-tsvm, T = 10, two workers) kept 1.3 of the 2 cores busy and took 102 s; with
these values, 2.0 cores and 77 s. Tensors waiting to start hold no memory, and finished ones only their
outputs, so the peak stays that of ``workers`` tensors at once."""


@dataclass
class MergeSpec:
    """Everything ``asrmerge merge`` was asked to do, as given (strings are parsed by :func:`make_plan`)."""

    algo: str
    inputs: list[str]
    base: str | None = None
    params: list[str] = field(default_factory=list)  # "name=value[,value...]"
    weights: list[float] | None = None
    lam_rules: list[tuple[str, float]] = field(default_factory=list)
    policy: str | None = None
    output: str = "-"
    device: str = "auto"
    compute_dtype: torch.dtype = torch.float32
    out_dtype: str | None = None
    shard_size: int | None = None
    budget: int = DEFAULT_BUDGET
    command: str = ""
    check_outputs: bool = True  # refuse unwritable destinations now (off for --dry-run and the Python API)
    workers: int = 0  # tensors merged at once; 0: one per CPU core on the CPU, 1 on CUDA
    batch: int = 0  # same-shape matrices per batched call; 0: 1 on the CPU, 64 on CUDA
    tau: bool = False  # --tau: input files without asrmerge metadata are task vectors
    force: bool = False  # replace what is not an earlier output at -o (see asrmerge.io.writer)
    strict_inputs: bool = False  # the same checkpoint given twice is an error, not a warning
    core_space: bool = True  # LoRA inputs' matrices merged on their cores where exact (False: always in full space)


@dataclass
class Output:
    """One output of a merge (several with a parameter sweep)."""

    path: str
    combo: dict[str, Any]  # algorithm parameters except lam, fully resolved
    lam: float | None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class Plan:
    algo: registry.Algorithm
    inputs: Inputs
    policy: Policy
    classes: dict[str, str]
    combos: list[dict[str, Any]]
    lams: list[float | None]
    outputs: list[Output]
    out_infos: list[TensorInfo]
    lam_rules: list[tuple[str, float]]
    budget: int
    shard_size: int | None
    stack: ExitStack
    workers: int = 1
    batch: int = 1
    force: bool = False
    specs: list[str] = field(default_factory=list)  # every input as given (base first), which -o must not overwrite
    warnings: list[str] = field(default_factory=list)  # for the caller to show, one line each
    core_space: bool = True
    merged_in_core: set[str] = field(default_factory=set)  # tensors the engine merged in core space (any output)
    _out_bytes: dict[str, int] = field(default_factory=dict, repr=False)
    _core_ranks: dict[str, int | None] = field(default_factory=dict, repr=False)

    def lam_scale(self, name: str) -> float:
        return group_scale(self.lam_rules, name)

    def working_set(self, name: str) -> int:
        """Bytes merging tensor ``name`` holds at most: its working set within the budget (the engine streams
        larger tensors in chunks), plus its output tensors."""
        info = self.inputs.reference.infos[name]
        if not self._out_bytes:
            self._out_bytes.update((i.name, i.nbytes) for i in self.out_infos)
        out = self._out_bytes[name] * len(self.outputs)
        return min(working_set(self.inputs.T, info.numel, self.inputs.dtype), self.budget) + out

    def in_memory(self, name: str) -> bool:
        """Whether tensor ``name``'s inputs are read once and held while it merges: its working set within the
        budget (for a ``stats`` algorithm, that of its statistics phase: the registry's ``stats_set``).
        Otherwise its statistics take streaming passes over row chunks."""
        info = self.inputs.reference.infos[name]
        counts = self.algo.stats_set if self.algo.returns == "stats" else registry.FULL_SET
        return working_set(self.inputs.T, info.numel, self.inputs.dtype, *counts) <= self.budget

    def core_rank(self, name: str) -> int | None:
        """R = sum_t r_t when matrix ``name`` is merged in the core space of the inputs' LoRA factors for some
        parameter combination (docs/algorithms.md section 6.5): a matrix class, an algorithm with a core rule
        exact for the combination, every input giving the matrix as factors, and R < min(m, n). Else None."""
        if name not in self._core_ranks:
            info = self.inputs.reference.infos[name]
            rank = None
            if (self.core_space and self.classes[name] in MATRIX_CLASSES and len(info.shape) >= 2
                    and any(self.algo.in_core(c) for c in self.combos)):
                rank = self.inputs.factor_rank(name)
                if rank is not None and not worthwhile((info.shape[0], math.prod(info.shape[1:])), rank):
                    rank = None
            self._core_ranks[name] = rank
        return self._core_ranks[name]

    def close(self) -> None:
        self.stack.close()


def split_param(item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name.strip():
        raise UsageError(f"{item!r} is not NAME=VALUE", subject="-p", hint="write e.g. -p lam=0.8 or -p lam=0.6,0.8,1.0")
    return name.strip(), value


def resolve_params(algo: registry.Algorithm, items: list[str], T: int) -> tuple[dict[str, list[Any]], str | None]:
    """Parsed values per parameter (lists: sweeps), defaults and run-time defaults filled in; also ``-p policy=...``."""
    values: dict[str, list[Any]] = {}
    policy = None
    for item in items:
        name, raw = split_param(item)
        if name == "policy":
            policy = raw
            continue
        if name in algo.fixed:
            raise UsageError(f"{algo.name} fixes {name}={algo.fixed[name]}", subject="-p",
                             hint="use the algorithm without the alias to choose it")
        param = algo.param(name)
        parts = [raw] if param.type is str and "," not in raw else raw.split(",")
        parsed = [param.parse(p) for p in parts if p.strip() != ""]
        if not parsed:
            raise UsageError(f"{name} has no value", subject="-p", hint=f"{name}: {param.doc}")
        values[name] = parsed
    for p in algo.params:
        if p.name not in values:
            if p.required:
                raise UsageError(f"{algo.name} needs -p {p.name}=VALUE", subject="-p", hint=p.doc)
            values[p.name] = [p.default]
        values[p.name] = [p.value_for(v, T) for v in values[p.name]]
    for name, fixed in algo.fixed.items():
        values[name] = [fixed]
    return values, policy


def output_paths(template: str, combos: list[dict[str, Any]], lams: list[float | None],
                 swept: list[str]) -> list[tuple[str, int, float | None]]:
    """(path, combo index, lam) per output; every swept parameter must appear in the template as {name}."""
    n = len(combos) * len(lams)
    if n > 1:
        if template == "-":
            raise UsageError(f"a sweep writes {n} outputs, not one stream", subject="-o",
                             hint="name them with the swept parameters, e.g. -o 'merged-{lam}/'")
        missing = [s for s in swept if "{" + s + "}" not in template]
        if missing:
            raise UsageError(f"the output name must contain {{{missing[0]}}} to tell the {n} outputs apart",
                             subject="-o", hint=f"e.g. -o 'merged-{{{missing[0]}}}/'")
    out = []
    for (ci, combo), lam in itertools.product(enumerate(combos), lams):
        fields = {**{k: registry.format_value(v) for k, v in combo.items()},
                  "lam": registry.format_value(lam) if lam is not None else ""}
        try:
            path = template.format(**fields) if "{" in template else template
        except (KeyError, IndexError, ValueError) as e:
            raise UsageError(f"{template!r}: unknown field {e}", subject="-o",
                             hint="fields are the algorithm's parameter names, e.g. {lam}") from e
        out.append((path, ci, lam))
    paths = [p for p, _, _ in out]
    if len(set(paths)) != len(paths):
        raise UsageError("two outputs of the sweep get the same name", subject="-o",
                         hint="put every swept parameter in the name")
    return out


def make_plan(spec: MergeSpec, *, opened: tuple[Checkpoint | None, list[Checkpoint]] | None = None) -> Plan:
    """Check ``spec`` against the registry and the inputs' headers; open everything for the merge.

    Args:
        spec: the request.
        opened: (base, inputs) already open (the Python API: state dicts, or files opened beside them); default:
            open ``spec.base`` and ``spec.inputs``.
    """
    algo = registry.get(spec.algo)
    if not spec.inputs:
        raise UsageError("no inputs", hint="usage: asrmerge merge --algo NAME [--base BASE] INPUT...")
    if len(spec.inputs) < algo.min_tasks:
        raise UsageError(f"{algo.name} needs at least {algo.min_tasks} inputs, got {len(spec.inputs)}",
                         hint="T = 1 is no merge for this algorithm" if algo.min_tasks == 2 else None)
    check_stdin([*spec.inputs, spec.base])
    values, policy_param = resolve_params(algo, spec.params, len(spec.inputs))
    if spec.weights is not None and len(spec.weights) != len(spec.inputs):
        raise UsageError(f"{len(spec.weights)} weights for {len(spec.inputs)} inputs", subject="--weights",
                         hint="give one weight per input, in order")
    policy_text = spec.policy if spec.policy is not None else policy_param
    policy = Policy(tuple(parse_rules(policy_text))) if policy_text else Policy()
    lams = values.pop("lam", [None])
    swept = [k for k, v in values.items() if len(v) > 1] + (["lam"] if len(lams) > 1 else [])
    combos = [dict(zip(values, c, strict=True)) for c in itertools.product(*values.values())]
    targets = output_paths(spec.output, combos, lams, swept)
    specs = [s for s in [spec.base, *spec.inputs] if s]
    if spec.check_outputs:
        for path, _, _ in targets:
            check_destination(path, force=spec.force, inputs=specs)
    device = resolve_device(spec.device or "auto", kinds=KERNELS)

    stack = ExitStack()
    try:
        if opened is not None:
            base, sources = opened
            if base is not None:
                require_base(base)
        else:
            base = open_base(spec.base, stack)
            sources = [open_input(s, stack, base, tau=spec.tau) for s in spec.inputs]
        is_tv = [s.kind == "taskvec" for s in sources]
        if base is None and any(is_tv):
            first = sources[is_tv.index(True)]
            raise UsageError("is a task vector: merging task vectors needs the base model", subject=first.label,
                             hint="pass --base BASE (the model the task vectors were taken from)")
        if base is None and algo.needs_base:
            raise UsageError(f"{algo.name} needs the base model", subject="--base", hint="pass --base BASE")
        ref = base if base is not None else sources[0]
        require_together(ref, sources)
        warnings = duplicates(base, sources, strict=spec.strict_inputs)
        if base is not None:
            for s in sources:  # files: the user may have mistaken a task vector for a model, or back
                require_from(base, s, files=not isinstance(s.backend, MemoryBackend))
        inputs = Inputs(base, sources, is_tv, list(spec.weights or [1.0] * len(sources)), spec.compute_dtype, device)
        classes = {name: policy.classify(info) for name, info in ref.infos.items()}
        if base is None and any(c == "base" for c in classes.values()):
            raise UsageError("class base needs the base model", subject="policy", hint="pass --base BASE")
        if base is None and spec.lam_rules:
            raise UsageError("per-group factors scale W* - W_0 and need the base model", subject="--lam",
                             hint="pass --base BASE")
        out_infos = [i.with_dtype(spec.out_dtype) if spec.out_dtype and i.is_float else i for i in ref.infos.values()]
        fingerprints = [s.fingerprint() for s in sources]
        kinds = ["lora" if s.is_adapter else s.kind for s in sources]
        outputs = []
        for path, ci, lam in targets:
            params = {**combos[ci], **({"lam": lam} if lam is not None else {})}
            meta = provenance(
                "model", command=spec.command, dtype=spec.out_dtype or ref.dtype,
                base_fingerprint=base.fingerprint() if base is not None else None,
                algo=algo.name, paper=algo.paper, params=params, seed=str(params.get("seed", "")),
                inputs=[s.label for s in sources], input_fingerprints=fingerprints, input_kinds=kinds,
                **({"base": base.label} if base is not None else {}),
                weights=inputs.weights, policy=policy.describe(), lam_groups=spec.lam_rules,
                compute_dtype=str(spec.compute_dtype).removeprefix("torch."),
            )
            outputs.append(Output(path, combos[ci], lam, meta))
        workers = spec.workers or (1 if device.type == "cuda" else max(1, len(os.sched_getaffinity(0))
                                                                       if hasattr(os, "sched_getaffinity")
                                                                       else os.cpu_count() or 1))
        batch = spec.batch or (64 if device.type == "cuda" else 1)
        return Plan(algo, inputs, policy, classes, combos, lams, outputs, out_infos, spec.lam_rules,
                    spec.budget, spec.shard_size, stack, workers, batch, spec.force, specs, warnings, spec.core_space)
    except BaseException:
        stack.close()
        raise


def duplicates(base: Checkpoint | None, sources: list[Checkpoint], *, strict: bool = False) -> list[str]:
    """Warnings for inputs that are the same checkpoint (same fingerprint), or the base itself.

    Args:
        base: the base model, if given.
        sources: the inputs, in order.
        strict: raise instead (``--strict-inputs``).
    Returns:
        One line per repeated input, naming both.
    Raises:
        InputError: with ``strict``, for the first repeat (exit 3).
    """
    seen: dict[str, str] = {}
    if base is not None:
        seen[base.fingerprint()] = f"the base {base.label}"
    lines = []
    for s in sources:
        fp = s.fingerprint()
        if fp in seen:
            what = "its task vector is zero" if seen[fp].startswith("the base") else "it counts twice in the merge"
            lines.append(f"{s.label} is the same checkpoint as {seen[fp]} (fingerprint {fp}); {what}")
        else:
            seen[fp] = s.label
    if strict and lines:
        raise InputError(lines[0], hint="give each fine-tune once (drop --strict-inputs to merge anyway)",
                         more=lines[1:])
    return lines


IO_RATE = 1.0e9
"""Bytes per second the dry run assumes for writing (synced to the disk), and for reading where too little of the
inputs is dense to time."""


def dry_run(plan: Plan, *, svd_rate: float | None = None, io_rate: float | None = None, write_rate: float = IO_RATE,
            matmul_rate: float | None = None, element_rate: tuple[float, float] | None = None) -> dict[str, Any]:
    """What the merge will do, planned from the headers: each tensor's class, the SVDs, estimated memory and
    time (the rates timed on this device, the read rate on a sample of the inputs).

    Args:
        svd_rate: seconds per cost unit of a thin SVD on one worker (see :func:`svd_units`); measured on the
            device if None, at the size of the plan's matrices (:func:`svd_rate_size`).
        io_rate: bytes per second for reading the inputs; measured on a sample of them if None
            (:func:`measure_io_rate`).
        write_rate: bytes per second for writing the outputs, which the writer syncs to the disk: assumed
            (1 GB/s), since a dry run writes nothing to time.
        matmul_rate: seconds per multiply-add of a matrix product on one worker; measured on the device if
            None (and only when the algorithm declares products).
        element_rate: seconds per element of a tensor's element-wise work on one worker (upcasts, checks,
            task vectors, the algorithm's rule and statistics, the output's rounding), for a tensor merged in
            memory and for one streamed in row chunks; measured by :func:`measure_element_rate` if None.

    On the CPU the work is shared among ``plan.workers`` single-threaded workers, so its time is divided by
    the workers. Counted: the SVDs, the matrix products the algorithm declares (``products=`` in the
    registry: Newton-Schulz steps, iso-cts's projections, the recombination), the element-wise work, and
    input/output bytes; not counted: iso-cts's per-task spectral norms.

    A matrix merged in the core space of LoRA factors (``core_rank`` R, docs/algorithms.md section 6.5) has
    the same SVD count, each R x R, plus its two QR bases (m x R and n x R), costed as thin SVDs of those
    shapes (an upper bound); ``core_tensors`` counts those matrices.
    """
    inputs = plan.inputs
    T = inputs.T
    ref = inputs.reference
    if svd_rate is None:
        svd_rate = measure_svd_rate(inputs.device, inputs.dtype, svd_rate_size(plan))
    if io_rate is None:
        io_rate = measure_io_rate(plan)
    if matmul_rate is None:
        matmul_rate = measure_matmul_rate(inputs.device, inputs.dtype) if plan.algo.products is not None else 0.0
    if element_rate is None:
        element_rate = measure_element_rate(plan)
    dtype_name = str(inputs.dtype).removeprefix("torch.")
    spectral_ns = uses_spectral(inputs.device.type, dtype_name)
    tensors = []
    svds = 0
    svd_seconds = 0.0
    products = 0.0
    element_seconds = 0.0
    held = []
    in_core = 0
    for name, info in ref.infos.items():
        cls = plan.classes[name]
        per_svd = 0
        rank = plan.core_rank(name)
        if plan.algo.space == "subspace" and cls in ("svd", "svd-flat"):
            m, n = info.shape[0], math.prod(info.shape[1:])
            for combo in plan.combos:
                count = plan.algo.svd_count(T, combo)
                if rank is not None and plan.algo.in_core(combo):  # R x R cores (none at all when R = 0)
                    count = count if rank else 0
                    svd_seconds += count * svd_rate * svd_units(rank, rank)
                else:
                    top = plan.algo.task_top_k(T, combo, m, n)
                    if top is not None and uses_gram(m, n, top[0], inputs.device.type, dtype_name, spectrum=top[1]):
                        # the T task SVDs by the Gram route: an fp64 eigendecomposition and products
                        svd_seconds += T * svd_rate * eigh_units(min(m, n), top[0], top[1])
                        products += T * gram_products(m, n, top[0])
                        count_full = count - T
                    else:
                        count_full = count
                    svd_seconds += count_full * svd_rate * svd_units(m, n)
                    products += plan.algo.product_count(T, combo, m, n, spectral_ns)
                per_svd += count
            if rank is not None:  # the two QR bases, once per tensor, costed as thin SVDs of their shape
                svd_seconds += svd_rate * (svd_units(m, rank) + svd_units(n, rank))
                in_core += 1
            svds += per_svd
        element_seconds += info.numel * element_rate[0 if plan.in_memory(name) else 1] * len(plan.combos)  # lam: finalize only
        held.append(plan.working_set(name))
        tensors.append({"tensor": name, "shape": list(info.shape), "dtype": info.dtype, "class": cls, "svds": per_svd,
                        "core_rank": rank})
    parallel = max(1, plan.workers) if inputs.device.type == "cpu" else 1
    # the engine runs at most `workers` tensors at once, within IN_FLIGHT budgets
    peak = min(sum(sorted(held, reverse=True)[:parallel]), IN_FLIGHT * plan.budget + max(held, default=0))
    read_bytes = sum(i.nbytes for i in ref.infos.values()) * (T + (1 if inputs.base is not None else 0))
    write_bytes = sum(i.nbytes for i in plan.out_infos) * len(plan.outputs)
    classes: dict[str, int] = {}
    for c in plan.classes.values():
        classes[c] = classes.get(c, 0) + 1
    return {
        "algo": plan.algo.name,
        "tasks": T,
        "tensors": tensors,
        "classes": classes,
        "svds": svds,
        "core_tensors": in_core,
        "outputs": [{"path": o.path, "params": {**o.combo, **({"lam": o.lam} if o.lam is not None else {})}}
                    for o in plan.outputs],
        "device": str(inputs.device),
        "compute_dtype": str(inputs.dtype).removeprefix("torch."),
        "read_bytes": read_bytes,
        "write_bytes": write_bytes,
        "peak_bytes_estimate": peak + 256 * 2**20,
        "io_rate": io_rate,
        "products": products,
        "seconds_estimate": ((svd_seconds + products * matmul_rate + element_seconds) / parallel
                             + read_bytes / io_rate + write_bytes / write_rate),
        "svd_seconds_estimate": svd_seconds / parallel,
        "product_seconds_estimate": products * matmul_rate / parallel,
        "element_seconds_estimate": element_seconds / parallel,
    }


def svd_units(m: int, n: int) -> float:
    """Cost of a thin SVD of an m x n matrix, in units of n'^3 for a square one (n' = min, m' = max).

    A tall matrix costs n^3 + (m - n) n^2 / 2: LAPACK first reduces it by QR (timed on this CPU, a 2048 x 512
    SVD takes 2.1-2.9 times a 512 x 512 one, where m n^2 would say 4).
    """
    m, n = max(m, n), min(m, n)
    return float(n**3 + (m - n) * n * n / 2)


def svd_rate_size(plan: Plan, least: int = 384, most: int = 1536) -> int:
    """The n of the n x n SVD the dry run times its rate on: the smaller side of the matrix shape that carries
    the most :func:`svd_units` among the plan's svd-class matrices, within [least, most]. LAPACK's rate per
    unit depends on the size (on one core here: 2.9e-10 s at 384, 2.2e-10 s at 1280 and for 5120 x 1280),
    so the plan's own size is timed, not a fixed one."""
    units: dict[int, float] = {}
    for name, info in plan.inputs.reference.infos.items():
        if plan.classes[name] in MATRIX_CLASSES and len(info.shape) >= 2:
            m, n = info.shape[0], math.prod(info.shape[1:])
            units[min(m, n)] = units.get(min(m, n), 0.0) + svd_units(m, n)
    n = max(units, key=lambda k: units[k]) if units else least
    return max(least, min(most, n))


def measure_io_rate(plan: Plan, sample: int = 128 << 20, tensors: int = 16) -> float:
    """Bytes per second at which the inputs read now: from the page cache where they are cached, from the disk
    where not, in the proportion of the sample.

    Reads and copies a row range from the middle of each of ``tensors`` tensors spread evenly over the model,
    in every input that stores dense tensors (adapters, whose tensors are products, are skipped): about
    ``sample`` bytes in all. :data:`IO_RATE` where under 1 MiB would be read (too little to time).
    """
    import time

    inputs = plan.inputs
    ckpts = [c for c in ([inputs.base] if inputs.base is not None else []) + list(inputs.sources) if not c.is_adapter]
    names = [n for n, i in inputs.reference.infos.items() if i.shape and i.numel]
    if not ckpts or not names:
        return IO_RATE
    count = min(tensors, len(names))
    picks = [names[(2 * j + 1) * len(names) // (2 * count)] for j in range(count)]
    per = max(1, sample // (count * len(ckpts)))
    ranges = []
    for name in picks:
        for c in ckpts:
            info = c.infos.get(name)
            if info is None or not info.shape or not info.numel:
                continue
            rows = info.shape[0]
            k = max(1, min(rows, per // max(1, info.nbytes // rows)))
            ranges.append((c, name, (rows - k) // 2, (rows - k) // 2 + k, info.nbytes * k // rows))
    total = sum(r[4] for r in ranges)
    if total < 1 << 20:
        return IO_RATE
    t0 = time.perf_counter()
    for c, name, start, stop, _ in ranges:
        c.stored_range(name, start, stop).clone()  # the copy touches every page
    return total / max(time.perf_counter() - t0, 1e-9)


def measure_svd_rate(device: torch.device, dtype: torch.dtype, n: int = 384) -> float:
    """Seconds per :func:`svd_units` unit on ``device``: the faster of two timed n x n decompositions (one
    thread on the CPU, as each merge worker runs)."""
    from asrmerge.linalg.svd import time_svd

    return min(time_svd(n, n, device=device, dtype=dtype, repeats=2)) / svd_units(n, n)


def measure_matmul_rate(device: torch.device, dtype: torch.dtype, n: int = 512) -> float:
    """Seconds per multiply-add of an n x n matrix product on ``device``: the fastest of three (one thread on
    the CPU, as each merge worker runs)."""
    import time

    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        a = torch.randn(n, n, dtype=dtype, device=device)
        a @ a
        best = math.inf
        for _ in range(3):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            a @ a
            if device.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        return best / n**3
    finally:
        torch.set_num_threads(threads)


def measure_element_rate(plan: Plan, n: int = 1 << 19) -> tuple[float, float]:
    """Seconds per element of one tensor's element-wise merge work on one worker: (merged in memory, streamed
    in row chunks).

    Timed on a synthetic n-element tensor with the plan's algorithm, parameters, T, stored and compute dtype
    and device, held in memory (no disk: the bytes read and written are costed apart), of class mean, so a
    subspace algorithm runs its class-mean rule there; its matrices' SVDs and products are costed apart.
    Streamed: the same tensor in four row chunks, where statistics take their extra passes.
    """
    import time

    from asrmerge.io.tensors import torch_dtype
    from asrmerge.merge.api import merge as merge_dicts

    inputs = plan.inputs
    T = inputs.T
    floats = [i for i in inputs.reference.infos.values() if i.is_float]
    dtype = torch_dtype(max(floats, key=lambda i: i.numel).dtype) if floats else inputs.dtype
    rows, cols = n // 1024, 1024
    g = torch.Generator().manual_seed(0)
    base = (0.02 * torch.randn(rows, cols, generator=g)).to(dtype)
    tasks = [(base.float() + 2e-4 * torch.randn(rows, cols, generator=g)).to(dtype) for _ in range(T)]
    combo = {k: v for k, v in plan.combos[0].items() if k not in plan.algo.fixed}
    if plan.lams[0] is not None:
        combo["lam"] = plan.lams[0]
    threads = torch.get_num_threads()
    if inputs.device.type == "cpu":
        torch.set_num_threads(1)
    try:
        rates = []
        for budget in (4 * working_set(T, n, inputs.dtype), working_set(T, n // 4, inputs.dtype)):
            best = math.inf
            for _ in range(2):
                t0 = time.perf_counter()
                merge_dicts(plan.algo.name, [{"w": t} for t in tasks], base={"w": base}, params=combo,
                            policy="*=mean", device=str(inputs.device), compute_dtype=inputs.dtype, budget=budget,
                            workers=1)
                if inputs.device.type == "cuda":
                    torch.cuda.synchronize()
                best = min(best, time.perf_counter() - t0)
            rates.append(best / n)
        return rates[0], rates[1]
    finally:
        torch.set_num_threads(threads)
