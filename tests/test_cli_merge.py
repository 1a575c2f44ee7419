"""merge through real processes: outputs, sweeps, dry runs, listings, and every failure's one line and exit code."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from asrmerge.merge.registry import names
from tests.conftest import AUDIO, cli
from tests.factory import make_finetune, tensors


def fails(r: subprocess.CompletedProcess[bytes], code: int, *needles: str) -> str:
    err = r.stderr.decode()
    assert r.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("asrmerge merge: error: "), err
    for n in needles:
        assert n in lines[0], err
    return lines[0]


def test_merge_to_a_folder_with_provenance(tiny_base: Path, tiny_fts: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "merged"
    r = cli("merge", "--algo", "boosted-tsvm", "--base", str(tiny_base), *map(str, tiny_fts), "-p", "beta=0.25",
            "-o", f"{out}/")
    assert r.returncode == 0, r.stderr
    assert {"config.json", "generation_config.json", "model.safetensors"} <= {p.name for p in out.iterdir()}
    with safe_open(out / "model.safetensors", "pt") as f:
        meta = f.metadata()
    params = json.loads(meta["asrmerge.params"])
    assert meta["asrmerge.algo"] == "boosted-tsvm" and params["beta"] == 0.25 and params["orth"] == "ns"
    assert params["rank_frac"] == pytest.approx(1 / 3) and params["lam"] == 1.0
    assert len(json.loads(meta["asrmerge.input_fingerprints"])) == 3 and meta["asrmerge.policy"] == "whisper-default"
    from transformers import WhisperForConditionalGeneration

    WhisperForConditionalGeneration.from_pretrained(out)


def test_task_vectors_through_stdout_and_sweeps(tiny_base: Path, tiny_fts: list[Path], tmp_path: Path) -> None:
    tvs = []
    for i, ft in enumerate(tiny_fts[:2]):
        tvs.append(tmp_path / f"tv{i}.st")
        assert cli("taskvec", str(tiny_base), str(ft), "-o", str(tvs[-1])).returncode == 0
    r = cli("merge", "--algo", "tsvm", "--base", str(tiny_base), *map(str, tvs), "-p", "lam=0.5,1.5",
            "-o", str(tmp_path / "m-{lam}.safetensors"))
    assert r.returncode == 0, r.stderr
    a, b = tensors(tmp_path / "m-0.5.safetensors"), tensors(tmp_path / "m-1.5.safetensors")
    base = tensors(tiny_base)
    n = "model.encoder.layers.0.fc1.weight"
    assert torch.allclose(b[n] - base[n], 3 * (a[n] - base[n]), atol=1e-6)
    # the same merge from checkpoints, written to stdout and read back through a pipe
    r = cli("merge", "--algo", "tsvm", "--base", str(tiny_base), *map(str, tiny_fts[:2]), "-p", "lam=0.5")
    assert r.returncode == 0 and r.stdout[:8] != b""
    (tmp_path / "piped.safetensors").write_bytes(r.stdout)
    c = tensors(tmp_path / "piped.safetensors")
    assert all(torch.allclose(c[k], a[k], atol=1e-6) for k in a)


def test_dry_run_counts_from_headers_and_writes_nothing(tiny_base: Path, tiny_fts: list[Path], tmp_path: Path) -> None:
    r = cli("merge", "--algo", "tsvm", "--base", str(tiny_base), *map(str, tiny_fts), "--dry-run", "--json",
            "-o", str(tmp_path / "never.safetensors"))
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    classes = {t["tensor"]: t["class"] for t in rep["tensors"]}
    assert classes["model.encoder.layers.0.fc1.weight"] == "svd"
    assert classes["model.decoder.embed_tokens.weight"] == "mean"
    n_svd = sum(c == "svd" for c in classes.values())
    assert n_svd == 6 + 10  # one encoder layer (q k v out fc1 fc2), one decoder layer (+ 4 cross-attention)
    assert rep["svds"] == n_svd * (3 + 2)  # T task SVDs and two polar factors per matrix
    assert rep["peak_bytes_estimate"] > 0 and rep["seconds_estimate"] > 0
    assert not (tmp_path / "never.safetensors").exists()
    text = cli("merge", "--algo", "tsvm", "--base", str(tiny_base), *map(str, tiny_fts), "--dry-run").stdout.decode()
    lines = text.splitlines()
    # the estimate comes first, in a few lines; the per-tensor lines only with -v
    assert lines[0].startswith("algorithm tsvm on 3 tasks") and "SVDs: 80" in lines[2] and len(lines) <= 6
    assert "time about" in lines[3] and "model.encoder.layers.0.fc1.weight" not in text
    verbose = cli("merge", "--algo", "tsvm", "--base", str(tiny_base), *map(str, tiny_fts), "--dry-run", "-v")
    assert verbose.stdout.decode().splitlines()[:4] == lines[:4]
    assert "  svd      model.encoder.layers.0.fc1.weight" in verbose.stdout.decode()


def test_list_names_every_algorithm_and_parameter() -> None:
    r = cli("merge", "--list", "--json")
    assert r.returncode == 0
    doc = {a["name"]: a for a in json.loads(r.stdout)}
    # by space (parameters, task vectors, subspaces), then by name
    assert list(doc) == ["karcher", "model-stock", "multislerp", "soup", "dare-ta", "dare-ties", "pcb", "sce", "ta",
                         "ties", "boosted-tsvm", "iso-c", "iso-cts", "tsvm", "tsvm-ns"]
    beta = next(p for p in doc["boosted-tsvm"]["params"] if p["name"] == "beta")
    assert beta["default"] == "0.3" and beta["accepts"] == "(0,1]"
    assert next(p for p in doc["tsvm"]["params"] if p["name"] == "rank_frac")["default"] == "1/T"
    assert doc["tsvm-ns"]["fixed"] == {"orth": "ns"}
    text = cli("merge", "--list").stdout.decode()
    assert "arXiv:2603.05354" in text and "-p density=0.2" in text


@pytest.mark.parametrize("args,needle", [
    (["--algo", "tsvx"], "unknown algorithm 'tsvx'; did you mean 'tsvm'?"),
    (["--algo", "ties", "-p", "densty=0.1"], "ties has no parameter 'densty'; did you mean 'density'?"),
    (["--algo", "ties", "-p", "density=1.5"], "density=1.5 is out of range (0,1]"),
    (["--algo", "ties", "-p", "agg=dis-men"], "did you mean 'dis-mean'?"),
    (["--algo", "ties", "-p", "density=0.1,0.2"], "must contain {density}"),
    (["--algo", "ties", "--memory", "12XB"], "--memory: not a size: '12XB'; write it like 2GB"),
    (["--algo", "ties", "--shard-size", "12XB"], "--shard-size: not a size: '12XB'"),
    (["--algo", "ties", "--device", "gpu"], "--device: unknown device 'gpu'; use auto, cpu, cuda or cuda:N"),
    (["--algo", "ties", "--device", "mps"], "--device: unsupported device 'mps'; use auto, cpu, cuda or cuda:N"),
])
def test_usage_errors_come_before_any_read(args: list[str], needle: str, tmp_path: Path) -> None:
    """The inputs do not exist: a usage error proves nothing was opened."""
    r = cli("merge", *args, "--base", str(tmp_path / "nope"), str(tmp_path / "nope2"), "-o", str(tmp_path / "o.st"))
    fails(r, 2, needle)
    assert not (tmp_path / "o.st").exists()


def test_too_few_tasks(tiny_base: Path, tiny_fts: list[Path], tmp_path: Path) -> None:
    r = cli("merge", "--algo", "model-stock", "--base", str(tiny_base), str(tiny_fts[0]), "-o", str(tmp_path / "o.st"))
    fails(r, 2, "model-stock needs at least 2 inputs, got 1")
    assert not (tmp_path / "o.st").exists()


def test_mismatched_shapes(tiny_base: Path, tiny_fts: list[Path], tmp_path: Path) -> None:
    sd = tensors(tiny_fts[0])
    sd["model.decoder.layers.0.fc1.weight"] = torch.zeros(31, 16)
    save_file(sd, tmp_path / "bad.safetensors")
    r = cli("merge", "--algo", "ta", "--base", str(tiny_base), str(tiny_fts[1]), str(tmp_path / "bad.safetensors"),
            "-o", str(tmp_path / "o.st"))
    fails(r, 3, "bad.safetensors: model.decoder.layers.0.fc1.weight: shape [31, 16] vs [32, 16]", "same base model?")
    assert not (tmp_path / "o.st").exists()


def test_task_vector_from_another_base(tiny_base: Path, tiny_fts: list[Path], tmp_path: Path) -> None:
    assert cli("taskvec", str(tiny_fts[2]), str(tiny_fts[0]), "-o", str(tmp_path / "tv.st")).returncode == 0
    r = cli("merge", "--algo", "ta", "--base", str(tiny_base), str(tmp_path / "tv.st"), "-o", str(tmp_path / "o.st"))
    fails(r, 3, "tv.st: was made from base fp1:", "use the base model the task vector was taken from")
    assert not (tmp_path / "o.st").exists()


def test_task_vectors_without_base(tiny_base: Path, tiny_fts: list[Path], tmp_path: Path) -> None:
    assert cli("taskvec", str(tiny_base), str(tiny_fts[0]), "-o", str(tmp_path / "tv.st")).returncode == 0
    r = cli("merge", "--algo", "soup", str(tiny_fts[1]), str(tmp_path / "tv.st"), "-o", str(tmp_path / "o.st"))
    fails(r, 2, "tv.st: is a task vector: merging task vectors needs the base model", "pass --base BASE")
    r = cli("merge", "--algo", "ties", str(tiny_fts[1]), str(tiny_fts[0]), "-o", str(tmp_path / "o.st"))
    fails(r, 2, "--base: ties needs the base model")
    assert not (tmp_path / "o.st").exists()


def test_nan_in_an_input_leaves_no_output(tiny_base: Path, tiny_fts: list[Path], tmp_path: Path) -> None:
    sd = tensors(tiny_fts[0])
    sd["model.decoder.layers.0.self_attn.v_proj.weight"][0, 0] = float("nan")
    save_file(sd, tmp_path / "nan.safetensors")
    r = cli("merge", "--algo", "tsvm", "--base", str(tiny_base), str(tiny_fts[1]), str(tmp_path / "nan.safetensors"),
            "-o", f"{tmp_path}/out/")
    fails(r, 3, "nan.safetensors: tensor model.decoder.layers.0.self_attn.v_proj.weight has NaN or Inf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.safetensors"]


def test_non_finite_result_names_the_tensor(tiny_base: Path, tmp_path: Path) -> None:
    """fp16 output of a huge update overflows: the error names the tensor, nothing is written."""
    sd = {k: v.half() for k, v in tensors(tiny_base).items()}
    save_file(sd, tmp_path / "b16.safetensors")
    big = {k: v.float() + 6e4 for k, v in sd.items()}
    save_file(big, tmp_path / "big.safetensors")
    r = cli("merge", "--algo", "ta", "--base", str(tmp_path / "b16.safetensors"), str(tmp_path / "big.safetensors"),
            "-p", "lam=3", "-o", str(tmp_path / "o.st"))
    assert r.returncode == 1 and b"the merge produced NaN or Inf" in r.stderr
    assert not (tmp_path / "o.st").exists()


@pytest.fixture(scope="module")
def real_fts(real_base: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """whisper-base in fp32 and two perturbed copies (0.2% noise: it still transcribes)."""
    root = tmp_path_factory.mktemp("realm")
    base32 = root / "base32"
    assert cli("convert", str(real_base), "--dtype", "fp32", "-o", f"{base32}/", "-q").returncode == 0
    return base32, [make_finetune(base32, root / f"ft{i}", seed=7 + i, scale=2e-3) for i in range(2)]


def test_real_whisper_base_merged_with_itself_is_the_base(real_base: Path) -> None:
    """Every algorithm, T = 2 copies of the converted whisper-base: all task vectors are zero."""
    from asrmerge.merge import engine
    from asrmerge.merge.plan import MergeSpec, make_plan
    from asrmerge.merge.registry import names

    base = tensors(real_base)

    class Check:
        def __init__(self, algo: str) -> None:
            self.algo = algo
            self.count = 0

        def write(self, name: str, t: torch.Tensor) -> None:
            assert t.dtype == base[name].dtype
            if self.algo in ("soup", "karcher", "multislerp", "model-stock"):
                assert torch.allclose(t.float(), base[name].float(), rtol=1e-3, atol=0), (self.algo, name)
            else:
                assert torch.equal(t, base[name]), (self.algo, name)
            self.count += 1

    for algo in names():
        plan = make_plan(MergeSpec(algo=algo, inputs=[str(real_base)] * 2, base=str(real_base), check_outputs=False))
        check = Check(algo)
        try:
            engine.execute(plan, sinks=[check])
        finally:
            plan.close()
        assert check.count == len(base)


def test_real_merge_loads_in_transformers_and_transcribes(real_fts: tuple[Path, list[Path]], tmp_path: Path) -> None:
    base32, fts = real_fts
    out = tmp_path / "merged"
    r = cli("merge", "--algo", "boosted-tsvm", "--base", str(base32), *map(str, fts), "-o", f"{out}/", "-q")
    assert r.returncode == 0, r.stderr
    import soundfile as sf
    from transformers import pipeline

    asr = pipeline("automatic-speech-recognition", model=str(out), dtype=torch.float32)
    audio, _ = sf.read(AUDIO / "jfk.wav")
    text = asr(audio, generate_kwargs={"language": "en"})["text"].lower()
    assert "ask not what your country can do for you" in text


def test_output_folder_keeps_the_old_one_on_failure(tiny_base: Path, tiny_fts: list[Path], tmp_path: Path) -> None:
    from asrmerge.conversion import convert

    out = tmp_path / "keep"
    convert(str(tiny_fts[0]), f"{out}/")  # an earlier output, which a run may replace
    before = (out / "model.safetensors").read_bytes()
    sd = tensors(tiny_fts[1])
    sd["model.encoder.layers.0.fc2.weight"][1, 1] = float("inf")
    save_file(sd, tmp_path / "inf.safetensors")
    r = cli("merge", "--algo", "ta", "--base", str(tiny_base), str(tiny_fts[0]), str(tmp_path / "inf.safetensors"),
            "-o", f"{out}/")
    assert r.returncode == 3
    assert (out / "model.safetensors").read_bytes() == before


def test_dry_run_time_counts_tall_svds_by_qr_and_shares_them_among_workers(tiny_base: Path, tiny_fts: list[Path]) -> None:
    """The estimate: a tall SVD costs n^3 + (m - n) n^2 / 2 units, and the CPU's workers share the SVDs."""
    from asrmerge.merge.plan import MergeSpec, dry_run, make_plan, svd_units

    assert svd_units(512, 512) == 512**3
    assert svd_units(2048, 512) == svd_units(512, 2048) == 512**3 + 1536 * 512 * 512 / 2
    estimates = {}
    for workers in (1, 2):
        plan = make_plan(MergeSpec(algo="tsvm", inputs=[str(p) for p in tiny_fts], base=str(tiny_base),
                                   device="cpu", workers=workers, check_outputs=False))
        try:
            rep = dry_run(plan, svd_rate=1e-9, io_rate=1e12)
        finally:
            plan.close()
        expected = sum(t["svds"] * 1e-9 * svd_units(t["shape"][0], math.prod(t["shape"][1:]))
                       for t in rep["tensors"] if t["svds"]) / workers
        assert rep["svd_seconds_estimate"] == pytest.approx(expected, rel=1e-9) and expected > 0
        estimates[workers] = rep["svd_seconds_estimate"]
    assert estimates[2] == pytest.approx(estimates[1] / 2)


