"""asrmerge merge against mergekit and FusionBench, side by side on the same files: time, peak memory, floors.

    python -m tests.bench.bench_merge                    # whisper-base and whisper-small shapes, T = 2, 5, 10
    python -m tests.bench.bench_merge --shapes base --tasks 2,5 --algos ta,tsvm
    python -m tests.bench.bench_merge --shapes large-v3 --tasks 2,10    # large-v3 rows: tests/bench/large_rows.py

Every run is a separate process measured the same way (wall time and the child's peak RSS from wait4); the
peers run in their own virtual environments (tests/peers/env.py). Outputs are compared before times are:
a row whose outputs disagree beyond the spec's tolerance says so. Floors: reading every input once and
writing the output once with a warm page cache (element-wise algorithms); the SVDs an algorithm must do,
at this machine's measured SVD rate (the SVD family). Results go to tests/bench/RESULTS.md (or --out).
``--shapes large-v3`` runs on its own: inputs from tests/bench/large_v3.py (cached outside the repository),
peers under a memory cap, peak anonymous memory and ``merge --dry-run`` estimates beside every row, results in
tests/bench/results/large-v3.md (see tests/bench/large_rows.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file

from tests.bench.inputs import base_model, finetunes
from tests.peers.run import PeerRunError, fusion_bench_job, measure, mergekit_job, run_peer

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "bench"
# asrmerge algorithm -> (peer, peer method, peer parameters, peer uses the base, per-model weights,
#                        asrmerge parameters making the two comparable); mappings as in tests/test_peers.py
PEERS: dict[str, tuple[str, str, dict, bool, bool, list[str]]] = {
    "soup": ("mergekit", "linear", {"normalize": True}, False, True, []),
    "ta": ("mergekit", "task_arithmetic", {"lambda": 1.0}, True, True, ["lam=1.0"]),
    "ties": ("mergekit", "ties", {"density": 0.2}, True, True, ["density=0.2"]),
    "dare-ties": ("mergekit", "dare_ties", {"density": 0.5}, True, True,
                  ["drop_rate=0.5", "agg=dis-sum", "rescale=l1"]),
    "model-stock": ("mergekit", "model_stock", {}, True, False, ["cos_floor=-1"]),
    "karcher": ("mergekit", "karcher", {}, False, False, []),
    "multislerp": ("mergekit", "multislerp", {}, False, True, []),
    "sce": ("mergekit", "sce", {}, True, False, []),
    "tsvm": ("fusion_bench", "tsvm", {"scaling_factor": 1.0}, True, False, []),
    "iso-c": ("fusion_bench", "iso_c", {"scaling_factor": 1.0}, True, False, []),
    "iso-cts": ("fusion_bench", "iso_cts", {"scaling_factor": 1.0, "common_space_fraction": 0.8}, True, False, []),
}
OURS_ONLY = ["tsvm-ns", "boosted-tsvm"]
RANDOM = {"dare-ties"}  # random streams differ: compare statistically, not element-wise
SVD_FAMILY = {"tsvm", "tsvm-ns", "boosted-tsvm", "iso-c", "iso-cts"}


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def exclude_keys(base: Path) -> list[str]:
    """2-D tensors that are not of class svd: FusionBench must average them as asrmerge does."""
    from asrmerge.io.checkpoint import open_checkpoint
    from asrmerge.merge.policy import Policy

    with open_checkpoint(str(base)) as c:
        return [n for n, i in c.infos.items() if len(i.shape) == 2 and Policy().classify(i) != "svd"]


def ours(algo: str, base: Path, fts: list[Path], out: Path, params: list[str], device: str) -> dict:
    cmd = [sys.executable, "-m", "asrmerge", "merge", "--algo", algo, "--base", str(base), *map(str, fts),
           *[x for p in params for x in ("-p", p)], "-o", str(out), "-q", "--device", device]
    m = measure(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if m.returncode != 0:
        raise SystemExit(f"asrmerge failed: {m.stderr[-2000:]}")
    return {"wall": m.wall_s, "rss": m.peak_rss_mb}


def peer(algo: str, base: Path, fts: list[Path], out: Path, work: Path) -> dict:
    """The peer's run of ``algo``: wall time, peak RSS, import and job seconds; or, when the peer fails,
    ``error``: the last line of its traceback (the row is kept, marked as failed)."""
    name, method, params, use_base, weighted, _ = PEERS[algo]
    if name == "mergekit":
        job = mergekit_job(method, base=base if use_base else None, inputs=fts, out=out, workdir=work, params=params,
                           weights=[1.0] * len(fts) if weighted else None, options=["--random-seed", "0"])
    else:
        job = fusion_bench_job(method, base=base, inputs=fts, out=out, exclude_keys=exclude_keys(base), **params)
    try:
        run = run_peer(name, [job], timeout=7200).check()
    except PeerRunError as e:
        return {"error": str(e).strip().splitlines()[-1][:160]}
    return {"wall": run.wall_s, "rss": run.peak_rss_mb, "import": run.import_s, "job": run.jobs[0].seconds}


def agreement(algo: str, a: Path, b: Path) -> float:
    """max |ours - peer| / max |peer| over all tensors (tensor names as in the peer's output)."""
    x, y = load_file(str(a)), load_file(str(b))
    worst = 0.0
    for name, t in y.items():
        key = name if name in x else ("model." + name if "model." + name in x else None)
        if key is None:
            continue
        d = float((x[key].double() - t.double()).abs().max()) / max(float(t.double().abs().max()), 1e-30)
        worst = max(worst, d)
    return worst


def warm(files: list[Path]) -> None:
    """Read every file once, in order, so each measured run starts from the same page cache: all of the
    inputs where they fit in memory, else the last ones read (the state the read+write floor starts from)."""
    for p in files:
        subprocess.run(["cat", str(p)], stdout=subprocess.DEVNULL, check=True)


def io_floor(files: list[Path], out_bytes: int, work: Path) -> float:
    """Seconds to read every input once (page cache warm) and write (and fsync) the output once."""
    script = (
        "import os,sys\n"
        "buf=bytearray(1<<24)\n"
        "for p in sys.argv[2:]:\n"
        "    with open(p,'rb',buffering=0) as f:\n"
        "        while f.readinto(buf): pass\n"
        "n=int(sys.argv[1]); out=os.path.join(os.environ['FLOOR_DIR'],'floor.bin')\n"
        "with open(out,'wb') as f:\n"
        "    while n>0:\n"
        "        k=min(n,len(buf)); f.write(memoryview(buf)[:k]); n-=k\n"
        "    f.flush(); os.fsync(f.fileno())\n"
        "os.unlink(out)\n")
    warm(files)
    m = measure([sys.executable, "-c", script, str(out_bytes), *map(str, files)], env={**os.environ, "FLOOR_DIR": str(work)})
    return m.wall_s


def svd_floor(algo: str, base: Path, T: int, device: str) -> float:
    """The SVDs ``algo`` needs on the svd-class matrices, at this machine's measured rate (all cores busy)."""
    from asrmerge.io.checkpoint import open_checkpoint
    from asrmerge.merge.policy import Policy

    per_matrix = {"tsvm": T + 2, "iso-c": 1, "iso-cts": 1 + T + 2, "tsvm-ns": T, "boosted-tsvm": T}[algo]
    shapes: dict[tuple[int, int], int] = {}
    with open_checkpoint(str(base)) as c:
        for info in c.infos.values():
            if Policy().classify(info) == "svd":
                m, n = max(info.shape), min(info.shape)
                shapes[(m, n)] = shapes.get((m, n), 0) + 1
    total = 0.0
    for (m, n), count in shapes.items():
        total += count * per_matrix * svd_seconds(m, n, device)
    return total


_RATE: dict[tuple[int, int, str], float] = {}


def svd_seconds(m: int, n: int, device: str) -> float:
    """Seconds per m x n fp32 thin SVD (tall orientation) at full-machine throughput.

    On the CPU: the median single-threaded time divided by the number of cores (independent SVDs run one
    per core); on CUDA: the median time of one SVD.
    """
    import statistics

    from asrmerge.linalg.svd import time_svd

    key = (m, n, device)
    if key not in _RATE:
        cores = len(os.sched_getaffinity(0)) if device == "cpu" else 1
        _RATE[key] = statistics.median(time_svd(m, n, device=device, repeats=5)) / cores
    return _RATE[key]


def startup() -> float:
    """Seconds a merge process spends before its first tensor: Python, torch and asrmerge's imports (best of 3)."""
    cmd = [sys.executable, "-c", "import torch, safetensors, asrmerge.merge.api, asrmerge.cli.main"]
    return min(measure(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}).wall_s for _ in range(3))


