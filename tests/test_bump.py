"""BumpArena and BumpArenaLazy: every test runs against both (``bump_cls``)."""

from __future__ import annotations

import copy
import ctypes
import gc
import pickle
import sys
from typing import Any, Callable

import numpy as np
import pytest
from conftest import run_in_thread, run_python

import linalloc
from linalloc import Layout, address


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double)]


class Mixed(ctypes.Structure):
    _fields_ = [("a", ctypes.c_char), ("b", ctypes.c_int64), ("c", ctypes.c_int16)]


class HoldsObject(ctypes.Structure):
    _fields_ = [("n", ctypes.c_int), ("obj", ctypes.py_object)]


class Outer(ctypes.Structure):
    _fields_ = [("inner", HoldsObject * 2)]


class EitherObject(ctypes.Union):
    _fields_ = [("n", ctypes.c_int64), ("obj", ctypes.py_object)]


PY_OBJECT_TYPES: list[Any] = [
    ctypes.py_object,
    HoldsObject,
    Outer,
    EitherObject,
    ctypes.py_object * 3,
    (HoldsObject * 2) * 2,
]


def filled(arena: Any, sizes: list[tuple[int, int]]) -> list[tuple[memoryview, bytes]]:
    """Allocate one slice per (size, align), fill each with distinct bytes."""
    out = []
    for i, (size, align) in enumerate(sizes):
        view = arena.alloc_uninit_slice(Layout(size, align))
        assert view is not None
        data = bytes((i * 37 + j) % 251 + 1 for j in range(size))
        view[:] = data
        out.append((view, data))
    return out


def assert_unchanged(arena: Any, used: int, views: list[tuple[memoryview, bytes]]) -> None:
    assert arena.used == used
    for view, data in views:
        assert bytes(view) == data


def base_address(arena: Any) -> int:
    """Address of the arena's first byte (an empty view at used == 0)."""
    assert arena.used == 0
    view = arena.alloc_uninit_slice(Layout(0))
    try:
        return address(view)
    finally:
        view.release()


# -- alloc_uninit_slice -------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 3, 8, 100, 4096, 70_000])
def test_slice_is_writable_contiguous_1d_bytes(bump_cls: Any, size: int) -> None:
    arena = bump_cls(200_000)
    view = arena.alloc_uninit_slice(Layout(size, 8))
    assert isinstance(view, memoryview)
    assert not view.readonly
    assert view.contiguous and view.c_contiguous
    assert view.ndim == 1
    assert view.format == "B" and view.itemsize == 1
    assert len(view) == size and view.nbytes == size
    view[0] = 255
    view[-1] = 7
    assert view[0] == (255 if size > 1 else 7) and view[size - 1] == 7
    data = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    view[:] = data
    assert bytes(view) == data
    assert address(view) % 8 == 0


@pytest.mark.parametrize("shift", range(0, 17))
def test_slice_alignment_up_to_large_powers(bump_cls: Any, shift: int) -> None:
    align = 1 << shift
    arena = bump_cls(4 * align + 64)
    first = arena.alloc_uninit_slice(Layout(1))  # knock the bump pointer off alignment
    assert first is not None
    view = arena.alloc_uninit_slice(Layout(3, align))
    assert view is not None and len(view) == 3
    assert address(view) % align == 0
    assert address(view) >= address(first) + 1
    assert address(view) - address(first) <= align


def test_slice_address_space_is_contiguous(bump_cls: Any) -> None:
    arena = bump_cls(256)
    a = arena.alloc_uninit_slice(Layout(10))
    b = arena.alloc_uninit_slice(Layout(6))
    c = arena.alloc_uninit_slice(Layout(16, 16))
    assert address(b) == address(a) + 10
    assert address(c) % 16 == 0 and 0 <= address(c) - (address(b) + 6) < 16


def test_zero_size_slice_is_empty_and_does_not_advance(bump_cls: Any) -> None:
    arena = bump_cls(64)
    arena.alloc_uninit_slice(Layout(5))
    for align in (1, 8, 32):
        empty = arena.alloc_uninit_slice(Layout(0, align))
        assert isinstance(empty, memoryview)
        assert len(empty) == 0 and empty.format == "B" and not empty.readonly
        assert arena.used == 5
    full = bump_cls(4)
    full.alloc_uninit_slice(Layout(4))
    empty = full.alloc_uninit_slice(Layout(0, 8))
    assert empty is not None and len(empty) == 0
    assert full.used == 4


