"""More rules of the untyped arenas (``linalloc._bump``), checked one by one: the
messages of a bad capacity, ``alloc()`` of what is no ctypes type on a fresh arena
and after a window was given back, a call closing a window marks the arena busy
from its first line, and a window given back by a call that comes in between
makes the next one start small again."""

from __future__ import annotations

import ctypes
import gc
import re
from typing import Any, Callable

import pytest
from conftest import at_line_of, traced

from linalloc import BumpArena, Layout, address
from linalloc._store import EagerStore

BUSY = (
    "the arena is busy: a drop callback cannot allocate from, rewind, reset or close "
    "the arena it is dropping from, nor can code that runs in the middle of one of its "
    "calls (a finalizer, a signal handler)"
)
NOT_A_CTYPE = (
    "expected a ctypes data type (a simple type, Structure, Union, Array or pointer type), got {!r}"
)


def exactly(text: str) -> str:
    return "^" + re.escape(text) + "$"


def live_instances(ctype: type) -> int:
    """How many instances of ``ctype`` exist: those handed out and those made ahead."""
    gc.collect()
    return sum(1 for obj in gc.get_objects() if type(obj) is ctype)


def new_struct(name: str) -> Any:
    """A Structure type of one ``c_int64`` no other test has instances of."""
    return type(name, (ctypes.Structure,), {"_fields_": [("x", ctypes.c_int64)]})


def window_of_two(bump_cls: type) -> tuple[Any, Any, Any, Any]:
    """A new struct type, an arena, and two values of that type from it: the second opens
    a window of two, so one value is made ahead."""
    local = new_struct("Local")
    arena = bump_cls(1 << 12)
    a = arena.alloc(local)
    b = arena.alloc(local)  # a window of two: one value made ahead
    assert a is not None and b is not None
    return local, arena, a, b


# -- capacity ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("capacity", "error", "message"),
    [
        (-1, ValueError, "capacity must be >= 0, got -1"),
        (-4096, ValueError, "capacity must be >= 0, got -4096"),
        (16.0, TypeError, "capacity must be an int, not float"),
        ("16", TypeError, "capacity must be an int, not str"),
        (True, TypeError, "capacity must be an int, not bool"),
        (None, TypeError, "capacity must be an int, not NoneType"),
    ],
)
def test_a_bad_capacity_has_the_whole_message(
    bump_cls: type, capacity: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=exactly(message)):
        bump_cls(capacity)


# -- alloc() of what is no ctypes type -------------------------------------------------


@pytest.mark.parametrize("bad", [None, "", 8], ids=["None", "empty str", "int"])
def test_alloc_of_no_ctypes_type_on_a_fresh_arena_has_the_whole_message(
    bump_cls: type, bad: Any
) -> None:
    arena = bump_cls(64)
    with pytest.raises(TypeError, match=exactly(NOT_A_CTYPE.format(bad))):
        arena.alloc(bad)
    assert arena.used == 0 and arena.live_views() == 0
    value = arena.alloc(ctypes.c_int64)  # the arena goes on as usual
    assert value is not None and arena.used == 8
    del value
    arena.reset()


@pytest.mark.parametrize("first", ["simple", "window"])
@pytest.mark.parametrize("bad", [None, ""], ids=["None", "empty str"])
def test_alloc_of_no_ctypes_type_after_a_window_was_given_back_has_the_whole_message(
    bump_cls: type, first: str, bad: Any
) -> None:
    local = new_struct("Local")
    arena = bump_cls(256)
    if first == "simple":  # made with from_buffer: no window
        kept = [arena.alloc(ctypes.c_int64)]
    else:  # windows of one, then of two: one value made ahead
        kept = [arena.alloc(local), arena.alloc(local)]
        assert live_instances(local) == 3
    view = arena.alloc_uninit_slice(Layout(8))  # gives the window back
    assert view is not None and address(view) == ctypes.addressof(kept[-1]) + 8
    used = arena.used
    with pytest.raises(TypeError, match=exactly(NOT_A_CTYPE.format(bad))):
        arena.alloc(bad)
    assert arena.used == used and arena.live_views() == len(kept) + 1
    again = arena.alloc(local)
    assert again is not None and ctypes.addressof(again) == address(view) + 8
    del kept, view, again
    arena.reset()


