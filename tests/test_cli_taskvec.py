"""taskvec through real processes and pipes: outputs, exit codes, one-line errors, no partial files."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.conftest import ROOT, cli, read_pty
from tests.factory import tensors


def one_error_line(r: subprocess.CompletedProcess[bytes], code: int, *needles: str) -> str:
    err = r.stderr.decode()
    assert r.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("asrmerge taskvec: error: "), err
    for n in needles:
        assert n in lines[0], err
    return lines[0]


def test_taskvec_apply_roundtrip_through_files(tiny_base: Path, tiny_fts: list[Path], tmp_path: Path) -> None:
    r = cli("taskvec", str(tiny_base), str(tiny_fts[0]), "-o", str(tmp_path / "tv.safetensors"))
    assert r.returncode == 0 and r.stdout == b"", r.stderr
    r = cli("taskvec", "--apply", str(tiny_base), str(tmp_path / "tv.safetensors"), "-o", f"{tmp_path}/back/")
    assert r.returncode == 0, r.stderr
    ft, back = tensors(tiny_fts[0]), tensors(tmp_path / "back")
    assert all(torch.allclose(back[n], ft[n], rtol=0, atol=1e-6) for n in ft)
    assert {"config.json", "generation_config.json"} <= {p.name for p in (tmp_path / "back").iterdir()}
    from transformers import WhisperForConditionalGeneration

    WhisperForConditionalGeneration.from_pretrained(tmp_path / "back")


def test_scale_half_moves_half_way(tiny_base: Path, tiny_fts: list[Path], tmp_path: Path) -> None:
    tv = cli("taskvec", str(tiny_base), str(tiny_fts[1]))
    assert tv.returncode == 0
    r = cli("taskvec", "--apply", "--scale", "0.5", str(tiny_base), "-", "-o", str(tmp_path / "h.st"), input=tv.stdout)
    assert r.returncode == 0, r.stderr
    b, f, h = tensors(tiny_base), tensors(tiny_fts[1]), tensors(tmp_path / "h.st")
    for n in b:
        assert torch.allclose(h[n], (b[n] + f[n]) / 2, atol=1e-6)


def test_stats_through_a_pipe(tiny_base: Path, tiny_fts: list[Path]) -> None:
    """asrmerge taskvec BASE FT | asrmerge taskvec --stats -"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = f"{sys.executable} -m asrmerge taskvec {tiny_base} {tiny_fts[0]} | {sys.executable} -m asrmerge taskvec --stats -"
    r = subprocess.run(cmd, shell=True, capture_output=True, env=env)
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in r.stdout.decode().splitlines()]
    names = list(tensors(tiny_base))
    assert sorted(x["tensor"] for x in records) == sorted(names)
    fc1 = next(x for x in records if x["tensor"].endswith("encoder.layers.0.fc1.weight"))
    assert 0.005 < fc1["rel_norm"] < 0.02 and fc1["zero_frac"] == 0.0 and fc1["dtype"] == "F32"
    r = subprocess.run(cmd + " | head -1", shell=True, capture_output=True, env=env)
    assert r.returncode == 0 and r.stderr == b"" and len(r.stdout.splitlines()) == 1


def test_stats_table_on_a_terminal(tiny_base: Path, tiny_fts: list[Path], tmp_path: Path) -> None:
    cli("taskvec", str(tiny_base), str(tiny_fts[0]), "-o", str(tmp_path / "tv.st"))
    out = run_on_terminal(["taskvec", "--stats", str(tmp_path / "tv.st")])
    assert "rel. norm" in out and "(all)" in out and "model.encoder.layers.0.fc1.weight" in out


def run_on_terminal(args: list[str]) -> str:
    """Run asrmerge with stdout on a pseudo-terminal; return what it printed there."""
    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200", "NO_COLOR": "1"}
    p = subprocess.Popen([sys.executable, "-m", "asrmerge", *args], stdout=slave, stderr=subprocess.PIPE, env=env)
    os.close(slave)
    err = read_pty(master)
    p.wait(timeout=120)
    return err


