"""Pointers stored through an array over many slots, once the array is gone.

``alloc_many()``, ``alloc_extend()`` and ``as_array()`` return arrays over a
typed arena's slots. ctypes keeps the target of a pointer stored through such
an array in the array's own keep-alives; when the array dies, the arena keeps
them with its values (``linalloc._watch``): the value still points at the
target, so the target's arena refuses ``reset()``, until the value's field is
cleared, which lets the target go.
"""

from __future__ import annotations

import ctypes
import gc
from typing import Any

import pytest

import linalloc
from linalloc._watch import registries


class Node(ctypes.Structure):
    pass


Node._fields_ = [("v", ctypes.c_int64), ("next", ctypes.POINTER(Node))]


def _slot_array(arena: Any) -> Any:
    """The array the arena's values come from (one region, no growth since)."""
    return arena._part.arrays["slots"]


def test_links_stored_through_two_arrays_made_in_turn_stay_kept_once_both_are_gone(
    typed_cls: type,
) -> None:
    arena: Any = typed_cls(Node, 8)
    others = [linalloc.BumpArena(256), linalloc.BumpArena(256)]
    targets = [other.alloc(Node) for other in others]
    targets[0].v, targets[1].v = 7, 8
    first = arena.alloc_many(2)
    first[1].next = ctypes.pointer(targets[0])
    del first
    second = arena.alloc_many(2)  # (no count in between: the first is not settled yet)
    second[0].next = ctypes.pointer(targets[1])
    del second, targets
    arena.live_views()
    for other in others:
        with pytest.raises(BufferError):
            other.reset()  # a value of the arena points into it
    values = list(arena)
    assert values[1].next.contents.v == 7
    assert values[2].next.contents.v == 8


@pytest.mark.parametrize("index", [1, 11, 17], ids=lambda i: f"element {i}")
def test_clearing_a_field_set_through_a_gone_array_lets_the_target_go(
    typed_cls: type, index: int
) -> None:
    """The value's keep-alive is the one ctypes names for its slot: storing into the
    field through the value (a null pointer) replaces it."""
    arena: Any = typed_cls(Node, 32)
    arena.alloc()
    arena.alloc()  # (the array starts at slot 2)
    other = linalloc.BumpArena(256)
    target = other.alloc(Node)
    target.v = 9
    array = arena.alloc_many(18)
    array[index].next = ctypes.pointer(target)
    del array, target
    arena.live_views()  # (the array's keep-alives go to the arena)
    value = list(arena)[index + 2]
    assert value.next.contents.v == 9
    with pytest.raises(BufferError):
        other.reset()
    value.next = ctypes.POINTER(Node)()
    del value
    other.reset()


def test_a_link_set_through_as_array_is_kept_by_the_value_at_that_slot(typed_cls: type) -> None:
    arena: Any = typed_cls(Node, 32)
    for _ in range(20):
        arena.alloc()
    other = linalloc.BumpArena(256)
    target = other.alloc(Node)
    target.v = 4
    array = arena.as_array()
    array[16].next = ctypes.pointer(target)
    del array, target
    arena.live_views()
    neighbours = list(arena)
    for k in (10, 15, 17):  # (clearing other slots' fields lets nothing go)
        neighbours[k].next = ctypes.POINTER(Node)()
    del neighbours
    with pytest.raises(BufferError):
        other.reset()
    value = list(arena)[16]
    assert value.next.contents.v == 4
    value.next = ctypes.POINTER(Node)()
    del value
    other.reset()


def test_what_the_arena_keeps_for_arrays_does_not_grow_with_arrays_made_and_gone(
    typed_cls: type,
) -> None:
    arena: Any = typed_cls(Node, 8)
    arena.alloc()
    for _ in range(5):
        array = arena.as_array()
        del array
        arena.live_views()
    assert [len(registry) for registry in registries(_slot_array(arena))] == [0]


def test_storing_the_same_pointer_again_through_new_arrays_keeps_the_same_entry(
    typed_cls: type,
) -> None:
    """Keeping what the slot already keeps changes nothing (no growth in a loop)."""
    arena: Any = typed_cls(Node, 8)
    arena.alloc()
    other = linalloc.BumpArena(256)
    pointer = ctypes.pointer(other.alloc(Node))
    kept = []
    for _ in range(3):
        array = arena.as_array()
        array[0].next = pointer
        del array
        arena.live_views()
        kept.append(dict(_slot_array(arena)._objects))
    assert kept[1] == kept[0] and kept[2] == kept[0]
    assert all(kept[2][key] is entry for key, entry in kept[0].items())


def test_what_a_caller_kept_in_an_arrays_keep_alives_stays_kept_once_it_is_gone(
    typed_cls: type,
) -> None:
    """Entries under names ctypes does not make are kept as they are, and what
    follows them is still kept for the values."""
    arena: Any = typed_cls(Node, 8)
    others = [linalloc.BumpArena(256) for _ in range(3)]
    mine, yours, target = (other.alloc(Node) for other in others)
    target.v = 5
    array = arena.alloc_many(2)
    array._objects["mine"] = mine
    array._objects["yours"] = yours
    array[1].next = ctypes.pointer(target)
    del array, mine, yours, target
    arena.live_views()
    for other in others:
        with pytest.raises(BufferError):
            other.reset()
    assert list(arena)[1].next.contents.v == 5


