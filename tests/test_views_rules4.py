"""View accounting rules: what a count puts back is the entry it took out, under its own key.

A count takes the arena's own links (keep-alive entries of its arrays that hold
only its own memory) out of ctypes' ``_objects`` dicts and puts them back
before it returns (``_views.Ledger.put_back``): under the same key, as views
over the same memory. ctypes finds an entry by its key when the field it
belongs to is stored again: an entry put back under another key would be a
second one that no store replaces, holding its old target for ever. These
tests check the rule through what a caller sees: a rewind accepted once the
pointer that held the freed memory points elsewhere.
"""

from __future__ import annotations

import ctypes
import gc

import pytest


class Node(ctypes.Structure):
    pass


Node._fields_ = [("value", ctypes.c_int64), ("next", ctypes.POINTER(Node))]


def test_a_link_put_back_by_a_count_is_let_go_when_its_field_is_stored_again(
    typed_cls: type,
) -> None:
    """Rule 2 per region, after a count: a pointer into memory after a checkpoint
    refuses the rewind while it points there, and no longer once its field holds
    another pointer (the entry the count put back is the field's, under its key)."""
    arena = typed_cls(Node, 8)
    first = arena.alloc(1)
    cp = arena.checkpoint()
    later = arena.alloc(2)
    first.next = ctypes.pointer(later)  # (kept in the slot array's keep-alives)
    del later
    gc.collect()
    assert arena.live_views() == 1  # (first; its link is the arena's own: out, then back)
    with pytest.raises(BufferError, match="^cannot rewind to this checkpoint: 1 view "):
        arena.rewind(cp)  # (first points after the checkpoint)
    first.next = ctypes.POINTER(Node)()  # (the field's entry replaced: ``later`` let go)
    gc.collect()
    assert arena.live_views() == 1
    arena.rewind(cp)
    assert len(arena) == 1 and first.value == 1 and not first.next
