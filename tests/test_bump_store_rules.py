"""Rules of the backing stores (``linalloc._store``) and the untyped arenas
(``linalloc._bump``) that no other test pins down one by one, in this process: a
bad capacity is named in the error; the array types the store makes are made once
per element type and length; the caches that keep them, and what the bump arenas
decided about a type, stay bounded; a type is read once; an allocation interrupted
once its memory was committed is finished by the next without asking the OS again,
and one interrupted while its window opened leaves ``alloc()`` refusing what is not
a ctypes type.

Nothing public tells an array type made again from the one made before, nor how
many types a cache or a part holds (only the time it takes and the memory kept),
so those tests read ``_store`` and ``_bump`` directly."""

from __future__ import annotations

import ctypes
import gc
import inspect
import re
from typing import Any

import pytest
from conftest import UNDER_MUTATION, at_line_of, traced
from test_revived_arenas import _interrupting

import linalloc
from linalloc import BumpArena, BumpArenaLazy, Layout, _bump, _store

# -- a bad capacity ------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [BumpArena, BumpArenaLazy])
def test_a_bad_capacity_is_named_in_the_error(cls: type) -> None:
    """BumpArena(capacity) names the capacity in its TypeError/ValueError for a bad one."""
    with pytest.raises(ValueError, match=r"^capacity must be >= 0, got -1$"):
        cls(-1)
    with pytest.raises(TypeError, match=r"^capacity must be an int"):
        cls("64")


# -- the array types of array_type() -----------------------------------------------------


def test_array_types_are_made_once_per_element_type_and_length() -> None:
    """array_type() hands back the type it made for (ctype, n), whatever came between."""
    _store._array_types.clear()
    try:
        shorts = _store.array_type(ctypes.c_int16, 3)
        bytes_ = _store.array_type(ctypes.c_uint8, 3)  # (same length, another type)
        longer = _store.array_type(ctypes.c_int16, 4)  # (same type, another length)
        assert (shorts._type_, shorts._length_) == (ctypes.c_int16, 3)
        assert (bytes_._type_, bytes_._length_) == (ctypes.c_uint8, 3)
        assert (longer._type_, longer._length_) == (ctypes.c_int16, 4)
        assert ctypes.sizeof(shorts) == 6 and ctypes.sizeof(longer) == 8
        assert _store.array_type(ctypes.c_int16, 3) is shorts
        assert _store.array_type(ctypes.c_uint8, 3) is bytes_
        assert _store.array_type(ctypes.c_int16, 4) is longer
    finally:
        _store._array_types.clear()


def test_the_array_type_cache_is_cleared_at_1024_entries() -> None:
    """array_type()'s cache keeps at most 1024 types: full, it is emptied before the next."""
    gc.disable()  # (a finalizer of an earlier test's arena, collected here, makes types too)
    _store._array_types.clear()
    try:
        made = [_store.array_type(ctypes.c_uint8, n) for n in range(1, 1025)]
        assert len(_store._array_types) == 1024
        assert all(_store.array_type(ctypes.c_uint8, n) is made[n - 1] for n in (1, 512, 1024))
        last = _store.array_type(ctypes.c_uint8, 1025)
        assert len(_store._array_types) == 1  # cleared, then the new entry
        assert _store._array_types[(id(ctypes.c_uint8), 1025)] is last
        assert (last._type_, last._length_) == (ctypes.c_uint8, 1025)
    finally:
        _store._array_types.clear()
        gc.enable()


def test_a_windowable_type_gets_a_row_even_where_only_one_value_fits() -> None:
    """A value of a windowable type comes from a row of the part, also when the row holds one."""

    class Pair(ctypes.Structure):
        _fields_ = [("a", ctypes.c_int32), ("b", ctypes.c_int32)]

    arena = BumpArena(8)  # (room for one Pair: a row of one)
    value = arena.alloc(Pair)
    assert type(value) is Pair and arena.used == 8
    rows = list(arena._part.arrays.values())
    assert [len(row) for row in rows] == [1]
    assert ctypes.addressof(rows[0]) == ctypes.addressof(value)
    del rows, value
    arena.reset()
    assert arena.used == 0


# -- what the bump arenas remember about a type ------------------------------------------


