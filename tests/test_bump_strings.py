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
