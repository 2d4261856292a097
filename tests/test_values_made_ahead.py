"""Values made ahead for a window that outlive it keep their slots.

An arena makes the values of a window ahead of time and hands them out one by
one; a call that closes the window (``checkpoint()``, say) lets go of those not
handed out and gives their slots back. A value that outlives that (a
``__del__`` its class got after the window opened brings it back to life, or
``gc.get_objects()`` found it) keeps its slot, and the slots below it; so do
all of them when the death of any could run code (a finalizer, an attribute
set on a value found), which could bring any back to life unseen. Nothing is
handed out over memory a live object reads, and a slot a value found wrote to
is zeroed before it is handed out again.
"""

from __future__ import annotations

import ctypes
import functools
import gc
from collections.abc import Callable
from typing import Any

import pytest

import linalloc


def _node_type() -> Any:
    class Node(ctypes.Structure):
        _fields_ = [("v", ctypes.c_int64)]

    return Node


def _arena_and_maker(kind: str, ctype: Any) -> tuple[Any, Callable[[int], Any]]:
    """An arena whose window of ``ctype`` values is open, with values made ahead."""
    if kind.startswith("Typed"):
        arena = getattr(linalloc, kind)(ctype, 64)
        arena.alloc(v=1)  # opens a window: more values made ahead
        return arena, lambda v: arena.alloc(v=v)
    arena = getattr(linalloc, kind)(4096)

    def make(v: int) -> Any:
        value = arena.alloc(ctype)
        value.v = v
        return value

    for v in range(4):
        make(v)  # windows of one, two, then four values: three made ahead
    return arena, make


KINDS = ["TypedArena", "TypedArenaLazy", "BumpArena", "BumpArenaLazy"]


def _no_alias(kept: list[Any], fresh: list[Any]) -> None:
    """No value handed out since shares memory with a kept one; each kept one reads its own."""
    mine = {ctypes.addressof(k) for k in kept}
    assert mine.isdisjoint(ctypes.addressof(f) for f in fresh)
    for f in fresh:
        f.v = -1
    assert all(k.v != -1 for k in kept)


def _found_ahead(arena: Any, node: Any, kind: str) -> list[Any]:
    """The values made ahead for the open window, found with ``gc.get_objects()``,
    lowest address first (the order in which closing the window lets go of them)."""
    handed = {id(v) for v in arena} if kind.startswith("Typed") else set()
    found = [o for o in gc.get_objects() if type(o) is node and id(o) not in handed]
    return sorted(found, key=ctypes.addressof)


def _kept_through_a_checkpoint(arena: Any, make: Callable[[int], Any], found: list[Any]) -> None:
    """Values found are kept while a checkpoint closes the window: no value made since
    shares their memory; once they are gone, the arena resets."""
    assert found, "no value was made ahead"
    arena.checkpoint()
    fresh = [make(100 + i) for i in range(8)]
    _no_alias(found, fresh)
    del found[:], fresh
    gc.collect()
    arena.reset()


@pytest.mark.parametrize("kind", KINDS)
def test_a_finalizer_added_after_the_window_opened_keeps_the_values_it_revives(
    kind: str,
) -> None:
    node = _node_type()
    arena, make = _arena_and_maker(kind, node)
    revived: list[Any] = []
    node.__del__ = lambda self: revived.append(self)
    used = arena.used
    arena.checkpoint()  # closes the window: the values made ahead die, and come back
    assert revived, "no value was made ahead"
    assert arena.used >= used + len(revived) * ctypes.sizeof(node)  # (their slots stay used)
    fresh = [make(100 + i) for i in range(8)]
    _no_alias(revived, fresh)
    with pytest.raises(BufferError):
        arena.reset()  # (they are views)
    del node.__del__
    revived.clear()
    del fresh
    gc.collect()
    arena.reset()
    assert arena.used == 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_value_made_ahead_and_found_by_the_collector_keeps_its_slot(kind: str) -> None:
    node = _node_type()
    arena, make = _arena_and_maker(kind, node)
    _kept_through_a_checkpoint(arena, make, _found_ahead(arena, node, kind))


