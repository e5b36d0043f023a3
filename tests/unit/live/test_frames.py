"""Decoding what a client sends (app/live/frames.py): refused cheaply, whatever its size or shape."""

from __future__ import annotations

import tracemalloc

import pytest

from app.live.frames import NotAHello, decode_hello

MIB = 1024 * 1024


def test_a_large_hello_of_the_wrong_shape_is_refused_without_being_built() -> None:
    """A 3 MB `[{},{},…]` is refused as not a hello at its first byte: the decoder allocates next to
    nothing for it (decoding it untyped first built a million dicts, about 64 MB)."""
    message = "[" + ",".join(["{}"] * 1_000_000) + "]"
    tracemalloc.start()
    try:
        with pytest.raises(NotAHello):
            decode_hello(message)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MIB, f"decoding a refused hello allocated {peak / MIB:.1f} MiB"
