"""asrmerge study --emit slurm on the tiny fixtures of test_study.py: the scripts and their chain, the jobs run
in dependency order by a one-machine sbatch (tests/sbatch_emulator.py) giving the study a local run gives,
bad input refused, and (marker ``slurm``, by hand: pytest -m slurm) the same on a real one-node Slurm
started by bin/slurm-local."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from asrmerge.cli.main import app
from asrmerge.study.plan import Step
from asrmerge.study.shards import join
from tests.conftest import ROOT
from tests.test_study import args, fx  # noqa: F401 (fx: the fixture, shared)

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
JOBS = ["taskvec", "merge-ta", "merge-tsvm", "dev-tsvm-lam0.8", "dev-tsvm-lam1.2", "test-joint", "test-ta", "own-a",
        "own-b", "choose"]


def emit_argv(fx: dict[str, Path], out: Path, dest: Path, *more: str) -> list[str]:  # noqa: F811
    return [*args(fx, out), "--emit", "slurm", str(dest), "--array-size", "2", *more]


def asrmerge(*argv: str, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "asrmerge", *argv], capture_output=True, text=True,
                          env=env or ENV, timeout=timeout)


def chain(submit: Path) -> dict[str, list[str]]:
    """submit.sh's jobs, in order, each with the jobs it waits for (afterok)."""
    var: dict[str, str] = {}
    out: dict[str, list[str]] = {}
    for line in submit.read_text().splitlines():
        m = re.fullmatch(r"(j\d+)=\$\(sbatch --parsable(?: --kill-on-invalid-dep=yes --dependency=afterok:(\S+))? "
                         r"\S+/([\w.+-]+)\.sbatch\)", line)
        if m:
            var[m[1]] = m[3]
            out[m[3]] = [var[v.lstrip("$")] for v in (m[2] or "").split(":") if v]
    return out


@pytest.fixture(scope="module")
def local(fx: dict[str, Path]) -> Path:  # noqa: F811
    """The study run here, as a plain asrmerge study."""
    out = fx["root"] / "local"
    r = asrmerge(*args(fx, out))
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def comparable(study: Path) -> dict[str, Any]:
    table = json.loads((study / "table.json").read_text())
    table.pop("meta")
    return table


def records(path: Path) -> list[dict[str, Any]]:
    """A transcript's records in order, without ``model`` (the model's path from the study folder, which is
    elsewhere)."""
    return [{k: v for k, v in json.loads(x).items() if k != "model"} for x in path.read_text().splitlines()]


def same_study(study: Path, local: Path) -> None:
    """Every figure of table.json but the run's own (date, times, counts) and every transcript, in order, are
    those of the local run."""
    assert comparable(study) == comparable(local)
    hyps = sorted(p.relative_to(local) for p in (local / "hyp").rglob("*.jsonl"))
    assert hyps and sorted(p.relative_to(study) for p in (study / "hyp").rglob("*.jsonl")) == hyps
    for h in hyps:
        assert records(study / h) == records(local / h), h


# --- the scripts ------------------------------------------------------------------------------------------------


