"""View accounting rules: the constants measured at import, and what a count of held memory keeps.

A count reads the reference counts of the arena's objects against numbers
measured once at import (what a part, an array, the value iterator, a
keep-alive dict account for by themselves). A keep-alive dict that a struct
copied by value outside the arena shares is not the arena's alone: its links
count. A count of memory that a rewind freed while a view of it lived (held
memory) takes its own links out and puts them back without losing anything
else they keep. These tests check each rule through what a caller sees.
"""

from __future__ import annotations

import array
import ctypes
import gc
import os
import weakref
from typing import Any

import pytest

import linalloc
from linalloc import TypedArena, TypedArenaLazy


class Node(ctypes.Structure):
    pass


Node._fields_ = [("value", ctypes.c_int64), ("next", ctypes.POINTER(Node))]


class Holder(ctypes.Structure):
    """Memory outside the arena that a Node is copied into by value."""

    _fields_ = [("node", Node)]


class Cell(ctypes.Structure):
    pass


class Named(ctypes.Structure):
    """Copied by value into a Cell: one keep-alive entry for its string, an outside int and a
    link."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("other", ctypes.POINTER(ctypes.c_int64)),
        ("next", ctypes.POINTER(Cell)),
    ]


Cell._fields_ = [("value", ctypes.c_int64), ("named", Named)]


def _views(count: int) -> str:
    return "1 view " if count == 1 else f"{count} views "


# -- a keep-alive dict shared with a by-value copy -----------------------------------------


def test_reset_refused_while_a_by_value_copy_shares_the_keepalive_dict() -> None:
    """Rule 2: a link in a dict that a copy outside the arena shares counts as a view."""
    arena = TypedArena(Node, 8)
    first, second = arena.alloc(1), arena.alloc(2)
    first.next = ctypes.pointer(second)
    assert arena.live_views() == 2
    del second
    assert arena.live_views() == 1  # (the link alone is the arena's own)
    copy = Holder()
    copy.node = first  # by value: the copy shares the slot array's keep-alive dict
    del first
    gc.collect()
    with pytest.raises(BufferError, match="^cannot reset: " + _views(1)):
        arena.reset()
    assert arena.live_views() == 1
    assert copy.node.next.contents.value == 2
    del copy
    gc.collect()
    assert arena.live_views() == 0
    arena.reset()
    assert len(arena) == 0


# -- held memory -----------------------------------------------------------------------


def _held_cell_linking_out() -> tuple[Any, list[Any], weakref.ref[Any]]:
    """A typed arena whose rewind is held by a kept value; its link also keeps an outside int.

    Returns (arena, the kept values, a weak reference to the outside int).
    """
    kept: list[Any] = []
    arena = TypedArena(Cell, 8, drop=kept.append)
    arena.alloc(0)
    cp = arena.checkpoint()
    first, second = arena.alloc(1), arena.alloc(2)
    outside = ctypes.c_int64(7)
    weak = weakref.ref(outside)
    first.named = Named(b"hello", ctypes.pointer(outside), ctypes.pointer(second))
    del first, second, outside
    arena.rewind(cp)  # the drops keep both values: their memory is held
    assert [cell.value for cell in kept] == [2, 1]
    del kept[0]  # (the first value stays: it links to the second, within held memory)
    gc.collect()
    return arena, kept, weak


def test_a_count_of_held_memory_keeps_what_else_a_link_holds() -> None:
    """Rule 1: counting held memory never lets go of an outside object a held value's link keeps."""
    arena, kept, weak = _held_cell_linking_out()
    for _ in range(2):
        with pytest.raises(BufferError, match="^cannot allocate: 1 view of memory freed"):
            arena.alloc()
        assert weak() is not None
        assert kept[0].named.other.contents.value == 7
        assert kept[0].named.next.contents.value == 2
        assert arena.live_views() == 1
        assert weak() is not None
    kept.clear()
    gc.collect()
    assert arena.live_views() == 0
    assert arena.alloc(5).value == 5


needs_proc = pytest.mark.skipif(
    not os.path.exists("/proc/self/maps"),
    reason="observes mappings through /proc/self/maps (Linux only)",
)


