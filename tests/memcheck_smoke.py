"""A smoke run of all four arenas, small enough to run under valgrind memcheck.

Allocates, writes and reads through every kind of view, refuses and performs
resets, trims, runs drop callbacks (one of them keeping the values), closes,
and uses views after their arena is gone and the memory around has been
reused. Prints ``SMOKE OK`` at the end; any failed check raises.

    PYTHONMALLOC=malloc valgrind --tool=memcheck --error-exitcode=99 \\
        --suppressions=tests/valgrind.supp python tests/memcheck_smoke.py
"""

from __future__ import annotations

import ctypes
import gc
import sys
from typing import Any

import linalloc
from linalloc import Layout, address

try:
    import numpy
except ImportError:  # pragma: no cover - numpy is a test dependency
    numpy = None


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double), ("n", ctypes.c_int32)]


class Named(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("n", ctypes.c_int32)]


def churn() -> None:
    """Allocate and free memory of several sizes, so freed memory gets reused."""
    junk = [bytearray(b"\x5a" * size) for size in (24, 4096, 70_000, 1 << 20) for _ in range(8)]
    del junk


def refused(call: Any) -> str:
    try:
        call()
    except BufferError as exc:
        return str(exc)
    raise AssertionError("not refused while a view lives")


def bump(kind: str) -> None:
    cls = getattr(linalloc, kind)
    arena = cls(1 << 18)
    views = []
    for k in range(200):
        view = arena.alloc_uninit_slice(Layout(1 + k % 61, 1 << (k % 7)))
        view[:] = bytes([k % 256]) * len(view)
        views.append(view)
    number = arena.alloc(ctypes.c_int64)
    number.value = -42
    row = arena.alloc_array(ctypes.c_double, 100)
    row[:] = [float(i) for i in range(100)]
    named = arena.alloc(Named)
    assert named.name is None  # pointers come zeroed, never stale
    for k, view in enumerate(views):
        assert bytes(view) == bytes([k % 256]) * len(view)
    assert "203 views" in refused(arena.reset) and arena.live_views() == 203
    del view
    views.clear()
    assert "3 views" in refused(arena.reset) and arena.live_views() == 3
    outlive = [memoryview(row), (ctypes.c_ubyte * 8).from_buffer(number)]
    del number, row, named
    assert "2 views" in refused(arena.close)
    del outlive
    arena.reset()
    assert arena.live_views() == 0
    # Pointers come zeroed, never stale: every byte dirty, reset, then every path.
    dirty = arena.alloc_uninit_slice(Layout(arena.capacity))
    dirty[:] = b"\x77" * arena.capacity
    del dirty
    arena.reset()
    # (in this order: a window clears more slots than it hands out)
    pointers = [arena.alloc(ctypes.c_char_p) for _ in range(5)]  # from_buffer
    table = arena.alloc_array(Named, 10)
    names = [arena.alloc(Named) for _ in range(40)]  # windows
    for obj in [*names, *pointers, table]:  # the bytes first: a stale pointer would crash
        size = ctypes.sizeof(obj)
        assert ctypes.string_at(ctypes.addressof(obj), size) == bytes(size)
    assert all(n.name is None for n in names) and all(p.value is None for p in pointers)
    assert all(n.name is None for n in table)
    del names, pointers, table, obj
    arena.reset()
    if kind.endswith("Lazy"):
        assert arena.trim() > 0 and arena.committed == 0
    full = arena.alloc_uninit_slice(Layout(arena.capacity))
    full[:] = b"\x11" * arena.capacity
    assert arena.alloc_uninit_slice(Layout(1)) is None
    tail = full[-16:]
    array = numpy.frombuffer(full[:32], dtype=numpy.uint8) if numpy is not None else None
    del full
    # The arena goes while a view lives; the memory must stay until the view goes.
    del arena
    gc.collect()
    churn()
    assert bytes(tail) == b"\x11" * 16
    tail[:] = b"\x22" * 16
    assert bytes(tail) == b"\x22" * 16
    if array is not None:
        assert array.tobytes() == b"\x11" * 32
    del tail, array
    churn()
    with cls(4096) as closing:
        closing.alloc(ctypes.c_int32)
    try:
        closing.alloc(ctypes.c_int32)
    except ValueError:
        pass
    else:
        raise AssertionError("a closed arena allocated")


def typed(kind: str) -> None:
    cls = getattr(linalloc, kind)
    dropped: list[int] = []
    arena = cls(Point, 5000, drop=lambda p: dropped.append(p.n))
    for n in range(3000):
        arena.alloc(n * 0.5, -n * 0.5, n)
    assert sum(p.n for p in arena) == sum(range(3000))
    array = arena.as_array()
    assert array[2999].n == 2999
    assert "1 view" in refused(arena.reset)
    del array
    arena.reset()
    assert dropped == list(range(2999, -1, -1))
    if kind.endswith("Lazy"):
        assert arena.trim() > 0
    first = arena.alloc_raw((1.0, 2.0, 7))
    assert address(first) == address(arena.as_array())
    kept: list[Any] = []
    keeper = cls(Point, 16, drop=kept.append)
    for n in range(10):
        keeper.alloc(0.0, 0.0, 100 + n)
    keeper.close()  # the callback kept every value: their memory must outlive close()
    churn()
    assert [p.n for p in kept] == list(range(109, 99, -1))
    for p in kept:
        p.x = 3.5
    del keeper
    churn()
    assert all(p.x == 3.5 for p in kept)
    kept.clear()
    # The arena goes while a value lives; it is dropped when the value goes.
    dropped.clear()
    del arena
    gc.collect()
    churn()
    assert first.n == 7 and dropped == []
    first.y = 9.0
    del first
    gc.collect()
    assert dropped == [7]
    simple = cls(ctypes.c_int64, 64)
    values = [simple.alloc(n) for n in range(64)]
    assert simple.alloc(64) is None and [v.value for v in values] == list(range(64))
    del values
    simple.close()
    # Pointers come zeroed, never stale: every slot dirty, reset, then allocate again.
    for drop in (None, lambda v: None):
        named = cls(Named, 64, drop=drop)
        for _ in range(2):
            taken = [named.alloc() for _ in range(64)]
            for value in taken:
                ctypes.memset(ctypes.addressof(value), 0x77, ctypes.sizeof(Named))
            del taken, value
            named.reset()
        fresh = [named.alloc() if n % 2 else named.alloc(n=n) for n in range(64)]
        assert all(
            not ctypes.cast(ctypes.addressof(v), ctypes.POINTER(ctypes.c_void_p))[0] for v in fresh
        )
        assert all(v.name is None for v in fresh)
        del fresh
        named.close()


def main() -> int:
    for kind in ("BumpArena", "BumpArenaLazy"):
        bump(kind)
    for kind in ("TypedArena", "TypedArenaLazy"):
        typed(kind)
    gc.collect()
    print("SMOKE OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
