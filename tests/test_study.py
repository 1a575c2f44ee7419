"""asrmerge study on tiny fixtures: a whole study (killed with kill -9 mid-run, then resumed), the plan of a
dry run and its estimate (against the study it plans), a config file, and every bad input refused in one line
before any work."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from asrmerge.cli.main import app
from tests.conftest import AUDIO, ROOT
from tests.factory import make_finetune, make_whisper

FAST = ["--language", "en", "--batch-size", "1", "--max-new-tokens", "2"]
RESULTS = ("results.md", "table.json", "per-domain.jsonl", "svd-summary.json", "commands.sh", "chart.png",
           "svd-inspect.png")


def _hyps(study: Path, system: str) -> list[str]:
    """A system's test hypotheses, in record order, from a study folder."""
    return [json.loads(x)["hyp"] for x in (study / "hyp" / "test" / f"{system}.jsonl").read_text().splitlines()]


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def fx(tiny_asr: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Fine-tunes a and b and a joint one of the tiny ASR model; dev, test (domains a, b and the OOD c) and an
    English extra set of real speech from tests/data/audio, audio paths relative to the manifests."""
    root = tmp_path_factory.mktemp("studyfx")
    out = {"base": tiny_asr, "a": make_finetune(tiny_asr, root / "ft-a", seed=1),
           "b": make_finetune(tiny_asr, root / "ft-b", seed=2), "joint": make_finetune(tiny_asr, root / "ft-all", seed=3)}
    recs = [json.loads(x) for x in (AUDIO / "english.jsonl").read_text().splitlines()]
    data = root / "data"
    data.mkdir()

    def rec(i: int, domain: str, s: str) -> dict[str, Any]:
        r = recs[i]
        return {"id": r["id"], "audio": os.path.relpath(AUDIO / r["audio"], data), "text": r["text"], "domain": domain,
                "set": s}

    out["dev"] = _write(data / "dev.jsonl", [rec(1, "a", "dev"), rec(2, "b", "dev")])
    out["test"] = _write(data / "test.jsonl", [rec(3, "a", "test"), rec(4, "b", "test"), rec(5, "c", "test")])
    out["both"] = _write(data / "both.jsonl", [*map(json.loads, out["dev"].read_text().splitlines()),
                                                *map(json.loads, out["test"].read_text().splitlines())])
    out["en"] = _write(data / "en.jsonl", [{"id": "jfk", "audio": os.path.relpath(AUDIO / "jfk.wav", data),
                                            "text": recs[0]["text"], "language": "en"}])
    out["root"] = root
    return out


def args(fx: dict[str, Path], out: Path, *more: str) -> list[str]:
    return ["study", "--base", str(fx["base"]), f"a={fx['a']}", f"b={fx['b']}", "--joint", str(fx["joint"]),
            "--dev", str(fx["dev"]), "--test", str(fx["test"]), "--extra", f"english={fx['en']}",
            "--algos", "ta,tsvm", "--lam", "tsvm:0.8,1.2", "--no-zero-shot", *FAST, "-o", str(out), *more]


def study_process(argv: list[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    return subprocess.Popen([sys.executable, "-m", "asrmerge", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)


def done_stamps(out: Path) -> dict[str, dict[str, Any]]:
    found = {}
    for p in (out / "steps").glob("*.json"):
        try:
            stamp = json.loads(p.read_text())
        except ValueError:
            continue
        if stamp.get("state") == "done":
            found[stamp["id"]] = stamp
    return found


def mtime(path: Path) -> int:
    return (path / "model.safetensors" if path.is_dir() else path).stat().st_mtime_ns


def children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if f"PPid:\t{pid}\n" in (d / "status").read_text():
                    out.append(int(d.name))
            except OSError:
                pass
    return out


@pytest.fixture(scope="module")
def run(fx: dict[str, Path]) -> dict[str, Any]:
    """The study killed with kill -9 once its first dev transcription is done, then run again to the end."""
    out = fx["root"] / "study"
    p = study_process(args(fx, out))
    deadline = time.time() + 600
    while time.time() < deadline and p.poll() is None:
        if any(s.startswith("transcribe-dev-") for s in done_stamps(out)):
            break
        time.sleep(0.2)
    assert p.poll() is None, p.stderr.read().decode() if p.stderr else ""
    kids = children(p.pid)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    for k in kids:  # the step running when the study died ends too (it was sent SIGTERM)
        while Path(f"/proc/{k}").exists() and "zombie" not in Path(f"/proc/{k}/status").read_text():
            time.sleep(0.1)
    before = done_stamps(out)
    times = {o: mtime(out / o) for s in before.values() for o in s["outputs"] if (out / o).exists()}
    second = study_process(args(fx, out))
    stdout, stderr = second.communicate(timeout=1200)
    assert second.returncode == 0, stderr.decode()[-3000:]
    return {"out": out, "before": before, "times": times, "stdout": stdout.decode(), "stderr": stderr.decode(),
            "table": json.loads((out / "table.json").read_text())}


def test_a_killed_study_resumes_without_redoing_finished_steps(run: dict[str, Any]) -> None:
    out, before, err = run["out"], run["before"], run["stderr"]
    assert {"taskvec-a", "taskvec-b", "merge-ta", "merge-tsvm"} <= set(before)
    for sid in before:
        assert f"asrmerge study: kept {sid} (finished earlier)" in err, sid
        assert f"asrmerge study: run {sid}\n" not in err and f"redo {sid}" not in err, sid
    pruned = {o for p in (out / "steps").glob("*.json") for o in json.loads(p.read_text()).get("pruned", [])}
    assert len(pruned) == 1 and pruned < set(run["times"])  # the lambda not chosen: its model removed on purpose
    for o, t in run["times"].items():  # kept outputs were not written again
        if o not in pruned:
            assert mtime(out / o) == t, o
    ran = [line.split()[3] for line in err.splitlines() if line.startswith(("asrmerge study: run ", "asrmerge study: redo "))]
    assert ran and not set(ran) & set(before)
    assert "resume the study in" in err and f"{len(before)} kept" in err


def test_every_output_is_written_without_absolute_paths(run: dict[str, Any]) -> None:
    out = run["out"]
    for name in RESULTS:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for png in ("chart.png", "svd-inspect.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("results.md", "table.json", "per-domain.jsonl", "svd-summary.json", "commands.sh"):
        text = (out / name).read_text()
        assert str(out.parent) not in text and str(ROOT) not in text and "/tmp" not in text, name
    assert run["stdout"].strip() == (out / "results.md").read_text().strip()
    summary = json.loads((out / "svd-summary.json").read_text())
    assert summary["subjects"] == ["tv/a.safetensors", "tv/b.safetensors"] and summary["merged"].startswith("merged/")


def test_the_table_has_every_system_and_set(run: dict[str, Any]) -> None:
    table = run["table"]
    assert table["columns"] == ["id", "ood", "all", "english"]
    assert list(table["rows"]) == ["fine-tunes (own domain)", "joint", "ta", "tsvm"]
    for name, row in table["rows"].items():
        assert set(row) == {"id", "ood", "all", "english"}
        assert all(v is None or v >= 0 for v in row.values()), name
        if name != "fine-tunes (own domain)":
            assert None not in row.values(), name
    records = [json.loads(x) for x in (run["out"] / "per-domain.jsonl").read_text().splitlines()]
    pairs = {(r["system"], r["domain"]) for r in records}
    assert pairs == {("fine-tune:a", "a"), ("fine-tune:b", "b"),
                     *((s, d) for s in ("joint", "ta", "tsvm") for d in ("a", "b", "c"))}
    assert all(r["utterances"] == 1 and r["ref_words"] > 0 for r in records)
    md = (run["out"] / "results.md").read_text()
    for section in ("## Per domain", "## Lambda sweep", "## Significance"):
        assert section in md
    best = table["meta"]["best"]
    (other,) = {"ta", "tsvm"} - {best}
    # the other merge is compared with the best unless it transcribed every test utterance the same way
    twin = _hyps(run["out"], other) == _hyps(run["out"], best)
    assert set(table["compare"]) == ({"joint"} if twin else {"joint", other})
    assert table["meta"]["same_as_best"] == ([other] if twin else [])
    for doc in table["compare"].values():
        assert doc["utterances"] == 3 and 0 <= doc["mapsswe"]["p"] <= 1


def test_lambda_is_chosen_on_dev_and_the_others_removed(run: dict[str, Any]) -> None:
    out = run["out"]
    lam = run["table"]["lambda"]["tsvm"]
    dev = lam["dev"]
    assert set(dev) == {"0.8", "1.2"}
    assert dev[f"{lam['chosen']:.1f}"] == min(dev.values())
    assert lam["chosen"] == min((0.8, 1.2), key=lambda v: (dev[f"{v:.1f}"], v))  # ties: the first
    assert {p.name for p in (out / "merged").iterdir()} == {"ta", f"tsvm-lam{lam['chosen']:.1f}"}
    dev_hyps = [json.loads(x) for x in (out / "hyp" / "dev" / "tsvm-lam0.8.jsonl").read_text().splitlines()]
    assert [r["domain"] for r in dev_hyps] == ["a", "b"]  # the dev records of the fine-tunes' domains
    test_hyps = [json.loads(x) for x in (out / "hyp" / "test" / "tsvm.jsonl").read_text().splitlines()]
    assert {r["model"] for r in test_hyps} == {f"merged/tsvm-lam{lam['chosen']:.1f}/"}
    own = [json.loads(x) for x in (out / "hyp" / "own" / "a.jsonl").read_text().splitlines()]
    assert [r["domain"] for r in own] == ["a"]
    english = [json.loads(x) for x in (out / "hyp" / "extra-english" / "ta.jsonl").read_text().splitlines()]
    assert [r["hyp_language"] for r in english] == ["en"]


def test_commands_sh_lists_every_step_as_asrmerge_commands(run: dict[str, Any]) -> None:
    script = run["out"] / "commands.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    lines = [x for x in script.read_text().splitlines() if x and not x.startswith(("#", "set ", "HERE=", "mkdir "))]
    inputs = [x for x in lines if "=${" in x.split()[0]]
    assert [x.split("=")[0] for x in inputs] == ["BASE", "FT_a", "FT_b", "JOINT", "DEV", "TEST", "EXTRA_english"]
    commands = [shlex.split(x) for x in lines[len(inputs):]]
    commands = [[w for w in c if not w.startswith(("OMP_NUM_THREADS=", "MKL_NUM_THREADS="))] for c in commands]
    assert all(c[0] == "asrmerge" for c in commands)
    assert {c[1] for c in commands} == {"taskvec", "merge", "svd-inspect", "transcribe", "wer"}
    stamps = [json.loads(p.read_text()) for p in (run["out"] / "steps").glob("*.json")]
    assert len(commands) == len(stamps)


def test_a_finished_study_run_again_keeps_everything(run: dict[str, Any], fx: dict[str, Path]) -> None:
    r = subprocess.run([sys.executable, "-m", "asrmerge", *args(fx, run["out"])], capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}, timeout=600)
    assert r.returncode == 0, r.stderr.decode()
    err = r.stderr.decode()
    assert " run " not in err and "redo" not in err
    assert f"done: 0 steps run, {len(list((run['out'] / 'steps').glob('*.json')))} kept" in err


# --- plans and configs: nothing run, nothing written ----------------------------------------------------------


def invoke(*argv: str) -> Any:
    return CliRunner().invoke(app, list(argv))


def test_dry_run_prints_the_plan_and_writes_nothing(fx: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "s"
    r = invoke("study", "--base", str(fx["base"]), f"a={fx['a']}", f"b={fx['b']}", "--manifest", str(fx["both"]),
               "--algos", "ta,tsvm,boosted-tsvm", "--lam", "0.5,1.0", "--beta", "0.3,1.0", "-o", str(out),
               "--max-new-tokens", "2", "--dry-run")  # the rate is measured: the random model runs to the limit
    assert r.exit_code == 0, r.output
    assert not out.exists()
    lines = r.stdout.splitlines()
    assert "asrmerge merge --algo ta --base \"$BASE\" tv/a.safetensors tv/b.safetensors -p lam=0.5,1.0 -o " \
           "'merged/ta-lam{lam}/' -q" in lines
    assert any("-p beta=0.3,1.0 -p 'lam={chosen}'" in x for x in lines)
    assert any(x.startswith('asrmerge transcribe "$BASE" "$MANIFEST" -o hyp/test/zero-shot.jsonl') and
               "--where set=test" in x for x in lines)
    assert any("hyp/dev/tsvm-lam0.5.jsonl" in x and "--where set=dev --where domain=a,b" in x for x in lines)
    # 3 sweeps of 2 lambdas + the beta sweep: 4 merge commands, 8 models; 6 dev runs; zero-shot, 3 merges,
    # 2 betas on test, 2 fine-tunes on their own domain
    assert ("# 4 merge commands writing 8 models; 14 transcriptions (6 on dev, 2 utterances each; "
            "8 on the test and extra sets, 3 test utterances per system); 2 task vectors") in lines
    estimates = lines[lines.index("") + 2:]
    assert [x.split(":")[0] for x in estimates] == ["# disk", "# merge-ta", "# merge-tsvm", "# merge-boosted-tsvm",
                                                     "# merge-boosted-tsvm-beta", "# transcriptions", "# time"]


def test_a_config_file_gives_the_options_and_flags_win(fx: dict[str, Path], tmp_path: Path) -> None:
    cfg = tmp_path / "study.toml"
    rel = os.path.relpath
    cfg.write_text(f'base = "{rel(fx["base"], tmp_path)}"\nalgos = ["ta"]\nlam = {{ ta = "0.3,0.6" }}\n'
                   f'dev = "{rel(fx["dev"], tmp_path)}"\ntest = "{rel(fx["test"], tmp_path)}"\nzero_shot = false\n'
                   f'output = "out"\nchunk-length = 10\nmax-new-tokens = 2\n[finetunes]\na = "{rel(fx["a"], tmp_path)}"\n'
                   f'b = "{rel(fx["b"], tmp_path)}"\n')
    r = invoke("study", "--config", str(cfg), "--dry-run")
    assert r.exit_code == 0, r.output
    assert "--algo ta " in r.stdout and "-p lam=0.3,0.6" in r.stdout and "zero-shot" not in r.stdout
    assert "--chunk-length 10" in r.stdout
    r = invoke("study", "--config", str(cfg), "--algos", "tsvm", "--lam", "1.0", "--zero-shot", "--chunk-length", "5",
               "--dry-run")
    assert r.exit_code == 0, r.output
    assert "--algo ta " not in r.stdout and "--algo tsvm" in r.stdout and "-p lam=1.0 -o merged/tsvm/" in r.stdout
    assert "hyp/test/zero-shot.jsonl" in r.stdout and "--chunk-length 5" in r.stdout
    (tmp_path / "bad.json").write_text(json.dumps({"bases": "x"}))
    r = invoke("study", "--config", str(tmp_path / "bad.json"))
    assert r.exit_code == 2 and "unknown key 'bases'; did you mean 'base'?" in r.output


def test_a_variant_is_a_system_of_its_own_with_its_fixed_parameters(fx: dict[str, Path], tmp_path: Path) -> None:
    """--variant NAME=ALGO:KEY=VALUE: merged with those parameters (the same model as `merge -p KEY=VALUE`),
    its own lambda grid, its own row of the table."""
    import torch
    from safetensors.torch import load_file

    out = tmp_path / "s"
    argv = ["study", "--base", str(fx["base"]), f"a={fx['a']}", f"b={fx['b']}", "--dev", str(fx["dev"]), "--test",
            str(fx["test"]), "--algos", "tsvm", "--variant", "tsvm-full=tsvm:rank_mode=full", "--variant",
            "tsvm-same=tsvm:orth=svd", "--lam", "tsvm-full:0.8,1.2", "--no-zero-shot", *FAST, "-o", str(out)]
    plan = invoke(*argv, "--dry-run")
    assert plan.exit_code == 0, plan.output
    assert ("asrmerge merge --algo tsvm --base \"$BASE\" tv/a.safetensors tv/b.safetensors -p rank_mode=full "
            "-p lam=0.8,1.2 -o 'merged/tsvm-full-lam{lam}/' -q") in plan.stdout.splitlines()
    r = subprocess.run([sys.executable, "-m", "asrmerge", *argv], capture_output=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"})
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    table = json.loads((out / "table.json").read_text())
    assert list(table["rows"])[-3:] == ["tsvm", "tsvm-full", "tsvm-same"]
    # tsvm-same is tsvm with its default spelled out: the same model, so the same transcripts; the significance
    # test compares the best system with the next one whose transcripts differ, never with its own copy
    best, same = table["meta"]["best"], table["meta"]["same_as_best"]
    twins = {"tsvm", "tsvm-same"}
    assert table["lambda"]["tsvm"] == table["lambda"]["tsvm-same"]
    if best in twins:
        assert twins - {best} <= set(same)
    assert all(_hyps(out, n) == _hyps(out, best) for n in same)
    assert not set(table["compare"]) & {best, *same}
    assert all(_hyps(out, n) != _hyps(out, best) for n in table["compare"])
    if same:
        assert f"Not compared with {best}: {', '.join(same)} (the same transcript" in (out / "results.md").read_text()
    lam = table["lambda"]["tsvm-full"]
    assert set(lam["dev"]) == {"0.8", "1.2"} and lam["chosen"] in (0.8, 1.2)
    direct = tmp_path / "direct"
    r = subprocess.run([sys.executable, "-m", "asrmerge", "merge", "--algo", "tsvm", "--base", str(fx["base"]),
                        str(out / "tv" / "a.safetensors"), str(out / "tv" / "b.safetensors"), "-p", "rank_mode=full",
                        "-p", f"lam={lam['chosen']:g}", "-o", f"{direct}/", "-q"], capture_output=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr.decode()
    a = load_file(out / "merged" / f"tsvm-full-lam{lam['chosen']:g}" / "model.safetensors")
    b = load_file(direct / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_best_vs_next_skips_systems_whose_transcripts_equal_the_best(tmp_path: Path) -> None:
    from asrmerge.study.runner import _next_distinct

    hyp = tmp_path / "hyp" / "test"
    hyp.mkdir(parents=True)
    words = {"best": ["a b", "c"], "copy": ["a b", "c"], "other": ["a b", "d"], "last": ["x", "y"]}
    for name, texts in words.items():
        _write(hyp / f"{name}.jsonl", [{"id": f"u{i}", "hyp": h, "model": f"merged/{name}/"} for i, h in enumerate(texts)])
    assert _next_distinct(tmp_path, "best", ["copy", "other", "last"]) == (["copy"], "other")
    assert _next_distinct(tmp_path, "best", ["other", "copy"]) == ([], "other")
    assert _next_distinct(tmp_path, "best", ["copy"]) == (["copy"], None)


# --- bad input: one line, the documented exit code, nothing written ----------------------------------------------


@pytest.fixture(scope="module")
def other_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_whisper(tmp_path_factory.mktemp("other") / "wide", seed=5, d_model=32, ffn=64)


def bad_cases(fx: dict[str, Path], other: Path, tmp: Path) -> dict[str, tuple[list[str], int, str]]:
    common = ["--base", str(fx["base"]), "--dev", str(fx["dev"]), "--test", str(fx["test"])]
    nodomain = _write(tmp / "nodomain.jsonl", [{"id": "x", "audio": str(AUDIO / "jfk.wav"), "text": "x"}])
    first = json.loads(fx["dev"].read_text().splitlines()[0])
    first["audio"] = str((fx["dev"].parent / first["audio"]).resolve())  # relative to the manifest it came from
    dev_a = _write(tmp / "dev-a.jsonl", [first])
    noref = _write(tmp / "noref.jsonl", [{"id": "x", "audio": str(AUDIO / "jfk.wav")}])
    return {
        "another base": ([*common, f"a={fx['a']}", f"b={other}"], 3,
                         f"b={other}: is not a fine-tune of {fx['base']}: model.decoder.embed_positions.weight: "
                         "shape [448, 32] vs [448, 16]"),
        "no such domain": ([*common, f"a={fx['a']}", f"x={fx['b']}"], 3, "no record has domain 'x' (domains: a, b, c)"),
        "no domain field": (["--base", str(fx["base"]), f"a={fx['a']}", "--dev", str(nodomain), "--test",
                             str(fx["test"])], 3, f"{nodomain}: line 1: no \"domain\" field"),
        "no dev records": (["--base", str(fx["base"]), f"a={fx['a']}", f"b={fx['b']}", "--dev", str(dev_a), "--test",
                            str(fx["test"])], 3, "domain 'b' has no dev records"),
        "extra without references": ([*common, f"a={fx['a']}", "--extra", f"en={noref}"], 3,
                                     f"{noref}: line 1: no reference (\"text\")"),
        "name twice": ([*common, f"a={fx['a']}", f"a={fx['b']}"], 2, "FINETUNE: NAME 'a' is given twice"),
        "extra name twice": ([*common, f"a={fx['a']}", "--extra", f"en={fx['en']}", "--extra", f"en={fx['en']}"], 2,
                             "--extra: NAME 'en' is given twice"),
        "unknown algorithm": ([*common, f"a={fx['a']}", "--algos", "ta,tsvn"], 2,
                              "--algo: unknown algorithm 'tsvn'; did you mean 'tsvm'?"),
        "lambda of a parameter-space algorithm": ([*common, f"a={fx['a']}", "--algos", "soup", "--lam", "soup:0.5"], 2,
                                                  "soup has no lambda"),
        "variant named as an algorithm": ([*common, f"a={fx['a']}", "--algos", "tsvm", "--variant",
                                           "tsvm=iso-c:rank_mode=full"], 2, "--variant: NAME 'tsvm' is given twice"),
        "variant with an unknown parameter": ([*common, f"a={fx['a']}", "--variant", "x=iso-c:rank_mod=full"], 2,
                                              "--variant: 'x=iso-c:rank_mod=full': iso-c has no parameter 'rank_mod'; "
                                              "did you mean 'rank_mode'?"),
        "variant fixing lambda": ([*common, f"a={fx['a']}", "--variant", "x=ta:lam=0.5"], 2,
                                  "--variant: 'x=ta:lam=0.5': lambda is chosen on dev; give its grid with --lam x:GRID"),
    }


CASES = ["another base", "no such domain", "no domain field", "no dev records", "extra without references",
         "name twice", "extra name twice", "unknown algorithm", "lambda of a parameter-space algorithm",
         "variant named as an algorithm", "variant with an unknown parameter", "variant fixing lambda"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_before_any_work(case: str, fx: dict[str, Path], other_base: Path, tmp_path: Path) -> None:
    argv, code, message = bad_cases(fx, other_base, tmp_path)[case]
    out = tmp_path / "never"
    r = CliRunner().invoke(app, ["study", *argv, "-o", str(out)])
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == code, r.output
    assert len(lines) == 1 and lines[0].startswith("asrmerge study: error: ") and message in lines[0], lines
    assert r.stdout == "" and not out.exists()


def test_an_unrelated_output_folder_is_refused(fx: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("x")
    r = invoke("study", "--base", str(fx["base"]), f"a={fx['a']}", "--dev", str(fx["dev"]), "--test", str(fx["test"]),
               "-o", str(tmp_path))
    assert r.exit_code == 2 and "holds something else than an earlier study" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


def test_a_changed_option_redoes_only_the_steps_it_changes(run: dict[str, Any], fx: dict[str, Path]) -> None:
    """A copy of the finished study beside it (its inputs' relative paths still hold) run with another
    --normalizer: the task vectors, merges and transcripts are kept, every score is made again."""
    import shutil

    copy = fx["root"] / "study-copy"
    shutil.copytree(run["out"], copy)
    argv = [a if a != str(run["out"]) else str(copy) for a in args(fx, run["out"])]
    r = subprocess.run([sys.executable, "-m", "asrmerge", *argv, "--normalizer", "none"], capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}, timeout=600)
    assert r.returncode == 0, r.stderr.decode()
    err = r.stderr.decode()
    kept = {line.split()[3] for line in err.splitlines() if line.startswith("asrmerge study: kept ")}
    ran = {line.split()[3] for line in err.splitlines() if line.startswith("asrmerge study: run ")}
    assert kept and all(s.split("-")[0] in ("taskvec", "merge", "transcribe", "svd") for s in kept)
    assert ran and all(s.split("-")[0] in ("wer", "compare") for s in ran)
    assert not any(s.startswith("transcribe") for s in ran)
    assert json.loads((copy / "scores" / "test" / "ta.json").read_text())["normalizer"] == "none"


def test_a_lambda_chosen_anew_after_its_model_was_removed_is_merged_again(run: dict[str, Any],
                                                                          fx: dict[str, Path]) -> None:
    """When the dev scores come to favour a lambda whose model was removed (here: edited by hand), the sweep is
    merged again, the other model removed, and the systems that use it are transcribed again."""
    import shutil

    copy = fx["root"] / "study-rechoose"
    shutil.copytree(run["out"], copy)
    lam = run["table"]["lambda"]["tsvm"]["chosen"]
    other = 1.2 if lam == 0.8 else 0.8
    score = copy / "scores" / "dev" / f"tsvm-lam{other:.1f}.json"
    doc = json.loads(score.read_text())
    for g in doc["groups"].values():
        g["wer"] = 0.0
    score.write_text(json.dumps(doc))
    argv = [a if a != str(run["out"]) else str(copy) for a in args(fx, run["out"])]
    r = subprocess.run([sys.executable, "-m", "asrmerge", *argv], capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}, timeout=600)
    assert r.returncode == 0, r.stderr.decode()
    err = r.stderr.decode()
    assert f"tsvm: lambda {other:.1f} is chosen now, but its model was removed: merge again" in err
    assert {p.name for p in (copy / "merged").iterdir()} == {"ta", f"tsvm-lam{other:.1f}"}
    assert "asrmerge study: run transcribe-test-tsvm" in err and "asrmerge study: kept transcribe-test-ta " in err
    assert json.loads((copy / "table.json").read_text())["lambda"]["tsvm"]["chosen"] == other


# --- the dry run's estimate, against the study the run fixture made ----------------------------------------------


def options(fx: dict[str, Path], out: Path) -> Any:
    """The options of :func:`args`, as the library takes them."""
    from asrmerge.study.config import Options

    return Options(base=str(fx["base"]), finetunes={"a": str(fx["a"]), "b": str(fx["b"])}, output=str(out),
                   joint=str(fx["joint"]), zero_shot=False, dev=str(fx["dev"]), test=str(fx["test"]),
                   extras={"english": str(fx["en"])}, algos=["ta", "tsvm"], lams={"tsvm": [0.8, 1.2]},
                   transcribe={"--batch-size": "1", "--max-new-tokens": "2"}, language="en")


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def test_the_dry_run_estimates_disk_and_audio_of_the_study_it_plans(run: dict[str, Any], fx: dict[str, Path],
                                                                    tmp_path: Path) -> None:
    """Disk within 25% of what the study wrote (and at the peak, the removed lambda's model more); the audio is
    that of every record the study transcribed; the transcription time is the measured rate times that audio."""
    import soundfile as sf

    from asrmerge.study.estimate import seconds
    from asrmerge.study.runner import study

    out = tmp_path / "plan"
    plan = study(options(fx, out), dry_run=True)
    c = plan.counts
    assert not out.exists()
    wrote = folder_bytes(run["out"])
    assert abs(c["disk_final_bytes"] - wrote) <= 0.25 * wrote, (c["disk_final_bytes"], wrote)
    model = folder_bytes(run["out"] / "merged" / "ta")  # the lambda not chosen: a model as large, removed
    assert abs(c["disk_peak_bytes"] - c["disk_final_bytes"] - model) <= 0.25 * model
    audio = 0.0
    for hyp in (run["out"] / "hyp").rglob("*.jsonl"):  # records keep "audio" as their manifests (in data/) give it
        for line in hyp.read_text().splitlines():
            audio += sf.info(str(fx["dev"].parent / json.loads(line)["audio"])).duration
    assert c["audio_s"] == pytest.approx(audio)
    assert c["rtf"] > 0 and c["sample"] == 2 and c["load_s"] > 0
    assert c["transcription_s"] == pytest.approx(c["rtf"] * audio + c["load_s"] * c["transcriptions"])
    line = next(x for x in plan.text.splitlines() if x.startswith("# transcriptions: "))
    assert f"real-time factor {c['rtf']:.3f}" in line and "measured now" in line and "2 dev records" in line
    assert plan.text.splitlines()[-1].startswith(f"# time: about {seconds(c['total_s'])} (")


def test_the_dry_run_merge_estimates_are_merges_own_dry_run(run: dict[str, Any], fx: dict[str, Path]) -> None:
    """With one SVD rate and the study's assumed I/O rate (its task vectors do not exist yet to be timed), each
    merge's estimate is what merge's dry run says of the same command on the task vectors the study then made
    (planned before they exist, on the fine-tunes)."""
    from asrmerge.merge.plan import MergeSpec, dry_run, make_plan
    from asrmerge.study.estimate import IO_RATE, merge_reports
    from asrmerge.study.inputs import check_data
    from asrmerge.study.plan import Planner

    opts = options(fx, run["out"])
    pl = Planner(opts, check_data(opts), str(run["out"]))
    reports = merge_reports(pl, [pl.merge(a)[0] for a in opts.algos], svd_rate=1e-9, matmul_rate=1e-11,
                            element_rate=(1e-9, 2e-9))
    tvs = [str(run["out"] / "tv" / "a.safetensors"), str(run["out"] / "tv" / "b.safetensors")]
    for algo, params, output in (("ta", [], "merged/ta/"), ("tsvm", ["lam=0.8,1.2"], "merged/tsvm-lam{lam}/")):
        plan = make_plan(MergeSpec(algo=algo, inputs=tvs, base=str(fx["base"]), params=params, output=output,
                                   check_outputs=False))
        try:
            own = dry_run(plan, svd_rate=1e-9, matmul_rate=1e-11, element_rate=(1e-9, 2e-9), io_rate=IO_RATE)
        finally:
            plan.close()
        ours = reports[f"merge-{algo}"]
        for key in ("svds", "read_bytes", "write_bytes", "peak_bytes_estimate", "seconds_estimate", "outputs"):
            assert ours[key] == own[key], (algo, key)
    assert reports["merge-tsvm"]["svds"] > 0 and len(reports["merge-tsvm"]["outputs"]) == 2
    merged = folder_bytes(run["out"] / "merged" / "ta")
    assert abs(reports["merge-ta"]["model_bytes"] - merged) <= 0.05 * merged
