"""SVD diagnostics of task vectors and merged updates (ALGORITHMS.md section 8), behind ``asrmerge svd-inspect``.

- :mod:`asrmerge.inspect.spectra`: single-matrix quantities (norms, energy, effective and stable rank, ...);
- :mod:`asrmerge.inspect.interference`: between tasks (cosine, TSV task interference, subspace overlap);
- :mod:`asrmerge.inspect.collapse`: the merged update against its inputs (rank collapse, retention);
- :mod:`asrmerge.inspect.layers`: which tensors to inspect, and their layer type and depth;
- :mod:`asrmerge.inspect.sources`: opens the inputs, checks they belong together, reads one tensor name at a time;
- :mod:`asrmerge.inspect.engine`: decomposes each tensor's inputs as one batch and makes the JSONL records;
- :mod:`asrmerge.inspect.report` and :mod:`asrmerge.inspect.plot`: the per-layer-type summary and pictures.

Importing this package does not import torch.
"""
