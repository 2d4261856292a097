"""Rules of the untyped arenas (``linalloc._bump``) and of ``linalloc.cast``, checked
one by one: how windows of ``alloc(ctype)`` values open, double and close, which
types never get one, the cache of that decision, alignment of the address (not of
the offset) in a buffer less aligned than the type, parts after a recommit, links
made through a later row, busy marks while a window opens or closes, messages, and
what ``cast`` keeps alive."""

from __future__ import annotations

import ctypes
import gc
import re
from typing import Any

import pytest
from conftest import at_line_of, run_python, traced

import linalloc
import linalloc._bump as bump_module
from linalloc import BumpArena, BumpArenaLazy, Layout, address
from linalloc._store import EagerStore

BUSY = (
    "the arena is busy: a drop callback cannot allocate from, rewind, reset or close "
    "the arena it is dropping from, nor can code that runs in the middle of one of its "
    "calls (a finalizer, a signal handler)"
)


def exactly(text: str) -> str:
    return "^" + re.escape(text) + "$"


class Cell(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int64)]


class Other(ctypes.Structure):
    _fields_ = [("y", ctypes.c_int64)]


def live_instances(ctype: type) -> int:
    """How many instances of ``ctype`` exist: those handed out and those made ahead."""
    gc.collect()
    return sum(1 for obj in gc.get_objects() if type(obj) is ctype)


def from_a_row(value: Any) -> bool:
    base = value._b_base_
    return isinstance(base, ctypes.Array) and ctypes.addressof(value) >= ctypes.addressof(base)


# -- windows -------------------------------------------------------------------


def test_windows_start_at_one_value_and_double_while_used_up(bump_cls: type) -> None:
    local: Any = type("Local", (ctypes.Structure,), {"_fields_": [("x", ctypes.c_int64)]})
    arena = bump_cls(1 << 12)
    values = [arena.alloc(local)]
    assert live_instances(local) == 1  # a window of one: nothing made ahead
    values.append(arena.alloc(local))  # a window of two: one made ahead
    assert live_instances(local) == 3
    values.append(arena.alloc(local))  # taken from it
    assert live_instances(local) == 3
    values.append(arena.alloc(local))  # a window of four: three made ahead
    assert live_instances(local) == 7
    assert arena.used == 32
    base = ctypes.addressof(values[0])
    assert [ctypes.addressof(v) - base for v in values] == [0, 8, 16, 24]
    # another call gives the values made ahead back, and the next window starts small
    view = arena.alloc_uninit_slice(Layout(8))
    assert view is not None and address(view) == base + 32
    assert live_instances(local) == 4 and arena.used == 40
    values.append(arena.alloc(local))
    assert live_instances(local) == 5 and arena.used == 48
    del view, values
    arena.reset()


def test_a_window_of_another_type_does_not_grow_the_next_one(bump_cls: type) -> None:
    first: Any = type("First", (ctypes.Structure,), {"_fields_": [("x", ctypes.c_int64)]})
    second: Any = type("Second", (ctypes.Structure,), {"_fields_": [("x", ctypes.c_int64)]})
    arena = bump_cls(1 << 12)
    a = arena.alloc(first)
    b = arena.alloc(first)  # a window of two: one value of ``first`` made ahead
    assert live_instances(first) == 3
    c = arena.alloc(second)  # not one of the window's values
    assert type(c) is second and type(a) is first and type(b) is first
    assert ctypes.addressof(c) == ctypes.addressof(b) + 8 and arena.used == 24
    assert live_instances(first) == 2  # the value made ahead was given back
    assert live_instances(second) == 1  # and the new window starts at one value
    d = arena.alloc(first)  # after a window of ``second`` of one value: one value again
    assert type(d) is first and live_instances(first) == 3
    assert ctypes.addressof(d) == ctypes.addressof(c) + 8
    del a, b, c, d
    arena.reset()


def test_a_slice_that_fills_the_committed_memory_exactly_keeps_the_window_growing() -> None:
    local: Any = type("Local", (ctypes.Structure,), {"_fields_": [("x", ctypes.c_int64)]})
    arena = BumpArenaLazy(1 << 20)
    step = arena.commit_step
    values: list[Any] = [arena.alloc(local) for _ in range(3)]  # windows of one, then two
    assert live_instances(local) == 3 and arena.used == 24
    rest = arena.alloc_uninit_slice(Layout(step - 24))
    assert rest is not None and arena.used == step == arena.committed
    values.append(arena.alloc(local))  # the window doubles: four, three made ahead
    assert arena.committed == 2 * step and arena.used == step + 8
    assert ctypes.addressof(values[-1]) == address(rest) + step - 24
    assert live_instances(local) == 7
    del rest, values
    arena.reset()


