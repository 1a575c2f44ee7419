"""Ten whisper-large-v3-shaped fine-tunes for the benchmark: the real tensor names and shapes, fp16 on disk.

    python -m tests.bench.large_v3 [--tasks 10] [--dir DIR] [--seed 0]   # generate (or check) the inputs

The files go to ``$ASRMERGE_BENCH_CACHE/large-v3/`` (default ``~/.cache/asrmerge/bench/large-v3/``), outside
the repository: ``base.safetensors``, ``ft0.safetensors`` ... ``ft{T-1}.safetensors`` (one file each, 3.09 GB,
every tensor float16 like the published checkpoints) and ``manifest.json`` (what was generated, the sizes
and SHA-256 of the files). Files are written under a temporary name and renamed when complete; files already
there are kept, so asking for more tasks later writes only the new ones. Free disk is checked first.

The model is ``WhisperForConditionalGeneration`` with large-v3's configuration (32 + 32 layers, d_model
1280, 20 heads, FFN 5120, vocabulary 51866, 128 mel bins, 1500 source and 448 target positions), without
``proj_out.weight`` (tied to the token embedding; the published safetensors files leave it out too).

The base is random (weights N(0, 0.02^2), biases N(0, 0.01^2), layer norms 1 + N(0, 0.05^2), the encoder's
sinusoidal positions). A fine-tune is ``fp16(base + tau_t)``:

- attention q/k/v/out projections and fc1/fc2 (the matrices of policy class svd): ``tau_t = U_t diag(s) V_t^T``
  with the decaying spectrum ``s_i = exp(-i/k) + B exp(-(i/r)/a)`` (i = 0..r-1, r = min(m, n)), whose
  parameters per group (SPECTRA) were fitted at r = 1280 to the medians that ``asrmerge svd-inspect`` measured
  on the study's real whisper-base fine-tunes (effective rank, stable rank, rank90, rank99 and the energy kept
  at r/8; see results/large-v3-spectra.md for the generated files measured with the same tool);
  ``U_t = U_0 R_t``, ``V_t = V_0 Q_t`` where U_0, V_0 (orthonormal columns, QR of Gaussians) are shared by all
  tasks of one tensor and R_t, Q_t are random rotations near ``c I`` (QR of ``c I + sqrt(1 - c^2) G``), so
  tasks share part of their leading singular directions: pairwise cosines about 0.19 and top-r/8 subspace
  overlaps about 0.3, as measured. Each task draws its rotations and a small spread of (k, a) from a pool of
  POOL per task; ``||tau_t||_F`` is about 1% of ``||W_0||_F`` (times a per-task factor near 1);
- every other tensor (biases, layer norms, convolutions, embeddings): dense Gaussian noise of the same
  relative size; the encoder's ``embed_positions`` stays equal to the base.

Seeded: every random draw comes from a generator seeded by (seed, tensor name or task, purpose), so a file does
not depend on which others are generated with it. The base is bit-for-bit reproducible; the fine-tunes are
up to the last bit of the QR and matrix products (thread count, BLAS), which the fp16 rounding nearly always
hides.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

import torch

VERSION = 1  # bump when the generated values change: a cache of another version is refused, not mixed
SAFETENSORS_DTYPE = {torch.float16: "F16", torch.float32: "F32"}


@dataclass(frozen=True)
class Shape:
    """A Whisper architecture (large-v3's by default)."""

    d_model: int = 1280
    layers: int = 32
    heads: int = 20
    ffn: int = 5120
    vocab: int = 51866
    n_mels: int = 128
    source_positions: int = 1500
    target_positions: int = 448


LARGE_V3 = Shape()


@dataclass(frozen=True)
class Spectrum:
    """``s_i = exp(-i/k) + B exp(-(i/r)/a)``; k in singular-value indices, a as a fraction of r."""

    k: float
    a: float
    B: float


# Fitted at r = 1280 (grid search, squared relative error) to the study's medians of the task vectors'
# erank/r, srank, rank90/r, rank99/r and e_keep at p = 1/8 (tests/bench/results/large-v3-spectra-source.json, groups
# decoder.self_attn, decoder.encoder_attn, decoder.fc; svd-inspect's summary of the decoder-only full study of
# 2026-11-26, kept there). That study measured decoder tensors only; the encoder's
# attention takes the decoder self-attention's spectrum.
SPECTRA = {
    "self_attn": Spectrum(k=7.0, a=0.31, B=0.079),
    "encoder_attn": Spectrum(k=7.0, a=0.32, B=0.095),
    "fc": Spectrum(k=8.0, a=0.62, B=0.060),
}
ALIGN = 0.67      # c of the rotations R_t ~ c I: pairwise cosine ~0.19, top-r/8 overlaps ~0.28 at r = 1280
REL = 0.01        # ||tau_t||_F / ||W_0||_F
POOL = 4          # rotation pairs (and spectrum spreads) per task, drawn per tensor
SPREAD = 0.1      # log-normal spread of k and a within a task's pool, and of the task's overall size


def cache_root() -> Path:
    """``$ASRMERGE_BENCH_CACHE`` or ``~/.cache/asrmerge/bench``: where benchmark inputs too large for the repo live."""
    env = os.environ.get("ASRMERGE_BENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "asrmerge" / "bench"


def default_dir() -> Path:
    return cache_root() / "large-v3"


def tensor_infos(shape: Shape = LARGE_V3) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of every tensor of ``WhisperForConditionalGeneration`` with ``shape``, sorted by name (the
    order safetensors itself writes), without the tied ``proj_out.weight``."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    cfg = WhisperConfig(vocab_size=shape.vocab, num_mel_bins=shape.n_mels, d_model=shape.d_model,
                        encoder_layers=shape.layers, decoder_layers=shape.layers,
                        encoder_attention_heads=shape.heads, decoder_attention_heads=shape.heads,
                        encoder_ffn_dim=shape.ffn, decoder_ffn_dim=shape.ffn,
                        max_source_positions=shape.source_positions, max_target_positions=shape.target_positions,
                        # large-v3's special tokens (they must lie inside a test shape's smaller vocabulary)
                        pad_token_id=min(50256, shape.vocab - 1), bos_token_id=min(50257, shape.vocab - 1),
                        eos_token_id=min(50257, shape.vocab - 1), decoder_start_token_id=min(50258, shape.vocab - 1))
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(cfg)
    return sorted((n, tuple(p.shape)) for n, p in model.state_dict().items() if n != "proj_out.weight")


def svd_group(name: str) -> str | None:
    """``self_attn``, ``encoder_attn`` or ``fc`` for the attention projections and FFN matrices, else None."""
    p = name.split(".")
    if len(p) == 6 and p[2] == "layers" and p[4] in ("fc1", "fc2") and p[5] == "weight":
        return "fc"
    if len(p) == 7 and p[2] == "layers" and p[4] in ("self_attn", "encoder_attn") \
            and p[5] in ("q_proj", "k_proj", "v_proj", "out_proj") and p[6] == "weight":
        return p[4]
    return None


def spectrum(r: int, spec: Spectrum, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The r singular values ``exp(-i/k) + B exp(-(i/r)/a)``, i = 0..r-1 (descending, unnormalised)."""
    i = torch.arange(r, dtype=dtype)
    return torch.exp(-i / spec.k) + spec.B * torch.exp(-(i / r) / spec.a)


def spectrum_stats(s: torch.Tensor, p: float = 1 / 8) -> dict[str, float]:
    """erank, srank, rank90, rank99 (the ranks as fractions of r) and e_keep at k = floor(p r), as svd-inspect
    defines them, of one descending spectrum."""
    s = s.to(torch.float64)
    r = s.numel()
    e = torch.cumsum(s * s, 0) / (s * s).sum()
    q = s / s.sum()
    return {"erank": math.exp(float(-(q * torch.log(q)).sum())) / r, "srank": float((s * s).sum() / s[0] ** 2),
            "rank90": (int(torch.nonzero(e >= 0.9)[0]) + 1) / r, "rank99": (int(torch.nonzero(e >= 0.99)[0]) + 1) / r,
            "e_keep": float(e[max(1, math.floor(p * r)) - 1])}


def _gen(seed: int, *what: object) -> torch.Generator:
    digest = hashlib.sha256(":".join(map(str, (VERSION, seed, *what))).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def _orthonormal(m: int, n: int, g: torch.Generator) -> torch.Tensor:
    """An m x n matrix with orthonormal columns (m >= n), Haar-distributed: QR of a Gaussian with the signs of
    R's diagonal taken out."""
    q, r = torch.linalg.qr(torch.randn(m, n, generator=g))
    return q * torch.sign(torch.diagonal(r))


def _rotation(n: int, c: float, g: torch.Generator) -> torch.Tensor:
    """An n x n orthogonal matrix near ``c I``: QR of ``c I + sqrt(1 - c^2) G / sqrt(n)`` (positive R diagonal)."""
    a = torch.randn(n, n, generator=g) * (math.sqrt(1 - c * c) / math.sqrt(n))
    a.diagonal().add_(c)
    q, r = torch.linalg.qr(a)
    return q * torch.sign(torch.diagonal(r))


def sinusoids(length: int, channels: int) -> torch.Tensor:
    """Whisper's encoder positional embedding (fixed sinusoids, max timescale 10000)."""
    inc = math.log(10000) / (channels // 2 - 1)
    inv = torch.exp(-inc * torch.arange(channels // 2, dtype=torch.float32))
    t = torch.arange(length, dtype=torch.float32)[:, None] * inv[None, :]
    return torch.cat([torch.sin(t), torch.cos(t)], dim=1)


def base_tensor(name: str, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """W_0 of one tensor, already rounded to fp16 (returned as float32)."""
    if name == "model.encoder.embed_positions.weight":
        return sinusoids(*shape).half().float()
    g = _gen(seed, "base", name)
    if name.endswith("layer_norm.weight"):
        w = 1.0 + 0.05 * torch.randn(shape, generator=g)
    elif name.endswith(".bias") or name == "model.decoder.embed_positions.weight":
        w = 0.01 * torch.randn(shape, generator=g)
    else:
        w = 0.02 * torch.randn(shape, generator=g)
    return w.half().float()


@dataclass
class TaskDraw:
    """The per-task random quantities shared by the tensors of one task: its size and its pool."""

    size: float
    left: dict[int, list[torch.Tensor]]    # r -> POOL rotations applied to U_0
    right: dict[int, list[torch.Tensor]]   # r -> POOL rotations applied to V_0
    spreads: list[tuple[float, float]]     # POOL (k, a) factors


def task_draw(t: int, seed: int, ranks: set[int]) -> TaskDraw:
    g = _gen(seed, "task", t)
    size = math.exp(SPREAD * float(torch.randn(1, generator=g)))
    spreads = [(math.exp(SPREAD * float(torch.randn(1, generator=g))), math.exp(SPREAD * float(torch.randn(1, generator=g))))
               for _ in range(POOL)]
    left = {r: [_rotation(r, ALIGN, _gen(seed, "left", t, r, j)) for j in range(POOL)] for r in sorted(ranks)}
    right = {r: [_rotation(r, ALIGN, _gen(seed, "right", t, r, j)) for j in range(POOL)] for r in sorted(ranks)}
    return TaskDraw(size, left, right, spreads)


def task_core(draw: TaskDraw, r: int, grp: str, j: int) -> torch.Tensor:
    """K = R diag(s) Q^T (r x r) of pool entry j: the task's part of tau = U_0 K V_0^T, ||K||_F = 1."""
    fk, fa = draw.spreads[j]
    base = SPECTRA[grp]
    s = spectrum(r, Spectrum(base.k * fk, base.a * fa, base.B), torch.float32)
    s = s / torch.linalg.vector_norm(s)
    return (draw.left[r][j] * s) @ draw.right[r][j].T


def svd_frames(name: str, shape: tuple[int, int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """U_0 (m x r) and V_0 (n x r) of one matrix: orthonormal columns, shared by every task."""
    m, n = shape
    r = min(m, n)
    return _orthonormal(m, r, _gen(seed, "U0", name)), _orthonormal(n, r, _gen(seed, "V0", name))


def task_vector(name: str, w0: torch.Tensor, t: int, seed: int, draw: TaskDraw,
                frames: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    """tau_t of one tensor (float32)."""
    if name == "model.encoder.embed_positions.weight":
        return torch.zeros_like(w0)
    g = _gen(seed, "tau", t, name)
    target = REL * draw.size * float(torch.linalg.vector_norm(w0))
    grp = svd_group(name)
    if grp is None or frames is None:
        noise = torch.randn(w0.shape, generator=g)
        return noise * (target / float(torch.linalg.vector_norm(noise)))
    u0, v0 = frames
    m, n = w0.shape
    r = min(m, n)
    j = int(torch.randint(POOL, (1,), generator=g))
    core = task_core(draw, r, grp, j) * target
    # multiply on the small side first: (r x r)(r x n) before (m x r)(...) when m > n, and vice versa
    return u0 @ (core @ v0.T) if m >= n else (u0 @ core) @ v0.T


class StreamWriter:
    """One safetensors file written tensor by tensor in a known order (the header is known up front), under a
    temporary name; :meth:`close` renames it into place. Keeps the SHA-256 of what it wrote."""

    def __init__(self, path: Path, infos: list[tuple[str, tuple[int, ...]]], dtype: torch.dtype,
                 metadata: dict[str, str]) -> None:
        self.path, self.tmp = path, path.with_name(path.name + ".tmp")
        self.order = [n for n, _ in infos]
        self.next = 0
        header: dict[str, object] = {"__metadata__": metadata}
        offset = 0
        item = torch.empty((), dtype=dtype).element_size()
        for name, shape in infos:
            size = math.prod(shape) * item
            header[name] = {"dtype": SAFETENSORS_DTYPE[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
            offset += size
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        self.size = 8 + len(raw) + offset
        self.dtype = dtype
        self.hash = hashlib.sha256()
        self.f: IO[bytes] = open(self.tmp, "wb")  # noqa: SIM115  (closed in close/abort)
        self._write(len(raw).to_bytes(8, "little") + raw)

    def _write(self, b: bytes | memoryview) -> None:
        self.f.write(b)
        self.hash.update(b)

    def add(self, name: str, t: torch.Tensor) -> None:
        if self.order[self.next] != name:
            raise RuntimeError(f"{self.path.name}: wrote {name}, expected {self.order[self.next]}")
        self.next += 1
        self._write(t.to(self.dtype).contiguous().view(torch.uint8).numpy().data)

    def close(self) -> str:
        if self.next != len(self.order):
            raise RuntimeError(f"{self.path.name}: {len(self.order) - self.next} tensors not written")
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        os.replace(self.tmp, self.path)
        return self.hash.hexdigest()

    def abort(self) -> None:
        self.f.close()
        self.tmp.unlink(missing_ok=True)


def file_size(infos: list[tuple[str, tuple[int, ...]]]) -> int:
    """Bytes of one fp16 file of these tensors (header included), as StreamWriter writes it."""
    meta = {"format": "pt", "asrmerge.bench": "x" * 64, "seed": "0", "task": "00", "version": str(VERSION)}
    header = {"__metadata__": meta, **{n: {"dtype": "F16", "shape": list(s), "data_offsets": [0, 10**12]}
                                       for n, s in infos}}
    return 8 + len(json.dumps(header, separators=(",", ":"))) + 8 + 2 * sum(math.prod(s) for _, s in infos)


def check_disk(root: Path, need: int) -> None:
    """Stop with a one-line message when the disk holding ``root`` has less than ``need`` bytes free."""
    probe = root
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need:
        raise SystemExit(f"large-v3 inputs: need {need / 1e9:.1f} GB free in {root}, the disk has "
                         f"{free / 1e9:.1f} GB; free some space or set ASRMERGE_BENCH_CACHE to a disk with room")


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    os.replace(tmp, path)


def _say(msg: str) -> None:
    print(f"[large-v3 {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ensure(tasks: int = 10, root: Path | None = None, *, seed: int = 0, shape: Shape = LARGE_V3,
           log=_say) -> tuple[Path, list[Path]]:
    """The base and ``tasks`` fine-tunes in ``root`` (default :func:`default_dir`), generating what is missing.

    Returns:
        (base path, [ft0, ..., ft{tasks-1}] paths).
    Raises:
        SystemExit: too little free disk, or ``root`` holds files of another generator version, seed or shape.
    """
    root = root or default_dir()
    manifest_path = root / "manifest.json"
    spec = {"version": VERSION, "seed": seed, "shape": asdict(shape)}
    manifest: dict = {"spec": spec, "files": {}}
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("spec") != spec:
            raise SystemExit(f"large-v3 inputs: {root} holds files of {manifest.get('spec')}, not {spec}; "
                             "remove that folder or choose another with --dir / ASRMERGE_BENCH_CACHE")
    base = root / "base.safetensors"
    fts = [root / f"ft{t}.safetensors" for t in range(tasks)]
    for p in [base, *fts]:
        if p.is_file() and p.name not in manifest["files"]:
            raise SystemExit(f"large-v3 inputs: {p} is not in {manifest_path.name} (an interrupted or foreign "
                             "file); remove it or choose another folder with --dir / ASRMERGE_BENCH_CACHE")
    todo = [p for p in [base, *fts] if not p.is_file()]
    if not todo:
        return base, fts
    infos = tensor_infos(shape)
    need = len(todo) * file_size(infos) + 2**30
    check_disk(root, need)
    root.mkdir(parents=True, exist_ok=True)
    log(f"writing {', '.join(p.name for p in todo)} to {root} ({need / 1e9:.1f} GB)")
    t0 = time.perf_counter()
    todo_tasks = [int(p.stem[2:]) for p in todo if p != base]
    ranks = {min(s) for n, s in infos if svd_group(n)}
    draws = {t: task_draw(t, seed, ranks) for t in todo_tasks}
    writers: dict[int | None, StreamWriter] = {}
    try:
        for p in todo:
            t = None if p == base else int(p.stem[2:])
            meta = {"format": "pt", "asrmerge.bench": "synthetic whisper-large-v3 (tests/bench/large_v3.py)",
                    "seed": str(seed), "task": "base" if t is None else str(t), "version": str(VERSION)}
            writers[t] = StreamWriter(p, infos, torch.float16, meta)
        for i, (name, shp) in enumerate(infos):
            w0 = base_tensor(name, shp, seed)
            if None in writers:
                writers[None].add(name, w0)
            frames = svd_frames(name, shp, seed) if svd_group(name) and todo_tasks else None  # type: ignore[arg-type]
            for t in todo_tasks:
                writers[t].add(name, w0 + task_vector(name, w0, t, seed, draws[t], frames))
            if i % 100 == 0:
                log(f"{i}/{len(infos)} tensors, {time.perf_counter() - t0:.0f} s")
        for t, w in writers.items():
            p = w.path
            manifest["files"][p.name] = {"bytes": w.size, "sha256": w.close(), "task": t}
            _write_json(manifest_path, manifest)
    except BaseException:
        for w in writers.values():
            if not w.f.closed:
                w.abort()
        raise
    manifest.setdefault("runs", []).append({"files": [p.name for p in todo], "seconds": round(time.perf_counter() - t0, 1),
                                            "threads": torch.get_num_threads(), "torch": torch.__version__})
    _write_json(manifest_path, manifest)
    log(f"done in {time.perf_counter() - t0:.0f} s")
    return base, fts


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=10)
    ap.add_argument("--dir", type=Path, default=None, help="default: $ASRMERGE_BENCH_CACHE/large-v3")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    base, fts = ensure(a.tasks, a.dir, seed=a.seed)
    print(json.dumps({"dir": str(base.parent), "base": base.name, "finetunes": [p.name for p in fts]}))


if __name__ == "__main__":
    main()