def _mapped(address: int) -> bool:
    """Whether a mapping of this process covers ``address``."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            lo, hi = (int(end, 16) for end in line.split()[0].split("-"))
            if lo <= address < hi:
                return True
    return False


@needs_proc
def test_close_releases_memory_at_once_after_counting_a_link_within_held_memory() -> None:
    """Rule 3: a count of held memory leaves no cycle that keeps the memory past close()."""
    kept: list[Any] = []
    arena = TypedArenaLazy(Node, 1 << 20, drop=kept.append)
    address = linalloc.address(arena.alloc(0))
    cp = arena.checkpoint()
    arena.alloc(1), arena.alloc(2)
    arena.rewind(cp)  # the drops keep both values: their memory is held
    second, first = kept
    kept.clear()
    first.next = ctypes.pointer(second)  # a link within held memory
    del second
    gc.collect()
    with pytest.raises(BufferError, match="^cannot allocate: 1 view of memory freed"):
        arena.alloc()  # (the count takes the link out, and puts it back)
    assert first.next.contents.value == 2
    del first
    collecting = gc.isenabled()
    gc.disable()
    try:
        arena.close()
        kept.clear()  # (the value close() dropped)
        assert not _mapped(address)
    finally:
        if collecting:
            gc.enable()


# -- a count runs no code: what an entry holds that could die and run code ------------


class Pair(ctypes.Structure):
    """Copied by value into a Box: one keep-alive entry for a node's keep-alives and a link."""

    _fields_ = [("node", Node), ("link", ctypes.POINTER(Node))]


class Box(ctypes.Structure):
    _fields_ = [("pair", Pair), ("x", ctypes.c_int64)]


def test_an_entry_holding_a_source_with_a_weak_reference_callback_is_counted() -> None:
    """Rule 2: an entry holding a memoryview that would run a callback as it dies is never
    taken out."""
    arena = TypedArena(Box, 8)
    first, second, third = arena.alloc(), arena.alloc(), arena.alloc()
    calls: list[str] = []
    view = Node.from_buffer(second)
    source = view._objects["ffffffff"]  # the memoryview ``from_buffer`` keeps of ``second``
    watch = weakref.ref(source, lambda _: calls.append("died"))
    pair = Pair()
    pair.node = view  # by value: keeps the view's keep-alive dict (the memoryview), not the view
    pair.link = ctypes.pointer(third.pair.node)  # (an own link, met first by the count)
    first.pair = pair  # by value: one entry holding both
    del pair, view, second, third, source
    gc.collect()
    assert arena.live_views() == 3  # the first value, and the entry's hold on two more
    assert calls == [] and watch() is not None
    with pytest.raises(BufferError, match="^cannot reset: " + _views(3)):
        arena.reset()
    assert calls == [] and watch() is not None


# -- what a count finds in an entry: each object once, the arena's dicts on their own ----


class Twin(ctypes.Structure):
    """Two links: copied by value into a TwinCell, one keep-alive entry for both."""

    _fields_ = [("a", ctypes.POINTER(Node)), ("b", ctypes.POINTER(Node))]


class TwinCell(ctypes.Structure):
    _fields_ = [("node", Node), ("twin", Twin)]


def test_two_links_to_one_object_count_as_one_view_in_a_refused_rewind() -> None:
    """Rule 2: the refusal's count finds an object an entry holds twice once."""
    arena = TypedArena(TwinCell, 8)
    first = arena.alloc()
    cp = arena.checkpoint()
    later = arena.alloc()
    node = later.node
    first.twin = Twin(ctypes.pointer(node), ctypes.pointer(node))  # the same object twice
    del node, later
    gc.collect()
    assert arena.live_views() == 1  # the first value (its links are the arena's own)
    pattern = "^cannot rewind to this checkpoint: " + _views(1)
    for _ in range(2):
        with pytest.raises(BufferError, match=pattern):
            arena.rewind(cp)  # the links keep memory after the checkpoint
    assert first.twin.a.contents.value == 0
    del first
    with pytest.raises(BufferError, match=pattern):
        arena.rewind(cp)
    arena.reset()
    assert arena.live_views() == 0


