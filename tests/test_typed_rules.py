"""Rules of ``TypedArena`` (and ``TypedArenaLazy``) its other tests leave implicit.

- the constructor's errors name the argument at fault, and ``capacity * size``
  of exactly ``sys.maxsize`` bytes is not an overflow;
- in a buffer less aligned than the type (malloc may give one; here a store
  whose address is shifted), values are aligned by address, all ``capacity``
  of them fit, and making room to align takes ``alignment - 1`` bytes more;
- a ``MemoryError`` while a value is made (its slot index taken all the same)
  gives the slot back: the next value lands there, nothing is skipped or
  handed out twice;
- no code run in the middle of a ``reset()`` may allocate (a finalizer run as
  the reset frees what the values' pointers kept), even after the drop
  callbacks returned;
- a call interrupted while it switches the arena to a new part leaves the
  arena allocating as before;
- a lazy arena of a type aligned to no power of two (``_pack_ = 3``) over a
  reservation that is not a multiple of it: nothing committed yet lies past
  the offset that aligns the slots.
"""

from __future__ import annotations

import ctypes
import gc
import re
import sys
from typing import Any, Callable

import pytest
from test_typed_reentry import try_to_allocate

from linalloc import TypedArena, TypedArenaLazy, _typed_windows
from linalloc._store import EagerStore

# -- the constructor's errors -----------------------------------------------------


@pytest.mark.parametrize(
    ("capacity", "kind", "message"),
    [
        (-1, ValueError, "capacity must be >= 0, got -1"),
        (2.5, TypeError, "capacity must be an int, not float"),
        ("4", TypeError, "capacity must be an int, not str"),
    ],
)
def test_a_bad_capacity_is_refused_naming_the_capacity(
    typed_cls: type, capacity: Any, kind: type[Exception], message: str
) -> None:
    with pytest.raises(kind, match="^" + re.escape(message) + "$"):
        typed_cls(ctypes.c_int32, capacity)


@pytest.mark.parametrize(("drop", "name"), [(5, "int"), ("print", "str")])
def test_a_drop_that_is_not_callable_is_refused_naming_its_type(
    typed_cls: type, drop: object, name: str
) -> None:
    message = f"drop must be callable or None, not {name}"
    with pytest.raises(TypeError, match="^" + re.escape(message) + "$"):
        typed_cls(ctypes.c_int32, 4, drop=drop)


def test_values_taking_exactly_sys_maxsize_bytes_are_no_overflow() -> None:
    # Only beyond sys.maxsize is an overflow; exactly that many bytes is asked
    # of the memory, which cannot give them.
    message = f"cannot allocate an arena of {sys.maxsize} bytes"
    with pytest.raises(MemoryError, match="^" + re.escape(message) + "$"):
        TypedArena(ctypes.c_uint8, sys.maxsize)
    with pytest.raises(OverflowError, match="exceed the address space"):
        TypedArena(ctypes.c_uint8, sys.maxsize + 1)


# -- a buffer less aligned than the type -------------------------------------------


class _ShiftedStore(EagerStore):
    """A buffer whose address is 1 past a multiple of 16, less aligned than any type
    (as malloc may give); ``asked`` records the sizes the arena asked for."""

    asked: list[int]

    def __init__(self, capacity: int) -> None:
        type(self).asked.append(capacity)
        super().__init__(capacity + 32)
        self.address += (1 - self.address) % 16
        self.capacity = self.committed = self.extent = capacity


def _shifted_arena(ctype: Any, capacity: int) -> tuple[Any, list[int]]:
    """A ``TypedArena`` over a shifted store; the sizes it asked the store for."""
    asked: list[int] = []
    store = type("Shifted", (_ShiftedStore,), {"asked": asked})
    arena_type = type("ShiftedTypedArena", (TypedArena,), {"_store_type": store})
    return arena_type(ctype, capacity), asked


def test_values_are_aligned_in_a_buffer_less_aligned_than_their_type() -> None:
    align, size = ctypes.alignment(ctypes.c_double), ctypes.sizeof(ctypes.c_double)
    assert align > 1
    arena, _ = _shifted_arena(ctypes.c_double, 4)
    values = [arena.alloc(0.5), arena.alloc_raw(1.5), arena.alloc(2.5), arena.alloc_raw(3.5)]
    assert all(v is not None for v in values)  # all four fit
    base = ctypes.addressof(values[0])
    assert base % align == 0
    assert [ctypes.addressof(v) - base for v in values] == [0, size, 2 * size, 3 * size]
    assert arena.alloc(4.5) is None and arena.alloc_raw(4.5) is None
    assert [v.value for v in values] == [0.5, 1.5, 2.5, 3.5]
    whole = arena.as_array()
    assert ctypes.addressof(whole) == base and list(whole) == [0.5, 1.5, 2.5, 3.5]
    del values, whole
    arena.reset()
    again = arena.alloc(9.5)
    assert again is not None and ctypes.addressof(again) == base
    del again
    arena.close()


