"""The algorithm contract of registry.algorithm: declarations are checked, and the engine follows them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import pytest
import torch

from asrmerge.merge import registry
from asrmerge.merge.api import merge
from asrmerge.merge.plan import resolve_params
from asrmerge.merge.registry import REGISTRY, Lam, P, algorithm

SVD = "model.encoder.layers.0.fc1.weight"
BIAS = "model.encoder.layers.0.fc1.bias"


@pytest.fixture
def scratch() -> Iterator[list[str]]:
    """Names registered by a test, removed afterwards."""
    added: list[str] = []
    yield added
    for name in added:
        REGISTRY.pop(name, None)


def test_a_new_algorithm_is_one_declaration(scratch: list[str]) -> None:
    """A matrix algorithm declared here is listed, parsed, counted and merged with nothing else to change."""
    seen: list[dict[str, Any]] = []

    @algorithm("test-halfsum", space="subspace", returns="matrix", paper="none", lam=Lam(1.0),
               svds=lambda T, params: 2 * T)
    def halfsum(tasks: Any, *, frac: Annotated[float | None, P("(0,1]", "a share", default="1/T",
                                                            resolve=lambda T: 1.0 / T)] = None) -> torch.Tensor:
        """Half the sum of the task vectors, times frac * T."""
        seen.append({"frac": frac})
        return 0.5 * frac * tasks.T * sum(tasks.tau(t) for t in range(tasks.T))

    scratch.append("test-halfsum")
    assert "test-halfsum" in registry.names()
    algo = registry.get("test-halfsum")
    assert [p.name for p in algo.params] == ["frac", "lam", "mean_scale"]
    values, _ = resolve_params(algo, [], T=4)
    assert values["frac"] == [0.25] and values["lam"] == [1.0]
    assert algo.svd_count(3, {}) == 6

    g = torch.Generator().manual_seed(0)
    base = {SVD: torch.randn(6, 4, generator=g), BIAS: torch.randn(6, generator=g)}
    taus = [{n: torch.randn(v.shape, generator=g) for n, v in base.items()} for _ in range(4)]
    out = merge("test-halfsum", taus, base=base, taskvecs=True, params={"lam": 2.0})
    assert isinstance(out, dict)
    total = sum(t[SVD] for t in taus)
    assert torch.allclose(out[SVD], base[SVD] + 2.0 * 0.5 * total, atol=1e-5)
    # class mean: the engine's rule, lambda applied by the engine, never passed to the function
    assert torch.allclose(out[BIAS], base[BIAS] + 2.0 * sum(t[BIAS] for t in taus) / 4, atol=1e-5)
    assert seen == [{"frac": 0.25}]


def test_stats_algorithms_must_be_generators(scratch: list[str]) -> None:
    with pytest.raises(TypeError, match="generator"):
        @algorithm("test-bad", space="tau", returns="stats", paper="none", lam=Lam(1.0))
        def bad(tasks: Any) -> Any:
            """Not a generator."""
            return lambda c: c.tau(0)
    scratch.append("test-bad")


def test_rule_algorithms_must_not_be_generators(scratch: list[str]) -> None:
    with pytest.raises(TypeError, match="generator"):
        @algorithm("test-bad", space="tau", returns="rule", paper="none", lam=Lam(1.0))
        def bad(tasks: Any) -> Any:
            """A generator."""
            yield []
    scratch.append("test-bad")


def test_lambda_is_declared_not_taken(scratch: list[str]) -> None:
    with pytest.raises(TypeError, match="engine"):
        @algorithm("test-bad", space="tau", returns="rule", paper="none", lam=Lam(1.0))
        def bad(tasks: Any, *, lam: float = 1.0) -> Any:
            """Takes lam itself."""
            return lambda c: c.tau(0)
    scratch.append("test-bad")


@pytest.mark.parametrize("kw,match", [
    ({"space": "tau", "returns": "matrix", "lam": Lam(1.0)}, "subspace"),
    ({"space": "subspace", "returns": "rule", "lam": Lam(1.0)}, "subspace"),
    ({"space": "tau", "returns": "rule"}, "lam"),
    ({"space": "params", "returns": "rule", "lam": Lam(1.0)}, "lam"),
    ({"space": "pixels", "returns": "rule"}, "space"),
    ({"space": "tau", "returns": "tensor", "lam": Lam(1.0)}, "returns"),
])
def test_inconsistent_declarations_are_refused(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        algorithm("test-bad", paper="none", **kw)


def test_a_none_default_needs_its_run_time_value(scratch: list[str]) -> None:
    with pytest.raises(TypeError, match="resolve"):
        @algorithm("test-bad", space="tau", returns="rule", paper="none", lam=Lam(1.0))
        def bad(tasks: Any, *, k: Annotated[int | None, P("[1,9]", "k")] = None) -> Any:
            """No run-time default."""
            return lambda c: c.tau(0)
    scratch.append("test-bad")


def test_declared_svd_counts() -> None:
    counts = {name: REGISTRY[name].svd_count(5, {"orth": orth})
              for name, orth in [("tsvm", "svd"), ("tsvm-ns", "ns"), ("boosted-tsvm", "ns"), ("iso-c", "svd"),
                                 ("iso-cts", "svd"), ("ties", "svd")]}
    assert counts == {"tsvm": 7, "tsvm-ns": 5, "boosted-tsvm": 5, "iso-c": 1, "iso-cts": 8, "ties": 0}


def test_every_algorithm_declares_a_consistent_kind() -> None:
    import inspect

    for name in registry.names():
        a = REGISTRY[name]
        assert (a.returns == "stats") == inspect.isgeneratorfunction(a.fn), name
        assert a.has_lam == (a.space != "params"), name
        assert "lam" not in a.own and "mean_scale" not in a.own, name


def test_check_names_where_the_value_was_given() -> None:
    """-p names the parameter in the message; an option of its own (svd-inspect's --beta) names only the value."""
    from asrmerge.errors import UsageError

    beta = registry.get("boosted-tsvm").param("beta")
    beta.check(0.3, subject="--beta")
    with pytest.raises(UsageError) as e:
        beta.check(1.5)
    assert str(e.value) == f"-p: beta=1.5 is out of range (0,1]; beta: {beta.doc}"
    with pytest.raises(UsageError) as e:
        beta.check(0.0, subject="--beta", hint="the paper uses 0.3")
    assert str(e.value) == "--beta: 0.0 is not in (0, 1]; the paper uses 0.3"
    with pytest.raises(UsageError) as e:
        beta.check(float("nan"), subject="--beta")
    assert str(e.value) == f"--beta: nan is not in (0, 1]; beta: {beta.doc}"
    orth = registry.get("tsvm").param("orth")
    with pytest.raises(UsageError) as e:
        orth.check("nss", subject="--orth")
    assert str(e.value).startswith("--orth: 'nss' is not one of ") and str(e.value).endswith("did you mean 'ns'?")


@pytest.mark.parametrize(("algo", "params", "shape"), [
    ("tsvm", {}, (12, 7)),
    ("tsvm-ns", {}, (12, 7)),
    ("tsvm-ns", {"ns_steps": 3}, (5, 9)),
    ("boosted-tsvm", {}, (9, 9)),
    ("boosted-tsvm", {"rank_frac": 0.5}, (6, 10)),
    ("iso-c", {}, (8, 11)),
    ("iso-cts", {}, (12, 7)),
    ("iso-cts", {"orth": "ns", "common_frac": 0.5}, (7, 12)),
])
def test_declared_products_are_the_multiply_adds_the_merge_does(algo: str, params: dict, shape: tuple[int, int]) -> None:
    """--dry-run's product count of a matrix is what torch's flop counter sees the merge multiply (SVDs and
    element-wise work are not matrix products; a flop is half a multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    from asrmerge.merge.plan import resolve_params
    from tests.merge_cases import merge_one

    T = 3
    g = torch.Generator().manual_seed(7)
    taus = [torch.randn(*shape, generator=g, dtype=torch.float64) for _ in range(T)]
    alg = REGISTRY[algo]
    values, _ = resolve_params(alg, [f"{k}={v}" for k, v in params.items()], T)
    combo = {k: v[0] for k, v in values.items() if k != "lam"}
    counter = FlopCounterMode(display=False)
    with counter:
        merge_one(algo, taus, params=params)
    declared = alg.product_count(T, combo, *shape)
    assert declared > 0
    assert counter.get_total_flops() == 2 * declared
