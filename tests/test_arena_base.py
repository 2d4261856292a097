"""What every arena shares (``linalloc._arena``): its exact error messages, its repr,
and which calls code running in the middle of another call may make."""

from __future__ import annotations

import copy
import ctypes
import gc
import pickle
import re
from typing import Any

import pytest
from conftest import BUMP_KINDS, TYPED_KINDS, run_in_thread

ALL_KINDS = BUMP_KINDS + TYPED_KINDS
BUSY = (
    "the arena is busy: a drop callback cannot allocate from, rewind, reset or close "
    "the arena it is dropping from, nor can code that runs in the middle of one of its "
    "calls (a finalizer, a signal handler)"
)


def make(cls: type, **kwargs: Any) -> Any:
    if cls in TYPED_KINDS:
        return cls(ctypes.c_int64, 16, **kwargs)
    return cls(256, **kwargs)


def exactly(text: str) -> str:
    return "^" + re.escape(text) + "$"


@pytest.mark.parametrize("cls", ALL_KINDS, ids=lambda c: c.__name__)
def test_closed_message(cls: type) -> None:
    arena = make(cls)
    arena.close()
    with pytest.raises(ValueError, match=exactly("arena is closed")):
        arena.checkpoint()


@pytest.mark.parametrize("cls", TYPED_KINDS, ids=lambda c: c.__name__)
def test_busy_message_from_a_drop_callback(cls: type) -> None:
    seen: list[BaseException] = []

    def drop(value: Any) -> None:
        try:
            arena.alloc(1)
        except RuntimeError as error:
            seen.append(error)

    arena = cls(ctypes.c_int64, 4, drop=drop)
    arena.alloc(0)
    arena.reset()
    assert [str(e) for e in seen] == [BUSY]


@pytest.mark.parametrize("cls", ALL_KINDS, ids=lambda c: c.__name__)
def test_wrong_thread_message_names_the_class(cls: type) -> None:
    arena = make(cls)
    error = run_in_thread(arena.checkpoint)
    assert isinstance(error, RuntimeError)
    pattern = (
        rf"^{cls.__name__} objects created in a thread can only be used in that same "
        r"thread \(created in thread \d+, called from \d+\); "
        r"pass check_thread=False to share one under your own lock$"
    )
    assert re.match(pattern, str(error)), str(error)


@pytest.mark.parametrize("cls", ALL_KINDS, ids=lambda c: c.__name__)
def test_no_pickle_or_copy_message_names_the_class(cls: type) -> None:
    arena = make(cls)
    text = exactly(f"cannot pickle or copy a {cls.__name__}: it owns raw memory")
    for attempt in (pickle.dumps, copy.copy, copy.deepcopy, lambda a: a.__reduce__()):
        with pytest.raises(TypeError, match=text):
            attempt(arena)


@pytest.mark.parametrize("cls", ALL_KINDS, ids=lambda c: c.__name__)
def test_checkpoint_immutable_and_unpicklable_messages(cls: type) -> None:
    cp = make(cls).checkpoint()
    with pytest.raises(AttributeError, match=exactly("Checkpoint is immutable")):
        del cp._serial
    text = exactly("cannot pickle or copy a Checkpoint: it belongs to one arena")
    with pytest.raises(TypeError, match=text):
        pickle.dumps(cp)
    assert copy.copy(cp) is cp and copy.deepcopy(cp) is cp  # immutable


@pytest.mark.parametrize("cls", ALL_KINDS, ids=lambda c: c.__name__)
def test_scope_entered_twice_message(cls: type) -> None:
    arena = make(cls)
    scope = arena.scope()
    with scope:
        pass
    with pytest.raises(
        RuntimeError,
        match=exactly("a scope can be entered only once; call arena.scope() again"),
    ):
        scope.__enter__()


def test_repr_fields_are_separated_by_one_space() -> None:
    import linalloc

    typed = linalloc.TypedArena(ctypes.c_int32, 4)
    typed.alloc(1)
    name = ctypes.c_int32.__name__  # (c_int where an int has 32 bits)
    assert repr(typed) == f"<TypedArena of {name} len=1 capacity=4 used=4>"
    bump = linalloc.BumpArena(64)
    bump.alloc(ctypes.c_int32)
    assert repr(bump) == "<BumpArena capacity=64 used=4>"
    bump.close()
    assert repr(bump) == "<BumpArena closed>"


class _Finalizer:
    """An object in a garbage cycle: its ``__del__`` runs at the next collection."""

    def __init__(self, action: Any, seen: list[Any]) -> None:
        self.action = action
        self.seen = seen
        self.cycle = self

    def __del__(self) -> None:
        try:
            self.seen.append(self.action())
        except RuntimeError as error:
            self.seen.append(error)


@pytest.mark.parametrize("cls", TYPED_KINDS, ids=lambda c: c.__name__)
def test_no_view_is_made_in_the_middle_of_a_reset(cls: type) -> None:
    # A refused reset collects garbage before counting again: a finalizer run then
    # is in the middle of the reset and must not make views of the arena.
    arena = cls(ctypes.c_int64, 8)
    kept = arena.alloc(5)
    seen: list[Any] = []
    gc.disable()
    try:
        _Finalizer(arena.as_array, seen)
        _Finalizer(lambda: list(arena), seen)
        with pytest.raises(BufferError):
            arena.reset()
    finally:
        gc.enable()
    assert len(seen) == 2
    assert all(isinstance(e, RuntimeError) and str(e) == BUSY for e in seen), seen
    assert kept.value == 5 and len(arena) == 1
    assert [v.value for v in arena] == [5] and list(arena.as_array()) == [5]


@pytest.mark.parametrize("cls", TYPED_KINDS, ids=lambda c: c.__name__)
def test_drop_callbacks_may_read_the_arena(cls: type) -> None:
    read: list[Any] = []

    def drop(value: Any) -> None:
        read.append((value.value, [v.value for v in arena], list(arena.as_array())))

    arena = cls(ctypes.c_int64, 8, drop=drop)
    for n in (1, 2, 3):
        arena.alloc(n)
    arena.reset()
    # newest first, each callback seeing the values not dropped yet
    assert read == [(3, [1, 2], [1, 2]), (2, [1], [1]), (1, [], [])]
