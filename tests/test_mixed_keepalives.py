"""Keep-alive entries that hold both the arena's own memory and something else.

A struct copied by value into a value (``box.named = Named(b"name",
pointer(target))``) leaves ctypes one entry holding the bytes of the
``c_char_p`` *and* the link to ``target``. The link is within the arena
and must not count once the values are gone; the bytes must stay alive
as long as the arena's memory points at them. The same for a ctypes object
outside the arena in such an entry, and for held memory whose entries also
hold a memoryview of one of the arena's current roots.
"""

from __future__ import annotations

import ctypes
import gc
import weakref
from typing import Any

import pytest

from linalloc import BumpArena, TypedArena


class Node(ctypes.Structure):
    pass


Node._fields_ = [("value", ctypes.c_int64), ("next", ctypes.POINTER(Node))]


class Named(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("next", ctypes.POINTER(Node))]


class Outside(ctypes.Structure):
    _fields_ = [("value", ctypes.c_int64)]


class Linked(ctypes.Structure):
    _fields_ = [("out", ctypes.POINTER(Outside)), ("next", ctypes.POINTER(Node))]


class Box(ctypes.Structure):
    _fields_ = [("named", Named), ("linked", Linked), ("value", ctypes.c_int64)]


def _alloc(arena: Any, kind: type) -> Any:
    if isinstance(arena, TypedArena):
        return arena.alloc()
    return arena.alloc(kind)


def _arenas(bump_cls: type, typed_cls: type) -> list[tuple[Any, Any]]:
    """(arena of Box values, arena of Node targets): one arena or two."""
    bump = bump_cls(4096)
    return [(bump, bump), (typed_cls(Box, 8), typed_cls(Node, 8))]


def test_a_copied_name_and_link_do_not_keep_the_arena_viewed(
    bump_cls: type, typed_cls: type
) -> None:
    for boxes, nodes in _arenas(bump_cls, typed_cls):
        target = _alloc(nodes, Node)
        target.value = 7
        box = _alloc(boxes, Box)
        box.named = Named(b"name", ctypes.pointer(target))  # by value
        del target
        gc.collect()
        # `box`; in two arenas, the other counts the link (in one, the link is its own)
        one = boxes is nodes
        assert boxes.live_views() == 1
        assert nodes.live_views() == 1
        for _ in range(3):  # counts take the entry out and put it back
            boxes.live_views()
            nodes.live_views()
            gc.collect()
            assert box.named.name == b"name"  # the bytes the arena's memory points at live
            assert box.named.next.contents.value == 7
        del box
        gc.collect()
        boxes.reset()
        if not one:
            nodes.reset()
        boxes.close()
        nodes.close()


def test_the_bytes_of_a_copied_name_outlive_every_count(bump_cls: type) -> None:
    arena = bump_cls(4096)
    target = arena.alloc(Node)
    box = arena.alloc(Box)
    box.named = Named(b"x" * 64, ctypes.pointer(target))
    # (the pointer in the arena's memory: reading box.named.name makes new bytes)
    address = ctypes.c_void_p.from_buffer(box, Box.named.offset + Named.name.offset).value
    del target
    for _ in range(5):
        assert arena.live_views() == 1
        with pytest.raises(BufferError):
            arena.reset()
        # fill the heap with other bytes: freed memory would be reused
        junk = [bytes([n % 251 + 1]) * 64 for n in range(2000)]
        del junk
        assert ctypes.string_at(address) == b"x" * 64
    del box
    gc.collect()
    arena.reset()


def test_an_object_outside_the_arena_in_the_entry_is_kept_and_counted(
    bump_cls: type, typed_cls: type
) -> None:
    for boxes, nodes in _arenas(bump_cls, typed_cls):
        outside = Outside(41)
        gone = weakref.ref(outside)
        target = _alloc(nodes, Node)
        box = _alloc(boxes, Box)
        box.linked = Linked(ctypes.pointer(outside), ctypes.pointer(target))
        del outside, target
        gc.collect()
        for _ in range(3):
            boxes.live_views()
            nodes.live_views()
            gc.collect()
            assert gone() is not None  # kept while the arena's memory points at it
            assert box.linked.out.contents.value == 41
        del box
        gc.collect()
        boxes.reset()
        nodes.reset()
        gc.collect()
        assert gone() is None  # freed with the arena's keep-alives
        boxes.close()
        nodes.close()


def test_an_outside_object_that_links_back_into_the_arena_still_counts(bump_cls: type) -> None:
    """Kept as it is, an object outside the arena keeps what it points to counted."""

    class Back(ctypes.Structure):
        _fields_ = [("node", ctypes.POINTER(Node))]

    class Holder(ctypes.Structure):
        _fields_ = [("back", ctypes.POINTER(Back)), ("next", ctypes.POINTER(Node))]

    arena = bump_cls(4096)
    target, other = arena.alloc(Node), arena.alloc(Node)
    other.value = 5
    back = Back(ctypes.pointer(other))  # outside the arena, pointing into it
    holder = arena.alloc(Holder)
    holder.back = ctypes.pointer(back)
    holder.next = ctypes.pointer(target)
    assert arena.live_views() == 3
    del back, target, other
    gc.collect()
    # `back` lives on in holder's keep-alives and points at `other`: a view from outside
    assert arena.live_views() == 2
    del holder
    gc.collect()
    with pytest.raises(BufferError):
        arena.reset()  # nothing clears `back`'s field: `other` stays viewed
    assert arena.live_views() == 1


class Cell(ctypes.Structure):
    pass


class Tag(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("next", ctypes.POINTER(Cell))]


