"""Merge algorithms: one module per algorithm, registered in :mod:`asrmerge.merge.registry`.

Importing this package registers every algorithm and never imports torch. The order below is the order
of ``asrmerge merge --list``: parameter space, task-vector space, task-vector subspace.
"""

from asrmerge.merge import (  # noqa: F401, I001  (registration order is --list order)
    soup,
    model_stock,
    karcher,
    multislerp,
    ta,
    ties,
    dare,
    dare_ties,
    pcb,
    sce,
    iso_c,
    iso_cts,
    tsvm,
    boosted_tsvm,
)
