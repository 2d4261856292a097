"""The backing stores: the array types views are made of, trim()'s system call and
message, and when a lazy arena's reservation is released.

The system calls are watched through a platform layer that records each call
and passes it on to the real one (``linalloc._vm.get`` is what a lazy store asks
for its platform layer), and through ``/proc/self/maps`` on Linux.
"""

from __future__ import annotations

import ctypes
import errno
import gc
import os
import re
from typing import Any

import pytest
from conftest import mapped, needs_maps

import linalloc
from linalloc import BumpArena, BumpArenaLazy, Layout, TypedArena, TypedArenaLazy, address

# -- the array types of the views --------------------------------------------------------


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int32), ("y", ctypes.c_int32)]


def test_alloc_array_is_an_instance_of_ctype_times_n(bump_cls: type) -> None:
    arena = bump_cls(256)
    row = arena.alloc_array(ctypes.c_int32, 4)
    assert type(row) is ctypes.c_int32 * 4
    points = arena.alloc_array(Point, 3)
    assert type(points) is Point * 3 and isinstance(points, Point * 3)
    assert type(arena.alloc_array(ctypes.c_double, 1)) is ctypes.c_double * 1


def test_typed_arrays_are_instances_of_ctype_times_n(typed_cls: type) -> None:
    arena = typed_cls(Point, 16)
    arena.alloc(1, 2)
    assert type(arena.as_array()) is Point * 1
    many = arena.alloc_many(3)
    assert type(many) is Point * 3
    extended = arena.alloc_extend([(5, 6), (7, 8)])
    assert type(extended) is Point * 2
    assert type(arena.as_array()) is Point * 6
    numbers = typed_cls(ctypes.c_int64, 8)
    numbers.alloc_extend([1, 2, 3])
    assert type(numbers.as_array()) is ctypes.c_int64 * 3
    assert list(numbers.as_array()) == [1, 2, 3]


class _Other(ctypes.Structure):
    _fields_ = [("bytes", ctypes.c_uint8 * 8)]


class _ForgedMul(type(ctypes.Structure)):  # type: ignore[misc]
    """``T * n`` answers an array of the same size but of another element type."""

    def __mul__(cls, n: int) -> Any:
        return _Other * n


class ForgedPoint(ctypes.Structure, metaclass=_ForgedMul):
    _fields_ = [("x", ctypes.c_int32), ("y", ctypes.c_int32)]


def test_arrays_of_a_type_whose_mul_lies_are_still_arrays_of_that_type(
    typed_cls: type, bump_cls: type
) -> None:
    assert ForgedPoint * 2 is _Other * 2  # the lie: same size, other element type
    arena = typed_cls(ForgedPoint, 8)
    arena.alloc(1, 2)
    arena.alloc(3, 4)
    array = arena.as_array()
    assert array._type_ is ForgedPoint and len(array) == 2
    assert all(isinstance(p, ForgedPoint) for p in array)
    assert [(p.x, p.y) for p in array] == [(1, 2), (3, 4)]
    many = arena.alloc_many(2)
    assert many._type_ is ForgedPoint and many[1].x == 0
    raw = bump_cls(64).alloc_array(ForgedPoint, 3)
    assert raw._type_ is ForgedPoint and len(raw) == 3
    assert ctypes.sizeof(raw) == 3 * ctypes.sizeof(ForgedPoint)
    raw[2].y = 9
    assert raw[2].y == 9


class _FreshMul(type(ctypes.Structure)):  # type: ignore[misc]
    """``T * n`` makes a new (exact) array class each time it is asked."""

    def __mul__(cls, n: int) -> Any:
        meta: Any = type(ctypes.Array)
        return meta(f"{cls.__name__}_x_{n}", (ctypes.Array,), {"_type_": cls, "_length_": n})


class FreshA(ctypes.Structure, metaclass=_FreshMul):
    _fields_ = [("v", ctypes.c_int32)]


class FreshB(ctypes.Structure, metaclass=_FreshMul):
    _fields_ = [("v", ctypes.c_int32)]


