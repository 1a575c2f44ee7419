"""asrmerge.device.resolve: the one --device resolver of merge, svd-inspect and transcribe; and the option's TAB."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from asrmerge import device
from asrmerge.errors import EXIT_USAGE, UsageError
from tests.conftest import ROOT, cli


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.fixture
def four_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch believes in 4 GPUs (resolve only asks, it never touches one)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)


def usage_error(name: str | None, env: dict[str, str], kinds: tuple[str, ...] = device.KINDS) -> str:
    with pytest.raises(UsageError) as e:
        device.resolve(name, env=env, kinds=kinds)
    assert e.value.exit_code == EXIT_USAGE and e.value.subject == "--device"
    return str(e.value)


@pytest.mark.usefixtures("no_gpu")
def test_auto_without_a_gpu_is_the_cpu() -> None:
    assert device.resolve("auto", env={}) == torch.device("cpu")
    assert device.resolve("auto", env={"LOCAL_RANK": "1"}) == torch.device("cpu")
    assert device.resolve(None, env={}) == torch.device("cpu")
    assert device.resolve("", env={}) == torch.device("cpu")
    assert device.resolve("cpu", env={}) == torch.device("cpu")


@pytest.mark.usefixtures("four_gpus")
def test_auto_with_gpus_honours_local_rank() -> None:
    assert device.resolve("auto", env={}) == torch.device("cuda", 0)
    assert device.resolve("auto", env={"LOCAL_RANK": "2"}) == torch.device("cuda", 2)
    assert device.resolve("auto", env={"LOCAL_RANK": "5"}) == torch.device("cuda", 1)  # modulo the GPUs
    assert device.resolve("auto", env={"LOCAL_RANK": "x"}) == torch.device("cuda", 0)
    assert device.resolve(None, env={"LOCAL_RANK": "3"}) == torch.device("cuda", 3)
    # a named device is taken as named: LOCAL_RANK only places auto
    assert device.resolve("cuda", env={"LOCAL_RANK": "3"}) == torch.device("cuda")
    assert device.resolve("cpu", env={"LOCAL_RANK": "3"}) == torch.device("cpu")
    # a caller that cannot compute on CUDA gets the CPU from auto
    assert device.resolve("auto", env={}, kinds=("cpu",)) == torch.device("cpu")


@pytest.mark.usefixtures("four_gpus")
def test_cuda_n_is_parsed_and_checked_against_the_gpus() -> None:
    assert device.resolve("cuda:0", env={}) == torch.device("cuda", 0)
    assert device.resolve("cuda:3", env={}, kinds=device.KERNELS) == torch.device("cuda", 3)
    assert device.resolve("cuda", env={}).index is None
    assert usage_error("cuda:4", env={}) == "--device: cuda:4: this machine has 4 CUDA devices"


@pytest.mark.usefixtures("no_gpu")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:7"])
def test_cuda_without_a_gpu(name: str) -> None:
    assert usage_error(name, env={}) == "--device: CUDA is not available on this machine; use --device cpu"


def test_the_environment_is_the_default() -> None:
    assert device.resolve(None, env={"ASRMERGE_DEVICE": "cpu"}) == torch.device("cpu")
    assert device.resolve("cpu", env={"ASRMERGE_DEVICE": "gpu"}) == torch.device("cpu")  # the option wins
    assert "unknown device 'gpu'" in usage_error(None, env={"ASRMERGE_DEVICE": "gpu"})


@pytest.mark.parametrize("name", ["gpu", "GPU", "tpu", "cuda:x", "cuda:-1", "cuda:1:2", " cpu"])
def test_bad_names_are_usage_errors_naming_the_option(name: str) -> None:
    assert usage_error(name, env={}) == f"--device: unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps"
    assert usage_error(name, env={}, kinds=device.KERNELS) == (f"--device: unknown device {name!r}; "
                                                                "use auto, cpu, cuda or cuda:N")


@pytest.mark.parametrize("name", ["mps", "meta", "xla"])
def test_kinds_the_caller_cannot_use(name: str) -> None:
    assert usage_error(name, env={}, kinds=device.KERNELS) == (f"--device: unsupported device {name!r}; "
                                                                "use auto, cpu, cuda or cuda:N")


def test_mps_must_be_there(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert usage_error("mps", env={}) == "--device: MPS is not available on this machine; use --device cpu"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert device.resolve("mps", env={}) == torch.device("mps")


def complete(words: str) -> list[str]:
    """What TAB offers after ``words`` (bash), and that it did not import torch."""
    code = ("import sys, atexit\natexit.register(lambda: sys.stderr.write(str('torch' in sys.modules)))\n"
            "sys.argv[0] = 'asrmerge'\nfrom asrmerge.cli.main import main\nmain()")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "_ASRMERGE_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.stderr.strip().splitlines()[-1] == "False", r.stderr
    return r.stdout.split()


@pytest.mark.parametrize("words", ["asrmerge merge --device ", "asrmerge svd-inspect tv.st --device ",
                                   "asrmerge transcribe m/ dev.jsonl --device "])
def test_every_device_option_completes_the_same_names(words: str) -> None:
    assert complete(words) == ["auto", "cpu", "cuda", "mps"]
    assert complete(words + "c") == ["cpu", "cuda"]


@pytest.mark.parametrize("cmd", ["merge", "svd-inspect", "transcribe"])
def test_every_command_reads_asrmerge_device_and_names_the_option(cmd: str, tmp_path: Path) -> None:
    """ASRMERGE_DEVICE reaches the one resolver from each command; nothing is read before it is refused."""
    (tmp_path / "m.jsonl").write_text('{"id": "a", "audio": "a.wav"}\n')
    nope = str(tmp_path / "nope")
    args = {"merge": ["--algo", "ta", "--base", nope, nope + "2", "-o", str(tmp_path / "o.st")],
            "svd-inspect": [nope],
            "transcribe": [nope, str(tmp_path / "m.jsonl"), "-o", str(tmp_path / "h.jsonl")]}[cmd]
    r = cli(cmd, *args, env={"ASRMERGE_DEVICE": "gpu"})
    assert r.returncode == 2 and r.stdout == b""
    hint = "use auto, cpu, cuda, cuda:N or mps" if cmd == "transcribe" else "use auto, cpu, cuda or cuda:N"
    assert r.stderr.decode().splitlines() == [f"asrmerge {cmd}: error: --device: unknown device 'gpu'; {hint}"]
