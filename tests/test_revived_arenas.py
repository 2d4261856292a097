"""Arenas brought back to life at collection time: an object in a collected cycle
whose ``__del__`` keeps the cycle (an arena's owner, say) runs after the finalizers of
the rest of the cycle, the lazy arena's reservation included. The address space is
released when the reservation is freed, never while a revived arena can use it."""

from __future__ import annotations

import ctypes
import gc
import inspect
import sys
import textwrap
import threading
from collections.abc import Callable
from typing import Any

import pytest
from conftest import UNDER_MUTATION, run_python
from test_store_rules2 import RECORDING_VM
from test_store_rules3 import _NoMemoryVM

from linalloc import _release, _slots
from linalloc._store import Reservation

_REVIVED_CHILD = (
    RECORDING_VM
    + """

vm = RecordingVM()
linalloc._vm.get = lambda: vm
saved = []


def sizes():
    return [size for _, size in vm.releases]


class Owner:
    def __init__(self):
        self.cycle = self
        self.arena = linalloc.{kind}({args})

    def __del__(self):
        saved.append(self)  # brings itself, and so its arena, back to life


def alloc(arena, k):
    if isinstance(arena, linalloc.BumpArenaLazy):
        value = arena.alloc(ctypes.c_int64)
        value.value = k
        return value
    return arena.alloc(k)


owner = Owner()
first = alloc(owner.arena, 1).value
del owner
gc.collect()
arena = saved[0].arena
print(first, sizes(), flush=True)
values = [alloc(arena, k) for k in range(2, 2000)]  # (past the first commit step)
print(sum(value.value for value in values), sizes(), flush=True)
del values, arena
saved.clear()
gc.collect()
print(sizes(), flush=True)
"""
)


@pytest.mark.parametrize(
    "kind, args",
    [("BumpArenaLazy", "1 << 20"), ("TypedArenaLazy", "ctypes.c_int64, 1 << 17")],
)
def test_a_lazy_arena_revived_at_collection_keeps_its_memory_until_freed(
    kind: str, args: str
) -> None:
    """Crash test: the revived arena allocates, writes and reads its memory (before,
    the reservation was released by its own finalizer in the same collection: the next
    allocation wrote to unmapped memory, SIGSEGV); released once it is freed."""
    proc = run_python(_REVIVED_CHILD.format(kind=kind, args=args))
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    size = 1 << 20
    assert proc.stdout == f"1 []\n{sum(range(2, 2000))} []\n[{size}]\n"


class _Reviver:
    """In a cycle with a reservation; finalized, it keeps the reservation in ``saved``."""

    def __init__(self, reservation: Reservation, saved: list[Any]) -> None:
        self.cycle = self
        self.reservation = reservation
        self.saved = saved

    def __del__(self) -> None:
        self.saved.append(self)


def test_a_reservation_finalized_but_brought_back_is_released_when_freed(
    frozen: None,
) -> None:
    vm = _NoMemoryVM()
    saved: list[Any] = []
    _Reviver(Reservation(vm, 1 << 16), saved)
    gc.collect()
    (reviver,) = saved
    assert vm.releases == []  # finalized in the cycle, but held again
    saved.clear()
    del reviver
    gc.collect()
    assert vm.releases == [(1 << 40, 1 << 16)]  # once freed; once only
    gc.collect()
    assert vm.releases == [(1 << 40, 1 << 16)]


def test_a_reservation_let_go_is_released_at_once(frozen: None) -> None:
    vm = _NoMemoryVM()
    reservation = Reservation(vm, 1 << 16)
    del reservation
    assert vm.releases == [(1 << 40, 1 << 16)]


# -- drop callbacks run at collection -----------------------------------------------


class _Owner:
    """Owns a typed arena whose drop callback is its own bound method (a cycle): the
    callback logs each value, runs ``action(self, value)`` and may revive the owner."""

    def __init__(self, kind: type, action: Any, revived: list[Any]) -> None:
        self.arena = kind(ctypes.c_int64, 16, drop=self.release)
        self.action = action
        self.revived = revived
        self.log: list[Any] = []

    def release(self, value: Any) -> None:
        self.log.append(value.value)
        self.action(self, value)

    def __del__(self) -> None:
        self.revived.append(self)