def test_a_link_is_left_out_beside_an_entry_over_a_python_buffer() -> None:
    """Rule 2: an own link holding the slot array's dict is judged without the dict's other
    entries."""
    arena = TypedArena(Node, 8)
    first, second, third = arena.alloc(1), arena.alloc(2), arena.alloc(3)
    outside = Node.from_buffer(bytearray(ctypes.sizeof(Node)))  # (over a Python buffer)
    outside.value = 7
    third.next = ctypes.pointer(outside)  # an entry holding a Python buffer: kept, not the arena's
    first.next = ctypes.pointer(second)  # an own link: its keep-alive holds the slot array's dict
    del outside, second
    gc.collect()
    assert arena.live_views() == 2  # the first and third values, not the link
    del first, third
    gc.collect()
    assert arena.live_views() == 0
    arena.reset()


def test_a_copied_slice_of_the_arenas_first_bytes_is_its_own_link() -> None:
    """Rule 2: a keep-alive holding a slice that begins at the arena's first byte is left out."""
    arena = TypedArena(Holder, 8)
    first, second = arena.alloc(), arena.alloc()
    assert linalloc.address(first) == linalloc.address(first._b_base_)  # (the first byte)
    whole = memoryview(first._b_base_).cast("B")  # (the array ctypes made the value from)
    view = Node.from_buffer(whole[: ctypes.sizeof(Node)])  # over a slice of it
    del whole
    second.node = view  # by value: the entry is the view's keep-alive dict (the slice)
    del view
    gc.collect()
    assert arena.live_views() == 2  # the two values; the slice is the arena's own memory
    del first
    gc.collect()
    assert arena.live_views() == 1
    del second
    arena.reset()


class Trio(ctypes.Structure):
    """Copied by value into a TrioBox: one entry for an outside int, a node's keep-alives and a
    link."""

    _fields_ = [
        ("other", ctypes.POINTER(ctypes.c_int64)),
        ("node", Node),
        ("link", ctypes.POINTER(Node)),
    ]


class TrioBox(ctypes.Structure):
    _fields_ = [("trio", Trio), ("x", ctypes.c_int64)]


def test_a_rewinds_count_keeps_an_outside_object_beside_a_slice_past_the_checkpoint() -> None:
    """Rule 1: a count that meets a slice it cannot leave out loses nothing else the entry keeps."""
    arena = TypedArena(TrioBox, 8)
    first, target = arena.alloc(), arena.alloc()
    cp = arena.checkpoint()
    later = arena.alloc()
    slots = first._b_base_  # (ctypes' internals: the array the values are made from)
    offset = linalloc.address(later) - linalloc.address(slots)
    whole = memoryview(slots).cast("B")
    view = Node.from_buffer(whole[offset : offset + ctypes.sizeof(Node)])  # past the checkpoint
    outside = ctypes.c_int64(7)
    weak = weakref.ref(outside)
    node = target.trio.node
    first.trio = Trio(ctypes.pointer(outside), view, ctypes.pointer(node))  # one entry
    del whole, slots, view, outside, node, target, later
    gc.collect()
    try:
        arena.rewind(cp)  # (its count meets the entry first; see the README on _b_base_)
    except BufferError:
        pass
    assert weak() is not None
    assert first.trio.other.contents.value == 7
    assert arena.live_views() == 1
    assert weak() is not None


# -- an entry holding a memoryview of a value made over the arena -----------------------


def test_a_copied_view_over_a_chain_of_views_keeps_what_they_keep() -> None:
    """Rule 1: a count walks what each view on the way keeps, and loses none of it."""
    arena = TypedArena(Holder, 8)
    first, second = arena.alloc(), arena.alloc()
    outside = Node(7)
    weak = weakref.ref(outside)
    over = Node.from_buffer(second)  # a view made over a value
    on_top = Node.from_buffer(over)  # and one made over that view
    on_top.next = ctypes.pointer(outside)  # what the top view keeps
    first.node = Node.from_buffer(on_top)  # by value: the entry holds a memoryview of on_top
    del over, on_top, outside, second
    gc.collect()
    for _ in range(2):
        assert arena.live_views() == 1  # the first value: the rest is the arena's own
        assert weak() is not None
        assert first.node.next.contents.value == 7
    del first
    arena.reset()