def test_aligning_in_a_less_aligned_buffer_asks_for_alignment_minus_one_more_bytes() -> None:
    align, size = ctypes.alignment(ctypes.c_double), ctypes.sizeof(ctypes.c_double)
    arena, asked = _shifted_arena(ctypes.c_double, 4)
    assert asked == [4 * size, 4 * size + align - 1]
    arena.close()


def test_zero_size_values_are_aligned_in_a_buffer_less_aligned_than_their_type() -> None:
    empty = ctypes.c_int32 * 0
    align = ctypes.alignment(empty)
    assert ctypes.sizeof(empty) == 0 and align > 1
    arena, asked = _shifted_arena(empty, 4)
    assert asked == [0, align - 1]
    values = [arena.alloc(), arena.alloc(), arena.alloc_raw(())]
    assert all(v is not None for v in values) and len(arena) == 0
    assert all(ctypes.addressof(v) % align == 0 for v in values)
    del values
    arena.close()


# -- running code in the middle of a call (as a signal handler could) -------------


def _is_call_from(frame: Any, event: str, function: str, caller: str) -> bool:
    """Whether ``event`` is a call of ``function`` from a function whose name holds
    ``caller`` (in a profile or trace function).

    Also under mutmut, which renames each function (``xǁCursorǁcount__mutmut_orig``)
    and calls it through a wrapper of its own: frames of mutmut's code are skipped.
    """
    if event != "call" or not _named(frame.f_code.co_name, function):
        return False
    back = frame.f_back
    while back is not None and "mutmut" in back.f_code.co_filename:
        back = back.f_back
    return back is not None and caller in back.f_code.co_name


def _named(name: str, function: str) -> bool:
    """Whether a code object's ``name`` is ``function``'s (or mutmut's name for it)."""
    return name == function or re.fullmatch(rf"x(ǁ\w+ǁ|_){function}__mutmut_\w+", name) is not None


def _profiled(profile: Callable[..., None], call: Callable[[], object]) -> object:
    """``call()`` with ``profile`` set as the profile function (as ``conftest.traced``)."""
    sys.setprofile(profile)
    try:
        return call()
    finally:
        sys.setprofile(None)


# -- a MemoryError while a value is made ----------------------------------------


def _failing_value_maker(monkeypatch: pytest.MonkeyPatch, fail_at: int) -> list[int]:
    """Making a value out of the slot array fails (``MemoryError``) the ``fail_at``-th
    time, after the window has taken its slot index; returns the call count."""
    real = _typed_windows.ARRAY_ITEM
    calls = [0]

    def getitem(array: Any, k: int) -> Any:
        calls[0] += 1
        if calls[0] == fail_at:
            raise MemoryError("injected")
        return real(array, k)

    monkeypatch.setattr(_typed_windows, "ARRAY_ITEM", getitem)
    return calls