def test_refuses_to_write_a_checkpoint_to_a_terminal(tiny_base: Path, tiny_fts: list[Path]) -> None:
    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    r = subprocess.run([sys.executable, "-m", "asrmerge", "taskvec", str(tiny_base), str(tiny_fts[0])],
                       stdout=slave, stderr=subprocess.PIPE, env=env, timeout=120)
    os.close(slave)
    os.close(master)
    assert r.returncode == 2
    assert r.stderr.decode().strip() == "asrmerge taskvec: error: -o -: refusing to write a checkpoint to a terminal; use -o FILE or a pipe"


def test_mismatched_shapes_name_every_tensor(tiny_base: Path, tmp_path: Path) -> None:
    bad = {k: v for k, v in tensors(tiny_base).items()}
    bad["model.encoder.layers.0.fc1.weight"] = torch.zeros(48, 16)
    bad["model.decoder.embed_tokens.weight"] = torch.zeros(51866, 16)
    save_file(bad, tmp_path / "bad.safetensors")
    r = cli("taskvec", str(tiny_base), str(tmp_path / "bad.safetensors"), "-o", str(tmp_path / "o.st"))
    err = r.stderr.decode().strip().splitlines()
    assert r.returncode == 3 and len(err) == 2, err
    assert any("fc1.weight: shape [48, 16] vs [32, 16]" in e and "same base model?" in e for e in err)
    assert any("v2 vs v3 vocabulary" in e for e in err)
    assert not (tmp_path / "o.st").exists()


def test_missing_tensor(tiny_base: Path, tmp_path: Path) -> None:
    sd = tensors(tiny_base)
    del sd["model.decoder.layers.0.fc2.bias"]
    save_file(sd, tmp_path / "m.safetensors")
    r = cli("taskvec", str(tiny_base), str(tmp_path / "m.safetensors"), "-o", str(tmp_path / "o.st"))
    one_error_line(r, 3, "tensor model.decoder.layers.0.fc2.bias is missing", "same base model?")
    assert not (tmp_path / "o.st").exists()


def test_truncated_input(tiny_base: Path, tiny_fts: list[Path], tmp_path: Path) -> None:
    data = (tiny_fts[0] / "model.safetensors").read_bytes()
    (tmp_path / "t.safetensors").write_bytes(data[: len(data) - 1000])
    r = cli("taskvec", str(tiny_base), str(tmp_path / "t.safetensors"), "-o", str(tmp_path / "o.st"))
    one_error_line(r, 3, "t.safetensors: is truncated", "re-create it")
    assert not (tmp_path / "o.st").exists()


def test_nan_input(tiny_base: Path, tmp_path: Path) -> None:
    sd = tensors(tiny_base)
    sd["model.decoder.layers.0.fc2.weight"][3, 4] = float("inf")
    save_file(sd, tmp_path / "n.safetensors")
    r = cli("taskvec", str(tiny_base), str(tmp_path / "n.safetensors"), "-o", f"{tmp_path}/out/")
    one_error_line(r, 3, "tensor model.decoder.layers.0.fc2.weight has NaN or Inf")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["n.safetensors"]


def test_pickle_input(tiny_base: Path, tmp_path: Path) -> None:
    torch.save(tensors(tiny_base), tmp_path / "ft.safetensors")
    r = cli("taskvec", str(tiny_base), str(tmp_path / "ft.safetensors"), "-o", str(tmp_path / "o.st"))
    one_error_line(r, 3, "not safetensors", "--tau", "safe_serialization=True")
    assert not (tmp_path / "o.st").exists()


def test_usage_errors(tiny_base: Path, tmp_path: Path) -> None:
    r = cli("taskvec", str(tiny_base), "-o", str(tmp_path / "o.st"))
    one_error_line(r, 2, "expected 2 inputs, got 1", "usage: asrmerge taskvec BASE FT")
    r = cli("taskvec", "--stats", "--apply", str(tiny_base), "x")
    one_error_line(r, 2, "exclude each other")
    r = cli("taskvec", "--dtype", "fp8", str(tiny_base), str(tiny_base))
    assert r.returncode == 2 and b"fp8" in r.stderr
    assert not (tmp_path / "o.st").exists()


