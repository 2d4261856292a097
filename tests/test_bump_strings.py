"""String values of a bump arena made one by one with ``from_buffer``.

A ``c_char_p``/``c_wchar_p`` value made with ``from_buffer`` keeps its source as
its whole ``_objects``, which setting the value replaces by the string: the
arena keeps the memory in the value's instance dict instead (``_bump._strings``).
Values of a subclass with a finalizer are made that way too (no window of them
is made ahead), and so are values of a subclass used after the other string type.
"""

from __future__ import annotations

import ctypes
import gc
import sys
from typing import Any

import pytest


class _Name(ctypes.c_char_p):
    def __del__(self) -> None:  # (no window: each value is made with from_buffer)
        pass


class _Text(ctypes.c_wchar_p):
    def __del__(self) -> None:
        pass


def _text(ctype: Any, k: int) -> Any:
    return f"v{k}" if issubclass(ctype, ctypes.c_wchar_p) else f"v{k}".encode()


@pytest.mark.parametrize(
    ("first", "then"), [(_Name, _Text), (_Text, _Name)], ids=["char then wchar", "wchar then char"]
)
def test_values_of_string_subclasses_keep_the_memory_once_set(
    bump_cls: type, first: Any, then: Any
) -> None:
    arena: Any = bump_cls(256)
    kinds = [first, then, first]
    values = [arena.alloc(ctype) for ctype in kinds]
    assert [type(value) for value in values] == kinds
    for k in range(3):
        values[k].value = _text(kinds[k], k)  # ctypes keeps the string in place of the source
    gc.collect()
    assert arena.live_views() == 3
    with pytest.raises(BufferError, match="3 views"):
        arena.reset()
    assert [value.value for value in values] == [_text(kinds[k], k) for k in range(3)]
    del values
    gc.collect()
    arena.reset()


class _Made(ctypes._SimpleCData):  # type: ignore[type-arg]
    """A string type of its own: ctypes' code "z", not a subclass of ``c_char_p``."""

    _type_ = "z"


class _Relabelled(ctypes._SimpleCData):  # type: ignore[type-arg]
    _type_ = "z"


_Relabelled._type_ = "i"  # (ctypes read "z" when it made the type; this changes nothing)


@pytest.mark.parametrize("ctype", [_Made, _Relabelled])
def test_a_type_made_with_the_string_code_keeps_the_memory(bump_cls: type, ctype: Any) -> None:
    _set_then_close(bump_cls(256), ctype, used=8)


def _set_then_close(arena: Any, ctype: Any, used: int) -> None:
    """A value of ``ctype``, set to a string: the arena stays viewed until it is gone.

    ``used``: what the arena's ``used`` is once the value is made.
    """
    value = arena.alloc(ctype)
    assert value is not None and arena.used == used
    value.value = b"set"  # (ctypes replaces the value's one keep-alive by the string)
    gc.collect()
    assert arena.live_views() == 1
    with pytest.raises(BufferError):
        arena.close()
    assert value.value == b"set"
    del value
    gc.collect()
    arena.close()


def test_a_string_type_without_an_instance_dict_is_refused_changing_nothing(
    bump_cls: type,
) -> None:
    class Bare(ctypes._SimpleCData):  # type: ignore[type-arg]
        __slots__ = ()
        _type_ = "z"

    arena = bump_cls(256)
    arena.alloc(ctypes.c_int8)
    used = arena.used
    with pytest.raises(TypeError, match="no instance dict"):
        arena.alloc(Bare)
    assert arena.used == used
    assert arena.alloc(ctypes.c_int8) is not None


def test_the_string_types_cache_stays_bounded(bump_cls: type) -> None:
    from linalloc import _bump

    arena = bump_cls(1 << 16)
    for k in range(_bump._MAX_TYPES + 10):
        kind = type(f"Int{k}", (ctypes.c_int32,), {})  # (a from_buffer value each)
        assert arena.alloc(kind) is not None
        if k % 1000 == 999:
            arena.reset()
    assert len(_bump._strings) <= _bump._MAX_TYPES


class _Borrowed(ctypes.c_char_p):
    __dict__ = ctypes.c_wchar_p.__dict__["__dict__"]  # (not its own)

    def __del__(self) -> None:
        pass


class _Faking(type(ctypes.c_char_p)):  # type: ignore[misc]
    """Makes plain integers when asked for values over anything but an arena's memory."""

    def from_buffer(cls, source: Any, offset: int = 0) -> Any:
        if isinstance(source, bytearray):
            return ctypes.c_int64.from_buffer(source, offset)
        return super().from_buffer(source, offset)


class _Disguised(ctypes.c_char_p, metaclass=_Faking):
    def __del__(self) -> None:
        pass


@pytest.mark.parametrize("ctype", [_Borrowed, _Disguised])
def test_a_string_type_cannot_talk_the_arena_out_of_keeping_its_memory(
    bump_cls: type, ctype: Any
) -> None:
    """Neither a ``__dict__`` of another class's nor a metaclass's ``from_buffer``."""
    arena = bump_cls(256)
    arena.alloc(ctypes.c_int8)
    _set_then_close(arena, ctype, used=16)


class _LyingString(ctypes.c_char_p):
    """A string type whose values' ``__buffer__`` (Python 3.12 on) answers an int's."""

    def __buffer__(self, flags: int) -> memoryview:
        return memoryview(ctypes.c_int64())

    def __del__(self) -> None:  # (a finalizer: each value by from_buffer, no window)
        pass


@pytest.mark.skipif(sys.version_info < (3, 12), reason="__buffer__ is Python 3.12's")
def test_a_string_type_whose_buffer_lies_still_keeps_the_arena_viewed(bump_cls: type) -> None:
    """Its code is read from ctypes' own buffer of an array of it: taken for a plain
    pointer, its value lost the arena's memory once a string was set (``reset()``
    accepted, the value over memory handed out again)."""
    assert memoryview(_LyingString()).format == "<q"  # (the lie)
    arena = bump_cls(64)
    name = arena.alloc(_LyingString)
    name.value = b"kept"
    with pytest.raises(BufferError):
        arena.reset()
    assert name.value == b"kept"
    del name
    arena.reset()
