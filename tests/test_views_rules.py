"""View accounting rules: what a count leaves out, what it keeps, and which parts it forgets.

A count leaves a keep-alive entry out only when all it holds is the arena's
own memory in the right range, and runs no code of a caller's while it
walks one; it never loses what an entry keeps (a string, a buffer, the
targets of a view's own pointers). Lazy growth forgets an outgrown part
that nothing needs, and keeps, or carries over, the keep-alives of its
values. These tests check each rule through what a caller sees: a refusal
and its view count, objects kept alive or let go, memory not handed out
twice.
"""

from __future__ import annotations

import ctypes
import gc
import sys
import weakref
from array import array
from collections.abc import Iterator
from typing import Any

import numpy
import pytest

from linalloc import BumpArena, BumpArenaLazy, Layout, TypedArena, TypedArenaLazy


class Node(ctypes.Structure):
    pass


Node._fields_ = [("value", ctypes.c_int64), ("next", ctypes.POINTER(Node))]


class Holder(ctypes.Structure):
    """A struct that takes a Node by value."""

    _fields_ = [("node", Node)]


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double)]


class NamedNode(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("next", ctypes.POINTER(Node))]


class NamedHolder(ctypes.Structure):
    _fields_ = [("named", NamedNode)]


class ToInts(ctypes.Structure):
    _fields_ = [("p", ctypes.POINTER(ctypes.c_int64))]


def _views(count: int) -> str:
    return "1 view " if count == 1 else f"{count} views "


def _refused(arena: Any, count: int) -> None:
    """``reset()`` is refused, reporting ``count`` views."""
    with pytest.raises(BufferError, match="^cannot reset: " + _views(count)):
        arena.reset()


def _grow(arena: Any) -> None:
    """Allocate one commit step's worth of values: a lazy typed arena makes a new part."""
    per_step = arena.commit_step // ctypes.sizeof(arena.ctype)
    start = len(arena)
    while len(arena) < start + per_step:
        arena.alloc()


def _grow_bump(arena: Any) -> None:
    """Take one commit step of a lazy bump arena: it makes a new part."""
    view = arena.alloc_uninit_slice(Layout(arena.commit_step))
    assert view is not None
    del view


# -- lazy growth: outgrown parts are forgotten, their keep-alives carried or kept ---------


def test_lazy_growth_forgets_an_outgrown_part_and_carries_its_links() -> None:
    arena = TypedArenaLazy(Node, 1 << 20)
    outside = Node(42)
    target = weakref.ref(outside)
    value = arena.alloc(1)
    value.next = ctypes.pointer(outside)  # (an entry of the first part's slot array)
    old = weakref.ref(value._b_base_)
    del value, outside
    _grow(arena)
    gc.collect()
    assert old() is None, "a part no view needs is still held after growth"
    assert target() is not None, "the link's target went with the outgrown part"
    assert next(iter(arena)).next.contents.value == 42
    arena.close()


def test_lazy_bump_growth_forgets_an_outgrown_part_without_links() -> None:
    arena = BumpArenaLazy(1 << 20)
    value = arena.alloc(Node)
    old = weakref.ref(value._b_base_)
    del value
    _grow_bump(arena)
    gc.collect()
    assert old() is None, "a part no view needs is still held after growth"
    arena.close()


def test_lazy_bump_growth_keeps_what_its_values_point_to_until_reset() -> None:
    """The new part has no row for the type yet: the old one, with its links, is kept."""
    arena = BumpArenaLazy(1 << 20)
    point = arena.alloc(Point)  # (a first row, without links)
    outside = Node(42)
    target = weakref.ref(outside)
    value = arena.alloc(Node)
    value.next = ctypes.pointer(outside)
    address = ctypes.addressof(value)
    del point, value, outside
    _grow_bump(arena)
    gc.collect()
    assert target() is not None, "memory still allocated points at a freed object"
    assert Node.from_address(address).next.contents.value == 42
    arena.reset()
    gc.collect()
    assert target() is None  # (the reset freed the memory, and the link with it)
    arena.close()


