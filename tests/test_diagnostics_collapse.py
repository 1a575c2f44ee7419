"""The merged update against its inputs (docs/algorithms.md section 8.3): kappa_s, kappa_e, collapse, retention."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from asrmerge.diagnostics.collapse import pooled_erank, ratios
from asrmerge.diagnostics.inspection import Settings, analyse
from asrmerge.diagnostics.spectra import effective_rank
from asrmerge.linalg.svd import numerical_rank, svd
from tests.spectral import block_tasks, orthogonal


def inspect(x: torch.Tensor, merged: torch.Tensor, **kw) -> dict[str, list[dict]]:
    res = analyse("model.decoder.layers.2.self_attn.q_proj.weight", x, labels=[f"t{i}" for i in range(len(x))],
                  settings=Settings(**kw), merged=merged, merged_label="M")
    out: dict[str, list[dict]] = {}
    for r in res.records:
        out.setdefault(r["kind"], []).append(r)
    return out


@settings(max_examples=15, deadline=None)
@given(T=st.integers(2, 5), seed=st.integers(0, 10_000))
def test_task_arithmetic_on_identical_tasks_does_not_collapse(T: int, seed: int) -> None:
    """ta on T identical tasks: M = T tau, kappa_s = 1 (no collapse at gamma_c = 1), kappa_e = 1/T, full retention."""
    tau = torch.randn(12, 10, generator=torch.Generator().manual_seed(seed))
    x = tau.expand(T, -1, -1).clone()
    c = inspect(x, x.sum(0))["collapse"][0]
    assert c["kappa_s"] == pytest.approx(1.0, rel=1e-5) and c["collapse"] is False
    assert c["kappa_e"] == pytest.approx(1 / T, rel=1e-5)
    assert all(r == pytest.approx(1.0, abs=1e-5) for r in c["retention"])
    assert c["subject"] == "M" and c["gamma_c"] == 1.0 and len(c["k_keep"]) == T


def test_iso_c_update_has_srank_equal_to_its_rank() -> None:
    """iso-c: Delta_iso = mean(sigma_rho) U_rho V_rho^T, so srank(M) = erank(M) = rho(M)."""
    x = block_tasks([[3.0, 1.0], [2.0, 0.5, 0.25]], 14, 10, seed=3, dtype=torch.float32)
    delta = x.sum(0)
    u, s, vh = svd(delta)
    rho = numerical_rank(s, delta.shape, delta.dtype)
    iso = s[:rho].mean() * u[:, :rho] @ vh[:rho, :]
    merged = inspect(x, iso)["merged"][0]
    assert merged["nrank"] == rho == 5
    assert merged["srank"] == pytest.approx(rho, rel=1e-5) and merged["erank"] == pytest.approx(rho, rel=1e-5)


def test_orthogonal_tasks_summed_keep_their_diversity() -> None:
    """Orthogonal tasks of equal spectral norm: M's spectrum is the pooled one (kappa_e = 1), srank(M) is the sum
    of the tasks' (14/9 + 9.25/9 + 27/9), so kappa_s = 50.25/27 > 1. rank99(M) = 7 leaves out sigma = 0.5 (E(7) =
    50/50.25 >= 0.99), so task 2 keeps 9/9.25 of its energy in M's principal subspaces, the others all of it."""
    x = block_tasks([[3.0, 2.0, 1.0], [3.0, 0.5], [3.0, 3.0, 3.0]], 16, 12, seed=4, dtype=torch.float32)
    c = inspect(x, x.sum(0), rank_frac=0.25)["collapse"][0]
    assert c["kappa_e"] == pytest.approx(1.0, rel=1e-5)
    assert c["kappa_s"] == pytest.approx(50.25 / 27, rel=1e-5) and c["collapse"] is False
    assert c["rank99"] == 7 and c["retention"] == pytest.approx([1.0, 9 / 9.25, 1.0], abs=1e-5)


def test_a_shared_direction_collapses_the_merge() -> None:
    """tau_t = shared rank-1 (sigma 1) + own rank-3 (sigma 1, 1, 1): srank(tau_t) = 4; the sum has sigma = 3 and
    nine 1s, srank = 18/9 = 2, so kappa_s = 1/2 < gamma_c: collapse."""
    u, v = orthogonal(16, 7), orthogonal(16, 8)
    shared = u[:, :1] @ v[:, :1].T
    x = torch.stack([shared + u[:, 1 + 3 * t:4 + 3 * t] @ v[:, 1 + 3 * t:4 + 3 * t].T for t in range(3)]).float()
    out = inspect(x, x.sum(0))
    c = out["collapse"][0]
    assert [r["srank"] for r in out["input"]] == pytest.approx([4, 4, 4], rel=1e-5)
    assert c["srank"] == pytest.approx(2.0, rel=1e-5) and c["kappa_s"] == pytest.approx(0.5, rel=1e-5)
    assert c["collapse"] is True
    assert inspect(x, x.sum(0), collapse_threshold=0.4)["collapse"][0]["collapse"] is False


def test_retention_of_a_task_missing_from_the_merge_is_zero() -> None:
    x = block_tasks([[2.0, 1.0], [3.0]], 8, 8, seed=1, dtype=torch.float32)
    c = inspect(x, x[0].clone())["collapse"][0]
    assert c["retention"][0] == pytest.approx(1.0, abs=1e-5) and c["retention"][1] == pytest.approx(0.0, abs=1e-6)


def test_zero_merge_and_zero_tasks_stay_finite() -> None:
    x = torch.zeros(2, 6, 4)
    out = inspect(x, torch.zeros(6, 4))
    c = out["collapse"][0]
    assert c["kappa_s"] is None and c["kappa_e"] is None and c["collapse"] is None
    assert c["retention"] == [None, None] and out["merged"][0]["erank"] == 0.0


def test_ratios_and_pooled_erank_by_hand() -> None:
    assert ratios(2.0, 3.0, [4.0, 1.0], 6.0) == {"kappa_s": 0.5, "kappa_e": 0.5, "gamma_c": 1.0, "collapse": True}
    assert ratios(4.0, 6.0, [4.0], 6.0)["collapse"] is False  # equal counts as no collapse
    assert ratios(1.0, 1.0, [0.0], 0.0) == {"kappa_s": None, "kappa_e": None, "gamma_c": 1.0, "collapse": None}
    # two tasks with flat spectra of 2 values each pool into 4 equal values
    assert pooled_erank([torch.tensor([1.0, 1.0]), torch.tensor([1.0, 1.0])]) == pytest.approx(4.0)
    assert pooled_erank([torch.tensor([2.0, 1.0])]) == pytest.approx(effective_rank(torch.tensor([2.0, 1.0])))