def test_a_copied_view_over_a_view_with_attributes_is_counted() -> None:
    """Rule 2: an entry holding a view that could run code as it dies is never taken out."""
    arena = TypedArena(Holder, 8)
    first, second = arena.alloc(), arena.alloc()
    view = Node.from_buffer(second)
    view.tag = "kept"  # (an instance dict: what it holds could run code as it dies)
    probe = weakref.ref(view)
    first.node = Node.from_buffer(view)  # by value: the entry holds a memoryview of the view
    del view, second
    gc.collect()
    assert arena.live_views() == 2  # the first value, and the view the entry holds
    gc.collect()
    assert probe() is not None and probe().tag == "kept"  # type: ignore[union-attr]
    with pytest.raises(BufferError, match="^cannot reset: " + _views(2)):
        arena.reset()


# -- a watched array's keep-alive dict shared with a by-value copy ----------------------


def test_a_link_through_a_live_array_of_many_counts_once_a_copy_shares_it() -> None:
    """Rule 2: a link kept by an alloc_many array's dict, which a by-value copy shares, counts."""
    arena = TypedArena(Node, 8)
    many = arena.alloc_many(2)
    many[0].next = ctypes.pointer(many[1])  # ctypes keeps the target in the array's own dict
    gc.collect()
    assert arena.live_views() == 1  # the array (its link is the arena's own)
    copy = Holder()
    copy.node = many[0]  # by value: the copy shares the array's keep-alive dict
    gc.collect()
    assert arena.live_views() == 2  # the array, and the link the copy keeps
    with pytest.raises(BufferError, match="^cannot reset: " + _views(2)):
        arena.reset()
    del many
    gc.collect()
    with pytest.raises(BufferError, match="^cannot reset: "):
        arena.reset()
    assert copy.node.next.contents.value == 0
    del copy
    gc.collect()
    arena.reset()


def test_a_copied_view_over_the_arenas_first_value_is_its_own_link() -> None:
    """Rule 2: a keep-alive holding a view of the value at the arena's first byte is left out."""
    arena = TypedArena(Holder, 8)
    first, second = arena.alloc(), arena.alloc()
    assert linalloc.address(first) == linalloc.address(first._b_base_)  # (the first byte)
    second.node = Node.from_buffer(first)  # by value: the entry holds a memoryview of first
    gc.collect()
    assert arena.live_views() == 2  # the two values; the memoryview is the arena's own
    del first
    gc.collect()
    assert arena.live_views() == 1
    del second
    arena.reset()


def test_an_entry_holding_a_view_with_attributes_beside_an_own_link_is_counted() -> None:
    """Rule 2: an own link met first does not let a view that could run code be taken out."""
    arena = TypedArena(Box, 8)
    first, second, third = arena.alloc(), arena.alloc(), arena.alloc()
    view = Node.from_buffer(second)
    view.tag = "kept"  # (an instance dict: what it holds could run code as it dies)
    probe = weakref.ref(view)
    node = third.pair.node
    first.pair = Pair(Node.from_buffer(view), ctypes.pointer(node))  # one entry, link met first
    del view, node, second, third
    gc.collect()
    assert arena.live_views() == 3  # the first value, and the entry's hold on two more
    gc.collect()
    assert probe() is not None and probe().tag == "kept"  # type: ignore[union-attr]


def test_an_entry_holding_a_python_buffer_beside_an_own_link_keeps_it() -> None:
    """Rule 1: an own link met first does not let an entry over a Python buffer be taken out."""
    arena = TypedArena(Box, 8)
    first, target = arena.alloc(), arena.alloc()
    buffer = array.array("q", [5, 0])  # (a Python buffer: not the arena's memory)
    probe = weakref.ref(buffer)
    node = target.pair.node
    first.pair = Pair(Node.from_buffer(buffer), ctypes.pointer(node))  # one entry, link met first
    del buffer, node, target
    gc.collect()
    assert arena.live_views() == 2  # the first value, and the link the entry keeps
    gc.collect()
    assert probe() is not None and probe()[0] == 5  # type: ignore[index]


# -- where a count puts back what it took out ---------------------------------------------