@pytest.mark.parametrize("kind", KINDS)
def test_values_freed_with_the_window_give_their_slots_back(kind: str) -> None:
    node = _node_type()
    arena, make = _arena_and_maker(kind, node)
    used = arena.used
    arena.checkpoint()
    assert arena.used == used  # (``used`` never counts values made ahead)
    value = make(3)
    assert ctypes.addressof(value) - ctypes.addressof(make(4)) == -ctypes.sizeof(node)
    assert arena.used == used + 2 * ctypes.sizeof(node)


@pytest.mark.parametrize("kind", KINDS)
def test_a_value_found_and_revived_by_a_cycle_collected_meanwhile_keeps_its_slot(
    kind: str,
) -> None:
    """The collector clears a weak reference before it runs the finalizers of a cycle:
    a value revived from a cycle would look freed. No slot is given back."""
    node = _node_type()
    arena, make = _arena_and_maker(kind, node)
    found = _found_ahead(arena, node, kind)
    assert len(found) > 1, "too few values made ahead"
    victim = found[0]
    victim.me = victim  # a cycle: only the collector frees it
    victim.tag = "victim"
    del found, victim
    revived: list[Any] = []
    collected: list[bool] = []

    def finalizer(self: Any) -> None:
        if self.__dict__.get("tag") == "victim":
            revived.append(self)
        elif not collected:
            collected.append(True)
            gc.collect()

    node.__del__ = finalizer
    try:
        arena.checkpoint()
        assert revived, "the value did not come back"
        fresh = [make(100 + i) for i in range(8)]
        _no_alias(revived, fresh)
    finally:
        del node.__del__
        revived.clear()


class Reviver:
    """Revives the value it hangs from when it is freed with it (in a cycle)."""

    kept: list[Any] = []

    def __init__(self, value: Any) -> None:
        self.value = value

    def __del__(self) -> None:
        self.kept.append(self.value)


class Collector:
    def __del__(self) -> None:
        gc.collect()


@pytest.mark.parametrize("kind", KINDS)
def test_values_found_with_finalizers_of_their_own_keep_their_slots(kind: str) -> None:
    """The type never gets a ``__del__``: objects hung on the values found run code."""
    node = _node_type()
    arena, make = _arena_and_maker(kind, node)
    found = _found_ahead(arena, node, kind)
    assert len(found) > 1, "too few values made ahead"
    victim = found[0]
    victim.reviver = Reviver(victim)  # a cycle, revived when the collector frees it
    found[-1].collector = Collector()  # (let go of after the victim)
    del found, victim
    try:
        arena.checkpoint()
        assert Reviver.kept, "the value did not come back"
        fresh = [make(100 + i) for i in range(8)]
        _no_alias(Reviver.kept, fresh)
    finally:
        Reviver.kept.clear()


@pytest.mark.parametrize("kind", ["TypedArena", "TypedArenaLazy"])
def test_a_slot_a_value_found_wrote_to_is_zeroed_before_it_is_handed_out(kind: str) -> None:
    class Target(ctypes.Structure):
        _fields_ = [("v", ctypes.c_int64)]

    class Holder(ctypes.Structure):
        _fields_ = [("p", ctypes.POINTER(Target)), ("n", ctypes.c_int64)]

    arena = getattr(linalloc, kind)(Holder, 64)
    first = arena.alloc()  # the window's other slots: made ahead
    found = [o for o in gc.get_objects() if type(o) is Holder and o is not first]
    assert found
    target = Target(42)
    for value in found:
        value.p = ctypes.pointer(target)
        value.n = 7
    del found, value, first
    arena.reset()  # (no view left: accepted)
    values = [arena.alloc() for _ in range(8)]
    assert all(not v.p and v.n == 0 for v in values)


