"""Calls that re-enter an arena from the middle of another of its calls, and calls
whose own arguments run code (``__index__``, an iterator) that changes the arena.

Code can run in the middle of an arena method: a finalizer run by the
collector, a signal handler, a trace function. Each test here makes that code
run at every line the library executes during a call (a trace function stands
in for the signal handler: it fires at a chosen line event), deterministically,
and checks that no slot or byte is ever handed out twice, that rejected calls
change nothing (rule 6), and that the arena is left usable.
"""

from __future__ import annotations

import ctypes
import gc
import inspect
import os
import sys
from typing import Any, Callable

import pytest
from conftest import UNDER_MUTATION, frozen_heap, run_python

import linalloc
from linalloc import Layout

LIBRARY = os.path.dirname(os.path.abspath(linalloc.__file__))

# The sweeps re-enter the arena at every line of the library. Under mutation testing
# mutmut's stats recording, re-entered from the trace function, crashes the
# interpreter (not the library: the same sweep passes on the mutated code without
# that recording), and each sweep takes half a minute: they are left out there.
not_under_mutation = pytest.mark.skipif(UNDER_MUTATION, reason="re-entry sweep: not under mutmut")


def _lines_between(func: Any, first: str, last: str) -> set[tuple[Any, int]]:
    source, start = inspect.getsourcelines(func)
    lo = next(i for i, text in enumerate(source) if first in text)
    hi = next(i for i, text in enumerate(source) if last in text and i > lo)
    return {(func.__code__, start + i) for i in range(lo + 1, hi + 1)}


#: Lines no re-entry is made at: ``alloc_uninit_slice``'s bump reads ``used``
#: and stores it back a few lines later, with nothing a signal handler can run
#: at in between (no call: CPython checks for signals at calls and jumps back),
#: but a trace function runs at each line. A check there would cost the hot
#: path; trace functions that allocate from the arena they trace are not
#: supported there.
NOT_REENTERED = _lines_between(
    linalloc.BumpArena.alloc_uninit_slice, "used = self._used", "self._used = end"
)

#: What a re-entering call may rightly raise: refused while the arena is busy
#: (RuntimeError), refused while a view lives (BufferError).
REFUSED = (RuntimeError, BufferError)


#: Whether a code object is the library's (a cache: the tracer asks at every call).
_IN_LIBRARY: dict[Any, bool] = {}


def _in_library(code: Any) -> bool:
    known = _IN_LIBRARY.get(code)
    if known is None:
        known = _IN_LIBRARY[code] = code.co_filename.startswith(LIBRARY)
    return known


def at_line(n: int, action: Callable[[], object]) -> tuple[Any, list[object]]:
    """A trace function that runs ``action`` at the ``n``-th line event of the library.

    Returns it and a list that gets ``action()``'s result (or the exception it
    raised) once it has run. Only the library's frames are traced line by line,
    and once ``action`` has run nothing is traced any more: the rest of the call
    runs at full speed, so a sweep's run at line n costs n line events, not all.
    """
    fired: list[object] = []
    seen = [0]

    def line_tracer(frame: Any, event: str, arg: object) -> Any:
        if event != "line" or (frame.f_code, frame.f_lineno) in NOT_REENTERED:
            return line_tracer
        seen[0] += 1
        if seen[0] != n:
            return line_tracer
        try:
            fired.append(action())
        except REFUSED as exc:
            fired.append(exc)
        # Done: no more events, in this frame, the frames below it, or new ones.
        sys.settrace(None)
        caller = frame
        while caller is not None:
            caller.f_trace = None
            caller = caller.f_back
        return None

    def tracer(frame: Any, event: str, arg: object) -> Any:
        # (called at each new frame: only the library's are traced line by line)
        return line_tracer if _in_library(frame.f_code) else None

    return tracer, fired


