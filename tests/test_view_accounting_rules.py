"""View accounting rules: which keep-alive entries count as views, and when.

The arena leaves its own links (pointers from its values into its memory) out
of a count, unless the ``_objects`` dict that holds them is shared with
something outside the arena's keep-alive graph: a struct copied by value
outside the arena (into another arena's memory too), or an object outside the
arena that points into it. These
tests pin down each of these rules through what a caller sees: a ``reset()``
refused or accepted, the number of views the refusal reports, memory held
after a reset, and ``live_views()``.
"""

from __future__ import annotations

import ctypes
import gc
import sys
import weakref
from typing import Any

import pytest

from linalloc import BumpArena, TypedArena


class Node(ctypes.Structure):
    pass


Node._fields_ = [("value", ctypes.c_int64), ("next", ctypes.POINTER(Node))]


class Holder(ctypes.Structure):
    """A struct that takes a Node by value."""

    _fields_ = [("node", Node)]


def _views(count: int) -> str:
    return "1 view " if count == 1 else f"{count} views "


def _refused(arena: Any, count: int) -> None:
    """``reset()`` is refused, reporting ``count`` views."""
    with pytest.raises(BufferError, match="^cannot reset: " + _views(count)):
        arena.reset()


def _link(arena: Any) -> None:
    """Two Holders of a typed arena, the first pointing at the second (then dropped)."""
    first, second = arena.alloc(), arena.alloc()
    first.node.next = ctypes.pointer(second.node)


# -- held memory ----------------------------------------------------------------------


def test_values_made_after_a_reset_that_held_memory_are_counted() -> None:
    kept: list[Any] = []
    arena = TypedArena(ctypes.c_int64, 8, drop=kept.append)
    arena.alloc(1)
    arena.alloc(2)
    arena.reset()  # the drops keep both values: the memory is held
    kept.clear()  # (released: the next allocation forgets the held memory)
    value = arena.alloc(3)
    assert arena.live_views() == 1
    cp = arena.checkpoint()
    later = arena.alloc(4)
    assert arena.live_views() == 2
    with pytest.raises(BufferError, match="^cannot rewind to this checkpoint: 1 view "):
        arena.rewind(cp)
    del later
    arena.rewind(cp)
    assert [v.value for v in kept] == [4]  # kept by the drop: held again
    kept.clear()
    assert [v.value for v in arena] == [3]
    _refused(arena, 1)
    del value
    arena.reset()
    assert [v.value for v in kept] == [3]  # kept by the drop
    kept.clear()
    assert arena.alloc(5).value == 5
    assert arena.live_views() == 0


def _held_after_a_rewind(arena: Any, kept: list[Any]) -> Any:
    """A value before a checkpoint; after it two linked values, kept by the drops: held."""
    current = arena.alloc()
    cp = arena.checkpoint()
    _link(arena)
    arena.rewind(cp)
    assert len(kept) == 2
    return current


def test_a_copy_made_in_the_arena_from_held_memory_keeps_it_held() -> None:
    """A value of the current memory copied by value from a held one reaches held memory."""
    kept: list[Any] = []
    arena = TypedArena(Holder, 8, drop=kept.append)
    current = _held_after_a_rewind(arena, kept)
    current.node = kept[1].node  # (dropped first: the one that points at the other)
    kept.clear()
    with pytest.raises(BufferError, match="^cannot allocate: .* of memory freed by"):
        arena.alloc()  # current.node.next still points into the held memory
    assert current.node.next.contents.value == 0


def test_held_memory_copied_both_ways_with_the_current_memory_stays_held() -> None:
    kept: list[Any] = []
    arena = TypedArena(Holder, 8, drop=kept.append)
    current = _held_after_a_rewind(arena, kept)
    kept[0].node = current.node  # the held dict refers to the current one...
    current.node = kept[1].node  # ...which refers back, and reaches held memory
    kept.clear()
    with pytest.raises(BufferError, match="^cannot allocate: .* of memory freed by"):
        arena.alloc()
    assert current.node.next.contents.value == 0


# -- links left out of a count ----------------------------------------------------------