def test_whether_values_keep_a_string_is_remembered_for_max_types_types_at_most(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """_bump._strings holds at most _MAX_TYPES types: full, it is emptied before the next."""
    monkeypatch.setattr(_bump, "_MAX_TYPES", 8)  # (the bound, made small)
    monkeypatch.setattr(_bump, "_strings", {})  # (starts empty)
    monkeypatch.setattr(_bump, "_windowed", {})  # (bounded the same way)
    kinds = [type(f"I{k}", (ctypes.c_int32,), {}) for k in range(9)]
    arena = BumpArena(256)
    for kind in kinds[:8]:
        assert arena.alloc(kind) is not None
    assert len(_bump._strings) == 8
    assert arena.alloc(kinds[8]) is not None  # one type more: the older ones are forgotten
    assert list(_bump._strings.values()) == [(kinds[8], False)]
    arena.reset()


def test_a_part_keeps_at_most_max_rows_rows_and_still_counts_every_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rows per part are capped at _MAX_ROWS; values past the cap are made another way, counted."""
    monkeypatch.setattr(_bump, "_MAX_ROWS", 4)  # (the bound, made small)
    kinds = [
        type(f"Byte{k}", (ctypes.Structure,), {"_fields_": [("b", ctypes.c_uint8)]})
        for k in range(6)
    ]
    arena = BumpArena(64)
    values = [arena.alloc(kind) for kind in kinds]  # (one row each, while rows are kept)
    assert [type(value) for value in values] == kinds
    assert len(arena._part.arrays) == 4
    assert arena.live_views() == 6
    with pytest.raises(BufferError, match="6 views"):
        arena.reset()
    del values
    arena.reset()
    assert arena.used == 0


def test_whether_values_of_a_simple_type_keep_a_string_is_decided_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """alloc() reads a simple type's code once: no value of the type is made again to decide."""
    monkeypatch.setattr(_bump, "_strings", {})  # (starts empty)
    deaths: list[int] = []

    class Counted(ctypes.c_int32):  # (a finalizer: each value made and dropped is seen)
        def __del__(self) -> None:
            deaths.append(1)

    arena = BumpArena(64)
    kept = [arena.alloc(Counted)]
    decided = len(deaths)  # (values made to decide, and dropped)
    assert decided >= 1
    kept += [arena.alloc(Counted) for _ in range(3)]
    assert len(deaths) == decided  # decided once: no value made again
    assert all(type(value) is Counted for value in kept) and arena.used == 16
    del kept
    arena.reset()


def test_a_string_type_without_an_instance_dict_is_refused_with_the_whole_reason() -> None:
    """alloc() of a string type without an instance dict: TypeError saying why, nothing changed."""

    class Bare(ctypes._SimpleCData):  # type: ignore[type-arg]
        __slots__ = ()
        _type_ = "z"

    arena = BumpArena(64)
    message = (
        "values of Bare keep a string for ctypes and have no instance dict (__slots__):"
        " the arena could not keep its memory for them"
    )
    with pytest.raises(TypeError, match="^" + re.escape(message) + "$"):
        arena.alloc(Bare)
    assert arena.used == 0 and arena.live_views() == 0


# -- an allocation interrupted after its commit --------------------------------------------


class _CountingVM:
    """The real platform layer, recording each commit."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.commits: list[tuple[int, int]] = []

    def commit(self, addr: int, size: int) -> int | None:
        self.commits.append((addr, size))
        result: int | None = self._real.commit(addr, size)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _raise_interrupt() -> object:
    raise KeyboardInterrupt


def test_an_allocation_interrupted_after_its_commit_is_finished_by_the_next_without_a_commit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Memory already committed is usable at once: the next allocation needs no commit."""
    vm = _CountingVM(linalloc._vm.get())
    monkeypatch.setattr(linalloc._vm, "get", lambda: vm)
    arena = BumpArenaLazy(1 << 20)
    step = arena.commit_step
    # Interrupted once the store committed the first step, before the arena knew.
    tracer, _ = at_line_of(BumpArena._grown, "self._limit = min(", _raise_interrupt)
    with pytest.raises(KeyboardInterrupt):
        traced(tracer, lambda: arena.alloc_uninit_slice(Layout(step)))
    assert arena.used == 0 and arena.committed == step
    assert len(vm.commits) == 1
    view = arena.alloc_uninit_slice(Layout(step))  # ends where the commit ends
    assert view is not None and len(view) == step
    view[-1] = 7  # (committed: writable)
    assert arena.used == step and arena.committed == step
    assert len(vm.commits) == 1  # nothing committed again
    del view
    arena.close()


# -- a window interrupted while it opens --------------------------------------------------


class _Cell(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int64)]


@pytest.mark.parametrize("not_a_type", ["", None], ids=repr)
def test_alloc_of_a_non_type_raises_even_after_a_window_was_interrupted_while_opening(
    not_a_type: Any,
) -> None:
    """alloc() refuses what is not a ctypes type (TypeError), also with a window left half
    open (``None`` too: it was the mark of no window, and got a value made ahead)."""
    arena = BumpArena(1 << 12)
    kept = [arena.alloc(_Cell) for _ in range(3)]  # windows of one, then two: used up
    # The next window of _Cell is filled, interrupted before the arena marks it as _Cell's.
    tracer, _ = at_line_of(BumpArena._alloc_slow, "self._wtype = ctype", _raise_interrupt)
    with pytest.raises(KeyboardInterrupt):
        traced(tracer, lambda: arena.alloc(_Cell))
    with pytest.raises(TypeError, match="expected a ctypes data type"):
        arena.alloc(not_a_type)
    value = arena.alloc(_Cell)  # (the window is given back first)
    assert type(value) is _Cell and arena.live_views() == 4
    del kept, value
    arena.reset()
    assert arena.used == 0


