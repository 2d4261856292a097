"""The fast allocation paths: windows of values, deferred zeroing, the thread check.

Typed arenas (and ``BumpArena.alloc`` of one type in a row) hand values out of
a *window*: values made ahead for the next slots. These tests check that the
window never shows: values made ahead are not views, ``len``/``used`` are
exact, a closed arena or another thread is refused even while a window is
open, slots reused after ``reset()`` read as zero, and an arena with no cycle
is freed (and its memory released) by ``del`` alone, without the collector.
"""

from __future__ import annotations

import ctypes
import gc
import os
import site
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import pytest
from conftest import mapped, needs_maps

from linalloc import (
    BumpArena,
    BumpArenaLazy,
    Layout,
    TypedArena,
    TypedArenaLazy,
    address,
    page_size,
)


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double), ("z", ctypes.c_int32)]


class Node(ctypes.Structure):
    pass


Node._fields_ = [("value", ctypes.c_int64), ("next", ctypes.POINTER(Node))]

SIZE = ctypes.sizeof(Point)


def other_thread(call: Callable[[], Any]) -> BaseException | None:
    """Run ``call`` in a new thread; the exception it raised, if any."""
    caught: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            caught.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return caught[0] if caught else None


# -- typed arenas ---------------------------------------------------------------------


@pytest.mark.parametrize("drop", [False, True], ids=["no_drop", "drop"])
def test_values_made_ahead_are_not_views(typed_cls: Any, drop: bool) -> None:
    arena = typed_cls(Point, 1000, drop=(lambda v: None) if drop else None)
    kept = [arena.alloc() for _ in range(3)]  # the first window holds more than 3
    assert arena.live_views() == 3 and len(arena) == 3
    del kept[0]
    assert arena.live_views() == 2
    with pytest.raises(BufferError, match="2 views"):
        arena.reset()
    del kept
    arena.reset()
    assert len(arena) == 0 and arena.live_views() == 0


@pytest.mark.parametrize("drop", [False, True], ids=["no_drop", "drop"])
def test_len_and_addresses_across_windows(typed_cls: Any, drop: bool) -> None:
    arena = typed_cls(Point, 2000, drop=(lambda v: None) if drop else None)
    base = ctypes.addressof(arena.alloc())
    for k in range(1, 1500):
        assert ctypes.addressof(arena.alloc()) == base + k * SIZE
        assert len(arena) == k + 1
    assert arena.used == 1500 * SIZE


@pytest.mark.parametrize("drop", [False, True], ids=["no_drop", "drop"])
def test_slots_reused_after_reset_read_zero(typed_cls: Any, drop: bool) -> None:
    arena = typed_cls(Point, 3000, drop=(lambda v: None) if drop else None)
    for k in range(2500):
        arena.alloc(1.5, 2.5, k + 1)
    arena.reset()  # zeroing is deferred to the windows that reuse the slots
    few = [arena.alloc() for _ in range(100)]
    for value in few:
        assert (value.x, value.y, value.z) == (0.0, 0.0, 0)
        value.x, value.z = -1.0, -1
    del few, value
    arena.reset()
    values = [arena.alloc() for _ in range(3000)]
    assert [(v.x, v.y, v.z) for v in values] == [(0.0, 0.0, 0)] * 3000
    assert arena.alloc() is None


def test_alloc_raw_between_windows(typed_cls: Any) -> None:
    arena = typed_cls(ctypes.c_int64, 600)
    for k in range(600):
        value = arena.alloc_raw(k) if k % 3 else arena.alloc(k)
        assert value.value == k
    assert [v.value for v in arena] == list(range(600))
    assert arena.alloc_raw(1) is None and arena.alloc() is None


def test_failed_constructor_inside_a_window_changes_nothing(typed_cls: Any) -> None:
    arena = typed_cls(Point, 100)
    first = arena.alloc(1.0, 2.0, 3)
    with pytest.raises(TypeError):
        arena.alloc(1.0, 2.0, "not an int")
    assert len(arena) == 1 and arena.live_views() == 1
    second = arena.alloc()
    assert ctypes.addressof(second) == ctypes.addressof(first) + SIZE
    assert (second.x, second.y, second.z) == (0.0, 0.0, 0)