def test_a_link_to_an_array_made_from_the_root_is_left_out() -> None:
    arena = BumpArena(1024)
    node = arena.alloc(Node)
    array = arena.alloc_array(Node, 2)
    node.next = ctypes.pointer(array[1])
    array[1].value = 7
    del array
    for _ in range(2):
        _refused(arena, 1)  # the node only: the link is the arena's own
    assert node.next.contents.value == 7
    del node
    arena.reset()
    assert arena.live_views() == 0
    arena.close()


def test_an_entry_reaching_the_arrays_dict_is_judged_by_the_entries_it_holds() -> None:
    """A link's keep-alive holds the array's dict: its other entries are judged on their own."""
    arena = TypedArena(Node, 8)
    outside = Node(42)
    a, b, c = arena.alloc(1), arena.alloc(2), arena.alloc(3)
    c.next = ctypes.pointer(outside)  # kept (outside memory), holds no view
    a.next = ctypes.pointer(b)  # the arena's own link
    del a, b
    _refused(arena, 1)
    assert c.next.contents.value == 42
    del c
    arena.reset()
    arena.close()


def test_a_part_with_one_link_is_not_reused() -> None:
    arena = TypedArena(Node, 8)
    a, b = arena.alloc(1), arena.alloc(2)
    a.next = ctypes.pointer(b)
    del a, b
    arena.reset()
    assert arena.live_views() == 0  # the link went with the old part
    assert arena.alloc(3).value == 3
    arena.close()


@pytest.mark.parametrize("own_links", [False, True])
def test_a_link_to_an_object_made_by_from_address(own_links: bool) -> None:
    """An object over arena memory that the arena did not make: not the arena's own."""
    arena = TypedArena(Node, 8)
    outside = Node(42)
    probe = weakref.ref(outside)
    a, b = arena.alloc(1), arena.alloc(2)
    alias = Node.from_address(ctypes.addressof(b))
    if own_links:
        alias.next = ctypes.pointer(outside)  # the alias's own keep-alive dict
    a.next = ctypes.pointer(alias)
    del alias, b, outside
    gc.collect()
    _refused(arena, 1)
    _refused(arena, 1)
    gc.collect()
    assert a.next.contents.value == 2
    if own_links:
        assert probe() is not None, "what the alias points to was freed"
        assert a.next.contents.next.contents.value == 42
    del a
    arena.reset()
    arena.close()


def test_a_cast_of_an_arena_array_is_left_out() -> None:
    """``cast`` puts the array into its own keep-alive dict: a cycle."""
    arena = BumpArena(1024)
    node = arena.alloc(Node)
    array = arena.alloc_array(Node, 2)
    array[0].value = 5
    node.next = ctypes.cast(array, ctypes.POINTER(Node))
    del array
    gc.collect()
    _refused(arena, 1)
    assert node.next.contents.value == 5
    del node
    gc.collect()
    arena.reset()
    arena.close()


def test_a_pointer_to_an_array_whose_dict_holds_links_is_left_out() -> None:
    arena = BumpArena(1024)
    array = arena.alloc_array(Node, 2)
    array[0].next = ctypes.pointer(array[1])  # a link in the array's own dict

    class ToArray(ctypes.Structure):
        _fields_ = [("p", ctypes.POINTER(type(array)))]

    holder = arena.alloc(ToArray)
    holder.p = ctypes.pointer(array)  # (its keep-alive: the array, then its dict)
    del array
    gc.collect()
    _refused(arena, 1)
    assert holder.p.contents[0].next.contents.value == 0
    del holder
    gc.collect()
    arena.reset()
    arena.close()


# -- dicts reached from outside the arena ----------------------------------------------


def test_an_object_outside_pointing_in_makes_the_dict_shared() -> None:
    """The outside object's keep-alive leads into the array's dict: its links count."""
    arena = TypedArena(Holder, 8)
    target = arena.alloc()
    outside = Node(9)
    outside.next = ctypes.pointer(target.node)
    copy = arena.alloc()
    copy.node = outside  # the arena's dict refers to the outside object's dict
    _link(arena)
    del target, copy
    gc.collect()
    _refused(arena, 2)  # what outside points to, and the link (the dict is shared)
    assert outside.next.contents.value == 0
    del outside
    gc.collect()
    arena.reset()
    arena.close()