def test_slice_none_when_full_changes_nothing(bump_cls: Any) -> None:
    arena = bump_cls(100)  # not a whole page: the lazy arena must not go past it
    views = filled(arena, [(50, 1), (20, 4)])
    used = arena.used
    assert arena.alloc_uninit_slice(Layout(31)) is None
    assert arena.alloc_uninit_slice(Layout(200)) is None
    assert_unchanged(arena, used, views)
    last = arena.alloc_uninit_slice(Layout(100 - used))  # exactly the rest still fits
    assert last is not None and len(last) == 100 - used
    assert arena.used == 100
    assert arena.alloc_uninit_slice(Layout(1)) is None
    assert arena.used == 100
    assert_unchanged(arena, 100, views)


def test_slice_bytes_not_cleared(bump_cls: Any) -> None:
    arena = bump_cls(64)
    view = arena.alloc_uninit_slice(Layout(16, 8))
    view[:] = b"0123456789abcdef"
    del view
    arena.reset()
    again = arena.alloc_uninit_slice(Layout(16, 8))
    assert bytes(again) == b"0123456789abcdef"


def test_slice_wants_a_layout(bump_cls: Any) -> None:
    arena = bump_cls(64)
    views = filled(arena, [(8, 8)])
    for bad in [(8, 8), 8, None, "8", Layout, ctypes.c_int]:
        with pytest.raises(TypeError):
            arena.alloc_uninit_slice(bad)
        assert_unchanged(arena, 8, views)


# -- alloc / alloc_array ------------------------------------------------------------


@pytest.mark.parametrize(
    "ctype",
    [ctypes.c_char, ctypes.c_int16, ctypes.c_int64, ctypes.c_double, Point, Mixed],
    ids=lambda t: t.__name__,
)
def test_alloc_instance_aligned_in_arena(bump_cls: Any, ctype: Any) -> None:
    arena = bump_cls(256)
    base = base_address(arena)
    arena.alloc_uninit_slice(Layout(1))
    value = arena.alloc(ctype)
    assert type(value) is ctype
    align = ctypes.alignment(ctype)
    assert ctypes.addressof(value) % align == 0
    assert address(value) == ctypes.addressof(value)
    # The first aligned address after the 1-byte slice: no more padding than that.
    expected = base + 1 + (-(base + 1) % align)
    assert address(value) == expected
    assert arena.used == expected - base + ctypes.sizeof(ctype)


def test_alloc_lives_in_arena_memory(bump_cls: Any) -> None:
    arena = bump_cls(64)
    raw = arena.alloc_uninit_slice(Layout(0, 8))
    raw_address = address(raw)
    point = arena.alloc(Point)
    assert ctypes.addressof(point) == raw_address
    point.x, point.y = 1.5, -2.0
    back = Point.from_address(raw_address)
    assert (back.x, back.y) == (1.5, -2.0)


def test_alloc_array(bump_cls: Any) -> None:
    arena = bump_cls(256)
    arena.alloc_uninit_slice(Layout(3))
    arr = arena.alloc_array(ctypes.c_int32, 10)
    assert isinstance(arr, ctypes.Array)
    assert type(arr)._type_ is ctypes.c_int32 and type(arr)._length_ == 10
    assert ctypes.sizeof(arr) == 40
    assert ctypes.addressof(arr) % 4 == 0
    arr[:] = list(range(10))
    assert list(arr) == list(range(10))
    points = arena.alloc_array(Point, 3)
    assert type(points)._type_ is Point and len(points) == 3
    assert ctypes.addressof(points) % ctypes.alignment(Point) == 0
    empty = arena.alloc_array(ctypes.c_int64, 0)
    assert empty is not None and len(empty) == 0


def test_alloc_none_when_full_changes_nothing(bump_cls: Any) -> None:
    arena = bump_cls(100)
    views = filled(arena, [(90, 1)])
    assert arena.alloc(ctypes.c_int64 * 2) is None
    assert arena.alloc(Point) is None
    assert arena.alloc_array(ctypes.c_int32, 3) is None
    assert arena.alloc_array(ctypes.c_char, 11) is None
    assert_unchanged(arena, 90, views)
    value = arena.alloc(ctypes.c_int16)
    assert value is not None and arena.used == 92
    last = arena.alloc_array(ctypes.c_char, 8)
    assert last is not None and arena.used == 100
    assert arena.alloc(ctypes.c_char) is None


