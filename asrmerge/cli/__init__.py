"""The ``asrmerge`` command line: one module per subcommand, wired together in :mod:`asrmerge.cli.main`.

Command modules parse options, call the library, and write results; they compute nothing themselves.
They import torch and transformers inside their functions so that ``--help`` and completion stay fast.
"""