def test_dry_run_costs_element_wise_work_per_element_in_memory_or_streamed(tiny_base: Path, tiny_fts: list[Path]) -> None:
    """Each tensor's element-wise work costs its element count at the in-memory rate, or at the streamed rate
    when its statistics' working set (ties: (T + 6) x numel) exceeds --memory; a sweep pays it per output;
    workers share it."""
    import torch

    from asrmerge.merge.operands import working_set
    from asrmerge.merge.plan import MergeSpec, Plan, dry_run, make_plan, measure_element_rate

    def planned(budget: int) -> Plan:
        return make_plan(MergeSpec(algo="ties", inputs=[str(p) for p in tiny_fts], base=str(tiny_base),
                                   device="cpu", params=["density=0.2,0.5"], output="m-{density}.st", workers=2,
                                   budget=budget, check_outputs=False))

    plan = planned(1 << 30)  # the budget of the second-largest tensor's statistics
    sizes = sorted({info.numel for info in plan.inputs.reference.infos.values()})
    plan.close()
    budget = working_set(len(tiny_fts), sizes[-2], torch.float32, 1, 6)
    plan = planned(budget)
    try:
        rep = dry_run(plan, svd_rate=1e-9, matmul_rate=0.0, io_rate=1e12, write_rate=1e11,
                      element_rate=(1e-9, 3e-9))
        threads = torch.get_num_threads()
        mem, streamed = measure_element_rate(plan, n=1 << 14)
        assert torch.get_num_threads() == threads
    finally:
        plan.close()
    T = len(tiny_fts)

    def streamed_stats(numel: int) -> bool:  # ties' statistics hold (T + 6) x numel (registry stats_set)
        return working_set(T, numel, torch.float32, 1, 6) > budget

    expected = 0.0
    for t in rep["tensors"]:
        numel = math.prod(t["shape"])
        expected += numel * (3e-9 if streamed_stats(numel) else 1e-9)
    assert any(streamed_stats(math.prod(t["shape"])) for t in rep["tensors"])
    assert any(not streamed_stats(n) and working_set(T, n, torch.float32) > budget
               for n in (math.prod(t["shape"]) for t in rep["tensors"]))
    # two outputs of the sweep, two workers
    assert rep["element_seconds_estimate"] == pytest.approx(2 * expected / 2, rel=1e-9)
    io = rep["read_bytes"] / 1e12 + rep["write_bytes"] / 1e11
    assert rep["seconds_estimate"] == pytest.approx(rep["element_seconds_estimate"] + io, rel=1e-9)
    assert 0 < mem < 1e-3 and 0 < streamed < 1e-3


