"""More rules of ``TypedArena`` its other tests leave implicit.

- a rewind is refused only while a view of memory allocated after the
  checkpoint lives: an iterator over no value views none of it (here in an
  arena brought back to life at collection time, whose regions outlived its
  values, so that a checkpoint at 0 opens a region of its own);
- values dropped at collection time are read from their own slots, at the
  offset that aligns them in a buffer less aligned than their type (as malloc
  may give).
"""

from __future__ import annotations

import ctypes
import gc
from typing import Any

from test_slots_rules3 import _Phoenix, _revived_after_drops

from linalloc import TypedArena, address
from linalloc._store import EagerStore

# -- a buffer less aligned than the type ---------------------------------------------------


class _ShiftedStore(EagerStore):
    """A buffer whose address is 1 past a multiple of 16, less aligned than any type."""

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity + 32)
        self.address += (1 - self.address) % 16
        self.capacity = self.committed = self.extent = capacity


class _ShiftedTypedArena(TypedArena[Any]):
    _store_type = _ShiftedStore


def test_values_dropped_at_collection_are_read_from_their_aligned_slots() -> None:
    """The dropper hands the callback the values in their own (aligned) slots."""
    seen: list[int] = []
    arena = _ShiftedTypedArena(ctypes.c_int64, 8, drop=lambda v: seen.append(v.value))
    for k in (0x0102030405060708, 2, -3):
        where = address(arena.alloc(k))
        assert where % ctypes.alignment(ctypes.c_int64) == 0 and where % 16 != 1
    del arena  # no cycle: dropped now, by the dropper, through a slot array of its own
    gc.collect()
    assert seen == [-3, 2, 0x0102030405060708]


# -- an arena brought back to life at collection time --------------------------------------


def test_an_empty_iterator_views_no_memory_allocated_after_a_checkpoint() -> None:
    """A rewind is refused only by views of memory allocated after the checkpoint."""
    owner = _revived_after_drops()
    arena = owner.arena
    try:
        cp = arena.checkpoint()  # at 0: a region from 0 on, after the one from 1 on
        empty = iter(arena)  # a view of no value
        assert arena.live_views() == 1
        arena.rewind(cp)  # nothing allocated after cp is viewed
        assert list(empty) == [] and len(arena) == 0
        del empty
        arena.rewind(cp)
        arena.close()
        assert owner.dropped == [2, 1]
    finally:
        _Phoenix.revived.clear()
