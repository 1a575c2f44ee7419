"""SVD diagnostics of task vectors and merged updates (docs/algorithms.md section 8), behind ``asrmerge svd-inspect``.

- :mod:`asrmerge.diagnostics.spectra`: single-matrix quantities (norms, energy, effective and stable rank, ...);
- :mod:`asrmerge.diagnostics.interference`: between tasks (cosine, TSV task interference, subspace overlap);
- :mod:`asrmerge.diagnostics.collapse`: the merged update against its inputs (rank collapse, retention);
- :mod:`asrmerge.diagnostics.layers`: which tensors to inspect, and their layer type and depth;
- :mod:`asrmerge.diagnostics.sources`: opens the inputs, checks they belong together, reads one tensor name at a time;
- :mod:`asrmerge.diagnostics.inspection`: decomposes each tensor's inputs as one batch and makes the JSONL records;
- :mod:`asrmerge.diagnostics.report` and :mod:`asrmerge.diagnostics.plot`: the per-layer-type summary and pictures.

Importing this package does not import torch.
"""