def test_lazy_growth_keeps_both_links_of_one_slot_carried_together() -> None:
    """Two outgrown parts hold a link for the same slot: the second one carried is the newer."""
    arena = TypedArenaLazy(Node, 1 << 20)
    older, newer = Node(1), Node(2)
    target = weakref.ref(newer)
    first = arena.alloc()  # part 1
    first.next = ctypes.pointer(older)
    _grow(arena)  # part 2; part 1 kept (``first`` views it)
    again = next(iter(arena))  # slot 0, through part 2
    again.next = ctypes.pointer(newer)
    del older, newer, first, again
    _grow(arena)  # part 3: parts 1 and 2 carried into it, in that order
    gc.collect()
    assert target() is not None, "the slot's current target was freed"
    assert next(iter(arena)).next.contents.value == 2
    arena.close()


# -- parts reused, regions cut ---------------------------------------------------------


def test_a_reset_with_no_links_left_reuses_the_arrays() -> None:
    typed = TypedArena(Node, 8)
    value = typed.alloc(1)
    slots = weakref.ref(value._b_base_)
    del value
    typed.reset()
    assert typed.alloc(2)._b_base_ is slots()
    bump = BumpArena(1024)
    point = bump.alloc(Point)
    row = weakref.ref(point._b_base_)
    del point
    bump.reset()
    assert bump.alloc(Point)._b_base_ is row()


def test_checkpoints_after_the_one_rewound_to_stay_invalid_when_memory_is_held() -> None:
    kept: list[Any] = []
    arena = TypedArena(ctypes.c_int64, 8, drop=kept.append)
    arena.alloc(1)
    first = arena.checkpoint()
    arena.alloc(2)
    later = arena.checkpoint()
    arena.alloc(3)
    arena.rewind(first)  # (the drops keep the values: the memory is held)
    assert len(kept) == 2
    with pytest.raises(ValueError, match="no longer valid"):
        arena.rewind(later)
    kept.clear()
    assert arena.alloc(4) is not None
    arena.rewind(first)


# -- what a count leaves out, and what it counts --------------------------------------


def test_a_link_to_a_value_with_an_emptied_instance_dict_is_the_arenas_own() -> None:
    arena = TypedArena(Node, 8)
    first, second = arena.alloc(1), arena.alloc(2)
    second.tag = "x"  # (an attribute set and removed: an empty instance dict)
    del second.tag
    first.next = ctypes.pointer(second)
    del second
    assert arena.live_views() == 1
    _refused(arena, 1)
    del first
    arena.reset()


def test_a_link_to_an_empty_array_made_over_an_empty_array_is_left_out() -> None:
    arena = BumpArena(1024)
    holder = arena.alloc(ToInts)
    empty = arena.alloc_array(ctypes.c_int64, 0)
    assert empty is not None
    holder.p = (ctypes.c_int64 * 0).from_buffer(empty)
    del empty
    gc.collect()
    _refused(arena, 1)  # (the holder only)
    del holder
    arena.reset()


def test_repeated_counts_do_not_grow_a_link_to_an_empty_array() -> None:
    arena = BumpArena(1024)
    holder = arena.alloc(ToInts)
    empty = arena.alloc_array(ctypes.c_int64, 0)
    holder.p = empty
    del empty

    sizes = []
    for _ in range(3):
        assert arena.live_views() == 1
        objects = holder._b_base_._objects
        sizes.append([len(entry) for entry in objects.values() if type(entry) is tuple])
        del objects  # (a dict held from outside counts whole)
    assert sizes[0] and sizes[1] == sizes[0] and sizes[2] == sizes[0]
    del holder
    arena.reset()


