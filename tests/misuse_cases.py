"""The misuse matrix's cases and their runner, kept free of pytest (and numpy, imported
by the cases that make numpy views only) so that a batch starts fast in a fresh
interpreter, under valgrind memcheck too (``tests/test_memcheck.py``).

Cases are generated from tables (arena kinds x view kinds x actions, bad
inputs x arenas, drop-callback behaviours x moments); ``tests/test_misuse.py``
runs them in fresh interpreters, one batch per family and arena kind: each case
prints ``PASS name`` or ``FAIL name`` with its traceback, so a crash (a signal,
a non-zero exit) stops the batch and every case not reported fails the test.
Every case checks the exception type and message and that the arena and the
views it handed out lost nothing.

Run one batch by hand: ``python tests/misuse_cases.py refused[BumpArenaLazy]`` (or several:
they run one after the other in the same interpreter, each ending with ``DONE``).
"""

from __future__ import annotations

import copy
import ctypes
import errno
import gc
import itertools
import pickle
import sys
import threading
import traceback
import weakref
from typing import Any, Callable

import linalloc
from linalloc import Layout, address

KINDS = ["BumpArena", "BumpArenaLazy", "TypedArena", "TypedArenaLazy"]
BUMP_KINDS = KINDS[:2]
TYPED_KINDS = KINDS[2:]

CASES: dict[str, Callable[[], None]] = {}
GROUPS: dict[str, list[str]] = {}

Call = Callable[[Any], object]


def case(group: str, name: str, run: Callable[[], None]) -> None:
    """Register ``run`` as case ``group/name``."""
    full = f"{group}/{name}"
    assert full not in CASES, full
    CASES[full] = run
    GROUPS.setdefault(group, []).append(full)


# -- helpers used inside the cases -------------------------------------------------


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double), ("n", ctypes.c_int32)]


class Other(ctypes.Structure):
    """Same size as Point, another type."""

    _fields_ = [("a", ctypes.c_char * 24)]


class Holder(ctypes.Structure):
    _fields_ = [("n", ctypes.c_int32), ("obj", ctypes.py_object)]


class Linked(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("n", ctypes.c_int32)]


def is_typed(kind: str) -> bool:
    return kind.startswith("Typed")


def is_lazy(kind: str) -> bool:
    return kind.endswith("Lazy")


def make(kind: str, **kwargs: Any) -> Any:
    """A small arena of ``kind``: 4 KiB (1 MiB reserved, lazy) or 64 Points."""
    cls = getattr(linalloc, kind)
    if is_typed(kind):
        return cls(Point, 64, **kwargs)
    return cls(1 << 20 if is_lazy(kind) else 4096, **kwargs)


def expect(error: type[BaseException], fragment: str, call: Callable[[], object]) -> str:
    """``call()`` raises ``error`` whose message contains ``fragment``; returns the message.

    Only the message leaves this function: a kept traceback would keep the
    arena's frames, and so its views, alive.
    """
    try:
        call()
    except error as exc:
        message = str(exc)
    except BaseException as exc:
        raise AssertionError(
            f"expected {error.__name__}, got {type(exc).__name__}: {exc}"
        ) from None
    else:
        raise AssertionError(f"expected {error.__name__}, nothing was raised")
    assert fragment.lower() in message.lower(), f"{message!r} does not say {fragment!r}"
    return message


def state(arena: Any, kind: str) -> dict[str, Any]:
    """Everything observable about an open arena, values' bytes included."""
    found: dict[str, Any] = {
        "used": arena.used,
        "live": arena.live_views(),
        "repr": repr(arena),
        "closed": arena.closed,
    }
    if is_typed(kind):
        found["len"] = len(arena)
        found["values"] = [bytes(v) for v in arena]
    if is_lazy(kind):
        found["committed"] = arena.committed
        found["error"] = arena.last_os_error_code
    return found


def fill(arena: Any, kind: str) -> list[tuple[Any, bytes]]:
    """Allocate a few values with known bytes: (view, bytes) pairs."""
    if is_typed(kind):
        values = [arena.alloc(k + 0.5, -k, k) for k in range(3)]
        return [(v, bytes(v)) for v in values]
    out = []
    for k, layout in enumerate([Layout(5), Layout(16, 8), Layout(3, 64)]):
        view = arena.alloc_uninit_slice(layout)
        view[:] = bytes((k * 37 + i) % 256 for i in range(layout.size))
        out.append((view, bytes(view)))
    number = arena.alloc(ctypes.c_int64)
    number.value = -123456789
    out.append((number, bytes(number)))
    return out


def intact(kept: list[tuple[Any, bytes]]) -> None:
    for view, data in kept:
        assert bytes(memoryview(view).cast("B")) == data, "an earlier value lost its bytes"


