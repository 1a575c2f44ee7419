"""Exact order statistics: kth_largest and the streamed RadixSelect equal torch.sort for every k (docs/algorithms.md section 3)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from asrmerge.linalg.select import RadixSelect, kth_largest
from tests.merge_cases import FEW, PROPS

DTYPES = {torch.float32: 32, torch.float64: 64}


@st.composite
def streams(draw) -> tuple[torch.dtype, list[float], list[int]]:
    """Values with repeats, negatives, +0.0 and -0.0, subnormals and extremes; and a random chunking."""
    dtype = draw(st.sampled_from(list(DTYPES)))
    width = DTYPES[dtype]
    finite = st.floats(allow_nan=False, allow_infinity=False, width=width)
    special = st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e-40 if width == 32 else 5e-324, -2.5,
                               float(torch.finfo(dtype).max), float(torch.finfo(dtype).min)])
    pool = draw(st.lists(st.one_of(finite, special), min_size=1, max_size=6))
    values = draw(st.lists(st.one_of(st.sampled_from(pool), finite, special), min_size=1, max_size=16))
    cuts = sorted(draw(st.lists(st.integers(0, len(values)), max_size=5)))
    return dtype, values, cuts


def select(values: torch.Tensor, k: int, cuts: list[int], collect: int | None = None) -> float:
    """RadixSelect over the chunks values[cuts[i]:cuts[i+1]] (empty chunks included), as the engine drives it;
    ``collect=0`` keeps it to the histogram passes."""
    bounds = [0, *cuts, values.numel()]
    sel = RadixSelect(k, values.dtype) if collect is None else RadixSelect(k, values.dtype, collect=collect)
    while not sel.done:
        sel.start_pass()
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            sel.feed(values[a:b])
        sel.end_pass()
    return sel.value


@settings(PROPS, max_examples=15)
@given(data=streams())
def test_radix_select_and_kth_largest_equal_sorting_for_every_k(data) -> None:
    dtype, values, cuts = data
    x = torch.tensor(values, dtype=dtype)
    ranked = torch.sort(x, descending=True).values
    for k in range(1, x.numel() + 1):
        want = float(ranked[k - 1])
        assert kth_largest(x, k) == want, k  # +0.0 == -0.0: the threshold is a value, not a bit pattern
        assert select(x, k, cuts) == want, (k, cuts)
        assert select(x, k, cuts, collect=0) == want, (k, cuts)


@FEW
@given(data=streams())
def test_radix_select_takes_two_passes_in_fp32_and_four_in_fp64(data) -> None:
    """Histogramming every digit: 2 passes for fp32, 4 for fp64; collecting the first digit's bucket when it
    is small: 2 passes for both."""
    dtype, values, cuts = data
    for collect, want in ((0, 2 if dtype == torch.float32 else 4), (len(values), 2)):
        sel = RadixSelect(1, dtype, collect=collect)
        passes = 0
        while not sel.done:
            sel.start_pass()
            sel.feed(torch.tensor(values, dtype=dtype))
            sel.end_pass()
            passes += 1
        assert passes == want, collect


def test_a_bucket_larger_than_collect_goes_on_histogramming() -> None:
    """2000 copies of one value fill one bucket: with collect = 1000 the selection keeps to the radix digits
    (two passes in fp32, four in fp64) and still finds every rank."""
    x = torch.cat([torch.full((2000,), 0.25), torch.linspace(1.0, 2.0, 50), -torch.linspace(1.0, 2.0, 50)])
    for dtype in DTYPES:
        v = x.to(dtype)
        ranked = torch.sort(v, descending=True).values
        for k in (1, 50, 51, 1000, 2050, 2051, 2100):
            sel = RadixSelect(k, dtype, collect=1000)
            passes = 0
            while not sel.done:
                sel.start_pass()
                for chunk in v.split(333):
                    sel.feed(chunk)
                sel.end_pass()
                passes += 1
            assert sel.value == float(ranked[k - 1]), (dtype, k)
            assert passes == (2 if dtype == torch.float32 or k <= 50 or k > 2050 else 4), (dtype, k)


def test_the_bucket_just_below_zero_does_not_admit_zeros() -> None:
    """The bucket of the smallest negative values ends at -0.0's key, which no element has; collecting it must
    not take in the +0.0 and -0.0 elements of the bucket above it."""
    for dtype in DTYPES:
        tiny = float(torch.finfo(dtype).smallest_normal) * 2.0 ** -(23 if dtype == torch.float32 else 52)
        x = torch.tensor([0.0, -0.0, 0.0, 5.0, -tiny, -3 * tiny, -1.0], dtype=dtype)
        ranked = torch.sort(x, descending=True).values
        for k in range(1, 8):
            assert select(x, k, [2, 5]) == float(ranked[k - 1]), (dtype, k)


def test_radix_select_by_hand() -> None:
    """x = (3, -1, 3, 0, -0.0, 2): descending 3, 3, 2, 0, 0, -1, so k = 1..6 gives 3, 3, 2, 0, 0, -1."""
    x = torch.tensor([3.0, -1.0, 3.0, 0.0, -0.0, 2.0])
    expected = [3.0, 3.0, 2.0, 0.0, 0.0, -1.0]
    for dtype in DTYPES:
        for k, want in enumerate(expected, 1):
            assert kth_largest(x.to(dtype), k) == want
            assert select(x.to(dtype), k, [2, 2, 5]) == want


@pytest.mark.parametrize("k", [0, 7])
def test_k_outside_one_to_n_is_an_error(k: int) -> None:
    x = torch.arange(6, dtype=torch.float32)
    with pytest.raises(ValueError):
        kth_largest(x, k)
    with pytest.raises(ValueError):
        select(x, k, [3])


def test_value_before_the_last_pass_is_an_error() -> None:
    sel = RadixSelect(1, torch.float32)
    with pytest.raises(RuntimeError):
        _ = sel.value


def _reference(x: torch.Tensor, k: int) -> float:
    return float(torch.sort(x.reshape(-1), descending=True).values[k - 1])


@pytest.mark.parametrize("kind", ["gauss", "fp16-diffs", "ties", "zeros", "ascending", "descending", "two-values"])
def test_kth_largest_is_exact_on_large_tensors_and_leaves_them_as_they_are(kind: str) -> None:
    """numpy's partition, which kth_largest uses on CPU fp32 and fp64, equals a full sort for k at both ends
    and around the densities the algorithms ask for (repeats and zeros included), on a tensor it only reads."""
    n = (1 << 20) + 12345
    g = torch.Generator().manual_seed(3)
    base = torch.randn(n, generator=g).half()
    x = {
        "gauss": torch.randn(n, generator=g).abs(),
        "fp16-diffs": ((base.float() + 0.003 * torch.randn(n, generator=g)).half().float() - base.float()).abs(),
        "ties": torch.randint(0, 50, (n,), generator=g).float(),
        "zeros": torch.where(torch.rand(n, generator=g) < 0.9, 0.0, torch.rand(n, generator=g)),
        "ascending": torch.arange(n, dtype=torch.float32),
        "descending": torch.arange(n, 0, -1, dtype=torch.float32),
        "two-values": torch.where(torch.arange(n) < n // 5, 2.0, 1.0),
    }[kind]
    for dtype in DTYPES:
        y = x.to(dtype)
        before = y.clone()
        for k in (1, 2, n // 100, n // 5, n // 5 + 1, n // 2, n - 1, n):
            assert kth_largest(y, k) == _reference(y, k), (kind, dtype, k)
        assert torch.equal(y, before)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_kth_largest_of_half_precision_values_goes_through_kthvalue(dtype: torch.dtype) -> None:
    """numpy has no bfloat16: the narrow dtypes keep torch's selection, with the same answer."""
    x = torch.randn(5000, generator=torch.Generator().manual_seed(1)).to(dtype)
    for k in (1, 1000, 5000):
        assert kth_largest(x, k) == _reference(x, k)


def test_kth_largest_of_a_strided_view() -> None:
    """A transposed (non-contiguous) matrix is flattened by a copy; its k-th largest is the same value."""
    x = torch.randn(300, 200, generator=torch.Generator().manual_seed(2)).t()
    for k in (1, 600, 60000):
        assert kth_largest(x, k) == _reference(x.contiguous(), k)


def test_kth_largest_may_reorder_scratch_it_is_handed_and_only_that() -> None:
    """With overwrite the input is the caller's scratch: the same answer, the same multiset of values
    (reordered in place); without it the input is left bit for bit."""
    x = torch.randn(100_003, generator=torch.Generator().manual_seed(4)).abs()
    want = _reference(x, 20_000)
    kept = x.clone()
    assert kth_largest(x, 20_000) == want
    assert torch.equal(x, kept)
    assert kth_largest(x, 20_000, overwrite=True) == want
    assert not torch.equal(x, kept)
    assert torch.equal(torch.sort(x).values, torch.sort(kept).values)