def test_alloc_of_no_ctypes_type_while_a_window_opens_is_refused(bump_cls: type) -> None:
    # Re-entered just before the window's type is published, the values made ahead are
    # already in place: a call with what is no ctypes type must not get one of them.
    local = new_struct("Local")
    arena = bump_cls(256)
    first = arena.alloc(local)  # a window of one, used up
    bad: Any = ""
    tracer, fired = at_line_of(
        BumpArena._alloc_slow, "self._wtype = ctype", lambda: arena.alloc(bad)
    )
    second: Any = traced(tracer, lambda: arena.alloc(local))  # a window of two
    assert fired == [("TypeError", NOT_A_CTYPE.format(""))]
    assert type(second) is local and ctypes.addressof(second) == ctypes.addressof(first) + 8
    assert live_instances(local) == 3  # first, second and the one made ahead
    third = arena.alloc(local)  # the value made ahead: still there
    assert third is not None and ctypes.addressof(third) == ctypes.addressof(second) + 8
    assert arena.used == 24 and live_instances(local) == 3
    del first, second, third, fired, tracer
    arena.reset()


# -- a call closing a window is busy ---------------------------------------------------


@pytest.mark.parametrize(
    "which", ["alloc_uninit_slice", "alloc simple", "alloc_array", "alloc_copy", "grow"]
)
def test_a_call_closing_a_window_is_busy_while_it_gives_the_window_back(
    bump_cls: type, which: str
) -> None:
    local, arena, a, b = window_of_two(bump_cls)
    actions: dict[str, Callable[[], object]] = {
        "alloc_uninit_slice": lambda: arena.alloc_uninit_slice(Layout(8)),
        "alloc simple": lambda: arena.alloc(ctypes.c_int64),
        "alloc_array": lambda: arena.alloc_array(ctypes.c_int32, 2),
        "alloc_copy": lambda: arena.alloc_copy(b"abcdefgh"),
        "grow": lambda: arena.grow(memoryview(bytearray(1)), 2),
    }
    tracer, fired = at_line_of(BumpArena._close_window, "self._halt()", actions[which])
    view = traced(tracer, lambda: arena.alloc_uninit_slice(Layout(8)))
    assert fired == [("RuntimeError", BUSY)]
    assert isinstance(view, memoryview) and address(view) == ctypes.addressof(b) + 8
    assert arena.used == 24 and arena.live_views() == 3
    assert live_instances(local) == 2  # the value made ahead was given back
    del a, b, view
    arena.reset()


# -- a window given back by a call that came in between ----------------------------


def test_a_window_given_back_by_the_interrupted_call_itself_makes_the_next_start_small(
    bump_cls: type,
) -> None:
    # The call that comes in between opens a bigger window of the same type and leaves
    # it open; the interrupted call gives it back, and opens a window of one value.
    local = new_struct("Local")
    arena = bump_cls(1 << 12)
    first = arena.alloc(local)  # a window of one, used up
    tracer, fired = at_line_of(
        BumpArena._alloc_slow, "token = self._begin(", lambda: arena.alloc(local)
    )
    value: Any = traced(tracer, lambda: arena.alloc(local))
    assert len(fired) == 1
    made: Any = fired[0]  # from a window of two: one value made ahead, then given back
    assert type(made) is local and ctypes.addressof(made) == ctypes.addressof(first) + 8
    assert type(value) is local and ctypes.addressof(value) == ctypes.addressof(made) + 8
    assert live_instances(local) == 3  # first, made, value: nothing made ahead
    assert arena.used == 24
    # the next window doubles from one value: two, one made ahead
    after = arena.alloc(local)
    assert after is not None and ctypes.addressof(after) == ctypes.addressof(value) + 8
    assert live_instances(local) == 5 and arena.used == 32
    del first, made, value, after, fired, tracer
    arena.reset()


def test_a_type_aligned_to_no_power_of_two_is_aligned_by_address() -> None:
    """ctypes allows ``_pack_ = 3``: the value's address, not its offset, is a multiple of 3."""

    class Shifted(EagerStore):
        def __init__(self, capacity: int) -> None:
            super().__init__(capacity + 64)
            self.address += (16 - self.address) % 48  # 16 past a multiple of 48
            self.capacity = self.committed = self.extent = capacity

    class Arena(BumpArena):
        _store_type = Shifted

    class Packed(ctypes.Structure):
        _pack_ = 3
        _fields_ = [("a", ctypes.c_char), ("b", ctypes.c_int64)]

    assert ctypes.alignment(Packed) == 3
    arena = Arena(64)
    head = arena.alloc_uninit_slice(Layout(1))
    value = arena.alloc(Packed)
    assert value is not None and ctypes.addressof(value) % 3 == 0
    assert ctypes.addressof(value) - address(head) == 2
    del head, value