def test_emit_writes_the_jobs_chained_and_nothing_else(fx: dict[str, Path], tmp_path: Path) -> None:  # noqa: F811
    out, dest = tmp_path / "study", tmp_path / "jobs"
    r = asrmerge(*emit_argv(fx, out, dest, "--sbatch=--partition=gpu", "--sbatch", "--time=30"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == (f"wrote 10 Slurm jobs (6 transcription arrays of 2 tasks) to {dest}; submit them "
                                f"with: bash {dest}/submit.sh")
    assert sorted(p.name for p in out.rglob("*")) == ["steps"]  # what a run makes first, nothing more
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        [f"{j}.sbatch" for j in JOBS] + ["submit.sh", "jobs.json", "study.json", "logs"])
    for script in [*dest.glob("*.sbatch"), dest / "submit.sh"]:
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0, script
    deps = chain(dest / "submit.sh")
    assert list(deps) == JOBS
    assert deps["taskvec"] == [] and deps["merge-ta"] == deps["merge-tsvm"] == ["taskvec"]
    assert deps["dev-tsvm-lam0.8"] == deps["dev-tsvm-lam1.2"] == ["merge-tsvm"]
    assert deps["test-ta"] == ["merge-ta"] and deps["test-joint"] == deps["own-a"] == deps["own-b"] == []
    assert deps["choose"] == JOBS[:-1]
    listed = json.loads((dest / "jobs.json").read_text())["jobs"]
    assert {j["name"]: j["after"] for j in listed} == deps
    dev = (dest / "dev-tsvm-lam0.8.sbatch").read_text()
    assert "#SBATCH --array=1-2\n#SBATCH --partition=gpu\n#SBATCH --time=30\n" in dev
    assert "asrmerge transcribe merged/tsvm-lam0.8/ " in dev and "--resume" in dev and dev.endswith("--shard auto\n")
    assert re.search(r'-o shards/transcribe-dev-tsvm-lam0\.8/[0-9a-f]{20}/"\$K-of-\$N\.jsonl"', dev)
    joint = (dest / "test-joint.sbatch").read_text()  # one array per system: its test set and its extra set
    assert "shards/transcribe-test-joint/" in joint and "shards/transcribe-english-joint/" in joint
    assert "--steps merge-tsvm" in (dest / "merge-tsvm.sbatch").read_text()
    choose = (dest / "choose.sbatch").read_text()
    assert f"--emit slurm {dest}/test --stage test --array-size 2 --sbatch=--partition=gpu --sbatch=--time=30" in choose
    assert choose.rstrip().endswith(f"bash {dest}/test/submit.sh")
    # the options travel in study.json: the same options, read back
    def commands(plan: str) -> list[str]:  # the dry run's commands (its time estimates are measured each time)
        return [x for x in plan.splitlines() if x.startswith("asrmerge ")]

    r = asrmerge("study", "--config", str(dest / "study.json"), "--dry-run")
    assert r.returncode == 0 and commands(r.stdout) == commands(asrmerge(*args(fx, out), "--dry-run").stdout)
    assert len(commands(r.stdout)) == 25
    # a second emit replaces the folder it wrote (its logs kept)
    (dest / "logs" / "old.out").write_text("x")
    r = asrmerge(*emit_argv(fx, out, dest))
    assert r.returncode == 0, r.stderr
    assert (dest / "logs" / "old.out").read_text() == "x" and "--partition" not in (dest / "taskvec.sbatch").read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# --- the jobs run in their order ------------------------------------------------------------------------------------


def sbatch_on_path(folder: Path) -> dict[str, str]:
    """The environment with tests/sbatch_emulator.py as ``sbatch``; its job list in ``folder``/jobs.log."""
    folder.mkdir(parents=True, exist_ok=True)
    tool = folder / "sbatch"
    tool.write_text(f"#!/bin/sh\nexec {sys.executable} {ROOT / 'tests' / 'sbatch_emulator.py'} \"$@\"\n")
    tool.chmod(0o755)
    return {**ENV, "PATH": f"{folder}:{os.environ['PATH']}", "SBATCH_EMULATOR_LOG": str(folder / "jobs.log")}


def test_the_jobs_run_in_their_order_give_the_local_study(fx: dict[str, Path], local: Path,  # noqa: F811
                                                          tmp_path: Path) -> None:
    out, dest = tmp_path / "study", tmp_path / "jobs"
    r = asrmerge(*emit_argv(fx, out, dest))
    assert r.returncode == 0, r.stderr
    env = sbatch_on_path(tmp_path / "bin")
    t0 = time.perf_counter()
    r = subprocess.run(["bash", str(dest / "submit.sh")], capture_output=True, text=True, env=env, timeout=1800)
    assert r.returncode == 0, r.stderr
    ran = [json.loads(x) for x in (tmp_path / "bin" / "jobs.log").read_text().splitlines()]
    logs = "\n".join(p.read_text() for p in sorted((dest / "logs").iterdir()))
    assert [j["state"] for j in ran] == ["COMPLETED"] * 12, logs[-4000:]
    # stage 2, written and submitted by the choose job: the chosen lambda's model on test, then the score job
    assert [j["name"] for j in ran[10:]] == ["asrmerge-test-tsvm", "asrmerge-score"]
    assert ran[10]["tasks"] == 2 and ran[11]["after"] == [ran[10]["id"]]
    assert r.stdout.splitlines() == [f"asrmerge-{j} {1000 + i}" for i, j in enumerate(JOBS)]
    same_study(out, local)
    score = next((dest / "logs").glob("asrmerge-score-*.out")).read_text()
    assert "joined transcribe-test-tsvm from 2 shard files" in score
    # best-vs-next is a step only where the next merge's transcripts differ from the best's (meta.same_as_best)
    runs = 9 if json.loads((out / "table.json").read_text())["meta"]["same_as_best"] else 10
    assert f"done: {runs} steps run, 15 kept, 2 joined from shard jobs" in score, score[-2000:]
    choose = next((dest / "logs").glob("asrmerge-choose-*.out")).read_text()
    assert "joined transcribe-dev-tsvm-lam0.8 from 2 shard files" in choose and " run transcribe" not in choose
    # the study run here afterwards keeps everything, and the shard files stay for resubmitted tasks
    r = asrmerge(*args(fx, out))
    stamps = len(list((out / "steps").glob("*.json")))
    assert r.returncode == 0 and f"done: 0 steps run, {stamps} kept;" in r.stderr, r.stderr
    assert len(list((out / "shards").glob("*/*/*-of-2.jsonl"))) == 2 * 10  # 10 transcriptions, 2 shards each
    # emitted again, only the choose job is left (it would find everything done)
    r = asrmerge(*emit_argv(fx, out, dest))
    assert r.returncode == 0 and r.stdout.startswith("wrote 1 Slurm job (0 transcription arrays"), r.stdout
    assert chain(dest / "submit.sh") == {"choose": []} and len(list((dest / "logs").iterdir())) == 19
    print(f"emulated Slurm run: {time.perf_counter() - t0:.0f} s")


def test_a_transcription_is_joined_only_from_complete_shards(tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"id": f"u{i}", "audio": "x.wav", "set": s}) + "\n"
                                for i, s in enumerate(["test", "dev", "test", "test"])))
    step = Step("transcribe-test-x", ["transcribe", "model/", "m.jsonl", "-o", "hyp/x.jsonl", "--resume", "--where",
                                      "set=test"], ["hyp/x.jsonl"], [])
    shards = tmp_path / "shards" / step.id / "k1"
    shards.mkdir(parents=True)
    (shards / "1-of-2.jsonl").write_text('{"id": "u2", "hyp": "b"}\n{"id": "u0", "hyp": "a"}\n')
    (shards / "2-of-2.jsonl").write_text('{"id": "u3", "error": "boom"}\n{"id": "u3", "hy')  # failed, then cut short
    assert join(tmp_path, step, "k1") == 0 and not (tmp_path / "hyp").exists()
    (shards / "2-of-2.jsonl").write_text('{"id": "u3", "hyp": "c"}\n')
    stale = tmp_path / "shards" / step.id / "k0"  # another command's shards
    stale.mkdir()
    assert join(tmp_path, step, "k0") == 0
    assert join(tmp_path, step, "k1") == 2
    assert (tmp_path / "hyp" / "x.jsonl").read_text() == ('{"id": "u0", "hyp": "a"}\n{"id": "u2", "hyp": "b"}\n'
                                                          '{"id": "u3", "hyp": "c"}\n')
    assert not stale.exists() and shards.is_dir()


