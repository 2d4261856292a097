"""Rules every arena shares (``linalloc._arena``): the exact refusals of ``close()``
and ``rewind()``, and that no code run in the middle of a ``checkpoint()``, a
``close()`` or a ``reset()`` can use the arena as if nothing were going on."""

from __future__ import annotations

import ctypes
import gc
import re
from typing import Any, Callable

import pytest
from conftest import BUMP_KINDS, TYPED_KINDS
from test_bump_rules2 import BUSY
from test_typed_rules import _is_call_from, _Link, _profiled, reset_taking_a_view_of

ALL_KINDS = BUMP_KINDS + TYPED_KINDS
STILL_ALIVE = (
    "still alive (values, memoryviews, ctypes objects or arrays made from them); delete them first"
)


def make(cls: type) -> Any:
    if cls in TYPED_KINDS:
        return cls(ctypes.c_int64, 16)
    return cls(256)


def allocate(arena: Any) -> Any:
    """One value from ``arena``, whatever its kind."""
    if type(arena) in TYPED_KINDS:
        return arena.alloc(7)
    return arena.alloc(ctypes.c_int64)


def exactly(text: str) -> str:
    return "^" + re.escape(text) + "$"


def _outcome(action: Callable[[], object]) -> object:
    try:
        return action()
    except RuntimeError as error:
        return error


class _Finalizer:
    """An object in a garbage cycle: its ``__del__`` runs at the next collection."""

    def __init__(self, action: Callable[[], object], seen: list[object]) -> None:
        self.action = action
        self.seen = seen
        self.cycle = self

    def __del__(self) -> None:
        self.seen.append(_outcome(self.action))


# -- exact refusals ------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_KINDS, ids=lambda c: c.__name__)
def test_a_close_refused_for_a_live_view_says_close(cls: type) -> None:
    arena = make(cls)
    value = allocate(arena)
    with pytest.raises(
        BufferError, match=exactly(f"cannot close: 1 view of this arena {STILL_ALIVE}")
    ):
        arena.close()
    assert not arena.closed
    del value
    arena.close()
    assert arena.closed


@pytest.mark.parametrize("cls", ALL_KINDS, ids=lambda c: c.__name__)
def test_rewind_to_what_is_not_a_checkpoint_names_its_type(cls: type) -> None:
    arena = make(cls)
    with pytest.raises(TypeError, match=exactly("expected a Checkpoint, not int")):
        arena.rewind(3)
    with pytest.raises(TypeError, match=exactly("expected a Checkpoint, not str")):
        arena.rewind("checkpoint")


@pytest.mark.parametrize("cls", ALL_KINDS, ids=lambda c: c.__name__)
def test_rewind_to_a_checkpoint_of_another_arena_is_refused(cls: type) -> None:
    arena, other = make(cls), make(cls)
    theirs = other.checkpoint()
    with pytest.raises(ValueError, match=exactly("the checkpoint belongs to another arena")):
        arena.rewind(theirs)
    other.rewind(theirs)  # (still valid where it belongs)


@pytest.mark.parametrize("cls", ALL_KINDS, ids=lambda c: c.__name__)
def test_rewind_to_a_checkpoint_invalidated_by_an_earlier_rewind_is_refused(cls: type) -> None:
    arena = make(cls)
    early = arena.checkpoint()
    allocate(arena)
    late = arena.checkpoint()
    arena.rewind(early)
    text = (
        "the checkpoint is no longer valid: the arena was reset, or rewound to an "
        "earlier checkpoint, since it was taken"
    )
    with pytest.raises(ValueError, match=exactly(text)):
        arena.rewind(late)
    arena.reset()
    with pytest.raises(ValueError, match=exactly(text)):
        arena.rewind(early)


# -- code run in the middle of a call ------------------------------------------------


@pytest.mark.parametrize("cls", TYPED_KINDS, ids=lambda c: c.__name__)
def test_code_run_in_the_middle_of_a_checkpoint_cannot_make_views(cls: type) -> None:
    arena = cls(ctypes.c_int64, 8)
    kept = arena.alloc(5)
    seen: list[object] = []

    def probe(frame: Any, event: str, arg: object) -> None:
        if not seen and _is_call_from(frame, event, "_position", "checkpoint"):
            seen.append(_outcome(arena.as_array))
            seen.append(_outcome(lambda: list(arena)))

    cp = _profiled(probe, arena.checkpoint)
    assert len(seen) == 2
    assert all(isinstance(e, RuntimeError) and str(e) == BUSY for e in seen), seen
    seen.clear()
    assert kept.value == 5 and [v.value for v in arena] == [5]
    arena.rewind(cp)  # (nothing made after the checkpoint: no view stops the rewind)
    assert len(arena) == 1


def _close_refused_running(arena: Any, calls: list[Callable[[], object]]) -> None:
    """A ``close()`` refused for one view, while finalizers run in its middle make
    ``calls``: each finds the arena busy."""
    seen: list[object] = []
    gc.disable()
    try:
        for call in calls:
            _Finalizer(call, seen)
        with pytest.raises(BufferError, match="^cannot close: 1 view"):
            arena.close()
    finally:
        gc.enable()
    assert len(seen) == len(calls)
    assert all(isinstance(e, RuntimeError) and str(e) == BUSY for e in seen), seen


@pytest.mark.parametrize("cls", ALL_KINDS, ids=lambda c: c.__name__)
def test_code_run_in_the_middle_of_a_refused_close_cannot_change_the_arena(cls: type) -> None:
    # A refused close collects garbage before counting again: a finalizer run then
    # is in the middle of the close.
    arena = make(cls)
    kept = allocate(arena)
    used = arena.used
    _close_refused_running(arena, [arena.checkpoint, arena.reset])
    assert not arena.closed and arena.used == used
    del kept
    arena.close()


@pytest.mark.parametrize("cls", TYPED_KINDS, ids=lambda c: c.__name__)
def test_code_run_in_the_middle_of_a_refused_close_cannot_make_views(cls: type) -> None:
    arena = cls(ctypes.c_int64, 8)
    kept = arena.alloc(5)
    _close_refused_running(arena, [arena.as_array, lambda: list(arena)])
    assert arena.live_views() == 1
    del kept
    arena.close()
    assert arena.closed


@pytest.mark.parametrize("cls", BUMP_KINDS, ids=lambda c: c.__name__)
def test_a_view_made_in_the_middle_of_an_untyped_reset_makes_it_refuse(cls: type) -> None:
    # ``first`` points to ``second``: what ctypes keeps for that pointer is left out
    # of the count (the arena's own memory). Code run in the middle of the reset
    # (a profile function, as a signal handler could) takes the object over
    # ``second``'s memory from the collector's list. An untyped arena runs no
    # drop callback: nothing has changed yet, so the reset is refused as if that
    # view had lived all along, and nothing is held.
    arena = cls(256)
    first, second = arena.alloc(_Link), arena.alloc(_Link)
    first.v, second.v = 1, 2
    first.next = ctypes.pointer(second)
    where = ctypes.addressof(second)
    del first, second
    taken = reset_taking_a_view_of(arena, where)
    assert len(taken) == 1
    assert ctypes.c_int64.from_address(where + _Link.v.offset).value == 2  # (untouched)
    assert arena.used == 2 * ctypes.sizeof(_Link)
    third = arena.alloc(ctypes.c_int64)  # (nothing is held: allocation goes on)
    assert third is not None and ctypes.addressof(third) == where + ctypes.sizeof(_Link)
    del third
    taken.clear()
    arena.reset()
    assert arena.used == 0
    arena.close()
