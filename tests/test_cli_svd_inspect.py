"""asrmerge svd-inspect from the command line: records, summary, pictures, errors; in-process and through pipes."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from asrmerge import taskvectors
from asrmerge.cli.main import app
from tests.conftest import ROOT, cli
from tests.factory import tensors
from tests.test_cli_taskvec import run_on_terminal

SVD_TINY = 16
RESULTS = ROOT / "tests" / "bench" / "results"


def invoke(*args: str, input: bytes | None = None) -> tuple[int, str, str]:
    r = CliRunner().invoke(app, ["svd-inspect", *args], input=input)
    return r.exit_code, r.stdout, r.stderr


def lines(stdout: str) -> list[dict]:
    return [json.loads(x) for x in stdout.splitlines()]


def error_line(stderr: str, *needles: str) -> str:
    out = stderr.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("asrmerge svd-inspect: error: "), stderr
    for n in needles:
        assert n in out[0], out[0]
    return out[0]


def test_records_of_three_task_vectors(tiny_tvs: list[str]) -> None:
    code, out, err = invoke(*tiny_tvs)
    assert code == 0 and err == "", err
    recs = lines(out)
    assert len(recs) == SVD_TINY * (3 + 1 + 3)
    assert {r["kind"] for r in recs} == {"input", "tasks", "pair"}
    assert len({r["tensor"] for r in recs}) == SVD_TINY
    tasks = [r for r in recs if r["kind"] == "tasks"]
    assert all(r["T"] == 3 and r["norm"] == "l1" and r["sti_rel"] > 0 for r in tasks)
    fc2 = next(r for r in recs if r["tensor"] == "model.encoder.layers.0.fc2.weight" and r["kind"] == "input")
    assert fc2["shape"] == [16, 32] and len(fc2["spectrum"]) == 16 and fc2["k_keep"] == 5  # floor(16/3)


def test_options_reach_the_records(tiny_tvs: list[str]) -> None:
    code, out, _ = invoke(*tiny_tvs[:2], "--include", "*.fc1.*", "--rank-frac", "0.5", "--beta", "0.6", "--sti-k", "3",
                          "--sti-norm", "fro", "--full", "--compute-dtype", "fp64", "--device", "cpu", "-q")
    assert code == 0
    recs = lines(out)
    assert {r["tensor"] for r in recs} == {"model.encoder.layers.0.fc1.weight", "model.decoder.layers.0.fc1.weight"}
    inp = [r for r in recs if r["kind"] == "input"]
    assert all(r["p"] == 0.5 and r["k_keep"] == 8 and r["beta"] == 0.6 and len(r["spectrum"]) == 16 for r in inp)
    assert all(r["k"] == 3 and r["norm"] == "fro" for r in recs if r["kind"] in ("tasks", "pair"))
    code, out32, _ = invoke(*tiny_tvs[:2], "--include", "*.fc1.*", "--rank-frac", "0.5", "-q")
    for a, b in zip(inp, [r for r in lines(out32) if r["kind"] == "input"], strict=True):
        assert a["erank"] == pytest.approx(b["erank"], rel=1e-5) and a["e_keep"] == pytest.approx(b["e_keep"], rel=1e-5)
    code, out, _ = invoke(*tiny_tvs, "--no-pairs", "--exclude", "model.decoder.*")
    assert code == 0 and [r["kind"] for r in lines(out)] == ["input"] * 3 * 6
    code, out, _ = invoke(tiny_tvs[0], "--all", "--include", "*embed*")
    recs = lines(out)
    assert {r["tensor"] for r in recs} == {"model.decoder.embed_tokens.weight", "model.encoder.embed_positions.weight",
                                           "model.decoder.embed_positions.weight"}
    assert all(r["group"] == "other" and r["layer"] is None for r in recs)


def test_merged_model_against_fine_tunes(tiny_base: Path, tiny_fts: list[Path], tmp_path: Path) -> None:
    """--base BASE FT1 FT2 --merged M, with M the task-arithmetic merge, as a model and as an update."""
    b, f = tensors(tiny_base), [tensors(x) for x in tiny_fts[:2]]
    save_file({n: f[0][n] + f[1][n] - b[n] for n in b}, tmp_path / "ta.safetensors")
    code, out, err = invoke("--base", str(tiny_base), *map(str, tiny_fts[:2]), "--merged", str(tmp_path / "ta.safetensors"),
                            "--collapse-threshold", "0.5")
    assert code == 0, err
    recs = lines(out)
    coll = [r for r in recs if r["kind"] == "collapse"]
    merged = [r for r in recs if r["kind"] == "merged"]
    assert len(coll) == len(merged) == SVD_TINY
    assert all(r["gamma_c"] == 0.5 and len(r["retention"]) == 2 and r["subject"].endswith("ta.safetensors") for r in coll)
    # two independent noise tasks summed: as diverse as its inputs (kappa_s near 1), so no collapse at gamma_c 0.5
    assert not any(r["collapse"] for r in coll) and all(0.7 < r["kappa_s"] < 1.3 for r in coll)
    assert all(r["rounding_loss"] is not None for r in recs if r["kind"] in ("input", "merged"))
    # the same merge stored as an update (a task vector of the base) needs no base
    taskvectors.make(str(tiny_base), str(tmp_path / "ta.safetensors"), str(tmp_path / "ta-tv.safetensors"))
    tv = [str(tmp_path / f"tv{i}.st") for i in range(2)]
    for i in range(2):
        taskvectors.make(str(tiny_base), str(tiny_fts[i]), tv[i])
    code, out2, err = invoke(*tv, "--merged", str(tmp_path / "ta-tv.safetensors"))
    assert code == 0, err
    coll2 = [r for r in lines(out2) if r["kind"] == "collapse"]
    assert [r["kappa_s"] for r in coll2] == pytest.approx([r["kappa_s"] for r in coll], rel=1e-4)


def test_rounding_loss_in_a_half_precision_base(tiny_base16: Path, tmp_path: Path) -> None:
    """An update far below fp16's half-ulp is lost entirely when stored in fp16, kept in fp32."""
    from asrmerge.io.checkpoint import open_checkpoint

    base = tensors(tiny_base16)
    with open_checkpoint(str(tiny_base16)) as c:
        fp = c.fingerprint()
    tiny = {n: torch.full(t.shape, 1e-7) for n, t in base.items()}  # fp16 half-ulp at 0.02: 7.6e-6; fp32: 9e-10
    save_file(tiny, tmp_path / "tiny.st", metadata={"asrmerge.kind": "taskvec", "asrmerge.base_fingerprint": fp})
    code, out, err = invoke("--base", str(tiny_base16), str(tmp_path / "tiny.st"), "--include", "*fc1*")
    assert code == 0, err
    # entries of W_0 below 2^-14 (fp16 subnormals, spacing 6e-8) still take the step, so "entirely" means nearly
    assert all(r["rounding_loss"] > 0.95 for r in lines(out))
    code, out, err = invoke("--base", str(tiny_base16), str(tmp_path / "tiny.st"), "--include", "*fc1*", "--dtype", "fp32")
    assert code == 0 and all(r["rounding_loss"] < 0.05 for r in lines(out))


