"""Bulk allocation, growing in place and ``linalloc.cast`` (SPEC "Version 0.2").

``alloc_many``/``alloc_extend`` on both typed arenas, ``alloc_copy``/``grow``
on both bump arenas, and ``cast``: each sentence of the contract, and each bad
input with its exception and nothing changed (rule 6).
"""

from __future__ import annotations

import array
import ctypes
import gc
import sys
import weakref
from collections.abc import Iterator
from typing import Any, Callable, ClassVar

import pytest
from conftest import run_in_thread, run_python, stable_id

import linalloc
from linalloc import Layout, address

try:
    import numpy
except ImportError:  # pragma: no cover - numpy is a test dependency
    numpy = None  # type: ignore[assignment]

needs_numpy = pytest.mark.skipif(numpy is None, reason="numpy not installed")


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double)]


class Node(ctypes.Structure):
    pass


Node._fields_ = [("value", ctypes.c_int64), ("next", ctypes.POINTER(Node))]


class Target(ctypes.c_int):
    """A c_int that can be weakly referenced (to see when it is freed)."""


def typed_state(arena: Any) -> tuple[Any, ...]:
    return (
        len(arena),
        arena.used,
        getattr(arena, "committed", None),
        arena.live_views(),
    )


def bump_state(arena: Any) -> tuple[Any, ...]:
    return (arena.used, getattr(arena, "committed", None), arena.live_views())


def slots_bytes(arena: Any) -> bytes:
    if not len(arena):
        return b""
    first = next(iter(arena))
    data = ctypes.string_at(address(first), arena.used)
    del first
    return data


