"""Task vector arithmetic: properties on random tensors, and the library's checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from asrmerge import taskvectors as tv
from asrmerge.errors import InputError
from asrmerge.io.checkpoint import open_checkpoint
from tests.factory import tensors


def pair(tmp: Path, base: dict[str, torch.Tensor], ft: dict[str, torch.Tensor]) -> tuple[str, str]:
    save_file(base, tmp / "b.safetensors")
    save_file(ft, tmp / "f.safetensors")
    return str(tmp / "b.safetensors"), str(tmp / "f.safetensors")


weights = st.lists(st.floats(-4, 4, allow_nan=False, width=16), min_size=1, max_size=64)


@settings(max_examples=60, deadline=None)
@given(w=weights, dw=st.lists(st.floats(-0.0625, 0.0625, allow_nan=False, width=16), min_size=64, max_size=64),
       dtype=st.sampled_from([torch.float16, torch.bfloat16]))
def test_apply_of_taskvec_gives_back_the_fine_tune_exactly(tmp_path_factory, w, dw, dtype) -> None:
    """fp16/bf16 checkpoints, fp32 arithmetic: base + (ft - base) == ft bit for bit."""
    tmp = tmp_path_factory.mktemp("p")
    base = torch.tensor(w, dtype=torch.float32).to(dtype)
    ft = (base.float() + torch.tensor(dw[: len(w)])).to(dtype)
    b, f = pair(tmp, {"x": base}, {"x": ft})
    tv.make(b, f, str(tmp / "tv.safetensors"))
    tv.make_applied(b, str(tmp / "tv.safetensors"), str(tmp / "back.safetensors"))
    back = tensors(tmp / "back.safetensors")["x"]
    assert back.dtype == dtype and torch.equal(back, ft)
    tv.make(b, b, str(tmp / "zero.safetensors"))
    assert not tensors(tmp / "zero.safetensors")["x"].any()


@settings(max_examples=40, deadline=None)
@given(w=st.lists(st.floats(-1e3, 1e3, allow_nan=False, width=32), min_size=1, max_size=32),
       dw=st.lists(st.floats(-1, 1, allow_nan=False, width=32), min_size=32, max_size=32))
def test_fp32_models_are_exact_with_fp64_arithmetic(tmp_path_factory, w, dw) -> None:
    tmp = tmp_path_factory.mktemp("p")
    base = torch.tensor(w, dtype=torch.float32)
    ft = base + torch.tensor(dw[: len(w)], dtype=torch.float32)
    b, f = pair(tmp, {"x": base}, {"x": ft})
    tv.make(b, f, str(tmp / "tv.safetensors"), dtype="F64", compute=torch.float64)
    tv.make_applied(b, str(tmp / "tv.safetensors"), str(tmp / "back.safetensors"), compute=torch.float64)
    assert torch.equal(tensors(tmp / "back.safetensors")["x"], ft)


def test_taskvec_is_fp32_and_records_its_base(tiny_base16: Path, tmp_path: Path) -> None:
    ft = {k: (v.float() * 1.01).half() for k, v in tensors(tiny_base16).items()}
    save_file(ft, tmp_path / "ft.safetensors")
    tv.make(str(tiny_base16), str(tmp_path / "ft.safetensors"), str(tmp_path / "tv.st"), command="asrmerge taskvec x y")
    with open_checkpoint(str(tmp_path / "tv.st")) as t, open_checkpoint(str(tiny_base16)) as b:
        assert t.kind == "taskvec" and t.dtype == "F32"
        assert t.base_fingerprint() == b.fingerprint()
        assert t.metadata["asrmerge.command"] == "asrmerge taskvec x y"
        norms = tv.recorded_norms(t)
        assert norms is not None and set(norms) == set(b.names())
        records = list(tv.stats(t, norms))
    for r in records:
        base = norms[r["tensor"]]
        assert r["rel_norm"] == (pytest.approx(r["norm"] / base) if base else None)
    overall = tv.total(records, norms)
    assert overall["norm"] == pytest.approx(sum(r["norm"] ** 2 for r in records) ** 0.5)
    assert 0.005 < overall["rel_norm"] < 0.011  # every weight moved by 1% (fp16 rounding aside)


def test_stats_fields(tmp_path: Path) -> None:
    save_file({"x": torch.tensor([0.0, 3.0, -4.0, 0.0])}, tmp_path / "t.safetensors")
    with open_checkpoint(str(tmp_path / "t.safetensors")) as t:
        (r,) = tv.stats(t, {"x": 10.0})
    assert r == {"tensor": "x", "shape": [4], "dtype": "F32", "numel": 4, "norm": 5.0, "rel_norm": 0.5,
                 "max_abs": 4.0, "zero_frac": 0.5}


def test_nan_is_named(tmp_path: Path) -> None:
    b, f = pair(tmp_path, {"w": torch.zeros(3)}, {"w": torch.tensor([0.0, float("nan"), 1.0])})
    with pytest.raises(InputError, match=r"f.safetensors: tensor w has NaN or Inf"):
        tv.make(b, f, str(tmp_path / "o.safetensors"))
    assert not (tmp_path / "o.safetensors").exists()


def test_taskvec_from_another_base_is_refused(tmp_path: Path) -> None:
    b, f = pair(tmp_path, {"w": torch.zeros(3, 3)}, {"w": torch.ones(3, 3)})
    tv.make(b, f, str(tmp_path / "tv.safetensors"))
    save_file({"w": torch.full((3, 3), 2.0)}, tmp_path / "other.safetensors")
    with pytest.raises(InputError, match="was made from base fp1:.*use the base model"):
        tv.make_applied(str(tmp_path / "other.safetensors"), str(tmp_path / "tv.safetensors"),
                        str(tmp_path / "o.safetensors"))
    assert not (tmp_path / "o.safetensors").exists()


def test_fp64_task_vectors_apply_in_fp64_and_report_what_cannot_round_trip(tmp_path: Path) -> None:
    """dtype F64 computes in fp64; --apply of an fp64 task vector computes in fp64 without being asked. A weight
    more than 2^29 times smaller than the base's has a difference fp64 cannot hold: make() names and counts it."""
    g = torch.Generator().manual_seed(0)
    base = torch.randn(4096, generator=g) * 0.02
    ft = (base.double() + torch.randn(4096, generator=g, dtype=torch.float64) * 1e-3).float()  # as training rounds
    ft[7] = 2.0**-40 * (1 + 2.0**-23)  # moved to (almost) zero, its lowest bit beyond fp64's reach from 0.02
    b, f = pair(tmp_path, {"w": base, "ok": base[100:200].clone()}, {"w": ft, "ok": ft[100:200].clone()})
    ok = ft[100:200].clone()
    inexact = tv.make(b, f, str(tmp_path / "tv64.st"), dtype="F64")
    assert inexact == {"w": 1}
    tv.make_applied(b, str(tmp_path / "tv64.st"), str(tmp_path / "back.st"))
    back = tensors(tmp_path / "back.st")
    assert back["w"].dtype == torch.float32 and torch.equal(back["ok"], ok)
    assert int((back["w"] != ft).sum()) == 1 and bool(back["w"][7] != ft[7])
    assert tv.make(b, f, str(tmp_path / "tv32.st")) == {}  # fp32 task vectors are not checked
    tv.make_applied(b, str(tmp_path / "tv32.st"), str(tmp_path / "back32.st"))
    assert int((tensors(tmp_path / "back32.st")["w"] != ft).sum()) > 20  # 1-2% of fp32 weights: why fp64
