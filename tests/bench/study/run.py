"""The paper's multi-domain merge study, offline, through the asrmerge CLI: bin/demo (smoke) or bin/demo --full.

    python -m tests.bench.study.run [--full] [--work DIR] [--results DIR] [--seed N]

Steps: convert the packaged multilingual Whisper base; synthesise the Portuguese domains and gather the
English and multilingual sets (data.py); fine-tune one model per in-domain set and one on all of them
(finetune.py, cached); then only asrmerge commands, in a shell-level pipeline recorded in commands.sh:
taskvec, merge (every algorithm, lambda chosen on the dev sets by one sweep per algorithm), svd-inspect,
transcribe, wer --by, wer --compare. Results: the paper-style table, per-domain WER, MAPSSWE of the best
merge against Full-FT, a beta sweep of BoostedTSV-M, a chart, and the run's machine, commit, seeds, times.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from tests.bench.study import data
from tests.bench.study.report import write_report

ROOT = Path(__file__).resolve().parents[3]
ALL_ALGOS = ["soup", "model-stock", "karcher", "multislerp", "ta", "ties", "dare-ta", "dare-ties", "pcb", "sce",
             "iso-c", "iso-cts", "tsvm", "tsvm-ns", "boosted-tsvm"]
PARAM_SPACE = {"soup", "model-stock", "karcher", "multislerp"}


@dataclass
class Config:
    size: data.Size
    steps: int  # per in-domain fine-tune
    full_steps: int  # the joint fine-tune
    algos: list[str]
    lams: dict[str, list[float]]
    betas: list[float]
    batch_size: int = 8
    lr: float = 1e-4
    seed: int = 0
    max_new_tokens: int = 40
    window: int = 10  # seconds of encoder window: fine-tuning caches encoder outputs over it, transcribe uses it
    extra: dict[str, list[str]] = field(default_factory=dict)  # fixed -p options per algorithm


def lam_grid(algo: str) -> list[float]:
    """The lambda values the full study tries on the dev sets (around each algorithm's default scale)."""
    if algo in PARAM_SPACE:
        return []
    if algo in ("ta", "dare-ta"):
        return [0.2, 0.35, 0.6]
    return [0.6, 1.0, 1.4]


def config(full: bool, seed: int) -> Config:
    if full:
        return Config(data.FULL, steps=30, full_steps=120, algos=ALL_ALGOS,
                      lams={a: lam_grid(a) for a in ALL_ALGOS}, betas=[0.1, 0.3, 0.6, 1.0], seed=seed)
    # smoke: three algorithms, one of them with a lambda sweep (the others at their defaults)
    return Config(data.SMOKE, steps=10, full_steps=20, algos=["ta", "tsvm", "boosted-tsvm"],
                  lams={"tsvm": [0.8, 1.2]}, betas=[], seed=seed)


class Shell:
    """Runs asrmerge commands as a user would, recording each in commands.sh with its wall time.

    commands.sh replays the run in a fresh shell: ``W=NEW R=NEW_RESULTS bash commands.sh`` with the study's
    ``data/`` (synthesised audio and manifests) in NEW and the fine-tunes where the script names them; every
    path under the work or results folder is written as ``$W/...`` or ``$R/...``, and each command keeps the
    thread count it ran with, so that the replay computes the same numbers.

    :meth:`many` runs independent commands side by side (like ``xargs -P``), each with a share of the cores.
    """

    def __init__(self, log: Path, work: Path, results: Path | None = None) -> None:
        self.log = log
        self.work = work
        self.results = results or log.parent
        self.times: dict[str, float] = {}
        self.lock = threading.Lock()
        log.write_text("#!/usr/bin/env bash\n# The study's asrmerge pipeline, as run. W is the work folder, R the results folder;\n"
                       "# to replay it: W=NEW R=NEW_RESULTS bash commands.sh, with the study's data/ copied into NEW.\n"
                       f"W=${{W:-{shlex.quote(str(work))}}}\nR=${{R:-{shlex.quote(str(self.results))}}}\n"
                       "set -euo pipefail\n"
                       'mkdir -p "$W/hyp" "$W/tv" "$W/merged" "$R"\n')

    def word(self, arg: str) -> str:
        """One shell word for ``arg``: the work and results folders as "$W" and "$R", the rest quoted."""
        folders = sorted(((str(self.work), '"$W"'), (str(self.results), '"$R"')), key=lambda f: -len(f[0]))
        for folder, var in folders:  # the longer first: a results folder may be named like the work folder
            if arg == folder or arg.startswith(folder.rstrip("/") + "/"):
                rest = arg[len(folder):]
                return var + (shlex.quote(rest) if rest else "")
        return shlex.quote(arg)

    def show(self, args: tuple[str, ...], threads: int | None = None) -> str:
        """The command as commands.sh records it."""
        env = f"OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads} " if threads else ""
        return env + " ".join(self.word(a) for a in ("asrmerge", *args))

    def script(self, line: str, step: str = "other") -> None:
        """Run a line of shell (W and R set) and record it: the few steps between commands (splitting a file)."""
        with self.lock, self.log.open("a") as f:
            f.write(line + "\n")
        t0 = time.perf_counter()
        r = subprocess.run(["bash", "-c", "set -euo pipefail; " + line], capture_output=True,
                           env={**os.environ, "W": str(self.work), "R": str(self.results)})
        if r.returncode != 0:
            raise SystemExit(f"study: `{line}` failed ({r.returncode}):\n{r.stderr.decode()[-2000:]}")
        self.times[step] = self.times.get(step, 0.0) + time.perf_counter() - t0

    def _run(self, args: tuple[str, ...], stdout: Path | None, threads: int | None) -> str:
        cmd = [sys.executable, "-m", "asrmerge", *args]
        shown = self.show(args, threads)
        with self.lock, self.log.open("a") as f:
            f.write(shown + (f" > {self.word(str(stdout))}" if stdout else "") + "\n")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
        if threads:
            env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        if stdout is not None:
            with stdout.open("wb") as out:
                r = subprocess.run(cmd, stdout=out, stderr=subprocess.PIPE, env=env)
        else:
            r = subprocess.run(cmd, capture_output=True, env=env)
        if r.returncode != 0:
            raise SystemExit(f"study: `{shown}` failed ({r.returncode}):\n{r.stderr.decode()[-2000:]}")
        return r.stdout.decode() if stdout is None else ""

    def __call__(self, *args: str, stdout: Path | None = None, step: str = "other") -> str:
        t0 = time.perf_counter()
        with CONSOLE.status(f"[bold]{step}[/]  {escape(self.show(args))}"):  # a spinner on a terminal only
            out = self._run(args, stdout, None)
        self.times[step] = self.times.get(step, 0.0) + time.perf_counter() - t0
        return out

    def many(self, commands: list[tuple[str, ...]], *, step: str) -> None:
        """Run independent commands, ``jobs`` at a time with ``cores / jobs`` threads each.

        On a few cores this beats one multi-threaded process after another: each process's start-up
        (imports, model load) is single-threaded, and Whisper's small matrix products scale poorly.
        """
        if not commands:
            return
        cores = os.cpu_count() or 1
        jobs = max(1, min(4, cores, len(commands)))
        t0 = time.perf_counter()
        with CONSOLE.status(f"[bold]{step}[/]  {len(commands)} commands, {jobs} at a time") as status, \
                ThreadPoolExecutor(jobs) as pool:
            for done, _ in enumerate(pool.map(lambda a: self._run(a, None, max(1, cores // jobs)), commands), 1):
                status.update(f"[bold]{step}[/]  {done} of {len(commands)} done, {jobs} at a time")
        self.times[step] = self.times.get(step, 0.0) + time.perf_counter() - t0


CONSOLE = Console(stderr=True, highlight=False)


def say(msg: str) -> None:
    """A progress line on stderr: the time and what the study does next."""
    CONSOLE.print(f"[dim]\\[study {time.strftime('%H:%M:%S')}][/] {escape(msg)}", soft_wrap=True)


def finetunes(cfg: Config, base: Path, manifests: dict[str, Path], cache: Path) -> dict[str, Path]:
    """ID-FT per in-domain set and the joint Full-FT, cached by their inputs."""
    from tests.bench.study.finetune import finetune

    code = hashlib.sha256((Path(__file__).parent / "finetune.py").read_bytes()).hexdigest()[:12]
    rows = [json.loads(line) for line in manifests["train"].read_text().splitlines()]
    out = {}
    jobs = [(d, [r for r in rows if r["domain"] == d], cfg.steps) for d in cfg.size.domains]
    jobs.append(("full-ft", rows, cfg.full_steps))
    for name, subset, steps in jobs:
        key = hashlib.sha256(json.dumps([code, name, subset, steps, cfg.batch_size, cfg.lr, cfg.seed, cfg.window,
                                         (base / "model.safetensors").stat().st_size]).encode()).hexdigest()[:16]
        folder = cache / f"{name}-{key}"
        if not (folder / "model.safetensors").is_file():
            say(f"fine-tune {name}: {len(subset)} utterances, {steps} steps")
            tmp_manifest = manifests["train"].parent / f"train-{name}.jsonl"
            tmp_manifest.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in subset))
            info = finetune(base, tmp_manifest, folder.with_suffix(".tmp"), steps=steps, batch_size=cfg.batch_size,
                            lr=cfg.lr, seed=cfg.seed, language="pt", window=cfg.window, log=None)
            (folder.with_suffix(".tmp") / "finetune.json").write_text(json.dumps(info, indent=2))
            os.replace(folder.with_suffix(".tmp"), folder)
        out[name] = folder
    return out


def transcribe_all(sh: Shell, jobs: list[tuple[Path, Path, Path, str | None]], cfg: Config) -> None:
    """Transcribe (model, manifest, output, language) jobs side by side.

    ``language`` None: each record's ``language`` field (Portuguese where it has none). With ``--resume``, an
    output already complete is left as it is and one cut short is completed, so an interrupted study goes on
    where it stopped.
    """
    todo = []
    for model, manifest, out, language in jobs:
        todo.append(("transcribe", str(model), str(manifest), "-o", str(out), "--resume", "--batch-size", "16",
                     "--max-new-tokens", str(cfg.max_new_tokens), "--chunk-length", str(cfg.window), "-q",
                     *(("--language", language) if language else ("--language-field", "language", "--language", "pt"))))
    sh.many(todo, step="transcribe")


SETS = {"test": "id|ood", "english": "en", "multi": "multi"}  # output part -> the records' "set" values


def split_by_set(sh: Shell, hyp: Path) -> dict[str, Path]:
    """One hypothesis file per evaluation set (the records' ``set``: id/ood -> test, en, multi), with grep.

    asrmerge writes ``"set": "id"`` with these separators; grep's exit status 1 (no such record) is no error.
    """
    out = {}
    for k, values in SETS.items():
        out[k] = hyp.with_name(f"{hyp.stem}.{k}.jsonl")
        pattern = shlex.quote('"set": "(' + values + ')"')
        sh.script(f"grep -E {pattern} {sh.word(str(hyp))} > {sh.word(str(out[k]))} || [ $? -eq 1 ]", step="split")
    return out


def wer(sh: Shell, hyps: list[Path], *extra: str) -> dict:
    return json.loads(sh("wer", *map(str, hyps), "--json", "--by", "domain", *extra, step="wer"))


def choose_lam(sh: Shell, cfg: Config, algo: str, base: Path, tvs: list[Path], work: Path,
               manifests: dict[str, Path]) -> tuple[Path, float | None, dict[str, float]]:
    """Merge at every lambda of the grid in one sweep, decode the dev sets, keep the best model."""
    grid = cfg.lams.get(algo) or []
    out_dir = work / "merged"
    out_dir.mkdir(exist_ok=True)
    extra = [x for p in cfg.extra.get(algo, []) for x in ("-p", p)]
    if not grid:
        target = out_dir / algo
        if not (target / "model.safetensors").is_file():
            sh("merge", "--algo", algo, "--base", str(base), *map(str, tvs), *extra, "-o", f"{target}/", "-q",
               step="merge")
        return target, None, {}
    template = out_dir / f"{algo}-lam{{lam}}"
    done = all((Path(str(template).format(lam=_fmt(v))) / "model.safetensors").is_file() for v in grid)
    chosen_file = out_dir / f"{algo}.chosen.json"
    if chosen_file.is_file():
        c = json.loads(chosen_file.read_text())
        return Path(c["path"]), c["lam"], c["dev"]
    if not done:
        sh("merge", "--algo", algo, "--base", str(base), *map(str, tvs), *extra, "-p",
           "lam=" + ",".join(_fmt(v) for v in grid), "-o", f"{template}/", "-q", step="merge")
    hyps = {_fmt(v): work / "hyp" / f"dev-{algo}-{_fmt(v)}.jsonl" for v in grid}
    transcribe_all(sh, [(Path(str(template).format(lam=k)), manifests["dev"], h, "pt") for k, h in hyps.items()], cfg)
    dev = {k: wer(sh, [h])["macro"]["wer"] for k, h in hyps.items()}
    best = min(grid, key=lambda v: dev[_fmt(v)])
    chosen = Path(str(template).format(lam=_fmt(best)))
    for v in grid:
        if v != best:
            shutil.rmtree(Path(str(template).format(lam=_fmt(v))), ignore_errors=True)
    chosen_file.write_text(json.dumps({"path": str(chosen), "lam": best, "dev": dev}))
    return chosen, best, dev


def _fmt(v: float) -> str:
    from asrmerge.merge.registry import format_value

    return format_value(v)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="the full study (about 40 minutes on 2 cores)")
    ap.add_argument("--work", type=Path, default=None, help="work folder (default ~/.cache/asrmerge/study/SIZE)")
    ap.add_argument("--results", type=Path, default=None,
                    help="results folder (default: tests/bench/results/study for --full, WORK/results otherwise)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    cfg = config(a.full, a.seed)
    cache_root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "asrmerge" / "study"
    work = (a.work or cache_root / cfg.size.name).resolve()
    results = (a.results or (ROOT / "tests" / "bench" / "results" / "study" if a.full else work / "results")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    for sub in ("hyp", "tv", "merged"):
        (work / sub).mkdir(exist_ok=True)
    t_start = time.perf_counter()
    times: dict[str, float] = {}
    sh = Shell(results / "commands.sh", work, results)

    say(f"{cfg.size.name} study in {work}")
    base = work / "base"
    if not (base / "model.safetensors").is_file():
        sh("convert", "packaged:base", "--dtype", "fp32", "-o", f"{base}/", "-q", step="convert")
    t0 = time.perf_counter()
    manifests = data.build(work / "data", cfg.size, cfg.seed)
    times["data"] = time.perf_counter() - t0
    say("data ready: " + ", ".join(f"{k} {sum(1 for _ in v.open())}" for k, v in manifests.items()))

    t0 = time.perf_counter()
    fts = finetunes(cfg, base, manifests, cache_root / "finetunes" / cfg.size.name)
    times["finetune"] = time.perf_counter() - t0

    tvs = []
    for d in cfg.size.domains:
        tv = work / "tv" / f"{d}.safetensors"
        if not tv.is_file():
            sh("taskvec", str(base), str(fts[d]), "-o", str(tv), "-q", step="taskvec")
        tvs.append(tv)

    systems: dict[str, dict] = {}
    for algo in cfg.algos:
        say(f"merge {algo}" + (f", lambda sweep {cfg.lams[algo]} on the dev sets" if cfg.lams.get(algo) else ""))
        model, lam, dev = choose_lam(sh, cfg, algo, base, tvs, work, manifests)
        systems[algo] = {"model": model, "lam": lam, "dev": dev, "kind": "merge"}
    for beta in cfg.betas:
        name = f"boosted-tsvm beta={_fmt(beta)}"
        lam = systems.get("boosted-tsvm", {}).get("lam") or 1.0
        target = work / "merged" / f"boosted-beta{_fmt(beta)}"
        if not (target / "model.safetensors").is_file():
            sh("merge", "--algo", "boosted-tsvm", "--base", str(base), *map(str, tvs), "-p", f"beta={_fmt(beta)}",
               "-p", f"lam={_fmt(lam)}", "-o", f"{target}/", "-q", step="merge")
        systems[name] = {"model": target, "lam": lam, "kind": "beta"}

    say("svd-inspect: spectra, interference and collapse of the task vectors and the BoostedTSV-M merge")
    inspect_merged = systems.get("boosted-tsvm", {}).get("model")
    inspect_args = ["svd-inspect", "--base", str(base), *map(str, tvs), "--include", "model.decoder.*"]
    if inspect_merged:
        inspect_args += ["--merged", str(inspect_merged)]
    if a.full:
        sh(*inspect_args, "--summary", "--json", stdout=results / "svd-summary.json", step="svd-inspect")
    sh(*inspect_args, "--plot", str(results / "svd-inspect.png"), "-q", stdout=work / "svd-inspect.jsonl",
       step="svd-inspect")

    say("transcribe the test sets with every system (one run per system, each utterance in its language)")
    evals = {"zero-shot": base, "full-ft": fts["full-ft"], **{k: v["model"] for k, v in systems.items()}}
    combined = work / "data" / "eval.jsonl"
    combined.write_text("".join(manifests[k].read_text() for k in ("test", "english", "multi")))
    jobs, outs = [], {}
    for name, model in evals.items():
        outs[name] = work / "hyp" / f"eval-{name.replace(' ', '_').replace('=', '')}.jsonl"
        jobs.append((model, combined, outs[name], None))
    for d in cfg.size.domains:  # each ID-FT on its own domain only
        own = work / "data" / f"test-{d}.jsonl"
        own.write_text("".join(line + "\n" for line in manifests["test"].read_text().splitlines()
                               if json.loads(line)["domain"] == d))
        jobs.append((fts[d], own, work / "hyp" / f"test-idft-{d}.jsonl", "pt"))
    transcribe_all(sh, jobs, cfg)
    hyps: dict[str, dict[str, Path]] = {name: split_by_set(sh, out) for name, out in outs.items()}
    hyps["id-ft"] = {d: work / "hyp" / f"test-idft-{d}.jsonl" for d in cfg.size.domains}

    say("score")
    scores: dict[str, dict] = {}
    for name, h in hyps.items():
        if name == "id-ft":
            scores[name] = {"test": wer(sh, list(h.values()))}
            continue
        scores[name] = {"test": wer(sh, [h["test"]]), "english": wer(sh, [h["english"]], "--normalizer", "whisper-en"),
                        "multi": wer(sh, [h["multi"]], "--normalizer", "basic"),
                        "multi_cer": wer(sh, [h["multi"]], "--normalizer", "basic", "--cer")}
    merges = [k for k, v in systems.items() if v["kind"] == "merge"]
    best = min(merges, key=lambda k: scores[k]["test"]["micro"]["wer"]) if merges else None
    compare = None
    if best:
        compare = json.loads(sh("wer", "--compare", str(hyps[best]["test"]), str(hyps["full-ft"]["test"]), "--json",
                                step="wer"))
    times.update(sh.times)
    times["total"] = time.perf_counter() - t_start
    meta = {
        "size": cfg.size.name, "seed": cfg.seed, "steps": cfg.steps, "full_steps": cfg.full_steps, "lr": cfg.lr,
        "batch_size": cfg.batch_size, "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
        f"{platform.python_version()}", "commit": _commit(), "date": time.strftime("%Y-%m-%d %H:%M"),
        "times": times, "best": best,
        "transcribe": f"greedy, a {cfg.window} s encoder window (the fine-tunes' training window), at most "
                      f"{cfg.max_new_tokens} new tokens, each utterance in its language",
        "trained": f"decoder without embed_tokens (encoder frozen, {cfg.window} s window)",
        "finetunes": {k: json.loads((v / "finetune.json").read_text()) for k, v in fts.items()},
    }
    write_report(results, cfg, scores, systems, compare, meta, hyps)
    say(f"done in {times['total'] / 60:.1f} min; results in {results}")
    print((results / "results.md").read_text())


def _commit() -> str:
    r = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


if __name__ == "__main__":
    main()
