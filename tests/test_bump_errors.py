"""Refused calls of the untyped arenas (``linalloc._bump``): the exact messages of
``grow()`` and ``alloc_array()``, the state they leave, and a closed arena."""

from __future__ import annotations

import ctypes
import re
from typing import Any, Callable

import pytest

from linalloc import Layout


def exactly(text: str) -> str:
    return "^" + re.escape(text) + "$"


def state(arena: Any) -> tuple[int, int]:
    return arena.used, arena.live_views()


@pytest.mark.parametrize("bad", [b"abcd", bytearray(4), None, 3], ids=lambda b: type(b).__name__)
def test_grow_of_a_non_memoryview_message(bump_cls: type, bad: object) -> None:
    arena = bump_cls(64)
    view = arena.alloc_copy(b"abcd")
    before = state(arena)
    with pytest.raises(
        TypeError, match=exactly(f"grow() takes a memoryview, not {type(bad).__name__}")
    ):
        arena.grow(bad, 8)
    assert state(arena) == before and bytes(view) == b"abcd"


@pytest.mark.parametrize(
    ("new_size", "error", "message"),
    [
        (-1, ValueError, "new_size must be >= 0, got -1"),
        (8.0, TypeError, "new_size must be an int, not float"),
        ("8", TypeError, "new_size must be an int, not str"),
        (True, TypeError, "new_size must be an int, not bool"),
    ],
)
def test_grow_new_size_messages(
    bump_cls: type, new_size: object, error: type[Exception], message: str
) -> None:
    arena = bump_cls(64)
    view = arena.alloc_copy(b"abcd")
    before = state(arena)
    with pytest.raises(error, match=exactly(message)):
        arena.grow(view, new_size)
    assert state(arena) == before and bytes(view) == b"abcd"
    # still the most recent allocation: it grows as usual afterwards
    grown = arena.grow(view, 8)
    assert grown is not None and bytes(grown[:4]) == b"abcd" and arena.used == 8


@pytest.mark.parametrize(("size", "new_size"), [(4, 3), (4, 0), (1, 0)])
def test_grow_cannot_shrink_message(bump_cls: type, size: int, new_size: int) -> None:
    arena = bump_cls(64)
    view = arena.alloc_copy(b"x" * size)
    before = state(arena)
    with pytest.raises(
        ValueError,
        match=exactly(
            f"grow() cannot shrink a view ({size} to {new_size} bytes); "
            "rewind to a checkpoint instead"
        ),
    ):
        arena.grow(view, new_size)
    assert state(arena) == before and bytes(view) == b"x" * size


@pytest.mark.parametrize(
    ("n", "error", "message"),
    [
        (-1, ValueError, "n must be >= 0, got -1"),
        (-5, ValueError, "n must be >= 0, got -5"),
        (2.0, TypeError, "n must be an int, not float"),
        (None, TypeError, "n must be an int, not NoneType"),
        (False, TypeError, "n must be an int, not bool"),
    ],
)
def test_alloc_array_count_messages(
    bump_cls: type, n: object, error: type[Exception], message: str
) -> None:
    arena = bump_cls(64)
    first = arena.alloc(ctypes.c_int32)
    first.value = 7
    before = state(arena)
    with pytest.raises(error, match=exactly(message)):
        arena.alloc_array(ctypes.c_int32, n)
    assert state(arena) == before and first.value == 7


def test_closed_after_a_slow_path_still_says_closed(bump_cls: type) -> None:
    # alloc() of a simple type takes the slow path (no window): the arena is
    # closed right after it, and every call says so, in this arena and others.
    arena = bump_cls(64)
    value = arena.alloc(ctypes.c_int64)
    del value
    arena.close()
    calls: list[Callable[[], object]] = [
        lambda: arena.alloc_uninit_slice(Layout(1)),
        lambda: arena.alloc_uninit_slice(Layout(0)),
        lambda: arena.alloc_copy(b"ab"),
        lambda: arena.alloc(ctypes.c_int64),
        lambda: arena.alloc_array(ctypes.c_int8, 2),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=exactly("arena is closed")):
            call()
    other = bump_cls(64)
    other.alloc(ctypes.c_int64)
    other.close()
    with pytest.raises(ValueError, match=exactly("arena is closed")):
        other.alloc_uninit_slice(Layout(1))
