"""The checks on ctypes types (``linalloc._layout``): exact messages, what is cached
and when, arrays made before their element type was complete, shared sub-types."""

from __future__ import annotations

import ctypes
import gc
import re
from typing import Any

import pytest

import linalloc
from linalloc import Layout
from linalloc._layout import _infos, check_ctype, ctype_info, holds_pointer, is_ctype

NOT_A_CTYPE = (
    "expected a ctypes data type (a simple type, Structure, Union, Array or pointer type), got {!r}"
)


FORGED = "Faked: Faked._fields_ is not a sequence of (name, type) or (name, type, bits) tuples: "


def exactly(text: str) -> str:
    return "^" + re.escape(text) + "$"


@pytest.mark.parametrize("obj", [int, object, 3, "c_int", None, ctypes.CFUNCTYPE(None)])
def test_not_a_ctype_is_named_in_the_message(obj: Any) -> None:
    assert is_ctype(obj) is False
    with pytest.raises(TypeError, match=exactly(NOT_A_CTYPE.format(obj))):
        check_ctype(obj)
    with pytest.raises(TypeError, match=exactly(NOT_A_CTYPE.format(obj))):
        linalloc.TypedArena(obj, 4)


def test_incomplete_messages_name_the_type_and_the_part() -> None:
    class Node(ctypes.Structure):
        pass

    with pytest.raises(
        TypeError,
        match=exactly(
            "Node is an incomplete type: it has no _fields_ yet; set Node._fields_ "
            "(an empty list for an empty type) before using it"
        ),
    ):
        ctype_info(Node)
    row = Node * 3
    with pytest.raises(
        TypeError,
        match=exactly(
            "Node_Array_3 is an incomplete type: Node in it has no _fields_; set "
            "Node._fields_ before building types on it (ctypes freezes a type once it "
            "is a field, a base or an instance: then define it again)"
        ),
    ):
        ctype_info(row)


@pytest.mark.parametrize(
    "fields",
    [[("c", ctypes.c_char)], [("n", ctypes.c_int32)], []],
    ids=["size-and-alignment-1", "size-and-alignment-4", "only-alignment"],
)
def test_array_made_before_its_element_was_complete(fields: list[Any]) -> None:
    class Late(ctypes.Structure):
        pass

    row = Late * 3  # made while Late had no fields: ctypes froze its size at 0
    Late._fields_ = fields
    with pytest.raises(
        TypeError,
        match=exactly(
            "Late_Array_3: the array type Late_Array_3 was made before Late got its "
            "final _fields_ and no longer matches it"
        ),
    ):
        ctype_info(row)


def test_final_layouts_are_cached_and_open_ones_are_not() -> None:
    class Base(ctypes.Structure):
        _fields_ = [("a", ctypes.c_int64)]

    class Open(Base):  # no _fields_ of its own yet: they may still be given
        pass

    assert ctype_info(Base) == (8, 8, False)
    assert id(Base) in _infos
    assert ctype_info(Open) == (8, 8, False)
    assert id(Open) not in _infos
    Open._fields_ = [("p", ctypes.c_void_p)]  # the inherited layout grows a pointer
    assert ctype_info(Open) == (16, 8, True)
    assert id(Open) in _infos


def test_a_pointer_after_a_shared_sub_type_is_seen() -> None:
    class Shared(ctypes.Structure):
        _fields_ = [("n", ctypes.c_int32)]

    class Holder(ctypes.Structure):
        # walked last-field-first: the second Shared is met after the first
        _fields_ = [("p", ctypes.c_void_p), ("a", Shared), ("b", Shared)]

    assert holds_pointer(Holder)
    assert ctype_info(Holder)[2] is True


def test_fields_of_a_base_after_a_plain_mixin_are_walked() -> None:
    class Mixin:
        pass

    class WithPointer(ctypes.Structure):
        _fields_ = [("p", ctypes.c_void_p)]

    class Derived(Mixin, WithPointer):
        pass

    assert holds_pointer(Derived)


@pytest.mark.parametrize(
    "fields, message",
    [
        ([("n", 3)], "Faked has a field whose type is not a type: 3"),
        ([("n", int)], "Faked holds <class 'int'>, which is not a ctypes data type"),
        (
            5,
            FORGED + "5",
        ),
        (
            [("n",)],
            FORGED + "[('n',)]",
        ),
        (
            [7],
            FORGED + "[7]",
        ),
    ],
)
def test_a_type_whose_fields_were_forged_is_refused(fields: Any, message: str) -> None:
    # ctypes checks _fields_ when it is set; a type's dict changed behind its back
    # (as an attacker could) is checked again by the walk
    class Faked(ctypes.Structure):
        _fields_ = [("n", ctypes.c_int32)]

    namespace = gc.get_referents(Faked.__dict__)[0]
    namespace["_fields_"] = fields
    ctypes.pythonapi.PyType_Modified(ctypes.py_object(Faked))
    with pytest.raises(TypeError, match=exactly(message)):
        ctype_info(Faked)
    assert id(Faked) not in _infos


def test_layout_array_count_messages() -> None:
    with pytest.raises(ValueError, match=exactly("n must be >= 0, got -1")):
        Layout.array(ctypes.c_int32, -1)
    with pytest.raises(TypeError, match=exactly("n must be an int, not float")):
        Layout.array(ctypes.c_int32, 2.0)  # type: ignore[arg-type]


def test_layout_immutable_message() -> None:
    layout = Layout(8, 8)
    for attempt in (lambda: setattr(layout, "_size", 1), lambda: delattr(layout, "_size")):
        with pytest.raises(AttributeError, match=exactly("Layout is immutable")):
            attempt()
    assert layout == Layout(8, 8)
