"""The paper's multi-domain merge study on synthetic Portuguese domains: bin/demo (smoke) or bin/demo --full.

    python -m tests.bench.study.run [--full] [--work DIR] [--results DIR] [--seed N] [--jobs N]

What is the demo's own: convert the packaged multilingual Whisper base; synthesise the Portuguese domains
and gather the English and multilingual sets (data.py); fine-tune one model per in-domain set and one on
all of them (finetune.py, cached). Then one command, ``asrmerge study``, does the experiment (task
vectors, merges with lambda chosen on dev, svd-inspect, transcription, WER, significance, the report) in
WORK/study, and its results are copied to the results folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from tests.bench.study import data

ROOT = Path(__file__).resolve().parents[3]
RESULT_FILES = ("results.md", "table.json", "per-domain.jsonl", "chart.png", "svd-inspect.png", "svd-summary.json",
                "commands.sh")


@dataclass
class Config:
    size: data.Size
    steps: int  # per in-domain fine-tune
    full_steps: int  # the joint fine-tune
    study: list[str]  # the options of asrmerge study that set the experiment's size
    batch_size: int = 8
    lr: float = 1e-4
    seed: int = 0
    window: int = 10  # seconds of encoder window: fine-tuning runs the encoder over it, transcribe uses it
    encoder_layers: int = 0  # the encoder's top layers fine-tuned too (the frozen ones' outputs are cached)
    eval_every: int = 2  # dev loss every this many steps; the fine-tune keeps its best (early stopping)


def config(full: bool, seed: int) -> Config:
    if full:  # every algorithm, lambda chosen on dev (the grids reach past the edge values chosen before early
        # stopping and the encoder: 0.2 for ta, 0.6 for ties and the like, 1.4 for the subspace family), the beta sweep, and the
        # subspace family under the reference's full-rank rule beside ours (docs/algorithms.md section 6)
        full_rank = [f"--variant={a}-full={a}:rank_mode=full" for a in ("iso-c", "iso-cts", "tsvm", "tsvm-ns",
                                                                           "boosted-tsvm")]
        return Config(data.FULL, steps=30, full_steps=120, seed=seed, encoder_layers=2, eval_every=5,
                      study=["--lam", "1.0,1.4,1.8", *(f"--lam={a}:0.1,0.2,0.35" for a in ("ta", "dare-ta")),
                             *(f"--lam={a}:0.3,0.6,1.0" for a in ("ties", "dare-ties", "pcb", "sce")),
                             "--beta", "0.1,0.3,0.6,1.0", *full_rank])
    # smoke: three algorithms, one of them with a lambda sweep (the others at their defaults)
    return Config(data.SMOKE, steps=10, full_steps=20, seed=seed,
                  study=["--algos", "ta,tsvm,boosted-tsvm", "--lam", "tsvm:0.8,1.2"])


CONSOLE = Console(stderr=True, highlight=False)


def say(msg: str) -> None:
    """A progress line on stderr: the time and what the demo does next."""
    CONSOLE.print(f"[dim]\\[demo {time.strftime('%H:%M:%S')}][/] {escape(msg)}", soft_wrap=True)


def asrmerge(*args: str) -> None:
    """Run an asrmerge command, its messages on stderr; its stdout (study's report) is printed at the end."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "asrmerge", *args], env=env, stdout=subprocess.DEVNULL)
    if r.returncode != 0:
        raise SystemExit(f"demo: asrmerge {' '.join(args[:3])} ... failed ({r.returncode})")


def finetunes(cfg: Config, base: Path, manifests: dict[str, Path], cache: Path) -> dict[str, Path]:
    """ID-FT per in-domain set and the joint Full-FT, cached by their inputs."""
    from tests.bench.study.finetune import finetune

    code = hashlib.sha256((Path(__file__).parent / "finetune.py").read_bytes()).hexdigest()[:12]
    rows = [json.loads(line) for line in manifests["train"].read_text().splitlines()]
    dev = [json.loads(line) for line in manifests["dev"].read_text().splitlines()]
    out = {}
    jobs = [(d, [r for r in rows if r["domain"] == d], [r for r in dev if r["domain"] == d], cfg.steps)
            for d in cfg.size.domains]
    jobs.append(("full-ft", rows, [r for r in dev if r["domain"] in cfg.size.domains], cfg.full_steps))
    for name, subset, dev_subset, steps in jobs:
        key = hashlib.sha256(json.dumps([code, name, subset, dev_subset, steps, cfg.batch_size, cfg.lr, cfg.seed,
                                         cfg.window, cfg.encoder_layers, cfg.eval_every,
                                         (base / "model.safetensors").stat().st_size]).encode()).hexdigest()[:16]
        folder = cache / f"{name}-{key}"
        if not (folder / "model.safetensors").is_file():
            say(f"fine-tune {name}: {len(subset)} utterances, {steps} steps")
            tmp_manifest = manifests["train"].parent / f"train-{name}.jsonl"
            tmp_manifest.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in subset))
            dev_manifest = manifests["dev"].parent / f"dev-{name}.jsonl"
            dev_manifest.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in dev_subset))
            tmp = folder.with_suffix(".tmp")
            info = finetune(base, tmp_manifest, tmp, steps=steps, batch_size=cfg.batch_size, lr=cfg.lr,
                            seed=cfg.seed, language="pt", window=cfg.window, encoder_layers=cfg.encoder_layers,
                            dev=dev_manifest, eval_every=cfg.eval_every, log=None)
            say(f"fine-tune {name}: kept step {info['chosen_step']} of {steps} (lowest dev loss "
                f"{info['dev_loss']:.3f})")
            (tmp / "finetune.json").write_text(json.dumps(info, indent=2))
            os.replace(tmp, folder)
        out[name] = folder
    return out