def test_a_finalizer_type_never_has_a_value_made_that_is_not_handed_out(bump_cls: type) -> None:
    deaths: list[int] = []

    class Final(ctypes.Structure):
        _fields_ = [("x", ctypes.c_int64)]

        def __del__(self) -> None:
            deaths.append(1)

    arena = bump_cls(1 << 12)
    values = [arena.alloc(Final) for _ in range(5)]
    assert all(type(v) is Final and not from_a_row(v) for v in values)
    base = ctypes.addressof(values[0])
    assert [ctypes.addressof(v) - base for v in values] == [0, 8, 16, 24, 32]
    after = len(deaths)  # (what deciding if the type can have windows made and let go)
    view = arena.alloc_uninit_slice(Layout(8))  # would give back values made ahead
    assert len(deaths) == after and arena.used == 48
    del view, values
    gc.collect()
    assert len(deaths) == after + 5  # only the values handed out ever die
    arena.reset()


def test_whether_a_type_can_have_windows_is_decided_once(bump_cls: type) -> None:
    # Deciding it makes one value of the type (and lets it go): a finalizer sees it.
    deaths: list[int] = []

    class Final(ctypes.Structure):
        _fields_ = [("x", ctypes.c_int64)]

        def __del__(self) -> None:
            deaths.append(1)

    arena = bump_cls(1 << 12)
    first = arena.alloc(Final)
    assert len(deaths) == 1
    second = arena.alloc(Final)
    third = arena.alloc(Final)
    assert len(deaths) == 1  # decided once: no value made again
    assert first is not None and second is not None and third is not None
    del first, second, third
    arena.reset()


def test_the_decision_is_remembered_for_the_last_4096_types(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bump_module, "_windowed", {})  # (starts empty)
    deaths: list[int] = []

    class Final(ctypes.Structure):
        _fields_ = [("x", ctypes.c_int64)]

        def __del__(self) -> None:
            deaths.append(1)

    others = [
        type(f"B{i}", (ctypes.Structure,), {"_fields_": [("b", ctypes.c_uint8)]})
        for i in range(4096)
    ]
    arena = BumpArena(1 << 14)
    kept = [arena.alloc(Final)]
    assert len(deaths) == 1
    for cls in others[:4095]:  # 4096 types decided
        arena.alloc(cls)
    kept.append(arena.alloc(Final))
    assert len(deaths) == 1  # still remembered
    arena.alloc(others[4095])  # the 4097th type: the older ones are forgotten
    kept.append(arena.alloc(Final))
    assert len(deaths) == 2  # decided again
    assert all(type(v) is Final for v in kept)
    del kept
    arena.reset()