def traced(tracer: Any, call: Callable[[], object]) -> object:
    """``call()`` under ``tracer``; what it returned, or the refusal it raised."""
    sys.settrace(tracer)
    try:
        return call()
    except REFUSED as exc:
        return exc
    finally:
        sys.settrace(None)


def spans(objects: list[object]) -> list[tuple[int, int]]:
    """The memory (start, end) of each arena object in ``objects`` (others are skipped)."""
    found = []
    for obj in objects:
        if isinstance(obj, memoryview):
            if obj.nbytes:
                start = linalloc.address(obj)
                found.append((start, start + obj.nbytes))
        elif isinstance(obj, ctypes._SimpleCData.__mro__[1]) and ctypes.sizeof(obj):  # _CData
            start = ctypes.addressof(obj)
            found.append((start, start + ctypes.sizeof(obj)))
    return found


def assert_disjoint(objects: list[object]) -> None:
    ranges = sorted(spans(objects))
    for (_, end), (start, _) in zip(ranges, ranges[1:]):
        assert end <= start, f"memory handed out twice: {ranges}"


def sweep(
    setup: Callable[[], tuple[Any, list[object]]],
    call: Callable[[Any], object],
    reenter: Callable[[Any], object],
    fresh: Callable[[Any], list[object]],
) -> int:
    """For every line n the library runs during ``call``: re-enter there, then check.

    ``setup()`` -> (arena, the objects it holds). ``reenter(arena)`` runs at
    line n; ``fresh(arena)`` allocates afterwards. Everything held, the
    re-entering call's result and the fresh allocations must be disjoint.
    Returns the number of lines swept. (In ``frozen_heap()``: a collection the
    library runs walks the arenas made here, not the whole test session.)
    """
    n = 1
    with frozen_heap():
        while True:
            arena, held = setup()
            tracer, fired = at_line(n, lambda arena=arena: reenter(arena))
            result = traced(tracer, lambda arena=arena: call(arena))
            objects = [*held, result, *fired]
            try:
                objects += fresh(arena)
            except BufferError:
                # Memory held: the re-entering call's error keeps the frame it
                # was raised over, and what that frame held. Gone with the
                # error, the memory is handed out again, never twice.
                assert_disjoint(objects)
                objects = [*held]
                fired.clear()
                result = None
                gc.collect()
                objects += fresh(arena)
            assert_disjoint(objects)
            if not fired:
                return n
            del arena, held, objects, result, fired, tracer
            n += 1


# -- 1. a call re-entered while it closes the window ---------------------------


def _typed_setup(typed_cls: type, drop: bool) -> Callable[[], tuple[Any, list[object]]]:
    def setup() -> tuple[Any, list[object]]:
        arena = typed_cls(ctypes.c_int64, 64, drop=(lambda v: None) if drop else None)
        first = arena.alloc(1)
        arena.alloc(2)  # (not held: the window stays open)
        arena.checkpoint()
        return arena, [first]

    return setup


def _typed_fresh(arena: Any) -> list[object]:
    return [arena.alloc(9), arena.alloc(10)]


TYPED_CALLS: dict[str, Callable[[Any], object]] = {
    "checkpoint": lambda arena: arena.checkpoint(),
    "rewind": lambda arena: arena.rewind(arena.checkpoint()),
    "reset": lambda arena: arena.reset(),
    "alloc_many": lambda arena: arena.alloc_many(2),
    "alloc_extend": lambda arena: arena.alloc_extend([3, 4]),
    "alloc_raw": lambda arena: arena.alloc_raw(5),
    "alloc": lambda arena: arena.alloc(6),
}


@not_under_mutation
@pytest.mark.parametrize("drop", [False, True], ids=["batched", "drop"])
@pytest.mark.parametrize("name", sorted(TYPED_CALLS))
def test_typed_call_reentered_by_alloc_never_aliases(
    typed_cls: type, name: str, drop: bool
) -> None:
    """A finalizer or signal handler allocating at any line of a call: no slot twice.

    (``_close_window`` read the count, then ``_restart`` built the window:
    an allocation in between got slot k, and the restart handed it out again.)
    """
    lines = sweep(
        _typed_setup(typed_cls, drop), TYPED_CALLS[name], lambda a: a.alloc(7), _typed_fresh
    )
    assert lines > 3


