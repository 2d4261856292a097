"""More rules of the backing stores, checked in this process: what an eager store
answers, what an arena brought back to life by its drop callback hands out, and
when a reservation that values kept at collection time view is released.

No memory is unmapped while a test runs: the lazy arenas here get a platform
layer that records each release and passes it on only once the test is over (a
release made too early cannot unmap memory a kept value reads), and the
reservations made by hand get a platform layer that maps nothing.
"""

from __future__ import annotations

import ctypes
import gc
from collections.abc import Iterator
from typing import Any

import pytest

import linalloc
from linalloc import TypedArena, TypedArenaLazy, address
from linalloc._store import EagerStore

# -- an eager store ----------------------------------------------------------------------


def test_an_eager_store_has_every_byte_usable_at_once_and_gives_none_back() -> None:
    store = EagerStore(64)
    assert store.ensure(0) is True and store.ensure(63) is True
    assert store.ensure(64) is True  # [0, capacity): the whole buffer
    assert store.ensure(65) is False
    assert store.trim(0) == 0  # nothing given back: the buffer stays whole
    assert store.committed == 64 and store.extent == 64


def test_a_retired_eager_store_makes_no_byte_usable() -> None:
    store = EagerStore(64)
    store.retired = True  # (its values were dropped at collection time and one was kept)
    assert store.ensure(0) is False and store.ensure(64) is False


# -- platform layers ---------------------------------------------------------------------


class _HeldReleases:
    """The real platform layer, recording reservations and releases.

    A release is passed on only when the test is over (see ``held_vm``).
    """

    def __init__(self, real: Any) -> None:
        self._real = real
        self.reserved: list[tuple[int, int]] = []
        self.releases: list[tuple[int, int]] = []

    def reserve(self, size: int) -> int:
        addr: int = self._real.reserve(size)
        self.reserved.append((addr, size))
        return addr

    def release(self, addr: int, size: int) -> None:
        self.releases.append((addr, size))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.fixture
def held_vm(monkeypatch: pytest.MonkeyPatch, frozen: None) -> Iterator[_HeldReleases]:
    real = linalloc._vm.get()
    vm = _HeldReleases(real)
    monkeypatch.setattr(linalloc._vm, "get", lambda: vm)
    yield vm
    for addr, size in dict.fromkeys(vm.releases):  # (what the library asked to release)
        real.release(addr, size)


class _NoMemoryVM:
    """A platform layer for a reservation made by hand: maps nothing, records releases."""

    def __init__(self) -> None:
        self.releases: list[tuple[int, int]] = []

    def reserve(self, size: int) -> int:
        return 1 << 40  # (never read or written)

    def release(self, addr: int, size: int) -> None:
        self.releases.append((addr, size))


# -- values kept at collection time ------------------------------------------------------


class _Keeper:
    """Owns a typed arena whose drop callback is its own bound method (a cycle that only
    the collector frees); the callback keeps each value it is given, not the owner."""

    def __init__(self, kind: type, kept: list[Any]) -> None:
        self.arena = kind(ctypes.c_int64, 1 << 14, drop=self.keep)
        self.kept = kept

    def keep(self, value: Any) -> None:
        self.kept.append(value)


def test_a_reservation_values_kept_at_collection_view_is_released_once_when_they_die(
    held_vm: _HeldReleases,
) -> None:
    kept: list[Any] = []
    keeper = _Keeper(TypedArenaLazy, kept)
    where = address(keeper.arena.alloc(1))
    keeper.arena.alloc(2)
    keeper.arena.alloc(3)
    ((reserved_at, size),) = held_vm.reserved
    assert reserved_at == where
    del keeper
    gc.collect()
    assert [value.value for value in kept] == [3, 2, 1]
    assert held_vm.releases == []  # the values kept still view the memory
    kept[0].value = -3
    assert kept[0].value == -3
    kept.clear()
    gc.collect()
    assert held_vm.releases == [(where, size)]  # once, now that they are gone


def test_an_arena_brought_back_by_its_drop_callback_hands_out_and_trims_nothing(
    typed_cls: type, held_vm: _HeldReleases
) -> None:
    revived: list[Any] = []

    class Owner:
        def __init__(self) -> None:
            self.arena = typed_cls(ctypes.c_int64, 64, drop=self.keep)

        def keep(self, value: Any) -> None:
            revived.append((self, value))  # keeps the value and brings the owner back

    owner = Owner()
    owner.arena.alloc(7)
    owner.arena.alloc(8)
    del owner
    gc.collect()
    arena = revived[0][0].arena
    values = [value for _, value in revived]
    revived.clear()
    assert [value.value for value in values] == [8, 7]
    committed = getattr(arena, "committed", None)
    assert arena.alloc_raw(9) is None  # its memory stays with the values kept
    assert arena.alloc_extend([10]) is None
    assert arena.alloc(11) is None
    if typed_cls is TypedArenaLazy:
        assert arena.trim() == 0  # (a value kept may lie anywhere in it)
        assert arena.committed == committed
    else:
        assert typed_cls is TypedArena
    assert [value.value for value in values] == [8, 7]
    del arena, values
    gc.collect()