def _collected(kind: type, action: Any, values: tuple[int, ...] = (1, 2, 3)) -> Any:
    """An owner collected with ``values`` in its arena (a checkpoint after the first),
    then brought back by its ``__del__``; the callbacks ran ``action``."""
    revived: list[Any] = []
    owner = _Owner(kind, action, revived)
    owner.arena.alloc(values[0])
    owner.arena.checkpoint()
    for k in values[1:]:
        owner.arena.alloc(k)
    del owner
    gc.collect()
    (owner,) = revived
    return owner


def test_a_drop_callback_at_collection_gets_no_slot_from_its_arena(typed_cls: type) -> None:
    """No slot is handed out twice: the arena a callback allocates from while its values
    are dropped at collection hands out nothing (before, the slot of the value being
    dropped, which the callback keeps)."""
    kept: list[Any] = []

    def keep_and_alloc(owner: Any, value: Any) -> None:
        kept.append(value)
        kept.append(owner.arena.alloc(0))
        kept.append(owner.arena.alloc_raw(0))

    owner = _collected(typed_cls, keep_and_alloc)
    assert kept[1::3] == [None, None, None]
    assert kept[2::3] == [None, None, None]
    assert [value.value for value in kept[0::3]] == [3, 2, 1]
    assert owner.arena.alloc(9) is None  # (revived: nothing either)
    assert [value.value for value in kept[0::3]] == [3, 2, 1]


@pytest.mark.parametrize("how", ["reset", "close"])
def test_a_drop_callback_at_collection_that_resets_its_arena_drops_each_value_once(
    typed_cls: type, how: str
) -> None:
    """The values dropped at collection are not the arena's any more: a reset() or
    close() a callback runs drops none of them (before, those below were dropped
    twice)."""

    def reset_first(owner: Any, value: Any) -> None:
        if len(owner.log) == 1:
            getattr(owner.arena, how)()
            owner.log.append(how)

    owner = _collected(typed_cls, reset_first)
    assert owner.log == [3, how, 2, 1]
    assert len(owner.arena) == 0 if how == "reset" else owner.arena.closed