@pytest.mark.parametrize("n", [10**6, sys.maxsize, sys.maxsize + 1, 10**30])
def test_alloc_array_huge_n_is_none(bump_cls: Any, n: int) -> None:
    arena = bump_cls(64)
    views = filled(arena, [(8, 8)])
    assert arena.alloc_array(ctypes.c_int64, n) is None
    assert_unchanged(arena, 8, views)


def test_alloc_array_of_zero_size_type_huge_n(bump_cls: Any) -> None:
    arena = bump_cls(16)
    empty_type = ctypes.c_int32 * 0
    assert arena.alloc_array(empty_type, 10**30) is None
    assert arena.used == 0
    many = arena.alloc_array(empty_type, 1000)
    assert many is not None and len(many) == 1000 and ctypes.sizeof(many) == 0


# -- used, capacity -----------------------------------------------------------------


def test_used_counts_padding(bump_cls: Any) -> None:
    arena = bump_cls(1024)
    base = base_address(arena)
    assert arena.used == 0
    arena.alloc_uninit_slice(Layout(1))
    assert arena.used == 1
    view = arena.alloc_uninit_slice(Layout(8, 8))
    start = address(view) - base
    assert start % 8 == (-base) % 8 and start >= 1
    assert arena.used == start + 8
    arena.alloc(ctypes.c_char)
    value = arena.alloc(ctypes.c_int64)
    assert arena.used == ctypes.addressof(value) - base + 8
    arena.alloc_uninit_slice(Layout(3, 64))
    assert (base + arena.used - 3) % 64 == 0


def test_capacity_is_fixed(bump_cls: Any) -> None:
    arena = bump_cls(1000)
    assert arena.capacity == 1000
    arena.alloc_uninit_slice(Layout(600))
    assert arena.capacity == 1000
    assert arena.alloc_uninit_slice(Layout(600)) is None
    assert arena.capacity == 1000


def test_capacity_zero(bump_cls: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_system_call() -> None:
        raise AssertionError("capacity 0 must not reserve memory")

    monkeypatch.setattr(linalloc._store._vm, "get", no_system_call)
    arena = bump_cls(0)
    assert arena.capacity == 0 and arena.used == 0
    assert arena.alloc_uninit_slice(Layout(1)) is None
    assert arena.alloc(ctypes.c_char) is None
    assert arena.alloc_array(ctypes.c_int32, 1) is None
    empty = arena.alloc_uninit_slice(Layout(0, 8))
    assert empty is not None and len(empty) == 0
    del empty
    arena.reset()
    arena.close()


@pytest.mark.parametrize("bad", [1.0, 8.0, True, False, "64", None, b"1", [64]], ids=repr)
def test_capacity_not_int_is_type_error(bump_cls: Any, bad: Any) -> None:
    with pytest.raises(TypeError):
        bump_cls(bad)


@pytest.mark.parametrize("bad", [-1, -4096, -(1 << 70)])
def test_capacity_negative_is_value_error(bump_cls: Any, bad: int) -> None:
    with pytest.raises(ValueError):
        bump_cls(bad)


def test_capacity_that_cannot_be_had() -> None:
    with pytest.raises(MemoryError):
        linalloc.BumpArena(sys.maxsize)
    with pytest.raises(OSError) as info:
        linalloc.BumpArenaLazy(1 << 62)
    assert info.value.errno is not None and info.value.errno > 0


def test_check_thread_must_be_bool(bump_cls: Any) -> None:
    with pytest.raises(TypeError):
        bump_cls(64, check_thread=1)


# -- reset and live views -----------------------------------------------------------


def test_reset_frees_everything(bump_cls: Any) -> None:
    arena = bump_cls(64)
    first = arena.alloc_uninit_slice(Layout(16, 8))
    first_address = address(first)
    arena.alloc_uninit_slice(Layout(40))
    assert arena.alloc_uninit_slice(Layout(16)) is None
    del first
    arena.reset()
    assert arena.used == 0
    again = arena.alloc_uninit_slice(Layout(64))
    assert again is not None and address(again) == first_address


def make_memoryview(arena: Any) -> Any:
    return arena.alloc_uninit_slice(Layout(8, 8))


def make_ctypes_value(arena: Any) -> Any:
    return arena.alloc(ctypes.c_int64)


def make_ctypes_array(arena: Any) -> Any:
    return arena.alloc_array(Point, 2)


def make_slice(arena: Any) -> Any:
    return arena.alloc_uninit_slice(Layout(8, 8))[2:4]


def make_cast(arena: Any) -> Any:
    return arena.alloc_uninit_slice(Layout(8, 8)).cast("q")


def make_ctypes_from_view(arena: Any) -> Any:
    return ctypes.c_int64.from_buffer(arena.alloc_uninit_slice(Layout(8, 8)))


def make_numpy_from_view(arena: Any) -> Any:
    return np.frombuffer(arena.alloc_uninit_slice(Layout(16, 8)), dtype=np.int64)


def make_numpy_from_value(arena: Any) -> Any:
    return np.ctypeslib.as_array(arena.alloc_array(ctypes.c_int32, 4))


MAKERS = [
    make_memoryview,
    make_ctypes_value,
    make_ctypes_array,
    make_slice,
    make_cast,
    make_ctypes_from_view,
    make_numpy_from_view,
    make_numpy_from_value,
]


@pytest.mark.parametrize("make", MAKERS, ids=lambda f: f.__name__[5:])
def test_reset_and_close_refused_while_a_view_lives(bump_cls: Any, make: Any) -> None:
    arena = bump_cls(256)
    views = filled(arena, [(8, 8)])
    held = make(arena)
    used = arena.used
    with pytest.raises(BufferError, match=r"\b2 views\b"):
        arena.reset()
    with pytest.raises(BufferError, match=r"\b2 views\b"):
        arena.close()
    assert not arena.closed
    assert_unchanged(arena, used, views)
    del views
    with pytest.raises(BufferError, match=r"\b1 view\b"):
        arena.reset()
    assert arena.used == used
    del held
    arena.reset()
    assert arena.used == 0
    arena.close()
    assert arena.closed


def test_view_held_only_by_unreachable_cycle_does_not_block(bump_cls: Any) -> None:
    arena = bump_cls(64)

    class Node:
        pass

    enabled = gc.isenabled()
    gc.disable()
    try:
        node = Node()
        node.me = node  # type: ignore[attr-defined]
        node.view = arena.alloc_uninit_slice(Layout(8))  # type: ignore[attr-defined]
        del node
        assert arena.live_views() == 1  # the cycle still holds it
        arena.reset()
        assert arena.used == 0
        assert arena.live_views() == 0
    finally:
        if enabled:
            gc.enable()


def test_views_keep_memory_after_arena_is_gone(bump_cls: Any) -> None:
    # In a fresh interpreter: memory released too early would crash it.
    result = run_python(
        f"""
        import ctypes, gc, linalloc
        from linalloc import Layout
        arena = linalloc.{bump_cls.__name__}(1 << 20)
        view = arena.alloc_uninit_slice(Layout(1 << 17))  # several commit steps
        value = arena.alloc(ctypes.c_int64)
        values = arena.alloc_array(ctypes.c_int64, 1000)
        tail = view[-100:]
        del arena, view
        gc.collect()
        tail[:] = b"\\xab" * 100
        value.value = 12345
        values[999] = -7
        del value, values
        gc.collect()
        assert bytes(tail) == b"\\xab" * 100
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# -- close and context manager --------------------------------------------------------


def test_close_is_idempotent_and_final(bump_cls: Any) -> None:
    arena = bump_cls(64)
    assert arena.closed is False
    arena.close()
    assert arena.closed is True
    arena.close()
    assert arena.closed is True
    assert arena.capacity == 64
    calls: list[Callable[[], object]] = [
        lambda: arena.alloc_uninit_slice(Layout(1)),
        lambda: arena.alloc_uninit_slice(Layout(0)),
        lambda: arena.alloc(ctypes.c_int),
        lambda: arena.alloc_array(ctypes.c_int, 2),
        lambda: arena.used,
        arena.reset,
        arena.live_views,
        lambda: arena.__enter__(),
    ]
    if bump_cls is linalloc.BumpArenaLazy:
        calls += [lambda: arena.committed, arena.trim]
    for call in calls:
        with pytest.raises(ValueError, match="closed"):
            call()
    assert "closed" in repr(arena)


def test_context_manager_closes(bump_cls: Any) -> None:
    with bump_cls(64) as arena:
        assert isinstance(arena, bump_cls)
        view = arena.alloc_uninit_slice(Layout(8))
        view[:] = b"abcdefgh"
        del view
    assert arena.closed
    with pytest.raises(ValueError):
        arena.alloc_uninit_slice(Layout(1))


def test_context_exit_refused_while_view_lives(bump_cls: Any) -> None:
    with pytest.raises(BufferError):
        with bump_cls(64) as arena:
            view = arena.alloc_uninit_slice(Layout(8))
    assert not arena.closed
    del view
    arena.close()
    assert arena.closed


# -- address ----------------------------------------------------------------------------


def test_address(bump_cls: Any) -> None:
    arena = bump_cls(64)
    view = arena.alloc_uninit_slice(Layout(8, 8))
    value = arena.alloc(ctypes.c_int32)
    assert isinstance(address(view), int)
    assert address(value) == ctypes.addressof(value) == address(view) + 8
    assert address(view[3:]) == address(view) + 3
    ctypes.c_int64.from_address(address(view)).value = -5
    assert int.from_bytes(bytes(view), sys.byteorder, signed=True) == -5
    for bad in [b"abc", memoryview(b"abc"), 5, None, bytearray(3)]:
        with pytest.raises(TypeError):
            address(bad)


# -- repr, pickling, copying --------------------------------------------------------


def test_repr(bump_cls: Any) -> None:
    arena = bump_cls(1000)
    arena.alloc_uninit_slice(Layout(10))
    text = repr(arena)
    assert bump_cls.__name__ in text
    assert "capacity=1000" in text and "used=10" in text
    if bump_cls is linalloc.BumpArenaLazy:
        assert f"committed={arena.committed}" in text
    arena.close()
    assert repr(arena) == f"<{bump_cls.__name__} closed>"


def test_no_pickle_or_copy(bump_cls: Any) -> None:
    arena = bump_cls(64)
    views = filled(arena, [(8, 8)])
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError):
            pickle.dumps(arena, protocol)
    with pytest.raises(TypeError):
        copy.copy(arena)
    with pytest.raises(TypeError):
        copy.deepcopy(arena)
    with pytest.raises(TypeError):
        copy.deepcopy([arena])
    assert_unchanged(arena, 8, views)


# -- threads ----------------------------------------------------------------------------


def test_other_thread_is_refused(bump_cls: Any) -> None:
    arena = bump_cls(64)
    views = filled(arena, [(8, 8)])
    calls: list[Callable[[], object]] = [
        lambda: arena.alloc_uninit_slice(Layout(4)),
        lambda: arena.alloc(ctypes.c_int),
        lambda: arena.alloc_array(ctypes.c_int, 2),
        lambda: arena.used,
        arena.reset,
        arena.close,
        arena.live_views,
    ]
    for call in calls:
        error = run_in_thread(call)
        assert isinstance(error, RuntimeError), call
        assert "thread" in str(error)
    assert not arena.closed
    assert_unchanged(arena, 8, views)
    assert arena.alloc_uninit_slice(Layout(4)) is not None  # the owner still can


def test_check_thread_false_allows_other_threads(bump_cls: Any) -> None:
    arena = bump_cls(64, check_thread=False)
    out: list[Any] = []

    def work() -> None:
        view = arena.alloc_uninit_slice(Layout(8, 8))
        view[:] = b"threaded"
        out.append(bytes(view))
        del view
        out.append(arena.alloc(ctypes.c_int32) is not None)
        out.append(arena.used)
        arena.reset()
        arena.close()

    assert run_in_thread(work) is None
    assert out == [b"threaded", True, 12]
    assert arena.closed


# -- ctypes checks and bad input ----------------------------------------------------


@pytest.mark.parametrize("ctype", PY_OBJECT_TYPES, ids=lambda t: t.__name__)
def test_py_object_types_refused(bump_cls: Any, ctype: Any) -> None:
    arena = bump_cls(256)
    views = filled(arena, [(8, 8)])
    with pytest.raises(TypeError, match="py_object"):
        arena.alloc(ctype)
    with pytest.raises(TypeError, match="py_object"):
        arena.alloc_array(ctype, 1)
    assert_unchanged(arena, 8, views)


def test_pointer_types_allowed(bump_cls: Any) -> None:
    arena = bump_cls(256)
    pointer = arena.alloc(ctypes.POINTER(HoldsObject))
    assert pointer is not None and not pointer  # zeroed memory: a NULL pointer here
    target = arena.alloc(ctypes.c_int64)
    target.value = 77
    int_pointer = arena.alloc(ctypes.POINTER(ctypes.c_int64))
    int_pointer.contents = target
    assert int_pointer.contents.value == 77


class Linked(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("n", ctypes.c_int32), ("next", ctypes.c_void_p)]


class PackedPointer(ctypes.Structure):
    """18 bytes aligned to 1: values at 18 offsets modulo its size, more than get windows."""

    _pack_ = 1
    _fields_ = [("tag", ctypes.c_char * 10), ("ptr", ctypes.c_void_p)]


#: Pointer-holding types, each with a check that its pointer fields are NULL.
#: c_char_p, c_wchar_p, c_void_p are made with ``from_buffer``; POINTER and
#: structure types are served by windows (PackedPointer also by ``from_buffer``,
#: once its offsets outnumber the windowed ones).
POINTER_TYPES: list[tuple[Any, Callable[[Any], bool]]] = [
    (ctypes.c_char_p, lambda v: v.value is None),
    (ctypes.c_wchar_p, lambda v: v.value is None),
    (ctypes.c_void_p, lambda v: v.value is None),
    (ctypes.POINTER(ctypes.c_int64), lambda v: not v),
    (ctypes.POINTER(Point), lambda v: not v),
    (Linked, lambda v: v.name is None and v.next is None),
    (PackedPointer, lambda v: v.ptr is None),
]
POINTER_IDS = [ctype.__name__ for ctype, _ in POINTER_TYPES]


def dirty_reset(arena: Any) -> None:
    """Fill the whole arena with non-zero bytes through a view, then reset it."""
    arena.reset()
    view = arena.alloc_uninit_slice(Layout(arena.capacity))
    view[:] = b"\xa5" * arena.capacity
    del view
    arena.reset()


@pytest.mark.parametrize(("ctype", "is_null"), POINTER_TYPES, ids=POINTER_IDS)
def test_pointer_values_never_stale(bump_cls: Any, ctype: Any, is_null: Any) -> None:
    """After a reset of memory full of garbage, every pointer value comes back NULL.

    Runs every path of ``alloc``: one value at a time at every offset (a slice in
    between closes the window; past the windowed offsets ``from_buffer``), and
    growing windows of many values in a row.
    """
    size = ctypes.sizeof(ctype)
    arena = bump_cls(4096)
    dirty_reset(arena)
    values = []
    for _ in range(2 * size):  # every offset modulo size, for alignment 1
        arena.alloc_uninit_slice(Layout(1))
        values.append(arena.alloc(ctype))
    while True:  # windows, doubling until the arena is full
        value = arena.alloc(ctype)
        if value is None:
            break
        values.append(value)
    assert len(values) > 4096 // size // 2
    for value in values:
        assert type(value) is ctype
        # The bytes first: reading a stale c_char_p would crash the test run.
        # (Not in the assert: its message would show the value, reading the pointer.)
        raw = ctypes.string_at(ctypes.addressof(value), size)
        assert raw == bytes(size), "a pointer value came with stale bytes"
        assert is_null(value)


@pytest.mark.parametrize(("ctype", "is_null"), POINTER_TYPES, ids=POINTER_IDS)
def test_pointer_arrays_never_stale(bump_cls: Any, ctype: Any, is_null: Any) -> None:
    """``alloc_array`` of a pointer-holding type clears the whole array, at any offset."""
    size = ctypes.sizeof(ctype)
    arena = bump_cls(4096)
    dirty_reset(arena)
    arrays = []
    for n in (1, 3, 16):
        arena.alloc_uninit_slice(Layout(1))
        arrays.append(arena.alloc_array(ctype, n))
    arrays.append(arena.alloc_array(ctype, (arena.capacity - arena.used) // size - 1))
    for array in arrays:
        assert array is not None
        # The bytes first: reading a stale c_char_p would crash the test run.
        assert bytes(memoryview(array).cast("B")) == bytes(ctypes.sizeof(array)), "stale bytes"
        items = [ctype.from_buffer(array, k * size) for k in range(len(array))]
        assert all(is_null(item) for item in items)
        del items
    del array
    # A bigger array of a struct type holding pointers, after another dirty reset.
    arrays.clear()
    dirty_reset(arena)
    nested = arena.alloc_array(ctype * 4, 8)
    assert bytes(memoryview(nested).cast("B")) == bytes(ctypes.sizeof(nested))


def test_pointer_values_after_growth_are_null() -> None:
    """A lazy arena's windows, values and arrays across newly committed memory: NULL too."""
    arena = linalloc.BumpArenaLazy(1 << 20)
    span = 3 * arena.commit_step
    for ctype, n in ((Linked, 1), (ctypes.c_char_p, 1), (ctypes.c_void_p, 100)):
        arena.reset()
        view = arena.alloc_uninit_slice(Layout(span))
        view[:] = b"\x5a" * span
        del view
        arena.reset()
        size = ctypes.sizeof(ctype) * n
        values = [
            arena.alloc(ctype) if n == 1 else arena.alloc_array(ctype, n)
            for _ in range(span // size + 10)
        ]
        assert arena.used > span
        # The bytes first: reading a stale c_char_p would crash the test run.
        assert all(v is not None and bytes(v) == bytes(size) for v in values), ctype
        del values


#: Requests of alloc_array that cannot fit in a 4096-byte arena: None, not an exception.
TOO_BIG_ARRAYS: list[tuple[Any, int]] = [
    (ctypes.c_uint8, 4097),
    (ctypes.c_int64, 513),
    (ctypes.c_int64, sys.maxsize // 8),
    (ctypes.c_int64, sys.maxsize // 8 + 1),
    (ctypes.c_int64, sys.maxsize),
    (Point, sys.maxsize // 16),
    (Point, sys.maxsize),
    (ctypes.c_char, sys.maxsize),
    (ctypes.c_char, sys.maxsize + 1),
    (ctypes.c_char, 1 << 100),
    (ctypes.c_int64 * 0, 1 << 100),
    (ctypes.c_int64 * 1000, 1 << 60),
]


@pytest.mark.parametrize(("ctype", "n"), TOO_BIG_ARRAYS, ids=lambda x: getattr(x, "__name__", x))
def test_alloc_array_too_big_is_none(bump_cls: Any, ctype: Any, n: int) -> None:
    arena = bump_cls(4096)
    views = filled(arena, [(3, 1), (8, 8)])
    used = arena.used
    assert arena.alloc_array(ctype, n) is None
    assert_unchanged(arena, used, views)
    assert arena.alloc_array(ctypes.c_int64, (4096 - used) // 8) is not None  # still works


def test_lazy_growth_keeps_the_one_old_view_counted() -> None:
    """A single view of the memory before a lazy arena grew still refuses reset and close."""
    for make_view in (
        lambda a: a.alloc(ctypes.c_int64),
        lambda a: a.alloc(Linked),
        lambda a: a.alloc_uninit_slice(Layout(8)),
        lambda a: a.alloc_array(ctypes.c_int32, 2),
    ):
        arena = linalloc.BumpArenaLazy(1 << 24)
        view = make_view(arena)
        assert arena.live_views() == 1
        committed = arena.committed
        # Grow past the committed memory: the arena moves to a new root.
        assert arena.alloc_uninit_slice(Layout(2 * arena.commit_step)) is not None
        assert arena.committed > committed
        gc.collect()
        assert arena.live_views() == 1
        with pytest.raises(BufferError, match="1 view"):
            arena.reset()
        with pytest.raises(BufferError, match="1 view"):
            arena.close()
        assert not arena.closed
        del view
        assert arena.live_views() == 0
        arena.reset()
        arena.close()


@pytest.mark.parametrize(
    "bad", [int, float, object, None, 8, "c_int", ctypes.c_int(3), Point(), [ctypes.c_int]]
)
def test_alloc_non_ctype_is_type_error(bump_cls: Any, bad: Any) -> None:
    arena = bump_cls(64)
    views = filled(arena, [(3, 1), (8, 8)])
    used = arena.used
    with pytest.raises(TypeError):
        arena.alloc(bad)
    with pytest.raises(TypeError):
        arena.alloc_array(bad, 2)
    assert_unchanged(arena, used, views)


@pytest.mark.parametrize(
    ("n", "error"),
    [
        (-1, ValueError),
        (-(1 << 70), ValueError),
        (1.0, TypeError),
        (True, TypeError),
        ("2", TypeError),
        (None, TypeError),
    ],
)
def test_alloc_array_bad_n(bump_cls: Any, n: Any, error: type[Exception]) -> None:
    arena = bump_cls(64)
    views = filled(arena, [(3, 1), (8, 8)])
    used = arena.used
    with pytest.raises(error):
        arena.alloc_array(ctypes.c_int32, n)
    assert_unchanged(arena, used, views)
