"""Merge algorithms: one module per algorithm, registered in :mod:`asrmerge.merge.registry`.

Importing this package registers every algorithm and never imports torch.
"""
