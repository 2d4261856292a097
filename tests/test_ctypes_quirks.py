"""Values whose keep-alives ctypes keeps in an unusual place.

- A simple value made with ``from_buffer`` keeps its source as its whole
  ``_objects``; setting a ``c_char_p`` or ``c_wchar_p`` value *replaces* it
  with the string. A bump arena's values of these types are made so that
  they keep the arena's memory whatever their value is set to.
- A memoryview that is a slice of the arena's memory, kept by ctypes for a
  pointer (``ctypes.cast`` of an object made over an ``alloc_uninit_slice``),
  holds that slice of memory: a count places it where the slice lies.
"""

from __future__ import annotations

import ctypes
import gc
import sys
from typing import Any

import pytest
from conftest import run_python

from linalloc import Layout

P = ctypes.POINTER(ctypes.c_int64)


class Box(ctypes.Structure):
    """A value holding a pointer (to memory of the arena, in these tests)."""

    _fields_ = [("p", P), ("x", ctypes.c_int64)]


@pytest.mark.parametrize(
    ("ctype", "text"), [(ctypes.c_char_p, b"hello"), (ctypes.c_wchar_p, "hello")]
)
def test_a_string_value_set_after_allocation_keeps_the_arena_viewed(
    bump_cls: type, ctype: Any, text: Any
) -> None:
    arena = bump_cls(256)
    value = arena.alloc(ctype)
    assert isinstance(value, ctype)
    value.value = text  # ctypes keeps the string: the value still keeps the memory
    gc.collect()
    assert arena.live_views() == 1
    with pytest.raises(BufferError):
        arena.reset()
    with pytest.raises(BufferError):
        arena.close()
    assert value.value == text
    fresh = arena.alloc(ctypes.c_int64)
    assert ctypes.addressof(fresh) != ctypes.addressof(value)
    del fresh
    value.value = None
    assert arena.live_views() == 1
    del value
    gc.collect()
    arena.reset()