def test_a_whole_array_view_beside_a_link_leaves_nothing_behind_in_held_memory() -> None:
    """Rule 2: once the last view is gone, reset() is accepted: a put-back link holds no other
    region."""
    kept: list[Any] = []
    arena = TypedArena(Box, 8, drop=kept.append)
    zero = arena.alloc()
    cp = arena.checkpoint()
    a, b, c = arena.alloc(), arena.alloc(), arena.alloc()
    view = Node.from_buffer(a._b_base_)  # over the whole slot array (ctypes' internals)
    node = c.pair.node
    a.pair = Pair(view, ctypes.pointer(node))  # one entry: a whole-array view and a link
    del view, node
    assert arena.live_views() == 4  # (the count takes the entry out and puts it back)
    del a, b, c
    gc.collect()
    assert arena.live_views() == 1
    arena.rewind(cp)  # the drops keep the three values: their memory is held
    del zero
    gc.collect()
    with pytest.raises(BufferError, match="^cannot reset: " + _views(3)):
        arena.reset()
    assert arena.live_views() == 3
    kept.clear()
    gc.collect()
    assert arena.live_views() == 0
    arena.reset()
    assert len(arena) == 0


def test_a_link_from_the_arena_into_held_memory_is_counted_again_and_again() -> None:
    """Rule 2: a link into held memory is put back over the held memory, and counts work after
    it."""
    kept: list[Any] = []
    arena = TypedArena(Node, 8, drop=kept.append)
    first = arena.alloc(1)
    cp = arena.checkpoint()
    arena.alloc(2)
    arena.rewind(cp)  # the drop keeps the value: its memory is held
    first.next = ctypes.pointer(kept[0])  # from the arena's memory into held memory
    gc.collect()
    for _ in range(2):
        assert arena.live_views() == 2  # the first value and the kept one
        with pytest.raises(BufferError, match="^cannot allocate: 2 views of memory freed"):
            arena.alloc(3)  # (the kept value, and the link: a value kept may follow it)
    assert first.next.contents.value == 2
    kept.clear()
    del first
    gc.collect()
    assert arena.live_views() == 0
    arena.reset()
    assert [value.value for value in kept] == [1]  # (the reset's drop kept the first value)
    kept.clear()
    gc.collect()
    assert arena.alloc(4).value == 4


def test_a_copied_view_over_the_whole_slot_array_is_the_arenas_own() -> None:
    """Rule 2: a keep-alive holding only a view of a whole array of the arena is left out,
    count after count."""
    arena = TypedArena(Holder, 8)
    first = arena.alloc()
    first.node = Node.from_buffer(first._b_base_)  # by value: the entry holds the whole array
    gc.collect()
    for _ in range(3):
        assert arena.live_views() == 1  # the first value
    del first
    gc.collect()
    assert arena.live_views() == 0
    arena.reset()


def test_a_copied_view_over_a_chain_of_views_keeps_what_the_middle_one_keeps() -> None:
    """Rule 1: a count walks what a view in the middle of a chain of views keeps, and loses
    none of it."""
    arena = TypedArena(Holder, 8)
    first, second = arena.alloc(), arena.alloc()
    outside = Node(9)
    weak = weakref.ref(outside)
    middle = Node.from_buffer(second)  # a view made over a value
    middle.next = ctypes.pointer(outside)  # what the middle view keeps
    on_top = Node.from_buffer(middle)  # a view made over that view
    first.node = Node.from_buffer(on_top)  # by value: the entry holds a memoryview of on_top
    del middle, on_top, outside, second
    gc.collect()
    for _ in range(2):
        assert arena.live_views() == 1  # the first value: the rest is the arena's own
        assert weak() is not None
    assert first.node.next.contents.value == 9
    del first
    arena.reset()


class Finalizing(ctypes.Structure):
    """A view type whose instances run code as they die."""

    _fields_ = [("value", ctypes.c_int64)]
    died: list[int] = []

    def __del__(self) -> None:
        Finalizing.died.append(1)


class FinBox(ctypes.Structure):
    _fields_ = [("value", ctypes.c_int64), ("p", ctypes.POINTER(Finalizing))]


def test_a_link_to_a_view_with_a_finalizer_is_counted_and_not_run() -> None:
    """Rule 2: a count never takes out a link whose view would run a __del__ as it dies."""
    Finalizing.died.clear()
    arena = TypedArena(FinBox, 8)
    first, second = arena.alloc(), arena.alloc()
    view = Finalizing.from_buffer(second)
    first.p = ctypes.pointer(view)
    del view, second
    gc.collect()
    assert arena.live_views() == 2  # the first value, and the view its link keeps
    assert Finalizing.died == []
    with pytest.raises(BufferError, match="^cannot reset: " + _views(2)):
        arena.reset()
    assert Finalizing.died == []