class Counting:
    """An iterator that counts the items read from it."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.read = 0

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self.read >= len(self.items):
            raise StopIteration
        self.read += 1
        return self.items[self.read - 1]


class LyingInt(int):
    """An int subclass whose methods lie about its value."""

    def __index__(self) -> int:
        return 10**6

    def __int__(self) -> int:
        return 10**6

    def __lt__(self, other: object) -> bool:
        return True

    def __gt__(self, other: object) -> bool:
        return False


# -- alloc_many -----------------------------------------------------------------


def test_alloc_many_gives_consecutive_zeroed_values(typed_cls: Any) -> None:
    arena = typed_cls(Point, 100)
    first = arena.alloc(1.0, 2.0)
    points = arena.alloc_many(10)
    assert points is not None
    assert type(points) is Point * 10 or (points._type_ is Point and len(points) == 10)
    assert address(points) == address(first) + ctypes.sizeof(Point)
    for k, point in enumerate(points):
        assert address(point) == address(points) + k * ctypes.sizeof(Point)
        assert (point.x, point.y) == (0.0, 0.0)
    assert len(arena) == 11 and arena.used == 11 * ctypes.sizeof(Point)
    after = arena.alloc()
    assert address(after) == address(points) + 10 * ctypes.sizeof(Point)


def test_alloc_many_zeroed_after_reset_dirtied_memory(typed_cls: Any) -> None:
    arena = typed_cls(ctypes.c_uint8, 4096)
    dirty = arena.alloc_extend([0xFF] * 4096)
    assert dirty is not None
    ctypes.memset(address(dirty), 0xFF, 4096)
    del dirty
    arena.reset()
    for n in (1, 7, 500, 3588):
        many = arena.alloc_many(n)
        assert many is not None
        assert bytes(many) == bytes(n), n
        del many
    assert len(arena) == 4096


def test_alloc_many_zeroed_after_rewind(typed_cls: Any) -> None:
    arena = typed_cls(ctypes.c_int64, 1000)
    cp = arena.checkpoint()
    for _ in range(600):
        arena.alloc(-1)
    arena.rewind(cp)
    many = arena.alloc_many(1000)
    assert many is not None and not any(many)


def test_alloc_many_values_iterate_and_count(typed_cls: Any) -> None:
    arena = typed_cls(ctypes.c_int64, 20)
    arena.alloc(1)
    many = arena.alloc_many(3)
    assert many is not None
    many[:] = [5, 6, 7]
    arena.alloc(8)
    assert [v.value for v in arena] == [1, 5, 6, 7, 8]
    assert list(arena.as_array()) == [1, 5, 6, 7, 8]
    assert len(arena) == 5 and not arena.is_empty()


def test_alloc_many_values_are_dropped(typed_cls: Any) -> None:
    dropped: list[int] = []
    arena = typed_cls(ctypes.c_int64, 20, drop=lambda v: dropped.append(v.value))
    arena.alloc(1)
    many = arena.alloc_many(3)
    assert many is not None
    many[:] = [5, 6, 7]
    del many
    arena.alloc(8)
    arena.reset()
    assert dropped == [8, 7, 6, 5, 1]
    many = arena.alloc_many(2)
    assert many is not None
    many[:] = [3, 4]
    del many
    arena.close()
    assert dropped == [8, 7, 6, 5, 1, 4, 3]


def test_alloc_many_values_dropped_at_collection(typed_cls: Any) -> None:
    dropped: list[int] = []
    arena = typed_cls(ctypes.c_int64, 20, drop=lambda v: dropped.append(v.value))
    many = arena.alloc_many(3)
    assert many is not None
    many[:] = [5, 6, 7]
    del arena
    gc.collect()
    assert dropped == []  # the array keeps the arena's memory
    del many
    gc.collect()
    assert dropped == [7, 6, 5]


def test_alloc_many_array_is_a_view(typed_cls: Any) -> None:
    arena = typed_cls(Point, 20)
    many = arena.alloc_many(4)
    assert many is not None
    assert arena.live_views() == 1
    with pytest.raises(BufferError, match="1 view"):
        arena.reset()
    with pytest.raises(BufferError):
        arena.close()
    assert len(arena) == 4
    element = many[2]
    del many
    with pytest.raises(BufferError):
        arena.reset()
    del element
    arena.reset()
    assert len(arena) == 0


def test_alloc_many_too_many_is_none_and_changes_nothing(typed_cls: Any) -> None:
    arena = typed_cls(ctypes.c_int64, 10)
    values = [arena.alloc(k) for k in range(4)]
    before = typed_state(arena), slots_bytes(arena)
    assert arena.alloc_many(7) is None
    assert arena.alloc_many(1 << 62) is None
    assert (typed_state(arena), slots_bytes(arena)) == before
    rest = arena.alloc_many(6)
    assert rest is not None and len(arena) == 10
    assert arena.alloc_many(1) is None
    assert [v.value for v in values] == [0, 1, 2, 3]


def test_alloc_many_zero(typed_cls: Any) -> None:
    arena = typed_cls(ctypes.c_int64, 2)
    arena.alloc(1)
    arena.alloc(2)
    empty = arena.alloc_many(0)  # fits even when full
    assert empty is not None and len(empty) == 0
    assert len(arena) == 2
    del empty
    arena.reset()


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (1.0, TypeError),
        ("3", TypeError),
        (None, TypeError),
        (True, TypeError),
        (-1, ValueError),
        (-(1 << 70), ValueError),
    ],
    ids=repr,
)
def test_alloc_many_bad_n(typed_cls: Any, bad: object, error: type[Exception]) -> None:
    arena = typed_cls(ctypes.c_int64, 10)
    value = arena.alloc(5)
    before = typed_state(arena)
    with pytest.raises(error):
        arena.alloc_many(bad)
    assert typed_state(arena) == before and value.value == 5


def test_alloc_many_lying_int_subclass(typed_cls: Any) -> None:
    arena = typed_cls(ctypes.c_int64, 10)
    many = arena.alloc_many(LyingInt(3))
    assert many is not None and len(many) == 3 and len(arena) == 3


def test_alloc_many_zero_size_type(typed_cls: Any) -> None:
    class Empty(ctypes.Structure):
        _fields_: ClassVar[list[tuple[str, Any]]] = []

    arena = typed_cls(Empty, 0)
    many = arena.alloc_many(5)
    assert many is not None and len(many) == 5 and len(arena) == 0


def test_alloc_many_pointer_types_are_zeroed(typed_cls: Any) -> None:
    arena = typed_cls(Node, 64)
    target = arena.alloc(1)
    for _ in range(40):
        arena.alloc(7, ctypes.pointer(target))
    del target
    arena.reset()
    many = arena.alloc_many(64)
    assert many is not None
    assert all(not node.next and node.value == 0 for node in many)


def test_alloc_many_lazy_commits() -> None:
    arena = linalloc.TypedArenaLazy(ctypes.c_int64, 1 << 24)
    step = arena.commit_step
    many = arena.alloc_many(3 * step // 8 + 1)
    assert many is not None
    assert arena.committed == 4 * step
    many[-1] = 9  # the last value is in committed memory
    assert many[-1] == 9


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_DATA as Linux has it")
def test_alloc_many_lazy_refused_commit_returns_none() -> None:
    """A refused commit (an address-space limit) gives None and changes nothing."""
    result = run_python(
        """
        import ctypes, resource, linalloc
        arena = linalloc.TypedArenaLazy(ctypes.c_int64, 1 << 31)  # 16 GiB reserved
        first = arena.alloc(1)
        committed = arena.committed
        # a commit past what RLIMIT_DATA allows is refused with ENOMEM
        data = resource.getrlimit(resource.RLIMIT_DATA)
        resource.setrlimit(resource.RLIMIT_DATA, (1 << 28, data[1]))
        many = arena.alloc_many(1 << 30)  # 8 GiB: the commit is refused
        assert many is None, "commit not refused"
        assert arena.committed == committed, (arena.committed, committed)
        assert len(arena) == 1 and first.value == 1
        assert arena.last_os_error_code is not None
        print("ok")
        """
    )
    if "commit not refused" in result.stderr:
        pytest.skip("this system does not refuse the commit under RLIMIT_DATA")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# -- alloc_extend ---------------------------------------------------------------


def test_alloc_extend_iterables(typed_cls: Any) -> None:
    arena = typed_cls(ctypes.c_int32, 100)
    for source in (
        [1, 2, 3],
        (4, 5),
        range(6, 9),
        (x for x in (9, 10)),
        iter([11]),
        array.array("i", [12, 13]),
    ):
        before = len(arena)
        made = arena.alloc_extend(source)
        expected = list(range(1, 14))[before : len(arena)]
        assert made is not None and list(made) == expected
        assert address(made) == address(next(iter(arena))) + 4 * before
        del made
    assert [v.value for v in arena] == list(range(1, 14))


def test_alloc_extend_structures(typed_cls: Any) -> None:
    arena = typed_cls(Point, 10)
    made = arena.alloc_extend([(1.0, 2.0), Point(3.0, 4.0)])
    assert made is not None and [(p.x, p.y) for p in made] == [(1.0, 2.0), (3.0, 4.0)]
    assert len(arena) == 2


def test_alloc_extend_empty(typed_cls: Any) -> None:
    arena = typed_cls(ctypes.c_int32, 1)
    arena.alloc(1)
    made = arena.alloc_extend([])
    assert made is not None and len(made) == 0 and len(arena) == 1


def test_alloc_extend_reads_one_past_the_free_slots(typed_cls: Any) -> None:
    arena = typed_cls(ctypes.c_int32, 10)
    arena.alloc(0)
    arena.alloc(0)
    source = Counting(list(range(100)))
    before = typed_state(arena), slots_bytes(arena)
    assert arena.alloc_extend(source) is None
    assert source.read == 9  # 8 free slots, and one more
    assert (typed_state(arena), slots_bytes(arena)) == before
    exact = Counting(list(range(8)))
    made = arena.alloc_extend(exact)
    assert made is not None and list(made) == list(range(8)) and exact.read == 8
    full = Counting([1, 2])
    assert arena.alloc_extend(full) is None and full.read == 1


def test_alloc_extend_infinite_generator(typed_cls: Any) -> None:
    def forever() -> Iterator[int]:
        k = 0
        while True:
            yield k
            k += 1

    arena = typed_cls(ctypes.c_int32, 5)
    assert arena.alloc_extend(forever()) is None
    assert len(arena) == 0


@pytest.mark.parametrize(
    "items",
    [[1, 2, "x", 4], [1, 2.5], [1, None, 3], [b"ab"]],
    ids=repr,
)
def test_alloc_extend_bad_item_is_all_or_nothing(typed_cls: Any, items: list[Any]) -> None:
    arena = typed_cls(ctypes.c_int32, 10)
    first = arena.alloc(7)
    before = typed_state(arena), slots_bytes(arena)
    with pytest.raises(TypeError):
        arena.alloc_extend(items)
    assert (typed_state(arena), slots_bytes(arena)) == before
    assert address(arena.alloc(8)) == address(first) + 4


def test_alloc_extend_bad_item_lazy_commits_nothing(typed_cls: Any) -> None:
    arena = typed_cls(ctypes.c_int64, 1 << 20)
    items = [0] * (1 << 16) + ["bad"]
    before = typed_state(arena)
    with pytest.raises(TypeError):
        arena.alloc_extend(items)
    assert typed_state(arena) == before


def test_alloc_extend_value_error_item(typed_cls: Any) -> None:
    arena = typed_cls(ctypes.c_char * 4, 10)
    before = typed_state(arena)
    with pytest.raises((TypeError, ValueError)):
        arena.alloc_extend([b"ab", b"too long"])
    assert typed_state(arena) == before


def test_alloc_extend_not_iterable(typed_cls: Any) -> None:
    arena = typed_cls(ctypes.c_int32, 10)
    for bad in (5, None, object()):
        with pytest.raises(TypeError):
            arena.alloc_extend(bad)
    assert len(arena) == 0


def test_alloc_extend_ctypes_array_is_copied(typed_cls: Any) -> None:
    arena = typed_cls(Point, 1000)
    source = (Point * 1000)(*[Point(float(k), -float(k)) for k in range(1000)])
    made = arena.alloc_extend(source)
    assert made is not None and len(made) == 1000
    assert bytes(made) == bytes(source)
    assert address(made) != address(source)
    source[0].x = 99.0
    assert made[0].x == 0.0  # a copy
    assert arena.alloc_extend((Point * 1)()) is None


def test_alloc_extend_ctypes_array_of_another_type(typed_cls: Any) -> None:
    arena = typed_cls(ctypes.c_int64, 10)
    made = arena.alloc_extend((ctypes.c_int32 * 3)(1, 2, 3))  # element by element
    assert made is not None and list(made) == [1, 2, 3]
    with pytest.raises(TypeError):
        arena.alloc_extend((ctypes.c_double * 2)(1.5, 2.5))
    assert len(arena) == 3


def test_alloc_extend_from_the_same_arena(typed_cls: Any) -> None:
    arena = typed_cls(ctypes.c_int64, 10)
    first = arena.alloc_extend([1, 2, 3])
    assert first is not None
    again = arena.alloc_extend(first)
    assert again is not None and list(again) == [1, 2, 3]
    assert [v.value for v in arena] == [1, 2, 3, 1, 2, 3]


def _pointer_source(values: list[int]) -> tuple[Any, list[Any]]:
    targets = [Target(v) for v in values]
    refs = [weakref.ref(t) for t in targets]
    source = (ctypes.POINTER(Target) * len(values))(*[ctypes.pointer(t) for t in targets])
    return source, refs


def test_alloc_extend_pointer_array_keeps_targets(typed_cls: Any) -> None:
    arena = typed_cls(ctypes.POINTER(Target), 8)
    source, refs = _pointer_source([10, 11, 12])
    made = arena.alloc_extend(source)
    del source
    gc.collect()
    assert made is not None
    assert all(ref() is not None for ref in refs), "targets freed with the source"
    assert [made[k].contents.value for k in range(3)] == [10, 11, 12]


def test_alloc_extend_pointer_keep_alives_outlive_the_returned_array(typed_cls: Any) -> None:
    arena = typed_cls(ctypes.POINTER(Target), 8)
    source, refs = _pointer_source([10, 11, 12])
    made = arena.alloc_extend(source)
    assert made is not None
    del source, made
    gc.collect()
    # The values live on in the arena (len, iteration): so must what they point at,
    # as for alloc_raw(pointer(target)).
    assert len(arena) == 3
    assert all(ref() is not None for ref in refs), "targets freed while values point at them"


def test_alloc_extend_iterable_of_pointers_keeps_targets(typed_cls: Any) -> None:
    arena = typed_cls(ctypes.POINTER(Target), 8)
    target = Target(5)
    ref = weakref.ref(target)
    made = arena.alloc_extend([ctypes.pointer(target)])
    del target, made
    gc.collect()
    assert ref() is not None


@pytest.mark.parametrize("after_checkpoint", [False, True])
def test_lazy_growth_keeps_pointer_keep_alives(after_checkpoint: bool) -> None:
    arena = linalloc.TypedArenaLazy(ctypes.POINTER(Target), 1 << 20)
    if after_checkpoint:
        arena.alloc()
        arena.checkpoint()
    target = Target(42)
    ref = weakref.ref(target)
    arena.alloc_raw(ctypes.pointer(target))
    del target
    gc.collect()
    assert ref() is not None  # kept by the arena, as rule 1 asks
    for _ in range(3 * arena.commit_step // ctypes.sizeof(ctypes.c_void_p)):
        arena.alloc()  # commits more memory: a new part
    gc.collect()
    assert ref() is not None, "the target of a value still in the arena was freed"
    first = list(arena)[1 if after_checkpoint else 0]
    assert first.contents.value == 42


def test_alloc_raw_pointer_keeps_target(typed_cls: Any) -> None:
    """The reference behaviour the two tests above expect of alloc_extend."""
    arena = typed_cls(ctypes.POINTER(Target), 8)
    target = Target(5)
    ref = weakref.ref(target)
    arena.alloc_raw(ctypes.pointer(target))
    del target
    gc.collect()
    assert ref() is not None
    assert next(iter(arena)).contents.value == 5


def test_alloc_extend_pointer_values_read_in_subprocess(typed_cls: Any) -> None:
    """Through the values the arena still holds, after the source is gone: no crash."""
    result = run_python(
        f"""
        import ctypes, gc, linalloc
        arena = linalloc.{typed_cls.__name__}(ctypes.POINTER(ctypes.c_int), 64)
        src = (ctypes.POINTER(ctypes.c_int) * 3)(
            *[ctypes.pointer(ctypes.c_int(v)) for v in (10, 11, 12)])
        made = arena.alloc_extend(src)
        del src
        gc.collect()
        junk = [ctypes.c_int(-7) for _ in range(10000)]
        print([made[k].contents.value for k in range(3)])
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[10, 11, 12]"