def run(shapes: list[str], tasks: list[int], algos: list[str], device: str, with_peers: bool,
        each: Callable[[list[dict]], None] = lambda rows: None) -> list[dict]:
    """Measure every (shape, T, algorithm); ``each(rows)`` is called after every row (partial results on disk)."""
    rows = []
    start = startup()
    for shape in shapes:
        base = base_model(shape, CACHE)
        for T in tasks:
            fts = finetunes(base, T, CACHE / f"{shape}-ft")[:T]
            work = CACHE / "out"
            work.mkdir(parents=True, exist_ok=True)
            in_files = [base, *fts]
            for algo in algos:
                say(f"{shape} T={T} {algo}")
                mine = work / f"ours-{algo}.safetensors"
                params = PEERS[algo][5] if algo in PEERS else []
                r = {"shape": shape, "T": T, "algo": algo, "ours": ours(algo, base, fts, mine, params, device),
                     "startup": start}
                out_bytes = mine.stat().st_size
                r["out_mib"] = out_bytes / 2**20
                if algo in SVD_FAMILY:
                    r["floor"] = svd_floor(algo, base, T, device)
                    r["floor_kind"] = "svd"
                else:
                    r["floor"] = io_floor(in_files, out_bytes, work)
                    r["floor_kind"] = "io"
                if with_peers and algo in PEERS and device == "cpu":
                    theirs = work / f"peer-{algo}.safetensors"
                    r["peer_name"] = PEERS[algo][0]
                    r["peer"] = peer(algo, base, fts, theirs, work)
                    r["diff"] = None if algo in RANDOM or "error" in r["peer"] else agreement(algo, mine, theirs)
                    theirs.unlink(missing_ok=True)
                mine.unlink(missing_ok=True)
                rows.append(r)
                say(json.dumps(r))
                each(rows)
    return rows


