"""An arena is initialized once: a second ``__init__`` (from user code, a drop callback
or a type's code run in the middle of a call) is refused and changes nothing, so it
cannot put a new store under the values and running calls of the first."""

from __future__ import annotations

import ctypes
from typing import Any

import pytest
from conftest import BUMP_KINDS, TYPED_KINDS

from linalloc import BumpArena


def _make(cls: type) -> tuple[Any, Any, tuple[Any, ...]]:
    """(arena, a live value of it, the arguments it was made with)."""
    args: tuple[Any, ...] = (256,) if cls in BUMP_KINDS else (ctypes.c_int64, 8)
    arena = cls(*args)
    value = arena.alloc(ctypes.c_int64) if cls in BUMP_KINDS else arena.alloc()
    return arena, value, args


@pytest.mark.parametrize("cls", BUMP_KINDS + TYPED_KINDS, ids=lambda c: c.__name__)
def test_a_second_init_is_refused_and_changes_nothing(cls: type) -> None:
    """__init__ again on a live arena: RuntimeError; its value still counts, used unchanged."""
    arena, value, args = _make(cls)
    value.value = 7
    used, store = arena.used, arena._store
    with pytest.raises(RuntimeError, match=r"__init__\(\) runs once"):
        arena.__init__(*args)
    assert arena.used == used and arena._store is store
    with pytest.raises(BufferError):
        arena.reset()  # the value is still counted
    other = arena.alloc(ctypes.c_int64) if cls in BUMP_KINDS else arena.alloc()
    assert ctypes.addressof(other) != ctypes.addressof(value) and value.value == 7
    del value, other
    arena.reset()
    arena.close()
    with pytest.raises(RuntimeError, match=r"__init__\(\) runs once"):
        arena.__init__(*args)  # a closed arena is not brought back either
    assert arena.closed


def test_an_init_from_a_drop_callback_is_refused(typed_cls: type) -> None:
    """A drop callback calling __init__ in the middle of reset() gets RuntimeError."""
    raised: list[str] = []  # (not the errors: their tracebacks hold the values)

    def drop(value: Any) -> None:
        try:
            arena.__init__(ctypes.c_int64, 8, drop=drop)
        except RuntimeError as error:
            raised.append(str(error))

    arena = typed_cls(ctypes.c_int64, 8, drop=drop)
    arena.alloc(1)
    arena.alloc(2)
    arena.reset()
    assert len(raised) == 2 and "runs once" in raised[0] and len(arena) == 0
    first = arena.alloc(3)
    assert first.value == 3 and len(arena) == 1


def test_an_init_from_a_types_code_in_the_middle_of_alloc_is_refused() -> None:
    """A metaclass __name__ run while alloc() opens a window cannot re-initialize the arena."""
    raised: list[str] = []

    class Meta(type(ctypes.Structure)):  # type: ignore[misc]
        @property
        def __name__(cls) -> str:  # type: ignore[override]
            try:
                arena.__init__(256)
            except RuntimeError as error:
                raised.append(str(error))
            return "Point"

    class Point(ctypes.Structure, metaclass=Meta):
        _fields_ = [("x", ctypes.c_int64)]

    arena = BumpArena(256)
    store = arena._store
    values = [arena.alloc(Point) for _ in range(3)]
    assert raised and arena._store is store and arena.used == 24
    assert len({ctypes.addressof(v) for v in values}) == 3