def test_bulk_calls_check_thread_and_closed(typed_cls: Any) -> None:
    arena = typed_cls(ctypes.c_int64, 8)
    calls: list[Callable[[], object]] = [
        lambda: arena.alloc_many(2),
        lambda: arena.alloc_extend([1, 2]),
    ]
    for call in calls:
        error = run_in_thread(call)
        assert isinstance(error, RuntimeError) and "same thread" in str(error), error
    assert len(arena) == 0
    arena.close()
    for call in calls:
        with pytest.raises(ValueError, match="arena is closed"):
            call()


# -- alloc_copy -----------------------------------------------------------------


def _copies(data: Any, expected: bytes, bump_cls: Any) -> None:
    arena = bump_cls(4096)
    arena.alloc_uninit_slice(Layout(1))
    view = arena.alloc_copy(data)
    assert view is not None
    assert view.format == "B" and view.ndim == 1 and not view.readonly
    assert bytes(view) == expected
    assert arena.used == 1 + len(expected)
    view[:1] = b"\x00" if len(expected) else b""


def test_alloc_copy_bytes_like(bump_cls: Any) -> None:
    _copies(b"hello", b"hello", bump_cls)
    _copies(bytearray(b"world"), b"world", bump_cls)
    _copies(memoryview(b"abcdef")[1:4], b"bcd", bump_cls)
    ints = array.array("i", [1, 2, 3])
    _copies(ints, ints.tobytes(), bump_cls)
    _copies(memoryview(b"abcdef")[::2], b"ace", bump_cls)  # not contiguous