def table(rows: list[dict], device: str) -> str:
    lines = ["| shape | T | algorithm | asrmerge s | peak RSS MiB | peer | peer s | peer RSS MiB | speed-up | "
             "floor s | x floor | x floor after start-up | max rel. diff |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    failed = []
    for r in rows:
        o, p = r["ours"], r.get("peer")
        if p and "error" in p:
            failed.append(f"{r.get('peer_name')} failed on {r['shape']} T={r['T']} {r['algo']}: `{p['error']}`")
            r = {**r, "peer_name": f"{r.get('peer_name')} (failed)"}
            p = None
        ratio = f"{p['wall'] / o['wall']:.2f}x" if p else "—"
        diff = "random" if r["algo"] in RANDOM and p else (f"{r['diff']:.1e}" if r.get("diff") is not None else "—")
        lines.append(f"| {r['shape']} | {r['T']} | {r['algo']} | {o['wall']:.1f} | {o['rss']:.0f} | "
                     f"{r.get('peer_name', '—')} | {p['wall']:.1f} | {p['rss']:.0f} | {ratio} | " if p else
                     f"| {r['shape']} | {r['T']} | {r['algo']} | {o['wall']:.1f} | {o['rss']:.0f} | "
                     f"{r.get('peer_name', '—')} | — | — | — | ")
        lines[-1] += (f"{r['floor']:.1f} ({r['floor_kind']}) | {o['wall'] / r['floor']:.2f} | "
                      f"{(o['wall'] - r['startup']) / r['floor']:.2f} | {diff} |")
    return "\n".join(lines + ([""] + [f"- {f}" for f in failed] if failed else []))


def _ok(row: dict, peer: str) -> bool:
    """``row`` has a successful run of ``peer``."""
    return row.get("peer_name") == peer and "wall" in row.get("peer", {})


def goals(rows: list[dict]) -> str:
    """The issue's goals, measured on these rows (the closing note quotes them)."""
    out = ["", "## Goals, as measured in the rows above", ""]
    if not rows:
        return ""
    over = max(r["ours"]["rss"] - r["out_mib"] for r in rows)
    flat = []
    for algo in dict.fromkeys(r["algo"] for r in rows):
        for shape in dict.fromkeys(r["shape"] for r in rows):
            rss = [r["ours"]["rss"] for r in rows if r["algo"] == algo and r["shape"] == shape]
            if len(rss) > 1:
                flat.append(max(rss) - min(rss))
    fb = [(r["T"], r["algo"], r["peer"]["rss"]) for r in rows if _ok(r, "fusion_bench") and r["shape"] == rows[0]["shape"]]
    out.append(f"1. **Memory**: peak RSS is at most the output's size + {over:.0f} MiB over every row"
               + (f"; across T it varies by at most {max(flat):.0f} MiB per algorithm and shape" if flat else "")
               + (f". FusionBench ({rows[0]['shape']}): " + ", ".join(f"T={t} {a} {m:.0f} MiB" for t, a, m in fb) if fb else "") + ".")
    ew = [r for r in rows if r["algo"] not in SVD_FAMILY]
    if ew:
        worst = max(ew, key=lambda r: r["ours"]["wall"] / r["floor"])
        net = max(ew, key=lambda r: (r["ours"]["wall"] - r["startup"]) / r["floor"])
        mk = [r for r in ew if _ok(r, "mergekit")]
        line = (f"2. **Element-wise**: at most {worst['ours']['wall'] / worst['floor']:.2f}x the read+write floor "
                f"({worst['algo']}, {worst['shape']} T={worst['T']}), and at most "
                f"{(net['ours']['wall'] - net['startup']) / net['floor']:.2f}x once the process start-up "
                f"({net['startup']:.1f} s: Python, torch, asrmerge imports; the floor has none) is left out "
                f"({net['algo']}, {net['shape']} T={net['T']})")
        if mk:
            slow = min(mk, key=lambda r: r["peer"]["wall"] / r["ours"]["wall"])
            line += (f"; against mergekit {min(r['peer']['wall'] / r['ours']['wall'] for r in mk):.2f}x to "
                     f"{max(r['peer']['wall'] / r['ours']['wall'] for r in mk):.2f}x faster (slowest margin: "
                     f"{slow['algo']} T={slow['T']})")
        out.append(line + ".")
    sv = [r for r in rows if r["algo"] in SVD_FAMILY]
    if sv:
        fbr = [r for r in sv if _ok(r, "fusion_bench")]
        line = (f"3. **SVD family**: {min(r['ours']['wall'] / r['floor'] for r in sv):.2f}x to "
                f"{max(r['ours']['wall'] / r['floor'] for r in sv):.2f}x the SVD floor")
        if fbr:
            line += (f"; against FusionBench {min(r['peer']['wall'] / r['ours']['wall'] for r in fbr):.2f}x to "
                     f"{max(r['peer']['wall'] / r['ours']['wall'] for r in fbr):.2f}x faster, outputs within "
                     f"{max(r['diff'] for r in fbr):.1e} (relative, max over tensors)")
        out.append(line + ".")
    return "\n".join(out) + "\n"


def large_section() -> str:
    """The large-v3 rows (tests/bench/results/large-v3.json, written by ``--shapes large-v3``) beside these."""
    path = ROOT / "tests" / "bench" / "results" / "large-v3.json"
    if not path.is_file():
        return ""
    from tests.bench.large_rows import goals
    from tests.bench.large_rows import table as large_table

    rows = json.loads(path.read_text())
    runs = sorted({f"commit {r['run']['commit']}, {r['run']['date']}" for r in rows if "run" in r})
    return ("\n## whisper-large-v3 shape (1.54 B parameters, fp16 inputs), CPU\n\nFrom results/large-v3.md "
            f"({'; '.join(runs)}), where the inputs, columns and caps are described.\n\n" + large_table(rows)
            + goals(rows, heading="### Large-v3 goals"))


def keep_peers(rows: list[dict], earlier: list[dict]) -> None:
    """Give each row without a peer the peer columns of the earlier row it replaces, with that run named."""
    old = {(e.get("shape"), e["T"], e["algo"]): e for e in earlier}
    for r in rows:
        e = old.get((r.get("shape"), r["T"], r["algo"]))
        if e and "peer" in e and "peer" not in r:
            r.update({k: e[k] for k in ("peer_name", "peer", "diff", "diff_where") if k in e})
            r["peer_run"] = e.get("peer_run", e.get("run"))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="base,small", help="base, small, or large-v3 (on its own)")
    ap.add_argument("--tasks", default=None, help="default: 2,5,10; large-v3: 2,10")
    ap.add_argument("--algos", default=None, help="default: every peer mapping and ours; large-v3: "
                    "ta,ties,iso-c,iso-cts,tsvm,tsvm-ns,boosted-tsvm")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--out", type=Path, default=None,
                    help="default: tests/bench/RESULTS.md; large-v3: tests/bench/results/large-v3.md")
    ap.add_argument("--append", action="store_true",
                    help="keep the rows already in the results (OUT with .json) and add this run's (a row "
                    "of the same shape, T and algorithm replaces the earlier one)")
    ap.add_argument("--keep-peers", action="store_true",
                    help="with --append --no-peers: a row measured again keeps the peer columns of the row it "
                    "replaces (marked with that run's commit), for a change on our side only")
    ap.add_argument("--report", action="store_true",
                    help="write OUT again from the rows in OUT with .json, without running anything")
    ap.add_argument("--re-estimate", action="store_true",
                    help="large-v3: run today's `merge --dry-run` again for every row in OUT with .json (marked "
                    "in the table as re-estimated at this commit), then write OUT; nothing else is run")
    ap.add_argument("--cap-gib", type=float, default=20.0, help="large-v3: the peers' memory cap")
    ap.add_argument("--cap-kind", choices=["anon", "data", "as"], default="anon",
                    help="large-v3: anon = kill at resident anonymous memory over the cap (sampled); data/as = "
                    "RLIMIT_DATA/RLIMIT_AS (tests/bench/memwatch.py)")
    ap.add_argument("--timeout", type=float, default=6 * 3600, help="large-v3: seconds per run before it is killed")
    ap.add_argument("--note", default="", help="a remark on the run kept with its rows (e.g. 'quiet machine')")
    a = ap.parse_args(argv)
    if a.keep_peers and not (a.append and a.no_peers):
        raise SystemExit("bench_merge: --keep-peers goes with --append --no-peers")
    shapes = a.shapes.split(",")
    large = "large-v3" in shapes
    if large and (shapes != ["large-v3"] or a.device != "cpu"):
        raise SystemExit("bench_merge: --shapes large-v3 runs on its own and on the CPU (tests/bench/gpu.py is "
                         "the GPU check)")
    a.out = a.out or ROOT / "tests" / "bench" / ("results/large-v3.md" if large else "RESULTS.md")
    a.tasks = a.tasks or ("2,10" if large else "2,5,10")
    if a.algos is None:
        from tests.bench.large_rows import ALGOS

        a.algos = ",".join(ALGOS if large else [*PEERS, *OURS_ONLY])
    earlier = (json.loads(a.out.with_suffix(".json").read_text()) if a.append or a.report or a.re_estimate
               else [])
    t0 = time.time()
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    # no absolute paths of this machine in the results: a path argument is recorded by its name
    cmd = "python -m tests.bench.bench_merge " + " ".join(
        Path(x).name if x.startswith("/") else x for x in (sys.argv[1:] if argv is None else argv))

    def runs_of(rows: list[dict]) -> list[str]:
        return list(dict.fromkeys(f"`{r['run']['cmd']}` (commit {r['run']['commit']}, {r['run']['date']}"
                                  + (f"; {r['run']['note']}" if r["run"].get("note") else "") + ")"
                                  for r in rows if "run" in r))

    def write(rows: list[dict], done: bool = False) -> str:
        for r in rows:
            r.setdefault("run", {"cmd": cmd, "commit": commit, "date": time.strftime("%Y-%m-%d"),
                                 **({"note": a.note} if a.note else {})})
        fresh = {(r.get("shape"), r["T"], r["algo"]) for r in rows}  # a row measured again replaces the old one
        if a.keep_peers:
            keep_peers(rows, earlier)
        rows = [e for e in earlier if (e.get("shape"), e["T"], e["algo"]) not in fresh] + rows
        if large:
            from tests.bench.large_rows import report

            text = report(rows, runs_of(rows), in_progress=not done)
        else:
            head = [f"# asrmerge merge: benchmark ({a.device})", "",
                    f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores"
                    + (f", {torch.cuda.get_device_name()}" if a.device == "cuda" else "")
                    + f"; torch {torch.__version__}. Runs: " + "; ".join(runs_of(rows))
                    + ("." if a.report else f" (the last {(time.time() - t0) / 60:.0f} min"
                       + ("" if done else f", in progress: {len(rows)} rows so far") + ")."),
                    "", "Wall time includes process start and imports on both sides; peak RSS is the process's. "
                    "Floors: io = read every input once + write the output once (page cache warm); svd = the "
                    "decompositions the algorithm needs at this machine's measured SVD throughput. Max rel. diff: "
                    "max over tensors of max |ours - peer| / max |peer| (dare-ties: random masks, not compared); "
                    "differences beyond rounding (ties, multislerp) are explained in tests/peers/CONFORMANCE.md, "
                    "section \"On whisper-shaped inputs\".", "", ""]
            text = "\n".join(head) + table(rows, a.device) + "\n" + goals(rows) + large_section()
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text)
        (a.out.with_suffix(".json")).write_text(json.dumps(rows, indent=2))
        return text

    if a.re_estimate:
        if not large:
            raise SystemExit("bench_merge: --re-estimate is for --shapes large-v3")
        from tests.bench.large_rows import re_estimate

        re_estimate(earlier, commit)
        a.report = True
    if a.report:
        print(write([], done=True))
        return
    tasks, algos = [int(x) for x in a.tasks.split(",")], a.algos.split(",")
    if large:
        from tests.bench.large_rows import run as run_large

        rows = run_large(tasks, algos, with_peers=not a.no_peers, cap=int(a.cap_gib * 2**30), cap_kind=a.cap_kind,
                         timeout=a.timeout, each=write)
    else:
        rows = run(shapes, tasks, algos, a.device, not a.no_peers, each=write)
    print(write(rows, done=True))


if __name__ == "__main__":
    main()