# --- bad input: one line, exit 2, nothing written -----------------------------------------------------------------


@pytest.mark.parametrize("case", ["unknown scheduler", "foreign folder", "inside the study", "without --emit"])
def test_bad_emit_is_one_line_and_writes_nothing(case: str, fx: dict[str, Path], tmp_path: Path) -> None:  # noqa: F811
    out, dest = tmp_path / "study", tmp_path / "jobs"
    argv = emit_argv(fx, out, dest)
    if case == "unknown scheduler":
        argv[argv.index("slurm")] = "pbs"
        message = "--emit: 'pbs' is not a scheduler asrmerge writes jobs for; use --emit slurm DIR"
    elif case == "foreign folder":
        dest.mkdir()
        (dest / "notes.txt").write_text("mine")
        message = f"--emit slurm {dest}: holds files that asrmerge study --emit did not write"
    elif case == "inside the study":
        argv[argv.index(str(dest))] = str(out / "jobs")
        message = "are inside each other"
    else:
        argv = [*args(fx, out), "--array-size", "2"]
        message = "--sbatch, --array-size, --stage: go with --emit slurm DIR"
    r = CliRunner().invoke(app, argv)
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2, r.output
    assert len(lines) == 1 and lines[0].startswith("asrmerge study: error: ") and message in lines[0], lines
    assert not out.exists()
    assert not dest.exists() or [p.name for p in dest.iterdir()] == ["notes.txt"]