def test_alloc_copy_source_is_only_read(bump_cls: Any) -> None:
    arena = bump_cls(64)
    source = bytearray(b"abc")
    view = arena.alloc_copy(source)
    assert view is not None
    view[0] = ord("z")
    assert source == b"abc"
    source.append(ord("d"))  # no export left on the source
    assert bytes(view) == b"zbc"


@needs_numpy
def test_alloc_copy_numpy(bump_cls: Any) -> None:
    assert numpy is not None
    matrix = numpy.arange(12, dtype=numpy.int32).reshape(3, 4)
    _copies(matrix, matrix.tobytes(), bump_cls)
    fortran = numpy.asfortranarray(matrix)
    c_order: Any = memoryview(fortran)  # type: ignore[arg-type]
    _copies(fortran, c_order.tobytes(), bump_cls)
    assert c_order.tobytes() == matrix.tobytes()  # C order
    strided = matrix[:, ::2]
    _copies(strided, strided.tobytes(), bump_cls)
    _copies(matrix.T, matrix.T.tobytes(), bump_cls)


def test_alloc_copy_view_of_the_same_arena(bump_cls: Any) -> None:
    arena = bump_cls(64)
    first = arena.alloc_copy(b"0123456789")
    assert first is not None
    second = arena.alloc_copy(first)
    assert second is not None and bytes(second) == b"0123456789"
    assert address(second) == address(first) + 10
    third = arena.alloc_copy(second[2:5])
    assert third is not None and bytes(third) == b"234"