def test_a_copy_of_a_view_over_the_last_value_is_left_out() -> None:
    arena = BumpArena(64)
    holder = arena.alloc(Holder)
    pad = arena.alloc_uninit_slice(Layout(32))
    last = arena.alloc(Node)  # (ends where the arena does)
    assert arena.used == arena.capacity
    holder.node = Node.from_buffer(last)  # keeps the view's source: ``last``
    del last, pad
    assert arena.live_views() == 1  # (the holder only)
    del holder
    arena.reset()


def test_a_copy_of_a_view_over_a_value_keeps_what_the_value_points_to() -> None:
    arena = TypedArena(Holder, 8)
    source = arena.alloc()
    outside = Node(5)
    target = weakref.ref(outside)
    view = Node.from_buffer(source)
    view.next = ctypes.pointer(outside)  # (kept in the view's own keep-alives)
    holder = arena.alloc()
    holder.node = Node.from_buffer(view)  # a view of the view, copied by value
    del view, source, outside
    gc.collect()
    assert arena.live_views() == 1  # the holder: the copy's link out views none of the arena
    gc.collect()
    assert target() is not None, "a count freed what the copy's pointer points to"
    assert holder.node.next.contents.value == 5
    del holder
    arena.reset()
    gc.collect()
    assert target() is None  # let go with the memory that pointed at it


def test_a_copy_of_a_field_of_a_view_keeps_what_the_view_points_to() -> None:
    arena = TypedArena(Holder, 8)
    source = arena.alloc()
    outside = Node(7)
    target = weakref.ref(outside)
    view = Holder.from_buffer(source)
    view.node.next = ctypes.pointer(outside)  # (kept in the view's keep-alives)
    holder = arena.alloc()
    holder.node = Node.from_buffer(view.node)  # made over a field of the view
    del view, source, outside
    gc.collect()
    assert arena.live_views() == 1  # (as above)
    gc.collect()
    assert target() is not None, "a count freed what the copy's pointer points to"
    assert holder.node.next.contents.value == 7
    del holder
    arena.reset()
    gc.collect()
    assert target() is None


def test_a_copy_of_a_view_over_outside_memory_keeps_it_and_counts() -> None:
    arena = TypedArena(Holder, 8)
    value = arena.alloc()
    outside = Node(3)
    probe = weakref.ref(outside)
    view = Node.from_buffer(outside)
    view.next = ctypes.pointer(value.node)
    holder = arena.alloc()
    holder.node = view  # (the copy keeps the view's source, outside the arena)
    del view, value, outside
    gc.collect()
    assert arena.live_views() == 2  # the holder, and what the copy keeps of the arena
    gc.collect()
    assert probe() is not None, "a count let go of memory outside the arena"


def test_a_copy_of_a_view_over_a_python_buffer_keeps_it_and_counts() -> None:
    arena = TypedArena(Holder, 8)
    value = arena.alloc()
    buffer = array("b", bytes(ctypes.sizeof(Node)))
    probe = weakref.ref(buffer)
    view = Node.from_buffer(buffer)
    view.next = ctypes.pointer(value.node)
    holder = arena.alloc()
    holder.node = view
    del view, value, buffer
    gc.collect()
    assert arena.live_views() == 2
    gc.collect()
    assert probe() is not None, "a count let go of a buffer a keep-alive holds"


def test_a_copy_of_a_struct_holding_a_string_keeps_the_string() -> None:
    arena = BumpArena(1024)
    target = arena.alloc(Node)
    name = bytes(range(65, 91))  # (made here: only this test refers to it)
    named = NamedNode()
    named.name = name
    named.next = ctypes.pointer(target)
    holder = arena.alloc(NamedHolder)
    holder.named = named  # by value: the copy keeps ``named``'s keep-alives
    del named, target
    gc.collect()
    before = sys.getrefcount(name)
    assert arena.live_views() == 1  # the holder (the link is the arena's own)
    assert sys.getrefcount(name) == before  # the string is kept, not let go for the count
    assert holder.named.name == name
    del holder
    arena.reset()
    assert sys.getrefcount(name) == before - 1  # let go with the memory that pointed at it


