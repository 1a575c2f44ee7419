"""The streaming engine: chunked and model-scope evaluation equal the in-memory result, sweeps, policy, outputs."""

from __future__ import annotations

import pytest
import torch

from asrmerge.errors import UsageError
from asrmerge.merge.api import merge
from asrmerge.merge.registry import names

NAMES = {
    "model.encoder.layers.0.fc1.weight": (24, 10),
    "model.encoder.layers.0.fc1.bias": (24,),
    "model.decoder.embed_tokens.weight": (40, 10),
    "model.encoder.conv1.weight": (10, 4, 3),
    "model.decoder.layers.0.self_attn.q_proj.weight": (10, 10),
}


def make(T: int = 3, seed: int = 0, scale: float = 0.05) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]:
    g = torch.Generator().manual_seed(seed)
    base = {n: torch.randn(s, generator=g) for n, s in NAMES.items()}
    fts = [{n: v + scale * torch.randn(v.shape, generator=g) for n, v in base.items()} for _ in range(T)]
    return base, fts


def close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], tol: float = 1e-5) -> None:
    assert a.keys() == b.keys()
    for n in a:
        assert torch.allclose(a[n], b[n], rtol=tol, atol=tol), n


@pytest.mark.parametrize("algo", names())
def test_streaming_in_row_chunks_equals_in_memory(algo: str) -> None:
    """A budget of a few hundred bytes forces every tensor through the chunked, multi-pass path."""
    base, fts = make()
    whole = merge(algo, fts, base=base)
    chunked = merge(algo, fts, base=base, budget=600)
    close(whole, chunked)


