"""Corners of the view count: an empty view at a checkpoint, a view of all the
committed memory, a link just past it, and held links, each kept by a keep-alive
dict that a by-value copy outside the arena shares.

Each test checks one rule through what a caller sees: a refusal, a view count,
a count that raises nothing and changes nothing; most also check that a count
made before (``live_views()``, a refused call) changes no later answer.
"""

from __future__ import annotations

import ctypes
import gc
from typing import Any

import pytest

from linalloc import BumpArena, BumpArenaLazy, Layout, TypedArena, TypedArenaLazy, address

Empty = ctypes.c_char * 0


class Link(ctypes.Structure):
    """A value holding a pointer to an empty array."""

    _fields_ = [("value", ctypes.c_int64), ("empty", ctypes.POINTER(Empty))]


class LinkHolder(ctypes.Structure):
    """Memory outside the arena that a Link is copied into by value."""

    _fields_ = [("link", Link)]


class Pair(ctypes.Structure):
    _fields_ = [("a", ctypes.c_int64), ("b", ctypes.c_int64)]


class Box(ctypes.Structure):
    """A value that takes a Pair by value (ctypes keeps the Pair's keep-alives)."""

    _fields_ = [("value", ctypes.c_int64), ("pair", Pair)]


class BoxHolder(ctypes.Structure):
    """Memory outside the arena that a Box is copied into by value."""

    _fields_ = [("box", Box)]


class Node(ctypes.Structure):
    pass


Node._fields_ = [("value", ctypes.c_int64), ("next", ctypes.POINTER(Node))]


# -- mutant 3: _in_regions, a zero-size piece at a region's start ---------------------------


@pytest.mark.parametrize("count_first", [False, True])
def test_rewind_refused_by_a_shared_link_to_an_empty_view_made_after_the_checkpoint(
    count_first: bool,
) -> None:
    """Rule 2, per region: an empty view made after ``cp`` is memory allocated after it.

    A pointer to it stored in a value made before ``cp``, in a keep-alive dict
    that a by-value copy outside the arena shares, counts as a view of that
    memory, and stops ``rewind(cp)`` whether or not a count (``live_views()``)
    ran before the copy was made: a count changes no later refusal.
    """
    arena = BumpArena(256)
    link = arena.alloc(Link)
    cp = arena.checkpoint()
    empty = arena.alloc_uninit_slice(Layout(0))
    assert empty is not None
    assert address(empty) == ctypes.addressof(link) + ctypes.sizeof(Link)  # at the checkpoint
    link.empty = ctypes.pointer(Empty.from_buffer(empty))
    del empty
    if count_first:
        assert arena.live_views() == 1  # `link` only: the pointer is the arena's own
    copy = LinkHolder()
    copy.link = link  # by value: the copy shares the slot's keep-alive dict
    del link
    with pytest.raises(BufferError, match="^cannot rewind to this checkpoint: "):
        arena.rewind(cp)
    del copy
    arena.rewind(cp)  # (the copy gone, the link is the arena's own again)
    assert arena.used == ctypes.sizeof(Link)


# -- mutant 2: _in_regions, an entry that holds only whole-root memoryviews ------------------


@pytest.mark.parametrize("count_first", [False, True])
def test_shared_keepalive_of_a_view_of_all_committed_memory_counts_after_a_count(
    count_first: bool,
) -> None:
    """Rule 2: a view kept by a keep-alive dict that a copy outside the arena shares counts.

    ``box.pair = Pair.from_buffer(view)`` makes ctypes keep the Pair's source
    (a memoryview of ``view``, all of the memory committed when it was made)
    in the dict of ``box``'s row; a by-value copy of ``box`` outside the
    arena shares that dict, so the view counts, and ``reset()`` is refused,
    whether or not a count ran before.
    """
    arena = BumpArenaLazy(1 << 20)
    step = arena.commit_step
    view = arena.alloc_uninit_slice(Layout(step))  # all of the committed memory
    assert view is not None and arena.committed == step
    box = arena.alloc(Box)  # past it: the arena commits more
    assert box is not None and arena.committed > step
    box.pair = Pair.from_buffer(view)
    del view
    if count_first:
        assert arena.live_views() == 1  # `box` only: what it keeps is the arena's own
    copy = BoxHolder()
    copy.box = box  # by value: the copy shares the row's keep-alive dict
    del box
    assert arena.live_views() == 1
    with pytest.raises(BufferError, match="^cannot reset: 1 view "):
        arena.reset()
    del copy
    arena.reset()
    assert arena.used == 0


# -- mutant 4: _view_of, a piece past the end of the newest root ------------------------------


def test_a_link_to_just_past_the_committed_memory_is_own_and_the_count_raises_nothing() -> None:
    """Rule 2 (and rule 6): a pointer stored in a value to another place of the arena is its own.

    ``first.next`` points one element past the last value, which ends the
    committed memory (like a pointer one past the end of a C array, never
    read). The link costs no view; counting it, again and again, raises
    nothing and leaves the arena working: ``reset()`` succeeds once the
    values are gone.
    """
    arena = TypedArenaLazy(Node, 1 << 20)
    n = arena.commit_step // ctypes.sizeof(Node)
    first = arena.alloc(0)
    for k in range(1, n - 1):
        arena.alloc(k)
    last = arena.alloc(n - 1)
    end = ctypes.addressof(last) + ctypes.sizeof(Node)
    assert end == ctypes.addressof(first) + arena.committed  # it ends the committed memory
    first.next = ctypes.pointer(last)
    first.next = ctypes.pointer(first.next[1])  # one past the end: never read
    del last
    assert arena.live_views() == 1  # `first` only
    assert arena.live_views() == 1
    assert ctypes.addressof(first.next.contents) == end
    del first
    arena.reset()
    assert arena.used == 0 and arena.live_views() == 0


# -- mutant 1: _based_on, the first object's own keep-alives -----------------------------------


class NodeHolder(ctypes.Structure):
    """Memory outside the arena that a Node is copied into by value."""

    _fields_ = [("node", Node)]


@pytest.mark.parametrize("counts_before", [0, 5])
def test_held_links_shared_by_a_copy_count_the_same_however_often_counted_before(
    counts_before: int,
) -> None:
    """Rule 2 (the message says how many views are alive), for memory a reset held.

    Two values linked to each other are kept by the drop callback: their
    memory is held. Once a by-value copy outside the arena shares their
    keep-alive dict and the values are gone, the two links count as two
    views, however many counts (refused allocations) ran before: a count
    changes nothing it counts.
    """
    kept: list[Any] = []
    arena = TypedArena(Node, 8, drop=kept.append)
    first, second = arena.alloc(1), arena.alloc(2)
    first.next = ctypes.pointer(second)
    second.next = ctypes.pointer(first)
    del first, second
    arena.reset()  # (the drops keep both values: their memory is held)
    for _ in range(counts_before):
        with pytest.raises(BufferError, match="^cannot allocate: 2 views "):
            arena.alloc(3)
    copy = NodeHolder()
    copy.node = kept[0]  # by value: shares the held slot array's keep-alive dict
    kept.clear()
    gc.collect()
    for _ in range(3):
        with pytest.raises(BufferError, match="^cannot allocate: 2 views "):
            arena.alloc(3)
    assert copy.node.value == 2 and copy.node.next.contents.value == 1
