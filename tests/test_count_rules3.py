"""Counting rules that mutation testing of ``_views`` found unchecked.

A count restores the collector as it found it; a piece of memory that ends
one byte past a checkpoint counts after it; an entry of the current memory
that reaches held memory comes back; an arena of capacity 0 counts nothing.
"""

from __future__ import annotations

import ctypes
import gc
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import linalloc


class Node(ctypes.Structure):
    pass


Node._fields_ = [("v", ctypes.c_int64), ("next", ctypes.POINTER(Node))]


class CharLink(ctypes.Structure):
    _fields_ = [("p", ctypes.POINTER(ctypes.c_char)), ("pad", ctypes.c_int64)]


@pytest.fixture
def collector_state() -> Iterator[None]:
    was = gc.isenabled()
    yield
    if was:
        gc.enable()
    else:  # pragma: no cover - the suite runs with the collector on
        gc.disable()


def _counts(arena: Any) -> list[Callable[[], object]]:
    """Calls that count views: accepted, refused, and one that frees held memory."""
    return [arena.live_views, arena.checkpoint]


@pytest.mark.usefixtures("collector_state")
@pytest.mark.parametrize("enabled", [True, False], ids=["collector on", "collector off"])
def test_every_count_leaves_the_collector_as_it_found_it(enabled: bool) -> None:
    kept: list[Any] = []
    typed = linalloc.TypedArena(Node, 16, drop=kept.append)
    bump = linalloc.BumpArena(1024)
    first, second = typed.alloc(1), typed.alloc(2)
    first.next = ctypes.pointer(second)
    del second
    value = bump.alloc(Node)
    nodes = bump.alloc(Node), bump.alloc(Node)  # (a window: values made ahead)
    if enabled:
        gc.enable()
    else:
        gc.disable()
    steps: list[Callable[[], object]] = [
        typed.live_views,
        bump.live_views,
        bump.checkpoint,  # (closes the window: its values are judged and let go)
    ]
    for step in steps:
        step()
        assert gc.isenabled() is enabled, step
    for arena in (typed, bump):
        with pytest.raises(BufferError):
            arena.reset()
        assert gc.isenabled() is enabled
    del first, value, nodes
    typed.reset()  # the drop keeps both values: their memory is held
    assert gc.isenabled() is enabled
    with pytest.raises(BufferError, match="^cannot allocate: "):
        typed.alloc(3)
    assert gc.isenabled() is enabled
    kept.clear()
    assert typed.alloc(3) is not None  # (the held memory is let go)
    assert gc.isenabled() is enabled
    with pytest.raises(TypeError):
        typed.alloc("not a number")  # (a failed value: judged and let go)
    assert gc.isenabled() is enabled


def test_a_link_to_memory_ending_one_byte_past_a_checkpoint_counts_after_it() -> None:
    """Its last byte is the first byte after the checkpoint: a rewind would free it."""
    arena = linalloc.BumpArena(4096)
    holder = arena.alloc(CharLink)
    view = arena.alloc_uninit_slice(linalloc.Layout(7))
    cp = arena.checkpoint()
    grown = arena.grow(view, len(view) + 1)  # (one byte into the memory after cp)
    assert grown is not None
    array = (ctypes.c_char * len(grown)).from_buffer(grown)
    holder.p = array
    del view, grown, array
    assert arena.live_views() == 1  # (the holder; the entry is taken out and put back)
    with pytest.raises(BufferError, match="after the checkpoint"):
        arena.rewind(cp)
    holder.p = ctypes.POINTER(ctypes.c_char)()
    arena.rewind(cp)


class Holder(ctypes.Structure):
    _fields_ = [("node", Node)]


def test_a_link_from_the_current_memory_into_held_memory_comes_back_from_a_count() -> None:
    kept: list[Any] = []
    arena = linalloc.TypedArena(Holder, 8, drop=kept.append)
    current = arena.alloc()
    cp = arena.checkpoint()
    first, second = arena.alloc(), arena.alloc()
    first.node.next = ctypes.pointer(second.node)
    del first, second
    arena.rewind(cp)  # the drops keep both values: their memory is held
    current.node.next = ctypes.pointer(kept[1].node)  # (a link into the held memory)
    kept.clear()
    assert arena.live_views() == 1  # (``current``; its link is taken out and put back)
    assert arena.live_views() == 1
    assert current.node.next.contents.next.contents.v == 0
    with pytest.raises(BufferError, match="^cannot allocate: "):
        arena.alloc()  # the link still reaches the held memory
    current.node.next = ctypes.POINTER(Node)()
    gc.collect()
    assert arena.alloc() is not None


@pytest.mark.parametrize("kind", ["TypedArena", "TypedArenaLazy"])
def test_a_typed_arena_of_capacity_zero_counts_nothing(kind: str) -> None:
    arena = getattr(linalloc, kind)(Node, 0)
    assert arena.live_views() == 0
    cp = arena.checkpoint()
    assert arena.alloc(1) is None and arena.alloc_many(1) is None
    arena.rewind(cp)
    arena.reset()
    assert arena.live_views() == 0 and len(arena) == 0
    arena.close()