def test_alloc_copy_zero_length(bump_cls: Any) -> None:
    arena = bump_cls(8)
    arena.alloc_copy(b"abc")
    view = arena.alloc_copy(b"")
    assert view is not None and len(view) == 0
    assert arena.used == 3


@pytest.mark.parametrize("align", [1, 2, 8, 64, 4096])
def test_alloc_copy_alignment(bump_cls: Any, align: int) -> None:
    arena = bump_cls(16384)
    arena.alloc_copy(b"x")
    view = arena.alloc_copy(b"payload\0", align)
    assert view is not None and address(view) % align == 0
    assert bytes(view) == b"payload\0"


@pytest.mark.parametrize(
    ("align", "error"),
    [(0, ValueError), (3, ValueError), (-8, ValueError), (2.0, TypeError), (True, TypeError)],
    ids=repr,
)
def test_alloc_copy_bad_align(bump_cls: Any, align: object, error: type[Exception]) -> None:
    arena = bump_cls(64)
    arena.alloc_copy(b"a")
    before = bump_state(arena)
    with pytest.raises(error) as info:
        arena.alloc_copy(b"data", align)
    with pytest.raises(error) as layout_info:
        Layout(4, align)  # type: ignore[arg-type]
    assert str(info.value) == str(layout_info.value)
    del info, layout_info
    assert bump_state(arena) == before


