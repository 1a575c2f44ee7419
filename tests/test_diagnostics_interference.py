"""Task interference (STI), cosine and subspace overlap (docs/algorithms.md section 8.2): closed forms and invariances."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from asrmerge.diagnostics.inspection import Settings, analyse
from asrmerge.diagnostics.interference import Triplets, cosines, overlap, pair_sti, sti, truncate
from asrmerge.linalg.svd import numerical_rank, svd
from tests.spectral import block_tasks, orthogonal, with_spectrum


def triplets(x: torch.Tensor, k: int) -> list[Triplets]:
    out = []
    for a in x:
        u, s, vh = svd(a)
        out.append(truncate(u, s, vh, k, numerical_rank(s, a.shape, a.dtype)))
    return out


def records(x: torch.Tensor, kind: str, **kw) -> list[dict]:
    res = analyse("model.encoder.layers.0.fc1.weight", x, labels=[f"t{i}" for i in range(len(x))],
                  settings=Settings(**kw))
    return [r for r in res.records if r["kind"] == kind]


@pytest.mark.parametrize("ranks", [[4, 4, 4], [2, 1, 3]])
def test_orthogonal_tasks_have_zero_interference(ranks: list[int]) -> None:
    """Mutually orthogonal subspaces: STI = 0, pair STI = 0, overlap 0, cosine 0, in fp32 through the engine.

    With ranks (2, 1, 3) and k = floor(12/3) = 4 the tasks are rank-deficient: their null triplets must be dropped.
    """
    x = block_tasks([[3.0 - 0.5 * i for i in range(r)] for r in ranks], 12, 12, seed=5, dtype=torch.float32)
    tasks = records(x, "tasks")[0]
    assert tasks["k"] == 4 and tasks["sti"] < 1e-5 and tasks["sti_rel"] < 1e-6
    for p in records(x, "pair"):
        assert p["sti"] < 1e-5 and p["sti_rel"] < 1e-6
        assert p["ov_u"] < 1e-10 and p["ov_v"] < 1e-10 and abs(p["cos"]) < 1e-6


def test_keeping_null_triplets_would_break_orthogonality() -> None:
    """Why k_t = min(k, rho): the arbitrary null vectors of a rank-1 task overlap the other task's signal."""
    x = block_tasks([[1.0], [1.0]], 4, 4, seed=2)
    u0, s0, vh0 = svd(x[0])
    u1, s1, vh1 = svd(x[1])
    kept = sti([truncate(u0, s0, vh0, 2, 1), truncate(u1, s1, vh1, 2, 1)])[0]
    padded = sti([truncate(u0, s0, vh0, 2, 2), truncate(u1, s1, vh1, 2, 2)])[0]
    assert kept < 1e-12 < padded


@settings(max_examples=25, deadline=None)
@given(T=st.integers(2, 5), seed=st.integers(0, 10_000), rank=st.integers(1, 8))
def test_identical_tasks_give_sti_rel_one(T: int, seed: int, rank: int) -> None:
    """T copies of one task vector: sti_rel = 1 exactly with L1 (fp64), every pair 1, overlap 1, cosine 1."""
    g = torch.Generator().manual_seed(seed)
    a = with_spectrum(sorted(torch.rand(rank, generator=g, dtype=torch.float64).add(0.1).tolist(), reverse=True), 10, 8,
                      seed=seed)
    x = a.expand(T, -1, -1).clone()
    tr = triplets(x, max(1, 8 // T))
    total, rel = sti(tr)
    assert rel == pytest.approx(1.0, rel=1e-12)
    for i in range(T):
        for j in range(i + 1, T):
            assert pair_sti(tr[i], tr[j])[1] == pytest.approx(1.0, rel=1e-12)
            assert overlap(tr[i].u, tr[j].u) == pytest.approx(1.0, rel=1e-12)
    assert all(c == pytest.approx(1.0, rel=1e-12) for row in cosines(x) for c in row)


def test_identical_tasks_in_fp32_through_the_engine() -> None:
    a = torch.randn(16, 12, generator=torch.Generator().manual_seed(1))
    x = a.expand(3, -1, -1).clone()
    assert records(x, "tasks")[0]["sti_rel"] == pytest.approx(1.0, rel=1e-5)
    assert all(p["sti_rel"] == pytest.approx(1.0, rel=1e-5) and p["cos"] == pytest.approx(1.0, rel=1e-6)
               for p in records(x, "pair"))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), perm=st.permutations([0, 1, 2]), norm=st.sampled_from(["l1", "fro"]),
       flips=st.lists(st.booleans(), min_size=9, max_size=9))
