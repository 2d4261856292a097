"""More rules every arena shares (``linalloc._arena``): memory held while a drop
callback keeps values (after an interrupt too), the exact refusals of ``rewind()`` and
of allocation, garbage collected before refusing, what code run in the middle of a
``reset()``, ``rewind()`` or ``close()`` can do, which checkpoints stay valid, and that
neither the busy mark nor the collector's state outlives a call."""

from __future__ import annotations

import ctypes
import gc
from typing import Any

import pytest
from conftest import BUMP_KINDS, TYPED_KINDS, at_line_of, traced
from test_bump_rules2 import BUSY
from test_link_rules import _Node

import linalloc
from linalloc._arena import ArenaBase

ALL_KINDS = BUMP_KINDS + TYPED_KINDS


def make(cls: type, **kwargs: Any) -> Any:
    if cls in TYPED_KINDS:
        return cls(ctypes.c_int64, 16, **kwargs)
    return cls(256, **kwargs)


def allocate(arena: Any) -> Any:
    """One value from ``arena``, whatever its kind."""
    if type(arena) in TYPED_KINDS:
        return arena.alloc(7)
    return arena.alloc(ctypes.c_int64)


def _interrupted(call: Any) -> str:
    """``call()``, which must raise ``KeyboardInterrupt``; only its name leaves (a kept
    traceback would keep the library's frames, and what they hold, alive)."""
    try:
        call()
    except KeyboardInterrupt as error:
        return type(error).__name__
    return "nothing raised"


def _raise_interrupt() -> object:
    raise KeyboardInterrupt


def test_values_an_interrupted_rewind_dropped_keep_their_slots(
    typed_cls: type,
) -> None:
    """Rule 2, per region: values a drop callback kept when a KeyboardInterrupt stopped
    the drops are not handed out again: their slots stay used (dead) until a rewind
    past them, refused while they live."""
    kept: list[Any] = []

    def drop(value: Any) -> None:
        kept.append(value)
        if value.value == 12:
            raise KeyboardInterrupt

    arena: Any = typed_cls(ctypes.c_int64, 8, drop=drop)
    arena.alloc(1)
    cp = arena.checkpoint()
    for k in (10, 11, 12, 13):
        arena.alloc(k)
    with pytest.raises(KeyboardInterrupt):
        arena.rewind(cp)
    assert [v.value for v in kept] == [13, 12]
    assert len(arena) == 5 and arena.live_views() == 2
    value = arena.alloc(99)
    assert [v.value for v in kept] == [13, 12]  # (not overwritten)
    assert ctypes.addressof(value) == ctypes.addressof(kept[0]) + 8
    with pytest.raises(BufferError, match="^cannot rewind to this checkpoint: 3 views"):
        arena.rewind(cp)
    del value
    kept.clear()
    gc.collect()
    arena.rewind(cp)
    assert len(arena) == 1 and [v.value for v in kept] == [99, 11, 10]


@pytest.mark.parametrize("cls", ALL_KINDS, ids=lambda c: c.__name__)
def test_check_thread_of_another_type_is_refused_naming_the_type(cls: type) -> None:
    """Rule 4: ``check_thread`` must be a bool; the TypeError names what was given."""
    with pytest.raises(TypeError, match="^check_thread must be a bool, not int$"):
        make(cls, check_thread=1)
    with pytest.raises(TypeError, match="^check_thread must be a bool, not NoneType$"):
        make(cls, check_thread=None)


@pytest.mark.parametrize("cls", ALL_KINDS, ids=lambda c: c.__name__)
def test_closed_is_false_until_close_then_true(cls: type) -> None:
    """Rule 3: ``closed`` is the bool ``False`` on a new arena, ``True`` once closed."""
    arena = make(cls)
    assert arena.closed is False
    arena.close()
    assert arena.closed is True


@pytest.mark.parametrize("cls", ALL_KINDS, ids=lambda c: c.__name__)
def test_an_interrupt_in_the_last_line_of_a_checkpoint_leaves_the_arena_usable(
    cls: type,
) -> None:
    """A KeyboardInterrupt landing where ``checkpoint()`` clears its busy mark leaves
    nothing stuck once the call is over: every method works again."""
    arena = make(cls)
    tracer, _ = at_line_of(ArenaBase.checkpoint, "self._busy = None", _raise_interrupt)
    assert _interrupted(lambda: traced(tracer, arena.checkpoint)) == "KeyboardInterrupt"
    value = allocate(arena)  # (makes a view)
    assert arena.live_views() == 1
    cp = arena.checkpoint()
    if cls in TYPED_KINDS:
        assert [v.value for v in arena] == [7]
    del value
    arena.rewind(cp)
    arena.reset()
    assert arena.used == 0
    arena.close()
    assert arena.closed