@pytest.mark.parametrize("bad", ["text", 5, None, [1, 2], object()], ids=stable_id)
def test_alloc_copy_non_buffer(bump_cls: Any, bad: object) -> None:
    arena = bump_cls(64)
    before = bump_state(arena)
    with pytest.raises(TypeError, match="buffer"):
        arena.alloc_copy(bad)
    assert bump_state(arena) == before


def test_alloc_copy_str_says_encode(bump_cls: Any) -> None:
    arena = bump_cls(64)
    with pytest.raises(TypeError, match="encode"):
        arena.alloc_copy("name")


def test_alloc_copy_full_is_none_and_changes_nothing(bump_cls: Any) -> None:
    arena = bump_cls(16)
    head = arena.alloc_copy(b"0123456789")
    before = bump_state(arena)
    assert arena.alloc_copy(b"abcdefg") is None
    assert arena.alloc_copy(b"abc", 4096) is None
    assert bump_state(arena) == before and bytes(head) == b"0123456789"
    assert arena.alloc_copy(b"abcdef") is not None


def test_alloc_copy_c_string(bump_cls: Any) -> None:
    arena = bump_cls(64)
    name = arena.alloc_copy(b"name\0")
    assert name is not None
    assert ctypes.string_at(address(name)) == b"name"


def test_alloc_copy_and_grow_check_thread_and_closed(bump_cls: Any) -> None:
    arena = bump_cls(64)
    views = [arena.alloc_copy(b"ab")]
    calls: list[Callable[[], object]] = [
        lambda: arena.alloc_copy(b"x"),
        lambda: arena.grow(views[0], 8),
    ]
    for call in calls:
        error = run_in_thread(call)
        assert isinstance(error, RuntimeError) and "same thread" in str(error), error
    del error  # (its traceback holds grow()'s frame, and so the view)
    assert arena.used == 2
    views.clear()
    arena.close()
    dead = memoryview(bytearray(4))
    for call in (lambda: arena.alloc_copy(b"x"), lambda: arena.grow(dead, 8)):
        with pytest.raises(ValueError, match="arena is closed"):
            call()


# -- grow ---------------------------------------------------------------------


def test_grow_in_place(bump_cls: Any) -> None:
    arena = bump_cls(256)
    arena.alloc_copy(b"x")
    buf = arena.alloc_uninit_slice(Layout(4, 8))
    assert buf is not None
    buf[:] = b"abcd"
    grown = arena.grow(buf, 100)
    assert grown is not None
    assert address(grown) == address(buf) and len(grown) == 100
    assert grown.format == "B" and not grown.readonly
    assert bytes(grown[:4]) == b"abcd"
    assert arena.used == 8 + 100
    buf[0] = ord("z")  # the old view stays valid
    assert grown[0] == ord("z")
    again = arena.grow(grown, 200)
    assert again is not None and address(again) == address(buf) and arena.used == 208
    same = arena.grow(again, 200)
    assert same is not None and arena.used == 208


def test_grow_not_most_recent_is_none(bump_cls: Any) -> None:
    arena = bump_cls(256)
    first = arena.alloc_copy(b"abc")
    second = arena.alloc_copy(b"def")
    before = bump_state(arena)
    assert arena.grow(first, 10) is None
    assert arena.grow(second[:2], 10) is None  # does not end at used
    assert arena.grow(memoryview(bytearray(3)), 10) is None  # not this arena's
    other = bump_cls(64)
    assert arena.grow(other.alloc_copy(b"xyz"), 10) is None
    assert bump_state(arena) == before
    assert bytes(first) == b"abc" and bytes(second) == b"def"


@pytest.mark.parametrize("which", ["read-only", "strided"])
def test_grow_odd_memoryview_is_none(bump_cls: Any, which: str) -> None:
    arena = bump_cls(64)
    buf = arena.alloc_copy(b"abcd")
    assert buf is not None
    odd = memoryview(b"abcd") if which == "read-only" else buf[::2]
    before = bump_state(arena)
    assert arena.grow(odd, 8) is None
    assert bump_state(arena) == before


