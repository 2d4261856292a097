"""Rules of ``close()`` every typed arena shares (``linalloc._arena``): a
``KeyboardInterrupt`` from the drop callback of the last value to drop (the oldest)
stops nothing that is left, so the arena closes all the same, then the interrupt
goes on."""

from __future__ import annotations

import ctypes
from typing import Any

import pytest


def test_a_close_interrupted_by_the_last_drop_still_closes(typed_cls: type) -> None:
    """An interrupt from the last drop callback of close() leaves the arena closed."""
    dropped: list[int] = []

    def drop(value: Any) -> None:
        dropped.append(value.value)
        if value.value == 10:
            raise KeyboardInterrupt

    arena = typed_cls(ctypes.c_int64, 8, drop=drop)
    for n in (10, 11, 12):
        arena.alloc(n)
    with pytest.raises(KeyboardInterrupt):
        arena.close()
    assert dropped == [12, 11, 10]
    assert arena.closed is True
    assert repr(arena) == f"<{typed_cls.__name__} closed>"
    with pytest.raises(ValueError, match="^arena is closed$"):
        arena.alloc(1)
    arena.close()  # (idempotent: nothing dropped again, nothing raised)
    assert dropped == [12, 11, 10]