@pytest.mark.parametrize("how", ["alloc", "alloc_raw"])
def test_a_memory_error_making_a_value_gives_its_slot_back(
    typed_cls: type, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dropped: list[int] = []
    # (a drop callback: the values are made one at a time, as they are handed out)
    arena: Any = typed_cls(ctypes.c_int64, 8, drop=lambda v: dropped.append(v.value))
    make: Callable[[int], Any] = getattr(arena, how)
    calls = _failing_value_maker(monkeypatch, fail_at=2)
    first = make(1)
    with pytest.raises(MemoryError, match="^injected$"):
        make(2)
    assert calls[0] == 2 and len(arena) == 1
    second = make(3)  # in the slot the failed call took
    assert second is not None and second.value == 3 and first.value == 1
    assert ctypes.addressof(second) == ctypes.addressof(first) + 8
    assert len(arena) == 2 and [v.value for v in arena] == [1, 3]
    del first, second
    arena.reset()
    assert dropped == [3, 1]
    arena.close()


def test_no_allocation_runs_while_alloc_raw_gives_back_a_slot_after_a_memory_error(
    typed_cls: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A profile function runs code as a signal handler could, at the call that
    # reads the count to give the slot back.
    arena: Any = typed_cls(ctypes.c_int64, 8, drop=lambda v: None)
    outcomes: list[str] = []

    def probe(frame: Any, event: str, arg: object) -> None:
        if not outcomes and _is_call_from(frame, event, "count", "alloc_raw"):
            try_to_allocate(arena, outcomes, 100)

    _failing_value_maker(monkeypatch, fail_at=2)
    first = arena.alloc_raw(1)
    with pytest.raises(MemoryError, match="^injected$"):
        _profiled(probe, lambda: arena.alloc_raw(2))
    assert outcomes == ["busy"]
    assert len(arena) == 1 and [v.value for v in arena] == [1]
    second = arena.alloc_raw(3)
    assert ctypes.addressof(second) == ctypes.addressof(first) + 8
    del first, second
    arena.close()


# -- code run in the middle of a reset ---------------------------------------------


def test_a_finalizer_run_as_a_reset_frees_what_pointers_kept_cannot_allocate(
    typed_cls: type,
) -> None:
    log: list[str] = []
    arena: Any = None

    class Noisy(ctypes.c_int64):
        """Kept alive by a pointer stored in a value; its death tries to allocate."""

        def __del__(self) -> None:
            try_to_allocate(arena, log, None, 100)

    class Node(ctypes.Structure):
        _fields_ = [("p", ctypes.POINTER(Noisy)), ("v", ctypes.c_int64)]

    dropped: list[int] = []
    arena = typed_cls(Node, 8, drop=lambda node: dropped.append(node.v))
    node = arena.alloc(None, 1)
    node.p = ctypes.pointer(Noisy(5))  # (ctypes keeps the target with the slots)
    del node
    arena.reset()  # drops the value, then frees the slots' keep-alives
    assert dropped == [1] and log == ["busy"]
    assert len(arena) == 0
    fresh = arena.alloc(None, 2)
    assert fresh is not None and len(arena) == 1 and [n.v for n in arena] == [2]
    del fresh
    arena.close()


class _Link(ctypes.Structure):
    pass


_Link._fields_ = [("next", ctypes.POINTER(_Link)), ("v", ctypes.c_int64)]


def taking_views_of(
    call: Callable[[], object], where: int, size: int | None = None
) -> tuple[list[Any], str | None]:
    """``call()`` (a reset or rewind) while code run in its middle (a profile function,
    as a signal handler could) takes the objects over ``where`` (of ``size`` bytes, or
    any) from the collector's list, as the call starts its drops; returns what it
    took, and the message of the ``BufferError`` the call raised (None if none)."""
    taken: list[Any] = []

    def probe(frame: Any, event: str, arg: object) -> None:
        if not taken and _is_call_from(frame, event, "_drop_after", "_rewind_to"):
            taken.extend(
                obj
                for obj in gc.get_objects()
                if isinstance(obj, (ctypes.Array, ctypes.Structure))
                and ctypes.addressof(obj) == where
                and (size is None or ctypes.sizeof(obj) == size)
            )

    try:
        _profiled(probe, call)
    except BufferError as error:
        return taken, str(error)
    return taken, None


def reset_taking_a_view_of(arena: Any, where: int) -> list[Any]:
    """``arena.reset()``, refused, while code run in its middle takes the objects over
    ``where`` (see :func:`taking_views_of`); returns what it took."""
    taken, refused = taking_views_of(arena.reset, where)
    assert refused is not None and refused.startswith("cannot reset: 1 view of this arena")
    return taken


def test_a_view_made_in_the_middle_of_a_reset_without_drops_makes_it_refuse(
    typed_cls: type,
) -> None:
    # ``first`` points to ``second``: what ctypes keeps for that pointer is left
    # out of the count (the arena's own memory). Code run in the middle of the
    # reset (a profile function, as a signal handler could) takes an object
    # over ``second``'s memory from the collector's list: with no drop callback
    # run, nothing has changed yet, so the reset is refused, as if that view
    # had lived all along.
    arena: Any = typed_cls(_Link, 8)
    first, second = arena.alloc(None, 1), arena.alloc(None, 2)
    first.next = ctypes.pointer(second)
    where = ctypes.addressof(second)
    del first, second
    taken = reset_taking_a_view_of(arena, where)
    assert len(taken) == 1
    assert len(arena) == 2 and [link.v for link in arena] == [1, 2]
    third = arena.alloc(None, 3)  # (nothing is held)
    assert third is not None and ctypes.addressof(third) == where + ctypes.sizeof(_Link)
    del third
    taken.clear()
    arena.reset()
    assert len(arena) == 0
    arena.close()


# -- a call interrupted while the arena switches parts ---------------------------


def _interrupt_at_call(function: str, caller: str, fired: list[str]) -> Callable[..., None]:
    """A profile function raising ``KeyboardInterrupt`` when ``caller`` first calls
    ``function``; ``fired`` gets ``function``'s name then."""

    def profile(frame: Any, event: str, arg: object) -> None:
        if _is_call_from(frame, event, function, caller):
            sys.setprofile(None)
            fired.append(function)
            raise KeyboardInterrupt

    return profile


def test_alloc_works_after_a_checkpoint_interrupted_while_switching_parts(
    typed_cls: type,
) -> None:
    arena: Any = typed_cls(ctypes.c_int64, 64)
    first = arena.alloc(1)
    fired: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        _profiled(_interrupt_at_call("count", "_switch_part", fired), arena.checkpoint)
    assert fired == ["count"]
    second = arena.alloc(2)
    assert second is not None and second.value == 2
    assert ctypes.addressof(second) == ctypes.addressof(first) + 8
    assert len(arena) == 2 and [v.value for v in arena] == [1, 2]
    del first, second
    arena.reset()
    assert len(arena) == 0
    arena.close()


def test_zero_size_values_are_handed_out_after_a_reset_interrupted_twice(
    typed_cls: type,
) -> None:
    # The first interrupt, at the reset's count, makes it switch to a new part;
    # the second lands while it switches.
    arena: Any = typed_cls(ctypes.c_int32 * 0, 4)
    assert arena.alloc() is not None
    fired: list[str] = []

    def trace(frame: Any, event: str, arg: object) -> None:
        if _is_call_from(frame, event, "_unlinked_views", "_rewind_to"):
            sys.settrace(None)
            fired.append("_unlinked_views")
            raise KeyboardInterrupt

    sys.setprofile(_interrupt_at_call("count", "_switch_part", fired))
    sys.settrace(trace)
    try:
        with pytest.raises(KeyboardInterrupt):
            arena.reset()
    finally:
        sys.settrace(None)
        sys.setprofile(None)
    assert fired == ["_unlinked_views", "count"]
    value = arena.alloc()
    assert value is not None and ctypes.sizeof(value) == 0 and len(arena) == 0
    assert arena.alloc_raw(()) is not None
    del value
    arena.close()


# -- an alignment that divides no page ---------------------------------------------


class _Packed3(ctypes.Structure):
    _pack_ = 3  # (alignment 3: a page-aligned reservation is 1 or 2 past a multiple)
    _fields_ = [("a", ctypes.c_int32), ("b", ctypes.c_int16)]


def test_a_lazy_arena_of_a_type_aligned_to_three_aligns_its_values_by_address() -> None:
    assert ctypes.alignment(_Packed3) == 3 and ctypes.sizeof(_Packed3) == 6
    arenas: list[Any] = []
    residues = set()
    for _ in range(24):  # (reservations a page apart: every residue comes up)
        arena = TypedArenaLazy(_Packed3, 40_000)
        arenas.append(arena)
        residues.add(arena._store.address % 3)
        assert len(arena) == 0 and list(arena) == [] and len(arena.as_array()) == 0
        if residues == {0, 1, 2}:
            break
    assert residues == {0, 1, 2}
    for arena in arenas:
        values = [arena.alloc(a=k, b=-k) for k in range(12_000)]  # (past the first commit)
        assert all(ctypes.addressof(value) % 3 == 0 for value in values)
        assert [(value.a, value.b) for value in values[::997]] == [
            (k, -k) for k in range(0, 12_000, 997)
        ]
        assert len(arena.as_array()) == 12_000
        del values
        arena.reset()
        arena.close()


# -- the types values are handed out as -----------------------------------------


def test_values_of_a_subclass_of_a_simple_type_are_of_that_subclass(typed_cls: type) -> None:
    class Counter(ctypes.c_int64):
        pass

    arena = typed_cls(Counter, 4)
    value = arena.alloc(7)
    assert type(value) is Counter and value.value == 7


def test_arenas_of_one_simple_type_hand_out_values_of_one_type(typed_cls: type) -> None:
    first, second = typed_cls(ctypes.c_int64, 4), typed_cls(ctypes.c_int64, 4)
    a, b = first.alloc(1), second.alloc(2)
    assert type(a) is type(b) and isinstance(a, ctypes.c_int64)
    assert (a.value, b.value) == (1, 2)