def test_a_dict_reached_twice_from_the_arena_only_is_not_shared() -> None:
    arena = TypedArena(Holder, 8)
    target = arena.alloc()
    outside = Node(9)
    outside.next = ctypes.pointer(target.node)
    first, second = arena.alloc(), arena.alloc()
    first.node = outside  # the outside dict, twice in the arena's dict
    second.node = outside
    _link(arena)
    del outside, target, first, second
    gc.collect()
    arena.reset()
    assert arena.live_views() == 0
    arena.close()


# -- values copied between arenas -----------------------------------------------------------


def _cleared(holder: Any) -> None:
    """Store a fresh Node in ``holder``: ctypes replaces the copy's keep-alive entry."""
    holder.node = Node()


def test_a_copy_into_another_arena_keeps_its_links_counted() -> None:
    """The copy's pointer lies in the other arena's memory: a reset would leave it dangling."""
    mine = TypedArena(Node, 8)
    other = TypedArena(Holder, 8)
    mine.alloc(0)
    mine.checkpoint()  # a second part: the copy's dict is not the first one
    a, b = mine.alloc(1), mine.alloc(2)
    a.next = ctypes.pointer(b)
    holder = other.alloc()
    holder.node = a  # by value: the other arena's dict refers to this one's
    del a, b
    gc.collect()
    _refused(mine, 1)  # the link, kept for the copy
    assert holder.node.next.contents.value == 2
    _cleared(holder)
    mine.reset()
    assert mine.alloc(7).value == 7 and holder.node.value == 0
    mine.close()


def test_a_copy_into_another_arena_lets_go_once_that_arena_resets() -> None:
    mine = TypedArena(Node, 8)
    other = TypedArena(Holder, 8)
    a, b = mine.alloc(1), mine.alloc(2)
    a.next = ctypes.pointer(b)
    other.alloc().node = a
    del a, b
    gc.collect()
    _refused(mine, 1)
    other.reset()  # (the copy's memory is freed: nothing points into mine any more)
    gc.collect()
    mine.reset()
    assert mine.live_views() == 0


def test_copies_into_two_other_arenas_keep_the_links_until_both_let_go() -> None:
    mine = TypedArena(Node, 8)
    a, b = mine.alloc(1), mine.alloc(2)
    a.next = ctypes.pointer(b)
    others = [TypedArena(Holder, 8), TypedArena(Holder, 8)]
    holders = [other.alloc() for other in others]
    for holder in holders:
        holder.node = a
    del a, b
    gc.collect()
    _refused(mine, 1)
    _cleared(holders[0])
    gc.collect()
    _refused(mine, 1)  # (the second copy still points at b)
    assert holders[1].node.next.contents.value == 2
    _cleared(holders[1])
    gc.collect()
    mine.reset()


def test_a_copy_outside_any_arena_counts_next_to_another_arenas() -> None:
    mine = TypedArena(Node, 8)
    other = TypedArena(Holder, 8)
    a, b = mine.alloc(1), mine.alloc(2)
    a.next = ctypes.pointer(b)
    held = other.alloc()
    held.node = a  # from another arena's dict
    spare = other.alloc()
    spare.node.next = ctypes.pointer(Node(5))  # (the other arena's dict has more entries)
    outside = Holder()
    outside.node = a  # and from outside any arena
    del a, b
    gc.collect()
    _refused(mine, 1)  # the link, kept for both copies
    assert outside.node.next.contents.value == 2
    del outside
    gc.collect()
    _refused(mine, 1)  # (the copy in the other arena)
    _cleared(held)
    gc.collect()
    mine.reset()
    assert spare.node.next.contents.value == 5