@pytest.mark.parametrize("drop", [False, True], ids=["no_drop", "drop"])
def test_closed_arena_refuses_alloc_with_a_window_open(typed_cls: Any, drop: bool) -> None:
    arena = typed_cls(Point, 100, drop=(lambda v: None) if drop else None)
    arena.alloc()  # opens a window with values still to hand out
    arena.close()
    for call in (arena.alloc, lambda: arena.alloc(1.0), lambda: arena.alloc_raw((1.0, 2.0, 3))):
        with pytest.raises(ValueError, match="closed"):
            call()


@pytest.mark.parametrize("drop", [False, True], ids=["no_drop", "drop"])
def test_other_thread_refused_with_a_window_open(typed_cls: Any, drop: bool) -> None:
    arena = typed_cls(Point, 100, drop=(lambda v: None) if drop else None)
    arena.alloc()
    for call in (arena.alloc, lambda: arena.alloc(1.0, 2.0, 3)):
        assert isinstance(other_thread(call), RuntimeError)
    assert len(arena) == 1
    shared = typed_cls(Point, 100, check_thread=False)
    shared.alloc()
    assert other_thread(shared.alloc) is None and len(shared) == 2


def test_drop_at_collection_drops_only_values_handed_out(typed_cls: Any) -> None:
    dropped: list[int] = []
    arena = typed_cls(ctypes.c_int64, 1000, drop=lambda v: dropped.append(v.value))
    for k in range(10):  # the window reaches past the tenth slot
        arena.alloc(k)
    del arena
    gc.collect()
    assert dropped == list(range(9, -1, -1))


# -- bump arenas ----------------------------------------------------------------------


def test_bump_window_is_exact_between_other_allocations(bump_cls: Any) -> None:
    arena = bump_cls(4096)
    p1, p2 = arena.alloc(Point), arena.alloc(Point)
    assert arena.used == 2 * SIZE and address(p2) - address(p1) == SIZE
    raw = arena.alloc_uninit_slice(Layout(3))  # gives the window's other slots back
    assert arena.used == 2 * SIZE + 3 and address(raw) - address(p1) == 2 * SIZE
    p3 = arena.alloc(Point)  # aligned to 8 again
    assert address(p3) - address(p1) == 56 and arena.used == 56 + SIZE
    row = arena.alloc_array(ctypes.c_int8, 5)
    assert address(row) - address(p1) == 56 + SIZE and arena.used == 56 + SIZE + 5
    p1.x, p2.x, p3.x = 1.0, 2.0, 3.0
    raw[:] = b"abc"
    row[:] = [9] * 5
    assert (p1.x, p2.x, p3.x, bytes(raw), list(row)) == (1.0, 2.0, 3.0, b"abc", [9] * 5)
    assert arena.live_views() == 5


def test_bump_values_made_ahead_are_not_views(bump_cls: Any) -> None:
    arena = bump_cls(1 << 16)
    values = [arena.alloc(Point) for _ in range(100)]  # windows double: some made ahead
    assert arena.used == 100 * SIZE and arena.live_views() == 100
    assert len({address(v) for v in values}) == 100
    del values[50:]
    assert arena.live_views() == 50
    with pytest.raises(BufferError, match="50 views"):
        arena.reset()
    assert arena.used == 100 * SIZE
    first = address(values[0])
    del values
    arena.reset()
    assert arena.used == 0 and address(arena.alloc(Point)) == first


