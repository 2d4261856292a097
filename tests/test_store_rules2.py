"""More rules of the backing stores: error messages, the commit step of an empty
lazy arena, the bound of the array type cache, pages committed again after a
trim, retired stores, and when a reservation a kept value views is released.

Runs that could crash on failure (memory unmapped or written out of bounds)
happen in a subprocess.
"""

from __future__ import annotations

import ctypes
import re
import sys

import pytest
from conftest import run_python

import linalloc
from linalloc import BumpArena, BumpArenaLazy, TypedArenaLazy, _store

# -- capacities past the address space --------------------------------------------------


def test_an_eager_arena_past_sys_maxsize_names_its_capacity() -> None:
    big = sys.maxsize + 1
    message = f"capacity {big} exceeds sys.maxsize"
    with pytest.raises(OverflowError, match="^" + re.escape(message) + "$"):
        BumpArena(big)


def test_an_eager_arena_that_cannot_be_allocated_names_its_size() -> None:
    size = sys.maxsize
    message = f"cannot allocate an arena of {size} bytes"
    with pytest.raises(MemoryError, match="^" + re.escape(message) + "$"):
        BumpArena(size)


def test_a_lazy_arena_past_sys_maxsize_names_its_capacity() -> None:
    big = sys.maxsize + 1
    message = f"capacity {big} exceeds sys.maxsize"
    with pytest.raises(OverflowError, match="^" + re.escape(message) + "$"):
        BumpArenaLazy(big)


def test_a_lazy_arena_of_sys_maxsize_bytes_exceeds_the_address_space_once_rounded() -> None:
    # sys.maxsize itself is allowed; rounded up to whole pages it is not
    size = sys.maxsize
    message = f"capacity {size} exceeds the address space"
    with pytest.raises(OverflowError, match="^" + re.escape(message) + "$"):
        BumpArenaLazy(size)


# -- an empty lazy arena ---------------------------------------------------------------


def test_an_empty_lazy_arena_has_the_documented_commit_step() -> None:
    step = BumpArenaLazy(1 << 20).commit_step
    assert step >= _store.COMMIT_STEP and step % linalloc.page_size() == 0
    assert BumpArenaLazy(0).commit_step == step
    assert TypedArenaLazy(ctypes.c_int64, 0).commit_step == step


# -- the bound of exact_array_type's cache -----------------------------------------------


def test_the_exact_array_type_cache_is_cleared_at_1024_entries() -> None:
    _store._exact_types.clear()
    for n in range(1, 1025):
        assert _store.exact_array_type(ctypes.c_uint8, n) is ctypes.c_uint8 * n
    assert len(_store._exact_types) == 1024
    assert _store.exact_array_type(ctypes.c_uint8, 1025) is ctypes.c_uint8 * 1025
    assert len(_store._exact_types) == 1  # cleared, then the new entry
    assert _store._exact_types[(id(ctypes.c_uint8), 1025)] is ctypes.c_uint8 * 1025
    _store._exact_types.clear()


# -- pages committed again after a trim -------------------------------------------------

_RECOMMIT_CHILD = """
import ctypes
import linalloc
from linalloc import BumpArenaLazy, Layout, address

real = linalloc._vm.get()


class KeepingVM:
    # Decommit gives nothing back: the pages keep their contents, so whether
    # the store clears them again is seen in their bytes.
    zero_on_recommit = {zero}

    def decommit(self, addr, size):
        return None

    def __getattr__(self, name):
        return getattr(real, name)


linalloc._vm.get = KeepingVM
arena = BumpArenaLazy(1 << 24)
step, page = arena.commit_step, linalloc.page_size()
view = arena.alloc_uninit_slice(Layout(3 * step))
base = address(view)
ctypes.memset(base, 0xAB, 3 * step)
del view
arena.reset()
first = arena.alloc_uninit_slice(Layout(1))
released = arena.trim()
again = arena.alloc_uninit_slice(Layout(2 * step))
print(released == 3 * step - page, arena.committed == 3 * step, address(again) == base + 1)
head = ctypes.string_at(base, page)
tail = ctypes.string_at(base + page, 3 * step - page)
print(set(head), set(tail), flush=True)
"""


@pytest.mark.parametrize("zero", [True, False])
def test_pages_committed_again_are_cleared_only_if_the_platform_leaves_them_undefined(
    zero: bool,
) -> None:
    # zero_on_recommit: the store zeroes exactly the pages committed before and
    # committed again (past the kept page, up to the end of the old commit);
    # else it leaves them to the platform and writes nothing.
    proc = run_python(_RECOMMIT_CHILD.format(zero=zero))
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    tail = {0} if zero else {0xAB}
    assert proc.stdout == f"True True True\n{ {0xAB} } {tail}\n"


# -- a value a drop callback keeps at collection ----------------------------------------

#: Child code: ``RecordingVM``, a platform layer that records what it releases as
#: ``(address, size)`` in ``releases``, and releases it.
RECORDING_VM = """
import ctypes, gc
import linalloc

real = linalloc._vm.get()


class RecordingVM:
    def __init__(self):
        self.releases = []

    def release(self, addr, size):
        self.releases.append((addr, size))
        real.release(addr, size)

    def __getattr__(self, name):
        return getattr(real, name)
"""

_KEPT_CHILD = (
    RECORDING_VM
    + """
from linalloc import TypedArenaLazy


vm = RecordingVM()
linalloc._vm.get = lambda: vm
kept = []


class Owner:  # drop=self.release: owner and arena in a cycle, freed by the collector
    def __init__(self):
        self.arena = TypedArenaLazy(ctypes.c_int64, 1 << 20, drop=self.release)

    def release(self, value):
        kept.append(value)  # keeps the value, not its owner


gc.collect()
owner = Owner()
for k in (1, 2, 3):
    owner.arena.alloc(k)
del owner
gc.collect()
print(vm.releases, [value.value for value in kept])
for value in kept:
    value.value = -1
print([value.value for value in kept])
del value
kept.clear()
gc.collect()
print(len(vm.releases), flush=True)
"""
)


def test_a_value_kept_at_collection_keeps_the_reservation_until_it_dies() -> None:
    # (In a subprocess: on failure the kept values read and write unmapped memory.)
    proc = run_python(_KEPT_CHILD)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    # while kept: nothing released; once the values die: released once
    assert proc.stdout == "[] [3, 2, 1]\n[-1, -1, -1]\n1\n"


# -- a retired store -------------------------------------------------------------------

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
del owner
gc.collect()
arena = revived[0][0].arena
values = [value for _, value in revived]
committed = getattr(arena, "committed", None)
got = [arena.alloc_many(1), arena.alloc_many(4), arena.alloc(5)]
trimmed = arena.trim() if hasattr(arena, "trim") else 0
print(got, trimmed, getattr(arena, "committed", None) == committed)
print([value.value for value in values], flush=True)
"""


@pytest.mark.parametrize("kind", ["TypedArena", "TypedArenaLazy"])
def test_a_retired_store_commits_nothing_and_trims_nothing(kind: str) -> None:
    # (In a subprocess: on failure the kept values' memory is handed out again.)
    proc = run_python(_RETIRED_CHILD.format(kind=kind))
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    assert proc.stdout == "[None, None, None] 0 True\n[3, 2, 1]\n"
