"""``python -m linalloc``: a tour of the four arenas, with real output, in a few seconds.

Each step runs on the machine at hand and prints what it measured. Steps that
need something this platform lacks (a C library to call, ``/proc`` for the
resident set size) say so and go on.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import platform
import sys
import timeit
from typing import Any, Callable

from . import (
    BumpArena,
    BumpArenaLazy,
    Layout,
    TypedArena,
    TypedArenaLazy,
    __version__,
    address,
    page_size,
)
from ._rss import rss_bytes  # the tour's one reader; a test replaces it here

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB


class Point(ctypes.Structure):
    """The struct the tour hands to C."""

    _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double)]


def _size(n: int) -> str:
    """``n`` bytes, readable: 65536 -> '64 KiB'."""
    for unit, name in ((TiB, "TiB"), (GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
        if n >= unit:
            value = n / unit
            return f"{value:.0f} {name}" if value == int(value) else f"{value:.1f} {name}"
    return f"{n} B"


def _rss() -> str:
    rss = rss_bytes()
    return "n/a (no /proc/self/statm here)" if rss is None else _size(rss)


def load_libc() -> Any | None:
    """The C library, for ``qsort``; None when it cannot be found."""
    if sys.platform == "win32":
        try:
            return ctypes.cdll.msvcrt
        except OSError:
            return None
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name)  # name None: the running program, which has libc linked in
    except OSError:
        return None


def _heading(n: int, title: str) -> None:
    print(f"\n{n}. {title}")


def bump_step() -> None:
    _heading(1, "BumpArena: raw bytes from one buffer, addresses that never move")
    arena = BumpArena(64)
    print(f"   arena = BumpArena(64)        -> {arena!r}")
    first = arena.alloc(ctypes.c_uint8)
    assert first is not None
    base = address(first)

    def show(label: str, obj: object) -> None:
        if obj is None:
            print(f"   {label:<36} -> None (full: the arena never grows)  used={arena.used}")
            return
        at = address(obj)
        print(f"   {label:<36} -> 0x{at:x} (+{at - base:<2}) used={arena.used}")

    show("alloc(c_uint8)", first)
    number = arena.alloc(ctypes.c_uint64)
    show("alloc(c_uint64)  # aligned to 8", number)
    assert number is not None
    number.value = 42
    view = arena.alloc_uninit_slice(Layout(32, 16))
    show("alloc_uninit_slice(Layout(32, 16))", view)
    show("alloc_array(c_uint32, 8)  # 32 more", arena.alloc_array(ctypes.c_uint32, 8))
    print(f"   the c_uint64 still reads {number.value}; a refused request changed nothing")
    del first, number, view
    arena.close()


def typed_to_c_step() -> None:
    _heading(2, "TypedArena: structs in contiguous slots, handed to C's qsort")
    arena = TypedArena(Point, 8)
    for x, y in ((3.0, 0.5), (-1.0, 2.0), (2.0, -4.0), (0.0, 1.0)):
        arena.alloc(x, y)
    first = next(iter(arena))
    print(
        f"   {len(arena)} Points at 0x{address(first):x}, "
        f"{ctypes.sizeof(Point)} bytes apart: {[(p.x, p.y) for p in arena]}"
    )
    del first
    libc = load_libc()
    if libc is None or not hasattr(libc, "qsort"):
        print("   skipped: no C library with qsort found on this system")
        arena.close()
        return
    compare_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(Point), ctypes.POINTER(Point))

    def by_x(a: Any, b: Any) -> int:
        ax: float = a.contents.x
        bx: float = b.contents.x
        return (ax > bx) - (ax < bx)

    compare = compare_type(by_x)
    libc.qsort.restype = None
    libc.qsort.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, compare_type]
    array = arena.as_array()  # Point * len(arena), over the arena's own memory
    libc.qsort(array, len(array), ctypes.sizeof(Point), compare)
    del array
    print(f"   qsort(arena.as_array(), ...) sorted them in place: {[p.x for p in arena]}")
    arena.close()


def reset_rule_step() -> None:
    _heading(3, "reset() while a value is held: refused at run time, not a dangling pointer")
    arena = TypedArena(Point, 100)
    value = arena.alloc(1.0, 2.0)
    print("   value = arena.alloc(1.0, 2.0); arena.reset()")
    try:
        arena.reset()
    except BufferError as exc:
        print(f"   BufferError: {exc}")
    else:  # pragma: no cover - the rule failed; say so loudly
        print("   reset() was NOT refused")
    del value
    arena.reset()
    print(f"   del value; arena.reset()  -> accepted, len(arena) = {len(arena)}")
    arena.close()


def lazy_step() -> None:
    _heading(4, "BumpArenaLazy: reserve 1 TiB of address space, commit only what is used")
    capacity = TiB
    try:
        arena = BumpArenaLazy(capacity)
    except (OSError, OverflowError) as exc:
        capacity = GiB
        print(f"   1 TiB refused here ({exc}); using {_size(capacity)} instead")
        try:
            arena = BumpArenaLazy(capacity)
        except (OSError, OverflowError) as exc2:
            print(f"   skipped: cannot reserve {_size(capacity)} either ({exc2})")
            return
    touch = 64 * MiB
    print(f"   arena = BumpArenaLazy({_size(capacity)})")
    print(f"   before:   used 0       committed {_size(arena.committed):<8} RSS {_rss()}")
    view = arena.alloc_uninit_slice(Layout(touch, page_size()))
    if view is None:
        print(f"   could not commit {_size(touch)}: OS error code {arena.last_os_error_code}")
        arena.close()
        return
    ctypes.memset(address(view), 0xA5, touch)  # touch every page
    print(
        f"   touched:  used {_size(arena.used):<7} committed {_size(arena.committed):<8} "
        f"RSS {_rss()}"
    )
    del view
    arena.reset()
    released = arena.trim()
    print(
        f"   reset() + trim() gave {_size(released)} back: committed "
        f"{_size(arena.committed)}, RSS {_rss()}"
    )
    arena.close()
    shift = 30 if capacity == TiB else 20
    slots = 1 << shift
    try:
        typed = TypedArenaLazy(Point, slots)
    except (OSError, OverflowError) as exc:
        print(f"   TypedArenaLazy(Point, 1 << {shift}): cannot reserve here ({exc})")
        return
    typed.alloc(1.0, 2.0)
    print(
        f"   TypedArenaLazy(Point, 1 << {shift}): {_size(slots * ctypes.sizeof(Point))} reserved, "
        f"{_size(typed.committed)} committed after one alloc"
    )
    typed.close()


def _per_call_ns(
    stmt: str, names: dict[str, Any], number: int, before: Callable[[], None]
) -> float:
    """Best of five runs of ``stmt`` (``number`` times each), in ns per run."""
    best = float("inf")
    for _ in range(5):
        before()
        best = min(best, timeit.Timer(stmt, globals=names).timeit(number))
    return best / number * 1e9


def speed_step() -> None:
    _heading(5, "speed: one allocation, measured just now")
    number = 100_000
    arena = TypedArena(Point, number)
    gc.collect()
    names = {"alloc": arena.alloc, "Point": Point}
    arena_ns = _per_call_ns("alloc()", names, number, arena.reset)
    plain_ns = _per_call_ns("Point()", names, number, lambda: None)
    print(
        f"   TypedArena(Point, n).alloc(): {arena_ns:.0f} ns, Point(): {plain_ns:.0f} ns "
        f"(ratio {arena_ns / plain_ns:.2f})"
    )
    arena.close()


def main(argv: list[str] | None = None) -> int:
    """Run the tour; returns the exit status."""
    if argv:
        print(f"python -m linalloc: unexpected arguments {argv}; try --help", file=sys.stderr)
        return 2
    print(
        f"linalloc {__version__} tour: CPython {platform.python_version()} on "
        f"{sys.platform} {platform.machine()}, page size {page_size()}"
    )
    bump_step()
    typed_to_c_step()
    reset_rule_step()
    lazy_step()
    speed_step()
    print("\nNext: the examples/ directory and README.md.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