@not_under_mutation
@pytest.mark.parametrize("drop", [False, True], ids=["batched", "drop"])
def test_typed_alloc_reentered_by_checkpoint_never_aliases(typed_cls: type, drop: bool) -> None:
    """A checkpoint between ``take = self._take`` and ``take()`` in ``alloc()``."""
    lines = sweep(
        _typed_setup(typed_cls, drop),
        lambda arena: arena.alloc(6),
        lambda arena: arena.checkpoint(),
        _typed_fresh,
    )
    assert lines > 1


def _bump_setup(bump_cls: type, hold: bool) -> Callable[[], tuple[Any, list[object]]]:
    def setup() -> tuple[Any, list[object]]:
        arena = bump_cls(4096)
        first = arena.alloc(ctypes.c_int64)
        for _ in range(3):
            arena.alloc(ctypes.c_int64)  # (not held: a window of several is open)
        return arena, [first] if hold else []

    return setup


def _bump_fresh(arena: Any) -> list[object]:
    return [
        arena.alloc(ctypes.c_int64),
        arena.alloc(ctypes.c_int64),
        arena.alloc_uninit_slice(Layout(8)),
        arena.alloc(ctypes.c_int64),
        arena.alloc_uninit_slice(Layout(256)),
    ]


BUMP_CALLS: dict[str, Callable[[Any], object]] = {
    "checkpoint": lambda arena: arena.checkpoint(),
    "rewind": lambda arena: arena.rewind(arena.checkpoint()),
    "reset": lambda arena: arena.reset(),
    "alloc_uninit_slice": lambda arena: arena.alloc_uninit_slice(Layout(16)),
    "alloc_array": lambda arena: arena.alloc_array(ctypes.c_int32, 3),
    "alloc_copy": lambda arena: arena.alloc_copy(b"abcdef"),
    "alloc": lambda arena: arena.alloc(ctypes.c_int64),
    "alloc_other": lambda arena: arena.alloc(ctypes.c_int16),
}

BUMP_REENTRIES: dict[str, Callable[[Any], object]] = {
    "alloc": lambda arena: arena.alloc(ctypes.c_int64),
    "slice": lambda arena: arena.alloc_uninit_slice(Layout(8)),
}


@not_under_mutation
@pytest.mark.parametrize("reentry", sorted(BUMP_REENTRIES))
@pytest.mark.parametrize("name", sorted(BUMP_CALLS))
def test_bump_call_reentered_by_alloc_never_aliases(
    bump_cls: type, name: str, reentry: str
) -> None:
    """The same for the untyped arenas (``_close_window`` gave the window back in
    two steps before ``_begin``: an allocation in between was handed out again)."""
    lines = sweep(
        _bump_setup(bump_cls, True), BUMP_CALLS[name], BUMP_REENTRIES[reentry], _bump_fresh
    )
    assert lines > 3


@not_under_mutation
@pytest.mark.parametrize("name", ["alloc_uninit_slice", "alloc_array", "alloc_copy", "alloc"])
def test_bump_allocation_reentered_by_reset_never_aliases(bump_cls: type, name: str) -> None:
    """A reset between the bump and the making of the view: refused, or nothing aliases.

    (``alloc_uninit_slice`` stored ``used``, then made the view: a reset in
    between found no view and freed the memory the view was then made over.)
    """

    def reset(arena: Any) -> None:
        arena.reset()

    lines = sweep(_bump_setup(bump_cls, False), BUMP_CALLS[name], reset, _bump_fresh)
    assert lines > 1


