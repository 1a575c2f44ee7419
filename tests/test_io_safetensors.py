"""The safetensors reader and stream writer agree with the reference library and reject damaged files."""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from asrmerge.errors import InputError
from asrmerge.io.safetensors import SafetensorsFile, StreamWriter, header_bytes
from asrmerge.io.tensors import TensorInfo, st_code
from tests.faults.files import HEADERS


def sample() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "a.weight": torch.randn(5, 7, generator=g),
        "b.bias": torch.randn(3, generator=g).half(),
        "c": torch.randn(2, 3, 4, generator=g).bfloat16(),
        "empty": torch.zeros(0, 4),
        "d64": torch.randn(4, generator=g, dtype=torch.float64),
    }


def test_reads_what_the_reference_library_writes(tmp_path: Path) -> None:
    ref = sample()
    save_file(ref, tmp_path / "x.safetensors", metadata={"k": "v"})
    f = SafetensorsFile(tmp_path / "x.safetensors")
    assert f.metadata == {"k": "v"}
    assert set(f.infos) == set(ref)
    for name, t in ref.items():
        got = f.read(name)
        assert got.dtype == t.dtype and got.shape == t.shape
        assert torch.equal(got, t)
    assert torch.equal(f.read_rows("a.weight", [0, 4]), ref["a.weight"][[0, 4]])
    f.close()


def test_reference_library_reads_what_we_stream(tmp_path: Path) -> None:
    ref = sample()
    infos = [TensorInfo(n, tuple(t.shape), st_code(t.dtype)) for n, t in ref.items()]
    buf = io.BytesIO()
    w = StreamWriter(buf, infos, {"asrmerge.kind": "model"})
    for t in ref.values():
        w.write(t)
    assert w.done
    (tmp_path / "y.safetensors").write_bytes(buf.getvalue())
    back = load_file(tmp_path / "y.safetensors")
    assert all(torch.equal(back[n], t) for n, t in ref.items())
    assert len(header_bytes(infos, {})) % 8 == 0


def test_stream_writer_refuses_a_tensor_unlike_its_header() -> None:
    w = StreamWriter(io.BytesIO(), [TensorInfo("a", (2, 2), "F32")], {})
    with pytest.raises(ValueError, match="header says"):
        w.write(torch.zeros(2, 3))


@pytest.mark.parametrize("cut", [4, 20, -1, -17])
def test_truncated_file_is_named_as_truncated(tmp_path: Path, cut: int) -> None:
    save_file(sample(), tmp_path / "x.safetensors")
    data = (tmp_path / "x.safetensors").read_bytes()
    (tmp_path / "t.safetensors").write_bytes(data[:cut])
    with pytest.raises(InputError, match="truncated|empty|shorter") as e:
        SafetensorsFile(tmp_path / "t.safetensors")
    assert "t.safetensors" in str(e.value)


def test_pickle_is_refused_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):  # would create the marker file if unpickled
            return (open, (str(marker), "w"))

    (tmp_path / "m.safetensors").write_bytes(pickle.dumps(Evil(), protocol=2))
    with pytest.raises(InputError, match="pickle") as e:
        SafetensorsFile(tmp_path / "m.safetensors")
    assert "never unpickles" in str(e.value)
    assert not marker.exists()
    torch.save({"w": torch.zeros(2)}, tmp_path / "z.safetensors")
    with pytest.raises(InputError, match="zip archive"):
        SafetensorsFile(tmp_path / "z.safetensors")


def test_gaps_and_overlaps_are_rejected(tmp_path: Path) -> None:
    import json

    header = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
              "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}
    raw = json.dumps(header).encode()
    (tmp_path / "o.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(12))
    with pytest.raises(InputError, match="overlap"):
        SafetensorsFile(tmp_path / "o.safetensors")


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="No such file"):
        SafetensorsFile(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("name", sorted(HEADERS))
def test_malformed_headers_say_what_is_wrong(tmp_path: Path, name: str) -> None:
    """Every field of the header is checked for its JSON type (issue 14, item 7): never an internal error."""
    data, what = HEADERS[name]
    (tmp_path / "h.safetensors").write_bytes(data)
    with pytest.raises(InputError) as e:
        SafetensorsFile(tmp_path / "h.safetensors")
    assert what in str(e.value) and "h.safetensors" in str(e.value)
    assert "pickle" not in str(e.value)


def test_a_header_length_starting_with_0x80_is_not_called_a_pickle(tmp_path: Path) -> None:
    header = b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    header += b" " * (0x80 - len(header))
    (tmp_path / "ok.safetensors").write_bytes(struct.pack("<Q", 0x80) + header + bytes(8))
    assert SafetensorsFile(tmp_path / "ok.safetensors").infos["a"].shape == (2,)
    (tmp_path / "bad.safetensors").write_bytes(struct.pack("<Q", 0x80) + b"[" + header[1:] + bytes(8))
    with pytest.raises(InputError, match="its header does not start with"):
        SafetensorsFile(tmp_path / "bad.safetensors")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_all_finite_finds_every_nan_and_inf_and_survives_an_overflowing_sum(dtype: torch.dtype) -> None:
    """The fast test sums the tensor; a non-finite element always shows, and a finite tensor whose sum
    overflows its dtype (fp16: past 65504) takes the exact check and is still finite."""
    from asrmerge.io.tensors import all_finite

    big = torch.finfo(dtype).max / 4
    x = torch.full((4096,), big, dtype=dtype)
    assert all_finite(x)
    for bad in (float("nan"), float("inf"), float("-inf")):
        y = torch.randn(4096, dtype=torch.float64).to(dtype)
        y[1234] = bad
        assert not all_finite(y), (dtype, bad)
    y = torch.zeros(4096, dtype=dtype)
    y[0], y[1] = float("inf"), float("-inf")
    assert not all_finite(y)
    assert all_finite(torch.randn(4096, dtype=torch.float64).to(dtype))