def test_the_dry_run_times_reads_on_a_spread_sample_of_every_input(tiny_base: Path, tiny_fts: list[Path],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The read rate is timed on a middle row range of tensors spread over the model, in every input, within
    the sample's size; a sample under 1 MiB reads nothing and keeps the assumed 1 GB/s."""
    from asrmerge.io.checkpoint import Checkpoint
    from asrmerge.merge.plan import IO_RATE, MergeSpec, make_plan, measure_io_rate

    seen: list[tuple[str, str, int, int, int]] = []
    real = Checkpoint.stored_range

    def spy(self: Checkpoint, name: str, start: int, stop: int) -> torch.Tensor:
        t = real(self, name, start, stop)
        seen.append((self.label, name, start, stop, t.numel() * t.element_size()))
        return t

    monkeypatch.setattr(Checkpoint, "stored_range", spy)
    plan = make_plan(MergeSpec(algo="ties", inputs=[str(p) for p in tiny_fts], base=str(tiny_base), device="cpu",
                               check_outputs=False))
    try:
        infos = plan.inputs.reference.infos
        rate = measure_io_rate(plan, sample=64 << 20, tensors=len(infos))
        assert plan.inputs.base is not None
        assert {x[0] for x in seen} == {c.label for c in [plan.inputs.base, *plan.inputs.sources]}
        assert {x[1] for x in seen} == {n for n, i in infos.items() if i.shape and i.numel}
        assert (1 << 20) <= sum(x[4] for x in seen) <= 64 << 20
        assert 0 < rate < float("inf") and rate != IO_RATE
        for _, name, start, stop, _ in seen:  # as many rows above the range as below, within one
            assert 0 <= start < stop and abs(start - (infos[name].shape[0] - stop)) <= 1
        seen.clear()
        assert measure_io_rate(plan, sample=1 << 10) == IO_RATE and not seen
    finally:
        plan.close()


def test_the_svd_rate_is_timed_at_the_size_of_the_plans_matrices() -> None:
    """The n x n SVD the dry run times is the smaller side of the matrix shape with the most SVD work, within
    [384, 1536]: 1280 for large-v3's (1280 x 1280 and 5120 x 1280), 512 for whisper-base's."""
    from types import SimpleNamespace

    from asrmerge.merge.plan import svd_rate_size

    def plan(d: int, extra: dict[str, tuple[int, ...]] | None = None) -> SimpleNamespace:
        shapes = {"q": (d, d), "k": (d, d), "fc1": (4 * d, d), "fc2": (d, 4 * d), "bias": (d,),
                  "embed": (51866, d), **(extra or {})}
        infos = {n: SimpleNamespace(shape=s) for n, s in shapes.items()}
        classes = {n: "mean" if n in ("bias", "embed") else "svd" for n in shapes}
        return SimpleNamespace(inputs=SimpleNamespace(reference=SimpleNamespace(infos=infos)), classes=classes)

    assert svd_rate_size(plan(1280)) == 1280  # type: ignore[arg-type]
    assert svd_rate_size(plan(512)) == 512  # type: ignore[arg-type]
    assert svd_rate_size(plan(16)) == 384  # type: ignore[arg-type]
    assert svd_rate_size(plan(4096)) == 1536  # type: ignore[arg-type]
    # the shape with the most work wins, not the first or the largest
    assert svd_rate_size(plan(512, {f"x{i}": (768, 768) for i in range(8)})) == 768  # type: ignore[arg-type]


@pytest.mark.parametrize("algo", sorted(names()))
def test_the_element_rate_is_timed_for_every_algorithm(algo: str, tiny_base: Path, tiny_fts: list[Path]) -> None:
    """The dry run's element-wise calibration runs every registered algorithm, with its defaults and T, on its
    synthetic tensor, in memory and streamed."""
    from asrmerge.merge.plan import MergeSpec, make_plan, measure_element_rate

    plan = make_plan(MergeSpec(algo=algo, inputs=[str(p) for p in tiny_fts], base=str(tiny_base), device="cpu",
                               check_outputs=False))
    try:
        mem, streamed = measure_element_rate(plan, n=1 << 12)
    finally:
        plan.close()
    assert 0 < mem < 1e-2 and 0 < streamed < 1e-2