def churn() -> None:
    """Allocate and free a lot of memory of many sizes, in and out of arenas."""
    junk: list[Any] = []
    for size in (32, 100, 4096, 5000, 70_000, 1 << 20):
        # (copies of one filled block, made in C: the loop is most of the cost under memcheck)
        junk += map(bytearray, itertools.repeat(b"\x5a" * size, max(4, (16 << 20) // size // 8)))
    for kind in KINDS:
        arena = make(kind)
        if is_typed(kind):
            while arena.alloc(-1.0, -1.0, -1) is not None:
                pass
        else:
            view = arena.alloc_uninit_slice(Layout(arena.capacity))
            view[:] = b"\xa5" * arena.capacity
            del view
        arena.close()
    del junk


def drop_log(kind: str) -> tuple[list[int], dict[str, Any]]:
    """A list the drop callback appends each value's ``n`` to, and the kwargs for make()."""
    log: list[int] = []
    if not is_typed(kind):
        return log, {}
    return log, {"drop": lambda v: log.append(v.n)}


# -- the methods of each arena, for the closed / wrong-thread checks ----------------

METHODS: list[tuple[str, Callable[[str], bool], Call]] = [
    ("alloc_uninit_slice", lambda k: not is_typed(k), lambda a: a.alloc_uninit_slice(Layout(8))),
    ("alloc_uninit_slice_0", lambda k: not is_typed(k), lambda a: a.alloc_uninit_slice(Layout(0))),
    ("alloc_ctype", lambda k: not is_typed(k), lambda a: a.alloc(ctypes.c_int32)),
    ("alloc_array", lambda k: not is_typed(k), lambda a: a.alloc_array(ctypes.c_int32, 3)),
    ("alloc", is_typed, lambda a: a.alloc()),
    ("alloc_args", is_typed, lambda a: a.alloc(1.0, 2.0, 3)),
    ("alloc_raw", is_typed, lambda a: a.alloc_raw((1.0, 2.0, 3))),
    ("len", is_typed, lambda a: len(a)),
    ("iter", is_typed, lambda a: iter(a)),
    ("as_array", is_typed, lambda a: a.as_array()),
    ("is_empty", is_typed, lambda a: a.is_empty()),
    ("used", lambda k: True, lambda a: a.used),
    ("reset", lambda k: True, lambda a: a.reset()),
    ("live_views", lambda k: True, lambda a: a.live_views()),
    ("enter", lambda k: True, lambda a: a.__enter__()),
    ("trim", is_lazy, lambda a: a.trim()),
    ("committed", is_lazy, lambda a: a.committed),
    ("commit_step", is_lazy, lambda a: a.commit_step),
    ("last_os_error_code", is_lazy, lambda a: a.last_os_error_code),
]


def methods_of(kind: str) -> list[tuple[str, Call]]:
    return [(name, call) for name, applies, call in METHODS if applies(kind)]


def after_close_case(kind: str, call: Call) -> Callable[[], None]:
    def run() -> None:
        arena = make(kind)
        kept = fill(arena, kind)
        del kept
        arena.close()
        expect(ValueError, "arena is closed", lambda: call(arena))
        assert arena.closed and repr(arena) == f"<{kind} closed>"

    return run


def close_twice_case(kind: str) -> Callable[[], None]:
    def run() -> None:
        log, kwargs = drop_log(kind)
        arena = make(kind, **kwargs)
        kept = fill(arena, kind)
        del kept
        assert arena.close() is None and arena.close() is None
        assert arena.closed and arena.capacity == make(kind).capacity
        assert log == ([2, 1, 0] if is_typed(kind) else [])  # dropped once, newest first
        with make(kind) as other:
            assert not other.closed
        assert other.closed

    return run


for _kind in KINDS:
    for _name, _call in methods_of(_kind):
        case(f"after_close[{_kind}]", _name, after_close_case(_kind, _call))
    case(f"after_close[{_kind}]", "close_twice", close_twice_case(_kind))


# -- views: every kind of object that keeps arena memory alive ----------------------


class Probe:
    """A view of arena memory held by the test, and how to read it.

    ``objs`` are the only references; ``read()`` gives the bytes seen through
    them (without consuming anything); ``finish()`` uses the view to the end
    (for an iterator: the remaining values) and checks what it sees.
    """

    def __init__(
        self,
        objs: list[Any],
        read: Callable[[list[Any]], bytes],
        finish: Callable[[list[Any]], None] | None = None,
    ) -> None:
        self.objs = objs
        self._read = read
        self._finish = finish

    def read(self) -> bytes:
        return self._read(self.objs)

    def finish(self) -> None:
        if self._finish is not None:
            self._finish(self.objs)


def _slice(arena: Any) -> memoryview:
    view = arena.alloc_uninit_slice(Layout(16, 8))
    view[:] = bytes(range(100, 116))
    return view  # type: ignore[no-any-return]


def _int64(arena: Any) -> Any:
    value = arena.alloc(ctypes.c_int64)
    value.value = 0x1122334455667788
    return value


def _point(arena: Any, n: int = 7) -> Any:
    return arena.alloc(1.5, 2.5, n)


def _bytes_of(objs: list[Any]) -> bytes:
    return bytes(memoryview(objs[0]).cast("B"))


def _iterator_probe(arena: Any) -> Probe:
    for n in (1, 2, 3):
        _point(arena, n)
    expected = [bytes(v) for v in arena][1:]
    it = iter(arena)
    next(it)

    def finish(objs: list[Any]) -> None:
        assert [bytes(v) for v in objs[0]] == expected

    return Probe([it], lambda objs: b"", finish)


def _as_array(arena: Any) -> Any:
    for n in (1, 2):
        _point(arena, n)
    return arena.as_array()


def _numpy(obj: Any) -> Any:
    # (imported here: only the batches with numpy views pay for the import)
    try:
        import numpy
    except ImportError:  # pragma: no cover - numpy is a test dependency
        return bytearray(bytes(obj))
    return numpy.frombuffer(obj, dtype=numpy.uint8)


BUMP_VIEWS: dict[str, Callable[[Any], Probe]] = {
    "memoryview": lambda a: Probe([_slice(a)], _bytes_of),
    "slice_of_view": lambda a: Probe([_slice(a)[4:12]], _bytes_of),
    "from_buffer": lambda a: Probe([(ctypes.c_ubyte * 16).from_buffer(_slice(a))], _bytes_of),
    "ctypes_value": lambda a: Probe([_int64(a)], _bytes_of),
    "ctypes_array": lambda a: Probe([a.alloc_array(ctypes.c_int32, 4)], _bytes_of),
    "numpy": lambda a: Probe([_numpy(_slice(a))], _bytes_of),
    "pointer": lambda a: Probe([ctypes.pointer(_int64(a))], lambda o: bytes(o[0].contents)),
    "memoryview_of_value": lambda a: Probe([memoryview(_int64(a))], _bytes_of),
}

TYPED_VIEWS: dict[str, Callable[[Any], Probe]] = {
    "value": lambda a: Probe([_point(a)], _bytes_of),
    "memoryview": lambda a: Probe([memoryview(_point(a))], _bytes_of),
    "from_buffer": lambda a: Probe(
        [(ctypes.c_ubyte * ctypes.sizeof(Point)).from_buffer(_point(a))], _bytes_of
    ),
    "as_array": lambda a: Probe([_as_array(a)], _bytes_of),
    "iterator": _iterator_probe,
    "numpy": lambda a: Probe([_numpy(_point(a))], _bytes_of),
    "numpy_of_as_array": lambda a: Probe([_numpy(_as_array(a))], _bytes_of),
    "pointer": lambda a: Probe([ctypes.pointer(_point(a))], lambda o: bytes(o[0].contents)),
    "byref": lambda a: Probe([ctypes.byref(_point(a))], lambda o: bytes(o[0]._obj)),
}


def views_for(kind: str) -> dict[str, Callable[[Any], Probe]]:
    return TYPED_VIEWS if is_typed(kind) else BUMP_VIEWS


def refused_case(kind: str, make_view: Callable[[Any], Probe], action: str) -> Callable[[], None]:
    """reset()/close() while one view lives: BufferError naming 1 view; nothing changes."""

    def run() -> None:
        log, kwargs = drop_log(kind)
        arena = make(kind, **kwargs)
        probe = make_view(arena)
        before, seen = state(arena, kind), probe.read()
        assert before["live"] == 1
        message = expect(BufferError, f"cannot {action}: 1 view ", getattr(arena, action))
        assert "delete them first" in message
        assert state(arena, kind) == before and probe.read() == seen and log == []
        probe.finish()
        del probe
        getattr(arena, action)()
        assert arena.closed == (action == "close")
        if is_typed(kind):
            assert log == sorted(log, reverse=True) and len(log) == before["len"]

    return run


def many_views_case(kind: str, action: str) -> Callable[[], None]:
    """Every view kind at once: the message counts them all."""

    def run() -> None:
        arena = make(kind)
        probes = [make_view(arena) for make_view in views_for(kind).values()]
        n = arena.live_views()
        assert n == len(probes)
        before = state(arena, kind)
        expect(BufferError, f"cannot {action}: {n} views ", getattr(arena, action))
        assert state(arena, kind) == before
        del probes[::2]
        expect(BufferError, f"{n // 2} views", getattr(arena, action))
        del probes
        getattr(arena, action)()

    return run


def cycle_case(kind: str, make_view: Callable[[Any], Probe]) -> Callable[[], None]:
    """A view held only by an unreachable cycle does not block reset()."""

    def run() -> None:
        arena = make(kind)
        box: dict[str, Any] = {"probe": make_view(arena)}
        box["self"] = box
        del box
        gc.disable()  # the cycle must be found by reset() itself
        try:
            arena.reset()
        finally:
            gc.enable()
        assert arena.live_views() == 0

    return run


def other_arena_case(kind: str) -> Callable[[], None]:
    def run() -> None:
        first, second = make(kind), make(kind)
        kept = fill(first, kind)
        second.reset()
        second.close()
        intact(kept)
        expect(BufferError, f"{len(kept)} views", first.reset)

    return run


for _kind in KINDS:
    for _view, _maker in views_for(_kind).items():
        for _action in ("reset", "close"):
            case(f"refused[{_kind}]", f"{_action}_{_view}", refused_case(_kind, _maker, _action))
        case(f"refused[{_kind}]", f"cycle_{_view}", cycle_case(_kind, _maker))
    for _action in ("reset", "close"):
        case(f"refused[{_kind}]", f"{_action}_all_views", many_views_case(_kind, _action))
    case(f"refused[{_kind}]", "other_arena", other_arena_case(_kind))


def overwrite(probe: Probe, data: bytes) -> None:
    """Write ``data`` through the probe's view where it is writable; read it back."""
    for obj in probe.objs:
        if not isinstance(obj, (map, ctypes._Pointer)) and type(obj).__name__ != "CArgObject":
            memoryview(obj).cast("B")[:] = data
            assert probe.read() == data


def outlive_case(kind: str, make_view: Callable[[Any], Probe]) -> Callable[[], None]:
    """The arena is deleted while a view lives; heavy allocation; the view still works."""

    def run() -> None:
        log, kwargs = drop_log(kind)
        arena = make(kind, **kwargs)
        probe = make_view(arena)
        seen = probe.read()
        n = len(arena) if is_typed(kind) else 0
        del arena
        gc.collect()
        churn()
        assert probe.read() == seen, "a view of a deleted arena lost its bytes"
        overwrite(probe, b"\x33" * len(seen))
        churn()
        probe.finish()
        assert log == [], "a value was dropped while a view of it lived"
        del probe
        gc.collect()
        assert len(log) == n and log == sorted(log, reverse=True), log

    return run


for _kind in KINDS:
    for _view, _maker in views_for(_kind).items():
        case(f"outlive[{_kind}]", _view, outlive_case(_kind, _maker))


# -- threads ------------------------------------------------------------------------


def in_thread(call: Callable[[], object]) -> tuple[str, str] | None:
    """Run ``call`` in another thread; (exception type name, message) or None."""
    outcome: list[tuple[str, str] | None] = [None]

    def worker() -> None:
        try:
            call()
        except BaseException as exc:
            outcome[0] = (type(exc).__name__, str(exc))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    return outcome[0]


def wrong_thread_case(kind: str, call: Call) -> Callable[[], None]:
    def run() -> None:
        arena = make(kind)
        kept = fill(arena, kind)
        before = state(arena, kind)
        outcome = in_thread(lambda: call(arena))
        assert outcome is not None and outcome[0] == "RuntimeError", outcome
        assert "check_thread=False" in outcome[1] and "same thread" in outcome[1]
        assert state(arena, kind) == before
        intact(kept)

    return run


def created_in_thread_case(kind: str) -> Callable[[], None]:
    def run() -> None:
        made: list[Any] = []
        assert in_thread(lambda: made.append(make(kind))) is None
        expect(RuntimeError, "check_thread=False", lambda: methods_of(kind)[0][1](made[0]))

    return run


def unchecked_case(kind: str) -> Callable[[], None]:
    """check_thread=False: another thread may allocate, reset and close."""

    def run() -> None:
        log, kwargs = drop_log(kind)
        arena = make(kind, check_thread=False, **kwargs)
        kept = fill(arena, kind)

        def work() -> None:
            more = fill(arena, kind)
            intact(more)
            del more
            arena.used  # noqa: B018 - reading is a call too

        assert in_thread(work) is None
        intact(kept)
        del kept
        assert in_thread(arena.reset) is None
        assert in_thread(arena.close) is None
        assert arena.closed
        if is_typed(kind):  # both fills, newest first
            assert log == [2, 1, 0, 2, 1, 0], log

    return run


def bad_check_thread_case(kind: str) -> Callable[[], None]:
    def run() -> None:
        for bad in (1, "yes", None):
            expect(
                TypeError,
                "check_thread must be a bool",
                lambda bad=bad: make(kind, check_thread=bad),
            )

    return run


for _kind in KINDS:
    for _name, _call in [*methods_of(_kind), ("close", lambda a: a.close())]:
        case(f"threads[{_kind}]", _name, wrong_thread_case(_kind, _call))
    case(f"threads[{_kind}]", "created_in_thread", created_in_thread_case(_kind))
    case(f"threads[{_kind}]", "check_thread_false", unchecked_case(_kind))
    case(f"threads[{_kind}]", "check_thread_not_bool", bad_check_thread_case(_kind))


# -- pickling and copying -----------------------------------------------------------

COPIES: list[tuple[str, Call]] = [
    *[(f"pickle_protocol_{p}", lambda a, p=p: pickle.dumps(a, p)) for p in range(6)],
    ("copy", copy.copy),
    ("deepcopy", copy.deepcopy),
    ("deepcopy_in_list", lambda a: copy.deepcopy([1, a])),
    ("pickle_in_dict", lambda a: pickle.dumps({"arena": a})),
]


def copy_case(kind: str, call: Call) -> Callable[[], None]:
    def run() -> None:
        arena = make(kind)
        kept = fill(arena, kind)
        before = state(arena, kind)
        expect(TypeError, "cannot pickle or copy", lambda: call(arena))
        assert state(arena, kind) == before
        intact(kept)

    return run


def value_copy_case(kind: str, how: str) -> Callable[[], None]:
    """A copy of a value lives outside the arena: it neither pins nor follows it."""

    def run() -> None:
        arena = make(kind)
        value = _point(arena) if is_typed(kind) else _int64(arena)
        if how == "pickle":
            clone = pickle.loads(pickle.dumps(value))
        else:
            clone = getattr(copy, how)(value)
        data = bytes(value)
        assert bytes(clone) == data and address(clone) != address(value)
        del value
        arena.reset()  # the copy is no view of the arena
        if is_typed(kind):
            arena.alloc(-9.0, -9.0, -9)
        else:
            arena.alloc(ctypes.c_int64).value = -9
        assert bytes(clone) == data

    return run


for _kind in KINDS:
    for _name, _call in COPIES:
        case(f"copy[{_kind}]", _name, copy_case(_kind, _call))
    for _how in ("copy", "deepcopy", "pickle"):
        case(f"copy[{_kind}]", f"value_{_how}", value_copy_case(_kind, _how))


def simple_value_pickle_case(kind: str) -> Callable[[], None]:
    """Values of a simple type pickle as plain instances of that type."""

    def run() -> None:
        arena = getattr(linalloc, kind)(ctypes.c_int64, 4)
        value = arena.alloc(-77)
        clone = pickle.loads(pickle.dumps(value))
        assert type(clone) is ctypes.c_int64 and clone.value == -77
        del value
        arena.close()

    return run


for _kind in TYPED_KINDS:
    case(f"copy[{_kind}]", "simple_value_pickle", simple_value_pickle_case(_kind))


# -- bad layouts, capacities, types and values ---------------------------------------

MAXSIZE = sys.maxsize
LAYOUTS: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    *[
        (f"align_{align!r}", lambda align=align: Layout(8, align), ValueError, "power of two")
        for align in (0, -1, 3, 6, 12, (1 << 40) + 1, (1 << 40) - 1, -(1 << 40))
    ],
    *[
        (f"align_{bad!r}", lambda bad=bad: Layout(8, bad), TypeError, "align must be an int")
        for bad in (1.0, True, "8", None, 2**3.0)
    ],
    *[
        (f"size_{size!r}", lambda size=size: Layout(size), ValueError, "size must be >= 0")
        for size in (-1, -(1 << 70))
    ],
    *[
        (f"size_{bad!r}", lambda bad=bad: Layout(bad), TypeError, "size must be an int")
        for bad in (1.5, True, False, None, "8", b"8")
    ],
    ("size_maxsize_plus_1", lambda: Layout(MAXSIZE + 1), ValueError, "exceeds sys.maxsize"),
    ("size_maxsize_align_2", lambda: Layout(MAXSIZE, 2), ValueError, "exceeds sys.maxsize"),
    ("size_2_64_align_2_40", lambda: Layout(1 << 64, 1 << 40), ValueError, "exceeds sys.maxsize"),
    ("from_size_align_3", lambda: Layout.from_size_align(4, 3), ValueError, "power of two"),
    ("new_int", lambda: Layout.new(int), TypeError, "ctypes data type"),
    ("new_instance", lambda: Layout.new(Point()), TypeError, "ctypes data type"),
    ("array_negative", lambda: Layout.array(ctypes.c_int32, -1), ValueError, "n must be >= 0"),
    ("array_float", lambda: Layout.array(ctypes.c_int32, 2.0), TypeError, "n must be an int"),
    ("array_huge", lambda: Layout.array(ctypes.c_int32, MAXSIZE), ValueError, "sys.maxsize"),
    ("immutable", lambda: setattr(Layout(8), "_size", 1 << 40), AttributeError, "immutable"),
]


def layout_case(
    call: Callable[[], object], error: type[Exception], fragment: str
) -> Callable[[], None]:
    def run() -> None:
        expect(error, fragment, call)

    return run


def valid_extremes_case() -> None:
    assert Layout(MAXSIZE).size == MAXSIZE
    assert Layout(0, 1 << 40).align == 1 << 40
    assert Layout(1 << 62, 1 << 62) == Layout.from_size_align(1 << 62, 1 << 62)


for _name, _call, _error, _fragment in LAYOUTS:
    case("layouts", _name, layout_case(_call, _error, _fragment))
case("layouts", "valid_extremes", valid_extremes_case)

HUGE_REQUESTS: list[tuple[str, Call]] = [
    ("slice_maxsize", lambda a: a.alloc_uninit_slice(Layout(MAXSIZE))),
    ("slice_align_2_40", lambda a: a.alloc_uninit_slice(Layout(1, 1 << 40))),
    ("slice_2_40_align_2_40", lambda a: a.alloc_uninit_slice(Layout(1 << 40, 1 << 40))),
    ("slice_2_62_align_2_62", lambda a: a.alloc_uninit_slice(Layout(1 << 62, 1 << 62))),
    ("slice_one_past", lambda a: a.alloc_uninit_slice(Layout(a.capacity - a.used + 1))),
    ("array_maxsize", lambda a: a.alloc_array(ctypes.c_int64, MAXSIZE)),
    ("array_maxsize_over_8", lambda a: a.alloc_array(ctypes.c_int64, MAXSIZE // 8 + 1)),
    ("array_point_maxsize", lambda a: a.alloc_array(Point, MAXSIZE // 24)),
    ("array_rows_2_60", lambda a: a.alloc_array(ctypes.c_int64 * 1000, 1 << 60)),
    ("array_2_100", lambda a: a.alloc_array(ctypes.c_char, 1 << 100)),
    ("array_zero_size_2_100", lambda a: a.alloc_array(ctypes.c_int64 * 0, 1 << 100)),
    ("array_one_past", lambda a: a.alloc_array(ctypes.c_uint8, a.capacity - a.used + 1)),
]


def huge_request_case(kind: str, call: Call) -> Callable[[], None]:
    """A request that cannot fit returns None, as documented, and changes nothing."""

    def run() -> None:
        arena = make(kind)
        kept = fill(arena, kind)
        before = state(arena, kind)
        result = call(arena)
        assert result is None, result
        assert state(arena, kind) == before
        intact(kept)
        assert arena.alloc_uninit_slice(Layout(8, 8)) is not None  # still works

    return run


def zero_size_huge_align_case(kind: str) -> Callable[[], None]:
    def run() -> None:
        arena = make(kind)
        kept = fill(arena, kind)
        before = state(arena, kind)
        empty = arena.alloc_uninit_slice(Layout(0, 1 << 40))
        assert empty is not None and len(empty) == 0 and arena.used == before["used"]
        del empty
        assert state(arena, kind) == before
        intact(kept)

    return run


for _kind in BUMP_KINDS:
    for _name, _call in HUGE_REQUESTS:
        case(f"huge[{_kind}]", _name, huge_request_case(_kind, _call))
    case(f"huge[{_kind}]", "zero_size_align_2_40", zero_size_huge_align_case(_kind))


def new_arena(kind: str, capacity: Any, **kwargs: Any) -> Any:
    cls = getattr(linalloc, kind)
    return cls(Point, capacity, **kwargs) if is_typed(kind) else cls(capacity, **kwargs)


CAPACITIES: list[tuple[str, Any, Callable[[str], tuple[type[Exception], str]]]] = [
    *[
        (f"type_{name}", bad, lambda k: (TypeError, "capacity must be an int"))
        for name, bad in [
            ("float", 8.0),
            ("str", "8"),
            ("none", None),
            ("true", True),
            ("false", False),
            ("bytes", b"8"),
            ("list", [8]),
            ("complex", 8j),
            ("layout", Layout(8)),
        ]
    ],
    ("negative", -1, lambda k: (ValueError, "capacity must be >= 0")),
    ("very_negative", -(1 << 70), lambda k: (ValueError, "capacity must be >= 0")),
    ("two_to_the_70", 1 << 70, lambda k: (OverflowError, "exceed")),
    (
        "maxsize",
        MAXSIZE,
        lambda k: (
            (OverflowError, "exceed")
            if is_typed(k) or is_lazy(k)
            else (MemoryError, "cannot allocate")
        ),
    ),
    (
        "two_to_the_58",
        1 << 58,
        lambda k: (OSError, "cannot reserve") if is_lazy(k) else (MemoryError, "cannot allocate"),
    ),
]


def capacity_case(
    kind: str, capacity: Any, outcome: tuple[type[Exception], str]
) -> Callable[[], None]:
    def run() -> None:
        error, fragment = outcome
        message = expect(error, fragment, lambda: new_arena(kind, capacity))
        if error is OSError:  # the errno is set, and said
            try:
                new_arena(kind, capacity)
            except OSError as exc:
                assert exc.errno == errno.ENOMEM, exc.errno
        assert message
        arena = make(kind)  # nothing was left broken
        intact(fill(arena, kind))

    return run


for _kind in KINDS:
    for _name, _capacity, _outcome in CAPACITIES:
        case(f"capacity[{_kind}]", _name, capacity_case(_kind, _capacity, _outcome(_kind)))

BAD_CTYPES: list[tuple[str, Callable[[], Any], str]] = [
    ("int", lambda: int, "ctypes data type"),
    ("instance", lambda: Point(), "ctypes data type"),
    ("name", lambda: "Point", "ctypes data type"),
    ("none", lambda: None, "ctypes data type"),
    ("py_object", lambda: ctypes.py_object, "py_object"),
    ("struct_with_py_object", lambda: Holder, "py_object"),
    ("array_of_py_object", lambda: ctypes.py_object * 3, "py_object"),
    ("nested_py_object", lambda: Holder * 2 * 2, "py_object"),
]


def bad_ctype_case(kind: str, make_type: Callable[[], Any], fragment: str) -> Callable[[], None]:
    def run() -> None:
        bad = make_type()
        expect(TypeError, fragment, lambda: getattr(linalloc, kind)(bad, 4))

    return run


def bad_drop_case(kind: str) -> Callable[[], None]:
    def run() -> None:
        expect(TypeError, "drop must be callable", lambda: make(kind, drop=5))

    return run


for _kind in TYPED_KINDS:
    for _name, _make_type, _fragment in BAD_CTYPES:
        case(f"capacity[{_kind}]", f"ctype_{_name}", bad_ctype_case(_kind, _make_type, _fragment))
    case(f"capacity[{_kind}]", "drop_not_callable", bad_drop_case(_kind))

# Typed values of the wrong kind: (label, ctype, good value, bad value, alloc or alloc_raw,
# exception, message fragment).
TYPED_BAD_VALUES: list[tuple[str, Any, Any, Any, str, type[Exception], str]] = [
    ("point_str", Point, (1.0, 2.0, 3), "x", "raw", TypeError, "tuple of its fields"),
    ("point_float", Point, (1.0, 2.0, 3), 1.5, "raw", TypeError, "tuple of its fields"),
    ("point_none", Point, (1.0, 2.0, 3), None, "raw", TypeError, "tuple of its fields"),
    ("point_list", Point, (1.0, 2.0, 3), [1.0, 2.0], "raw", TypeError, "tuple of its fields"),
    ("point_other", Point, (1.0, 2.0, 3), Other(), "raw", TypeError, "Point"),
    ("point_too_many", Point, (1.0, 2.0, 3), (1.0, 2.0, 3, 4), "raw", TypeError, "too many"),
    ("point_field_type", Point, (1.0, 2.0, 3), ("x",), "raw", TypeError, "str"),
    ("point_args_str", Point, (1.0, 2.0, 3), ("x",), "args", TypeError, "str"),
    ("point_args_too_many", Point, (1.0,), (1.0, 2.0, 3, 4), "args", TypeError, "too many"),
    ("int64_str", ctypes.c_int64, 5, "x", "raw", TypeError, "str"),
    ("int64_float", ctypes.c_int64, 5, 1.5, "raw", TypeError, "float"),
    ("int64_none", ctypes.c_int64, 5, None, "raw", TypeError, "NoneType"),
    ("int64_double", ctypes.c_int64, 5, ctypes.c_double(1.0), "raw", TypeError, ""),
    ("int64_args_str", ctypes.c_int64, 5, ("x",), "args", TypeError, "str"),
    ("double_str", ctypes.c_double, 5.0, "x", "raw", TypeError, "str"),
    ("double_huge", ctypes.c_double, 5.0, 10**400, "raw", OverflowError, "too large"),
    ("chars_too_long", ctypes.c_char * 4, b"ab", b"toolong", "raw", ValueError, "too long"),
    ("chars_str", ctypes.c_char * 4, b"ab", "str", "raw", TypeError, "bytes"),
    ("chars_int", ctypes.c_char * 4, b"ab", 5, "raw", TypeError, "c_char_Array_4"),
    ("array_too_many", ctypes.c_int16 * 3, (1, 2), (1, 2, 3, 4), "raw", TypeError, "too many"),
    (
        "array_args_too_many",
        ctypes.c_int16 * 3,
        (1, 2),
        (1, 2, 3, 4),
        "args",
        TypeError,
        "too many",
    ),
    ("array_str", ctypes.c_int16 * 3, (1, 2), ("x",), "raw", TypeError, "str"),
    ("pointer_int", ctypes.POINTER(ctypes.c_int), None, 5, "raw", TypeError, "int"),
    (
        "pointer_wrong_target",
        ctypes.POINTER(ctypes.c_int),
        None,
        ctypes.pointer(ctypes.c_double(1.0)),
        "raw",
        TypeError,
        "",
    ),
]


def typed_bad_value_case(
    kind: str, ctype: Any, good: Any, bad: Any, how: str, error: type[Exception], fragment: str
) -> Callable[[], None]:
    def run() -> None:
        arena = getattr(linalloc, kind)(ctype, 8)
        size = ctypes.sizeof(ctype)
        kept = [arena.alloc_raw(good) for _ in range(2)] + [arena.alloc()]
        snapshot = [(v, bytes(v)) for v in kept]
        before = state(arena, kind)
        if how == "raw":
            message = expect(error, fragment, lambda: arena.alloc_raw(bad))
        else:
            message = expect(error, fragment, lambda: arena.alloc(*bad))
        assert ctype.__name__ in message, f"{message!r} does not name the arena's type"
        assert state(arena, kind) == before
        intact(snapshot)
        nxt = arena.alloc_raw(good)  # the failed slot is reused, cleared
        assert address(nxt) == address(kept[0]) + 3 * size and len(arena) == 4

    return run


for _kind in TYPED_KINDS:
    for _label, _ctype, _good, _bad, _how, _error, _fragment in TYPED_BAD_VALUES:
        case(
            f"values[{_kind}]",
            _label,
            typed_bad_value_case(_kind, _ctype, _good, _bad, _how, _error, _fragment),
        )


def typed_bad_value_when_full_case(kind: str) -> Callable[[], None]:
    """A wrong value is refused as such even when the arena is full."""

    def run() -> None:
        arena = getattr(linalloc, kind)(ctypes.c_int64, 1)
        assert arena.alloc(1) is not None
        expect(TypeError, "str", lambda: arena.alloc_raw("x"))
        assert arena.alloc_raw(2) is None and len(arena) == 1

    return run


for _kind in TYPED_KINDS:
    case(f"values[{_kind}]", "wrong_value_when_full", typed_bad_value_when_full_case(_kind))

BUMP_BAD_VALUES: list[tuple[str, Call, type[Exception], str]] = [
    ("alloc_int", lambda a: a.alloc(int), TypeError, "ctypes data type"),
    ("alloc_str", lambda a: a.alloc("c_int"), TypeError, "ctypes data type"),
    ("alloc_instance", lambda a: a.alloc(Point()), TypeError, "ctypes data type"),
    ("alloc_py_object", lambda a: a.alloc(ctypes.py_object), TypeError, "py_object"),
    ("alloc_holder", lambda a: a.alloc(Holder), TypeError, "py_object"),
    ("array_py_object", lambda a: a.alloc_array(ctypes.py_object, 2), TypeError, "py_object"),
    ("array_negative", lambda a: a.alloc_array(Point, -1), ValueError, "n must be >= 0"),
    ("array_float", lambda a: a.alloc_array(Point, 1.0), TypeError, "n must be an int"),
    ("array_bool", lambda a: a.alloc_array(Point, True), TypeError, "n must be an int"),
    ("array_type", lambda a: a.alloc_array(3, 2), TypeError, "ctypes data type"),
    ("slice_int", lambda a: a.alloc_uninit_slice(8), TypeError, "layout must be a Layout"),
    ("slice_tuple", lambda a: a.alloc_uninit_slice((8, 8)), TypeError, "layout must be a Layout"),
    ("slice_none", lambda a: a.alloc_uninit_slice(None), TypeError, "layout must be a Layout"),
    ("address_int", lambda a: address(5), TypeError, "memoryview or a ctypes object"),
    ("address_readonly", lambda a: address(memoryview(b"ro")), TypeError, "writable"),
]


def bump_bad_value_case(
    kind: str, call: Call, error: type[Exception], fragment: str
) -> Callable[[], None]:
    def run() -> None:
        arena = make(kind)
        kept = fill(arena, kind)
        before = state(arena, kind)
        expect(error, fragment, lambda: call(arena))
        assert state(arena, kind) == before
        intact(kept)

    return run


for _kind in BUMP_KINDS:
    for _name, _call, _error, _fragment in BUMP_BAD_VALUES:
        case(f"values[{_kind}]", _name, bump_bad_value_case(_kind, _call, _error, _fragment))

STALE_POINTERS: list[tuple[str, Call, Callable[[Any], bool]]] = [
    ("c_char_p", lambda a: a.alloc(ctypes.c_char_p), lambda v: v.value is None),
    ("c_wchar_p", lambda a: a.alloc(ctypes.c_wchar_p), lambda v: v.value is None),
    ("c_void_p", lambda a: a.alloc(ctypes.c_void_p), lambda v: v.value is None),
    ("pointer", lambda a: a.alloc(ctypes.POINTER(ctypes.c_int)), lambda v: not v),
    ("struct", lambda a: a.alloc(Linked), lambda v: v.name is None),
    (
        "array",
        lambda a: a.alloc_array(ctypes.c_char_p, 4),
        lambda v: list(v) == [None] * 4,
    ),
    (
        "struct_array",
        lambda a: a.alloc_array(Linked, 3),
        lambda v: [x.name for x in v] == [None] * 3,
    ),
]


def stale_pointer_case(kind: str, call: Call, is_null: Callable[[Any], bool]) -> Callable[[], None]:
    """A pointer type is never handed out holding an earlier use's bytes.

    The whole arena is filled with garbage through a view and reset; then values
    are taken one at a time at shifting offsets (a slice in between closes any
    window), then many in a row (windows), until the arena is full.
    """

    def run() -> None:
        arena = make(kind)
        for _ in range(2):
            garbage = arena.alloc_uninit_slice(Layout(arena.capacity))
            garbage[:] = b"\x01" * arena.capacity
            del garbage
            arena.reset()
            values = []
            for k in range(64):
                if k < 24:
                    arena.alloc_uninit_slice(Layout(1))
                value = call(arena)
                assert value is not None
                values.append(value)
            while len(values) < 4096:
                value = call(arena)
                if value is None:
                    break
                values.append(value)
            for value in values:
                # The bytes first: reading a stale address would crash.
                raw = ctypes.string_at(ctypes.addressof(value), ctypes.sizeof(value))
                assert raw == bytes(len(raw)), "a pointer value came with a stale address"
                assert is_null(value)
            del values, value
            arena.reset()

    return run


for _kind in BUMP_KINDS:
    for _name, _call, _is_null in STALE_POINTERS:
        case(f"values[{_kind}]", f"stale_{_name}", stale_pointer_case(_kind, _call, _is_null))


# -- drop callbacks -----------------------------------------------------------------


class Unraisable:
    """Collect what goes to sys.unraisablehook."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __enter__(self) -> Unraisable:
        self.saved = sys.unraisablehook
        sys.unraisablehook = lambda u: self.seen.append(
            f"{type(u.exc_value).__name__}: {u.exc_value}"
        )
        return self

    def __exit__(self, *exc: object) -> None:
        sys.unraisablehook = self.saved


def finish_with(arena_ref: Any, when: str) -> str | None:
    """Run ``when`` ("reset", "close" or "collect") on the arena; the error's text or None."""
    if when == "collect":
        with Unraisable() as hook:
            del arena_ref[0]
            gc.collect()
        assert len(hook.seen) <= 1, hook.seen
        return hook.seen[0] if hook.seen else None
    try:
        getattr(arena_ref[0], when)()
    except BaseException as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def drop_raises_case(kind: str, when: str) -> Callable[[], None]:
    """The first exception is raised after every value was dropped."""

    def run() -> None:
        log: list[int] = []

        def drop(v: Any) -> None:
            log.append(v.n)
            if v.n in (1, 3):
                raise ValueError(f"cannot drop {v.n}")

        arena = [make(kind, drop=drop)]
        for n in range(5):
            _point(arena[0], n)
        error = finish_with(arena, when)
        assert error == "ValueError: cannot drop 3", error
        assert log == [4, 3, 2, 1, 0]
        if when == "reset":
            assert len(arena[0]) == 0
            assert _point(arena[0], 9) is not None and len(arena[0]) == 1
        if when == "close":
            assert arena[0].closed
        gc.collect()
        assert log == [4, 3, 2, 1, 0]  # exactly once

    return run


def drop_interrupt_case(kind: str, when: str) -> Callable[[], None]:
    """A KeyboardInterrupt stops dropping; the rest are dropped later, exactly once, and
    the values dropped keep their slots until then."""

    def run() -> None:
        log: list[int] = []
        interrupt = [True]

        def drop(v: Any) -> None:
            log.append(v.n)
            if v.n == 2 and interrupt[0]:
                interrupt[0] = False
                raise KeyboardInterrupt

        arena = [make(kind, drop=drop)]
        for n in range(5):
            _point(arena[0], n)
        error = finish_with(arena, when)
        assert error is not None and error.startswith("KeyboardInterrupt"), error
        assert log == [4, 3, 2]
        # (0 and 1 are still live; 2, 3 and 4 keep their slots, dead)
        assert len(arena[0]) == 5 and [v.n for v in arena[0]][:2] == [0, 1]
        assert not arena[0].closed
        del arena[0]  # the remaining two are dropped when the arena goes
        gc.collect()
        assert log == [4, 3, 2, 1, 0], log

    return run


REENTRY: dict[str, Callable[[Any], object]] = {
    "alloc": lambda a: a.alloc(),
    "alloc_args": lambda a: a.alloc(1.0, 2.0, 3),
    "alloc_raw": lambda a: a.alloc_raw((1.0, 2.0, 3)),
    "reset": lambda a: a.reset(),
    "close": lambda a: a.close(),
    "trim": lambda a: a.trim(),
}


def drop_reenters_case(kind: str, when: str, action: str) -> Callable[[], None]:
    """A drop callback that allocates from, resets, closes or trims its arena gets a
    RuntimeError; the reset/close it interrupted completes and raises it after."""

    def run() -> None:
        log: list[int] = []
        arena: Any = None
        reenter = [True]

        def drop(v: Any) -> None:
            log.append(v.n)
            if reenter[0]:
                REENTRY[action](arena)

        arena = make(kind, drop=drop)
        for n in range(3):
            _point(arena, n)
        error = finish_with([arena], when)
        assert error is not None and error.startswith("RuntimeError"), error
        assert "drop callback cannot" in error
        assert log == [2, 1, 0]
        if when == "reset":
            assert len(arena) == 0 and not arena.closed
            value = _point(arena, 5)
            assert value.n == 5 and len(arena) == 1
            del value
        else:
            assert arena.closed
        log.clear()
        reenter[0] = False
        arena.close()
        assert log == ([5] if when == "reset" else [])

    return run


def drop_stores_case(kind: str, when: str) -> Callable[[], None]:
    """A drop callback that keeps the values: no crash, whatever comes next."""

    def run() -> None:
        stored: list[Any] = []
        seen: list[bytes] = []

        def drop(v: Any) -> None:
            stored.append(v)
            seen.append(bytes(v))

        arena = [make(kind, drop=drop)]
        for n in range(4):
            _point(arena[0], n)
        expected = [bytes(Point(1.5, 2.5, n)) for n in (3, 2, 1, 0)]
        assert finish_with(arena, when) is None
        assert seen == expected
        if when == "reset":
            # The stored values are views now: the next reset is refused until they
            # go, and their memory is not handed out again while they live.
            expect(BufferError, "4 views", arena[0].reset)
            expect(BufferError, "4 views of memory freed by reset", lambda: _point(arena[0], 9))
            assert [bytes(v) for v in stored] == expected  # untouched
            stored.clear()
            for n in range(4):
                _point(arena[0], 10 + n)
            seen.clear()
            arena[0].reset()  # drops (and so stores) the four new values
            assert [Point.from_buffer_copy(data).n for data in seen] == [13, 12, 11, 10]
            stored.clear()
            arena[0].close()
        churn()
        if when != "reset":
            assert [bytes(v) for v in stored] == expected
            for v in stored:
                v.n = -1
            churn()
            assert [v.n for v in stored] == [-1] * 4

    return run


def drop_reads_case(kind: str) -> Callable[[], None]:
    """A drop callback may look at its arena (no crash, no change)."""

    def run() -> None:
        seen: list[Any] = []
        arena: Any = None

        def drop(v: Any) -> None:
            seen.append((len(arena), arena.used, repr(arena), [p.n for p in arena]))

        arena = make(kind, drop=drop)
        for n in range(3):
            _point(arena, n)
        arena.reset()
        assert len(seen) == 3 and len(arena) == 0
        arena.close()

    return run


for _kind in TYPED_KINDS:
    for _when in ("reset", "close", "collect"):
        case(f"drop[{_kind}]", f"raises_at_{_when}", drop_raises_case(_kind, _when))
        case(f"drop[{_kind}]", f"stores_at_{_when}", drop_stores_case(_kind, _when))
    for _when in ("reset", "close"):
        case(f"drop[{_kind}]", f"interrupt_at_{_when}", drop_interrupt_case(_kind, _when))
        for _action in REENTRY:
            if _action == "trim" and not is_lazy(_kind):
                continue
            case(
                f"drop[{_kind}]",
                f"{_action}_in_drop_at_{_when}",
                drop_reenters_case(_kind, _when, _action),
            )
    case(f"drop[{_kind}]", "reads_arena", drop_reads_case(_kind))


def drop_collected_case(kind: str) -> Callable[[], None]:
    """Values are dropped, and the arena freed, as soon as nothing refers to them."""

    def run() -> None:
        log: list[int] = []
        arena = make(kind, drop=lambda v: log.append(v.n))
        ref = weakref.ref(arena)
        _point(arena, 1)
        del arena
        gc.collect()
        assert ref() is None and log == [1]

    return run


for _kind in TYPED_KINDS:
    case(f"drop[{_kind}]", "collected_when_unreachable", drop_collected_case(_kind))


# -- context managers -----------------------------------------------------------------


def with_live_view_case(kind: str) -> Callable[[], None]:
    """Leaving ``with`` while a view lives: BufferError, and the arena stays usable."""

    def run() -> None:
        arena = make(kind)

        def body() -> None:
            with arena:
                probe = make_view(arena)
                kept.append(probe)

        kept: list[Probe] = []
        make_view = next(iter(views_for(kind).values()))
        expect(BufferError, "cannot close: 1 view", body)
        assert not arena.closed
        seen = kept[0].read()
        assert kept[0].read() == seen
        kept.clear()
        with arena:
            pass
        assert arena.closed

    return run


for _kind in KINDS:
    case(f"refused[{_kind}]", "with_live_view", with_live_view_case(_kind))


# -- running --------------------------------------------------------------------------


def run_group(group: str) -> None:
    """Run one batch (in a fresh interpreter): PASS/FAIL per case, then DONE.

    The objects that exist before the first case (the modules') are left out of
    the collections (``gc.freeze``): the collections after each case, in the
    cases and in the library walk what the cases made, and collect it as before.
    """
    gc.collect()
    gc.freeze()
    try:
        for name in GROUPS[group]:
            try:
                CASES[name]()
            except BaseException:
                print(f"FAIL {name}\n{traceback.format_exc()}", flush=True)
            else:
                print(f"PASS {name}", flush=True)
            gc.collect()
    finally:
        gc.unfreeze()
    print("DONE", flush=True)


if __name__ == "__main__":
    for _group in sys.argv[1:]:  # (several batches: one after the other)
        run_group(_group)
