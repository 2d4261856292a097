"""A typed arena's slots: copies of simple values, drops stopped by an interrupt,
arenas brought back to life by their drop callback, release at close, shutdown.

The rules come from the docstrings of ``linalloc._slots`` and of the typed arenas:
each value is dropped exactly once (by ``reset()``, ``close()`` or at collection),
a ``KeyboardInterrupt`` from a callback stops the drops and the dropper drops
the rest at collection, nothing runs while the interpreter shuts down.
"""

from __future__ import annotations

import copy
import ctypes
import gc
import pickle
import sys
from typing import Any, Callable

import pytest
from conftest import mapped, needs_maps, run_python

from linalloc import TypedArena, TypedArenaLazy, address

# -- copies and pickles of simple values ------------------------------------------------


@pytest.mark.parametrize(
    "ctype, value",
    [(ctypes.c_int64, -41), (ctypes.c_double, 2.5), (ctypes.c_uint8, 200)],
    ids=["c_int64", "c_double", "c_uint8"],
)
@pytest.mark.parametrize(
    "duplicate",
    [copy.copy, copy.deepcopy, lambda v: pickle.loads(pickle.dumps(v))],
    ids=["copy", "deepcopy", "pickle"],
)
def test_a_simple_value_copies_as_a_plain_instance_of_the_ctype(
    typed_cls: type, ctype: Any, value: object, duplicate: Callable[[Any], Any]
) -> None:
    arena = typed_cls(ctype, 4)
    arena.alloc(0)
    held = arena.alloc(value)
    twin = duplicate(held)
    assert type(twin) is ctype  # not the arena's run-time slot subclass
    assert twin.value == held.value == value
    assert ctypes.addressof(twin) != address(held)  # a copy outside the arena
    twin.value = 1
    assert held.value == value
    del held, twin
    assert len(arena) == 2
    arena.close()


# -- a KeyboardInterrupt stops the drops; the dropper drops the rest --------------------


@pytest.mark.parametrize("stop_in", ["close", "reset"])
def test_values_left_by_an_interrupted_drop_are_dropped_once_at_collection(
    typed_cls: type, stop_in: str
) -> None:
    dropped: list[int] = []
    unraisable: list[Any] = []

    def drop(value: Any) -> None:
        dropped.append(value.value)
        if value.value == 3:
            raise KeyboardInterrupt

    arena = typed_cls(ctypes.c_int64, 8, drop=drop)
    for k in range(1, 6):
        arena.alloc(k)
    with pytest.raises(KeyboardInterrupt):
        getattr(arena, stop_in)()
    assert dropped == [5, 4, 3]
    # (1 and 2 are still live; 3, 4 and 5 keep their slots, dead: never dropped again)
    assert len(arena) == 5 and not arena.closed
    old_hook = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        del arena
        gc.collect()
    finally:
        sys.unraisablehook = old_hook
    assert unraisable == []
    assert dropped == [5, 4, 3, 2, 1]


# -- an arena brought back to life by its drop callback ---------------------------------


class _Owner:
    """Owns an arena whose drop callback is a bound method: a cycle."""

    revived: list[_Owner] = []

    def __init__(self, kind: type) -> None:
        self.arena = kind(ctypes.c_int64, 64, drop=self.release)
        self.dropped: list[int] = []

    def release(self, value: Any) -> None:
        self.dropped.append(value.value)
        _Owner.revived.append(self)  # keeps its owner: the arena lives again


def test_an_arena_revived_by_its_callback_starts_empty_and_hands_out_nothing() -> None:
    # Its checkpoints' regions are those of the values dropped: a value handed out
    # again could be freed by a rewind that does not see it.
    gc.collect()
    owner = _Owner(TypedArena)
    for k in (11, 12, 13):
        owner.arena.alloc(k)
    del owner
    gc.collect()
    try:
        owner = _Owner.revived[0]
        assert owner.dropped == [13, 12, 11]
        arena = owner.arena
        assert len(arena) == 0 and list(arena) == []
        assert [arena.alloc(), arena.alloc_raw(7), arena.alloc_many(2)] == [None] * 3
        arena.reset()
        assert arena.alloc() is None and owner.dropped == [13, 12, 11]
        arena.close()
        assert owner.dropped == [13, 12, 11]
    finally:
        _Owner.revived.clear()