def test_drop_callbacks_may_read_the_arena_they_drop_from(typed_cls: type) -> None:
    """A drop callback may iterate the arena and take ``as_array()`` of what is left;
    only changing the arena is refused to it."""
    seen: list[Any] = []
    arenas: list[Any] = []

    def drop(value: Any) -> None:
        arena = arenas[0]
        seen.append(([v.value for v in arena], list(arena.as_array())))

    arena: Any = typed_cls(ctypes.c_int64, 8, drop=drop)
    arenas.append(arena)
    for k in (1, 2, 3):
        arena.alloc(k)
    arena.reset()
    assert seen == [([1, 2], [1, 2]), ([1], [1]), ([], [])]
    assert len(arena) == 0


@pytest.mark.parametrize("cls", ALL_KINDS, ids=lambda c: c.__name__)
def test_a_rewind_invalidates_a_checkpoint_taken_after_it_at_the_same_position(
    cls: type,
) -> None:
    """Checkpoints: rewinding to ``cp`` invalidates those taken after it, even one taken
    at the same position (nothing allocated in between)."""
    arena = make(cls)
    allocate(arena)
    early = arena.checkpoint()
    late = arena.checkpoint()
    arena.rewind(early)
    with pytest.raises(ValueError, match="^the checkpoint is no longer valid"):
        arena.rewind(late)
    arena.rewind(early)  # (still valid)


@pytest.mark.parametrize("cls", ALL_KINDS, ids=lambda c: c.__name__)
def test_the_checkpoint_of_a_scope_is_invalid_once_the_scope_ended(cls: type) -> None:
    """Scopes: the scope's checkpoint is valid until the scope ends."""
    arena = make(cls)
    allocate(arena)
    with arena.scope() as cp:
        pass
    with pytest.raises(ValueError, match="^the checkpoint is no longer valid"):
        arena.rewind(cp)


@pytest.mark.parametrize("cls", ALL_KINDS, ids=lambda c: c.__name__)
def test_a_refused_rewind_says_how_many_views_of_memory_after_the_checkpoint_live(
    cls: type,
) -> None:
    """Rule 2, per region: the refusal names the rewind, the count and the memory
    allocated after the checkpoint."""
    arena = make(cls)
    before = allocate(arena)
    cp = arena.checkpoint()
    after = [allocate(arena), allocate(arena)]
    with pytest.raises(BufferError) as info:
        arena.rewind(cp)
    assert str(info.value) == (
        "cannot rewind to this checkpoint: 2 views of memory allocated after the "
        "checkpoint still alive (values, memoryviews, ctypes objects or arrays made from "
        "them); delete them first"
    )
    del info, after
    arena.rewind(cp)
    del before


class _Cycle:
    """Garbage once made: it refers to itself, so only the collector frees it."""

    def __init__(self, value: Any) -> None:
        self.value = value
        self.me = self


@pytest.mark.parametrize("cls", ALL_KINDS, ids=lambda c: c.__name__)
def test_a_view_kept_only_by_a_garbage_cycle_does_not_stop_a_reset(cls: type) -> None:
    """Rule 2: before refusing, the arena collects garbage once; a view that only an
    unreachable cycle held is then gone, and the reset goes ahead."""
    arena = make(cls)
    gc.disable()
    try:
        _Cycle(allocate(arena))
        assert arena.live_views() == 1  # (counted until the collector runs)
        arena.reset()
    finally:
        gc.enable()
    assert arena.used == 0


def test_memory_held_only_by_a_garbage_cycle_is_reused_after_a_collection(
    typed_cls: type,
) -> None:
    """Held memory: before refusing an allocation, the arena collects garbage once; values
    a drop callback left only in unreachable cycles are then gone."""
    arena: Any = typed_cls(ctypes.c_int64, 8, drop=_Cycle)
    arena.alloc(1)
    arena.alloc(2)
    gc.disable()
    try:
        arena.reset()  # (the callback keeps each value in a cycle: the memory is held)
        assert arena.live_views() == 2
        value = arena.alloc(5)
    finally:
        gc.enable()
    assert value.value == 5 and len(arena) == 1
    assert arena.live_views() == 1