def test_a_failed_value_revived_from_a_cycle_keeps_its_slot() -> None:
    """ctypes refuses the arguments; as the failed value dies, its ``__del__`` parks it
    in a cycle and arms the collector to run at the next allocation: the collector
    clears a weak reference to it, then the cycle's finalizer revives it."""
    armed = [True]

    class Phoenix(ctypes.Structure):
        _fields_ = [("v", ctypes.c_int64)]

        def __del__(self) -> None:
            if armed and armed.pop():
                self.reviver = Reviver(self)  # alive again, in a cycle
                gc.collect(0)
                gc.collect(0)  # (the cycle moves to an older generation...)
                gc.set_threshold(1, 1)  # (...collected at the next allocations)

    thresholds = gc.get_threshold()
    arena = linalloc.TypedArena(Phoenix, 16)
    first = arena.alloc(1)
    try:
        with pytest.raises(TypeError, match="too many initializers"):
            arena.alloc(1, 2, 3)
    finally:
        gc.set_threshold(*thresholds)
    try:
        assert Reviver.kept, "the failed value did not come back"
        other = arena.alloc(3)
        assert other is not None
        _no_alias(Reviver.kept, [other])
    finally:
        armed.clear()
        Reviver.kept.clear()
        del first


@pytest.mark.parametrize("kind", KINDS)
def test_a_type_without_instance_dicts_gives_slots_back_unless_held(kind: str) -> None:
    class Slotted(ctypes.Structure):
        __slots__ = ()
        _fields_ = [("v", ctypes.c_int64)]

    arena, make = _arena_and_maker(kind, Slotted)
    _kept_through_a_checkpoint(arena, make, _found_ahead(arena, Slotted, kind))


class Grabber:
    """Cyclic garbage whose finalizer, on its n-th run, keeps the object at ``address``
    (found with ``gc.get_objects()``); until then each run leaves a new one behind."""

    address: int | None = None
    kind: Any = None
    grab_at = 0
    runs = 0
    kept: list[Any] = []

    def __del__(self) -> None:
        cls = Grabber
        if cls.address is None:
            return
        cls.runs += 1
        if cls.runs == cls.grab_at:
            cls.kept.extend(
                o
                for o in gc.get_objects()
                if type(o) is cls.kind and ctypes.addressof(o) == cls.address
            )
        elif cls.runs < cls.grab_at:
            again = Grabber()
            again.me = again  # type: ignore[attr-defined]


@pytest.mark.usefixtures("frozen")  # (each attempt collects: not the whole session's heap)
@pytest.mark.parametrize("path", ["typed", "bump", "failed constructor"])
def test_a_collection_while_a_window_closes_cannot_take_a_value_given_back(path: str) -> None:
    """The collector runs at some allocation while the arena closes the window; the
    finalizer it runs takes a value made ahead. Swept over the collector's threshold,
    so that it lands anywhere: no slot is given back under a value taken."""
    node = _node_type()
    size = ctypes.sizeof(node)
    thresholds = gc.get_threshold()
    taken = 0
    try:
        tries = [(t, 1) for t in range(1, 17)] + [(2, n) for n in range(2, 17)]
        for threshold, grab_at in tries:
            Grabber.kept.clear()
            Grabber.runs, Grabber.grab_at, Grabber.kind = 0, grab_at, node
            if path == "bump":
                arena: Any = linalloc.BumpArena(4096)
                held = [arena.alloc(node) for _ in range(3)]  # windows of one, two
                first = arena.alloc(node)  # a window of four: three made ahead
                alloc = functools.partial(arena.alloc, node)
            else:
                arena = linalloc.TypedArena(node, 64)
                first = arena.alloc()  # a window of eight: seven made ahead
                alloc = arena.alloc
            Grabber.address = ctypes.addressof(first) + size
            gc.collect()
            bomb = Grabber()
            bomb.me = bomb  # type: ignore[attr-defined]
            del bomb
            gc.set_threshold(threshold)
            try:
                if path == "failed constructor":
                    with pytest.raises(TypeError):
                        arena.alloc("not a number")
                else:
                    arena.checkpoint()
            finally:
                gc.set_threshold(*thresholds)
                Grabber.address = None
            gc.collect()
            if Grabber.kept:
                taken += 1
                fresh = [alloc() for _ in range(4)]
                _no_alias(Grabber.kept, [f for f in fresh if f is not None])
                del fresh
            Grabber.kept.clear()
            del first, alloc, arena
            if path == "bump":
                del held
    finally:
        gc.set_threshold(*thresholds)
        Grabber.kept.clear()
    assert taken, "no value was ever taken"
