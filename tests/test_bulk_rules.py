"""Rules of the shared core of ``alloc_many``/``alloc_extend`` (taking many slots at once).

A request that does not fit changes nothing, not even the window of values
made ahead; one that stopped fitting while the call ran (code the call ran
allocated, or values made ahead came back to life) returns None, even while
memory freed by a rewind is held, and leaves the arena usable; a failure
while storing gives every slot back, the first slot included, and code run
meanwhile cannot allocate; zeroing happens only where a reset left data and
only when asked for; zero-size values are aligned; an arena brought back to
life with a kept value still answers a request for nothing.
"""

from __future__ import annotations

import ctypes
import gc
import inspect
import sys
from typing import Any, Callable

import pytest
from test_reentrant_calls import Lying

from linalloc import TypedArena, _typed_bulk, address
from linalloc._store import EagerStore


def _node_type() -> Any:
    """A fresh structure type (a ``__del__`` given to it touches no other test)."""

    class Node(ctypes.Structure):
        _fields_ = [("v", ctypes.c_int64)]

    return Node


# -- a request that does not fit --------------------------------------------------------


def test_a_bulk_request_that_does_not_fit_leaves_the_values_made_ahead_alone(
    typed_cls: type,
) -> None:
    node = _node_type()
    arena = typed_cls(node, 16)
    first = arena.alloc(v=1)  # opens a window: values made ahead for the next slots
    revived: list[Any] = []
    node.__del__ = lambda self: revived.append(self)  # a value let go of comes back
    try:
        assert arena.alloc_many(16) is None  # 15 left
        assert arena.alloc_extend((node * 16)()) is None
        assert revived == []  # the window was not closed: nothing let go of
        assert len(arena) == 1 and [v.v for v in arena] == [1]
    finally:
        del node.__del__
    assert arena.alloc(v=2).v == 2 and len(arena) == 2
    del first
    revived.clear()
    arena.close()


# -- a request that stopped fitting while the call ran ---------------------------------


def test_values_made_ahead_that_come_back_to_life_can_make_a_bulk_request_not_fit(
    typed_cls: type,
) -> None:
    node = _node_type()
    arena = typed_cls(node, 16)
    first = arena.alloc(v=1)  # a window of 8 slots: 7 values made ahead
    revived: list[Any] = []
    node.__del__ = lambda self: revived.append(self)
    try:
        # 15 slots are free when the call starts; closing the window brings the
        # values made ahead back to life, and they keep their slots.
        assert arena.alloc_many(15) is None
    finally:
        del node.__del__
    assert len(revived) == 7 and len(arena) == 8
    size = ctypes.sizeof(node)
    assert sorted(address(v) for v in revived) == [address(first) + k * size for k in range(1, 8)]
    rest = arena.alloc_many(8)  # the arena is usable, and what is left still fits
    assert rest is not None and len(rest) == 8 and len(arena) == 16
    assert all(address(v) < address(rest) for v in revived)
    assert arena.alloc_many(1) is None
    del first, rest
    revived.clear()
    gc.collect()
    arena.close()


def _hooked_type() -> tuple[Any, list[Callable[[], object]]]:
    """A fresh structure type whose ``T * n`` first runs the hooks put in the list (once)."""
    hooks: list[Callable[[], object]] = []

    class Meta(type(ctypes.Structure)):  # type: ignore[misc]
        def __mul__(cls, n: int) -> Any:
            while hooks:
                hooks.pop()()
            return super().__mul__(n)

    class Hooked(ctypes.Structure, metaclass=Meta):
        _fields_ = [("v", ctypes.c_int64)]

    return Hooked, hooks


def test_a_bulk_request_that_stopped_fitting_is_none_even_while_memory_is_held(
    typed_cls: type,
) -> None:
    kept: list[Any] = []
    hooked, hooks = _hooked_type()
    arena = typed_cls(hooked, 16, drop=kept.append)

    def fill_and_hold() -> None:
        # (run by ``T * n`` in the middle of the call, before it marks the arena busy)
        for k in range(8):
            arena.alloc(v=k)
        cp = arena.checkpoint()
        arena.alloc(v=99)
        arena.rewind(cp)  # the callback keeps the value: its memory is held

    hooks.append(fill_and_hold)
    assert arena.alloc_many(10) is None  # 16 free at the start, 8 once the hook ran
    assert hooks == [] and len(kept) == 1
    assert len(arena) == 8 and [v.v for v in arena] == list(range(8))
    kept.clear()  # the held memory is let go of: the arena allocates again
    rest = arena.alloc_many(8)
    assert rest is not None and len(arena) == 16 and list(v.v for v in rest) == [0] * 8
    del rest
    arena.close()


# -- a failure while storing gives every slot back ------------------------------------


def test_alloc_extend_that_fails_from_the_first_slot_gives_every_slot_back(
    typed_cls: type,
) -> None:
    arena = typed_cls(ctypes.c_int64, 64)
    with pytest.raises(TypeError, match="changed my mind"):
        arena.alloc_extend([1, 2, Lying(3), 4])
    assert len(arena) == 0 and list(arena) == []
    first = arena.alloc(7)
    assert first.value == 7 and len(arena) == 1
    again = arena.alloc_extend([5, 6])
    assert list(again) == [5, 6] and address(again) == address(first) + 8
    del first, again
    arena.reset()


