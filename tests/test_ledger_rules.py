"""View accounting rules: the ledger's parts and regions, as a caller sees them.

A lazy arena adds a part each time its committed memory grows; the older parts
stay counted while a view made from them lives, and the ledger forgets them
once none does (their keep-alive entries carried to the newest part, or the
part kept when they cannot be). A rewind frees regions, a checkpoint stays
valid after a rewind to it, and a count collects once before it refuses.
These tests check each rule through what a caller sees: ``live_views()``, a
refused ``reset()``, what a pointer stored in the arena keeps alive.
"""

from __future__ import annotations

import ctypes
import gc
import weakref
from typing import Any

import pytest

from linalloc import BumpArena, BumpArenaLazy, Layout, TypedArena, TypedArenaLazy, _views


class Node(ctypes.Structure):
    pass


Node._fields_ = [("value", ctypes.c_int64), ("next", ctypes.POINTER(Node))]


class Ref(ctypes.Structure):
    """A value pointing to an integer outside the arena."""

    _fields_ = [("ptr", ctypes.POINTER(ctypes.c_int64)), ("x", ctypes.c_int64)]


def _fill_part(arena: Any) -> None:
    """Use up the typed lazy arena's committed slots, so the next value commits more."""
    per_part = arena.commit_step // ctypes.sizeof(arena.ctype)
    fill = arena.alloc_many(per_part - len(arena) % per_part)
    assert fill is not None
    del fill


# -- lazy growth: the older parts -------------------------------------------------------


def test_values_of_every_part_stay_counted_as_a_lazy_arena_grows() -> None:
    """Rule 2 across growth: a value made from any part, older or newest, is counted."""
    arena = TypedArenaLazy(ctypes.c_int64, 1 << 20)
    first = arena.alloc(1)  # (the first part)
    _fill_part(arena)
    second = arena.alloc(2)  # (the second part: the first stays, viewed)
    _fill_part(arena)
    third = arena.alloc(3)  # (the third part: both older ones stay, viewed)
    gc.collect()
    assert arena.live_views() == 3
    with pytest.raises(BufferError, match="^cannot reset: 3 views "):
        arena.reset()
    del first, second
    gc.collect()
    assert arena.live_views() == 1
    with pytest.raises(BufferError, match="^cannot reset: 1 view "):
        arena.reset()
    assert third.value == 3
    del third
    arena.reset()
    assert arena.live_views() == 0


def test_an_older_part_no_view_needs_is_let_go_as_a_lazy_arena_grows() -> None:
    """Growth forgets an older part once no view of it lives (its objects are freed)."""
    arena = TypedArenaLazy(ctypes.c_int64, 1 << 20)
    first = arena.alloc(1)
    slots = weakref.ref(first._b_base_)  # (the first part's slot array)
    _fill_part(arena)
    second = arena.alloc(2)  # (the second part; the first stays while ``first`` lives)
    gc.collect()
    assert slots() is not None
    del first
    _fill_part(arena)
    third = arena.alloc(3)  # (the third part: the first is forgotten now)
    gc.collect()
    assert slots() is None
    assert arena.live_views() == 2
    assert (second.value, third.value) == (2, 3)


def test_a_pointer_target_stays_alive_when_a_lazy_arena_grows() -> None:
    """Rule 1 across growth: what a value's pointer keeps outside the arena stays alive."""
    arena = BumpArenaLazy(1 << 20)
    target = ctypes.c_int64(7)
    alive = weakref.ref(target)
    value = arena.alloc(Ref)
    value.ptr = ctypes.pointer(target)  # (ctypes keeps ``target`` in the row's keep-alives)
    address = ctypes.addressof(value)
    del value, target
    gc.collect()
    assert alive() is not None
    grown = arena.alloc_uninit_slice(Layout(arena.commit_step, 8))  # (a new part)
    assert grown is not None
    del grown
    gc.collect()
    assert alive() is not None  # (the older part keeps it: the new one has no row to carry it to)
    assert Ref.from_address(address).ptr.contents.value == 7
    assert arena.live_views() == 0
    arena.reset()


