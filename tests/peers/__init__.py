"""Peer implementations (mergekit, FusionBench) in their own venvs, for conformance tests and benchmarks.

- :mod:`tests.peers.env`: create or reuse ``.cache/peers/<name>/`` (torch 2.13.0 CPU first, then the peer).
- :mod:`tests.peers.run`: run peer merges on safetensors files in a child process; wall time and peak RSS.
- :mod:`tests.peers.data`: small random inputs with Whisper tensor names.
- ``drivers/``: the scripts that run inside the peer venvs (they import the peer, never asrmerge).
"""