class Val(ctypes.Structure):
    _fields_ = [("v", ctypes.c_int64)]


class ValLink(ctypes.Structure):
    _fields_ = [("p", ctypes.POINTER(Val))]


@pytest.mark.parametrize("target", ["another arena", "the memory held"])
def test_a_link_stored_by_a_drop_callback_through_an_array_stays_with_the_memory_that_stays(
    target: str,
) -> None:
    """During a rewind, a drop callback makes ``as_array()`` (over the memory being freed,
    and slot 0, which stays), stores a link in slot 0 through it and keeps it: once the
    array is gone, the link must stay kept by the memory that stays."""
    other = linalloc.TypedArena(Val, 8)
    kept: list[Any] = []
    calls: list[bool] = []
    arena: Any = None

    def drop(value: Any) -> None:
        if calls:
            return
        calls.append(True)
        array = arena.as_array()
        if target == "another arena":
            array[0].p = ctypes.pointer(other.alloc(42))
        else:
            array[0].p = ctypes.pointer(Val.from_buffer(array[2]))
            array[2].p = ctypes.cast(ctypes.c_void_p(99), ctypes.POINTER(Val))
        kept.append(array)

    arena = linalloc.TypedArena(ValLink, 16, drop=drop)
    first = arena.alloc()
    cp = arena.checkpoint()
    for _ in range(3):
        arena.alloc()
    arena.rewind(cp)  # the callback keeps the array: the freed memory is held
    kept.clear()
    gc.collect()
    arena.live_views()
    if target == "another arena":
        assert arena.alloc() is not None  # (nothing views the held memory: let go)
        gc.collect()
        with pytest.raises(BufferError):
            other.reset()  # ``first.p`` points into it
        assert first.p.contents.v == 42
    else:
        with pytest.raises(BufferError, match="^cannot allocate: "):
            arena.alloc()  # ``first.p`` points into the held memory
        assert ctypes.addressof(first.p.contents) == ctypes.addressof(first) + 2 * 8


def test_bulk_calls_work_after_lazy_growth_carried_two_registries_into_one_part() -> None:
    arena = linalloc.TypedArenaLazy(ValLink, 1 << 22)
    per_step = arena.commit_step // ctypes.sizeof(ValLink)
    early = arena.alloc_many(4)  # keeps its part listed (not carried at the next growth)
    big = arena.alloc_many(per_step)  # a growth: a new part, with a registry of its own
    del big
    arena.live_views()
    big = arena.alloc_many(per_step)  # a growth: the last part's registry is carried
    del big, early
    arena.live_views()
    assert arena.alloc_many(per_step) is not None  # a growth: both carried into one part
    assert arena.alloc_many(1) is not None
    assert arena.alloc_extend([ValLink()]) is not None
    assert len(arena.as_array()) == len(arena)


class Cross(ctypes.Structure):
    pass


Cross._fields_ = [("p", ctypes.POINTER(Cross)), ("x", ctypes.c_int64)]


def test_watched_arrays_of_two_arenas_pointing_into_each_other_count_until_dropped() -> None:
    """A documented limit (README): no field is left to clear. Nothing dangles meanwhile."""
    first, second = linalloc.TypedArena(Cross, 8), linalloc.TypedArena(Cross, 8)
    one, two = first.alloc_many(2), second.alloc_many(2)
    one[0].p = ctypes.pointer(two[0])
    two[0].p = ctypes.pointer(one[0])
    two[0].x = 7
    del one, two
    gc.collect()
    for arena in (first, second):
        with pytest.raises(BufferError):
            arena.reset()
    assert next(iter(first)).p.contents.x == 7  # (the link still reads its target)
    gone = [weakref.ref(first), weakref.ref(second)]
    del first, second, arena
    gc.collect()
    assert all(ref() is None for ref in gone), "the arenas were not freed"


def test_a_watched_element_stored_back_by_value_counts_on_the_other_arena_until_freed() -> None:
    """The copy shares the array's whole keep-alives: a link into the other arena, as any."""
    mine, other = linalloc.TypedArena(Cross, 8), linalloc.TypedArena(Cross, 8)
    target = other.alloc(x=5)
    array = mine.alloc_many(2)
    array[0].p = ctypes.pointer(target)
    assert mine.alloc_extend([array[0]]) is not None  # (by value: ctypes keeps array's dict)
    del array, target
    gc.collect()
    assert mine.live_views() == 0  # its own memory is not viewed from outside
    with pytest.raises(BufferError):
        other.reset()  # mine's values still point at `target`
    assert list(mine)[2].p.contents.x == 5
    assert list(mine)[0].p.contents.x == 5
    mine.reset()  # frees the values that point at `target`, and their keep-alives
    other.reset()