def test_an_allocation_a_finalizer_makes_in_the_middle_of_another_of_its_type_is_its_own() -> None:
    """Code run in the middle of ``alloc()``'s slow path (a finalizer the collector runs
    there) allocates the same type, opening a window with values made ahead: the outer
    call gives those back and starts a window of one; every value has its own memory and
    ``used`` counts exactly the values handed out."""
    arena = BumpArena(1 << 12)
    kept = [arena.alloc(_Cell) for _ in range(3)]  # windows of one, then two: used up
    tracer, inner = at_line_of(
        BumpArena._alloc_slow, "wtype = self._wtype", lambda: arena.alloc(_Cell)
    )
    outer = traced(tracer, lambda: arena.alloc(_Cell))
    (first,) = inner
    assert type(first) is _Cell and type(outer) is _Cell
    size = ctypes.sizeof(_Cell)
    addresses = sorted(ctypes.addressof(v) for v in [*kept, first, outer])
    assert [b - a for a, b in zip(addresses, addresses[1:])] == [size] * 4  # (given back)
    assert arena.used == 5 * size and arena.live_views() == 5
    last = arena.alloc(_Cell)
    assert ctypes.addressof(last) == addresses[-1] + size
    del kept, first, outer, inner, last, tracer
    arena.reset()
    assert arena.used == 0


_HALT_CODE = BumpArena._halt.__code__


def _halt_lines() -> list[int]:
    """The lines of ``_halt`` that closing a window with values made ahead runs."""
    source, first = inspect.getsourcelines(BumpArena._halt)
    skipped = ("raise _closed_error()", "pending = self._pop.__self__")
    lines = {n for _, _, n in _HALT_CODE.co_lines() if n is not None} - {first}
    return sorted(n for n in lines if not any(text in source[n - first] for text in skipped))


_HALT_LINES = [] if UNDER_MUTATION else _halt_lines()  # (see at_line_of)


@pytest.mark.parametrize(
    "line", _HALT_LINES, ids=[f"line+{n - _HALT_CODE.co_firstlineno}" for n in _HALT_LINES]
)
def test_an_interrupt_anywhere_in_a_halt_leaves_the_arena_exact_after_the_next(line: int) -> None:
    """A ``KeyboardInterrupt`` at any line of the halt that closes a window with values
    made ahead (here in ``checkpoint()``): the next call that halts gives those values
    back, so ``used`` is exact and ``close()`` is accepted once the values handed out are
    gone (before, the values made ahead stayed in a list no halt emptied: close() and
    reset() were refused until an allocation opened a new window)."""
    arena = BumpArena(1 << 12)
    kept = [arena.alloc(_Cell) for _ in range(4)]  # the third window, of four: 3 ahead
    tracer = _interrupting(_HALT_CODE, "line", line)
    with pytest.raises(KeyboardInterrupt):
        traced(tracer, arena.checkpoint)
    arena.checkpoint()  # halts again
    exact = 4 * ctypes.sizeof(_Cell)
    source, first = inspect.getsourcelines(BumpArena._halt)
    if "self._used -= given" in source[line - first]:  # (given back, not yet subtracted)
        assert arena.used == exact + 3 * ctypes.sizeof(_Cell)  # over, until reset()
    else:
        assert arena.used == exact
    assert arena.live_views() == 4
    del kept
    arena.close()


@pytest.mark.parametrize("not_a_type", ["", None], ids=repr)
def test_alloc_of_a_non_type_raises_even_after_a_window_was_interrupted_while_closing(
    not_a_type: Any,
) -> None:
    """The same with the window's values made ahead left in place: a call that closes the
    window (``checkpoint()``) interrupted just after it marked the arena as having none."""
    arena = BumpArena(1 << 12)
    kept = [arena.alloc(_Cell) for _ in range(4)]  # the third window, of four: 3 ahead
    tracer, _ = at_line_of(BumpArena._halt, "self._pending = _HALT", _raise_interrupt)
    with pytest.raises(KeyboardInterrupt):
        traced(tracer, arena.checkpoint)
    with pytest.raises(TypeError, match="expected a ctypes data type"):
        arena.alloc(not_a_type)
    value = arena.alloc(_Cell)
    assert type(value) is _Cell and arena.live_views() == 5
    assert ctypes.addressof(value) - ctypes.addressof(kept[-1]) == ctypes.sizeof(_Cell)
    del kept, value
    arena.reset()
    assert arena.used == 0