def _copied_both_ways() -> tuple[Any, Any, Any]:
    """Two arenas whose dicts refer to each other; the first has a link of its own."""
    mine = TypedArena(Holder, 8)
    other = TypedArena(Holder, 8)
    a = mine.alloc()
    x = other.alloc()
    a.node = x.node  # this arena's dict refers to the other's (its first entry)...
    y = other.alloc()
    y.node = a.node  # ...and the other's to this one's
    _link(mine)
    del a
    gc.collect()
    return mine, other, (x, y)


def test_arenas_copying_values_both_ways_refuse_until_a_copy_is_cleared() -> None:
    mine, other, values = _copied_both_ways()
    _refused(mine, 1)  # (the other arena's copy shares mine's whole dict, link and all)
    _cleared(values[1])
    gc.collect()
    mine.reset()
    assert values[0].node.value == 0
    del values
    other.reset()


def test_a_copy_outside_counts_when_arenas_copy_both_ways() -> None:
    mine, other, values = _copied_both_ways()
    outside = Holder()
    outside.node = values[1].node  # (shares the dict that holds mine's)
    kept = Holder()
    kept.node = mine.alloc().node  # shares mine's dict from outside any arena
    gc.collect()
    _refused(mine, 1)  # the link, kept for the copies
    del kept
    gc.collect()
    _refused(mine, 1)  # (the other arena's copy, which the outside one shares)
    _cleared(values[1])
    gc.collect()
    mine.reset()  # (the other arena's dict, shared from outside, no longer holds mine's)
    assert outside.node.value == 0


# -- entries that are not the arena's own stay as they are --------------------------------


def test_a_link_to_an_alias_made_by_from_address_keeps_the_alias() -> None:
    arena = TypedArena(Node, 8)
    a, b = arena.alloc(1), arena.alloc(2)
    alias = Node.from_address(ctypes.addressof(b))
    probe = weakref.ref(alias)
    a.next = ctypes.pointer(alias)
    del alias, b
    _refused(arena, 1)
    gc.collect()
    assert probe() is not None, "the object the pointer was set from was let go"
    assert a.next.contents.value == 2
    del a
    arena.reset()


class Named(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p)]


def test_a_string_kept_by_a_value_stays_kept() -> None:
    arena = BumpArena(1024)
    value = arena.alloc(Named)
    name = bytes(range(65, 91))  # (made here: only this test refers to it)
    value.name = name  # ctypes keeps the bytes object in the row's keep-alives
    before = sys.getrefcount(name)
    _refused(arena, 1)
    _refused(arena, 1)
    assert sys.getrefcount(name) == before
    assert value.name == name
    del value
    arena.reset()


class ToInts(ctypes.Structure):
    _fields_ = [("p", ctypes.POINTER(ctypes.c_int64))]


def test_a_link_to_an_empty_array_from_alloc_array_is_counted_safely() -> None:
    """Its keep-alive is a bare memoryview, not a dict."""
    arena = BumpArena(1024)
    holder = arena.alloc(ToInts)
    empty = arena.alloc_array(ctypes.c_int64, 0)
    assert empty is not None and ctypes.sizeof(empty) == 0
    holder.p = empty  # (a pointer field set from an array keeps the array)
    del empty
    _refused(arena, 1)  # (the holder is alive; the link is the arena's own)
    del holder
    arena.reset()


# -- counts change nothing they leave out --------------------------------------------


def test_repeated_counts_do_not_grow_what_they_put_back() -> None:
    arena = TypedArena(Node, 8)
    first, second = arena.alloc(1), arena.alloc(2)
    first.next = ctypes.pointer(second)
    del second
    before = arena.live_views()
    for _ in range(5):
        _refused(arena, 1)
    assert arena.live_views() == before
    del first
    arena.reset()


def test_reset_after_held_memory_is_released_needs_no_allocation_first() -> None:
    """Links within held memory are left out of a reset's count too."""
    kept: list[Any] = []
    arena = TypedArena(Node, 8, drop=kept.append)
    first, second = arena.alloc(1), arena.alloc(2)
    first.next = ctypes.pointer(second)
    del first, second
    arena.reset()  # (the drops keep both values: held)
    kept.clear()
    gc.collect()
    arena.reset()
    arena.close()