def test_grow_after_a_typed_alloc_is_none(bump_cls: Any) -> None:
    arena = bump_cls(256)
    buf = arena.alloc_copy(b"abcdefgh")
    value = arena.alloc(ctypes.c_int64)
    assert arena.grow(buf, 32) is None
    del value


def test_grow_too_big_is_none_and_changes_nothing(bump_cls: Any) -> None:
    arena = bump_cls(64)
    buf = arena.alloc_copy(b"abc")
    before = bump_state(arena)
    assert arena.grow(buf, 65) is None
    assert arena.grow(buf, 1 << 62) is None
    assert bump_state(arena) == before and bytes(buf) == b"abc"
    assert arena.grow(buf, 64) is not None and arena.used == 64


def test_grow_shrink_raises(bump_cls: Any) -> None:
    arena = bump_cls(64)
    buf = arena.alloc_copy(b"abcdef")
    before = bump_state(arena)
    with pytest.raises(ValueError, match="shrink"):
        arena.grow(buf, 3)
    assert bump_state(arena) == before


@pytest.mark.parametrize(
    ("make_bad", "error"),
    [
        (lambda arena: b"abc", TypeError),
        (lambda arena: bytearray(3), TypeError),
        (lambda arena: arena.alloc_array(ctypes.c_uint8, 3), TypeError),
        (lambda arena: None, TypeError),
    ],
    ids=["bytes", "bytearray", "ctypes array", "None"],
)
def test_grow_non_memoryview(
    bump_cls: Any, make_bad: Callable[[Any], Any], error: type[Exception]
) -> None:
    arena = bump_cls(64)
    bad = make_bad(arena)
    before = bump_state(arena)
    with pytest.raises(error):
        arena.grow(bad, 16)
    assert bump_state(arena) == before


@pytest.mark.parametrize(("size", "error"), [(-1, ValueError), (8.0, TypeError), ("8", TypeError)])
def test_grow_bad_size(bump_cls: Any, size: object, error: type[Exception]) -> None:
    arena = bump_cls(64)
    buf = arena.alloc_copy(b"abc")
    before = bump_state(arena)
    with pytest.raises(error):
        arena.grow(buf, size)
    assert bump_state(arena) == before


def test_grow_after_checkpoint_stops_rewind(bump_cls: Any) -> None:
    arena = bump_cls(128)
    buf = arena.alloc_copy(b"keep")
    cp = arena.checkpoint()
    grown = arena.grow(buf, 32)
    assert grown is not None
    with pytest.raises(BufferError):
        arena.rewind(cp)
    assert arena.used == 32 and bytes(buf) == b"keep"
    del grown
    arena.rewind(cp)
    assert arena.used == 4
    again = arena.grow(buf, 8)  # ends at used again
    assert again is not None and bytes(again[:4]) == b"keep"


def test_grow_zero_length_view(bump_cls: Any) -> None:
    arena = bump_cls(64)
    arena.alloc_copy(b"abc")
    empty = arena.alloc_copy(b"")
    assert empty is not None
    grown = arena.grow(empty, 5)
    if grown is not None:  # an empty view at used: growing it takes what follows
        assert address(grown) == address(empty) and arena.used == 8


def test_lazy_grow_never_moves() -> None:
    arena = linalloc.BumpArenaLazy(1 << 40)
    buf = arena.alloc_copy(b"start")
    assert buf is not None
    where = address(buf)
    commit = arena.commit_step
    size = len(buf)
    target = 256 << 20
    view = buf
    while size < target:
        # page by page over the first commits, then a commit and a page at a time
        step = 4096 if size < 8 * commit else 16 * commit + 4096
        size = min(size + step, target)
        grown = arena.grow(view, size)
        assert grown is not None, size
        assert address(grown) == where
        view = grown
    assert arena.used == target and arena.committed >= target
    assert bytes(view[:5]) == b"start"
    view[-1] = 7
    assert ctypes.string_at(where + target - 1, 1) == b"\x07"
    del view, grown, buf
    arena.close()


# -- linalloc.cast --------------------------------------------------------------


def test_cast_keeps_the_source_alive_and_counted() -> None:
    arena = linalloc.TypedArena(ctypes.c_int64 * 4, 8)
    quad: Any = arena.alloc(1, 2, 3, 4)
    pointer = linalloc.cast(quad, ctypes.POINTER(ctypes.c_int64))
    expected = ctypes.cast(quad, ctypes.POINTER(ctypes.c_int64))
    assert ctypes.addressof(pointer.contents) == ctypes.addressof(expected.contents)
    del quad, expected
    gc.collect()
    assert arena.live_views() == 1 and pointer[2] == 3
    with pytest.raises(BufferError):
        arena.reset()
    with pytest.raises(BufferError):
        arena.close()
    del pointer
    arena.reset()