def study_args(cfg: Config, base: Path, fts: dict[str, Path], manifests: dict[str, Path], out: Path,
               jobs: int) -> list[str]:
    """``asrmerge study``'s arguments for the demo's fine-tunes and sets."""
    return ["study", "--base", str(base), *(f"{d}={fts[d]}" for d in cfg.size.domains), "--joint", str(fts["full-ft"]),
            "--dev", str(manifests["dev"]), "--test", str(manifests["test"]),
            "--extra", f"english={manifests['english']}", "--extra", f"multilingual={manifests['multi']}",
            *cfg.study, "--language", "pt", "--chunk-length", str(cfg.window), "--max-new-tokens", "40",
            "--jobs", str(jobs), "-o", str(out)]


def appendix(cfg: Config, fts: dict[str, Path], study: Path, full: bool) -> str:
    """What the demo adds to the study's results.md: the comparison with the paper (the full study), and its
    data and fine-tunes."""
    info = {k: json.loads((v / "finetune.json").read_text()) for k, v in fts.items()}
    text = ""
    if full:
        from tests.bench.study.paper import comparison

        text += comparison(study)
    return text + ("\n## The demo's data and fine-tunes\n\n"
                   f"Whisper base (multilingual, 74 M parameters); {cfg.size.name} size, seed {cfg.seed}: "
                   f"{len(cfg.size.domains)} synthetic Portuguese domains fine-tuned (up to {cfg.steps} steps each, "
                   f"the joint fine-tune up to {cfg.full_steps}; batch {cfg.batch_size}, learning rate {cfg.lr}; "
                   + (f"decoder without embed_tokens and the encoder's top {cfg.encoder_layers} of 6 layers (the "
                      "layers below frozen)" if cfg.encoder_layers else "decoder without embed_tokens, encoder frozen")
                   + f", over a {cfg.window} s window; each keeps the step of its lowest loss on its dev records, "
                   f"measured every {cfg.eval_every} steps), {len(cfg.size.ood)} out-of-domain; real English speech "
                   "and multilingual clips. Step kept (of the steps run) and its dev loss: "
                   + ", ".join(f"{k} {v['chosen_step']}/{v['steps']} ({v['dev_loss']:.3f})" for k, v in info.items())
                   + ".\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--full", action="store_true", help="the full study (about 96 minutes on 2 cores)")
    ap.add_argument("--work", type=Path, default=None, help="work folder (default ~/.cache/asrmerge/study/SIZE)")
    ap.add_argument("--results", type=Path, default=None,
                    help="results folder (default: tests/bench/results/study for --full, WORK/study otherwise)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=max(1, min(4, os.cpu_count() or 1)),
                    help="transcriptions side by side (default: one per core, at most 4)")
    a = ap.parse_args(argv)
    cfg = config(a.full, a.seed)
    cache_root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "asrmerge" / "study"
    work = (a.work or cache_root / cfg.size.name).resolve()
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    say(f"{cfg.size.name} study in {work}")
    base = work / "base"
    if not (base / "model.safetensors").is_file():
        asrmerge("convert", "packaged:base", "--dtype", "fp32", "-o", f"{base}/", "-q")
    manifests = data.build(work / "data", cfg.size, cfg.seed)
    say("data ready: " + ", ".join(f"{k} {sum(1 for _ in v.open())}" for k, v in manifests.items()))
    fts = finetunes(cfg, base, manifests, cache_root / "finetunes" / cfg.size.name)
    say(f"fine-tunes ready in {time.perf_counter() - t0:.0f} s; asrmerge study")
    study = work / "study"
    asrmerge(*study_args(cfg, base, fts, manifests, study, a.jobs))
    results = (a.results or (ROOT / "tests" / "bench" / "results" / "study" if a.full else study)).resolve()
    if results != study.resolve():
        results.mkdir(parents=True, exist_ok=True)
        for name in RESULT_FILES:
            if (study / name).is_file():
                shutil.copy2(study / name, results / name)
    with (results / "results.md").open("a") as f:
        f.write(appendix(cfg, fts, study, a.full))
    say(f"done in {(time.perf_counter() - t0) / 60:.1f} min; results in {results}")
    print((results / "results.md").read_text())


if __name__ == "__main__":
    main()