@pytest.mark.parametrize("kind", ["BumpArena", "BumpArenaLazy"])
def test_a_string_value_keeps_the_memory_once_the_arena_is_gone(kind: str) -> None:
    # (in a child: memory released under the value would crash it)
    result = run_python(
        f"""
        import ctypes, gc
        import linalloc
        arena = linalloc.{kind}(256)
        value = arena.alloc(ctypes.c_char_p)
        value.value = b"still here"
        address = ctypes.addressof(value)
        del arena
        gc.collect()
        other = linalloc.{kind}(256)
        junk = [other.alloc(ctypes.c_int64) for _ in range(32)]
        for item in junk:
            item.value = -1
        assert all(ctypes.addressof(item) != address for item in junk)
        assert value.value == b"still here", value.value
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"


def test_a_copy_of_a_string_value_keeps_its_string_when_the_value_changes(
    bump_cls: type,
) -> None:
    """As for a plain ``c_char_p``: the copy keeps the string itself, not shared keep-alives."""

    class Named(ctypes.Structure):
        _fields_ = [("s", ctypes.c_char_p)]

    arena = bump_cls(256)
    value = arena.alloc(ctypes.c_char_p)
    text = bytes([65] * 60)  # (made here: only this test refers to it)
    value.value = text
    box = Named()  # outside the arena
    box.s = value  # by value: ctypes keeps what `value` keeps for the copy
    value.value = b"x"
    gc.collect()
    assert sys.getrefcount(text) == 3  # this frame, the call's argument, and `box`
    assert box.s == text
    del box
    assert sys.getrefcount(text) == 2
    assert arena.live_views() == 1
    del value
    arena.reset()


def test_a_string_value_keeps_the_memory_through_many_changes(bump_cls: type) -> None:
    arena = bump_cls(256)
    value = arena.alloc(ctypes.c_wchar_p)
    for n in range(50):
        value.value = str(n) * 10
        if n % 10 == 0:
            with pytest.raises(BufferError):
                arena.reset()
    assert value.value == "49" * 10
    assert arena.live_views() == 1
    del value
    arena.reset()


def test_a_rewind_does_not_take_a_slice_past_the_checkpoint_for_its_own_link(
    bump_cls: type,
) -> None:
    """Each count refuses on its own (a later recount must not be what catches it)."""
    arena = bump_cls(4096)
    box = arena.alloc(Box)
    cp = arena.checkpoint()
    raw = arena.alloc_uninit_slice(Layout.from_size_align(8, 8))
    box.p = ctypes.cast((ctypes.c_int64 * 0).from_buffer(raw), P)
    del raw
    gc.collect()
    since = arena._region_of(cp)
    assert since == 1
    assert arena._unlinked_views(since) == 1  # the link from before the checkpoint
    assert arena._unlinked_views(since) == 1  # (and again, once a count put it back)
    del box
    arena.reset()


def test_a_pointer_kept_by_a_slice_after_a_checkpoint_stops_the_rewind(bump_cls: type) -> None:
    arena = bump_cls(4096)
    box = arena.alloc(Box)
    cp = arena.checkpoint()
    raw = arena.alloc_uninit_slice(Layout.from_size_align(8, 8))
    raw[:] = (1234).to_bytes(8, "little")
    empty = (ctypes.c_int64 * 0).from_buffer(raw)  # keeps only a memoryview of `raw`
    box.p = ctypes.cast(empty, P)  # box.p's keep-alive: that memoryview (a slice)
    del empty, raw
    gc.collect()
    for _ in range(2):
        assert arena.live_views() == 1  # `box`
        with pytest.raises(BufferError):
            arena.rewind(cp)  # box.p would point at what comes next
        assert box.p[0] == 1234
    box.p = P()
    gc.collect()
    arena.rewind(cp)
    del box
    arena.reset()


def test_a_pointer_kept_by_a_slice_before_a_checkpoint_lets_the_rewind_go(bump_cls: type) -> None:
    arena = bump_cls(4096)
    raw = arena.alloc_uninit_slice(Layout.from_size_align(8, 8))
    raw[:] = (1234).to_bytes(8, "little")
    cp = arena.checkpoint()
    box = arena.alloc(Box)
    box.p = ctypes.cast((ctypes.c_int64 * 0).from_buffer(raw), P)
    del raw
    keeper = arena.alloc(Box)
    keeper.p = ctypes.cast((ctypes.c_int64 * 0).from_buffer(memoryview(box).cast("B")), P)
    del box, keeper
    gc.collect()
    arena.rewind(cp)  # the links lie in the memory freed, or point before it
    arena.reset()


def test_string_values_are_plain_ones_and_links_to_them_count_until_cleared(
    bump_cls: type,
) -> None:
    """Their instance dict keeps the memory: a link to one counts, as to a value with attributes."""
    arena = bump_cls(256)
    first, second = arena.alloc(ctypes.c_char_p), arena.alloc(ctypes.c_char_p)
    assert type(first) is ctypes.c_char_p
    first.value = b"name"
    assert repr(first) == repr(ctypes.c_char_p.from_buffer_copy(first))

    class Holder(ctypes.Structure):
        _fields_ = [("p", ctypes.POINTER(ctypes.c_char_p))]

    holder = arena.alloc(Holder)
    holder.p = ctypes.pointer(second)  # (a plain one: the field takes its pointer)
    del second
    gc.collect()
    assert arena.live_views() == 3  # `first`, `holder`, and the link
    holder.p = ctypes.POINTER(ctypes.c_char_p)()
    gc.collect()
    assert arena.live_views() == 2
    del first, holder
    arena.reset()


def test_a_string_subclass_with_its_own_dict_property_keeps_the_memory(bump_cls: type) -> None:
    class Lying(ctypes.c_char_p):
        @property
        def __dict__(self) -> dict[str, Any]:  # type: ignore[override]
            return {}  # (a throwaway: the arena must not keep the memory in it)

    arena = bump_cls(256)
    value = arena.alloc(Lying)
    assert type(value) is Lying
    value.value = b"set"
    gc.collect()
    with pytest.raises(BufferError):
        arena.reset()
    assert value.value == b"set"
    del value
    arena.reset()


@pytest.mark.parametrize("ctype", [ctypes.c_char_p, ctypes.c_wchar_p, ctypes.c_void_p])
@pytest.mark.parametrize("how", ["copy", "deepcopy", "pickle"])
def test_pointer_values_are_not_copied_or_pickled_as_plain_ones_are_not(
    bump_cls: type, typed_cls: type, ctype: Any, how: str
) -> None:
    """A copy would hold the address and keep nothing alive."""
    import copy
    import pickle

    make = {
        "copy": copy.copy,
        "deepcopy": copy.deepcopy,
        "pickle": lambda value: pickle.loads(pickle.dumps(value)),
    }[how]
    with pytest.raises(ValueError, match="containing pointers cannot be pickled"):
        make(ctype())  # (as ctypes itself does)
    bump, typed = bump_cls(64), typed_cls(ctype, 4)
    for value in (bump.alloc(ctype), typed.alloc()):
        with pytest.raises(ValueError, match="containing pointers cannot be pickled"):
            make(value)


def _kept_by_a_slice(arena: Any, view: Any) -> Any:
    """A pointer whose only keep-alive is a memoryview of ``view`` (a slice of the arena)."""
    return ctypes.cast((ctypes.c_int64 * 0).from_buffer(view), P)


def test_a_pointer_kept_by_an_empty_slice_or_the_last_one_is_the_arenas_own(
    bump_cls: type,
) -> None:
    arena = bump_cls(64)
    box = arena.alloc(Box)
    empty = arena.alloc_uninit_slice(Layout.from_size_align(0, 1))
    arena.alloc_uninit_slice(Layout(40))
    last = arena.alloc_uninit_slice(Layout.from_size_align(8, 8))  # (ends where the arena does)
    assert arena.used == arena.capacity
    box.p = _kept_by_a_slice(arena, empty)
    assert arena.live_views() == 3  # box, and the two slices
    del empty
    assert arena.live_views() == 2  # (the link to the empty slice is the arena's own)
    box.p = _kept_by_a_slice(arena, last)
    del last
    gc.collect()
    assert arena.live_views() == 1  # box only
    del box
    arena.reset()


class _Two(ctypes.Structure):
    _fields_ = [("later", P), ("earlier", P)]


class _Holder(ctypes.Structure):
    _fields_ = [("two", _Two)]


def test_a_copy_holding_a_slice_past_the_checkpoint_beside_an_own_link_stops_the_rewind(
    bump_cls: type,
) -> None:
    arena = bump_cls(4096)
    holder = arena.alloc(_Holder)
    earlier = arena.alloc(ctypes.c_int64)
    cp = arena.checkpoint()
    raw = arena.alloc_uninit_slice(Layout.from_size_align(8, 8))
    raw[:] = (1234).to_bytes(8, "little")
    # by value: one entry holds both keep-alives (the slice's, and the own link's)
    holder.two = _Two(_kept_by_a_slice(arena, raw), ctypes.pointer(earlier))
    del raw, earlier
    gc.collect()
    with pytest.raises(BufferError, match="after the checkpoint"):
        arena.rewind(cp)
    assert holder.two.later[0] == 1234
    holder.two = _Two()
    gc.collect()
    arena.rewind(cp)
    del holder
    arena.reset()