def test_memory_held_for_one_kept_value_is_not_handed_out(typed_cls: type) -> None:
    """Held memory: even one value a drop callback kept stops allocation, whose
    refusal says so."""
    kept: list[Any] = []
    arena: Any = typed_cls(ctypes.c_int64, 8, drop=lambda v: kept.append(v) if not kept else None)
    arena.alloc(1)
    arena.alloc(2)
    arena.reset()  # (the callback keeps the first value dropped: 2)
    assert [v.value for v in kept] == [2]
    with pytest.raises(BufferError) as info:
        arena.alloc(5)
    assert str(info.value) == (
        "cannot allocate: 1 view of memory freed by reset() or rewind() still alive (kept "
        "by a drop callback, or by the traceback of its error); delete them first"
    )
    del info
    assert kept[0].value == 2
    kept.clear()
    assert arena.alloc(5).value == 5


def _outcome(action: Any) -> object:
    try:
        return action()
    except RuntimeError as error:
        return error


class _Finalizer:
    """An object in a garbage cycle: its ``__del__`` runs ``action`` at the next collection."""

    def __init__(self, action: Any, seen: list[object]) -> None:
        self.action = action
        self.seen = seen
        self.cycle = self

    def __del__(self) -> None:
        self.seen.append(_outcome(self.action))


def _refused_running(call: Any, refusal: str, actions: list[Any]) -> None:
    """``call()`` refused with ``BufferError`` (``refusal`` begins its message) while
    finalizers run by its collection before the refusal try ``actions``: each must find
    the arena busy."""
    seen: list[object] = []
    gc.disable()
    try:
        for action in actions:
            _Finalizer(action, seen)
        with pytest.raises(BufferError, match="^" + refusal):
            call()
    finally:
        gc.enable()
    assert len(seen) == len(actions)
    assert all(isinstance(e, RuntimeError) and str(e) == BUSY for e in seen), seen


@pytest.mark.parametrize("how", ["reset", "rewind"])
def test_code_run_in_the_middle_of_a_refused_reset_or_rewind_cannot_make_views(
    typed_cls: type, how: str
) -> None:
    """No code run in the middle of a ``reset()`` or ``rewind()`` (a finalizer run by
    its collection) can iterate the arena or take ``as_array()``."""
    arena: Any = typed_cls(ctypes.c_int64, 8)
    cp = arena.checkpoint()
    kept = arena.alloc(5)
    call, refusal = (
        (arena.reset, "cannot reset: 1 view")
        if how == "reset"
        else (lambda: arena.rewind(cp), "cannot rewind to this checkpoint: 1 view")
    )
    _refused_running(call, refusal, [arena.as_array, lambda: list(arena)])
    assert arena.live_views() == 1 and len(arena) == 1
    del kept
    arena.rewind(cp)
    assert len(arena) == 0


@pytest.mark.parametrize("how", ["reset", "rewind"])
@pytest.mark.parametrize("cls", ALL_KINDS, ids=lambda c: c.__name__)
def test_code_run_in_the_middle_of_a_refused_reset_or_rewind_cannot_change_the_arena(
    cls: type, how: str
) -> None:
    """No code run in the middle of a ``reset()`` or ``rewind()`` (a finalizer run by
    its collection) can take a checkpoint, reset or rewind the arena."""
    arena = make(cls)
    cp = arena.checkpoint()
    kept = allocate(arena)
    used = arena.used
    call, refusal = (
        (arena.reset, "cannot reset: 1 view")
        if how == "reset"
        else (lambda: arena.rewind(cp), "cannot rewind to this checkpoint: 1 view")
    )
    _refused_running(call, refusal, [arena.checkpoint, arena.reset, lambda: arena.rewind(cp)])
    assert arena.used == used
    del kept
    arena.rewind(cp)
    assert arena.used == 0