def _interrupt(kind: type[BaseException]) -> Any:
    def action(owner: Any, value: Any) -> None:
        if value.value == 1:
            raise kind

    return action


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit, ValueError])
def test_an_arena_revived_after_a_callback_raised_at_collection_hands_out_nothing(
    typed_cls: type, error: type[BaseException], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the last callback raises (before, a ``KeyboardInterrupt`` left the
    arena with its checkpoints' regions: it handed out slot 0 again, iterated it twice
    and accepted a rewind while that value lived)."""
    raised: list[type[BaseException]] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: raised.append(u.exc_type))
    owner = _collected(typed_cls, _interrupt(error))
    assert owner.log == [3, 2, 1]
    assert raised == [error]
    arena = owner.arena
    checkpoint = arena.checkpoint()
    assert arena.alloc(5) is None
    assert list(arena) == []
    assert len(arena) == 0
    arena.rewind(checkpoint)
    assert arena.alloc(7) is None


def _interrupting(code: Any, event_wanted: str, line: int) -> Any:
    """A trace function that raises ``KeyboardInterrupt`` once in ``code``: at the
    ``line`` event of that line, or at its ``return`` event."""
    fired: list[bool] = []

    def local(frame: Any, event: str, arg: Any) -> Any:
        if not fired and (
            (event == event_wanted == "line" and frame.f_lineno == line)
            or (event == event_wanted == "return")
        ):
            fired.append(True)
            raise KeyboardInterrupt
        return local

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        return local if frame.f_code is code else None

    tracer.fired = fired  # type: ignore[attr-defined]
    return tracer


_RELEASE_CODE = _release._releasing(None, 0, 0).__code__  # (the token's callback)
_COLLECTION_CODE = _release._collection.__code__


def _lines(code: Any) -> list[int]:
    """The lines of ``code`` but its first; none under mutmut (whose trampolines run the
    library's functions from other code objects: the tests over them do not run)."""
    if UNDER_MUTATION:
        return []
    return sorted({n for _, _, n in code.co_lines() if n is not None} - {code.co_firstlineno})


_RETURN: list[tuple[str, int]] = [] if UNDER_MUTATION else [("return", 0)]


def _events(code: Any, lines: list[int] | None = None) -> tuple[list[tuple[str, int]], list[str]]:
    """Parameters and ids: each line of ``code`` (or those given), then its return."""
    lines = _lines(code) if lines is None else lines
    ids = [f"line+{n - code.co_firstlineno}" for n in lines] + [e for e, _ in _RETURN]
    return [("line", n) for n in lines] + _RETURN, ids


class _Cycle:
    """A reservation in a cycle that only the collector frees."""

    def __init__(self, reservation: Reservation) -> None:
        self.cycle = self
        self.reservation = reservation


def _traced_collection(code: Any, event: str, line: int) -> Any:
    tracer = _interrupting(code, event, line)
    sys.settrace(tracer)
    try:
        gc.collect()
    finally:
        sys.settrace(None)
    return tracer


def _reached(code: Any, scenario: Callable[[], object]) -> list[int]:
    """The lines of ``code`` that ``scenario()`` runs."""
    seen: set[int] = set()

    def local(frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            seen.add(frame.f_lineno)
        return local

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        return local if frame.f_code is code else None

    sys.settrace(tracer)
    try:
        scenario()
    finally:
        sys.settrace(None)
    return sorted(seen)


def _collected_cycle() -> None:
    _Cycle(Reservation(_NoMemoryVM(), 1 << 16))
    gc.collect()


_RELEASE_EVENTS, _RELEASE_IDS = _events(_RELEASE_CODE)
_COLLECTION_EVENTS, _COLLECTION_IDS = _events(
    _COLLECTION_CODE, [] if UNDER_MUTATION else _reached(_COLLECTION_CODE, _collected_cycle)
)


@pytest.mark.parametrize("event, line", _RELEASE_EVENTS, ids=_RELEASE_IDS)
def test_an_interrupt_anywhere_in_a_release_releases_once_at_most(
    event: str, line: int, frozen: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal at any line of the release of a reservation (its weak reference's
    callback; the error is reported as unraisable), freed by the collector or, for the
    lines only that runs, by its last reference going: released once, at the end of
    that collection or at once, or never (a leak)."""
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: None)
    vm = _NoMemoryVM()
    _Cycle(Reservation(vm, 1 << 16))
    tracer = _traced_collection(_RELEASE_CODE, event, line)
    if not tracer.fired:  # (a line of the release made at once)
        reservation = Reservation(vm, 1 << 16)
        tracer = _interrupting(_RELEASE_CODE, event, line)
        sys.settrace(tracer)
        try:
            del reservation
        finally:
            sys.settrace(None)
    assert tracer.fired == [True]
    gc.collect()
    assert vm.releases in ([], [(1 << 40, 1 << 16)])  # (a leak at worst)
    assert all(entry[0] is not vm for entry in _release._AT_END)


@pytest.mark.parametrize("event, line", _COLLECTION_EVENTS, ids=_COLLECTION_IDS)
def test_an_interrupt_anywhere_at_the_end_of_a_collection_releases_once_at_most(
    event: str, line: int, frozen: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal at any line of the callback that makes the releases due at the end of a
    collection: each is made once, then or at the end of a later collection, or leaks
    when the signal lands between taking it off the list and making it."""
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: None)
    vm = _NoMemoryVM()
    _Cycle(Reservation(vm, 1 << 16))
    tracer = _traced_collection(_COLLECTION_CODE, event, line)
    assert tracer.fired == [True]
    gc.collect()
    assert vm.releases in ([], [(1 << 40, 1 << 16)])
    if vm.releases == []:  # (only between taking it off the list and releasing it)
        source, first = inspect.getsourcelines(_release._collection)
        assert event == "line" and "vm.release(" in source[line - first]
    assert all(entry[0] is not vm for entry in _release._AT_END)


def test_a_reservation_collected_in_a_cycle_is_released_by_the_end_of_that_collection(
    frozen: None,
) -> None:
    vm = _NoMemoryVM()
    _Cycle(Reservation(vm, 1 << 16))
    assert vm.releases == []
    gc.collect()
    assert vm.releases == [(1 << 40, 1 << 16)]
    assert _release._AT_END == []
    gc.collect()
    assert vm.releases == [(1 << 40, 1 << 16)]


def test_a_reservation_token_is_never_part_of_a_collected_cycle() -> None:
    """The release hangs on a weak reference to an object the collector does not track:
    a collected cycle would clear the reference and run its callback before the cycle's
    finalizers, which can bring the arena back to life (a new Python may track code
    objects: this test then fails, and the mechanism needs another token)."""
    reservation = Reservation(_NoMemoryVM(), 1 << 16)
    assert not gc.is_tracked(reservation.token)
    assert gc.get_referrers(reservation.token) == [reservation]  # (only it holds the token)


class _Revived:
    """In a cycle with a reservation; finalized, it brings itself back and breaks the cycle."""

    def __init__(self, reservation: Reservation, saved: list[Any]) -> None:
        self.cycle: _Revived | None = self
        self.reservation = reservation
        self.saved = saved

    def __del__(self) -> None:
        self.cycle = None
        self.saved.append(self)


def test_a_revived_reservation_let_go_later_is_released_at_once(frozen: None) -> None:
    """Brought back by a finalizer, then let go outside any collection: released at
    once, with the collector off (before, it waited for a collection)."""
    vm = _NoMemoryVM()
    saved: list[Any] = []
    _Revived(Reservation(vm, 1 << 16), saved)
    gc.collect()
    assert vm.releases == []
    gc.disable()
    try:
        saved.clear()
        assert vm.releases == [(1 << 40, 1 << 16)]
    finally:
        gc.enable()


def test_other_collection_callbacks_see_every_start_and_stop(frozen: None) -> None:
    events: list[str] = []

    def watch(phase: str, info: object) -> None:
        events.append(phase)

    gc.callbacks.append(watch)
    try:
        for _ in range(3):
            _Cycle(Reservation(_NoMemoryVM(), 1 << 16))
            gc.collect()
    finally:
        gc.callbacks.remove(watch)
    assert events == ["start", "stop"] * 3


def test_a_reservation_freed_while_the_collection_callback_was_taken_out_waits(
    frozen: None,
) -> None:
    """Code that puts ``gc.callbacks`` back as it was (a memory tracker, a test fixture)
    takes the library's callback out: a reservation freed then cannot know whether a
    collection runs, so its release waits for the end of the next one (the callback is
    put back first)."""
    vm = _NoMemoryVM()
    _Cycle(Reservation(vm, 1 << 16))
    saved = gc.callbacks[:]
    gc.callbacks[:] = [callback for callback in saved if callback is not _release._collection]
    try:
        gc.collect()  # (the cycle's reservation is freed in this collection)
        assert vm.releases == [(1 << 40, 1 << 16)]  # (back first before its end)
        assert gc.callbacks[0] is _release._collection
        gc.callbacks.remove(_release._collection)
        reservation = Reservation(vm, 1 << 16)
        gc.callbacks.remove(_release._collection)
        del reservation  # (outside any collection, but it cannot know)
        assert vm.releases == [(1 << 40, 1 << 16)]
        gc.collect()
        assert vm.releases == [(1 << 40, 1 << 16)] * 2
    finally:
        gc.callbacks[:] = [c for c in saved if c is not _release._collection]
        gc.callbacks.insert(0, _release._collection)


def test_a_child_forked_while_another_thread_collected_does_not_wait_for_it() -> None:
    """(The state a child inherits from a fork made in the middle of another thread's
    collection: that collection never ends in the child.)"""
    saved = _release._collecting, _release._collector
    try:
        _release._collecting, _release._collector = True, threading.get_ident() + 1
        _release._after_fork_in_child()
        assert _release._collecting is False
        _release._collecting, _release._collector = True, threading.get_ident()
        _release._after_fork_in_child()  # (forked by the collecting thread: it goes on)
        assert _release._collecting is True
    finally:
        _release._collecting, _release._collector = saved


_AT_EXIT_CHILD = (
    RECORDING_VM
    + """
import atexit

vm = RecordingVM()
linalloc._vm.get = lambda: vm


def work():  # registered before the first arena: runs after anything the library registers
    for _ in range(3):
        arena = linalloc.BumpArenaLazy(1 << 20)
        arena.alloc(ctypes.c_int64)
        del arena
    print(len(vm.releases), flush=True)


atexit.register(work)
linalloc.BumpArenaLazy(1 << 20)
"""
)


def test_arenas_made_and_freed_by_an_exit_handler_are_released() -> None:
    """Exit handlers run before the interpreter starts shutting down: releases are made
    at once there (before, every release waited for good from a handler on)."""
    proc = run_python(_AT_EXIT_CHILD)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    assert proc.stdout == "4\n"  # (the three, and the first: freed before exit)


def test_values_read_in_the_teardown_at_exit_of_a_first_arena_made_by_an_exit_handler() -> None:
    """Crash test: the first lazy arena made in an exit handler, its cycle left to the
    collections of the shutdown (an exit handler registered then would never run)."""
    body = _TEARDOWN_READ_CHILD.replace('gc.collect()\nprint("ok", flush=True)', "gc.disable()")
    child = "import atexit\n\ndef main():\n" + textwrap.indent(body, "    ")
    child += "\n\natexit.register(main)\n"
    proc = run_python(child)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    assert proc.stdout == "" and proc.stderr == ""


_COLLECTED_TWICE_CHILD = """
import ctypes, gc, linalloc

saved = []


class Reader:  # holds a value; reads it as the collector finalizes it
    def __init__(self, value):
        self.value = value

    def __del__(self):
        print("reads", self.value.value, flush=True)


class Owner:
    def __init__(self):
        self.cycle = self
        self.arena = linalloc.{kind}({args})
        self.kept = []

    def keep(self, value):
        self.kept.append(value)

    def ignore(self, value):
        pass

    def __del__(self):
        saved.append(self)  # brings itself, and its arena, back to life (once)


owner = Owner()
if isinstance(owner.arena, linalloc.BumpArenaLazy):
    owner.value = owner.arena.alloc(ctypes.c_int64)
    owner.value.value = 7
else:
    owner.value = owner.arena.alloc(7)
del owner
gc.collect()  # finalized, the reservation included; the owner brought back
owner = saved.pop()
owner.reader = Reader(owner.kept[0] if owner.kept else owner.value)
del owner
gc.collect()  # the same cycle, garbage again: the reader runs in its teardown
print("ok", flush=True)
"""


@pytest.mark.parametrize(
    "kind, args",
    [
        ("BumpArenaLazy", "1 << 16"),
        ("TypedArenaLazy", "ctypes.c_int64, 1024, drop=self.keep"),
        ("TypedArenaLazy", "ctypes.c_int64, 1024, drop=self.ignore"),
    ],
    ids=["bump", "typed-keeping", "typed"],
)
def test_an_arena_revived_then_collected_again_keeps_its_memory_for_the_teardown(
    kind: str, args: str
) -> None:
    """Crash test: a finalizer of the cycle reads a value when the revived arena is
    collected a second time (before, the release made at the first collection was
    itself finalized by the second, before the reader ran: SIGSEGV)."""
    proc = run_python(_COLLECTED_TWICE_CHILD.format(kind=kind, args=args))
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    assert proc.stdout == "reads 7\nok\n"


_TEARDOWN_READ_CHILD = """
import ctypes, gc, weakref
import linalloc


class S(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int64)]


refs = []


class Sentinel:  # freed while the collector clears a value: reads the others' memory
    def __del__(self, string_at=ctypes.string_at, addressof=ctypes.addressof):
        for ref in refs:  # (what it calls comes with it: at exit, names may be cleared)
            value = ref()
            if value is not None:
                string_at(addressof(value), 8)


arena = linalloc.BumpArenaLazy(1 << 20)
gc.collect()  # (the store and its reservation go to the oldest generation)


class Owner:
    def __init__(self, arena):
        self.cycle = self
        self.arena = arena
        self.values = [arena.alloc(S) for _ in range(20)]

    def __del__(self):
        for value in self.values:
            refs.append(weakref.ref(value))
            value.sentinel = Sentinel()


owner = Owner(arena)
del arena, owner
gc.collect()
print("ok", flush=True)
"""


def test_values_read_in_the_teardown_of_the_collection_at_exit_are_still_mapped() -> None:
    """Crash test: the same cycle left to the collection the interpreter makes as it
    shuts down, which calls no collection callback (the releases wait for ever then)."""
    child = _TEARDOWN_READ_CHILD.replace('gc.collect()\nprint("ok", flush=True)', "gc.disable()")
    assert child != _TEARDOWN_READ_CHILD
    proc = run_python(child)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    assert proc.stdout == "" and proc.stderr == ""


def test_the_collection_callback_stays_first(frozen: None) -> None:
    """A callback before it that removes itself at a collection's start would make the
    collector skip it: each new reservation puts it first again."""

    def once(phase: str, info: object) -> None:
        gc.callbacks.remove(once)

    gc.callbacks.insert(0, once)
    try:
        Reservation(_NoMemoryVM(), 1 << 16)
        assert gc.callbacks[0] is _release._collection
        assert gc.callbacks.count(_release._collection) == 1
    finally:
        if once in gc.callbacks:
            gc.callbacks.remove(once)


def test_values_read_while_the_collector_tears_their_cycle_down_are_still_mapped() -> None:
    """Crash test: weak references taken by a finalizer, read while the collector clears
    the values of the cycle (before, the reservation could be freed, and unmapped, by
    the clearing of its store while values were still to be cleared: SIGSEGV)."""
    proc = run_python(_TEARDOWN_READ_CHILD)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    assert proc.stdout == "ok\n"


def test_an_arena_revived_with_nothing_to_drop_hands_out_nothing(typed_cls: type) -> None:
    """Its drop callback will not run at its next collection (a finalizer runs once):
    what it handed out would never be dropped (before, it handed values out)."""
    revived: list[Any] = []
    owner = _Owner(typed_cls, lambda owner, value: None, revived)
    del owner
    gc.collect()
    (owner,) = revived
    assert owner.arena.alloc(1) is None
    assert owner.arena.alloc_extend([2]) is None
    assert owner.log == []
    owner.arena.close()


_DROPPER_DEL = _slots.Dropper.__del__.__code__
_DROPPER_LINES = _lines(_DROPPER_DEL)


@pytest.mark.parametrize(
    "line", _DROPPER_LINES, ids=[f"line+{n - _DROPPER_DEL.co_firstlineno}" for n in _DROPPER_LINES]
)
def test_an_interrupt_anywhere_in_the_collection_drops_never_hands_a_slot_out_twice(
    typed_cls: type, line: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``KeyboardInterrupt`` at any line of the dropper, the arena then revived by its
    owner: whatever it hands out afterwards is counted and never lies under a live value
    (before, an interrupt while the old window was being used up left it handing out
    slots it did not count; a window restarted later handed the same slot out again)."""
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: None)
    revived: list[Any] = []
    owner = _Owner(typed_cls, lambda owner, value: None, revived)
    for k in (1, 2, 3):
        owner.arena.alloc(k)
    del owner
    tracer = _interrupting(_DROPPER_DEL, "line", line)
    sys.settrace(tracer)
    try:
        gc.collect()
    finally:
        sys.settrace(None)
    (owner,) = revived
    arena = owner.arena
    values = [value for value in [arena.alloc(100), arena.alloc(101)] if value is not None]
    with arena.scope():  # (its exit restarts the window at the count)
        pass
    again = arena.alloc(200)
    live = values if again is None else [*values, again]
    assert len({ctypes.addressof(value) for value in live}) == len(live)
    assert [value.value for value in values] == [100, 101][: len(values)]