def test_finalizer_during_checkpoint_cannot_take_a_slot_twice(
    typed_cls: type, frozen: None
) -> None:
    """The attack as it came: a finalizer run by the collector inside ``checkpoint()``.

    (``frozen``: the full collections here walk what the test makes, not the session.)
    """
    import gc

    for threshold in range(1, 40):
        arena = typed_cls(ctypes.c_int64, 64, drop=lambda v: None)
        keep = arena.alloc(1)
        arena.alloc(2)
        got: list[object] = []

        class Finalizer:
            def __del__(self, arena: Any = arena, got: list[object] = got) -> None:
                try:
                    got.append(arena.alloc(5))
                except RuntimeError as exc:
                    got.append(exc)

        gc.collect()
        finalizer = Finalizer()
        finalizer.self = finalizer  # type: ignore[attr-defined]
        del finalizer
        old = gc.get_threshold()
        gc.set_threshold(threshold, 1000, 1000)
        try:
            arena.checkpoint()
        finally:
            gc.set_threshold(*old)
        gc.collect()
        assert_disjoint([keep, *got, arena.alloc(9), arena.alloc(10)])


# -- 2, 3. a value whose second conversion raises ----------------------------


class Lying:
    """Converts the first time, raises the next (``__index__`` runs once per store)."""

    def __init__(self, value: int) -> None:
        self.value = value
        self.calls = 0

    def __index__(self) -> int:
        self.calls += 1
        if self.calls > 1:
            raise TypeError("changed my mind")
        return self.value


def _state(arena: Any) -> tuple[int, int]:
    return len(arena), getattr(arena, "committed", 0)


def _fill_one_step(arena: Any) -> list[object]:
    """Allocate up to the end of what is committed (lazy) or a few values (eager)."""
    step = getattr(arena, "commit_step", 64) // 8
    values = [arena.alloc(n) for n in range(step)]
    assert all(v is not None for v in values)
    return values


def test_alloc_extend_is_all_or_nothing_when_storing_raises(typed_cls: type) -> None:
    arena = typed_cls(ctypes.c_int64, 1 << 16)
    values = _fill_one_step(arena)
    before = _state(arena)
    with pytest.raises(TypeError, match="changed my mind"):
        arena.alloc_extend([1, 2, Lying(3), 4])
    assert _state(arena) == before
    extended = arena.alloc_extend([7, 8])
    assert list(extended) == [7, 8]
    assert ctypes.addressof(extended) == ctypes.addressof(values[-1]) + 8
    assert len(arena) == before[0] + 2
    del extended, values
    arena.reset()  # (the traceback of the error kept no view)


def test_alloc_raw_changes_nothing_when_storing_raises(typed_cls: type) -> None:
    arena = typed_cls(ctypes.c_int64, 1 << 16)
    values = _fill_one_step(arena)  # the next value needs a new commit (lazy)
    before = _state(arena)
    with pytest.raises(TypeError, match="changed my mind"):
        arena.alloc_raw(Lying(5))
    assert _state(arena) == before
    value = arena.alloc_raw(6)
    assert value.value == 6
    assert ctypes.addressof(value) == ctypes.addressof(values[-1]) + 8
    del value, values
    arena.reset()


# -- 4. the arena closed by the caller's own code -----------------------------


def test_alloc_many_closed_by_index_raises_value_error(typed_cls: type) -> None:
    arena = typed_cls(ctypes.c_int64, 8)

    class Closing:
        def __index__(self) -> int:
            arena.close()
            return 2

    with pytest.raises(ValueError, match="arena is closed"):
        arena.alloc_many(Closing())  # type: ignore[arg-type]
    assert arena.closed


def test_alloc_extend_closed_by_iterator_raises_value_error(typed_cls: type) -> None:
    arena = typed_cls(ctypes.c_int64, 8)

    def items() -> Any:
        yield 1
        arena.close()
        yield 2

    with pytest.raises(ValueError, match="arena is closed"):
        arena.alloc_extend(items())
    assert arena.closed