def test_summary_json_and_table(tiny_tvs: list[str]) -> None:
    code, out, _ = invoke(*tiny_tvs, "--summary", "--json")
    assert code == 0
    s = json.loads(out)
    assert s["tensors"] == SVD_TINY and s["groups"][-1]["group"] == "all" and s["groups"][-1]["tensors"] == SVD_TINY
    assert len(s["interference"]) == 3 and s["interference"][0][0] is None
    code, piped, _ = invoke(*tiny_tvs, "--summary")  # not a terminal: the same JSON object
    assert json.loads(piped) == s
    table = run_on_terminal(["svd-inspect", *tiny_tvs[:2], "--summary", "-q"])
    for needle in ("layer type", "decoder.encoder_attn", "erank", "between tasks", "task interference", "median"):
        assert needle in table, table


def test_plot_png_and_svg(tiny_tvs: list[str], tiny_base: Path, tiny_fts: list[Path], tmp_path: Path) -> None:
    png = tmp_path / "report.png"
    code, out, err = invoke("--base", str(tiny_base), *map(str, tiny_fts[:2]), "--merged", str(tiny_fts[2]),
                            "--plot", str(png), "--summary", "--json")
    assert code == 0 and err.strip() == f"wrote {png}", err
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000
    umask = os.umask(0)
    os.umask(umask)
    assert png.stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, not a private temporary
    assert json.loads(out)["merged"] == str(tiny_fts[2])  # the summary still goes to stdout
    svg = tmp_path / "report.svg"
    code, out, _ = invoke(*tiny_tvs, "--plot", str(svg), "-q")
    text = svg.read_text()
    assert code == 0 and "<svg" in text and "task interference" in text and len(lines(out)) == SVD_TINY * 7
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left behind