@pytest.mark.parametrize("how", ["reset", "rewind", "refused reset"])
@pytest.mark.parametrize("cls", ALL_KINDS, ids=lambda c: c.__name__)
def test_a_reset_or_rewind_leaves_the_collector_on(cls: type, how: str) -> None:
    """The collector, off while a reset or rewind counts and frees, is on again after it,
    refused or not."""
    arena = make(cls)
    cp = arena.checkpoint()
    kept = allocate(arena)
    assert gc.isenabled()
    if how == "reset":
        del kept
        arena.reset()
    elif how == "rewind":
        del kept
        arena.rewind(cp)
    else:
        with pytest.raises(BufferError):
            arena.reset()
    assert gc.isenabled()


def test_allocation_runs_no_count_while_no_memory_is_held(typed_cls: type) -> None:
    """Allocation stays cheap: while no memory is held, no allocation walks the arena's
    parts and watched arrays (that is for the counts of reset, rewind, close and
    live_views); nothing public tells, so the walk is counted."""
    arena: Any = typed_cls(_Node, 64)
    walks: list[int] = []
    walk = arena._settle

    def counted() -> Any:
        walks.append(1)
        return walk()

    arena._settle = counted
    array = arena.alloc_many(3)  # (watched: its type holds pointers)
    del array
    for k in range(40):  # (several windows)
        arena.alloc(v=k)
    assert arena.alloc_many(3) is not None
    assert arena.alloc_extend([_Node(1), _Node(2)]) is not None
    assert walks == []
    assert arena.live_views() == 0
    assert walks != []  # (a count does walk them)


@pytest.mark.parametrize("how", ["reset", "close", "rewind"])
def test_code_run_in_the_middle_of_a_refused_call_cannot_allocate(bump_cls: type, how: str) -> None:
    """No code run in the middle of a ``reset()``, ``close()`` or ``rewind()`` (a
    finalizer run by its collection) can allocate from the arena, by any method."""
    arena: Any = bump_cls(256)
    cp = arena.checkpoint()
    views = [arena.alloc(ctypes.c_int64), arena.alloc_uninit_slice(linalloc.Layout(8))]
    used = arena.used
    call, refusal = {
        "reset": (arena.reset, "cannot reset: 2 views"),
        "close": (arena.close, "cannot close: 2 views"),
        "rewind": (lambda: arena.rewind(cp), "cannot rewind to this checkpoint: 2 views"),
    }[how]
    _refused_running(
        call,
        refusal,
        [
            lambda: arena.alloc_uninit_slice(linalloc.Layout(8)),
            lambda: arena.alloc_uninit_slice(linalloc.Layout(0)),
            lambda: arena.alloc(ctypes.c_int32),
            lambda: arena.alloc_array(ctypes.c_int64, 2),
            lambda: arena.alloc_copy(b"abc"),
            lambda: arena.grow(views[1], 16),
        ],
    )
    assert arena.used == used and not arena.closed
    views.clear()
    arena.rewind(cp)
    assert arena.used == 0


def test_close_drops_the_live_values_newest_first_and_raises_the_first_error(
    typed_cls: type,
) -> None:
    """Rule 3: ``close()`` drops the live values, newest first, before it returns;
    when a callback raises, the others still run and the first error is raised."""
    dropped: list[int] = []

    def drop(value: Any) -> None:
        dropped.append(value.value)
        if value.value in (2, 1):
            raise ValueError(f"cannot drop {value.value}")

    arena: Any = typed_cls(ctypes.c_int64, 8, drop=drop)
    for k in (1, 2, 3):
        arena.alloc(k)
    with pytest.raises(ValueError, match="^cannot drop 2$"):
        arena.close()
    assert dropped == [3, 2, 1]
    assert arena.closed


def test_a_drop_callback_that_allocates_is_refused_before_its_items_are_read(
    typed_cls: type,
) -> None:
    """Rule 6 in a drop callback: allocating from the arena being dropped from is
    refused (RuntimeError) before anything is read from the items or converted."""
    read: list[int] = []
    seen: list[object] = []
    arenas: list[Any] = []

    def items() -> Any:
        for k in (5, 6):
            read.append(k)
            yield k

    def drop(value: Any) -> None:
        seen.append(_outcome(lambda: arenas[0].alloc_extend(items())))

    arena: Any = typed_cls(ctypes.c_int64, 8, drop=drop)
    arenas.append(arena)
    arena.alloc(1)
    arena.reset()
    assert len(seen) == 1 and isinstance(seen[0], RuntimeError) and str(seen[0]) == BUSY
    assert read == []
    assert len(arena) == 0