# -- 5. a KeyboardInterrupt inside _begin -------------------------------------


TYPED_BUSY_CALLS: dict[str, Callable[[Any], object]] = {
    "checkpoint": lambda arena: arena.checkpoint(),
    "alloc_raw": lambda arena: arena.alloc_raw(1),
    "alloc_many": lambda arena: arena.alloc_many(2),
    "reset": lambda arena: arena.reset(),
}
BUMP_BUSY_CALLS: dict[str, Callable[[Any], object]] = {
    "checkpoint": lambda arena: arena.checkpoint(),
    "alloc": lambda arena: arena.alloc(ctypes.c_int64),
    "alloc_array": lambda arena: arena.alloc_array(ctypes.c_int8, 3),
    "reset": lambda arena: arena.reset(),
}


def _interrupt_in_begin(arena: Any, call: Callable[[Any], object]) -> None:
    """Raise KeyboardInterrupt at each line of ``ArenaBase._begin`` during ``call``;
    while the interrupt (and its traceback) is held, the arena must not be busy."""
    begin = linalloc._arena.ArenaBase._begin.__code__
    for line in range(begin.co_firstlineno, begin.co_firstlineno + 40):

        def tracer(frame: Any, event: str, arg: object, line: int = line) -> Any:
            if frame.f_code is begin and event == "line" and frame.f_lineno == line:
                raise KeyboardInterrupt
            return tracer

        sys.settrace(tracer)
        try:
            call(arena)
        except KeyboardInterrupt as exc:
            sys.settrace(None)
            held = exc
            arena.checkpoint()  # RuntimeError ("busy") if the token were left marked
            del held
        finally:
            sys.settrace(None)


@pytest.mark.parametrize("name", sorted(TYPED_BUSY_CALLS))
def test_typed_interrupt_in_begin_leaves_arena_usable(typed_cls: type, name: str) -> None:
    arena = typed_cls(ctypes.c_int64, 1 << 12)
    _interrupt_in_begin(arena, TYPED_BUSY_CALLS[name])


@pytest.mark.parametrize("name", sorted(BUMP_BUSY_CALLS))
def test_bump_interrupt_in_begin_leaves_arena_usable(bump_cls: type, name: str) -> None:
    arena = bump_cls(1 << 12)
    _interrupt_in_begin(arena, BUMP_BUSY_CALLS[name])


def test_interrupted_slow_path_inside_scope_still_rewinds(bump_cls: type) -> None:
    """The attack as it came: the scope's exit sees the interrupt's traceback alive."""
    begin = linalloc._arena.ArenaBase._begin.__code__
    arena = bump_cls(256)

    def tracer(frame: Any, event: str, arg: object) -> Any:
        if frame.f_code is begin and event == "return":
            raise KeyboardInterrupt
        return tracer

    with pytest.raises(KeyboardInterrupt):
        with arena.scope():
            scratch = arena.alloc_copy(b"x" * 16)
            del scratch
            sys.settrace(tracer)
            try:
                arena.alloc(ctypes.c_int64)
            finally:
                sys.settrace(None)
    assert arena.used == 0


# -- 6. a constructor that takes a checkpoint, then raises ------------------


def test_constructor_checkpoint_then_failure_keeps_len(typed_cls: type) -> None:
    saved: dict[str, Any] = {}
    dropped: list[int] = []

    class S(ctypes.Structure):
        _fields_ = [("x", ctypes.c_int64)]

        def __init__(self, *args: Any) -> None:
            if args and args[0] == -1:
                saved["cp"] = arena.checkpoint()
                raise ValueError("the constructor fails after taking a checkpoint")
            super().__init__(*args)

    arena = typed_cls(S, 8, drop=lambda v: dropped.append(v.x))
    keep = arena.alloc(1)
    del keep
    with pytest.raises(ValueError):
        arena.alloc(-1)
    before = len(arena)
    arena.rewind(saved["cp"])
    assert len(arena) == before  # no slot that was never handed out becomes live
    second = arena.alloc(2)
    assert second.x == 2
    del second
    arena.reset()
    assert sorted(dropped) == [1, 2]  # the failed slot is never dropped