def test_steps_refuses_a_step_whose_inputs_are_not_done(fx: dict[str, Path], tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "study"
    r = CliRunner().invoke(app, [*args(fx, out), "--steps", "merge-ta"])
    assert r.exit_code == 1, r.output
    assert ("--steps merge-ta: the study stopped before it, at taskvec-a (not done yet); run the jobs in their order"
            in r.stderr)
    assert sorted(p.name for p in out.rglob("*")) == ["steps"]


# --- a real one-node Slurm (bin/slurm-local), by hand: pytest -m slurm ------------------------------------------


@pytest.fixture(scope="module")
def slurm() -> Any:
    missing = [t for t in ("sbatch", "squeue", "slurmctld", "slurmd", "munged") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"Slurm is not installed ({', '.join(missing)} missing): apt-get install -y slurm-wlm munge")
    r = subprocess.run([str(ROOT / "bin" / "slurm-local"), "start"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"bin/slurm-local start failed: {r.stderr}"
    folder = Path(os.environ.get("SLURM_LOCAL", "/tmp/asrmerge-slurm"))
    yield {**ENV, "SLURM_CONF": str(folder / "slurm.conf")}
    subprocess.run([str(ROOT / "bin" / "slurm-local"), "stop"], timeout=60)


@pytest.mark.slurm
def test_the_study_runs_on_a_real_slurm(slurm: dict[str, str], fx: dict[str, Path], local: Path,  # noqa: F811
                                        tmp_path: Path) -> None:
    out, dest = tmp_path / "study", tmp_path / "jobs"
    r = asrmerge(*emit_argv(fx, out, dest), env=slurm)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["bash", str(dest / "submit.sh")], capture_output=True, text=True, env=slurm, timeout=120)
    assert r.returncode == 0, r.stderr
    ids = {line.split()[1] for line in r.stdout.splitlines()}
    assert len(ids) == len(JOBS)
    deadline = time.time() + 1800
    while time.time() < deadline:  # stage 2 is submitted by the choose job: wait until no job of ours is left
        q = subprocess.run(["squeue", "-h", "-o", "%j %T %r"], capture_output=True, text=True, env=slurm)
        mine = [x for x in q.stdout.splitlines() if x.startswith("asrmerge-")]
        if not mine and (dest / "test" / "submit.sh").exists() and (out / "table.json").exists():
            break
        assert not any("DependencyNeverSatisfied" in x for x in mine), q.stdout
        time.sleep(5)
    logs = "\n".join(p.read_text() for p in sorted((dest / "logs").iterdir()))
    assert (out / "table.json").exists(), logs[-4000:]
    jobs = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True, text=True, env=slurm).stdout
    names = {}
    for line in jobs.splitlines():
        name = re.search(r"JobName=(\S+)", line)
        if name and name[1].startswith("asrmerge-") and re.search(r"JobId=\d+ ", line):
            state = re.search(r"JobState=(\S+)", line)
            names.setdefault(name[1], set()).add(state[1] if state else "?")
    assert names and all(s == {"COMPLETED"} for s in names.values()), names
    assert {"asrmerge-choose", "asrmerge-test-tsvm", "asrmerge-score"} <= set(names)
    same_study(out, local)


def test_the_jobs_options_file_gives_the_same_options() -> None:
    """study.json (config.as_config) read back is the options it was written from, every option among them."""
    from asrmerge.study import config as cf

    flags = {"finetunes": ["a=/m/a", "b=/m/b"], "base": "/m/base", "joint": "/m/all", "zero-shot": False,
             "manifest": "/d/all.jsonl", "extra": ["en=/d/en.jsonl"], "algos": "ta,iso-c,boosted-tsvm",
             "variant": ["iso-c-full=iso-c:rank_mode=full"], "lam": ["0.5,1.0", "ta:0.3"], "beta": "0.3,1.0",
             "language": "pt", "chunk-length": 10, "batch-size": 2, "beam-size": 3, "max-new-tokens": 50,
             "normalizer": "none", "jobs": 2, "device": "cpu", "output": "/s"}
    opts = cf.build(flags, {})
    assert cf.build({}, json.loads(json.dumps(cf.as_config(opts)))) == opts
    assert opts.variants and opts.betas and len(opts.transcribe) == 4 and opts.lams["ta"] == [0.3]