def test_plot_without_matplotlib_names_the_extra(tiny_tvs: list[str], tmp_path: Path) -> None:
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "matplotlib.py").write_text("raise ImportError('No module named matplotlib')\n")
    r = cli("svd-inspect", tiny_tvs[0], "--plot", str(tmp_path / "x.png"), env={"PYTHONPATH": f"{fake}{os.pathsep}{ROOT}"})
    assert r.returncode == 1 and r.stdout == b""
    error_line(r.stderr.decode(), "--plot needs matplotlib", "pip install 'asrmerge[plot]'")
    assert not (tmp_path / "x.png").exists()


def test_a_pipe_from_taskvec(tiny_base: Path, tiny_fts: list[Path]) -> None:
    """asrmerge taskvec BASE FT | asrmerge svd-inspect - --summary, and | head -1 ends quietly."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    py = f"{sys.executable} -m asrmerge"
    r = subprocess.run(f"{py} taskvec {tiny_base} {tiny_fts[0]} | {py} svd-inspect - --summary", shell=True,
                       capture_output=True, env=env, timeout=300)
    assert r.returncode == 0 and r.stderr == b"", r.stderr
    s = json.loads(r.stdout)
    assert s["subjects"] == ["-"] and s["tensors"] == SVD_TINY and s["interference"] is None
    assert all(g["input"]["e_keep"]["mean"] == pytest.approx(1.0) for g in s["groups"])  # p = 1/T = 1 keeps all
    r = subprocess.run(f"{py} taskvec {tiny_base} {tiny_fts[1]} | {py} svd-inspect - --full | head -1", shell=True,
                       capture_output=True, env=env, timeout=300)
    assert r.returncode == 0 and r.stderr == b"" and len(r.stdout.splitlines()) == 1


def test_errors_are_one_line_with_exit_codes(tiny_base: Path, tiny_base16: Path, tiny_fts: list[Path],
                                             tiny_tvs: list[str], tmp_path: Path) -> None:
    r = cli("svd-inspect", str(tiny_fts[0]), str(tiny_fts[1]))
    assert r.returncode == 2 and r.stdout == b""
    error_line(r.stderr.decode(), f"{tiny_fts[0]}: is a model, not a task vector", "--base BASE")
    r = cli("svd-inspect", "--base", str(tiny_base16), *tiny_tvs)
    assert r.returncode == 3 and r.stdout == b""
    error_line(r.stderr.decode(), "was made from base", "use the base model the task vector was taken from")
    bad = tensors(Path(tiny_tvs[0]))
    bad["model.encoder.layers.0.fc1.weight"] = torch.zeros(48, 16)
    save_file(bad, tmp_path / "bad.st", metadata={"asrmerge.kind": "taskvec"})
    code, out, err = invoke(tiny_tvs[1], str(tmp_path / "bad.st"))
    assert code == 3 and out == ""
    error_line(err, "fc1.weight: shape [48, 16] vs [32, 16]", "same base model?")
    bad = tensors(Path(tiny_tvs[0]))
    bad["model.decoder.layers.0.fc1.weight"][2, 3] = float("nan")
    save_file(bad, tmp_path / "nan.st", metadata={"asrmerge.kind": "taskvec"})
    code, out, err = invoke(str(tmp_path / "nan.st"), "--include", "*fc1*")
    assert code == 3
    error_line(err, "tensor model.decoder.layers.0.fc1.weight has NaN or Inf")


@pytest.mark.parametrize("args,needle", [
    (["--json"], "--json goes with --summary"),
    (["--rank-frac", "0"], "--rank-frac: 0.0 is not in (0, 1]"),
    (["--beta", "1.5"], "--beta: 1.5 is not in (0, 1]"),
    (["--sti-k", "0"], "--sti-k: 0 is not a positive number"),
    (["--collapse-threshold", "0"], "--collapse-threshold: 0.0 is not positive"),
    (["--dtype", "fp16"], "--dtype: rounding_loss needs the base model"),
    (["--plot", "x.pdf"], "cannot tell the picture format"),
    (["--include", "nothing*"], "no tensor is selected"),
    (["-", "-"], "stdin ('-') can be only one input"),
])
def test_usage_errors(tiny_tvs: list[str], args: list[str], needle: str) -> None:
    code, out, err = invoke(tiny_tvs[0], *args)
    assert code == 2 and out == ""
    error_line(err, needle)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible here")
def test_cuda_without_a_gpu_is_a_usage_error(tiny_tvs: list[str]) -> None:
    code, _, err = invoke(tiny_tvs[0], "--device", "cuda")
    assert code == 2
    error_line(err, "--device: CUDA is not available on this machine; use --device cpu")


def _structured(base: dict[str, torch.Tensor], names: list[str], task: int) -> dict[str, torch.Tensor]:
    """tau on ``names``: a shared rank-2 part (same for every task) plus this task's own rank-2 part, both with
    singular values (0.4, 0.2) on mutually orthogonal directions; zero elsewhere."""
    out = {n: torch.zeros(t.shape, dtype=torch.float32) for n, t in base.items()}
    for n in names:
        m, k = base[n].shape
        g = torch.Generator().manual_seed(zlib.crc32(n.encode()))  # the same directions for every task
        qu, _ = torch.linalg.qr(torch.randn(m, 6, generator=g))
        qv, _ = torch.linalg.qr(torch.randn(k, 6, generator=g))
        s = torch.tensor([0.4, 0.2])
        own = slice(2 + 2 * task, 4 + 2 * task)
        out[n] = (qu[:, :2] * s) @ qv[:, :2].T + (qu[:, own] * s) @ qv[:, own].T
    return out


@pytest.mark.slow
def test_real_whisper_base(real_base: Path, tmp_path: Path) -> None:
    """Real converted Whisper base (fp16): two task vectors with a known structure on decoder layer 0."""
    from asrmerge.io.checkpoint import open_checkpoint

    base = tensors(real_base)
    with open_checkpoint(str(real_base)) as c:
        fp = c.fingerprint()
    names = ["model.decoder.layers.0.self_attn.q_proj.weight", "model.decoder.layers.0.fc1.weight"]
    meta = {"asrmerge.kind": "taskvec", "asrmerge.base_fingerprint": fp}
    tv = []
    for t in range(2):
        save_file(_structured(base, names, t), tmp_path / f"tv{t}.st", metadata=meta)
        tv.append(str(tmp_path / f"tv{t}.st"))
    png = tmp_path / "real.png"
    # one thread: on a CI machine whose cores other jobs keep busy, MKL's threaded SVD is many times slower
    r = cli("svd-inspect", "--base", str(real_base), *tv, "--include", "decoder.layers.0.self_attn.q_proj.*",
            "--include", "decoder.layers.0.fc1.*", "--include", "decoder.layers.0.encoder_attn.k_proj.*",
            "--plot", str(png), env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr.decode()
    recs = lines(r.stdout.decode())
    assert len({x["tensor"] for x in recs}) == 3 and len(recs) == 3 * (2 + 1 + 1)
    for name in names:
        inp = [x for x in recs if x["tensor"] == name and x["kind"] == "input"]
        pair = next(x for x in recs if x["tensor"] == name and x["kind"] == "pair")
        # each task: sigma = (0.4, 0.4, 0.2, 0.2) -> rank 4, srank = 0.4/0.16 = 2.5
        assert all(x["nrank"] == 4 and x["srank"] == pytest.approx(2.5, rel=1e-4) for x in inp)
        assert all(x["spectrum"][:4] == pytest.approx([0.4, 0.4, 0.2, 0.2], rel=1e-4) for x in inp)
        # half of each task's subspace is shared
        assert pair["ov_u"] == pytest.approx(0.5, abs=1e-4) and pair["ov_v"] == pytest.approx(0.5, abs=1e-4)
        assert pair["cos"] == pytest.approx(0.5, abs=1e-4)
        # the update is ~1e-2 per entry against fp16 weights: most of it survives, some entries do not
        assert all(0 < x["rounding_loss"] < 0.5 for x in inp)
    untouched = [x for x in recs if x["tensor"].endswith("encoder_attn.k_proj.weight") and x["kind"] == "input"]
    assert all(x["fro"] == 0 and x["erank"] == 0 and x["e_keep"] is None for x in untouched)
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_sample_picture_is_committed() -> None:
    """The benchmark's picture of whisper-base (tests/bench/bench_svd_inspect.py) is in the repository, full size."""
    data = (RESULTS / "svd-inspect-sample.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 1200 and height >= 700


def test_help_imports_no_plotting_library() -> None:
    """--help stays fast: no torch (tests/test_cli_taskvec.py) and no matplotlib."""
    code = ("import sys, runpy; sys.argv = ['asrmerge', 'svd-inspect', '--help']\n"
            "try:\n    runpy.run_module('asrmerge', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "print('matplotlib' in sys.modules, 'torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    out = r.stdout.decode()
    assert "--collapse-threshold" in out and out.strip().splitlines()[-1] == "False False"
