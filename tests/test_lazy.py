"""What only the lazy arenas do: commit in steps, trim, reserve cheaply, unmap late.

Memory is observed from outside the allocator: /proc/self/maps shows which part
of a reservation is readable and writable (committed) and whether it is mapped
at all; /proc/self/statm shows the resident set. Whatever touches memory that a
trim or an unmap gave back, and every resident-set or mapping count, runs in a
fresh interpreter. Those observations need Linux's /proc: the tests that make
them skip elsewhere and say so (the behaviour they check is covered on every
system by the tests that only use the arenas' own counters).
"""

from __future__ import annotations

import ctypes
import mmap
import os
import sys
import textwrap
from typing import Any

import pytest
from conftest import run_python
from hypothesis import given
from hypothesis import strategies as st

import linalloc
from linalloc import BumpArenaLazy, Layout, TypedArenaLazy, address

PAGE = mmap.PAGESIZE
STEP = -(-linalloc.COMMIT_STEP // PAGE) * PAGE
MiB = 1 << 20

#: For the tests that observe memory through /proc (Linux only).
needs_proc = pytest.mark.skipif(
    not os.path.exists("/proc/self/maps"),
    reason="observes mappings and the resident set through /proc/self (Linux only)",
)


def round_up(n: int, step: int) -> int:
    return -(-n // step) * step


def protections(base: int, size: int) -> dict[str, int]:
    """Bytes of ``[base, base + size)`` per permission string in /proc/self/maps."""
    found: dict[str, int] = {}
    with open("/proc/self/maps") as maps:
        for line in maps:
            span, perms = line.split()[:2]
            lo, hi = (int(x, 16) for x in span.split("-"))
            overlap = min(hi, base + size) - max(lo, base)
            if overlap > 0:
                found[perms] = found.get(perms, 0) + overlap
    return found


# Helpers for the subprocesses: the same measurements, from inside them.
PRELUDE = """
import ctypes, gc, mmap, sys
import linalloc
from linalloc import BumpArenaLazy, Layout, TypedArenaLazy, address

PAGE = mmap.PAGESIZE
MiB = 1 << 20

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE

def map_lines():
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)

def mapped(base, size):
    total = 0
    with open("/proc/self/maps") as f:
        for line in f:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            total += max(0, min(hi, base + size) - max(lo, base))
    return total

def vm_size():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
"""


def run_checked(code: str, **kwargs: Any) -> str:
    """Run PRELUDE + code in a fresh interpreter; it must exit 0. Returns stdout."""
    proc = run_python(PRELUDE + textwrap.dedent(code), **kwargs)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


# -- commit steps --------------------------------------------------------------


@pytest.mark.parametrize("cls", [BumpArenaLazy, TypedArenaLazy])
def test_commit_step_is_64k_in_whole_pages(cls: type) -> None:
    arena = BumpArenaLazy(1) if cls is BumpArenaLazy else TypedArenaLazy(ctypes.c_int8, 1)
    assert arena.commit_step == STEP
    assert arena.commit_step % linalloc.page_size() == 0
    assert arena.commit_step >= linalloc.COMMIT_STEP == 64 * 1024
    assert arena.committed == 0
    assert arena.last_os_error_code is None


@given(
    capacity=st.integers(1, 5 * STEP + 3 * PAGE + 7),
    requests=st.lists(
        st.tuples(st.integers(0, 2 * STEP + 5), st.sampled_from([1, 2, 8, 64, 4096])),
        max_size=12,
    ),
)
def test_committed_follows_used_in_steps(capacity: int, requests: list[tuple[int, int]]) -> None:
    arena = BumpArenaLazy(capacity)
    reserved = round_up(capacity, PAGE)
    views = []
    for size, align in requests:
        before = (arena.used, arena.committed)
        view = arena.alloc_uninit_slice(Layout(size, align))
        if view is None:
            assert (arena.used, arena.committed) == before
        else:
            views.append(view)
        committed, used = arena.committed, arena.used
        assert used <= committed  # every byte handed out is committed
        assert committed % PAGE == 0
        assert committed % STEP == 0 or committed == reserved
        assert committed <= min(round_up(used, STEP), reserved)
    del views


def arena_and_base(kind: str, capacity_bytes: int) -> tuple[Any, int, Any]:
    """A lazy arena of ``capacity_bytes``, its base address, and an allocator of n bytes."""
    if kind == "bump":
        arena: Any = BumpArenaLazy(capacity_bytes)
        base = address(arena.alloc_uninit_slice(Layout(1)))
        arena.reset()
        return arena, base, lambda n: arena.alloc_uninit_slice(Layout(n))
    arena = TypedArenaLazy(ctypes.c_uint8 * 512, capacity_bytes // 512)
    base = address(arena.alloc())
    arena.reset()

    def alloc(n: int) -> list[Any]:
        return [arena.alloc() for _ in range(-(-n // 512))]

    return arena, base, alloc


@needs_proc
@pytest.mark.parametrize("kind", ["bump", "typed"])
def test_committed_is_exactly_the_writable_part_of_the_reservation(kind: str) -> None:
    capacity = 10 * STEP
    arena, base, alloc = arena_and_base(kind, capacity)
    keep = []
    for n in [512, 512, STEP, 3 * STEP - 1024, 6 * STEP]:
        got = alloc(n)
        assert got is not None and all(v is not None for v in (got if kind == "typed" else [got]))
        keep.append(got)
        committed = arena.committed
        assert committed % STEP == 0 and committed >= arena.used
        assert protections(base, capacity) == {
            "rw-p": committed,
            **({"---p": capacity - committed} if committed < capacity else {}),
        }
    committed = arena.committed
    assert committed == capacity
    del keep, got
    arena.reset()
    assert arena.committed == committed  # reset keeps what was committed
    assert protections(base, capacity) == {"rw-p": committed}
    assert arena.trim() == committed  # trim after reset gives it all back
    assert arena.committed == 0
    # Trimmed pages stay mapped readable and writable: objects handed out earlier
    # may span them. Their memory goes back to the OS (see the resident-set tests).
    assert protections(base, capacity) == {"rw-p": capacity}
    assert arena.trim() == 0


@needs_proc
@pytest.mark.parametrize("kind", ["bump", "typed"])
def test_trim_keeps_the_pages_in_use(kind: str) -> None:
    arena, base, alloc = arena_and_base(kind, 8 * STEP)
    first = alloc(3 * STEP)
    assert arena.committed == 3 * STEP
    used = arena.used
    assert arena.trim() == 0  # nothing past used
    second = alloc(512)
    assert arena.committed == 4 * STEP
    assert arena.trim() == 4 * STEP - round_up(arena.used, PAGE)
    assert arena.committed == round_up(used + 512, PAGE)
    # The trimmed pages stay mapped readable and writable; the rest stays reserved.
    assert protections(base, 8 * STEP) == {"rw-p": 4 * STEP, "---p": 4 * STEP}
    third = alloc(STEP)  # commits again, from where trim stopped
    assert third is not None and (kind == "bump" or None not in third)
    assert arena.committed == round_up(arena.used, STEP) == 5 * STEP
    assert protections(base, 8 * STEP) == {"rw-p": 5 * STEP, "---p": 3 * STEP}
    del first, second, third


@needs_proc
def test_trim_after_reset_gives_memory_back_and_reads_zeros_again() -> None:
    out = run_checked(
        """
        arena = BumpArenaLazy(1 << 30)
        step = arena.commit_step
        view = arena.alloc_uninit_slice(Layout(3 * step + 10))
        ctypes.memset(address(view), 0xAB, len(view))
        base = address(view)
        assert arena.committed == 4 * step
        del view
        arena.reset()
        assert arena.committed == 4 * step
        assert arena.trim() == 4 * step
        assert arena.committed == 0
        again = arena.alloc_uninit_slice(Layout(3 * step + 10))
        assert address(again) == base
        assert arena.committed == 4 * step
        assert bytes(again) == bytes(len(again)), "recommitted pages must read as zero"
        again[:] = b"\\x01" * len(again)

        typed = TypedArenaLazy(ctypes.c_int64, 1 << 20)
        values = [typed.alloc(-1) for _ in range(20000)]
        assert typed.committed == 3 * step
        del values
        typed.reset()
        assert typed.trim() == 3 * step and typed.committed == 0
        fresh = [typed.alloc() for _ in range(20000)]
        assert all(v.value == 0 for v in fresh)
        fresh[-1].value = 5
        assert typed.committed == 3 * step and len(typed) == 20000
        print("ok")
        """
    )
    assert out.strip() == "ok"


# -- capacity 0 ---------------------------------------------------------------


class _NoVM:
    """Stands in for the platform layer: any system call fails the test."""

    page_size = PAGE

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected system call: {name}")


def test_capacity_zero_makes_no_system_call(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_vm() -> Any:
        raise AssertionError("capacity 0 asked for the platform layer")

    monkeypatch.setattr(linalloc._vm, "get", no_vm)
    bump = BumpArenaLazy(0)
    assert bump.alloc_uninit_slice(Layout(1)) is None
    assert bump.alloc_uninit_slice(Layout(0)) == b""
    assert bump.alloc(ctypes.c_int8) is None
    assert (bump.used, bump.committed, bump.trim(), bump.last_os_error_code) == (0, 0, 0, None)
    bump.reset()
    bump.close()
    for ctype in [ctypes.c_char, ctypes.c_int64, ctypes.c_longdouble, ctypes.c_double * 3]:
        typed = TypedArenaLazy(ctype, 0)
        assert typed.alloc() is None and len(typed) == 0
        assert (typed.committed, typed.trim()) == (0, 0)
        typed.close()


def test_capacity_zero_loads_no_platform_layer_in_a_fresh_process() -> None:
    out = run_checked(
        """
        import linalloc._vm as vm
        arenas = [BumpArenaLazy(0)] + [
            TypedArenaLazy(t, 0) for t in (ctypes.c_char, ctypes.c_int64, ctypes.c_longdouble)
        ]
        arenas[0].alloc_uninit_slice(Layout(0, 64))
        for arena in arenas:
            arena.trim()
            arena.close()
        print(vm._vm is None, "_cffi_backend" in sys.modules)
        BumpArenaLazy(1)
        print(vm._vm is None, "_cffi_backend" in sys.modules)
        """
    )
    assert out.split() == ["True", "False", "False", "True"]


# -- reservation size ------------------------------------------------------------


def test_overflowing_typed_capacity_raises_before_touching_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(linalloc._vm, "get", _NoVM)
    with pytest.raises(OverflowError):
        TypedArenaLazy(ctypes.c_int64, sys.maxsize // 8 + 1)
    with pytest.raises(OverflowError):
        TypedArenaLazy(ctypes.c_char * 4096, 1 << 52)
    with pytest.raises(OverflowError):
        TypedArenaLazy(ctypes.c_char, sys.maxsize)  # whole pages would exceed it
    with pytest.raises(OverflowError):
        BumpArenaLazy(sys.maxsize + 1)


@needs_proc
def test_terabyte_reservation_is_cheap_and_rss_follows_use() -> None:
    out = run_checked(
        """
        r0 = rss()
        arena = BumpArenaLazy(1 << 40)
        r1 = rss()
        assert r1 - r0 < 8 * MiB, (r1 - r0) / MiB
        view = arena.alloc_uninit_slice(Layout(64 * MiB))
        ctypes.memset(address(view), 1, len(view))
        r2 = rss()
        assert 63 * MiB <= r2 - r1 <= 72 * MiB, (r2 - r1) / MiB
        del view
        arena.reset()
        assert arena.trim() == 64 * MiB
        r3 = rss()
        assert r2 - r3 >= 63 * MiB, (r2 - r3) / MiB

        typed = TypedArenaLazy(ctypes.c_uint8 * 4096, 1 << 28)  # 1 TiB
        r4 = rss()
        assert r4 - r3 < 8 * MiB
        for _ in range(16384):
            ctypes.memset(ctypes.addressof(typed.alloc()), 7, 4096)
        r5 = rss()
        assert 63 * MiB <= r5 - r4 <= 72 * MiB, (r5 - r4) / MiB
        typed.reset()
        assert typed.trim() == 64 * MiB
        assert r5 - rss() >= 63 * MiB
        print("ok")
        """
    )
    assert out.strip() == "ok"


# -- no leaked mappings ------------------------------------------------------------


@needs_proc
def test_mappings_are_released_at_close_at_collection_and_over_many_cycles() -> None:
    out = run_checked(
        """
        gc.disable()
        GiB = 1 << 30

        def state():
            return map_lines(), vm_size()

        def used(arena, n):
            view = arena.alloc_uninit_slice(Layout(n))
            view[0] = 1

        warm_up = BumpArenaLazy(GiB)  # loads the platform layer and its libraries
        used(warm_up, 100)
        warm_up.close()

        # close()
        before = state()
        arena = BumpArenaLazy(GiB)
        used(arena, 100)
        during = state()
        assert during[0] > before[0] and during[1] >= before[1] + GiB
        arena.close()
        assert state() == before, (state(), before)

        # garbage collection of an arena kept alive only by a cycle
        arena = TypedArenaLazy(ctypes.c_double, GiB // 8, drop=lambda v: None)
        arena.alloc(1.0)
        arena.cycle = arena
        del arena
        assert state()[1] >= before[1] + GiB, "still reachable until collected"
        gc.collect()
        assert state() == before, (state(), before)

        # a few thousand create/drop cycles, each kind of ending
        def cycle(i):
            a = BumpArenaLazy(GiB)
            used(a, 100 + i)
            a.close()
            b = BumpArenaLazy(GiB)
            used(b, 70000)
            c = TypedArenaLazy(ctypes.c_int32, GiB // 4, drop=lambda v: None)
            value = c.alloc(i)
            del b, c, value
            d = BumpArenaLazy(i % 3)
            d.close()

        cycle(0)
        gc.collect()
        before = state()
        for i in range(3000):
            cycle(i)
        gc.collect()
        assert state() == before, (state(), before)
        print("ok")
        """
    )
    assert out.strip() == "ok"


# -- views outlive the arena object --------------------------------------------------


@needs_proc
def test_views_outlive_the_arena_and_memory_is_unmapped_with_the_last_view() -> None:
    out = run_checked(
        """
        import numpy as np
        gc.disable()

        arena = BumpArenaLazy(1 << 30)
        reserved = 1 << 30
        view = arena.alloc_uninit_slice(Layout(4096, 64))
        view[:4] = b"abcd"
        base = address(view)
        value = arena.alloc(ctypes.c_int64)
        value.value = 7
        array = np.frombuffer(arena.alloc_uninit_slice(Layout(8000, 8)), dtype=np.float64)
        array[:] = 3.0
        derived = (ctypes.c_uint8 * 8).from_buffer(value)

        typed = TypedArenaLazy(ctypes.c_double, 1 << 27)
        typed_value = typed.alloc(2.5)
        typed_base = ctypes.addressof(typed_value)

        del arena, typed
        gc.collect()
        assert mapped(base, reserved) == reserved
        assert mapped(typed_base, 1 << 30) == 1 << 30

        # churn: other arenas and plain Python memory come and go
        for i in range(60):
            other = BumpArenaLazy(1 << 28)
            chunk = other.alloc_uninit_slice(Layout(MiB))
            ctypes.memset(address(chunk), i, MiB)
            del chunk, other
            eager = linalloc.BumpArena(1 << 20)
            eager.alloc_uninit_slice(Layout(1000))[:3] = b"xyz"
            del eager
            junk = [bytes([i]) * 65536 for _ in range(64)]
            del junk
        gc.collect()

        assert bytes(view[:4]) == b"abcd"
        view[4:8] = b"efgh"
        assert bytes(view[:8]) == b"abcdefgh"
        assert value.value == 7
        value.value += 1
        assert bytes(derived) == (8).to_bytes(8, sys.byteorder)
        assert array.sum() == 3000.0
        array[0] = 5.0
        assert array[:2].tolist() == [5.0, 3.0]
        assert typed_value.value == 2.5
        typed_value.value = -1.0
        assert typed_value.value == -1.0

        # unmapped exactly when the last view goes
        for name in ["view", "value", "derived"]:
            del globals()[name]
            gc.collect()
            assert mapped(base, reserved) == reserved, name
        lines = map_lines()
        del array
        assert mapped(base, reserved) < reserved // 2
        assert map_lines() < lines
        assert mapped(typed_base, 1 << 30) == 1 << 30
        lines = map_lines()
        del typed_value
        assert mapped(typed_base, 1 << 30) < (1 << 30) // 2
        assert map_lines() < lines
        print("ok")
        """
    )
    assert out.strip() == "ok"


@needs_proc
def test_macos_decommit_by_remap_frees_pages_and_reads_zeros() -> None:
    """The decommit of macOS and the BSDs (MAP_FIXED remap), exercised on this system."""
    out = run_checked(
        """
        import linalloc._vm as vm
        vm._vm = vm.PosixVM(decommit_by_remap=True)
        def protections(base, size):
            found = {}
            with open("/proc/self/maps") as f:
                for line in f:
                    span, perms = line.split()[:2]
                    lo, hi = (int(x, 16) for x in span.split("-"))
                    overlap = min(hi, base + size) - max(lo, base)
                    if overlap > 0:
                        found[perms] = found.get(perms, 0) + overlap
            return found

        arena = BumpArenaLazy(1 << 30)
        view = arena.alloc_uninit_slice(Layout(32 * MiB))
        base = address(view)
        ctypes.memset(base, 0xCD, len(view))
        r1 = rss()
        del view
        arena.reset()
        assert arena.trim() == 32 * MiB
        assert r1 - rss() >= 31 * MiB
        # fresh pages, still readable and writable (they read as zero)
        assert protections(base, 1 << 30) == {"rw-p": 32 * MiB, "---p": (1 << 30) - 32 * MiB}
        assert ctypes.string_at(base, 4096) == bytes(4096)
        again = arena.alloc_uninit_slice(Layout(32 * MiB))
        assert bytes(again) == bytes(len(again))
        again[-1] = 1
        del again
        arena.close()
        assert mapped(base, 1 << 30) < 1 << 29
        print("ok")
        """
    )
    assert out.strip() == "ok"


@pytest.mark.parametrize(
    ("platform", "remap"),
    [("linux", False), ("darwin", True), ("freebsd14", True), ("netbsd10", True)],
)
def test_only_linux_decommits_with_madvise(platform: str, remap: bool) -> None:
    """MADV_DONTNEED frees and zeroes pages on Linux only: elsewhere the remap."""
    proc = run_python(
        f"""
        import importlib, sys
        from linalloc import _ffi, _vm
        _ffi.load()  # (its imports read sys.platform themselves)
        real, sys.platform = sys.platform, {platform!r}
        importlib.reload(_vm)  # the default is chosen when the class is defined
        vm = _vm.PosixVM()
        sys.platform = real
        print(vm.decommit_by_remap)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(remap)


# -- the resident set size that the tour and the examples print ------------------


def test_rss_reader_sees_commits_and_trim_on_this_system() -> None:
    """linalloc._rss reads RSS on Linux, macOS and Windows alike: it must move."""
    out = run_python(
        """
        import ctypes
        from linalloc import BumpArenaLazy, Layout, address
        from linalloc._rss import rss_bytes
        MiB = 1 << 20
        arena = BumpArenaLazy(1 << 30)
        r0 = rss_bytes()
        view = arena.alloc_uninit_slice(Layout(64 * MiB))
        ctypes.memset(address(view), 1, len(view))
        r1 = rss_bytes()
        del view
        arena.reset()
        arena.trim()
        r2 = rss_bytes()
        print(r0 > 0, r1 - r0 >= 60 * MiB, r1 - r2 >= 60 * MiB)
        """
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "True"]


def test_rss_readers_of_other_systems_answer_none_here() -> None:
    from linalloc import _rss

    # The documented layouts: MACH_TASK_BASIC_INFO_COUNT is 12 (natural_t words).
    assert ctypes.sizeof(_rss.MachTaskBasicInfo) == 48
    word = ctypes.sizeof(ctypes.c_size_t)
    assert ctypes.sizeof(_rss.ProcessMemoryCounters) == 8 + 8 * word
    readers = {"linux": _rss.rss_linux, "darwin": _rss.rss_macos, "win32": _rss.rss_windows}
    for platform, reader in readers.items():
        if not sys.platform.startswith(platform):
            assert reader() is None, platform  # absent there: None, never an exception