def test_what_a_lazy_arena_keeps_for_arrays_does_not_grow_after_growth_carried_it() -> None:
    """Growth carries the registries of two parts into one: the next array joins them."""
    arena: Any = linalloc.TypedArenaLazy(Node, 1 << 22)
    step = arena.commit_step // ctypes.sizeof(Node)
    early = arena.alloc_many(4)
    big = arena.alloc_many(step)
    del big
    arena.live_views()
    big = arena.alloc_many(step)
    del big, early
    arena.live_views()
    assert arena.alloc_many(step) is not None  # (the growth that carries the registries)
    for _ in range(50):
        array = arena.as_array()
        del array
    arena.live_views()
    assert [len(registry) for registry in registries(_slot_array(arena))] == [0]


@pytest.mark.parametrize(
    "cast",
    [
        lambda array: linalloc.cast(array, ctypes.POINTER(Node)),
        lambda array: ctypes.cast(array, ctypes.c_void_p),
    ],
    ids=["linalloc.cast", "ctypes.cast"],
)
def test_an_array_cast_to_a_pointer_leaves_the_counts_working_once_it_is_gone(
    typed_cls: type, cast: Any
) -> None:
    """``ctypes.cast`` keeps the array in its own keep-alives under an int key."""
    arena: Any = typed_cls(Node, 4)
    arena.alloc(v=1)
    pointer = cast(arena.as_array())
    assert arena.live_views() > 0
    del pointer
    gc.collect()  # (linalloc.cast's pointer is in a cycle of ctypes' making)
    assert arena.live_views() == 0  # (the array died in the count, held by itself alone)
    arena.reset()
    assert arena.alloc(v=2).v == 2 and arena.live_views() == 1


def test_a_link_to_an_array_whose_elements_point_outside_lets_the_arena_reset(
    typed_cls: type,
) -> None:
    """The array's own keep-alives (the link out) are judged on their own: they count nothing."""
    arena: Any = typed_cls(Node, 8)
    first, second = arena.alloc(1), arena.alloc(2)
    nodes = arena.as_array()
    outside = Node(9)
    nodes[1].next = ctypes.pointer(outside)  # (kept: a link out of the arena)
    first.next = nodes  # (a link within the arena, through the array)
    assert second.next.contents.v == 9
    del nodes, first, second
    gc.collect()
    assert arena.live_views() == 0
    arena.reset()
    assert arena.alloc(3).v == 3


def test_a_copy_out_of_a_live_array_keeps_what_its_links_point_at_counted(
    typed_cls: type,
) -> None:
    """A struct copied by value out of a watched array shares the array's keep-alives.

    Taken out for a count, an entry of them would let the copy's target go
    uncounted: the array's dict is judged shared, as the arena's own are.
    """
    arena: Any = typed_cls(Node, 8)
    target = arena.alloc(1)
    array = arena.alloc_many(2)
    array[0].next = ctypes.pointer(target)
    holder = (Node * 1)()  # outside the arena
    holder[0] = array[0]  # by value: ctypes keeps the array's whole _objects with it
    del target
    gc.collect()
    assert arena.live_views() == 2  # the array, and the target `holder` points at
    assert holder[0].next.contents.v == 1
    del array
    gc.collect()
    assert arena.live_views() == 2  # the array's source memoryview, and the target
    with pytest.raises(BufferError):
        arena.reset()
    assert holder[0].next.contents.v == 1
    del holder
    gc.collect()
    arena.reset()


def test_a_link_stored_through_an_array_gone_before_growths_stays_kept() -> None:
    """An array over slots gone with no count since, then growths that carry its
    part's registry into the newest part's: what was stored through it stays kept
    with the value. (An array not settled yet keeps its part counted: the part is
    carried only once the array is settled.)"""
    arena: Any = linalloc.TypedArenaLazy(Node, 1 << 22)
    step = arena.commit_step // ctypes.sizeof(Node)
    other = linalloc.BumpArena(256)
    target = other.alloc(Node)
    target.v = 42
    early = arena.alloc_many(4)  # keeps its part listed (not carried at the next growth)
    early[2].next = ctypes.pointer(target)
    big = arena.alloc_many(step)  # a growth: a new part, with a registry of its own
    del big
    arena.live_views()
    big = arena.alloc_many(step)  # a growth: the last part's registry is carried
    del big, early, target  # (no count since: early is not settled)
    assert arena.alloc_many(step) is not None  # a growth
    array = arena.as_array()
    del array
    gc.collect()
    arena.live_views()
    with pytest.raises(BufferError):
        other.reset()  # a value of the arena points into it
    assert list(arena)[2].next.contents.v == 42