# -- close() releases a lazy arena's memory at once -------------------------------------


@needs_maps
def test_close_of_a_lazy_arena_with_a_drop_callback_unmaps_it_at_once() -> None:
    dropped: list[int] = []
    arena = TypedArenaLazy(ctypes.c_int64, 1 << 20, drop=lambda v: dropped.append(v.value))
    where = address(arena.alloc(1))
    arena.alloc(2)
    assert mapped(where)
    arena.close()
    assert dropped == [2, 1]
    assert not mapped(where)
    del arena
    gc.collect()
    assert not mapped(where)


@needs_maps
def test_a_value_kept_by_the_callback_at_close_keeps_the_memory_mapped() -> None:
    kept: list[Any] = []
    arena = TypedArenaLazy(ctypes.c_int64, 1 << 20, drop=kept.append)
    where = address(arena.alloc(5))
    arena.alloc(6)
    arena.close()
    assert len(kept) == 2 and [address(v) for v in kept] == [where + 8, where]
    assert mapped(where)  # checked without touching it: a mutant could have unmapped it
    assert [v.value for v in kept] == [6, 5]
    kept.clear()
    gc.collect()
    assert not mapped(where)


# -- nothing runs while the interpreter shuts down --------------------------------------


@pytest.mark.parametrize("kind", ["TypedArena", "TypedArenaLazy"])
def test_no_drop_runs_while_the_interpreter_shuts_down(kind: str) -> None:
    proc = run_python(
        f"""
        import ctypes, os, sys
        from linalloc import {kind}

        def drop(value, write=os.write):
            write(1, b"dropped\\n")

        arena = {kind}(ctypes.c_int64, 16, drop=drop)
        for k in range(3):
            arena.alloc(k)
        held = arena.alloc(9)
        print("done", flush=True)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "done\n"


def test_a_lazy_arena_revived_by_its_callback_hands_out_nothing_and_keeps_its_memory() -> None:
    # The callback keeps the values and brings the arena back: its memory stays
    # mapped while they live, and the arena, retired, hands none of it out again.
    proc = run_python(
        """
        import ctypes, gc
        from linalloc import TypedArenaLazy

        revived = []

        class Owner:
            def __init__(self):
                self.arena = TypedArenaLazy(ctypes.c_int64, 1 << 20, drop=self.release)

            def release(self, value):
                revived.append((self, value))

        owner = Owner()
        for k in (1, 2, 3):
            owner.arena.alloc(k)
        del owner
        gc.collect()
        arena = revived[0][0].arena
        values = [value for _, value in revived]
        print(len(arena), arena.alloc(7), [v.value for v in values], flush=True)
        for v in values:
            v.value = -1
        print([v.value for v in values], flush=True)
        """
    )
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr}"
    assert proc.stdout == "0 None [3, 2, 1]\n[-1, -1, -1]\n"


# -- values at an offset from the buffer's start (types aligned past malloc's 16) --------


@pytest.mark.skipif(sys.version_info < (3, 13), reason="Structure._align_ is new in 3.13")
def test_values_of_an_over_aligned_type_are_dropped_from_their_own_slots_at_collection(
    typed_cls: type,
) -> None:
    class Wide(ctypes.Structure):
        _align_ = 256
        _fields_ = [("v", ctypes.c_int64)]

    seen: list[int] = []
    arena = typed_cls(Wide, 8, drop=lambda w: seen.append(w.v))
    for k in (1, 2, 3):
        assert address(arena.alloc(k)) % 256 == 0
    del arena  # no cycle: dropped now, by the dropper, through a new slot array
    gc.collect()
    assert seen == [3, 2, 1]
