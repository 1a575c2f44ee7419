"""The large-v3 rows of the merge benchmark (``python -m tests.bench.bench_merge --shapes large-v3``).

Inputs: tests/bench/large_v3.py (a random large-v3 base and T fine-tunes, fp16, cached outside the repo).
Per (T, algorithm), on the CPU:

- asrmerge: wall time, peak RSS (ru_maxrss: includes the mapped input pages it touched) and peak anonymous
  memory (RssAnon of its process tree, sampled every 0.1 s; see tests/bench/memwatch.py), the output's size;
- floors: read+write (every input read once, the output written once and fsynced; with T = 10 the inputs,
  34 GB, exceed this machine's RAM, so the read comes from disk as it does for the merge) and, for the SVD
  family, the exact SVDs the algorithm needs at this machine's measured SVD rate (both cores busy);
- ``asrmerge merge --dry-run --json`` on the same inputs: its time and memory estimates;
- peers, under a memory cap (20 GiB of resident anonymous memory by default, enforced by the sampler of
  tests/bench/memwatch.py, which kills the peer at the first sample over it; ``--cap-kind data`` uses
  RLIMIT_DATA instead): mergekit for ta and ties (mergekit-pytorch, fp32
  arithmetic, fp16 output like ours), FusionBench for tsvm and iso-c (as tests/peers/drivers/ runs them: every
  model loaded in fp32). Each peer runs under tests/bench/peer_probe.py, which logs its progress, so a peer
  that runs out of its cap still says how far it got (files loaded, task vectors, SVDs, tensors written),
  when, and with how much memory.

Results: tests/bench/results/large-v3.md and .json (no absolute paths: files are named relative to the cache).

The full set, on a quiet machine (about 9 hours on 2 cores; every row is written to the results as it ends):

    python -m tests.peers.env                                   # the peers' venvs, once (~8 min)
    python -m tests.bench.large_v3 --tasks 10                   # the inputs, once (34 GB; 64 min on a busy machine)
    python -m tests.bench.bench_merge --shapes large-v3 --tasks 2 --note "quiet machine"
    python -m tests.bench.bench_merge --shapes large-v3 --tasks 10 --append --note "quiet machine"

Needs about 7 GB of free disk beside the inputs (asrmerge's and mergekit's fp16 outputs, one row at a time) and
21 GiB of available memory for the FusionBench rows' 20 GiB cap (``--cap-gib 16`` on a machine shared with
others). ``tests/bench/results/large-v3-smoke.md`` is the harness's smoke run (T = 2, ta), not a measurement.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import safe_open

from tests.bench import large_v3
from tests.bench.memwatch import Watched, watch

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).resolve().parent / "peer_probe.py"
ALGOS = ["ta", "ties", "iso-c", "iso-cts", "tsvm", "tsvm-ns", "boosted-tsvm"]
PEER_ALGOS = {"ta", "ties", "tsvm", "iso-c"}
CAP = 20 * 2**30


def say(msg: str) -> None:
    print(f"[bench large-v3 {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def merge_cmd(algo: str, base: Path, fts: list[Path], out: Path, params: list[str]) -> list[str]:
    return [sys.executable, "-m", "asrmerge", "merge", "--algo", algo, "--base", str(base), *map(str, fts),
            *[x for p in params for x in ("-p", p)], "-o", str(out), "-q", "--device", "cpu"]


def dry_run(algo: str, base: Path, fts: list[Path], out: Path, params: list[str]) -> dict:
    """asrmerge's own estimate for the row: seconds, SVD seconds, peak bytes, bytes read and written, and the
    read rate it measured, from the page cache the measured run starts from (warmed first)."""
    import subprocess

    from tests.bench.bench_merge import warm

    warm([base, *fts])
    r = subprocess.run([*merge_cmd(algo, base, fts, out, params), "--dry-run", "--json"], capture_output=True,
                       text=True, env=_env())
    if r.returncode != 0:
        raise SystemExit(f"asrmerge merge --dry-run failed: {r.stderr[-2000:]}")
    d = json.loads(r.stdout)
    return {"seconds": d["seconds_estimate"], "svd_seconds": d["svd_seconds_estimate"],
            "peak_mib": d["peak_bytes_estimate"] / 2**20, "read_bytes": d["read_bytes"],
            "write_bytes": d["write_bytes"], "svds": d["svds"], "io_rate": d["io_rate"]}


def re_estimate(rows: list[dict], commit: str) -> None:
    """Replace every row's dry-run estimate by today's ``merge --dry-run`` on the same cached inputs, marked
    with the commit (the measured columns stay those of the row's own run)."""
    for r in rows:
        base, fts = large_v3.ensure(r["T"])
        from tests.bench.bench_merge import PEERS

        params = PEERS[r["algo"]][5] if r["algo"] in PEERS else []
        out = large_v3.cache_root() / "out" / f"ours-{r['algo']}.safetensors"
        r["dry_run"] = {**dry_run(r["algo"], base, fts[:r["T"]], out, params),
                        "re_estimated": {"commit": commit, "date": time.strftime("%Y-%m-%d")}}
        say(f"re-estimated T={r['T']} {r['algo']}: {r['dry_run']['seconds']:.1f} s")


def _mem(w: Watched) -> dict:
    return {"wall": w.wall_s, "rss": w.peak_rss_mb, "anon": w.peak_anon_mb}


def ours(algo: str, base: Path, fts: list[Path], out: Path, params: list[str], timeout: float) -> dict:
    from tests.bench.bench_merge import warm

    warm([base, *fts])
    w = watch(merge_cmd(algo, base, fts, out, params), env=_env(), timeout=timeout)
    if w.returncode != 0:
        raise SystemExit(f"asrmerge failed: {w.stderr[-2000:]}")
    return _mem(w)


def _progress(log: Path, peer: str, T: int, method: str) -> dict:
    """How far a peer got, from the probe's log: counts, the last event, its time and memory."""
    events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []
    if not events:
        return {"events": 0}
    last = events[-1]
    out: dict = {"last_event": last["event"], "last_t": last["t"], "last_anon_mb": last["anon_mb"],
                 "last_data_mb": last.get("data_mb"), "import_data_mb": events[0].get("data_mb")}
    if peer == "fusion_bench":
        svds = sum(e["event"] == "svd" for e in events)
        per = {"tsvm": T + 2, "iso_c": 1}.get(method, 1)
        out.update(loaded=sum(e["event"] == "loaded" for e in events), files=T + 1,
                   loaded_anon_mb=[e["anon_mb"] for e in events if e["event"] == "loaded"],
                   loaded_data_mb=[e.get("data_mb") for e in events if e["event"] == "loaded"],
                   taskvecs=sum(e["event"] == "taskvec" for e in events), svds=svds, tensors_done=svds // per)
    else:
        out["tensors_done"] = sum(e["event"] == "tensor" for e in events)
    return out


def run_peer_probe(peer: str, job: dict, *, T: int, cap: int, timeout: float, cap_kind: str = "anon") -> dict:
    """One peer job under the probe and the cap: wall, RSS, anon, import and job seconds, or the error, and
    always how far it got."""
    from tests.peers.env import ensure

    env = ensure(peer)
    child_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    child_env.update({"PYTHONNOUSERSITE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                      "TOKENIZERS_PARALLELISM": "false"})
    with tempfile.TemporaryDirectory(prefix="peer-") as tmp:
        jobs, result, log = Path(tmp) / "jobs.json", Path(tmp) / "result.json", Path(tmp) / "progress.jsonl"
        jobs.write_text(json.dumps([job], default=str))
        child_env["PROBE_LOG"] = str(log)
        try:
            w = watch([str(env.python), str(PROBE), peer, str(jobs), str(result)], env=child_env, cwd=Path(tmp),
                      timeout=timeout, cap=cap, cap_kind=cap_kind)
        except TimeoutError as e:
            return {"error": str(e), "cap_mib": cap / 2**20, "progress": _progress(log, peer, T, job.get("method", ""))}
        r: dict = {**_mem(w), "cap_mib": cap / 2**20, "cap_kind": cap_kind, "last_anon": w.last_anon_mb,
                   "progress": _progress(log, peer, T, job.get("method", ""))}
        if not w.reported:
            r["error"] = f"stopped from outside: the measuring launcher exited {w.returncode}"
            r["rss"] = None
        elif w.killed_by_cap:
            r["error"] = (f"stopped by the cap: {w.last_anon_mb:.0f} MiB of anonymous memory at {w.wall_s:.0f} s, "
                          f"over {cap / 2**20:.0f} MiB")
        elif result.is_file():
            res = json.loads(result.read_text())
            r["import"], r["job"] = res["import_s"], res["jobs"][0]["seconds"]
            if res["jobs"][0]["error"]:
                r["error"] = res["jobs"][0]["error"].strip().splitlines()[-1][:200]
        else:
            r["error"] = f"exit {w.returncode} without a result: " + (w.stderr.strip().splitlines() or ["?"])[-1][:160]
        return r


def peer_job(algo: str, base: Path, fts: list[Path], out: Path, work: Path) -> tuple[str, dict]:
    from tests.bench.bench_merge import PEERS, exclude_keys
    from tests.peers.run import fusion_bench_job, mergekit_job

    name, method, params, use_base, weighted, _ = PEERS[algo]
    if name == "mergekit":
        import yaml

        job = mergekit_job(method, base=base if use_base else None, inputs=fts, out=out, workdir=work,
                           params=params, weights=[1.0] * len(fts) if weighted else None,
                           options=["--random-seed", "0"])
        cfg = Path(job["config"])
        config = yaml.safe_load(cfg.read_text())
        config["out_dtype"] = "float16"  # fp32 arithmetic, fp16 output: as asrmerge does for an fp16 base
        cfg.write_text(yaml.safe_dump(config, sort_keys=False))
        return name, job
    return name, fusion_bench_job(method, base=base, inputs=fts, out=out, exclude_keys=exclude_keys(base), **params)


def _tensors(path: Path) -> dict[str, Path]:
    files = sorted(path.glob("*.safetensors")) if path.is_dir() else [path]
    names: dict[str, Path] = {}
    for f in files:
        with safe_open(str(f), "pt") as h:
            names.update({n: f for n in h.keys()})  # noqa: SIM118  (safe_open has no __iter__)
    return names


def agreement(mine: Path, theirs: Path, where: dict | None = None) -> float:
    """max over tensors of max |ours - peer| / max |peer|, one tensor at a time (outputs of several GB);
    ``where`` receives the worst tensor's name, how many of its entries differ, and its size."""
    a, b = _tensors(mine), _tensors(theirs)
    worst = 0.0
    for name, f in b.items():
        key = name if name in a else ("model." + name if "model." + name in a else None)
        if key is None:
            continue
        with safe_open(str(a[key]), "pt") as ha, safe_open(str(f), "pt") as hb:
            x, y = ha.get_tensor(key).double(), hb.get_tensor(name).double()
        d = float((x - y).abs().max()) / max(float(y.abs().max()), 1e-30)
        if d > worst and where is not None:
            where.update(tensor=key, differ=int((x != y).sum()), numel=x.numel())
        worst = max(worst, d)
    return worst


def _remove(p: Path) -> None:
    if p.is_dir():
        shutil.rmtree(p)
    else:
        p.unlink(missing_ok=True)


def run(tasks: list[int], algos: list[str], *, with_peers: bool, cap: int = CAP, cap_kind: str = "anon",
        timeout: float = 6 * 3600,
        each: Callable[[list[dict]], object] = lambda rows: None,
        inputs: Callable[[int], tuple[Path, list[Path]]] = large_v3.ensure) -> list[dict]:
    """Measure every (T, algorithm) on the large-v3 inputs (``inputs(T)``: the base and at least T fine-tunes);
    ``each(rows)`` after every row."""
    from tests.bench.bench_merge import PEERS, SVD_FAMILY, io_floor, startup, svd_floor, warm

    rows: list[dict] = []
    start = startup()
    work = large_v3.cache_root() / "out"
    for T in tasks:
        base, fts = inputs(max(tasks))
        fts = fts[:T]
        work.mkdir(parents=True, exist_ok=True)
        floors: dict[int, float] = {}
        in_bytes = sum(p.stat().st_size for p in [base, *fts])
        for algo in algos:
            large_v3.check_disk(work, 2 * base.stat().st_size + 2**30)
            say(f"large-v3 T={T} {algo}")
            mine = work / f"ours-{algo}.safetensors"
            params = PEERS[algo][5] if algo in PEERS else []
            r: dict = {"shape": "large-v3", "T": T, "algo": algo, "startup": start,
                       "inputs": [p.name for p in [base, *fts]], "in_mib": in_bytes / 2**20,
                       "dry_run": dry_run(algo, base, fts, mine, params),
                       "ours": ours(algo, base, fts, mine, params, timeout), "warmed": True}
            out_bytes = mine.stat().st_size
            r["out_mib"] = out_bytes / 2**20
            if out_bytes not in floors:
                floors[out_bytes] = io_floor([base, *fts], out_bytes, work)
            r["io_floor"] = floors[out_bytes]
            r["svd_floor"] = svd_floor(algo, base, T, "cpu") if algo in SVD_FAMILY else None
            if with_peers and algo in PEER_ALGOS:
                theirs = work / f"peer-{algo}" if PEERS[algo][0] == "mergekit" else work / f"peer-{algo}.safetensors"
                name, job = peer_job(algo, base, fts, theirs, work)
                r["peer_name"] = name
                warm([base, *fts])
                r["peer"] = run_peer_probe(name, job, T=T, cap=cap, timeout=timeout, cap_kind=cap_kind)
                where: dict = {}
                r["diff"] = None if "error" in r["peer"] or not theirs.exists() else agreement(mine, theirs, where)
                if where:
                    r["diff_where"] = where
                _remove(theirs)
                for cfg in work.glob("*.yaml"):
                    cfg.unlink()
            mine.unlink(missing_ok=True)
            rows.append(r)
            say(json.dumps(r))
            each(rows)
    return rows


def _f(x: float | None, fmt: str = ".1f") -> str:
    return "—" if x is None else format(x, fmt)


def _cap(p: dict) -> str:
    return f"{p['cap_mib'] / 1024:.0f} ({p.get('cap_kind', 'data')})"


def table(rows: list[dict]) -> str:
    """Two tables: asrmerge against its floors and its dry-run estimate; the peers beside asrmerge."""
    a = ["| T | algorithm | asrmerge s | peak RSS MiB | peak anon MiB | output MiB | read+write floor s | "
         "SVD floor s | x floor | dry-run s | dry-run / measured | dry-run peak MiB |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    again = {}
    cold = False
    for r in rows:
        o, d = r["ours"], r["dry_run"]
        floor = max(r["io_floor"], r["svd_floor"] or 0.0)
        mark = ""
        if "re_estimated" in d:
            again[d["re_estimated"]["commit"]] = d["re_estimated"]["date"]
            mark = "*"
        cache = "" if r.get("warmed") else "†"
        cold = cold or not r.get("warmed")
        a.append(f"| {r['T']} | {r['algo']} | {o['wall']:.1f}{cache} | {o['rss']:.0f} | {o['anon']:.0f} | "
                 f"{r['out_mib']:.0f} | {r['io_floor']:.1f} | {_f(r['svd_floor'])} | {o['wall'] / floor:.2f} | "
                 f"{d['seconds']:.1f}{mark} | {d['seconds'] / o['wall']:.2f} | {d['peak_mib']:.0f} |")
    if again:
        a.append("")
        a.append("\\* the dry run of that row estimated again with a later asrmerge (`--re-estimate`, commit "
                 + ", ".join(f"{c}, {d}" for c, d in again.items()) + ") against the time its own run measured.")
    if cold:
        a.append("")
        a.append("† measured before the harness warmed the page cache ahead of every run: that run (and its peer) "
                 "started from whatever the previous step left cached.")
    b = ["| T | algorithm | peer | cap GiB | peer s | peer RSS MiB | peer anon MiB | asrmerge s | speed-up | "
         "how far the peer got | max rel. diff |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for r in rows:
        p = r.get("peer")
        if not p:
            continue
        g = p.get("progress", {})
        when = f"; peer run of commit {r['peer_run']['commit']}" if r.get("peer_run") else ""
        if "error" in p:
            far = (f"failed at {g.get('last_t', 0):.0f} s: "
                   + (f"{g.get('loaded', 0)}/{g.get('files')} files loaded, {g.get('taskvecs', 0)} task vectors, "
                      if r["peer_name"] == "fusion_bench" else "")
                   + f"{g.get('tensors_done', 0)} tensors done, {g.get('last_anon_mb', 0):.0f} MiB anon at its last "
                   f"event ({g.get('last_event', '?')}), {p.get('last_anon', 0):.0f} MiB at the last sample{when}")
            notes.append(f"{r['peer_name']} on large-v3 T={r['T']} {r['algo']}: `{p['error']}`")
            b.append(f"| {r['T']} | {r['algo']} | {r['peer_name']} (failed) | {_cap(p)} | — | "
                     f"{_f(p.get('rss'), '.0f')} | {_f(p.get('anon'), '.0f')} | {r['ours']['wall']:.1f} | — | {far} | — |")
        else:
            b.append(f"| {r['T']} | {r['algo']} | {r['peer_name']} | {_cap(p)} | {p['wall']:.1f} | "
                     f"{p['rss']:.0f} | {p['anon']:.0f} | {r['ours']['wall']:.1f} | {p['wall'] / r['ours']['wall']:.2f}x | "
                     f"finished ({g.get('tensors_done', '?')} tensors{when}) | {_f(r.get('diff'), '.1e')} |")
            if r.get("diff_where") and r.get("diff"):
                w = r["diff_where"]
                notes.append(f"{r['peer_name']} on large-v3 T={r['T']} {r['algo']}: the max rel. diff is in "
                             f"`{w['tensor']}`, where {w['differ']} of {w['numel']} entries differ")
    return "\n".join(a) + "\n\n" + ("\n".join(b) + "\n" if len(b) > 2 else "") + (
        "\n" + "\n".join(f"- {n}" for n in notes) + "\n" if notes else "")


def report(rows: list[dict], runs: list[str], in_progress: bool) -> str:
    from tests.bench.large_v3 import LARGE_V3

    head = [
        "# asrmerge merge on ten whisper-large-v3-shaped fine-tunes (cpu)", "",
        f"Machine: {os.cpu_count()} CPU cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} "
        f"GiB RAM; torch {torch.__version__}. Runs: " + "; ".join(runs) + (" (in progress)" if in_progress else "") + ".",
        "",
        f"Inputs: tests/bench/large_v3.py (d_model {LARGE_V3.d_model}, {LARGE_V3.layers} + {LARGE_V3.layers} layers, "
        f"FFN {LARGE_V3.ffn}, vocabulary {LARGE_V3.vocab}, {LARGE_V3.n_mels} mel bins; 1259 tensors, 1.54 B "
        "parameters, fp16 files of 3.09 GB; task vectors with the study's spectra, see large-v3-spectra.md), "
        "cached in `$ASRMERGE_BENCH_CACHE/large-v3/` (default `~/.cache/asrmerge/bench/large-v3/`).", "",
        "Wall time includes process start and imports. Peak RSS: the process's ru_maxrss, which counts the pages "
        "of the memory-mapped inputs it touched; every run (asrmerge, the peer, the read+write floor) starts right "
        "after every input was read once in order, so all three find the same page cache (the inputs outrun "
        "RAM at T = 10: the last ones read); peak anon: RssAnon summed over the process tree, sampled every "
        "0.1 s (what it allocated). Floors: read+write = every input read once and the output written once "
        "(fsync); SVD = the exact decompositions the algorithm needs at this machine's measured rate; x floor is "
        "against the larger of the two. Dry-run: `asrmerge merge --dry-run --json` on the same command. Peers run "
        "under a memory cap (cap GiB; anon: killed at the first 0.1 s sample of their resident anonymous memory "
        "over it, as a cgroup's memory.max would stop them; data: RLIMIT_DATA, as `prlimit --data` sets it) "
        "with a progress log (tests/bench/peer_probe.py) that says how far a stopped peer got; max rel. diff: "
        "max over tensors of max |ours - peer| / max |peer|.", "", ""]
    return "\n".join(head) + table(rows) + goals(rows)


def goals(rows: list[dict], heading: str = "## Goals, as measured in the rows above") -> str:
    """The issue's goals for the large-v3 rows, each as measured (or 'not measured'), under ``heading``."""
    def row(algo: str, T: int = 10) -> dict | None:
        return next((r for r in rows if r["algo"] == algo and r["T"] == T), None)

    out = ["", heading, ""]
    b = row("boosted-tsvm")
    if b:
        o = b["ours"]
        verdict = "met" if o["wall"] <= 900 else f"{o['wall'] / 900:.2f}x over"
        floor = "" if b["svd_floor"] is None else (f"; its exact SVDs alone take {b['svd_floor'] / 60:.1f} min at "
                                                   "this machine's rate")
        out.append(f"- boosted-tsvm, T = 10, under 15 min wall: {o['wall'] / 60:.1f} min ({verdict}){floor}.")
        room = b["out_mib"] + 2048
        out.append(f"- its peak RSS under the output's size + 2 GiB ({room:.0f} MiB): {o['rss']:.0f} MiB "
                   f"({'met' if o['rss'] <= room else 'not met'}).")
    else:
        out.append("- boosted-tsvm, T = 10: not measured.")
    for algo in ("ta", "ties"):
        r = row(algo)
        if r:
            x = r["ours"]["wall"] / r["io_floor"]
            out.append(f"- {algo}, T = 10, within 3x of the read+write floor: {x:.2f}x "
                       f"({'met' if x <= 3 else 'not met'}).")
        else:
            out.append(f"- {algo}, T = 10, within 3x of the read+write floor: not measured.")
    if rows:
        worst = max(rows, key=lambda r: abs(r["dry_run"]["seconds"] / r["ours"]["wall"] - 1))
        ratio = worst["dry_run"]["seconds"] / worst["ours"]["wall"]
        out.append(f"- `--dry-run` within 25 % of the measured time on every row: worst {ratio:.2f} of measured "
                   f"(T = {worst['T']} {worst['algo']}; {'met' if abs(ratio - 1) <= 0.25 else 'not met'}).")
    return "\n".join(out) + "\n"
