"""Type checks: what the walk reports, and a layout that grows while it is checked.

- The walk answers three bools: (holds a py_object, holds a pointer, layout
  is final). A subclass that inherits all its fields is not final: it can
  still be given ``_fields_``.
- A type whose size or alignment changes while it is checked is refused,
  even when its own ``_fields_`` looks the same before and after (given
  ``_fields_`` and then ``del``-ed: the layout ctypes made stays grown).
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from typing import Any

import pytest

from linalloc import _layout
from linalloc._layout import ctype_info

_STRUCT_META: Any = type(ctypes.Structure)


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(_layout, "_infos", {})
    yield


def test_the_walk_answers_bools_and_a_subclass_inheriting_its_fields_is_not_final() -> None:
    class Base(ctypes.Structure):
        _fields_ = [("a", ctypes.c_int32)]

    class Open(Base):
        pass

    base, open_ = _layout._walk(Base), _layout._walk(Open)
    assert base == (False, False, True)
    assert open_ == (False, False, False)
    assert all(type(answer) is bool for answer in base + open_)


def test_a_layout_cannot_be_grown_while_checked_through_its_dict() -> None:
    """A metaclass that would lay the type out again when its ``__dict__`` is read:
    the check reads the class through ``type``'s own getter and runs no hook; a
    subclass with no ``_fields_`` of its own is not cached (it can still grow)."""

    class Growing(_STRUCT_META):
        armed = grown = False

        def __getattribute__(cls, name: str) -> Any:
            if (
                name == "__dict__"
                and Growing.armed
                and not Growing.grown
                and type.__getattribute__(cls, "__name__") == "Open"
            ):
                Growing.grown = True
                # Laid out again, then taken out of the class dict: its own
                # ``_fields_`` is missing before and after, the layout grew.
                _STRUCT_META.__setattr__(cls, "_fields_", [("extra", ctypes.c_int64)])
                _STRUCT_META.__delattr__(cls, "_fields_")
            return super().__getattribute__(name)

    class Base(ctypes.Structure, metaclass=Growing):
        _fields_ = [("a", ctypes.c_char)]

    class Open(Base):
        pass

    assert (ctypes.sizeof(Open), ctypes.alignment(Open)) == (1, 1)
    Growing.armed = True
    assert ctype_info(Open) == (1, 1, False)
    assert not Growing.grown
    assert (ctypes.sizeof(Open), ctypes.alignment(Open)) == (1, 1)
    assert id(Open) not in _layout._infos
