"""Stateful model tests of checkpoints, scopes, bulk allocation and growing in place.

A hypothesis ``RuleBasedStateMachine`` drives each of the four arenas through
checkpoints, rewinds (to a valid, a stale and a foreign checkpoint), scopes
entered and exited (with and without an exception in the block), allocations
one at a time and in bulk (``alloc_many``, ``alloc_extend``; ``alloc_copy``,
``grow``), views made from views, and deleting views. A plain-Python model
says what each call must do; after every step:

- every live view holds exactly what was last written to it: no rewind or
  reset ever freed memory a live view sees, and no allocation reused it;
- live allocations never overlap (a grown view overlaps only its own start);
- ``used``, ``len``, ``committed`` and the checkpoint stack agree with the model;
- every allocation is aligned;
- a refused call (``BufferError``, ``ValueError``, ``TypeError``) changed nothing.

As in ``test_stateful``, each arena kind runs in its own interpreter, two at
a time; ``python -m pytest tests/test_stateful_regions.py -n 0 -s`` prints the
steps run.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, ClassVar

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from test_stateful import KINDS, MIN_TOTAL_STEPS, STEPS, counted, pattern, raw, round_up, steps_of

import linalloc
from linalloc import Layout, address

try:
    import numpy
except ImportError:  # pragma: no cover - numpy is a test dependency
    numpy = None  # type: ignore[assignment]

#: Examples per kind in the CI profile, and steps per example: 4 x 50 x 100
#: steps, of which some skip; the total is checked by ``test_total_steps``.
EXAMPLES = 50
STEPS_PER_EXAMPLE = 100

#: How often each outcome that matters was reached (printed by ``main``): a run
#: that never refused or completed a rewind would check nothing.
EVENTS: Counter[str] = Counter()
#: Outcomes every CI run must reach, across the four kinds.
REQUIRED_EVENTS = [
    "rewind refused",
    "rewind done",
    "rewind stale",
    "scope refused",
    "scope refused chained",
    "scope done",
    "scope after rewind past",
    "reset done",
    "alloc_many done",
    "alloc_many none",
    "alloc_extend done",
    "alloc_extend bad item",
    "alloc_copy of a view",
    "grow done",
    "grow none",
]


class Point(ctypes.Structure):
    """Fields with padding: 16 bytes, aligned to 8."""

    _fields_ = [("x", ctypes.c_double), ("n", ctypes.c_int32), ("c", ctypes.c_char)]


#: (ctype, a strategy of items ``alloc_extend`` takes, an item of the wrong kind)
TYPED_CASES: list[tuple[Any, Any, Any]] = [
    (ctypes.c_int64, st.integers(-(1 << 63), (1 << 63) - 1), "x"),
    (Point, st.tuples(st.floats(allow_nan=False), st.integers(-5, 5), st.just(b"c")), "x"),
    (ctypes.c_char * 3, st.binary(min_size=1, max_size=3).filter(lambda b: b"\0" not in b), 1.5),
]


def where(obj: Any) -> int:
    """The address of a view: a memoryview, a ctypes object or a numpy array."""
    if isinstance(obj, memoryview) or isinstance(obj, ctypes.Array.__mro__[-2]):
        return address(obj)
    return address(memoryview(obj))


class Alias:
    """One live view: ``obj`` covers ``[off, off + size)`` of the model memory ``mem``.

    ``ident`` names the allocation it belongs to: views of one allocation (a
    value and a memoryview of it, a buffer and its grown form) may overlap;
    views of different allocations may not. ``ident`` 0: an alias of
    several (``as_array()``, an iterator, an array made from another).
    """

    def __init__(
        self, obj: Any, off: int, size: int, align: int, ident: int, checks: bool = True
    ) -> None:
        self.obj = obj
        self.off = off
        self.size = size
        self.align = align
        self.ident = ident
        self.checks = checks  # False for an iterator: no bytes to read
        self.start = where(obj) if checks else 0

    @property
    def end(self) -> int:
        return self.off + self.size


class RegionMachine(RuleBasedStateMachine):
    """Rules and invariants shared by the untyped and the typed arenas."""

    kind: ClassVar[str]
    arena_cls: ClassVar[Any]
    lazy: ClassVar[bool]
    typed: ClassVar[bool]

    def __init__(self) -> None:
        super().__init__()
        gc.freeze()  # a refusal collects: keep hypothesis' own objects out of it
        self.arena: Any = None
        self.views: list[Alias] = []
        self.stack: list[tuple[Any, int]] = []  # (checkpoint, position): the arena's
        self.stale: list[Any] = []
        self.scopes: list[tuple[Any, Any]] = []  # (scope, its checkpoint), innermost last
        self.idents = 0
        self.skipped = False
        self.page = linalloc.page_size()
        self.step = round_up(linalloc.COMMIT_STEP, self.page)
        self.committed = 0
        self.mem = bytearray()
        self.foreign: Any = None
        self.base = 0  # the address of offset 0 of the model memory

    # -- hooks ---------------------------------------------------------------

    def position(self) -> int:
        raise NotImplementedError

    def set_position(self, position: int) -> None:
        raise NotImplementedError

    def end_of(self, position: int) -> int:
        """The byte offset where memory at ``position`` starts."""
        raise NotImplementedError

    def capacity_bytes(self) -> int:
        raise NotImplementedError

    def snapshot(self) -> tuple[Any, ...]:
        """What a refused call must leave as it was."""
        arena = self.arena
        return (
            arena.used,
            len(arena) if self.typed else None,
            arena.committed if self.lazy else None,
            arena.live_views() > 0,
            [bytes(raw(v.obj)) for v in self.views if v.checks],
        )

    def before_rewind(self, position: int) -> None:
        """Typed: the drops a rewind to ``position`` must make."""

    # -- helpers ---------------------------------------------------------------

    def new_ident(self) -> int:
        self.idents += 1
        return self.idents

    def commit_to(self, end: int) -> None:
        if self.lazy and end > self.committed:
            self.committed = min(
                round_up(end, self.step), round_up(self.capacity_bytes(), self.page)
            )

    def write(self, view: Alias, seed: int, skip: int = 0) -> None:
        """Fill ``view`` past its first ``skip`` bytes with a pattern, in the model too."""
        data = pattern(seed, view.size - skip)
        raw(view.obj)[skip:] = data
        self.mem[view.off + skip : view.end] = data

    def viewed_after(self, position: int) -> bool:
        start = self.end_of(position)
        return any(v.end > start for v in self.views)

    def expect_refused(self, call: Callable[[], object], error: type[Exception]) -> str:
        """``call`` raises ``error`` and changes nothing; returns the message."""
        before = self.snapshot()
        try:
            call()
        except error as exc:
            message = str(exc)
        else:
            raise AssertionError(f"{error.__name__} expected")
        assert self.snapshot() == before, "a refused call changed the arena"
        return message

    def rewound(self, at: int) -> None:
        """The model of a successful rewind to ``self.stack[at]``."""
        position = self.stack[at][1]
        self.stale += [cp for cp, _ in self.stack[at + 1 :]]
        del self.stack[at + 1 :]
        self.set_position(position)

    # -- checkpoints and scopes ----------------------------------------------------

    @rule()
    @counted
    def checkpoint(self) -> None:
        cp = self.arena.checkpoint()
        assert isinstance(cp, linalloc.Checkpoint)
        self.stack.append((cp, self.position()))

    @rule(index=st.integers(0, 1 << 16))
    @counted
    def rewind(self, index: int) -> None:
        if not self.stack:
            self.skipped = True
            return
        at = index % len(self.stack)
        cp, position = self.stack[at]
        if self.viewed_after(position):
            message = self.expect_refused(lambda: self.arena.rewind(cp), BufferError)
            assert message.startswith("cannot rewind to this checkpoint"), message
            EVENTS["rewind refused"] += 1
            return
        self.before_rewind(position)
        self.arena.rewind(cp)
        self.rewound(at)
        EVENTS["rewind done"] += 1

    @rule(index=st.integers(0, 1 << 16))
    @counted
    def rewind_stale(self, index: int) -> None:
        if not self.stale:
            self.skipped = True
            return
        cp = self.stale[index % len(self.stale)]
        message = self.expect_refused(lambda: self.arena.rewind(cp), ValueError)
        assert "no longer valid" in message, message
        EVENTS["rewind stale"] += 1

    @rule(bad=st.sampled_from(["foreign", "none", "int"]))
    @counted
    def rewind_foreign(self, bad: str) -> None:
        cp: Any = {"foreign": self.foreign, "none": None, "int": 0}[bad]
        error = ValueError if bad == "foreign" else TypeError
        self.expect_refused(lambda: self.arena.rewind(cp), error)

    @rule()
    @counted
    def scope_enter(self) -> None:
        scope = self.arena.scope()
        cp = scope.__enter__()
        assert isinstance(cp, linalloc.Checkpoint)
        self.stack.append((cp, self.position()))
        self.scopes.append((scope, cp))

    @rule(with_error=st.booleans())
    @counted
    def scope_exit(self, with_error: bool) -> None:
        if not self.scopes:
            self.skipped = True
            return
        scope, cp = self.scopes.pop()
        block_error = LookupError("in the block") if with_error else None
        kind = LookupError if with_error else None
        at = [k for k, (c, _) in enumerate(self.stack) if c is cp]
        if not at:  # rewound past, or reset, inside the block: nothing to do
            before = self.snapshot()
            assert scope.__exit__(kind, block_error, None) is None
            assert self.snapshot() == before
            EVENTS["scope after rewind past"] += 1
            return
        position = self.stack[at[0]][1]
        if self.viewed_after(position):
            before = self.snapshot()
            try:
                scope.__exit__(kind, block_error, None)
            except BufferError as exc:
                assert exc.__cause__ is block_error
                EVENTS["scope refused chained" if with_error else "scope refused"] += 1
            else:
                raise AssertionError("scope exit with a live view was not refused")
            assert self.snapshot() == before
            return
        self.before_rewind(position)
        assert scope.__exit__(kind, block_error, None) is None
        self.rewound(at[0])
        # the scope's own checkpoint ends with it
        self.stale.append(cp)
        del self.stack[at[0]]
        EVENTS["scope done"] += 1

    @rule()
    @counted
    def reset(self) -> None:
        if self.views:
            message = self.expect_refused(self.arena.reset, BufferError)
            assert message.startswith("cannot reset"), message
            return
        self.before_rewind(0)
        self.arena.reset()
        self.stale += [cp for cp, _ in self.stack]
        self.stack.clear()
        self.set_position(0)
        EVENTS["reset done"] += 1

    # -- views -------------------------------------------------------------------

    @rule(index=st.integers(0, 1 << 16))
    @counted
    def drop_view(self, index: int) -> None:
        if not self.views:
            self.skipped = True
            return
        del self.views[index % len(self.views)]

    @rule(keep=st.integers(0, 2))
    @counted
    def drop_views(self, keep: int) -> None:
        """Drop all but a few views, so that rewinds and resets get their chance."""
        del self.views[keep:]

    @rule(index=st.integers(0, 1 << 16), how=st.sampled_from(["memoryview", "numpy", "bytes"]))
    @counted
    def derive(self, index: int, how: str) -> None:
        """A view made from a live view (later than any checkpoint) counts as it does."""
        views = [v for v in self.views if v.checks]
        if not views:
            self.skipped = True
            return
        view = views[index % len(views)]
        if how == "numpy" and numpy is not None:
            made: Any = numpy.frombuffer(view.obj, dtype=numpy.uint8)
        elif how == "bytes":
            made = (ctypes.c_ubyte * view.size).from_buffer(view.obj)
        else:
            made = memoryview(view.obj)
        self.views.append(Alias(made, view.off, view.size, view.align, view.ident))

    @rule()
    @counted
    def trim(self) -> None:
        if not self.lazy:
            self.skipped = True
            return
        keep = round_up(self.end_of(self.position()), self.page)
        released = max(0, self.committed - keep)
        assert self.arena.trim() == released
        self.committed -= released

    # -- invariants ----------------------------------------------------------------

    @invariant()
    def views_hold_their_bytes(self) -> None:
        for view in self.views:
            if not view.checks:
                continue
            assert bytes(raw(view.obj)) == bytes(self.mem[view.off : view.end]), (
                "a live view lost its bytes"
            )
            assert where(view.obj) == self.base + view.off
            assert where(view.obj) % view.align == 0, "misaligned"

    @invariant()
    def allocations_do_not_overlap(self) -> None:
        spans: dict[int, tuple[int, int]] = {}
        for view in self.views:
            if view.ident and view.size:
                lo, hi = spans.get(view.ident, (view.off, view.end))
                spans[view.ident] = (min(lo, view.off), max(hi, view.end))
        ordered = sorted(spans.values())
        for (_, end), (start, _) in zip(ordered, ordered[1:]):
            assert end <= start, "two live allocations overlap"
        # Every live view lies before the bump pointer: what is allocated next
        # (after a rewind too) can never overlap memory a live view sees.
        top = self.end_of(self.position())
        assert all(view.end <= top for view in self.views), "a live view of freed memory"

    @invariant()
    def gauges(self) -> None:
        arena = self.arena
        if arena is None:
            return
        assert arena.used == self.end_of(self.position())
        if self.lazy:
            assert arena.committed == self.committed
        assert (arena.live_views() > 0) == bool(self.views)

    def teardown(self) -> None:
        self.views.clear()
        self.scopes.clear()
        if self.arena is not None:
            gc.collect()
            self.before_rewind(0)  # close() drops what is left, once
            self.arena.close()
            self.closed_drops()
        gc.unfreeze()

    def closed_drops(self) -> None:
        """Typed: check the drops ``close()`` made."""


class BumpRegions(RegionMachine):
    """``BumpArena`` / ``BumpArenaLazy``: the model is ``used`` and the bytes."""

    @initialize(capacity=st.sampled_from([64, 1000, 4096, 70_000, 300_000]))
    def start(self, capacity: int) -> None:
        self.capacity = capacity
        self.arena = self.arena_cls(capacity)
        self.foreign = self.arena_cls(16).checkpoint()
        self.base = address(self.arena.alloc_uninit_slice(Layout(0)))
        self.mem = bytearray(capacity)
        self.used = 0

    def position(self) -> int:
        return self.used

    def set_position(self, position: int) -> None:
        self.used = position

    def end_of(self, position: int) -> int:
        return position

    def capacity_bytes(self) -> int:
        return self.capacity

    def place(self, size: int, align: int) -> int | None:
        start = round_up(self.base + self.used, align) - self.base
        return None if start + size > self.capacity else start

    def took(self, obj: Any, size: int, align: int, seed: int) -> Alias | None:
        start = self.place(size, align)
        if start is None:
            assert obj is None, "allocation beyond the capacity"
            return None
        assert obj is not None, "allocation refused though it fits"
        assert address(obj) == self.base + start
        self.used = start + size
        self.commit_to(self.used)
        view = Alias(obj, start, size, align, self.new_ident())
        self.write(view, seed)
        return view

    @rule(
        size=st.one_of(st.integers(1, 64), st.integers(1, 100_000)),
        align_log=st.integers(0, 12),
        seed=st.integers(0, 1 << 32),
        keep=st.booleans(),
    )
    @counted
    def alloc_slice(self, size: int, align_log: int, seed: int, keep: bool) -> None:
        align = 1 << align_log
        view = self.took(self.arena.alloc_uninit_slice(Layout(size, align)), size, align, seed)
        if view is not None and keep:
            self.views.append(view)

    @rule(
        what=st.sampled_from(["Point", "c_int64", "array"]),
        n=st.integers(1, 9),
        seed=st.integers(0, 1 << 32),
        keep=st.booleans(),
    )
    @counted
    def alloc_values(self, what: str, n: int, seed: int, keep: bool) -> None:
        """``n`` values one by one, or a ``c_int64 * n``.

        Points come from a window of values made ahead, often left open when
        the next call comes (a checkpoint must give them back); int64 values
        are made one at a time.
        """
        if what != "array":
            ctype: Any = Point if what == "Point" else ctypes.c_int64
            size = ctypes.sizeof(ctype)
            for _ in range(n):
                view = self.took(self.arena.alloc(ctype), size, ctypes.alignment(ctype), seed)
                if view is not None and keep:
                    self.views.append(view)
        else:
            view = self.took(self.arena.alloc_array(ctypes.c_int64, n), 8 * n, 8, seed)
            if view is not None and keep:
                self.views.append(view)

    @rule(
        source=st.one_of(st.binary(min_size=1, max_size=200), st.integers(0, 1 << 16)),
        align_log=st.integers(0, 8),
        kind=st.sampled_from(["bytes", "bytearray", "numpy", "strided"]),
    )
    @counted
    def alloc_copy(self, source: bytes | int, align_log: int, kind: str) -> None:
        align = 1 << align_log
        data: Any
        if isinstance(source, int):  # a live view of this arena
            views = [v for v in self.views if v.checks and v.size]
            if not views:
                self.skipped = True
                return
            data = views[source % len(views)].obj
            expected = bytes(raw(data))
            EVENTS["alloc_copy of a view"] += 1
        elif kind == "bytearray":
            data, expected = bytearray(source), source
        elif kind == "numpy" and numpy is not None:
            data = numpy.frombuffer(source, dtype=numpy.uint8).copy()
            expected = source
        elif kind == "strided":
            data = memoryview(source)[::2]
            expected = source[::2]
        else:
            data, expected = source, source
        size = len(expected)
        view = self.arena.alloc_copy(data, align)
        del data
        start = self.place(size, align)
        if start is None:
            assert view is None
            return
        assert view is not None and bytes(view) == expected
        assert view.format == "B" and not view.readonly
        assert address(view) == self.base + start
        self.used = start + size
        self.commit_to(self.used)
        self.mem[start : self.used] = expected
        self.views.append(Alias(view, start, size, align, self.new_ident()))

    @rule(
        index=st.integers(0, 1 << 16),
        extra=st.one_of(st.integers(0, 64), st.integers(0, 200_000)),
        seed=st.integers(0, 1 << 32),
        fresh=st.booleans(),
    )
    @counted
    def grow(self, index: int, extra: int, seed: int, fresh: bool) -> None:
        """Grow a live buffer: the most recent allocation, or one that is not."""
        if fresh:  # a new buffer, then grow it at once
            size = 1 + index % 16
            made = self.took(self.arena.alloc_uninit_slice(Layout(size)), size, 1, seed)
            if made is None:
                return
            self.views.append(made)
        views = [v for v in self.views if isinstance(v.obj, memoryview) and v.obj.format == "B"]
        if not views:
            self.skipped = True
            return
        latest = [v for v in views if v.end == self.used]
        old = latest[-1] if latest and (fresh or index % 2) else views[index % len(views)]
        new_size = old.size + extra
        most_recent = old.end == self.used
        fits = old.off + new_size <= self.capacity
        if not (most_recent and fits):
            before = self.snapshot()
            assert self.arena.grow(old.obj, new_size) is None
            assert self.snapshot() == before
            EVENTS["grow none"] += 1
            return
        grown = self.arena.grow(old.obj, new_size)
        assert grown is not None and address(grown) == address(old.obj)
        assert len(grown) == new_size and grown.format == "B"
        self.used = old.off + new_size
        self.commit_to(self.used)
        view = Alias(grown, old.off, new_size, old.align, old.ident)
        self.write(view, seed, skip=old.size)  # the old bytes are kept
        EVENTS["grow done"] += 1
        self.views.append(view)

    @rule(index=st.integers(0, 1 << 16))
    @counted
    def grow_bad(self, index: int) -> None:
        """Shrinking raises ValueError, a non-memoryview TypeError: nothing changes."""
        views = [v for v in self.views if isinstance(v.obj, memoryview) and v.size]
        if views:
            view = views[index % len(views)]
            self.expect_refused(lambda: self.arena.grow(view.obj, view.size - 1), ValueError)
        self.expect_refused(lambda: self.arena.grow(b"abc", 8), TypeError)


class TypedRegions(RegionMachine):
    """``TypedArena`` / ``TypedArenaLazy``: the model is the live slots and the drops."""

    @initialize(
        case=st.sampled_from(range(len(TYPED_CASES))),
        capacity=st.sampled_from([3, 40, 300, -1]),
        with_drop=st.booleans(),
    )
    def start(self, case: int, capacity: int, with_drop: bool) -> None:
        self.ctype, self.items, self.bad_item = TYPED_CASES[case]
        self.size = ctypes.sizeof(self.ctype)
        if capacity < 0:  # across several commit steps
            capacity = 3 * self.step // self.size + 5
        self.capacity = capacity
        self.drops: list[tuple[int, bytes]] = []
        self.expected_drops: list[tuple[int, bytes]] = []
        drop = self.on_drop if with_drop else None
        self.with_drop = with_drop
        self.arena = self.arena_cls(self.ctype, capacity, drop=drop)
        self.foreign = self.arena_cls(self.ctype, 2).checkpoint()
        self.mem = bytearray(capacity * self.size)
        self.n = 0
        self.base = 0

    def on_drop(self, value: Any) -> None:
        self.drops.append((address(value), bytes(raw(value))))

    def convert(self, item: Any) -> Any:
        """``item`` as the arena's ctype (what ``alloc_raw`` would store)."""
        if isinstance(item, tuple):
            return self.ctype(*item)
        if isinstance(item, bytes):
            made = self.ctype()
            made.value = item
            return made
        return self.ctype(item)

    def position(self) -> int:
        return self.n

    def set_position(self, position: int) -> None:
        self.n = position

    def end_of(self, position: int) -> int:
        return position * self.size

    def capacity_bytes(self) -> int:
        return self.capacity * self.size

    def before_rewind(self, position: int) -> None:
        if self.with_drop:
            size = self.size
            self.expected_drops += [
                (self.base + k * size, bytes(self.mem[k * size : (k + 1) * size]))
                for k in range(self.n - 1, position - 1, -1)
            ]

    def took(self, obj: Any, count: int, contents: bytes | None, seed: int) -> Alias | None:
        """Check and record ``count`` slots handed out (zero, or ``contents``)."""
        if self.n + count > self.capacity:
            assert obj is None, "allocation beyond the capacity"
            return None
        assert obj is not None, "allocation refused though there is room"
        size = self.size
        if not self.base:
            self.base = address(obj) - self.n * size
        k = self.n
        assert address(obj) == self.base + k * size, "slots are not consecutive"
        assert bytes(raw(obj)) == (contents if contents is not None else bytes(count * size))
        self.n += count
        self.commit_to(self.n * size)
        view = Alias(obj, k * size, count * size, ctypes.alignment(self.ctype), self.new_ident())
        self.mem[view.off : view.end] = raw(obj)
        if contents is None:
            self.write(view, seed)
        return view

    @rule(seed=st.integers(0, 1 << 32), keep=st.booleans())
    @counted
    def alloc(self, seed: int, keep: bool) -> None:
        view = self.took(self.arena.alloc(), 1, None, seed)
        if view is not None and keep:
            self.views.append(view)

    @rule(
        n=st.one_of(st.integers(1, 8), st.integers(1, 2000)),
        seed=st.integers(0, 1 << 32),
        keep=st.booleans(),
    )
    @counted
    def alloc_many(self, n: int, seed: int, keep: bool) -> None:
        before = self.snapshot()
        view = self.took(self.arena.alloc_many(n), n, None, seed)
        if view is None:
            assert self.snapshot() == before
            EVENTS["alloc_many none"] += 1
        else:
            EVENTS["alloc_many done"] += 1
            if keep:
                self.views.append(view)

    @rule(
        data=st.data(),
        n=st.one_of(st.integers(1, 6), st.integers(1, 500)),
        how=st.sampled_from(["list", "generator", "ctypes array", "bad item"]),
        keep=st.booleans(),
    )
    @counted
    def alloc_extend(self, data: st.DataObject, n: int, how: str, keep: bool) -> None:
        items = data.draw(st.lists(self.items, min_size=1, max_size=4))
        items = (items * (n // len(items) + 1))[:n]
        ctype = self.ctype
        made = [self.convert(x) for x in items]
        expected = b"".join(bytes(x) for x in made)
        source: Any
        if how == "bad item":
            source = [*items, self.bad_item, *items]
            if n < self.capacity - self.n:  # the bad item is read: TypeError
                self.expect_refused(lambda: self.arena.alloc_extend(source), TypeError)
                EVENTS["alloc_extend bad item"] += 1
            else:  # more items than free slots: None before the bad one is read
                before = self.snapshot()
                assert self.arena.alloc_extend(source) is None
                assert self.snapshot() == before
            return
        if how == "ctypes array":
            source = (ctype * n)(*made)
        elif how == "generator":
            source = (x for x in items)
        else:
            source = items
        view = self.took(self.arena.alloc_extend(source), n, expected, 0)
        if view is not None:
            EVENTS["alloc_extend done"] += 1
            if keep:
                self.views.append(view)

    @rule(index=st.integers(0, 1 << 16), hold=st.sampled_from(["value", "iterator"]))
    @counted
    def iterate(self, index: int, hold: str) -> None:
        """A value got by iterating (of memory before any later checkpoint), or the iterator."""
        if not self.n:
            self.skipped = True
            return
        it = iter(self.arena)
        if hold == "iterator":
            self.views.append(Alias(it, 0, self.n * self.size, 1, 0, checks=False))
            return
        k = index % self.n
        for _ in range(k):
            next(it)
        value = next(it)
        del it
        size = self.size
        self.views.append(Alias(value, k * size, size, ctypes.alignment(self.ctype), 0))

    @rule()
    @counted
    def as_array(self) -> None:
        if not self.n:
            self.skipped = True
            return
        array = self.arena.as_array()
        assert len(array) == self.n
        self.views.append(Alias(array, 0, self.n * self.size, 1, 0))

    def closed_drops(self) -> None:
        assert self.drops == self.expected_drops, "close() did not drop the rest once"

    @invariant()
    def typed_gauges(self) -> None:
        if self.arena is None:
            return
        assert len(self.arena) == self.n
        assert self.drops == self.expected_drops, "drops not in reverse order exactly once"


MACHINES: dict[str, type[RegionMachine]] = {}
for _name in KINDS:
    _base: Any = TypedRegions if _name.startswith("Typed") else BumpRegions
    MACHINES[_name] = type(
        _name + "Regions",
        (_base,),
        {
            "kind": _name,
            "arena_cls": getattr(linalloc, _name),
            "lazy": _name.endswith("Lazy"),
            "typed": _name.startswith("Typed"),
        },
    )


def main(kind: str) -> None:
    """Run one arena kind's machine; print the steps run (subprocess entry point)."""
    import conftest  # noqa: F401 - registers and loads the profile HYPOTHESIS_PROFILE names

    gc.collect()
    base = settings()
    examples = max(EXAMPLES, base.max_examples * EXAMPLES // 100)
    run_state_machine_as_test(
        MACHINES[kind],
        settings=settings(base, max_examples=examples, stateful_step_count=STEPS_PER_EXAMPLE),
    )
    print(f"STEPS {kind} {STEPS.get(kind, 0)}")
    print("EVENTS " + " ".join(f"{name.replace(' ', '+')}={n}" for name, n in EVENTS.items()))


@pytest.fixture(scope="module")
def region_runs(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Run the selected machines (all four for the total) in fresh interpreters, two at a time."""
    from conftest import run_python

    items = request.session.items
    wanted = {
        i.callspec.params["kind"]  # type: ignore[attr-defined]
        for i in items
        if getattr(i, "originalname", "") == "test_region_machine"
    }
    totals = ("test_region_total_steps", "test_region_events")
    if any(getattr(i, "originalname", "") in totals for i in items):
        wanted = set(KINDS)
    kinds = [kind for kind in KINDS if kind in wanted]
    here = os.path.dirname(os.path.abspath(__file__))

    def run(kind: str) -> Any:
        code = f"import sys; sys.path.insert(0, {here!r}); import test_stateful_regions; "
        code += f"test_stateful_regions.main({kind!r})"
        return run_python(code, timeout=900)

    with ThreadPoolExecutor(2) as pool:
        return dict(zip(kinds, pool.map(run, kinds)))


@pytest.mark.parametrize("kind", KINDS)
def test_region_machine(region_runs: dict[str, Any], kind: str) -> None:
    result = region_runs[kind]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    steps = steps_of(result, kind)
    print(f"{kind}: {steps} steps")
    assert steps > 0


def test_region_total_steps(region_runs: dict[str, Any]) -> None:
    """The CI profile runs at least MIN_TOTAL_STEPS steps across the four kinds."""
    total = sum(steps_of(result, kind) for kind, result in region_runs.items())
    print(f"region steps run: {total}")
    assert total >= MIN_TOTAL_STEPS


def test_region_events(region_runs: dict[str, Any]) -> None:
    """Every outcome the model checks was reached: the machine is not vacuous."""
    seen: Counter[str] = Counter()
    for result in region_runs.values():
        for line in result.stdout.splitlines():
            if line.startswith("EVENTS "):
                for item in line.split()[1:]:
                    name, n = item.split("=")
                    seen[name.replace("+", " ")] += int(n)
    print(dict(seen))
    missing = [name for name in REQUIRED_EVENTS if not seen[name]]
    assert not missing, f"never reached: {missing}"


if __name__ == "__main__":
    main(sys.argv[1])