@pytest.mark.parametrize("algo", names())
def test_cache_blocks_equal_the_whole_tensor_bit_for_bit(algo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the CPU an element-wise rule runs over row blocks that fit the cache (engine.block_rows); blocks of
    one to a few rows give exactly the values of one evaluation over the whole tensor, within the budget or
    beyond it."""
    from asrmerge.merge import engine

    base, fts = make(T=4, seed=7)
    params = {"seed": 5} if algo.startswith("dare") else {}
    monkeypatch.setattr(engine, "BLOCK_BYTES", 1 << 40)
    whole = merge(algo, fts, base=base, params=params)
    streamed = merge(algo, fts, base=base, params=params, budget=600)
    monkeypatch.setattr(engine, "BLOCK_BYTES", 2000)
    for budget in (None, 600):
        blocked = merge(algo, fts, base=base, params=params, **({"budget": budget} if budget else {}))
        ref = whole if budget is None else streamed
        for n in whole:
            assert torch.equal(blocked[n], ref[n]), (n, budget)


@pytest.mark.parametrize("algo,params", [("ties", {"density": 0.3}), ("pcb", {"ratio": 0.2})])
def test_statistics_in_memory_read_each_input_once(algo: str, params: dict[str, float],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Where a stats algorithm's statistics set (the registry's stats_set) fits the budget but its rule's full
    working set does not, the statistics are taken in memory and the rule runs over row chunks that slice
    the cached task vectors: each input is read once, and the values are the whole-tensor merge's to the
    bit. A budget below the statistics set streams them and reads again."""
    from asrmerge.merge.operands import Inputs, working_set
    from asrmerge.merge.registry import get

    T, name = 4, "model.decoder.embed_tokens.weight"
    base, fts = make(T=T, seed=3)
    numel = base[name].numel()
    per_task, fixed = get(algo).stats_set
    stats_bytes = working_set(T, numel, torch.float32, per_task, fixed)
    assert stats_bytes < working_set(T, numel, torch.float32)
    reads: list[tuple[int, int] | None] = []
    real = Inputs._read  # every read of an input (read, and difference for W_t - W_0) goes through it

    def counting(self: Inputs, ckpt: object, n: str, rows: tuple[int, int] | None,
                 widen: bool) -> tuple[torch.Tensor, bool]:
        if n == name:
            reads.append(rows)
        return real(self, ckpt, n, rows, widen)  # type: ignore[arg-type]

    monkeypatch.setattr(Inputs, "_read", counting)
    whole = merge(algo, fts, base=base, params=params)
    assert reads == [None] * (T + 1)
    reads.clear()
    sliced = merge(algo, fts, base=base, params=params, budget=stats_bytes)
    assert reads == [None] * (T + 1)
    assert torch.equal(sliced[name], whole[name])
    reads.clear()
    streamed = merge(algo, fts, base=base, params=params, budget=stats_bytes - 1)
    assert len(reads) > 2 * (T + 1) and None not in reads
    close(streamed, whole)


def test_in_memory_order_statistics_take_the_scope_as_one_chunk() -> None:
    """An in-memory KthLargest selects as its one chunk arrives (holding one float, not the values) and refuses
    a second chunk, which only the streamed (radix) evaluation takes."""
    from asrmerge.merge.stream import Accumulator, KthLargest

    x = torch.randn(3000, generator=torch.Generator().manual_seed(2))
    acc = Accumulator(KthLargest(lambda c: c, 17), torch.float32, streamed=False)
    acc.start_pass()
    acc.feed(x)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one chunk"):
        acc.feed(x)  # type: ignore[arg-type]
    acc.end_pass()
    assert acc.done and acc.result == float(torch.sort(x, descending=True).values[16])


def test_cache_blocks_split_large_tensors_on_the_cpu_only() -> None:
    """A large-v3 FFN matrix at T = 10 runs in blocks whose working set is within BLOCK_BYTES; a bias runs
    whole; on a GPU every tensor is one block."""
    from types import SimpleNamespace

    from asrmerge.merge.engine import BLOCK_BYTES, block_rows
    from asrmerge.merge.operands import working_set

    cpu = SimpleNamespace(inputs=SimpleNamespace(T=10, dtype=torch.float32, device=torch.device("cpu")))
    rows = block_rows(cpu, (5120, 1280))  # type: ignore[arg-type]
    assert 1 < rows < 5120
    assert working_set(10, rows * 1280, torch.float32) <= BLOCK_BYTES < working_set(10, (rows + 1) * 1280, torch.float32)
    assert block_rows(cpu, (1280,)) >= 1280  # type: ignore[arg-type]
    gpu = SimpleNamespace(inputs=SimpleNamespace(T=10, dtype=torch.float32, device=torch.device("cuda")))
    assert block_rows(gpu, (5120, 1280)) == 5120  # type: ignore[arg-type]


@pytest.mark.parametrize("algo,params", [("ties", {"density": 0.3}), ("pcb", {"ratio": 0.2}),
                                         ("dare-ties", {"density": 0.5, "rescale": "l1"})])
def test_model_scope_is_one_statistic_over_the_model(algo: str, params: dict) -> None:
    """scope=model on a checkpoint equals scope=tensor on the same values flattened into one tensor."""
    base, fts = make()
    names_ = list(NAMES)
    flat_base = {"w": torch.cat([base[n].reshape(-1) for n in names_])}
    flat_fts = [{"w": torch.cat([f[n].reshape(-1) for n in names_])} for f in fts]
    if algo == "dare-ties":  # l1 rescale and DARE draws are per tensor by definition: compare trims only
        params = {**params, "drop_rate": 0.0}
    ref = merge(algo, flat_fts, base=flat_base, params={**params, "scope": "tensor"}, policy="w=mean")
    got = merge(algo, fts, base=base, params={**params, "scope": "model"})
    flat_got = torch.cat([got[n].reshape(-1) for n in names_])
    assert torch.allclose(flat_got, ref["w"], atol=1e-6)
    chunked = merge(algo, fts, base=base, params={**params, "scope": "model"}, budget=600)
    close(got, chunked, 1e-6)


def test_lambda_sweep_equals_separate_runs() -> None:
    base, fts = make()
    sweep = merge("boosted-tsvm", fts, base=base, params={"lam": [0.5, 1.5], "beta": [0.2, 0.6]})
    assert isinstance(sweep, list) and len(sweep) == 4
    for p, sd in sweep:
        close(sd, merge("boosted-tsvm", fts, base=base, params=p), 1e-6)


def test_dare_masks_do_not_depend_on_chunking_or_task_order_of_reads() -> None:
    base, fts = make()
    a = merge("dare-ta", fts, base=base, params={"drop_rate": 0.7, "seed": 3})
    b = merge("dare-ta", fts, base=base, params={"drop_rate": 0.7, "seed": 3}, budget=700)
    close(a, b, 1e-7)
    c = merge("dare-ta", fts, base=base, params={"drop_rate": 0.7, "seed": 4})
    assert not torch.allclose(a["model.encoder.layers.0.fc1.weight"], c["model.encoder.layers.0.fc1.weight"])


def test_policy_classes_and_group_scales() -> None:
    base, fts = make()
    out = merge("tsvm", fts, base=base, policy="model.encoder.conv1.weight=base;model.encoder.layers.*=mean",
                lam_rules=[("model.decoder.*", 0.0)], params={"lam": 0.7})
    assert torch.equal(out["model.encoder.conv1.weight"], base["model.encoder.conv1.weight"])
    for n in ("model.decoder.embed_tokens.weight", "model.decoder.layers.0.self_attn.q_proj.weight"):
        assert torch.allclose(out[n], base[n])
    n = "model.encoder.layers.0.fc1.weight"
    mean = sum(f[n] - base[n] for f in fts) / 3
    assert torch.allclose(out[n], base[n] + 0.7 * mean, atol=1e-6)
    fixed = merge("tsvm", fts, base=base, params={"lam": 0.7, "mean_scale": "1"})
    b = "model.encoder.layers.0.fc1.bias"  # class mean by default
    assert torch.allclose(fixed[b], base[b] + sum(f[b] - base[b] for f in fts) / 3, atol=1e-6)


def test_svd_on_a_3d_tensor_is_a_usage_error() -> None:
    base, fts = make()
    with pytest.raises(UsageError, match="class svd needs a 2-D tensor"):
        merge("tsvm", fts, base=base, policy="model.encoder.conv1.weight=svd")
    out = merge("tsvm", fts, base=base, policy="model.encoder.conv1.weight=svd-flat")
    assert out["model.encoder.conv1.weight"].shape == (10, 4, 3)


def test_svd_flat_sizes_its_rules_on_the_flattened_matrix() -> None:
    """svd-flat merges the (10, 12) matrix of a (10, 4, 3) tensor, so r = 10 (not min(10, 4) = 4): with
    rank_frac=1 tsvm keeps every triplet and one task comes back unchanged (section 7.1); tasks that leave the
    tensor alone give W_0 in its own shape."""
    base, fts = make()
    flat = "model.encoder.conv1.weight=svd-flat"
    name = "model.encoder.conv1.weight"
    out = merge("tsvm", fts[:1], base=base, policy=flat, params={"rank_frac": 1.0})
    assert torch.allclose(out[name], fts[0][name], rtol=1e-5, atol=1e-5)
    still = [{**f, name: base[name]} for f in fts]
    assert torch.equal(merge("tsvm", still, base=base, policy=flat)[name], base[name])


@pytest.mark.parametrize("algo", ["tsvm", "ties", "dare-ta", "karcher"])
def test_parallel_workers_give_the_same_merge(algo: str) -> None:
    base, fts = make(T=4, seed=5)
    one = merge(algo, fts, base=base, workers=1)
    many = merge(algo, fts, base=base, workers=3, budget=4000)  # small budget: few tensors in flight
    close(one, many, 1e-6)


def batch_inputs(T: int = 3, seed: int = 7, rank_deficient: bool = False):
    """Several same-shape svd matrices (q, k, v, out of two layers) so that batches form."""
    g = torch.Generator().manual_seed(seed)
    shapes = {f"model.decoder.layers.{i}.self_attn.{p}_proj.weight": (12, 9) for i in range(2) for p in "qkvo"}
    shapes.update({f"model.encoder.layers.{i}.fc2.weight": (7, 16) for i in range(3)})  # wide
    shapes["model.decoder.layers.0.fc1.bias"] = (5,)
    base = {n: torch.randn(s, generator=g) for n, s in shapes.items()}
    fts = []
    for _ in range(T):
        ft = {}
        for n, v in base.items():
            d = 0.1 * torch.randn(v.shape, generator=g)
            if rank_deficient and d.dim() == 2:
                d = d[:, :1] @ d[:1, :]  # rank 1: the padded triplets are numerically zero
            ft[n] = v + d
        fts.append(ft)
    return base, fts


@pytest.mark.parametrize("algo,params", [("tsvm", {}), ("tsvm-ns", {}), ("boosted-tsvm", {"beta": 0.4}),
                                         ("boosted-tsvm", {"beta": 0.2, "boost_energy": "sigma2", "boost_scope": "full"}),
                                         ("tsvm", {"rank_frac": 0.6}), ("iso-c", {}), ("iso-c", {"rank_mode": "full"})])
@pytest.mark.parametrize("deficient", [False, True])
def test_batched_calls_equal_per_matrix_results(algo: str, params: dict, deficient: bool) -> None:
    """docs/algorithms.md section 3: batching same-shape tensors matches unbatched results to 1e-5 (fp32)."""
    base, fts = batch_inputs(rank_deficient=deficient)
    one = merge(algo, fts, base=base, params=params, batch=1)
    many = merge(algo, fts, base=base, params=params, batch=4)
    for n in one:
        scale = max(float((one[n] - base[n]).abs().max()), 1e-6)
        assert float((one[n] - many[n]).abs().max()) <= 1e-5 * max(scale, float(base[n].abs().max())), n


def test_batches_group_same_shape_matrices(monkeypatch: pytest.MonkeyPatch) -> None:
    import asrmerge.merge.tsvm as tsvm_module

    sizes = []
    real = tsvm_module.tsv_merge_batch

    def spy(batch, *args, **kw):
        sizes.append(len(batch))
        return real(batch, *args, **kw)

    monkeypatch.setattr(tsvm_module, "tsv_merge_batch", spy)
    base, fts = batch_inputs()
    merge("tsvm", fts, base=base, batch=4)
    assert sorted(sizes) == [3, 4, 4]  # q,k,v,out of each layer; the three fc2 together


@pytest.mark.parametrize("stored", [torch.float16, torch.bfloat16, torch.float32])
def test_task_difference_is_torch_sub_and_leaves_what_the_reader_returned(stored: torch.dtype) -> None:
    """W_t - W_0 is taken in place only in a copy the widening made: the values are torch.sub's to the bit,
    and a tensor the reader hands back as it holds it (fp32 stored as computed: no copy) is left intact."""
    from asrmerge.merge.operands import Inputs

    g = torch.Generator().manual_seed(11)
    held = (0.02 * torch.randn(64, 48, generator=g)).to(stored)
    kept = held.clone()
    base = 0.02 * torch.randn(64, 48, generator=g)

    class Reader:  # a reader that returns the very tensor it holds, as a memory map would
        label = "ft.safetensors"

        def get(self, name: str) -> torch.Tensor:
            return held

        def get_range(self, name: str, start: int, stop: int) -> torch.Tensor:
            return held[start:stop]

    inputs = Inputs(base=None, sources=[], is_taskvec=[], weights=[])
    got = inputs.difference(Reader(), "w", None, base, lambda t: t)  # type: ignore[arg-type]
    assert torch.equal(got, torch.sub(held.float(), base))
    rows = inputs.difference(Reader(), "w", (8, 24), base[8:24], lambda t: t)  # type: ignore[arg-type]
    assert torch.equal(rows, torch.sub(held[8:24].float(), base[8:24]))
    assert torch.equal(held, kept)
