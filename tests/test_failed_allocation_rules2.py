"""More rules of a typed arena's failed allocations: a constructor that takes an
object over its own slot from the arena (iterating it, ``as_array()``) and raises
keeps its slot used, however many such views of the arena were made before."""

from __future__ import annotations

import ctypes

import pytest
from test_failed_allocation_rules import _stash_and_allocate, _Stashing


@pytest.mark.parametrize("how", ["iter", "array"])
def test_a_slot_is_not_given_back_while_an_object_over_it_lives_after_earlier_views(
    typed_cls: type, how: str
) -> None:
    """A failed constructor's slot viewed by it stays used after earlier views too."""
    arena = typed_cls(_Stashing, 8)
    assert len(arena.as_array()) == 0  # (one view of the arena made, and let go, before)
    kept, value = _stash_and_allocate(arena, how)
    assert ctypes.addressof(value) == ctypes.addressof(kept) + 8
    assert len(arena) == 3
    del kept, value
    arena.reset()
