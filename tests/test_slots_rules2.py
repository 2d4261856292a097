"""Keep-alives carried to the dropper: which entries, when, and the carrying types."""

from __future__ import annotations

import ctypes
import gc
import types
from typing import Any

import pytest

from linalloc import _slots
from linalloc._slots import Cursor, Dropper, Window, carrying_type
from linalloc._views import _SOURCE_KEY

# -- carrying_type: one subclass per slot array type, a bounded cache -----------------------


def test_carrying_type_is_made_once_per_array_type() -> None:
    base = ctypes.c_int64 * 7
    made = carrying_type(base)
    assert made is not base and issubclass(made, base)
    assert made.__name__ == base.__name__
    assert carrying_type(base) is made
    assert _slots._carrying_types[id(base)] == (base, made)
    assert made.__dict__["__del__"] is _slots._carry


def test_carrying_type_cache_is_cleared_when_full() -> None:
    saved = dict(_slots._carrying_types)
    try:
        _slots._carrying_types.clear()
        types = [ctypes.c_int8 * n for n in range(1, 1025)]
        for array in types:
            carrying_type(array)
        assert len(_slots._carrying_types) == 1024
        extra = ctypes.c_int8 * 2000
        carrying_type(extra)
        assert list(_slots._carrying_types) == [id(extra)]
    finally:
        _slots._carrying_types.clear()
        _slots._carrying_types.update(saved)


def test_a_carrying_array_hands_its_entries_to_the_dropper_of_its_source() -> None:
    class Root(bytearray):
        _linalloc_dropper: Any

    class Recorder:
        def __init__(self) -> None:
            self.got: list[dict[str, Any]] = []

        def carry(self, objects: dict[str, Any]) -> None:
            self.got.append(dict(objects))

    recorder = Recorder()
    root = Root(64)
    root._linalloc_dropper = recorder
    array = carrying_type(ctypes.c_void_p * 4).from_buffer(root)
    target = ctypes.c_int64(1)
    array[1] = ctypes.cast(ctypes.pointer(target), ctypes.c_void_p)
    objects = dict(array._objects)
    assert set(objects) > {_SOURCE_KEY}
    del array
    gc.collect()
    assert recorder.got == [objects]


def test_a_carrying_array_without_a_dropper_carries_nothing() -> None:
    root = bytearray(64)
    array = carrying_type(ctypes.c_void_p * 4).from_buffer(root)
    del array  # (no dropper on the source: no error either)
    gc.collect()


# -- Dropper.carry: which entries go to the dropper -----------------------------------------


class _Arena:
    pass


def _dropper(end: int, *, live: bool = False, drop: bool = True, count: int = 0) -> Any:
    arena = _Arena()
    cursor = Cursor(0)
    cursor.win = Window(count, _slots.NOTHING)
    store = types.SimpleNamespace(retired=False)  # (retired when the dropper runs)
    dropper = Dropper(lambda value: None, ctypes.c_int64, store, 0, cursor, lambda: None)
    if live:
        dropper.arena = lambda: arena
    if not drop:
        dropper.drop = None
    dropper.end = end
    return dropper


def _carried(dropper: Any, entries: dict[str, object]) -> list[Any]:
    dropper.carry(entries)
    dropper.cursor.win = Window(0, _slots.NOTHING)  # (nothing for its own __del__ to drop)
    carried: list[Any] = dropper.carried
    return carried


def _entries() -> dict[str, object]:
    return {
        _SOURCE_KEY: "source",
        "1": "slot 1",
        "1:2": "field of slot 2",
        "0:1:2": "nested in slot 2",
        "3": "slot 3",
        "1:a": "slot 10",
        "10": "slot 16",
        "11": "slot 17",
        "2:4": None,
        "linalloc:carried": "ours",
        "linalloc:1f": "ours, hex-like",
        "zz": "not a slot",
    }


def test_carry_keeps_entries_of_slots_below_the_end_and_named_no_slot() -> None:
    dropper = _dropper(3)
    assert _carried(dropper, _entries()) == [
        "slot 1",
        "field of slot 2",
        "nested in slot 2",
        "ours",
        "ours, hex-like",
        "not a slot",
    ]


def test_carry_bounds_are_hex_slot_indices() -> None:
    dropper = _dropper(17)
    carried = _carried(dropper, _entries())
    assert "slot 16" in carried and "slot 17" not in carried and "slot 10" in carried
    assert None not in carried and "source" not in carried  # (never an empty entry)
    carried = _carried(_dropper(16), _entries())
    assert "slot 16" not in carried and "slot 10" in carried
    carried = _carried(_dropper(10), _entries())
    assert "slot 10" not in carried and "slot 3" in carried


def test_carry_with_end_one_keeps_entries_that_name_no_slot() -> None:
    dropper = _dropper(1)
    assert _carried(dropper, _entries()) == ["ours", "ours, hex-like", "not a slot"]


def test_carry_with_end_zero_keeps_only_entries_that_name_no_slot() -> None:
    for live in (False, True):
        dropper = _dropper(0, live=live, count=5)
        assert _carried(dropper, _entries()) == ["ours", "ours, hex-like", "not a slot"]


def test_carry_before_the_drop_uses_the_live_count_once_the_arena_is_gone() -> None:
    dropper = _dropper(-1, count=2)
    assert _carried(dropper, _entries()) == ["slot 1", "ours", "ours, hex-like", "not a slot"]


@pytest.mark.parametrize(
    "live, drop", [(True, True), (False, False), (True, False)], ids=["alive", "detached", "both"]
)
def test_carry_before_the_drop_keeps_nothing_while_the_arena_lives_or_when_detached(
    live: bool, drop: bool
) -> None:
    dropper = _dropper(-1, live=live, drop=drop, count=5)
    assert _carried(dropper, _entries()) == []


# -- through an arena ---------------------------------------------------------------------


class _Target(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int64)]


class _Node(ctypes.Structure):
    _fields_ = [("n", ctypes.c_int64), ("p", ctypes.POINTER(_Target))]


def _targets() -> int:
    return sum(1 for obj in gc.get_objects() if type(obj) is _Target)


def alloc_pointing_at_targets(arena: Any) -> None:
    """Values 0, 1 and 2 of ``_Node`` from ``arena``, pointing at new ``_Target``s 100, 101
    and 102 (nothing else holds them)."""
    for n in range(3):
        target = _Target(100 + n)
        arena.alloc(n).p = ctypes.pointer(target)


def assert_kept_keep_their_targets(kept: list[Any], before: int) -> None:
    """``kept`` holds values 0, 1 and 2 of ``alloc_pointing_at_targets``, and they keep
    their targets alive until they go (``before``: the ``_Target``s that lived before)."""
    assert sorted(value.n for value in kept) == [0, 1, 2]
    assert _targets() == before + 3  # (counted before any is read: they may be freed)
    assert sorted(value.p.contents.x for value in kept) == [100, 101, 102]
    kept.clear()
    gc.collect()
    assert _targets() == before


def test_values_kept_at_collection_keep_their_pointer_targets(typed_cls: type) -> None:
    gc.collect()
    before = _targets()
    kept: list[Any] = []
    arena = typed_cls(_Node, 64, drop=kept.append)
    alloc_pointing_at_targets(arena)
    del arena
    gc.collect()
    assert_kept_keep_their_targets(kept, before)