def test_invariant_to_task_order_and_sign_flips(seed: int, perm: list[int], norm: str, flips: list[bool]) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 9, 7, generator=g, dtype=torch.float64)
    tr = triplets(x, 3)
    total, rel = sti(tr, norm)
    d = torch.tensor([-1.0 if f else 1.0 for f in flips], dtype=torch.float64).view(3, 3)
    flipped = [Triplets(t.u * d[i], t.s, t.v * d[i]) for i, t in enumerate(tr)]  # (u_i, v_i) -> (-u_i, -v_i)
    for other in ([tr[i] for i in perm], flipped):
        t2, r2 = sti(other, norm)
        assert t2 == pytest.approx(total, rel=1e-10) and r2 == pytest.approx(rel, rel=1e-10)
    assert pair_sti(tr[0], tr[1], norm) == pytest.approx(pair_sti(tr[1], tr[0], norm), rel=1e-10)
    assert pair_sti(flipped[0], flipped[2], norm) == pytest.approx(pair_sti(tr[0], tr[2], norm), rel=1e-10)


@pytest.mark.parametrize("norm", ["l1", "fro"])
def test_pair_value_is_sti_of_two_tasks(norm: str) -> None:
    x = torch.randn(2, 10, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    tr = triplets(x, 3)
    assert pair_sti(tr[0], tr[1], norm) == pytest.approx(sti(tr, norm), rel=1e-12)


def test_frobenius_norm_of_two_identical_tasks() -> None:
    """T = 2 identical: (U^T U - I) Sigma (V^T V - I) = blkdiag(Sigma_1, Sigma_1), so STI_F = sqrt(2) ||sigma||_2."""
    a = with_spectrum([3.0, 2.0, 1.0], 8, 6, seed=9)
    tr = triplets(torch.stack([a, a]), 3)
    total, rel = sti(tr, "fro")
    assert total == pytest.approx(math.sqrt(2) * math.sqrt(14), rel=1e-12)
    assert rel == pytest.approx(math.sqrt(28) / 12, rel=1e-12)


def test_shared_half_subspace_overlaps_one_half() -> None:
    """Tasks sharing 2 of their 4 directions (mutually orthogonal parts): ov_u = ov_v = 2/4."""
    u, v = orthogonal(16, 1), orthogonal(16, 2)
    shared = (u[:, :2] * torch.tensor([4.0, 3.0], dtype=torch.float64)) @ v[:, :2].T
    a = shared + (u[:, 2:4] * torch.tensor([2.0, 1.0], dtype=torch.float64)) @ v[:, 2:4].T
    b = shared + (u[:, 4:6] * torch.tensor([2.5, 1.5], dtype=torch.float64)) @ v[:, 4:6].T
    pair = records(torch.stack([a, b]).float(), "pair", sti_k=4)[0]
    assert pair["ov_u"] == pytest.approx(0.5, abs=1e-5) and pair["ov_v"] == pytest.approx(0.5, abs=1e-5)
    assert pair["cos"] == pytest.approx(25 / math.sqrt(30 * 33.5), rel=1e-5)


def test_cosine_of_a_zero_task_is_null() -> None:
    x = torch.stack([torch.zeros(4, 3), torch.ones(4, 3), -torch.ones(4, 3)])
    c = cosines(x)
    assert c[0][1] is None and c[1][2] == pytest.approx(-1.0)


def test_batched_equals_one_by_one() -> None:
    """Section 3: batching same-shape tensors matches unbatched results to 1e-5 relative (fp32)."""
    x = torch.randn(4, 24, 40, generator=torch.Generator().manual_seed(7))
    batched = [r for r in analyse("x", x, labels=list("abcd"), settings=Settings(rank_frac=0.25)).records
               if r["kind"] == "input"]
    for t in range(4):
        alone = analyse("x", x[t:t + 1], labels=["a"], settings=Settings(rank_frac=0.25)).records[0]
        for key in ("fro", "spec", "nuc", "erank", "srank", "e_keep", "boost_c", "boost_gain"):
            assert batched[t][key] == pytest.approx(alone[key], rel=1e-5)
        assert batched[t]["spectrum"] == pytest.approx(alone["spectrum"], rel=1e-5)
        assert (batched[t]["nrank"], batched[t]["rank90"], batched[t]["rank99"]) == (
            alone["nrank"], alone["rank90"], alone["rank99"])