def test_arrays_of_one_length_share_one_type_even_when_mul_makes_new_classes(
    typed_cls: type,
) -> None:
    assert FreshA * 2 is not FreshA * 2
    a = typed_cls(FreshA, 8)
    b = typed_cls(FreshB, 8)
    a.alloc(1)
    b.alloc(2)
    first = type(a.as_array())
    assert first._type_ is FreshA and first._length_ == 1
    assert type(a.as_array()) is first
    other = type(b.as_array())
    assert other._type_ is FreshB
    assert type(a.as_array()) is first  # after another type's array of the same length
    assert type(b.as_array()) is other
    assert a.as_array()[0].v == 1 and b.as_array()[0].v == 2


class _BareMul(type(ctypes.Structure)):  # type: ignore[misc]
    """``T * n`` answers the abstract ``ctypes.Array`` itself (no ``_type_``)."""

    def __mul__(cls, n: int) -> Any:
        return ctypes.Array


class BareItem(ctypes.Structure, metaclass=_BareMul):
    _fields_ = [("v", ctypes.c_int32)]


def test_alloc_array_of_a_type_whose_mul_answers_the_bare_array_class(bump_cls: type) -> None:
    arena = bump_cls(64)
    row = arena.alloc_array(BareItem, 2)
    assert row._type_ is BareItem and len(row) == 2
    row[1].v = 5
    assert row[1].v == 5 and arena.used == 8


class _NoLengthMul(type(ctypes.Structure)):  # type: ignore[misc]
    """``T * n`` answers an array class whose ``_length_`` attribute was deleted."""

    def __mul__(cls, n: int) -> Any:
        meta: Any = type(ctypes.Array)
        made = meta(f"{cls.__name__}_Array_{n}", (ctypes.Array,), {"_type_": cls, "_length_": n})
        del made._length_
        return made


class NoLengthItem(ctypes.Structure, metaclass=_NoLengthMul):
    _fields_ = [("v", ctypes.c_int32)]


def test_arrays_of_a_type_whose_mul_answers_a_class_without_length(
    bump_cls: type, typed_cls: type
) -> None:
    assert not hasattr(NoLengthItem * 3, "_length_")
    row = bump_cls(64).alloc_array(NoLengthItem, 3)
    assert row._type_ is NoLengthItem and type(row)._length_ == 3 and len(row) == 3
    arena = typed_cls(NoLengthItem, 4)
    arena.alloc(4)
    arena.alloc(5)
    array = arena.as_array()
    assert type(array)._length_ == 2 and [item.v for item in array] == [4, 5]


def _at_offset_zero(cls: Any, source: Any, offset: int = 0) -> Any:
    """A ``from_buffer`` that answers the value at offset 0, whatever was asked."""
    for meta in type(cls).__mro__:
        if meta.__module__ == "_ctypes" and "from_buffer" in meta.__dict__:
            return meta.__dict__["from_buffer"](cls, source, 0)
    raise AssertionError(cls)


class _ArrayLiesMul(type(ctypes.Structure)):  # type: ignore[misc]
    """``T * n`` answers a class of n ``T`` whose own ``from_buffer`` lies."""

    def __mul__(cls, n: int) -> Any:
        meta: Any = type(ctypes.Array)
        body = {"_type_": cls, "_length_": n, "from_buffer": classmethod(_at_offset_zero)}
        return meta(f"{cls.__name__}_Array_{n}", (ctypes.Array,), body)


class _LyingArrayMeta(type(ctypes.Array)):  # type: ignore[misc]
    from_buffer = _at_offset_zero


class _MetaLiesMul(type(ctypes.Structure)):  # type: ignore[misc]
    """``T * n`` answers a class of n ``T`` whose metaclass's ``from_buffer`` lies."""

    def __mul__(cls, n: int) -> Any:
        return _LyingArrayMeta(
            f"{cls.__name__}_Array_{n}", (ctypes.Array,), {"_type_": cls, "_length_": n}
        )


