"""The slot type of a simple ctype, and the state the dropper leaves behind.

From the docstrings of ``linalloc._slots``: the slot type of a simple ctype is a
*trivial* subclass (``slot_type``): a value reads (``repr``) as a plain instance
of the ctype, and gets nothing the ctype's instances lack (no ``__dict__``, no
weak references, when the ctype declares ``__slots__``); a metaclass that
cannot make the subclass, or answers another type (here: one of the same size
and buffer format, but not a subclass of the ctype), is refused with a
``TypeError`` that says which. After the drops at collection time, with no
``TypeError`` that says which: a subclass whose metaclass gives it another
MRO than (itself, then the ctype's), and, from Python 3.12 on, one whose
layout a ``__buffer__`` of the ctype's lies about.
"""

from __future__ import annotations

import ctypes
import re
import sys
import weakref
from typing import Any

import pytest

# -- a value reads as a plain instance of its ctype ------------------------------------------


class _I64(ctypes._SimpleCData):  # type: ignore[type-arg]
    """A simple ctype whose instances have no ``__dict__`` and no weak references."""

    _type_ = "q"
    __slots__ = ()


@pytest.mark.parametrize("ctype", [ctypes.c_int64, ctypes.c_double, _I64], ids=lambda t: t.__name__)
def test_a_simple_value_has_the_repr_of_a_plain_instance_of_its_ctype(
    typed_cls: type, ctype: Any
) -> None:
    """``repr`` of a value is that of the ctype's own instance of the same value
    (``c_long(5)``), not ctypes' ``<... object at 0x...>`` of a subclass."""
    arena = typed_cls(ctype, 4)
    value = arena.alloc(5)
    assert repr(value) == repr(ctype(5))
    assert re.fullmatch(rf"{ctype.__name__}\(5(\.0)?\)", repr(value)), repr(value)
    del value
    arena.close()


def test_a_value_of_a_slotted_simple_ctype_gets_no_dict_nor_weak_references(
    typed_cls: type,
) -> None:
    """The slot subclass is trivial (``__slots__ = ()``): a value of a ctype whose
    instances take no attributes and no weak references takes none either."""
    plain = _I64(3)
    with pytest.raises(AttributeError):
        plain.extra = 1  # type: ignore[attr-defined]
    arena = typed_cls(_I64, 4)
    value = arena.alloc(3)
    with pytest.raises(AttributeError):
        value.extra = 1
    with pytest.raises(TypeError):
        weakref.ref(value)
    assert isinstance(value, _I64) and value.value == 3
    assert type(value).__basicsize__ == _I64.__basicsize__  # (no room for either)
    del value
    arena.close()


# -- a metaclass that cannot make, or lies about, the slot subclass ---------------------------


class _NoSubclass(type(ctypes.c_int64)):  # type: ignore[misc]
    """Makes the ctype itself; raises for any subclass of it."""

    def __new__(mcls, name: str, bases: tuple[type, ...], ns: dict[str, Any]) -> Any:
        if any(isinstance(base, mcls) for base in bases):
            raise RuntimeError("no subclass here")
        return super().__new__(mcls, name, bases, ns)


class _Sealed(ctypes._SimpleCData, metaclass=_NoSubclass):  # type: ignore[type-arg]
    _type_ = "q"


def test_a_metaclass_that_cannot_subclass_the_ctype_is_refused_with_its_error(
    typed_cls: type,
) -> None:
    """The ``TypeError`` names the ctype and gives the metaclass's own error."""
    message = "_Sealed: its metaclass cannot make a subclass of it: no subclass here"
    with pytest.raises(TypeError, match="^" + re.escape(message) + "$"):
        typed_cls(_Sealed, 4)


class _AnswersAlike(type(ctypes.c_int64)):  # type: ignore[misc]
    """Answers a subclass of the ctype with a subclass of ``c_int64``: the same size and
    buffer format, but not a subclass of the ctype."""

    def __new__(mcls, name: str, bases: tuple[type, ...], ns: dict[str, Any]) -> Any:
        if any(isinstance(base, mcls) for base in bases):
            meta: Any = type(ctypes.c_int64)
            # (made, not initialized: the call that asked initializes it, once)
            return meta.__new__(meta, "Other", (ctypes.c_int64,), {})
        return super().__new__(mcls, name, bases, ns)


class _Swapped(ctypes._SimpleCData, metaclass=_AnswersAlike):  # type: ignore[type-arg]
    _type_ = "q"