def test_bump_pointer_types_come_zeroed_in_windows(bump_cls: Any) -> None:
    arena = bump_cls(4096)
    dirty = arena.alloc_uninit_slice(Layout(4096))
    dirty[:] = b"\xff" * 4096
    del dirty
    arena.reset()
    nodes = [arena.alloc(Node) for _ in range(4096 // ctypes.sizeof(Node))]
    assert all(not node.next and node.value == 0 for node in nodes)


def test_bump_closed_and_other_thread_with_a_window_open(bump_cls: Any) -> None:
    arena = bump_cls(4096)
    arena.alloc(Point)
    arena.alloc(Point)  # a window with values still to hand out
    assert isinstance(other_thread(lambda: arena.alloc(Point)), RuntimeError)
    assert isinstance(other_thread(lambda: arena.alloc_uninit_slice(Layout(8))), RuntimeError)
    assert arena.used == 2 * SIZE
    arena.close()
    for call in (
        lambda: arena.alloc(Point),
        lambda: arena.alloc_uninit_slice(Layout(8)),
        lambda: arena.alloc_uninit_slice(Layout(0)),
        lambda: arena.alloc_array(ctypes.c_int8, 2),
    ):
        with pytest.raises(ValueError, match="closed"):
            call()


def test_bump_lazy_trim_with_a_window_open() -> None:
    arena = BumpArenaLazy(1 << 30)
    kept = [arena.alloc(Point) for _ in range(10)]
    arena.trim()  # keeps the pages the ten values are in
    step = arena.commit_step
    assert arena.used == 10 * SIZE and arena.committed == page_size()
    more = [arena.alloc(Point) for _ in range(10_000)]  # commits again
    for k, value in enumerate(kept + more):
        value.z = k
    assert [v.z for v in kept + more] == list(range(10_010))
    assert arena.used == 10_010 * SIZE
    assert arena.committed == -(-arena.used // step) * step


# -- the thread check -----------------------------------------------------------------


def test_thread_started_after_the_owner_ended_is_refused() -> None:
    """A new thread may get the ended owner's id: it is still another thread."""
    made: list[Any] = []
    owner = threading.Thread(target=lambda: made.extend([TypedArena(Point, 4), BumpArena(64)]))
    owner.start()
    owner.join()
    typed, bump = made
    for call in (typed.alloc, lambda: bump.alloc(Point), typed.reset, bump.reset):
        assert isinstance(other_thread(call), RuntimeError)


# -- nothing refers back to the arena ---------------------------------------------------


@needs_maps
@pytest.mark.parametrize(
    "make",
    [
        lambda: TypedArenaLazy(Point, 1 << 20),
        lambda: TypedArenaLazy(Point, 1 << 20, drop=lambda v: None),
        lambda: BumpArenaLazy(1 << 24),
    ],
    ids=["typed", "typed_drop", "bump"],
)
def test_del_releases_the_memory_without_the_collector(make: Callable[[], Any]) -> None:
    gc.collect()
    gc.disable()
    try:
        arena = make()
        value = arena.alloc() if isinstance(arena, TypedArenaLazy) else arena.alloc(Point)
        arena.alloc_raw((1.0, 2.0, 3)) if isinstance(arena, TypedArenaLazy) else arena.alloc(Point)
        where = address(value)
        del value
        assert mapped(where)
        del arena  # no cycle holds it: freed now, and so is the reservation
        assert not mapped(where)
    finally:
        gc.enable()


# -- import cost ------------------------------------------------------------------------


def test_import_loads_no_heavy_modules() -> None:
    """typing, threading, functools and importlib each cost milliseconds to import.

    Run without ``site`` (``-S``), which may import some of them itself. Eager
    arenas only: a source checkout's lazy arenas import platformdirs (and what
    it imports) to find the generated cffi module; an installed one does not.
    """
    code = """if True:
        import ctypes, sys
        import linalloc
        linalloc.BumpArena(64).alloc_uninit_slice(linalloc.Layout(8, 8))
        linalloc.BumpArena(64).alloc(ctypes.c_int)
        linalloc.TypedArena(ctypes.c_int, 4).alloc(1)
        heavy = {"typing", "threading", "functools", "collections", "importlib", "re"}
        print(sorted(heavy & set(sys.modules)))
    """
    paths = [str(Path(__file__).resolve().parent.parent), *site.getsitepackages()]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    proc = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout
