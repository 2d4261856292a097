"""More rules of a typed arena's slots and of its dropper, checked in this process.

From the docstrings of ``linalloc._slots`` and of the typed arenas: every value
is dropped, exactly once, even when a callback raises; an arena brought back to
life at collection time (by its drop callback, or by its owner's ``__del__``)
works as a fresh one when there was nothing to drop, and hands out nothing once
values were dropped (its checkpoints' regions are theirs); a value the callback
keeps keeps the targets of its pointers, and a collection reports no error of
the library's own (values pointing at values of an older slot array included);
nothing is dropped while the interpreter shuts down.

Only eager arenas are brought back to life here: a lazy arena revived that way
loses its memory (see tests/test_slots_rules.py).
"""

from __future__ import annotations

import ctypes
import gc
import re
import sys
from typing import Any
from weakref import ref

import pytest
from misuse_cases import Unraisable
from test_slots_rules2 import _Node as _Linked
from test_slots_rules2 import _targets, alloc_pointing_at_targets, assert_kept_keep_their_targets

from linalloc import TypedArena

# -- a callback's error that hides its traceback ---------------------------------------------


class _Opaque(Exception):
    """An error whose ``__traceback__`` reads as None and ignores stores (as a proxy may)."""

    @property
    def __traceback__(self) -> Any:
        return None

    @__traceback__.setter
    def __traceback__(self, value: Any) -> None:
        pass


def test_every_value_is_dropped_when_a_callback_raises_an_error_without_a_traceback(
    typed_cls: type,
) -> None:
    dropped: list[int] = []

    def drop(value: Any) -> None:
        dropped.append(value.value)
        if value.value in (4, 2):
            raise _Opaque(value.value)

    arena = typed_cls(ctypes.c_int64, 8, drop=drop)
    for k in range(1, 6):
        arena.alloc(k)
    with pytest.raises(_Opaque) as caught:
        arena.reset()
    assert caught.value.args == (4,)  # the first error
    assert dropped == [5, 4, 3, 2, 1]
    assert len(arena) == 0
    del caught
    arena.close()
    assert dropped == [5, 4, 3, 2, 1]


# -- nothing is dropped while the interpreter shuts down -------------------------------------


def test_an_arena_collected_while_the_interpreter_shuts_down_drops_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # (The interpreter's own shutdown is checked in a child: tests/test_slots_rules.py.)
    dropped: list[int] = []
    arena = TypedArena(ctypes.c_int64, 8, drop=lambda value: dropped.append(value.value))
    for k in (1, 2, 3):
        arena.alloc(k)
    gc.collect()
    with monkeypatch.context() as patch:
        patch.setattr(sys, "is_finalizing", lambda: True)
        del arena
        gc.collect()
    assert dropped == []


# -- an arena brought back to life with nothing left to drop ---------------------------------


class _Phoenix:
    """Owns an arena whose callback is its own method (a cycle); comes back when collected."""

    revived: list[_Phoenix] = []

    def __init__(self) -> None:
        self.arena = TypedArena(ctypes.c_int64, 8, drop=self.release)
        self.dropped: list[int] = []

    def release(self, value: Any) -> None:
        self.dropped.append(value.value)

    def __del__(self) -> None:
        _Phoenix.revived.append(self)


def test_an_arena_revived_with_no_value_left_hands_out_nothing() -> None:
    """Its dropper ran (once, at the collection), so what it handed out afterwards
    would never be dropped at the next: it hands out nothing, and resets and closes."""
    gc.collect()
    owner = _Phoenix()
    values = [owner.arena.alloc(k) for k in (1, 2)]
    del values
    owner.arena.reset()
    assert owner.dropped == [2, 1]
    del owner  # nothing left to drop: the collection drops nothing
    gc.collect()
    try:
        (owner,) = _Phoenix.revived
        arena = owner.arena
        assert owner.dropped == [2, 1] and len(arena) == 0
        arena.reset()
        assert arena.alloc(3) is None
        assert arena.alloc_many(1) is None
        arena.close()
        assert owner.dropped == [2, 1] and arena.closed
    finally:
        _Phoenix.revived.clear()


def _revived_after_drops() -> _Phoenix:
    """A _Phoenix whose arena dropped 2 and 1 at collection, with a checkpoint at 1."""
    gc.collect()
    owner = _Phoenix()
    owner.arena.alloc(1)
    owner.arena.checkpoint()  # a region from position 1
    owner.arena.alloc(2)
    del owner
    gc.collect()  # drops 2, 1; the owner's __del__ brings it back
    (owner,) = _Phoenix.revived
    _Phoenix.revived.clear()
    assert owner.dropped == [2, 1]
    return owner


def test_an_arena_revived_after_drops_hands_out_nothing_a_rewind_could_miss() -> None:
    owner = _revived_after_drops()
    arena = owner.arena
    try:
        checkpoint = arena.checkpoint()
        # (it handed out slot 0 from the dropped values' region, and iterated it twice:
        # a rewind to this checkpoint was accepted while that value lived)
        assert [arena.alloc(5), arena.alloc(6)] == [None, None]
        assert list(arena) == [] and len(arena) == 0
        arena.rewind(checkpoint)
        with arena.scope():
            assert arena.alloc(7) is None
        arena.reset()
        assert arena.alloc(8) is None and owner.dropped == [2, 1]
    finally:
        arena.close()
    assert owner.dropped == [2, 1]