def test_code_run_while_a_failed_bulk_allocation_gives_its_slots_back_cannot_allocate(
    typed_cls: type,
) -> None:
    """Code run in the middle of the undo (a profile function at its ``_restart``, as a
    finalizer or a signal handler could) is refused: the arena is busy until the slots
    are given back."""
    tried: list[object] = []
    arena = typed_cls(ctypes.c_int64, 64)
    holder = [arena]  # (the profile function's way to it)

    # (``_take_slots`` calls ``_restart`` in its undo only; the names are matched, not
    # line numbers, so that the test holds when the functions are wrapped)
    assert inspect.getsource(_typed_bulk.BulkAllocation._take_slots).count("._restart(") == 1

    def profile(frame: Any, event: str, arg: object) -> None:
        caller = frame.f_back
        if (
            event == "call"
            and frame.f_code.co_name == "_restart"
            and caller is not None
            and "_take_slots" in caller.f_code.co_name
            and not tried
        ):
            try:
                tried.append(holder[0].alloc(9))
            except RuntimeError as error:
                tried.append(str(error))

    first = arena.alloc(1)
    sys.setprofile(profile)
    try:
        with pytest.raises(TypeError, match="changed my mind"):
            arena.alloc_extend([2, 3, Lying(4), 5])
    finally:
        sys.setprofile(None)
    assert len(tried) == 1 and isinstance(tried[0], str) and "busy" in tried[0]
    assert len(arena) == 1 and [v.value for v in arena] == [1]
    after = arena.alloc(6)
    assert address(after) == address(first) + 8
    holder.clear()
    del first, after
    arena.close()


# -- zeroing --------------------------------------------------------------------------


def _counting_memsets(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the size of every ``ctypes.memset`` from now on (and still do it)."""
    sizes: list[int] = []
    real = ctypes.memset

    def memset(dst: Any, c: int, count: int) -> Any:
        sizes.append(count)
        return real(dst, c, count)

    monkeypatch.setattr(ctypes, "memset", memset)
    return sizes


def test_alloc_many_over_memory_no_reset_left_data_in_zeroes_nothing(
    typed_cls: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    arena = typed_cls(ctypes.c_int64, 256)
    sizes = _counting_memsets(monkeypatch)
    many = arena.alloc_many(100)
    more = arena.alloc_many(10)
    assert sizes == []  # never used: zero already, no memset at all
    assert many is not None and more is not None
    assert not any(many) and not any(more) and len(arena) == 110
    monkeypatch.undo()
    del many, more
    arena.close()


def test_alloc_extend_over_memory_a_reset_left_data_in_writes_it_without_zeroing_first(
    typed_cls: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    arena = typed_cls(ctypes.c_int64, 256)
    arena.alloc_extend([-1] * 200)
    arena.reset()  # slots [0, 200) hold data
    sizes = _counting_memsets(monkeypatch)
    listed = arena.alloc_extend(range(1, 51))
    copied = arena.alloc_extend((ctypes.c_int64 * 50)(*range(51, 101)))
    assert sizes == []  # every byte is overwritten: nothing to zero first
    many = arena.alloc_many(50)
    assert sizes == [50 * 8]  # alloc_many zeroes what the reset left, once
    assert list(listed) == list(range(1, 51)) and list(copied) == list(range(51, 101))
    assert many is not None and not any(many)
    monkeypatch.undo()
    del listed, copied, many
    arena.close()


# -- zero-size values --------------------------------------------------------------------


class _ShiftedStore(EagerStore):
    """A buffer whose address is 1 past a multiple of 16, less aligned than any type
    (as malloc may give)."""

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity + 32)
        self.address += (1 - self.address) % 16
        self.capacity = self.committed = self.extent = capacity


def test_zero_size_values_of_alloc_many_are_aligned_where_alloc_puts_them() -> None:
    empty = ctypes.c_double * 0
    align = ctypes.alignment(empty)
    assert ctypes.sizeof(empty) == 0 and align > 1
    shifted = type("ShiftedTypedArena", (TypedArena,), {"_store_type": _ShiftedStore})
    arena = shifted(empty, 4)
    one = arena.alloc()
    many = arena.alloc_many(3)
    assert many is not None and len(many) == 3 and len(arena) == 0
    assert address(many) % align == 0
    assert address(many) == address(one)
    assert all(address(v) == address(one) for v in many)
    del one, many
    arena.close()


# -- an arena brought back to life with a kept value ----------------------------------


class _Owner:
    """Owns an arena whose drop callback keeps the value and the owner (a cycle)."""

    revived: list[tuple[_Owner, Any]] = []

    def __init__(self, kind: type) -> None:
        self.arena = kind(ctypes.c_int64, 64, drop=self.release)

    def release(self, value: Any) -> None:
        _Owner.revived.append((self, value))  # keeps the value: the arena is retired


def test_an_arena_revived_with_a_kept_value_still_answers_a_request_for_nothing(
    typed_cls: type,
) -> None:
    gc.collect()
    owner = _Owner(typed_cls)
    for k in (1, 2):
        owner.arena.alloc(k)
    del owner
    gc.collect()
    try:
        assert len(_Owner.revived) == 2
        arena = _Owner.revived[0][0].arena
        assert len(arena) == 0
        assert arena.alloc_many(1) is None and arena.alloc_extend([1]) is None
        empty = arena.alloc_many(0)  # no slot needed: fits, as in any arena
        assert empty is not None and len(empty) == 0
        nothing = arena.alloc_extend([])
        assert nothing is not None and len(nothing) == 0
        assert len(arena) == 0
        del empty, nothing
        arena.close()
        del arena
    finally:
        _Owner.revived.clear()
    gc.collect()