# -- 9. pointers stored through an array that alloc_many/as_array returned ----


class Target(ctypes.Structure):
    _fields_ = [("payload", ctypes.c_int64 * 4)]


class Node(ctypes.Structure):
    _fields_ = [("n", ctypes.c_int64), ("p", ctypes.POINTER(Target))]


class Outer(ctypes.Structure):
    _fields_ = [("tag", ctypes.c_int64), ("inner", Node * 2)]


def _array_of(arena: Any, how: str) -> Any:
    if how == "alloc_many":
        arena.alloc()
        return arena.alloc_many(2)
    if how == "alloc_extend":
        return arena.alloc_extend([(1, None), (2, None)])
    arena.alloc()
    arena.alloc()
    return arena.as_array()


@pytest.mark.parametrize("cycle", [False, True], ids=["dropped", "in_a_cycle"])
@pytest.mark.parametrize("how", ["alloc_many", "alloc_extend", "as_array"])
def test_pointer_stored_through_array_outlives_the_array(
    typed_cls: type, how: str, cycle: bool
) -> None:
    import gc
    import weakref

    arena = typed_cls(Node, 8)
    array = _array_of(arena, how)
    target = Target()
    target.payload[3] = 77
    array[-1].p = ctypes.pointer(target)
    gone = weakref.ref(target)
    if cycle:  # (the collector frees the array)
        box: list[object] = [array]
        box.append(box)
        del box
    del target, array
    gc.collect()
    assert gone() is not None  # the value in the arena still points at it
    assert arena.live_views() == 0
    value = list(arena)[-1]
    assert value.p.contents.payload[3] == 77
    del value
    arena.reset()  # the values are freed: so is what they kept
    gc.collect()
    assert gone() is None


def test_nested_pointer_through_array_goes_to_its_slot(typed_cls: type) -> None:
    import gc
    import weakref

    arena = typed_cls(Outer, 8)
    arena.alloc()
    cp = arena.checkpoint()
    arena.alloc()
    array = arena.as_array()  # spans both regions
    first, second = Target(), Target()
    array[0].inner[1].p = ctypes.pointer(first)
    array[1].inner[0].p = ctypes.pointer(second)
    kept = weakref.ref(first), weakref.ref(second)
    del first, second, array
    gc.collect()
    assert all(k() is not None for k in kept)
    arena.rewind(cp)  # frees the second value, and what it kept
    gc.collect()
    assert kept[0]() is not None and kept[1]() is None
    assert next(iter(arena)).inner[1].p.contents.payload[0] == 0


def test_pointer_through_dead_array_never_dangles(typed_cls: type) -> None:
    """In a fresh interpreter: the target freed and reused would crash the write."""
    result = run_python(
        f"""
        import ctypes, gc, linalloc
        BIG = ctypes.c_char * (1 << 22)
        class Node(ctypes.Structure):
            _fields_ = [("n", ctypes.c_int64), ("p", ctypes.POINTER(BIG))]
        for how in ("many", "as_array"):
            arena = linalloc.{typed_cls.__name__}(Node, 8)
            if how == "many":
                arr = arena.alloc_many(2)
            else:
                arena.alloc(); arena.alloc()
                arr = arena.as_array()
            arr[0].p = ctypes.pointer(BIG())
            del arr
            gc.collect()
            junk = [bytes(1 << 22) for _ in range(4)]
            v = next(iter(arena))
            v.p.contents[0] = b"Z"
            v.p.contents[(1 << 22) - 1] = b"Z"
            del v, junk
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