def test_a_link_to_a_view_with_attributes_keeps_it_and_counts() -> None:
    """A view with an instance dict could run code as it dies: its link is never left out."""
    arena = TypedArena(Holder, 8)
    first, second = arena.alloc(), arena.alloc()
    view = Node.from_buffer(second)
    view.tag = "kept"
    probe = weakref.ref(view)
    first.node.next = ctypes.pointer(view)
    del view, second
    gc.collect()
    assert arena.live_views() == 2
    gc.collect()
    assert probe() is not None and probe().tag == "kept"  # type: ignore[union-attr]


def test_a_link_through_a_source_with_a_weak_reference_callback_is_counted() -> None:
    """A count takes out nothing whose death would run a callback in the middle of it."""
    arena = TypedArena(Holder, 8)
    first, second, third = arena.alloc(), arena.alloc(), arena.alloc()
    calls: list[str] = []
    view = Node.from_buffer(second)
    view.next = ctypes.pointer(third.node)
    source = view._objects["ffffffff"]  # the memoryview ``from_buffer`` keeps
    watch = weakref.ref(source, lambda _: calls.append("died"))
    first.node.next = ctypes.pointer(view)
    del view, second, third, source
    gc.collect()
    assert arena.live_views() == 3  # the first value, and what its link keeps of two more
    assert calls == [] and watch() is not None


def test_a_copy_of_a_view_over_an_alias_is_counted_without_error() -> None:
    arena = TypedArena(Holder, 8)
    value = arena.alloc()
    alias = Node.from_address(ctypes.addressof(value))  # (not a view the arena made)
    holder = arena.alloc()
    holder.node = Node.from_buffer(alias)
    del alias, value
    assert arena.live_views() == 1
    del holder
    arena.close()


def test_a_link_to_an_array_over_a_foreign_exporter_is_counted_without_error() -> None:
    """An array made over a numpy array over a value: its source is not a ctypes object."""
    arena = TypedArena(Holder, 8)
    first, second = arena.alloc(), arena.alloc()
    over = (Node * 1).from_buffer(numpy.frombuffer(second, dtype=numpy.uint8))
    first.node.next = over  # (a pointer field set from an array)
    del over, second
    gc.collect()
    assert arena.live_views() == 2


# -- counts around checkpoints ----------------------------------------------------------


def test_a_link_to_the_last_value_stops_a_rewind_after_a_count() -> None:
    """The link's target ends where the arena's memory does."""
    arena = TypedArena(Node, 4)
    first = arena.alloc(1)
    cp = arena.checkpoint()
    arena.alloc(2)
    arena.alloc(3)
    last = arena.alloc(4)
    first.next = ctypes.pointer(last)
    del last
    assert arena.live_views() == 1  # (a count: the link is taken out and put back)
    with pytest.raises(BufferError, match="^cannot rewind to this checkpoint: 1 view "):
        arena.rewind(cp)
    assert first.next.contents.value == 4
    del first
    arena.reset()


def test_a_link_to_an_array_spanning_a_checkpoint_stops_a_rewind_after_a_count() -> None:
    arena = TypedArena(Node, 4)
    first = arena.alloc(1)
    cp = arena.checkpoint()
    later = arena.alloc(2)
    first.next = arena.as_array()  # (its memory runs past the checkpoint)
    del later
    assert arena.live_views() == 1
    with pytest.raises(BufferError, match="^cannot rewind to this checkpoint: 1 view "):
        arena.rewind(cp)
    del first
    arena.reset()


def test_a_copy_of_a_view_over_later_memory_stops_a_rewind_before_any_drop() -> None:
    dropped: list[Any] = []
    arena = TypedArena(Holder, 8, drop=dropped.append)
    holder = arena.alloc()
    cp = arena.checkpoint()
    later = arena.alloc()
    holder.node = Node.from_buffer(later)  # keeps a view of the memory after cp
    del later
    gc.collect()
    with pytest.raises(BufferError, match="^cannot rewind to this checkpoint: 1 view "):
        arena.rewind(cp)
    assert dropped == []  # refused before any drop callback ran
    assert len(arena) == 2