def test_deciding_if_a_type_can_have_windows_takes_one_value_of_memory() -> None:
    # A value of 256 MiB under an address-space limit of the arena, the value and
    # half as much again: alloc() makes no more than one other value of the type.
    result = run_python(
        """
        import ctypes, resource, linalloc
        size = 1 << 28
        big = ctypes.c_char * size
        arena = linalloc.BumpArena(size)
        def vm_size():
            with open("/proc/self/status") as status:
                for line in status:
                    if line.startswith("VmSize:"):
                        return int(line.split()[1]) * 1024
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (vm_size() + size + size // 2, hard))
        value = arena.alloc(big)
        print(type(value) is big, arena.used == size)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]


# -- alignment of addresses -------------------------------------------------------


class _ShiftedStore(EagerStore):
    """A buffer whose address is 8 bytes past a multiple of 16 (as malloc may give)."""

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity + 24)
        self.address += (8 - self.address) % 16
        self.capacity = self.committed = self.extent = capacity


class _ShiftedArena(BumpArena):
    _store_type = _ShiftedStore


@pytest.mark.skipif(ctypes.alignment(ctypes.c_longdouble) != 16, reason="long double not 16")
def test_values_are_aligned_by_address_in_a_buffer_less_aligned_than_their_type() -> None:
    arena = _ShiftedArena(128)
    head = arena.alloc_uninit_slice(Layout(4))
    assert head is not None
    base = address(head)
    assert base % 16 == 8
    value = arena.alloc(ctypes.c_longdouble)  # base + 4 is 12 past a multiple of 16
    assert value is not None and ctypes.addressof(value) == base + 8
    assert arena.used == 24
    tail = arena.alloc_uninit_slice(Layout(4))
    assert tail is not None and address(tail) == base + 24
    array = arena.alloc_array(ctypes.c_longdouble, 2)  # base + 28: 4 past a multiple of 16
    assert array is not None and ctypes.addressof(array) == base + 40
    assert arena.used == 72
    array[0] = 1.5
    value.value = 2.5
    assert (array[0], value.value) == (1.5, 2.5)
    del head, value, tail, array
    arena.reset()


# -- parts -------------------------------------------------------------------------


def test_a_recommit_of_trimmed_pages_keeps_the_rows() -> None:
    arena = BumpArenaLazy(1 << 24)
    step = arena.commit_step
    page = linalloc.page_size()
    scratch = arena.alloc_uninit_slice(Layout(2 * step))
    del scratch
    arena.reset()
    first = arena.alloc(Cell)
    assert first is not None and from_a_row(first)
    arena.trim()
    assert arena.committed == page
    gap = arena.alloc_uninit_slice(Layout(page))  # commits again what was trimmed
    assert gap is not None and arena.committed == step
    second = arena.alloc(Cell)
    assert second is not None and from_a_row(second)
    assert ctypes.addressof(second) == ctypes.addressof(first) + 8 + page
    assert second._b_base_ is first._b_base_  # the same row: the part did not change
    del first, second, gap
    arena.reset()


# -- links made through a later row -------------------------------------------------


class Node(ctypes.Structure):
    pass


Node._fields_ = [("value", ctypes.c_int64), ("next", ctypes.POINTER(Node))]


def test_a_link_between_values_before_a_checkpoint_made_through_a_later_row(
    bump_cls: type,
) -> None:
    arena = bump_cls(256)
    head = arena.alloc(Node)
    assert head is not None
    head.value = 7
    cp = arena.checkpoint()
    later = arena.alloc(Node)
    assert later is not None and from_a_row(later)
    early = later._b_base_[0]  # the memory of ``head``, through the row of the later part
    assert ctypes.addressof(early) == ctypes.addressof(head)
    head.next = ctypes.pointer(early)
    del later, early
    arena.rewind(cp)  # what the link holds lies before the checkpoint
    assert arena.used == 16 and head.next.contents.value == 7
    again = arena.alloc(Node)
    assert again is not None and ctypes.addressof(again) == ctypes.addressof(head) + 16
    del again
    arena.rewind(cp)
    del head
    arena.reset()
    assert arena.used == 0


# -- busy while a window opens or closes ---------------------------------------------


def test_a_call_closing_a_window_cannot_be_re_entered(bump_cls: type) -> None:
    arena = bump_cls(1 << 12)
    a = arena.alloc(Cell)
    b = arena.alloc(Cell)  # a window of two: one value made ahead
    assert a is not None and b is not None
    tracer, fired = at_line_of(
        BumpArena._close_window,
        "pending: list[Any] = []",
        lambda: arena.alloc_uninit_slice(Layout(8)),
    )
    view = traced(tracer, lambda: arena.alloc_uninit_slice(Layout(8)))
    assert fired == [("RuntimeError", BUSY)]
    assert isinstance(view, memoryview) and address(view) == ctypes.addressof(b) + 8
    assert arena.used == 24 and arena.live_views() == 3
    del a, b, view
    arena.reset()


@pytest.mark.parametrize("ctype", [Cell, ctypes.c_int64], ids=["window", "from_buffer"])
def test_an_alloc_outside_a_window_cannot_be_re_entered(bump_cls: type, ctype: Any) -> None:
    arena = bump_cls(1 << 12)
    tracer, fired = at_line_of(
        BumpArena._alloc_slow,
        "start = self._bump(size, align)",
        lambda: arena.alloc_uninit_slice(Layout(8)),
    )
    value: Any = traced(tracer, lambda: arena.alloc(ctype))
    assert fired == [("RuntimeError", BUSY)]
    assert type(value) is ctype and arena.used == 8 and arena.live_views() == 1
    after = arena.alloc_uninit_slice(Layout(8))
    assert after is not None and address(after) == ctypes.addressof(value) + 8
    del value, after
    arena.reset()


def test_a_window_opened_after_an_interrupting_call_closed_one_starts_small(
    bump_cls: type,
) -> None:
    local: Any = type("Local", (ctypes.Structure,), {"_fields_": [("x", ctypes.c_int64)]})
    arena = bump_cls(1 << 12)
    first = arena.alloc(local)  # a window of one, used up

    def interrupt() -> object:
        made = arena.alloc(local)  # a window of two: one made ahead
        view = arena.alloc_uninit_slice(Layout(8))  # gives it back: start small again
        return (made, view)

    tracer, fired = at_line_of(BumpArena._alloc_slow, "token = self._begin(", interrupt)
    value: Any = traced(tracer, lambda: arena.alloc(local))
    assert len(fired) == 1
    entry: Any = fired[0]
    made, view = entry
    assert type(value) is local and ctypes.addressof(value) == address(view) + 8
    assert live_instances(local) == 3  # first, made, value: nothing made ahead
    assert arena.used == 32
    del first, made, view, value, fired, tracer, entry
    arena.reset()


# -- messages ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, text",
    [
        (12, "not int"),
        ("text", "not str: encode it first"),
        (None, "not NoneType"),
        ([1, 2], "not list"),
    ],
    ids=["int", "str", "None", "list"],
)
def test_alloc_copy_of_what_is_no_buffer_has_the_whole_message(
    bump_cls: type, data: object, text: str
) -> None:
    arena = bump_cls(64)
    message = f"alloc_copy() needs a buffer (bytes, memoryview...), {text}"
    with pytest.raises(TypeError, match=exactly(message)):
        arena.alloc_copy(data)
    assert arena.used == 0


@pytest.mark.parametrize("layout, name", [(16, "int"), ((16, 8), "tuple"), (None, "NoneType")])
def test_alloc_uninit_slice_of_what_is_no_layout_has_the_whole_message(
    bump_cls: type, layout: object, name: str
) -> None:
    arena = bump_cls(64)
    with pytest.raises(TypeError, match=exactly(f"layout must be a Layout, not {name}")):
        arena.alloc_uninit_slice(layout)
    assert arena.used == 0


# -- cast --------------------------------------------------------------------------


class _Hidden(ctypes.c_int32):
    """A simple type whose instances hide ``_type_`` (it stays on the class)."""

    def __getattribute__(self, name: str) -> Any:
        if name == "_type_":
            raise AttributeError(name)
        return ctypes.c_int32.__getattribute__(self, name)


def test_cast_of_a_simple_value_hiding_its_type_code_points_at_the_value() -> None:
    arena = BumpArena(64)
    raw: Any = arena.alloc_array(ctypes.c_int32, 1)
    value = _Hidden.from_buffer(raw)
    value.value = 41
    p = linalloc.cast(value, ctypes.POINTER(ctypes.c_int32))
    assert ctypes.cast(p, ctypes.c_void_p).value == ctypes.addressof(raw)
    assert p[0] == 41
    del raw, value
    assert arena.live_views() == 1
    del p
    arena.reset()


class _NoKeepAlive(ctypes.c_void_p):
    _objects = None  # (hides ctypes' keep-alive dict)


def test_cast_to_a_type_that_hides_its_keep_alive_still_keeps_the_source() -> None:
    """The keep-alive dict is ctypes' own, whatever the class says ``_objects`` is."""
    arena = BumpArena(64)
    cell = arena.alloc(ctypes.c_int64)
    p = linalloc.cast(cell, _NoKeepAlive)
    del cell
    assert arena.live_views() == 1
    with pytest.raises(BufferError):
        arena.reset()
    del p
    gc.collect()
    arena.reset()


def test_casts_sharing_one_keep_alive_dict_keep_every_source() -> None:
    shared: dict[Any, Any] = {}
    shared_type = type("Shared", (ctypes.c_void_p,), {"_objects": shared})
    arena = BumpArena(64)
    a: Any = arena.alloc(ctypes.c_int64)
    b: Any = arena.alloc(ctypes.c_int64)
    pa: Any = linalloc.cast(a, shared_type)
    pb: Any = linalloc.cast(b, shared_type)
    assert (pa.value, pb.value) == (ctypes.addressof(a), ctypes.addressof(b))
    del a, b
    assert arena.live_views() == 2  # each result's source is kept
    del pa, pb
    gc.collect()
    assert arena.live_views() == 0 and shared == {}  # (ctypes' own dicts, not the class's)
    arena.reset()
