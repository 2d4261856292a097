"""Stateful model tests: random call sequences on each arena against a Python model.

A hypothesis ``RuleBasedStateMachine`` drives one arena through allocations of
random layouts, ctypes types and values, writes and later reads through every
kind of view, drops, resets, trims, closes, allocation after close, and
abandoning the arena while views live. After every step the arena must agree
with a plain-Python model: alignment, no overlap between live allocations
(those of abandoned arenas included), every view holding what was last
written through it, ``used``/``len``/``committed``/``live_views()``, drop
order reverse and exactly once, and refused calls changing nothing.

Each arena kind runs in its own interpreter (a broken arena could crash it),
two at a time. ``python -m pytest tests/test_stateful.py -n 0 -s`` prints the steps
run; ``HYPOTHESIS_PROFILE=long`` runs twenty times as many.
"""

from __future__ import annotations

import ctypes
import gc
import os
import random
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, ClassVar

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import linalloc
from linalloc import Layout, address

try:
    import numpy
except ImportError:  # pragma: no cover - numpy is a test dependency
    numpy = None

KINDS = ["BumpArena", "BumpArenaLazy", "TypedArena", "TypedArenaLazy"]
STEPS_PER_EXAMPLE = 100
#: Steps the CI profile must run across the four kinds together.
MIN_TOTAL_STEPS = 10_000

STEPS: dict[str, int] = {}


def counted(method: Callable[..., None]) -> Callable[..., None]:
    """Count each run of a rule in ``STEPS`` (per arena kind), unless it skipped.

    (Rules have no preconditions on the model's state: whether an allocation
    fits depends on addresses, which differ between runs, and hypothesis needs
    the same rules enabled when it replays a case. A rule that does not apply
    skips instead, and is not counted.)
    """

    def run(self: ArenaMachine, *args: Any, **kwargs: Any) -> None:
        self.skipped = False
        method(self, *args, **kwargs)
        if not self.skipped:
            STEPS[self.kind] = STEPS.get(self.kind, 0) + 1

    run.__name__ = method.__name__
    run.__doc__ = method.__doc__
    return run


def needs_open(method: Callable[..., None]) -> Callable[..., None]:
    """A rule for an open arena; on a closed one it checks a call after close instead."""

    def run(self: ArenaMachine, *args: Any, **kwargs: Any) -> None:
        if self.closed:
            self.call_closed(zlib.crc32(method.__name__.encode()))
        else:
            method(self, *args, **kwargs)

    run.__name__ = method.__name__
    run.__doc__ = method.__doc__
    return run


def round_up(n: int, step: int) -> int:
    return (n + step - 1) // step * step


def raw(obj: Any) -> memoryview:
    """A writable byte view of an arena view (memoryview, ctypes object, numpy array)."""
    view = memoryview(obj)
    return view.cast("B") if view.nbytes else memoryview(bytearray())


