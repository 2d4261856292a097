"""The answers `alloc_extend` keeps per type of items are bounded: at most 1024 types."""

from __future__ import annotations

import ctypes
import gc
import weakref

import linalloc._typed_bulk
from linalloc import TypedArena


def test_alloc_extend_keeps_at_most_1024_types_of_items_alive() -> None:
    """The 1025th new type of items lets the 1024 types kept before it be collected."""
    arena = TypedArena(ctypes.c_int32, 8)
    linalloc._typed_bulk._arrays_of.clear()  # (other tests filled it: start from none)
    kinds = [type(f"Items{i}", (list,), {}) for i in range(1025)]
    first = weakref.ref(kinds[0])
    for kind in kinds[:1024]:
        assert arena.alloc_extend(kind()) is not None
    del kinds[:1024], kind
    gc.collect()
    assert first() is not None  # kept by the answers: 1024 of them
    assert arena.alloc_extend(kinds[0]()) is not None
    gc.collect()
    assert first() is None
    assert len(arena) == 0
    linalloc._typed_bulk._arrays_of.clear()


def test_alloc_extend_with_a_type_of_items_seen_before_keeps_the_answers() -> None:
    """A type of items seen before is answered from the kept answers: a full cache stays."""
    arena = TypedArena(ctypes.c_int32, 8)
    linalloc._typed_bulk._arrays_of.clear()
    kinds = [type(f"Seen{i}", (list,), {}) for i in range(1024)]
    first = weakref.ref(kinds[0])
    for kind in kinds:
        assert arena.alloc_extend(kind()) is not None
    last = kinds[-1]
    del kinds, kind
    assert arena.alloc_extend(last([1])) is not None  # seen: no new answer
    gc.collect()
    assert first() is not None
    assert len(arena) == 1
    linalloc._typed_bulk._arrays_of.clear()


def test_alloc_extend_keeps_one_answer_per_type_of_items_and_arena_type() -> None:
    """One type of items given to arenas of two types makes two answers: with 1022
    other types the cache is full, and the next new type empties it."""
    arena32 = TypedArena(ctypes.c_int32, 8)
    arena64 = TypedArena(ctypes.c_int64, 8)
    linalloc._typed_bulk._arrays_of.clear()
    kinds = [type(f"Two{i}", (list,), {}) for i in range(1024)]
    second = weakref.ref(kinds[1])
    assert arena32.alloc_extend(kinds[0]()) is not None
    assert arena64.alloc_extend(kinds[0]()) is not None
    for kind in kinds[1:1023]:
        assert arena32.alloc_extend(kind()) is not None
    del kinds[1:1023], kind
    gc.collect()
    assert second() is not None  # 1024 answers kept
    assert arena32.alloc_extend(kinds[1]()) is not None  # the 1025th
    gc.collect()
    assert second() is None
    linalloc._typed_bulk._arrays_of.clear()