# -- an arena revived by its callback, its first slot once dead ------------------------------

_ARENA: list[Any] = []


class _AllocatesThenFails(ctypes.Structure):
    """``_AllocatesThenFails(-1)`` allocates 99 from the arena in ``_ARENA``, then raises."""

    _fields_ = [("v", ctypes.c_int64)]

    def __init__(self, *args: Any) -> None:
        if args == (-1,):
            _ARENA[0].alloc().v = 99
            raise ValueError("boom")
        super().__init__(*args)


class _Reviver:
    """Owns an arena whose callback keeps the owner (not the value): the arena lives again."""

    revived: list[_Reviver] = []

    def __init__(self, ctype: Any) -> None:
        self.arena = TypedArena(ctype, 8, drop=self.release)
        self.dropped: list[int] = []

    def release(self, value: Any) -> None:
        self.dropped.append(value.v)
        _Reviver.revived.append(self)


def test_an_arena_revived_at_collection_drops_the_value_in_its_once_dead_first_slot() -> None:
    gc.collect()
    owner = _Reviver(_AllocatesThenFails)
    _ARENA.append(owner.arena)
    message = "cannot build a _AllocatesThenFails from (-1,): boom"
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        owner.arena.alloc(-1)  # slot 0 stays used (dead); 99 is in slot 1
    _ARENA.clear()
    assert len(owner.arena) == 2
    del owner
    gc.collect()
    try:
        owner = _Reviver.revived[0]
        assert owner.dropped == [99]  # the dead slot is passed over
        arena = owner.arena
        assert len(arena) == 0
        assert [arena.alloc(k) for k in (10, 11)] == [None] * 2  # (it hands out nothing)
        arena.reset()
        arena.close()
        assert owner.dropped == [99]
    finally:
        _Reviver.revived.clear()


# -- pointer targets and an arena revived by its callback ------------------------------------


class _Node(ctypes.Structure):
    _fields_ = [("v", ctypes.c_int64), ("p", ctypes.POINTER(ctypes.c_int64))]


def test_an_arena_revived_with_no_value_kept_keeps_no_pointer_target_of_a_freed_value() -> None:
    gc.collect()
    owner = _Reviver(_Node)
    targets = []
    for k in (1, 2, 3):
        target = ctypes.c_int64(k)
        owner.arena.alloc(k).p = ctypes.pointer(target)
        targets.append(ref(target))
    del owner, target
    gc.collect()
    with Unraisable() as unraisable:
        try:
            owner = _Reviver.revived[0]
            arena: Any = owner.arena
            assert owner.dropped == [3, 2, 1] and len(arena) == 0
            gc.collect()
            assert [target() for target in targets] == [None] * 3
            assert arena.alloc() is None  # (a revived arena hands out nothing)
            arena.close()
        finally:
            _Reviver.revived.clear()
    assert unraisable.seen == []


class _Keeper:
    """Owns an arena whose callback (its own method: a cycle) keeps each value."""

    def __init__(self, kept: list[Any]) -> None:
        self.arena = TypedArena(_Linked, 64, drop=self.keep)
        self.kept = kept

    def keep(self, value: Any) -> None:
        self.kept.append(value)


def test_values_kept_when_a_cycle_is_collected_keep_their_pointer_targets() -> None:
    gc.collect()
    before = _targets()
    kept: list[Any] = []
    keeper = _Keeper(kept)
    alloc_pointing_at_targets(keeper.arena)
    with Unraisable() as unraisable:
        del keeper
        gc.collect()
    assert unraisable.seen == []
    # (_targets() counts by the collector: a weak reference is cleared in a collected cycle)
    assert_kept_keep_their_targets(kept, before)


class _Chained(ctypes.Structure):
    pass


_Chained._fields_ = [("v", ctypes.c_int64), ("next", ctypes.POINTER(_Chained))]


def test_a_value_pointing_at_a_value_before_a_checkpoint_is_collected_without_an_error() -> None:
    # The slot array before the checkpoint lives on with the value it points at
    # (through the keep-alives carried to the dropper), and dies while the
    # dropper finishes: what it carries then must not raise.
    gc.collect()
    dropped: list[int] = []
    arena: Any = TypedArena(_Chained, 8, drop=lambda value: dropped.append(value.v))
    older = arena.alloc(1)
    whole = arena.as_array()  # (watched: the type holds a pointer)
    del whole
    assert arena.live_views() == 1  # (the count settles what the array kept)
    arena.checkpoint()
    newer = arena.alloc(2)
    newer.next = ctypes.pointer(older)
    del older, newer
    with Unraisable() as unraisable:
        del arena
        gc.collect()
    assert unraisable.seen == []
    assert dropped == [2, 1]