class ArrayLiesItem(ctypes.Structure, metaclass=_ArrayLiesMul):
    _fields_ = [("v", ctypes.c_int64)]


class MetaLiesItem(ctypes.Structure, metaclass=_MetaLiesMul):
    _fields_ = [("v", ctypes.c_int64)]


def _disjoint(arrays: list[Any]) -> None:
    spans = sorted((ctypes.addressof(a), ctypes.addressof(a) + ctypes.sizeof(a)) for a in arrays)
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert end <= start, f"memory handed out twice: {spans}"


@pytest.mark.parametrize("item", [ArrayLiesItem, MetaLiesItem], ids=["class", "metaclass"])
def test_arrays_of_a_type_whose_mul_answers_a_lying_from_buffer_never_alias(
    item: Any, typed_cls: type, bump_cls: type
) -> None:
    """Views are made by ctypes' own ``from_buffer``, never by one ``T * n`` brings.

    (The array types ``T * n`` answered were taken as they were when they
    had the right element type and length: their ``from_buffer`` answered
    offset 0 every time, and every array of the arena was the first one.)
    """
    buffer = bytearray(32)
    lied = (item * 2).from_buffer(buffer, 16)  # the lie: offset 0 all the same
    assert ctypes.addressof(lied) == ctypes.addressof((ctypes.c_char * 32).from_buffer(buffer))
    del lied
    bump = bump_cls(256)
    rows = [bump.alloc_array(item, 2) for _ in range(3)]
    _disjoint(rows)
    assert bump.used == 3 * 2 * 8
    typed = typed_cls(item, 16)
    typed.alloc(1)
    many = [typed.alloc_many(2), typed.alloc_extend([item(2), item(3)]), typed.alloc_many(3)]
    whole = typed.as_array()
    assert [ctypes.addressof(a) for a in many] == [
        ctypes.addressof(whole) + 8 * k for k in (1, 3, 5)
    ]
    assert [v.v for v in whole] == [1, 0, 0, 2, 3, 0, 0, 0]
    assert len(typed) == 8


class _LyingValue(ctypes.Structure):
    _fields_ = [("v", ctypes.c_int64)]
    from_buffer = classmethod(_at_offset_zero)

    def __del__(self) -> None:  # (a finalizer: no window, each value by from_buffer)
        pass


class _ReenteringValue(ctypes.c_int64):
    calls: list[object] = []

    @classmethod
    def from_buffer(cls, source: Any, offset: int = 0) -> Any:
        cls.calls.append(offset)
        return _at_offset_zero(cls, source, offset)

    def __del__(self) -> None:
        pass


@pytest.mark.parametrize("ctype", [_LyingValue, _ReenteringValue], ids=["lies", "runs code"])
def test_alloc_never_runs_a_from_buffer_the_type_defines(bump_cls: type, ctype: Any) -> None:
    """``alloc`` of a type with a ``from_buffer`` of its own: ctypes' is used.

    (The type's own was called: one answering offset 0 aliased every value
    with the first; one running code ran it in the middle of the allocation.)
    """
    _ReenteringValue.calls.clear()
    arena = bump_cls(256)
    values = [arena.alloc(ctype) for _ in range(4)]
    addresses = [ctypes.addressof(v) for v in values]
    assert addresses == [addresses[0] + 8 * k for k in range(4)]
    assert arena.used == 32 and _ReenteringValue.calls == []


# -- a platform layer that records the system calls --------------------------------------


