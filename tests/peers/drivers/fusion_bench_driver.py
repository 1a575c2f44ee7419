"""Runs inside the FusionBench venv (never imports asrmerge): calls FusionBench's merge functions on state dicts.

Usage: ``python fusion_bench_driver.py JOBS.json RESULT.json``. Each job is a dict::

    {"method": "tsvm" | "tsvm_eigh" | "iso_c" | "iso_cts" | "ties", "base": "base.safetensors",
     "inputs": ["ft0.safetensors", ...], "taskvecs": false, "dtype": "float64",
     "alphas": [1.0, ...] | null, "scaling_factor": 1.0, "exclude_keys": [...],
     "common_space_fraction": 0.8, "threshold": 0.2, "merge_func": "sum", "remove_keys": [],
     "out": "merged.safetensors"}

It composes the functions as FusionBench's algorithm classes do: task vectors tau_t = W_t - W_0
(``state_dict_sub``), each scaled by its per-task ``alphas`` entry (TaskSingularVectorMerging's alpha list;
for Iso the driver applies the same scaling), the merge function, then W_0 + scaling_factor * tau*.

- tsvm: ``TSVM_utils.compute_and_sum_svd_mem_reduction(tvs, exclude_keys=...)``
- tsvm_eigh: ``TSVM_utils.compute_and_sum_svd_mem_reduction_2(tvs)`` (eigendecomposition instead of the polar
  factor's SVD; it has no exclude_keys and decomposes every 2-D tensor)
- iso_c / iso_cts: ``iso_utils.iso_c`` / ``iso_utils.iso_cts(tvs, common_space_fraction, ...)``
- ties: TiesMergingAlgorithm.run's body: ``state_dict_to_vector`` (sorted keys, minus remove_keys),
  ``ties_merging(flat_tvs, reset_thresh=threshold, merge_func=...)``, ``vector_to_state_dict``; removed keys
  keep W_0.

RESULT.json gets, per job, its seconds and the error (a traceback) if it failed.
"""

from __future__ import annotations

import time

import jobloop  # the drivers' shared job loop, beside this file

T_START = time.perf_counter()

import torch  # noqa: E402
from fusion_bench.method.isotropic_merging.iso_utils import iso_c, iso_cts  # noqa: E402
from fusion_bench.method.task_singular_vector.utils.TSVM_utils import (  # noqa: E402
    compute_and_sum_svd_mem_reduction,
    compute_and_sum_svd_mem_reduction_2,
)
from fusion_bench.method.ties_merging.ties_merging_utils import (  # noqa: E402
    state_dict_to_vector,
    ties_merging,
    vector_to_state_dict,
)
from fusion_bench.utils.state_dict_arithmetic import state_dict_add, state_dict_mul, state_dict_sub  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

IMPORT_S = time.perf_counter() - T_START


def load(path: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {k: v.to(dtype) for k, v in load_file(path).items()}


def ties(job: dict, base: dict, fts: list[dict]) -> dict:
    remove = list(job.get("remove_keys", []))
    flat_ft = torch.vstack([state_dict_to_vector(sd, remove) for sd in fts])
    flat_ptm = state_dict_to_vector(base, remove)
    merged_tv = ties_merging(flat_ft - flat_ptm, reset_thresh=job["threshold"], merge_func=job["merge_func"])
    merged = vector_to_state_dict(flat_ptm + job["scaling_factor"] * merged_tv, base, remove_keys=remove)
    return {k: merged[k] if k in merged else base[k] for k in base}


def run(job: dict) -> None:
    dtype = getattr(torch, job.get("dtype", "float32"))
    base = load(job["base"], dtype)
    inputs = [load(p, dtype) for p in job["inputs"]]
    if job["method"] == "ties":
        fts = [state_dict_add(tv, base) for tv in inputs] if job.get("taskvecs") else inputs
        merged = ties(job, base, fts)
    else:
        tvs = inputs if job.get("taskvecs") else [state_dict_sub(ft, base) for ft in inputs]
        if job.get("alphas") is not None:
            tvs = [state_dict_mul(tv, float(a)) for tv, a in zip(tvs, job["alphas"], strict=True)]
        exclude = list(job.get("exclude_keys", []))
        if job["method"] == "tsvm":
            tau = compute_and_sum_svd_mem_reduction(tvs, exclude_keys=exclude, accelerator="cpu")
        elif job["method"] == "tsvm_eigh":  # no exclude_keys: it decomposes every 2-D tensor
            tau = compute_and_sum_svd_mem_reduction_2(tvs, accelerator="cpu")
        elif job["method"] == "iso_c":
            tau = iso_c(tvs, accelerator="cpu", exclude_keys=exclude)
        elif job["method"] == "iso_cts":
            tau = iso_cts(tvs, common_space_fraction=job["common_space_fraction"], accelerator="cpu",
                          exclude_keys=exclude)
        else:
            raise ValueError(f"unknown method {job['method']!r}")
        merged = state_dict_add(base, state_dict_mul(tau, float(job["scaling_factor"])))
    save_file({k: v.contiguous() for k, v in merged.items()}, job["out"],
              metadata={"format": "pt", "peer": "fusion_bench"})


if __name__ == "__main__":
    raise SystemExit(jobloop.main(run, IMPORT_S, context=torch.no_grad))