# -- checkpoints ------------------------------------------------------------------------


def test_a_later_checkpoint_is_invalid_after_a_rewind_even_while_a_traceback_holds_its_region(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A rewind invalidates later checkpoints, whatever still refers to their regions."""
    arena = BumpArena(256)
    arena.alloc_uninit_slice(Layout(8, 8))
    cp1 = arena.checkpoint()
    arena.alloc_uninit_slice(Layout(8, 8))
    cp2 = arena.checkpoint()
    arena.alloc_uninit_slice(Layout(8, 8))
    newest = [arena._ledger.regions[-1].parts[-1]]
    real = _views.part_views

    def failing(part: Any) -> int:
        if newest and part is newest[0]:
            raise MemoryError("injected")
        return real(part)

    monkeypatch.setattr(_views, "part_views", failing)
    with pytest.raises(MemoryError, match="^injected$") as failed:
        arena.live_views()  # (its traceback holds the count's frames, and cp2's region)
    monkeypatch.undo()
    newest.clear()
    assert failed.value.__traceback__ is not None
    arena.rewind(cp1)
    assert arena.used == 8
    with pytest.raises(ValueError, match="no longer valid"):
        arena.rewind(cp2)
    assert arena.used == 8
    arena.rewind(cp1)  # (still valid)
    assert arena.used == 8


# -- what a count takes out -------------------------------------------------------------


def test_an_entry_replaced_while_a_count_judges_it_is_the_one_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rule 1 in a count: a keep-alive stored in its middle (as a signal handler could) stays."""
    arena = TypedArena(Node, 8)
    first, second = arena.alloc(1), arena.alloc(2)
    first.next = ctypes.pointer(second)  # (an own link: a count takes its entry out)
    del second
    assert arena.live_views() == 1  # (first: its link is left out)
    outside = Node(7)
    alive = weakref.ref(outside)
    real = _views._in_regions
    armed = [(first, outside)]

    def replacing(*args: Any) -> Any:
        if armed:  # (the entry is judged: the count is about to take it out)
            value, target = armed.pop()
            value.next = ctypes.pointer(target)  # (ctypes replaces the entry)
        return real(*args)

    monkeypatch.setattr(_views, "_in_regions", replacing)
    assert arena.live_views() == 1
    monkeypatch.undo()
    assert not armed
    del outside
    gc.collect()
    assert alive() is not None  # (the new entry keeps it)
    assert first.next.contents.value == 7
    first.next = ctypes.POINTER(Node)()  # (replaced again: what the entry held is let go)
    gc.collect()
    assert alive() is None
    assert arena.live_views() == 1
    del first
    arena.reset()


def test_a_link_from_the_first_region_into_a_freed_one_stops_the_rewind_whatever_follows() -> None:
    """Rule 2 per region: a link into memory a rewind frees counts, with more regions after it."""
    arena = TypedArena(Node, 16)
    first = arena.alloc(0)  # (region 0)
    arena.checkpoint()
    arena.alloc(1)  # (region 1: stays)
    cp2 = arena.checkpoint()
    target = arena.alloc(2)  # (region 2: freed by rewind(cp2))
    arena.checkpoint()
    arena.alloc(3)  # (region 3: freed too)
    first.next = ctypes.pointer(target)  # (first, before cp2, points after it)
    del target
    gc.collect()
    assert arena.live_views() == 1  # (first; its link is its own)
    with pytest.raises(BufferError, match="^cannot rewind to this checkpoint: 1 view "):
        arena.rewind(cp2)
    assert len(arena) == 4
    assert first.next.contents.value == 2
    first.next = ctypes.POINTER(Node)()
    gc.collect()
    arena.rewind(cp2)
    assert len(arena) == 2


class Linked(ctypes.Structure):
    pass


Linked._fields_ = [
    ("next", ctypes.POINTER(Linked)),
    ("q", ctypes.POINTER(Linked)),
    ("v", ctypes.c_int64),
]


def test_a_link_to_a_watched_array_is_judged_apart_from_the_links_the_array_holds() -> None:
    """An own link to an array the arena made is left out even when the array's own links count."""
    fired: list[int] = []

    class Bomb:
        def __del__(self) -> None:
            fired.append(1)

    arena = TypedArena(Linked, 16)
    first = arena.alloc(v=1)
    holder = arena.alloc(v=2)
    bombed = arena.alloc(v=3)
    array = arena.as_array()  # (watched: what is stored through it is kept for the slots)
    bombed.bomb = Bomb()  # (its death would run code: a link to it always counts)
    array[0].next = ctypes.pointer(bombed)  # (a link the array keeps)
    holder.q = array  # (an own link to the array: left out)
    del array, bombed
    gc.collect()
    assert arena.live_views() == 3  # first, holder, and the link to the bombed value
    with pytest.raises(BufferError, match="^cannot reset: 3 views "):
        arena.reset()
    assert fired == []
    assert first.next.contents.v == 3
    first.next = ctypes.POINTER(Linked)()
    del first, holder
    gc.collect()
    assert fired == [1]
    arena.reset()


# -- held memory -------------------------------------------------------------------------


def test_a_cycle_of_links_within_held_memory_does_not_hold_it_for_ever() -> None:
    """Held memory is let go once only its own links refer to it; values are allocated again."""
    kept: list[Any] = []
    arena = TypedArena(Node, 8, drop=kept.append)
    first, second = arena.alloc(1), arena.alloc(2)
    first.next = ctypes.pointer(second)
    second.next = ctypes.pointer(first)  # (a cycle of links)
    del first, second
    arena.reset()  # (the drops keep both values: their memory is held)
    assert [value.value for value in kept] == [2, 1]
    with pytest.raises(BufferError, match="^cannot allocate: 2 views "):
        arena.alloc(3)
    kept.clear()  # (only the links within the held memory refer to it now)
    gc.collect()
    third = arena.alloc(3)
    assert third.value == 3
    assert arena.live_views() == 1
    assert len(arena) == 1


# -- values made ahead -------------------------------------------------------------------


def test_a_checkpoint_gives_back_the_slots_of_values_made_ahead() -> None:
    """Slots are contiguous: after a checkpoint the next value lands right after the last one."""
    arena = TypedArena(ctypes.c_int64, 64)
    first, second = arena.alloc(1), arena.alloc(2)  # (a window of values made ahead)
    cp = arena.checkpoint()
    third = arena.alloc(3)
    assert ctypes.addressof(third) == ctypes.addressof(second) + 8
    assert len(arena) == 3
    assert [value.value for value in arena] == [1, 2, 3]
    del third
    arena.rewind(cp)
    fourth = arena.alloc(4)
    assert ctypes.addressof(fourth) == ctypes.addressof(second) + 8
    assert [value.value for value in arena] == [1, 2, 4]
    assert arena.live_views() == 3
    del first


def test_a_value_made_ahead_that_something_took_keeps_its_slot() -> None:
    """No slot twice: a value made ahead that outlives its window is never handed out again."""
    arena = TypedArena(ctypes.c_int64, 64)
    first = arena.alloc(1)  # (a window of values made ahead)
    base = ctypes.addressof(first)
    ahead = [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, ctypes.c_int64)
        and obj._b_base_ is first._b_base_
        and ctypes.addressof(obj) > base
    ]
    assert ahead
    taken = max(ahead, key=ctypes.addressof)  # (the last slot of the window: made first)
    del ahead
    taken.value = 99
    arena.checkpoint()  # (the window closes: its slots are given back, but the taken one's)
    made = [arena.alloc(k) for k in range(2, 40)]
    assert ctypes.addressof(taken) not in {ctypes.addressof(value) for value in made}
    assert taken.value == 99
    del made, first
