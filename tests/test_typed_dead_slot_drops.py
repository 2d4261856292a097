"""Drops over dead slots: what a drop callback sees, and where a stopped drop leaves the count.

A dead slot (a constructor that allocated from its own arena, then raised)
is never dropped. While drop callbacks run, ``len()`` hides the slots the
drop has passed so far, dead ones included, from the top down. A drop that a
``KeyboardInterrupt`` stops holds the memory (the count goes down) only when
no live value is left in the range: dead slots are not live, the slot the
drop stopped at (its value dropped) is not either.
"""

from __future__ import annotations

import ctypes
from typing import Any

import pytest
from conftest import at_line_of, traced

from linalloc import TypedArena
from linalloc._slots import drop_values


def _dead_slot_arena(before: int, drop: Any) -> Any:
    """A TypedArena of Node: ``before`` values (1, 2, ...), a dead slot, then the value 99."""
    box: list[Any] = []

    class Node(ctypes.Structure):
        _fields_ = [("v", ctypes.c_int64)]

        def __init__(self, *args: Any) -> None:
            box[0].alloc().v = 99  # from the same arena: this slot is no longer the newest
            raise ValueError("boom")

    arena = TypedArena(Node, 8, drop=drop)
    box.append(arena)
    for n in range(before):
        arena.alloc().v = n + 1
    with pytest.raises(ValueError):
        arena.alloc(7)
    box.clear()
    assert len(arena) == before + 2
    return arena


def test_len_in_a_drop_callback_hides_the_dead_slot_below_the_value_dropped() -> None:
    """A callback's len() counts neither the values dropped so far nor a dead slot under them."""
    seen: list[tuple[int, int]] = []
    box: list[Any] = []

    def drop(value: Any) -> None:
        seen.append((value.v, len(box[0])))

    arena = _dead_slot_arena(3, drop)  # slots: 1, 2, 3, dead, 99
    box.append(arena)
    arena.reset()
    assert seen == [(99, 3), (3, 2), (2, 1), (1, 0)]
    assert len(arena) == 0
    arena.close()


def _stop(dropped: list[int]) -> Any:
    """A drop callback that records each value and raises KeyboardInterrupt at its first call."""

    def drop(value: Any) -> None:
        dropped.append(value.v)
        if len(dropped) == 1:
            raise KeyboardInterrupt

    return drop


def test_a_drop_stopped_at_the_last_live_value_above_a_dead_slot_holds_the_memory() -> None:
    """Stopped at the only live value, over a dead slot, a reset frees the range: len() is 0."""
    dropped: list[int] = []
    arena = _dead_slot_arena(0, _stop(dropped))  # slots: dead, 99
    with pytest.raises(KeyboardInterrupt):
        arena.reset()
    assert dropped == [99]
    assert len(arena) == 0  # held: nothing live was left below the value dropped
    arena.reset()
    arena.close()
    assert dropped == [99]  # never dropped again


def test_a_drop_stopped_above_a_dead_slot_and_a_live_value_keeps_the_count() -> None:
    """Stopped with a live value left under a dead slot, a reset keeps the count; next drops it."""
    dropped: list[int] = []
    arena = _dead_slot_arena(1, _stop(dropped))  # slots: 1, dead, 99
    with pytest.raises(KeyboardInterrupt):
        arena.reset()
    assert dropped == [99]
    assert len(arena) == 3  # the value 1 is live: nothing is freed
    arena.reset()
    assert dropped == [99, 1]
    assert len(arena) == 0
    arena.close()


def test_an_interrupt_as_a_drop_passes_a_dead_slot_keeps_the_live_value_under_it() -> None:
    """An interrupt as a drop passes a dead slot leaves the live value under it counted."""
    dropped: list[int] = []
    arena = _dead_slot_arena(1, lambda value: dropped.append(value.v))  # slots: 1, dead, 99

    def interrupt() -> None:
        raise KeyboardInterrupt

    tracer, _ = at_line_of(drop_values, "continue", interrupt)
    with pytest.raises(KeyboardInterrupt):
        traced(tracer, arena.reset)
    assert dropped == [99]
    assert len(arena) == 3  # the value 1 was not dropped: its slot is not freed
    arena.reset()
    assert dropped == [99, 1]
    assert len(arena) == 0
    arena.close()
