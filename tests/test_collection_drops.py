"""Values dropped when a typed arena is collected (neither reset nor closed).

The dropper hands them to the drop callback from a slot array of its own. A
value the callback keeps keeps what the arena's slot arrays kept for it: the
targets of the pointers stored in it. An arena that the callback brings back
to life while keeping a value is retired: whatever is called next, it never
hands that memory out again.
"""

from __future__ import annotations

import ctypes
import gc
from typing import Any
from weakref import ref

import pytest
from conftest import run_python

# -- pointer targets stay alive with a value the callback keeps -------------------------

_KEEPALIVE_CHILD = """
import ctypes, gc
from linalloc import {kind}

class Target(ctypes.Structure):
    _fields_ = [("data", ctypes.c_char * (1 << 20))]

class Node(ctypes.Structure):
    _fields_ = [("n", ctypes.c_int64), ("p", ctypes.POINTER(Target))]

kept = []

class Owner:  # drop=self.release: arena and owner in a cycle, collected by the collector
    def __init__(self):
        self.arena = {kind}(Node, 1 << 14, drop=self.release)

    def release(self, value):
        kept.append(value)

def targets():  # (counted by the collector: a weak reference is cleared in a cycle)
    return sum(1 for obj in gc.get_objects() if type(obj) is Target)

def make(how):
    owner = Owner()
    arena = owner.arena if how == "cycle" else {kind}(Node, 1 << 14, drop=kept.append)
    first = None
    for n in range(5000 if how == "outlived" else 3):
        value = arena.alloc(n)
        if n % 1000 == 0 or n < 3:
            target = Target()
            target.data = b"x"
            value.p = ctypes.pointer(target)  # the arena keeps the target alive
        if how == "outlived" and n == 0:
            first = value
            arena.checkpoint()  # later values: other slot arrays (lazy: more as it grows)
    return (owner if how == "cycle" else arena), first

holder, first = make("{how}")
stored = targets()
del holder
gc.collect()
if first is not None:  # one value outlived the arena: nothing is dropped before it dies
    assert kept == [], kept
    del first
    gc.collect()
assert len(kept) == {count}, len(kept)
assert targets() == stored, ("pointer targets freed", stored, targets())
for value in kept:
    if value.p:
        value.p.contents.data = b"y" * (1 << 20)
noise = [bytearray(b"q" * (1 << 20)) for _ in range(8)]
assert all(value.p.contents.data[:1] == b"y" for value in kept if value.p)
print("ok", flush=True)
"""


@pytest.mark.parametrize(
    "how, count",
    [("plain", 3), ("cycle", 3), ("outlived", 5000)],
    ids=["plain", "cycle", "outlived"],
)
def test_a_value_kept_at_collection_keeps_its_pointer_targets(
    typed_cls: type, how: str, count: int
) -> None:
    # (In a subprocess: on failure the kept value points at freed memory.)
    proc = run_python(_KEEPALIVE_CHILD.format(kind=typed_cls.__name__, how=how, count=count))
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    assert proc.stdout == "ok\n"


class _Node(ctypes.Structure):
    _fields_ = [("n", ctypes.c_int64), ("p", ctypes.POINTER(ctypes.c_int64))]


def point_at_new_targets(arena: Any, rounds: int, count: int) -> list[ref[ctypes.c_int64]]:
    """``rounds`` times: ``count`` values (0, 1, ...), each pointing at a new ``c_int64``,
    then ``arena.reset()``; weak references to the targets."""
    targets = []
    for _ in range(rounds):
        for n in range(count):
            target = ctypes.c_int64(n)
            arena.alloc(n).p = ctypes.pointer(target)
            targets.append(ref(target))
        del target
        arena.reset()
    return targets


def test_a_living_arena_keeps_no_pointer_target_of_a_freed_value(typed_cls: type) -> None:
    # What a collection-time drop needs is carried only once the arena is gone.
    arena = typed_cls(_Node, 64, drop=lambda value: None)
    targets = point_at_new_targets(arena, rounds=3, count=10)
    gc.collect()
    assert [target() for target in targets] == [None] * 30
    arena.close()


def test_no_pointer_target_outlives_the_values_dropped_at_collection(typed_cls: type) -> None:
    dropped: list[int] = []
    arena = typed_cls(_Node, 64, drop=lambda value: dropped.append(value.n))
    target = ctypes.c_int64(5)
    arena.alloc(1).p = ctypes.pointer(target)
    watch = ref(target)
    del target, arena
    gc.collect()
    assert dropped == [1] and watch() is None  # nothing kept the value: nothing kept


# -- a retired arena stays retired --------------------------------------------------------

_RETIRED_CHILD = """
import ctypes, gc
from linalloc import {kind}

revived = []

class Owner:
    def __init__(self):
        self.arena = {kind}(ctypes.c_int64, 1 << 16, drop=self.release)

    def release(self, value):
        revived.append((self, value))  # keeps the value and brings the arena back

owner = Owner()
for k in (1, 2, 3):
    owner.arena.alloc(k)
before = owner.arena.checkpoint()
del owner
gc.collect()
arena = revived[0][0].arena
values = [value for _, value in revived]
where = {{ctypes.addressof(value) for value in values}}

def nothing_handed_out(after):
    got = [arena.alloc(5), arena.alloc_raw(6), arena.alloc_many(2), arena.alloc_extend([7])]
    assert got == [None] * 4, (after, got)
    assert len(arena) == 0 and list(arena) == [] and len(arena.as_array()) == 0, after
    assert [value.value for value in values] == [3, 2, 1], (after, values)

nothing_handed_out("revived")
if hasattr(arena, "trim"):
    assert arena.trim() == 0
    nothing_handed_out("trim")
try:
    arena.rewind(before)
except ValueError:
    pass
nothing_handed_out("rewind")
with arena.scope():
    nothing_handed_out("scope")
nothing_handed_out("scope exit")
arena.rewind(arena.checkpoint())
nothing_handed_out("checkpoint")
arena.reset()
nothing_handed_out("reset")
if hasattr(arena, "trim"):
    arena.trim()
    nothing_handed_out("trim after reset")
arena.close()
gc.collect()
for value in values:
    value.value = -1
print([value.value for value in values], flush=True)
"""


def test_an_arena_revived_with_a_kept_value_stays_retired_through_every_call(
    typed_cls: type,
) -> None:
    # (In a subprocess: on failure the kept values' memory is handed out, or unmapped.)
    proc = run_python(_RETIRED_CHILD.format(kind=typed_cls.__name__))
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    assert proc.stdout == "[-1, -1, -1]\n"