def pattern(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


def churn() -> None:
    """Allocate and free memory of many sizes, so freed arena memory would be reused."""
    keep = [bytearray(b"\xaa" * (1 << k)) for k in range(4, 19) for _ in range(3)]
    keep += [ctypes.create_string_buffer(b"\x55" * 5000) for _ in range(50)]
    del keep


class Point(ctypes.Structure):
    """Three fields with trailing padding."""

    _fields_ = [("x", ctypes.c_double), ("n", ctypes.c_int32), ("c", ctypes.c_char)]


class Empty(ctypes.Structure):
    """A zero-size type."""

    _fields_: ClassVar[list[tuple[str, Any]]] = []


class View:
    """One live view and what the model says it holds.

    ``mem[off:off + size]`` is the model of the bytes the view covers; ``mem``
    belongs to one arena (a bytearray of its capacity), so views of abandoned
    arenas keep their model. ``derived`` are views made from ``obj`` (a
    ``T.from_buffer``, a numpy array, a ``memoryview``) covering the same bytes.
    """

    def __init__(
        self, obj: Any, mem: bytearray, off: int, size: int, align: int, is_alloc: bool
    ) -> None:
        self.obj = obj
        self.mem = mem
        self.off = off
        self.size = size
        self.align = align
        self.is_alloc = is_alloc  # an allocation (no overlap allowed) or an alias
        self.derived: list[Any] = []
        self.start = address(obj) if size or not isinstance(obj, map) else 0

    def expected(self) -> bytes:
        return bytes(self.mem[self.off : self.off + self.size])

    def check(self) -> None:
        if isinstance(self.obj, map):
            return
        want = self.expected()
        assert bytes(raw(self.obj)) == want, "a view lost what was last written to it"
        for view in self.derived:
            assert bytes(raw(view)) == want, "a derived view lost what was written to it"


class ArenaMachine(RuleBasedStateMachine):
    """Rules and invariants shared by the untyped and the typed arenas."""

    kind: ClassVar[str]
    arena_cls: ClassVar[Any]
    lazy: ClassVar[bool]

    def __init__(self) -> None:
        super().__init__()
        # A refused reset/close runs gc.collect(); keep it from walking every
        # object hypothesis has made so far (none of them views an arena).
        gc.freeze()
        self.arena: Any = None
        self.closed = False
        self.views: list[View] = []
        # Views of abandoned arenas: (views, what dropping the last one must drop).
        self.orphans: list[tuple[list[View], Callable[[], list[tuple[int, bytes]]]]] = []
        self.drops: list[tuple[int, bytes]] = []  # (address, bytes) seen by drop()
        self.expected_drops: list[tuple[int, bytes]] = []
        self.page = linalloc.page_size()
        self.step = round_up(linalloc.COMMIT_STEP, self.page)
        self.committed = 0
        self.skipped = False

    # -- hooks for the two kinds -------------------------------------------

    def make_arena(self) -> Any:
        raise NotImplementedError

    def used_bytes(self) -> int:
        """Bytes from the base to the end of the last live value (what trim keeps)."""
        raise NotImplementedError

    def capacity_bytes(self) -> int:
        raise NotImplementedError

    def drops_due(self) -> Callable[[], list[tuple[int, bytes]]]:
        """What dropping the current values must drop, in order (read when called)."""
        return list

    def after_reset(self) -> None:
        raise NotImplementedError

    def closed_calls(self) -> list[Callable[[Any], object]]:
        calls: list[Callable[[Any], object]] = [
            lambda a: a.reset(),
            lambda a: a.live_views(),
            lambda a: a.used,
            lambda a: a.__enter__(),
        ]
        if self.lazy:
            calls += [
                lambda a: a.trim(),
                lambda a: a.committed,
                lambda a: a.commit_step,
                lambda a: a.last_os_error_code,
            ]
        return calls

    # -- helpers -------------------------------------------------------------

    def open_arena(self) -> None:
        self.arena = self.make_arena()
        self.closed = False
        self.committed = 0

    def commit_to(self, end: int) -> None:
        """The model of a lazy commit: whole steps, never past the reservation."""
        if self.lazy and end > self.committed:
            self.committed = min(
                round_up(end, self.step), round_up(self.capacity_bytes(), self.page)
            )

    def on_drop(self, value: Any) -> None:
        self.drops.append((address(value), bytes(raw(value))))

    def all_views(self) -> list[View]:
        return self.views + [v for group, _ in self.orphans for v in group]

    def refused(self, call: Callable[[], object], action: str) -> None:
        """``call`` raises BufferError naming the number of live views.

        (No ``pytest.raises(...) as info``: the traceback it keeps would make a
        reference cycle holding the arena, delaying its drops to a collection.)
        """
        try:
            call()
        except BufferError as exc:
            message = str(exc)
        else:
            raise AssertionError(f"{action} was not refused while views live")
        n = len(self.views)
        count = "1 view" if n == 1 else f"{n} views"
        assert f"cannot {action}: {count} " in message, message

    # -- rules every arena has ----------------------------------------------

    @rule(index=st.integers(0, 1 << 16), seed=st.integers(0, 1 << 32), derived=st.booleans())
    @counted
    def write(self, index: int, seed: int, derived: bool) -> None:
        """Write a random pattern through a live view (or one made from it)."""
        views = [v for v in self.all_views() if not isinstance(v.obj, map)]
        if not views:
            return
        view = views[index % len(views)]
        target = view.obj
        if derived and view.derived:
            target = view.derived[index % len(view.derived)]
        data = pattern(seed, view.size)
        raw(target)[:] = data
        view.mem[view.off : view.off + view.size] = data

    @rule(index=st.integers(0, 1 << 16), how=st.sampled_from(["from_buffer", "numpy", "slice"]))
    @counted
    def derive(self, index: int, how: str) -> None:
        """Make another view of a live view's bytes and keep it with that view."""
        views = [v for v in self.all_views() if not isinstance(v.obj, map)]
        if not views:
            return
        view = views[index % len(views)]
        if how == "from_buffer":
            made: Any = (ctypes.c_ubyte * view.size).from_buffer(view.obj)
        elif how == "numpy" and numpy is not None:
            made = numpy.frombuffer(view.obj, dtype=numpy.uint8)
        else:
            made = raw(view.obj)[:]
        view.derived.append(made)

    @rule(index=st.integers(0, 1 << 16))
    @counted
    def drop_view(self, index: int) -> None:
        if self.views:
            del self.views[index % len(self.views)]

    @rule(keep=st.integers(0, 3))
    @counted
    def drop_views(self, keep: int) -> None:
        """Drop all but a few views, so that reset and close get their chance."""
        del self.views[keep:]

    @rule()
    @counted
    @needs_open
    def reset(self) -> None:
        if self.views:
            self.refused(self.arena.reset, "reset")
            return
        self.expected_drops += self.drops_due()()
        self.arena.reset()
        self.after_reset()

    @rule()
    @counted
    @needs_open
    def close(self) -> None:
        if self.views:
            self.refused(self.arena.close, "close")
            return
        self.expected_drops += self.drops_due()()
        self.arena.close()
        self.closed = True
        assert self.arena.closed
        assert repr(self.arena) == f"<{self.kind} closed>"

    @rule(which=st.integers(0, 1 << 16))
    @counted
    def call_after_close(self, which: int) -> None:
        """Every method of a closed arena raises ValueError; close() does nothing."""
        if not self.closed:
            self.skipped = True
            return
        self.call_closed(which)

    def call_closed(self, which: int) -> None:
        self.arena.close()
        calls = self.closed_calls()
        with pytest.raises(ValueError, match="arena is closed"):
            calls[which % len(calls)](self.arena)

    @rule()
    @counted
    def reopen(self) -> None:
        if not self.closed:
            self.skipped = True
            return
        self.open_arena()

    @rule(heavy=st.booleans())
    @counted
    @needs_open
    def abandon(self, heavy: bool) -> None:
        """Delete the arena while views live; they must keep their memory and bytes."""
        views, self.views = self.views, []
        pending = self.drops_due()
        if views:
            self.orphans.append((views, pending))
        else:
            self.expected_drops += pending()
        self.arena = None  # unreachable now: drops run at once when nothing views it
        if heavy:
            churn()
        self.open_arena()

    @rule(index=st.integers(0, 1 << 16))
    @counted
    def release_orphans(self, index: int) -> None:
        """Drop every view of an abandoned arena: its values are dropped then."""
        if not self.orphans:
            self.skipped = True
            return
        views, pending = self.orphans.pop(index % len(self.orphans))
        expected = pending()
        del views
        self.expected_drops += expected

    @precondition(lambda self: self.lazy)
    @rule()
    @counted
    @needs_open
    def trim(self) -> None:
        keep = round_up(self.used_bytes(), self.page)
        released = max(0, self.committed - keep)
        assert self.arena.trim() == released
        self.committed -= released

    # -- invariants ----------------------------------------------------------

    @invariant()
    def views_hold_their_bytes(self) -> None:
        for view in self.all_views():
            view.check()
            if view.size:
                assert address(view.obj) % view.align == 0, "misaligned view"

    @invariant()
    def no_overlap(self) -> None:
        spans = sorted((v.start, v.size) for v in self.all_views() if v.is_alloc and v.size)
        for (start, size), (next_start, _) in zip(spans, spans[1:]):
            assert start + size <= next_start, "two live allocations overlap"

    @invariant()
    def drops_exactly_once_in_order(self) -> None:
        assert self.drops == self.expected_drops

    @invariant()
    def gauges(self) -> None:
        arena = self.arena
        if arena is None:
            return
        assert arena.closed == self.closed
        if self.closed:
            return
        assert arena.live_views() == len(self.views)
        if self.lazy:
            assert arena.committed == self.committed
            assert arena.commit_step == self.step
            assert arena.last_os_error_code is None
            assert f"committed={self.committed}" in repr(arena)

    def teardown(self) -> None:
        self.views.clear()
        self.orphans.clear()
        if self.arena is not None and not self.closed:
            self.arena.close()


class BumpMachine(ArenaMachine):
    """``BumpArena`` / ``BumpArenaLazy`` against a model of ``used`` and the bytes."""

    CTYPES: ClassVar[list[Any]] = [
        ctypes.c_uint8,
        ctypes.c_int16,
        ctypes.c_int32,
        ctypes.c_int64,
        ctypes.c_double,
        ctypes.c_longdouble,
        Point,
        ctypes.c_char * 3,
        (ctypes.c_int32 * 2) * 2,
        ctypes.c_int64 * 0,
        Empty,
    ]

    @initialize(
        capacity=st.sampled_from([0, 1, 7, 64, 100, 4096, 5000, 70_000, 300_000]),
    )
    def start(self, capacity: int) -> None:
        self.capacity = capacity
        self.open_arena()

    def make_arena(self) -> Any:
        arena = self.arena_cls(self.capacity)
        self.base = address(arena.alloc_uninit_slice(Layout(0)))
        if self.lazy and self.capacity:
            assert self.base % self.page == 0
        self.mem = bytearray(self.capacity)
        self.used = 0
        return arena

    def capacity_bytes(self) -> int:
        return self.capacity

    def used_bytes(self) -> int:
        return self.used

    def after_reset(self) -> None:
        self.used = 0

    def closed_calls(self) -> list[Callable[[Any], object]]:
        return [
            *super().closed_calls(),
            lambda a: a.alloc_uninit_slice(Layout(1)),
            lambda a: a.alloc_uninit_slice(Layout(0)),
            lambda a: a.alloc(ctypes.c_int32),
            lambda a: a.alloc_array(ctypes.c_int32, 2),
        ]

    def place(self, size: int, align: int) -> int | None:
        """Where the model puts a block, or None when it does not fit."""
        start = round_up(self.base + self.used, align) - self.base
        return None if start + size > self.capacity else start

    def took(self, obj: Any, size: int, align: int, seed: int) -> None:
        """Check and record a block the arena handed out, filling it with a pattern."""
        start = self.place(size, align)
        if start is None:
            assert obj is None, "allocation beyond the capacity"
            return
        assert obj is not None, "allocation refused though it fits"
        assert address(obj) == self.base + start
        assert memoryview(obj).nbytes == size
        self.used = start + size
        self.commit_to(self.used)
        data = pattern(seed, size)
        raw(obj)[:] = data
        self.mem[start : start + size] = data
        self.views.append(View(obj, self.mem, start, size, align, True))

    @rule(
        size=st.one_of(st.integers(0, 80), st.integers(0, 140_000)),
        align_log=st.one_of(st.integers(0, 6), st.integers(0, 24), st.just(40)),
        seed=st.integers(0, 1 << 32),
    )
    @counted
    @needs_open
    def alloc_slice(self, size: int, align_log: int, seed: int) -> None:
        align = 1 << align_log
        view = self.arena.alloc_uninit_slice(Layout(size, align))
        if size == 0:  # an empty view that does not advance used
            assert view is not None and view.nbytes == 0
            here = round_up(self.base + self.used, align) - self.base
            if here <= self.capacity:
                assert address(view) == self.base + here
            self.views.append(View(view, self.mem, 0, 0, 1, True))
            return
        if view is not None:
            assert view.format == "B" and view.ndim == 1 and view.contiguous
            assert not view.readonly
        self.took(view, size, align, seed)

    @rule(which=st.sampled_from(range(len(CTYPES))), seed=st.integers(0, 1 << 32))
    @counted
    @needs_open
    def alloc_ctype(self, which: int, seed: int) -> None:
        ctype = self.CTYPES[which]
        obj = self.arena.alloc(ctype)
        if obj is not None:
            assert type(obj) is ctype
        self.took(obj, ctypes.sizeof(ctype), ctypes.alignment(ctype), seed)

    @rule(
        which=st.sampled_from(range(len(CTYPES))),
        n=st.one_of(st.integers(0, 20), st.integers(0, 20_000)),
        seed=st.integers(0, 1 << 32),
    )
    @counted
    @needs_open
    def alloc_array(self, which: int, n: int, seed: int) -> None:
        ctype = self.CTYPES[which]
        obj = self.arena.alloc_array(ctype, n)
        if obj is not None:
            assert len(obj) == n and obj._type_ is ctype
        self.took(obj, ctypes.sizeof(ctype) * n, ctypes.alignment(ctype), seed)

    @rule(value=st.integers(-(1 << 63), (1 << 63) - 1))
    @counted
    @needs_open
    def store_value(self, value: int) -> None:
        """Store an int through ctypes' own setter; read it back later."""
        obj = self.arena.alloc(ctypes.c_int64)
        self.took(obj, 8, 8, 0)
        if obj is not None:
            obj.value = value
            view = self.views[-1]
            view.mem[view.off : view.off + 8] = bytes(ctypes.c_int64(value))

    @rule(
        bad=st.sampled_from(
            [
                (lambda a: a.alloc_uninit_slice((8, 8)), TypeError),
                (lambda a: a.alloc_uninit_slice(None), TypeError),
                (lambda a: a.alloc(int), TypeError),
                (lambda a: a.alloc(ctypes.py_object), TypeError),
                (lambda a: a.alloc_array(ctypes.c_int32, -1), ValueError),
                (lambda a: a.alloc_array(ctypes.c_int32, 2.0), TypeError),
                (lambda a: a.alloc_array(ctypes.c_int32, True), TypeError),
            ]
        )
    )
    @counted
    @needs_open
    def bad_request(self, bad: tuple[Callable[[Any], object], type[Exception]]) -> None:
        """Bad input raises and changes nothing (the invariants check the rest)."""
        call, error = bad
        with pytest.raises(error):
            call(self.arena)

    @invariant()
    def bump_gauges(self) -> None:
        if self.arena is not None and not self.closed:
            assert self.arena.used == self.used
            assert self.arena.capacity == self.capacity
            assert f"used={self.used}" in repr(self.arena)


#: Typed kinds: (ctype, strategy of alloc() argument tuples, of alloc_raw() values,
#: values of the wrong kind or range).
INT64 = st.integers(-(1 << 63), (1 << 63) - 1)
TYPED_CASES: list[tuple[Any, Any, Any, list[Any]]] = [
    (
        ctypes.c_int64,
        st.tuples(INT64) | st.just(()),
        INT64,
        ["x", 1.5, None, b"ab", (1, 2)],
    ),
    (ctypes.c_uint8, st.tuples(st.integers(0, 255)), st.integers(0, 255), ["x", 2.5]),
    (
        ctypes.c_double,
        st.tuples(st.floats(allow_nan=False)),
        st.floats(allow_nan=False),
        ["x", None, b"a", 10**400],
    ),
    (
        Point,
        st.tuples(st.floats(allow_nan=False), st.integers(-(1 << 31), (1 << 31) - 1))
        | st.tuples(st.floats(allow_nan=False)),
        st.tuples(st.floats(allow_nan=False), st.integers(0, 9), st.just(b"c")),
        ["x", (1.0, 2, b"a", 5), ("x",), (1.0, "n"), 3],
    ),
    (
        ctypes.c_int16 * 3,
        st.lists(st.integers(-(1 << 15), (1 << 15) - 1), max_size=3).map(tuple),
        st.lists(st.integers(0, 9), min_size=1, max_size=3).map(tuple),
        [(1, 2, 3, 4), ("x",), (1.5,), 7],
    ),
    (
        ctypes.c_char * 5,
        st.just(()),
        st.binary(max_size=5).filter(lambda b: b"\0" not in b),
        [b"toolong", "str", 5],
    ),
    (Empty, st.just(()), st.just(()), ["x", (1,)]),
]


class TypedMachine(ArenaMachine):
    """``TypedArena`` / ``TypedArenaLazy`` against a model of the live slots."""

    @initialize(
        case=st.sampled_from(range(len(TYPED_CASES))),
        capacity=st.sampled_from([0, 1, 2, 5, 17, 100, -1]),
        with_drop=st.booleans(),
    )
    def start(self, case: int, capacity: int, with_drop: bool) -> None:
        self.ctype, self.args, self.raws, self.bad = TYPED_CASES[case]
        self.size = ctypes.sizeof(self.ctype)
        if capacity < 0:  # big enough to cross several commit steps
            capacity = 3 * self.step // max(self.size, 1) + 7
        self.capacity = capacity
        self.with_drop = with_drop
        self.open_arena()

    def make_arena(self) -> Any:
        drop = self.on_drop if self.with_drop else None
        arena = self.arena_cls(self.ctype, self.capacity, drop=drop)
        self.mem = bytearray(self.capacity * self.size)
        self.n = 0
        self.base = 0
        return arena

    def capacity_bytes(self) -> int:
        return self.capacity * self.size

    def used_bytes(self) -> int:
        return self.n * self.size

    def drops_due(self) -> Callable[[], list[tuple[int, bytes]]]:
        base, size, mem, n = self.base, self.size, self.mem, self.n
        if not self.with_drop or not size:
            n = 0

        def due() -> list[tuple[int, bytes]]:
            return [(base + k * size, bytes(mem[k * size : (k + 1) * size])) for k in range(n)][
                ::-1
            ]

        return due

    def after_reset(self) -> None:
        self.mem[: self.n * self.size] = bytes(self.n * self.size)
        self.n = 0

    def closed_calls(self) -> list[Callable[[Any], object]]:
        return [
            *super().closed_calls(),
            lambda a: a.alloc(),
            lambda a: a.alloc_raw(self.ctype()),
            lambda a: len(a),
            lambda a: iter(a),
            lambda a: a.as_array(),
            lambda a: a.is_empty(),
        ]

    def full(self) -> bool:
        return self.size > 0 and self.n >= self.capacity

    def took(self, value: Any, expected: bytes) -> None:
        """Check and record the value an allocation returned."""
        if self.full():
            assert value is None, "allocation beyond the capacity"
            return
        assert value is not None, "allocation refused though there is room"
        assert isinstance(value, self.ctype)
        assert bytes(raw(value)) == expected
        if not self.size:  # zero-size: always succeeds, not counted
            self.views.append(self.view_of(value, 0))
            return
        k = self.n
        if k == 0 and not self.base:
            self.base = address(value)
            assert self.base % ctypes.alignment(self.ctype) == 0
            if self.lazy and self.capacity:
                assert self.base % self.page == 0
        assert address(value) == self.base + k * self.size, "slots are not contiguous"
        self.n = k + 1
        self.commit_to(self.n * self.size)
        self.mem[k * self.size : (k + 1) * self.size] = expected
        self.views.append(self.view_of(value, k))

    def view_of(self, value: Any, k: int) -> View:
        align = ctypes.alignment(self.ctype)
        return View(value, self.mem, k * self.size, self.size, align, True)

    def expected_of(self, value: Any) -> bytes:
        """The bytes ``alloc_raw(value)`` must store."""
        ctype = self.ctype
        if isinstance(value, tuple):
            return bytes(ctype(*value))
        if isinstance(value, bytes):
            made = ctype()
            made.value = value
            return bytes(made)
        return bytes(ctype(value))

    @rule(data=st.data())
    @counted
    @needs_open
    def alloc_args(self, data: st.DataObject) -> None:
        args = data.draw(self.args)
        value = self.arena.alloc(*args)
        self.took(value, bytes(self.ctype(*args)))

    @rule(data=st.data(), as_instance=st.booleans())
    @counted
    @needs_open
    def alloc_raw(self, data: st.DataObject, as_instance: bool) -> None:
        value = data.draw(self.raws)
        expected = self.expected_of(value)
        if as_instance:
            value = self.ctype.from_buffer_copy(expected)
        self.took(self.arena.alloc_raw(value), expected)

    @rule(
        count=st.one_of(st.integers(1, 60), st.integers(1, 40_000)),
        keep=st.booleans(),
    )
    @counted
    @needs_open
    def alloc_many(self, count: int, keep: bool) -> None:
        """Fill many slots (zero-initialised, checked by address); keep the last one or none."""
        alloc = self.arena.alloc
        values = [alloc() for _ in range(count)]
        if not self.size:
            assert all(isinstance(v, self.ctype) for v in values)
            return
        room = max(0, min(count, self.capacity - self.n))
        assert all(v is not None for v in values[:room]), "allocation refused though it fits"
        assert all(v is None for v in values[room:]), "allocation beyond the capacity"
        if room:
            zero, first = bytes(self.size), self.n
            self.took(values[0], zero)  # checks slot ``first`` (and finds the base)
            self.views.pop()
            if room > 1:
                self.n = first + room - 1
                self.took(values[room - 1], zero)  # checks slot ``first + room - 1``
                self.views.pop()
            self.mem[first * self.size : self.n * self.size] = bytes((self.n - first) * self.size)
            if keep:
                self.views.append(self.view_of(values[room - 1], self.n - 1))

    @rule(index=st.integers(0, 1 << 16), raw_call=st.booleans())
    @counted
    @needs_open
    def alloc_bad(self, index: int, raw_call: bool) -> None:
        """A value of the wrong kind or range raises and changes nothing."""
        bad = self.bad[index % len(self.bad)]
        if raw_call:
            with pytest.raises((TypeError, ValueError, OverflowError)):
                self.arena.alloc_raw(bad)
            return
        args = bad if isinstance(bad, tuple) else (bad,)
        # The arena raises what the constructor raises (of these three kinds; too
        # many initializers for an Array, IndexError in ctypes, is a TypeError),
        # full or not.
        expected: type[Exception] | None = None
        try:
            self.ctype(*args)
        except IndexError:
            expected = TypeError
        except (TypeError, ValueError, OverflowError) as exc:
            expected = next(k for k in (OverflowError, TypeError, ValueError) if isinstance(exc, k))
        if expected is not None:
            with pytest.raises(expected):
                self.arena.alloc(*args)
            return
        result = self.arena.alloc(*args)
        # ctypes takes (1, 2) for a c_int64 as an int and a number for a Point's
        # first field; only a full arena may answer None instead of raising.
        if result is not None:
            self.took(result, bytes(self.ctype(*args)))
        else:
            assert self.full()

    @rule()
    @counted
    @needs_open
    def as_array(self) -> None:
        array = self.arena.as_array()
        assert len(array) == self.n and array._type_ is self.ctype
        size = self.n * self.size
        if size:
            assert address(array) == self.base
        self.views.append(View(array, self.mem, 0, size, 1, False))

    @rule(steps=st.integers(0, 4))
    @counted
    @needs_open
    def iterate(self, steps: int) -> None:
        """Start an iteration, check the first values, keep the iterator."""
        it = iter(self.arena)
        for k in range(min(steps, self.n)):
            value = next(it)
            assert address(value) == self.base + k * self.size
            assert bytes(raw(value)) == bytes(self.mem[k * self.size : (k + 1) * self.size])
        self.views.append(View(it, self.mem, 0, 0, 1, False))

    @invariant()
    def typed_gauges(self) -> None:
        arena = self.arena
        if arena is None or self.closed:
            return
        assert len(arena) == self.n
        assert arena.is_empty() == (self.n == 0)
        assert arena.used == self.n * self.size
        assert arena.capacity == self.capacity
        if self.n:  # all live slots, read by address: written views and untouched ones
            assert ctypes.string_at(self.base, self.n * self.size) == self.mem[: self.n * self.size]


MACHINES: dict[str, type[ArenaMachine]] = {}
for _name in KINDS:
    _base: Any = TypedMachine if _name.startswith("Typed") else BumpMachine
    MACHINES[_name] = type(
        _name + "Machine",
        (_base,),
        {"kind": _name, "arena_cls": getattr(linalloc, _name), "lazy": _name.endswith("Lazy")},
    )


def main(kind: str) -> None:
    """Run one arena kind's machine; print the steps run (subprocess entry point)."""
    import conftest  # noqa: F401 - registers and loads the profile HYPOTHESIS_PROFILE names

    gc.collect()
    base = settings()  # the loaded profile: "ci" by default, or HYPOTHESIS_PROFILE
    run_state_machine_as_test(
        MACHINES[kind],
        settings=settings(
            base, max_examples=base.max_examples, stateful_step_count=STEPS_PER_EXAMPLE
        ),
    )
    print(f"STEPS {kind} {STEPS.get(kind, 0)}")


@pytest.fixture(scope="module")
def machine_runs(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Run the selected machines (all four for the total) in fresh interpreters,
    two at a time."""
    from conftest import run_python

    items = request.session.items
    wanted = {
        i.callspec.params["kind"] for i in items if getattr(i, "originalname", "") == "test_machine"
    }
    if any(getattr(i, "originalname", "") == "test_total_steps" for i in items):
        wanted = set(KINDS)
    kinds = [kind for kind in KINDS if kind in wanted]

    here = os.path.dirname(os.path.abspath(__file__))

    def run(kind: str) -> Any:
        code = f"import sys; sys.path.insert(0, {here!r}); import test_stateful; "
        code += f"test_stateful.main({kind!r})"
        return run_python(code, timeout=900)

    with ThreadPoolExecutor(2) as pool:
        return dict(zip(kinds, pool.map(run, kinds)))


def steps_of(result: Any, kind: str) -> int:
    for line in result.stdout.splitlines():
        if line.startswith(f"STEPS {kind} "):
            return int(line.split()[2])
    return 0


@pytest.mark.parametrize("kind", KINDS)
def test_machine(machine_runs: dict[str, Any], kind: str) -> None:
    result = machine_runs[kind]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    steps = steps_of(result, kind)
    print(f"{kind}: {steps} steps")
    assert steps > 0


def test_total_steps(machine_runs: dict[str, Any]) -> None:
    """The CI profile runs at least MIN_TOTAL_STEPS steps across the four kinds."""
    total = sum(steps_of(result, kind) for kind, result in machine_runs.items())
    print(f"stateful steps run: {total}")
    assert total >= MIN_TOTAL_STEPS


if __name__ == "__main__":
    main(sys.argv[1])