class _RecordingVM:
    """The real platform layer, recording decommit and release calls.

    A decommit outside a reservation it made is refused (EINVAL) and not passed on.
    ``refuse_decommit``: refuse every decommit with that errno.
    """

    def __init__(self, real: Any, refuse_decommit: int | None = None) -> None:
        self._real = real
        self.refuse_decommit = refuse_decommit
        self.reserved: dict[int, int] = {}
        self.decommits: list[tuple[int, int]] = []
        self.releases: list[tuple[Any, Any]] = []
        self.page_size = real.page_size
        self.zero_on_recommit = real.zero_on_recommit

    def reserve(self, size: int) -> int:
        addr: int = self._real.reserve(size)
        self.reserved[addr] = size
        return addr

    def decommit(self, addr: int, size: int) -> int | None:
        self.decommits.append((addr, size))
        if self.refuse_decommit is not None:
            return self.refuse_decommit
        inside = any(
            base <= addr and addr + size <= base + length for base, length in self.reserved.items()
        )
        if not inside:
            return errno.EINVAL
        result: int | None = self._real.decommit(addr, size)
        return result

    def release(self, *args: Any) -> None:
        self.releases.append(args)
        self._real.release(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.fixture
def recording_vm(monkeypatch: pytest.MonkeyPatch) -> _RecordingVM:
    vm = _RecordingVM(linalloc._vm.get())
    monkeypatch.setattr(linalloc._vm, "get", lambda: vm)
    return vm


# -- trim() ----------------------------------------------------------------------------


def test_trim_of_a_bump_arena_decommits_exactly_the_pages_past_used(
    recording_vm: _RecordingVM,
) -> None:
    arena = BumpArenaLazy(1 << 24)
    page = linalloc.page_size()
    step = arena.commit_step
    view = arena.alloc_uninit_slice(Layout(3 * step))
    base = address(view)
    del view
    arena.reset()
    small = arena.alloc_uninit_slice(Layout(1))
    assert arena.committed == 3 * step
    assert arena.trim() == 3 * step - page
    assert recording_vm.decommits == [(base + page, 3 * step - page)]
    assert arena.committed == page and arena.used == 1
    assert arena.trim() == 0  # nothing past used any more: no system call
    assert len(recording_vm.decommits) == 1
    del small
    arena.close()


def test_trim_of_a_typed_arena_decommits_exactly_the_pages_past_its_values(
    recording_vm: _RecordingVM,
) -> None:
    arena = TypedArenaLazy(ctypes.c_int64, 1 << 20)
    page = linalloc.page_size()
    step = arena.commit_step
    base = address(arena.alloc(1))
    arena.alloc_many(3 * step // 8 - 1)
    assert arena.committed == 3 * step
    arena.reset()
    arena.alloc(7)
    assert arena.trim() == 3 * step - page
    assert recording_vm.decommits == [(base + page, 3 * step - page)]
    assert arena.committed == page and len(arena) == 1
    assert [v.value for v in arena] == [7]
    arena.close()


def test_a_refused_trim_names_the_bytes_it_could_not_give_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vm = _RecordingVM(linalloc._vm.get(), refuse_decommit=errno.EINVAL)
    monkeypatch.setattr(linalloc._vm, "get", lambda: vm)
    arena = BumpArenaLazy(1 << 24)
    page = linalloc.page_size()
    step = arena.commit_step
    view = arena.alloc_uninit_slice(Layout(2 * step))
    del view
    arena.reset()
    arena.alloc_uninit_slice(Layout(page + 1))  # keeps two pages
    message = (
        f"cannot give {2 * step - 2 * page} bytes of arena pages back to the OS "
        "(the arena is unchanged and its pages stay committed): "
        f"{os.strerror(errno.EINVAL)}"
    )
    with pytest.raises(OSError, match="^" + re.escape(f"[Errno {errno.EINVAL}] {message}") + "$"):
        arena.trim()
    assert arena.committed == 2 * step and arena.used == page + 1
    assert arena.last_os_error_code == errno.EINVAL
    arena.close()


def test_trim_of_an_eager_arena_is_not_offered() -> None:
    # (the eager store's trim() is only reached by a failed typed allocation: see verdicts)
    assert not hasattr(BumpArena(64), "trim") and not hasattr(TypedArena(ctypes.c_int, 4), "trim")


# -- when the reservation is released -----------------------------------------------------


class _Owner:
    """Owns a lazy typed arena whose drop callback is a bound method: a cycle."""

    def __init__(self, seen: list[int]) -> None:
        self.arena = TypedArenaLazy(ctypes.c_int64, 1 << 20, drop=self.release)
        self.seen = seen

    def release(self, value: Any) -> None:
        self.seen.append(value.value)


@needs_maps
def test_a_collected_cycle_releases_the_reservation_once_after_the_drops(
    recording_vm: _RecordingVM,
) -> None:
    gc.collect()
    seen: list[int] = []
    owner = _Owner(seen)
    where = address(owner.arena.alloc(1))
    for k in range(2, 2 + 3 * owner.arena.commit_step // 8):
        owner.arena.alloc(k)
    count = len(owner.arena)
    assert [addr for addr in recording_vm.reserved] == [where]
    size = recording_vm.reserved[where]
    del owner
    assert mapped(where)  # only the collector can free the cycle
    gc.collect()
    assert seen == list(range(count, 0, -1))  # every value dropped, reading its memory
    assert recording_vm.releases == [(where, size)]
    assert not mapped(where)


@needs_maps
def test_close_keeps_memory_a_kept_value_views_and_releases_it_once_after(
    recording_vm: _RecordingVM,
) -> None:
    kept: list[Any] = []
    arena = TypedArenaLazy(ctypes.c_int64, 1 << 20, drop=kept.append)
    where = address(arena.alloc(5))
    size = recording_vm.reserved[where]
    arena.close()
    assert recording_vm.releases == []  # the kept value still views the memory
    assert mapped(where)
    assert kept[0].value == 5
    kept.clear()
    gc.collect()
    assert recording_vm.releases == [(where, size)]
    assert not mapped(where)


def _answering(answer: Any) -> Any:
    """A fresh ``c_int64`` subclass whose ``T * n`` answers ``answer(T)``, made once."""

    class Meta(type(ctypes.c_int64)):  # type: ignore[misc]
        def __mul__(cls, n: int) -> Any:
            return cls.__dict__["answered"]

    item = Meta("Answered", (ctypes.c_int64,), {})
    item.answered = answer(item)
    return item


def _relabelled(item: Any) -> Any:
    """Two ``c_double`` laid out by ctypes, then labelled as two ``item``."""

    class Doubles(ctypes.Array):  # type: ignore[type-arg]
        _type_ = ctypes.c_double
        _length_ = 2

    Doubles._type_ = item
    return Doubles


def _with_extra(item: Any) -> Any:
    """Two ``item`` straight from ctypes' array metaclass, defining one thing more."""
    meta: Any = type(ctypes.Array)
    return meta("Extra", (ctypes.Array,), {"_type_": item, "_length_": 2, "note": "mine"})


def _exact(item: Any) -> Any:
    meta: Any = type(ctypes.Array)
    return meta("Exact", (ctypes.Array,), {"_type_": item, "_length_": 2})


@pytest.mark.parametrize(
    "answer",
    [_relabelled, _with_extra, lambda item: 5, lambda item: object()],
    ids=["relabelled", "extra", "int", "object"],
)
def test_arrays_are_never_of_a_class_mul_answers_unless_it_is_exactly_that_array(
    answer: Any, typed_cls: type, bump_cls: type
) -> None:
    """``T * n`` answering a class ctypes laid out for another element type (labelled
    ``T`` afterwards), one defining anything ctypes does not, or no class at all: the
    arena's arrays are of its own exact array type, laid out as ``T * n``."""
    item = _answering(answer)
    answered = item * 2
    row = bump_cls(64).alloc_array(item, 2)
    arena = typed_cls(item, 8)
    many = arena.alloc_many(2)
    for array in (row, many):
        assert type(array) is not answered and type(array)._type_ is item
        assert memoryview(array).format == memoryview(item()).format == "<q"
        array[1] = 7
        assert array[1].value == 7 and len(array) == 2


def test_arrays_are_of_the_class_mul_answers_when_it_is_exactly_that_array(
    typed_cls: type, bump_cls: type
) -> None:
    item = _answering(_exact)
    row = bump_cls(64).alloc_array(item, 2)
    arena = typed_cls(item, 8)
    many = arena.alloc_many(2)
    assert type(row) is type(many) is item * 2
