"""Exact errors of the typed arenas' constructors and counts, with room and when full.

``alloc(*args)`` rewords what ``ctype(*args)`` raises ("cannot build a Point from
...: ..."), and a full arena still checks the arguments, with the same message.
``alloc_many(n)`` names its argument ``n``. Every call ctypes refuses changes
nothing; a Python ``__init__`` that raises leaves its slot used (its frame, in
the traceback, holds the failed value).
"""

from __future__ import annotations

import ctypes
import re
from typing import Any

import pytest


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int32), ("y", ctypes.c_int32)]


Pair = ctypes.c_int32 * 2

#: (ctype, args, kwargs, exception type, message) of constructors ctypes refuses.
BAD_CONSTRUCTORS = [
    (
        Point,
        ("a",),
        {},
        TypeError,
        "cannot build a Point from ('a',): 'str' object cannot be interpreted as an integer",
    ),
    (
        Point,
        (1, 2, 3),
        {},
        TypeError,
        "cannot build a Point from (1, 2, 3): too many initializers",
    ),
    (
        Point,
        (1,),
        {"x": 2},
        TypeError,
        "cannot build a Point from (1,): duplicate values for field 'x'",
    ),
    (
        Point,
        (),
        {"y": "b"},
        TypeError,
        "cannot build a Point from (): 'str' object cannot be interpreted as an integer",
    ),
    (
        Pair,
        (1, 2, 3),
        {},
        TypeError,
        "too many initializers: c_int_Array_2 holds 2 elements, got 3",
    ),
]


def _full(typed_cls: type, ctype: Any, capacity: int) -> tuple[Any, list[Any]]:
    arena = typed_cls(ctype, capacity)
    values = [arena.alloc() for _ in range(capacity)]
    assert all(v is not None for v in values) and arena.alloc() is None
    return arena, values


@pytest.mark.parametrize(("ctype", "args", "kwargs", "kind", "message"), BAD_CONSTRUCTORS)
@pytest.mark.parametrize("capacity", [0, 1, 2])
def test_full_arena_checks_constructor_arguments_with_the_exact_message(
    typed_cls: type,
    ctype: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    kind: type[BaseException],
    message: str,
    capacity: int,
) -> None:
    arena, values = _full(typed_cls, ctype, capacity)
    with pytest.raises(kind, match="^" + re.escape(message) + "$"):
        arena.alloc(*args, **kwargs)
    assert len(arena) == capacity and arena.used == capacity * ctypes.sizeof(ctype)
    assert arena.alloc() is None and arena.alloc(1, y=2) is None  # valid ones: None
    assert len(arena) == capacity
    del values
    arena.close()


@pytest.mark.parametrize(("ctype", "args", "kwargs", "kind", "message"), BAD_CONSTRUCTORS)
def test_constructor_error_with_room_has_the_same_exact_message(
    typed_cls: type,
    ctype: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    kind: type[BaseException],
    message: str,
) -> None:
    arena = typed_cls(ctype, 4)
    first = arena.alloc()
    with pytest.raises(kind, match="^" + re.escape(message) + "$"):
        arena.alloc(*args, **kwargs)
    assert len(arena) == 1 and arena.used == ctypes.sizeof(ctype)
    second = arena.alloc()
    assert ctypes.addressof(second) == ctypes.addressof(first) + ctypes.sizeof(ctype)
    del first, second
    arena.close()


def test_constructor_raising_its_own_error_is_reworded_with_the_arguments(
    typed_cls: type,
) -> None:
    class Checked(ctypes.Structure):
        _fields_ = [("v", ctypes.c_int64)]

        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            if self.v < 0:
                raise ValueError(f"negative: {self.v}")

    arena = typed_cls(Checked, 3)
    kept = arena.alloc(3)
    message = "cannot build a Checked from (-4,): negative: -4"
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        arena.alloc(-4)
    # the traceback held the failed value: its slot stays used, cleared
    assert len(arena) == 2 and [v.v for v in arena] == [3, 0]
    again = arena.alloc(5)
    assert again.v == 5 and ctypes.addressof(again) == ctypes.addressof(kept) + 16
    # full: the arguments are still checked, built aside, with the same message
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        arena.alloc(-4)
    assert arena.alloc(6) is None and len(arena) == 3 and [v.v for v in arena] == [3, 0, 5]
    del kept, again
    arena.close()


def test_a_constructor_error_that_is_not_a_type_error_passes_through(typed_cls: type) -> None:
    class Failing(ctypes.Structure):
        _fields_ = [("v", ctypes.c_int64)]

        def __init__(self, *args: Any) -> None:
            raise KeyError("no such thing")

    arena = typed_cls(Failing, 2)
    with pytest.raises(KeyError, match="^'no such thing'$"):
        arena.alloc(1)
    assert len(arena) == 1  # (the slot stays used: the traceback held the failed value)
    full = arena.alloc()
    with pytest.raises(KeyError, match="^'no such thing'$"):
        arena.alloc(1)  # full: built aside, the same error
    assert len(arena) == 2
    del full
    arena.close()


@pytest.mark.parametrize(
    ("n", "kind", "message"),
    [
        (-1, ValueError, "n must be >= 0, got -1"),
        (2.0, TypeError, "n must be an int, not float"),
        (True, TypeError, "n must be an int, not bool"),
        ("3", TypeError, "n must be an int, not str"),
    ],
)
def test_alloc_many_names_its_count_in_the_exact_message(
    typed_cls: type, n: Any, kind: type[BaseException], message: str
) -> None:
    arena = typed_cls(ctypes.c_int16, 4)
    first = arena.alloc(9)
    with pytest.raises(kind, match="^" + re.escape(message) + "$"):
        arena.alloc_many(n)
    assert len(arena) == 1 and arena.used == 2 and first.value == 9
    del first
    arena.close()