def test_a_slot_type_of_the_same_layout_but_not_a_subclass_of_the_ctype_is_refused(
    typed_cls: type,
) -> None:
    """Every check of the type answered must hold, the subclass one too: the same
    size and format do not make up for a type that is not a subclass of the ctype
    (its values would not be ``isinstance`` of it)."""
    assert ctypes.sizeof(_Swapped) == ctypes.sizeof(ctypes.c_int64)
    assert memoryview(_Swapped()).format == memoryview(ctypes.c_int64()).format
    with pytest.raises(TypeError, match="its metaclass answers another type"):
        typed_cls(_Swapped, 4)


class _AnswersObject(type(ctypes.c_int64)):  # type: ignore[misc]
    """Answers a subclass of the ctype with ``object``: a type with no base at all."""

    def __new__(mcls, name: str, bases: tuple[type, ...], ns: dict[str, Any]) -> Any:
        if any(isinstance(base, mcls) for base in bases):
            return object
        return super().__new__(mcls, name, bases, ns)


class _Baseless(ctypes._SimpleCData, metaclass=_AnswersObject):  # type: ignore[type-arg]
    _type_ = "q"


def test_a_slot_type_answered_with_no_base_is_refused_as_another_type(typed_cls: type) -> None:
    """A type whose MRO is itself alone (``object``) is refused with the library's
    ``TypeError`` ("answers another type"), not an error of the checks (an
    ``IndexError`` reading its base)."""
    message = "_Baseless: its metaclass answers another type for a subclass of it"
    with pytest.raises(TypeError, match="^" + re.escape(message) + "$"):
        typed_cls(_Baseless, 4)


class _ShortMro(type(ctypes.c_int64)):  # type: ignore[misc]
    """Gives a subclass of its types the MRO (the subclass, the type): nothing more."""

    def mro(cls) -> list[type]:
        if any(isinstance(base, _ShortMro) for base in cls.__bases__):
            return [cls, cls.__bases__[0]]
        own: list[type] = super().mro()
        return own


class _ShortI64(ctypes._SimpleCData, metaclass=_ShortMro):  # type: ignore[type-arg]
    _type_ = "q"


def test_a_slot_type_with_another_mro_than_a_subclass_is_refused_with_the_libraries_error(
    typed_cls: type,
) -> None:
    """(The check read the subclass's buffer format through ``memoryview``, which such
    a class does not export on 3.11: memoryview's own error came out.)"""
    with pytest.raises(TypeError, match="^_ShortI64: its metaclass answers another type"):
        typed_cls(_ShortI64, 4)


class _AnswersObjects(type(ctypes.c_int64)):  # type: ignore[misc]
    """Answers a subclass of its type with a ``py_object`` type posing as one (its MRO
    is the subclass's, and its buffer, through the ctype's ``__buffer__``, the ctype's)."""

    def __new__(mcls, name: str, bases: tuple[type, ...], ns: dict[str, Any]) -> Any:
        if any(isinstance(base, _AnswersObjects) for base in bases):
            # (made, not initialized: the call that asked initializes it, once)
            body = {"_type_": "O"}
            posing: Any = _PosingMeta.__new__(_PosingMeta, name, (ctypes.py_object,), body)
            return posing
        return super().__new__(mcls, name, bases, ns)


class _Liar64(ctypes._SimpleCData, metaclass=_AnswersObjects):  # type: ignore[type-arg]
    _type_ = "q"

    def __buffer__(self, flags: int) -> memoryview:
        return memoryview(ctypes.c_int64())


class _PosingMeta(type(ctypes.py_object)):  # type: ignore[misc]
    def mro(cls) -> list[type]:
        return [cls, *_Liar64.__mro__]


@pytest.mark.skipif(sys.version_info < (3, 12), reason="__buffer__ is Python 3.12's")
def test_a_slot_type_whose_buffer_lies_about_its_layout_is_refused(typed_cls: type) -> None:
    """A ``py_object`` type with the MRO of a subclass and the ctype's buffer format
    (the ctype's ``__buffer__``): the arena would store objects in memory it never
    clears. The layout is read from an array of the type (ctypes' own buffer)."""
    posing: Any = type("Posing", (_Liar64,), {})
    assert ctypes.sizeof(posing) == ctypes.sizeof(_Liar64)
    assert memoryview(posing()).format == memoryview(_Liar64()).format  # (the lie)
    assert memoryview((posing * 1)()).format == "<O"  # (how ctypes laid it out)
    with pytest.raises(TypeError, match="^_Liar64: its metaclass answers another type"):
        typed_cls(_Liar64, 4)