def test_old_output_survives_a_failed_run(tiny_base: Path, tmp_path: Path) -> None:
    from asrmerge.conversion import convert

    out = tmp_path / "keep"
    convert(str(tiny_base), f"{out}/")  # an earlier output, which a run may replace
    before = (out / "model.safetensors").read_bytes()
    sd = {k: torch.zeros_like(v) for k, v in tensors(tiny_base).items()}  # a task vector, damaged
    sd["model.decoder.layer_norm.weight"][0] = float("nan")
    save_file(sd, tmp_path / "n.safetensors")
    r = cli("taskvec", "--apply", str(tiny_base), str(tmp_path / "n.safetensors"), "-o", f"{out}/")
    assert r.returncode == 3
    assert (out / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep", "n.safetensors"]


def test_debug_shows_the_traceback(tiny_base: Path, tmp_path: Path) -> None:
    r = cli("taskvec", "--debug", str(tiny_base), str(tmp_path / "nope"), "-o", str(tmp_path / "o.st"))
    assert r.returncode == 1 and b"Traceback" in r.stderr and b"InputError" in r.stderr


@pytest.mark.parametrize("args", [["--help"], ["taskvec", "--help"], ["convert", "-h"], ["merge", "--help"],
                                  ["svd-inspect", "--help"], ["svd-inspect", "-h"], ["transcribe", "--help"],
                                  ["wer", "--help"], ["wer", "-h"]])
def test_help_does_not_import_torch(args: list[str]) -> None:
    code = (f"import sys, runpy; sys.argv=['asrmerge', *{args!r}]\n"
            "try:\n    runpy.run_module('asrmerge', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.stdout.decode().strip().splitlines()[-1] == "False False"


def test_version() -> None:
    from asrmerge import __version__

    r = cli("--version")
    assert r.returncode == 0 and r.stdout.decode().strip() == f"asrmerge {__version__}"


def test_bin_asrmerge_runs_from_the_checkout() -> None:
    r = subprocess.run([sys.executable, str(ROOT / "bin" / "asrmerge"), "--version"], capture_output=True,
                       env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert r.returncode == 0 and r.stdout.startswith(b"asrmerge ")


def test_dtype_fp64_round_trips_an_fp32_fine_tune_bit_for_bit(tiny_base: Path, tiny_fts: list[Path], tmp_path: Path) -> None:
    """taskvec --dtype fp64 then --apply gives the fp32 fine-tune back bit for bit; the default fp32 task vector does
    not (the difference of two fp32 numbers needs more bits)."""
    from safetensors import safe_open

    for dtype in ("fp64", "fp32"):
        r = cli("taskvec", "-q", "--dtype", dtype, str(tiny_base), str(tiny_fts[0]), "-o", str(tmp_path / f"{dtype}.st"))
        assert r.returncode == 0 and r.stderr == b"", r.stderr
        r = cli("taskvec", "-q", "--apply", str(tiny_base), str(tmp_path / f"{dtype}.st"),
                "-o", str(tmp_path / f"back-{dtype}.st"))
        assert r.returncode == 0, r.stderr
    with safe_open(tmp_path / "fp64.st", "pt") as f:
        assert f.metadata()["asrmerge.compute_dtype"] == "float64"
        names = list(f.keys())  # noqa: SIM118 (safe_open is not iterable)
        assert {f.get_slice(k).get_dtype() for k in names} == {"F64"}
    ft = tensors(tiny_fts[0])
    exact, rounded = tensors(tmp_path / "back-fp64.st"), tensors(tmp_path / "back-fp32.st")
    assert all(exact[n].dtype == torch.float32 and torch.equal(exact[n], ft[n]) for n in ft)
    assert sum(int((rounded[n] != ft[n]).sum()) for n in ft) > 0


def test_dtype_fp64_warns_about_weights_that_cannot_round_trip(tmp_path: Path) -> None:
    base = torch.full((8,), 0.5)
    ft = base.clone()
    ft[3] = 0.5 * 2.0**-35 * (1 + 2.0**-22)
    save_file({"w": base}, tmp_path / "b.safetensors")
    save_file({"w": ft}, tmp_path / "f.safetensors")
    r = cli("taskvec", "--dtype", "fp64", str(tmp_path / "b.safetensors"), str(tmp_path / "f.safetensors"),
            "-o", "-")
    err = r.stderr.decode()
    assert r.returncode == 0 and err.count("\n") == 1 and len(r.stdout) > 8, err
    assert err.startswith("asrmerge taskvec: warning: 1 weights in 1 tensors (first: w) do not round-trip"), err
