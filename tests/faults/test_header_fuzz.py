"""The safetensors header parser against random headers, types and truncations: it answers with an
InputError or a valid file, never an internal error, and never takes more memory than the file's size
plus a bound, whatever sizes the header claims."""

from __future__ import annotations

import json
import os
import struct
import tempfile
import tracemalloc

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from asrmerge.errors import InputError
from asrmerge.io.safetensors import SafetensorsFile

BOUND = 1 << 20  # bytes of Python objects allowed beyond the file's own size

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
dtypes = st.sampled_from(["F32", "F16", "BF16", "I64", "U8", "BOOL", "F8", "f32", ""]) | json_values
counts = st.integers(0, 2**66) | st.integers(0, 64) | json_values
shapes = st.lists(st.integers(0, 8) | counts, max_size=4) | json_values
offsets = st.tuples(st.integers(0, 256), st.integers(0, 256)).map(list) | st.lists(counts, max_size=3) | json_values
entries = st.fixed_dictionaries({}, optional={"dtype": dtypes, "shape": shapes, "data_offsets": offsets,
                                              "extra": json_values}) | json_values
headers = st.dictionaries(st.text(max_size=10), entries, max_size=5).flatmap(
    lambda h: st.sampled_from([h, {**h, "__metadata__": {"k": "v"}}]) | st.just(h)
    | json_values.map(lambda m: {**h, "__metadata__": m}))


def parse(data: bytes) -> None:
    """Parse ``data`` as a file; fail on anything but success or an InputError, or on too much memory."""
    fd, path = tempfile.mkstemp(suffix=".safetensors")
    try:
        os.write(fd, data)
        os.close(fd)
        tracemalloc.start()
        try:
            SafetensorsFile(path).close()
        except InputError as e:
            assert str(e) and "\n" not in str(e)
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert peak < len(data) + BOUND, f"{peak} bytes for a file of {len(data)}"
    finally:
        os.unlink(path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header=headers, data_len=st.integers(0, 300), cut=st.integers(0, 2**16) | st.none(),
       pad=st.sampled_from([b"", b" ", b"\n", b"\x00", b"\xff"]))
@example(header={"a": {"dtype": "F32", "shape": [2**40], "data_offsets": [0, 2**42]}}, data_len=8, cut=None, pad=b"")
@example(header={"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, data_len=8, cut=None, pad=b"")
def test_random_headers_and_truncations(header: dict, data_len: int, cut: int | None, pad: bytes) -> None:
    raw = json.dumps(header).encode() + pad
    data = struct.pack("<Q", len(raw)) + raw + bytes(data_len)
    parse(data if cut is None else data[:cut])


@settings(max_examples=200, deadline=None)
@given(prefix=st.binary(max_size=24), length=st.integers(0, 2**64 - 1), body=st.binary(max_size=200))
@example(prefix=b"", length=0x80, body=b" " * 0x80)
@example(prefix=b"", length=2**40, body=b"{}")
@example(prefix=b"", length=100_003, body=b'{"a":' + b"[" * 50_000 + b"]" * 50_000 + b"}")
def test_random_bytes_and_length_fields(prefix: bytes, length: int, body: bytes) -> None:
    parse(prefix)
    parse(struct.pack("<Q", length) + body)
    parse(struct.pack("<Q", len(body)) + body)