Cell._fields_ = [("tag", Tag), ("value", ctypes.c_int64)]


def _cell(arena: Any, value: int = 0) -> Any:
    cell = arena.alloc() if isinstance(arena, TypedArena) else arena.alloc(Cell)
    cell.value = value
    return cell


def test_a_copied_name_linking_past_a_checkpoint_still_stops_the_rewind(
    bump_cls: type, typed_cls: type
) -> None:
    for arena in (bump_cls(4096), typed_cls(Cell, 8)):
        cell = _cell(arena, 1)
        cp = arena.checkpoint()
        later = _cell(arena, 2)
        cell.tag = Tag(b"name", ctypes.pointer(later))  # by value: bytes and a link
        del later
        gc.collect()
        with pytest.raises(BufferError):
            arena.rewind(cp)  # the pointer would dangle into what comes next
        assert cell.tag.name == b"name"
        assert cell.tag.next.contents.value == 2
        # (clearing cell.tag.next alone leaves ctypes' entry for the copied Tag in place,
        # under another key: the whole field is assigned again)
        cell.tag = Tag(b"name")
        gc.collect()
        arena.rewind(cp)
        assert cell.tag.name == b"name"
        del cell
        gc.collect()
        arena.reset()


def test_a_copied_name_linking_before_a_checkpoint_lets_the_rewind_go(
    bump_cls: type, typed_cls: type
) -> None:
    for arena in (bump_cls(4096), typed_cls(Cell, 8)):
        target = _cell(arena, 1)
        cp = arena.checkpoint()
        cell = _cell(arena, 2)
        cell.tag = Tag(b"name", ctypes.pointer(target))
        del cell
        gc.collect()
        arena.rewind(cp)  # the link goes with the memory it lives in
        assert target.value == 1
        del target
        arena.reset()


def test_held_memory_linked_through_a_view_of_the_slots_is_freed_once_unviewed(
    typed_cls: type,
) -> None:
    """A link from held memory, put back by a count over a current root, holds nothing for ever."""
    kept: list[Any] = []
    arena = typed_cls(Node, 8, drop=kept.append)
    a = arena.alloc(1)
    cp = arena.checkpoint()
    b, c = arena.alloc(2), arena.alloc(3)
    slots = b._b_base_
    x = Node.from_buffer(slots, ctypes.addressof(c) - ctypes.addressof(slots))  # a view of c
    b.next = ctypes.pointer(x)  # a link from b to c, both after cp
    del x, slots, c
    assert arena.live_views() == 2  # a, b
    del a, b
    arena.rewind(cp)  # the drops keep both values: their memory is held
    assert [v.value for v in kept] == [3, 2]
    assert kept[1].next.contents.value == 3
    with pytest.raises(BufferError):
        arena.reset()
    kept.clear()
    gc.collect()
    assert arena.alloc(5).value == 5  # held memory is let go
    arena.reset()
    assert sorted(v.value for v in kept) == [1, 5]
    kept.clear()
    arena.close()


# -- what another arena counts stays kept --------------------------------------------


class Cross(ctypes.Structure):
    pass


class Pair(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("there", ctypes.POINTER(ctypes.c_int64)),
        ("here", ctypes.POINTER(Cross)),
    ]


Cross._fields_ = [("pair", Pair), ("value", ctypes.c_int64)]


def _pointer_into(other: Any) -> tuple[Any, int]:
    """A pointer to a value of ``other`` that keeps only a memoryview of its root."""
    slot = other.alloc(ctypes.c_void_p)  # (made with from_buffer: _objects is that memoryview)
    cell = other.alloc(ctypes.c_int64)
    cell.value = 1111
    slot.value = ctypes.addressof(cell)
    return ctypes.cast(slot, ctypes.POINTER(ctypes.c_int64)), ctypes.addressof(cell)


@pytest.mark.parametrize("name", [b"name", None])
def test_a_count_keeps_a_memoryview_of_another_arenas_root(bump_cls: type, name: Any) -> None:
    """The entry is put back with it: the other arena goes on counting the pointer."""
    here, there = bump_cls(4096), bump_cls(4096)
    pointer, target = _pointer_into(there)
    near = here.alloc(Cross)
    cross = here.alloc(Cross)
    cross.pair = Pair(name, pointer, ctypes.pointer(near))  # by value: one entry
    del pointer, near
    gc.collect()
    for _ in range(2):
        assert here.live_views() == 1  # `cross` (its links are its own, or there's)
        gc.collect()
        with pytest.raises(BufferError):
            there.reset()  # `cross.pair.there` points into it
        assert cross.pair.there[0] == 1111
    assert ctypes.addressof(cross.pair.there.contents) == target
    del cross
    gc.collect()
    here.reset()
    there.reset()


def test_a_rewind_holding_values_keeps_what_they_point_to_in_another_arena(
    typed_cls: type,
) -> None:
    kept: list[Any] = []
    here = typed_cls(Cross, 8, drop=kept.append)
    there = BumpArena(4096)
    pointer, target = _pointer_into(there)
    cp = here.checkpoint()
    first, second = here.alloc(), here.alloc()
    first.pair = Pair(b"name", pointer, ctypes.pointer(second))
    del pointer, first, second
    gc.collect()
    here.rewind(cp)  # the drops keep both values: their memory is held
    gc.collect()
    with pytest.raises(BufferError):
        there.reset()  # a kept value points into it
    (first,) = [value for value in kept if value.pair.there]
    assert first.pair.there[0] == 1111
    assert ctypes.addressof(first.pair.there.contents) == target
    del first
    kept.clear()
    gc.collect()
    here.reset()
    there.reset()