# -- held memory ------------------------------------------------------------------------


def test_a_live_value_pointing_into_held_memory_keeps_it_held() -> None:
    """The link's keep-alive is a copy, in held memory, of an alias made over the root."""
    kept: list[Any] = []
    arena = TypedArena(Holder, 8, drop=kept.append)
    value = arena.alloc()
    cp = arena.checkpoint()
    arena.alloc().node.value = 1
    arena.alloc().node.value = 2
    arena.rewind(cp)  # the drops keep both values: held
    newest, oldest = kept
    root = value._b_base_._objects["ffffffff"].obj  # (what the slot array is made over)
    alias = Holder.from_buffer(root, ctypes.addressof(value) - ctypes.addressof(root))
    alias.node.next = ctypes.pointer(newest.node)  # value.node.next -> held memory
    oldest.node = alias.node  # (by value: held memory keeps the alias's keep-alives)
    del alias, root, newest, oldest
    kept.clear()
    gc.collect()
    target = ctypes.addressof(value.node.next.contents)
    with pytest.raises(BufferError, match="^cannot allocate: 1 view of memory freed"):
        arena.alloc()
    assert value.node.next.contents.value == 2
    assert ctypes.addressof(value.node.next.contents) == target


# -- a count runs no code of a caller's --------------------------------------------------


class _SpyDict(dict):  # type: ignore[type-arg]
    calls: list[object] = []

    def get(self, *args: Any) -> Any:
        _SpyDict.calls.append(args)
        return dict.get(self, *args)


class _SpyArray(ctypes.c_char * 16):  # type: ignore[misc]
    calls: list[object] = []

    @property  # type: ignore[misc]
    def __dict__(self) -> dict[str, Any]:  # type: ignore[override]
        _SpyArray.calls.append("__dict__")
        return {}


def _plain_array_with_a_spy_dict() -> Any:
    buffer = (ctypes.c_char * 16)()
    buffer.__dict__ = _SpyDict()
    return buffer


@pytest.fixture
def no_calls() -> Iterator[None]:
    _SpyDict.calls.clear()
    _SpyArray.calls.clear()
    yield
    _SpyDict.calls.clear()
    _SpyArray.calls.clear()


@pytest.mark.usefixtures("no_calls")
@pytest.mark.parametrize("make", [_plain_array_with_a_spy_dict, _SpyArray], ids=["dict", "class"])
def test_a_count_runs_no_code_of_a_buffer_a_link_reaches(make: Any) -> None:
    arena = TypedArena(Node, 8)
    first = arena.alloc(1)
    view = Node.from_buffer(make())
    first.next = ctypes.pointer(view)
    del view
    assert arena.live_views() == 1
    assert _SpyDict.calls == [] and _SpyArray.calls == []
    del first
    arena.close()


# -- collections ------------------------------------------------------------------------


def test_a_reset_whose_count_finds_only_own_links_collects_nothing() -> None:
    """The collector runs only when views seem alive (a refusal collects once)."""
    arena = TypedArena(Node, 8)
    first, second = arena.alloc(1), arena.alloc(2)
    first.next = ctypes.pointer(second)  # (its keep-alive refers to a view: left out)
    del first, second
    collections: list[str] = []

    def record(phase: str, info: dict[str, int]) -> None:
        collections.append(phase)

    was = gc.isenabled()
    gc.disable()  # (no automatic collection: only the ones the arena asks for)
    gc.callbacks.append(record)
    try:
        arena.reset()
    finally:
        gc.callbacks.remove(record)
        if was:
            gc.enable()
    assert collections == []
    assert arena.live_views() == 0