def test_cast_of_byref() -> None:
    arena = linalloc.BumpArena(64)
    arena.alloc_copy(b"1234")
    value: Any = arena.alloc(ctypes.c_int64)
    value.value = 77
    pointer = linalloc.cast(ctypes.byref(value), ctypes.POINTER(ctypes.c_int64))
    assert pointer[0] == 77
    assert ctypes.cast(pointer, ctypes.c_void_p).value == address(value)
    del value
    gc.collect()
    with pytest.raises(BufferError):
        arena.reset()
    del pointer
    arena.reset()


def test_cast_of_byref_with_offset() -> None:
    arena = linalloc.TypedArena(ctypes.c_int64 * 4, 2)
    quad: Any = arena.alloc(1, 2, 3, 4)
    pointer = linalloc.cast(ctypes.byref(quad, 16), ctypes.POINTER(ctypes.c_int64))
    assert pointer[0] == 3
    assert ctypes.cast(pointer, ctypes.c_void_p).value == address(quad) + 16
    del quad
    with pytest.raises(BufferError):
        arena.reset()
    del pointer
    arena.reset()


def test_cast_of_memoryview() -> None:
    arena = linalloc.BumpArena(64)
    view = arena.alloc_copy(b"hello\0")
    assert view is not None
    pointer = linalloc.cast(view, ctypes.c_char_p)
    assert pointer.value == b"hello"
    same = ctypes.cast(ctypes.c_void_p(address(view)), ctypes.c_void_p)
    assert ctypes.cast(pointer, ctypes.c_void_p).value == same.value
    del view
    gc.collect()
    with pytest.raises(BufferError):
        arena.reset()
    del pointer
    arena.reset()


def test_cast_of_array_value_matches_ctypes_cast() -> None:
    arena = linalloc.BumpArena(64)
    row: Any = arena.alloc_array(ctypes.c_int32, 4)
    row[:] = [5, 6, 7, 8]
    for typ in (ctypes.c_void_p, ctypes.POINTER(ctypes.c_int32), ctypes.c_char_p):
        mine = linalloc.cast(row, typ)
        theirs = ctypes.cast(row, typ)
        assert (
            ctypes.cast(mine, ctypes.c_void_p).value == ctypes.cast(theirs, ctypes.c_void_p).value
        )
    del mine, theirs, row
    arena.reset()


def test_cast_of_struct_value(typed_cls: Any) -> None:
    arena = typed_cls(Point, 4)
    point = arena.alloc(1.5, 2.5)
    pointer = linalloc.cast(point, ctypes.POINTER(Point))
    assert ctypes.addressof(pointer.contents) == address(point)
    del point
    with pytest.raises(BufferError):
        arena.reset()
    assert pointer.contents.x == 1.5


def test_cast_of_simple_value_casts_or_raises_type_error() -> None:
    arena = linalloc.BumpArena(64)
    value = arena.alloc(ctypes.c_int64)
    try:
        result = linalloc.cast(value, ctypes.POINTER(ctypes.c_int64))
    except TypeError:
        return
    assert ctypes.addressof(result.contents) == address(value)


@pytest.mark.parametrize(
    "bad",
    [5, None, "abc", b"abc", memoryview(b"readonly"), object()],
    ids=["int", "None", "str", "bytes", "readonly memoryview", "object"],
)
def test_cast_bad_input(bad: object) -> None:
    with pytest.raises(TypeError):
        linalloc.cast(bad, ctypes.c_void_p)


@pytest.mark.parametrize("typ", [ctypes.c_int, int, None, Point], ids=repr)
def test_cast_to_a_non_pointer_type(typ: Any) -> None:
    arena = linalloc.BumpArena(64)
    row = arena.alloc_array(ctypes.c_int32, 2)
    with pytest.raises(TypeError, match="pointer type"):
        linalloc.cast(row, typ)
    del row
    arena.reset()  # nothing kept


@needs_numpy
def test_cast_non_contiguous_memoryview() -> None:
    assert numpy is not None
    arena = linalloc.BumpArena(64)
    view = arena.alloc_copy(bytes(16))
    assert view is not None
    with pytest.raises(TypeError, match="contiguous"):
        linalloc.cast(view[::2], ctypes.c_void_p)
