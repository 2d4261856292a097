"""The slot type of a simple ctype: a metaclass that answers no type at all is refused.

From ``linalloc._slots.slot_type``: ``type()`` hands the making of the slot type
to the ctype's metaclass, which may answer anything. An answer that is not a
ctypes type (no MRO to read, no size) is refused with the library's
``TypeError``, naming the ctype, like any other type answered.
"""

from __future__ import annotations

import ctypes
import re
from typing import Any

import pytest


class _AnswersNumber(type(ctypes.c_int64)):  # type: ignore[misc]
    """Answers a subclass of its types with the int 42: not a type at all."""

    def __new__(mcls, name: str, bases: tuple[type, ...], ns: dict[str, Any]) -> Any:
        if any(isinstance(base, _AnswersNumber) for base in bases):
            return 42
        return super().__new__(mcls, name, bases, ns)


class _Numbered(ctypes._SimpleCData, metaclass=_AnswersNumber):  # type: ignore[type-arg]
    _type_ = "q"


def test_a_slot_type_answered_with_no_type_is_refused_as_another_type(typed_cls: type) -> None:
    """Rule: a metaclass answering a non-type for the slot type gets the library's TypeError."""
    message = "_Numbered: its metaclass answers another type for a subclass of it"
    with pytest.raises(TypeError, match="^" + re.escape(message) + "$"):
        typed_cls(_Numbered, 4)
    with pytest.raises(TypeError, match="^" + re.escape(message) + "$"):
        typed_cls(_Numbered, 4)  # (refused again: nothing was kept of the first answer)
