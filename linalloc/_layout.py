"""``Layout`` (size and alignment of a request) and the checks on ctypes types."""

from __future__ import annotations

import ctypes
import sys

TYPE_CHECKING = False  # typing takes milliseconds to import: for type checkers only
if TYPE_CHECKING:
    from typing import Any

_DATA_BASES = (
    ctypes._SimpleCData,
    ctypes.Structure,
    ctypes.Union,
    ctypes.Array,
    ctypes._Pointer,
)


def check_int(name: str, value: object) -> int:
    """``value`` as an int; TypeError for anything else, bool included."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    return value


def check_count(name: str, value: object) -> int:
    """An int >= 0 (TypeError / ValueError otherwise)."""
    value = check_int(name, value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def is_ctype(obj: object) -> bool:
    """True for a ctypes data type: simple, Structure, Union, Array or pointer."""
    return isinstance(obj, type) and issubclass(obj, _DATA_BASES)


def check_ctype(ctype: object) -> type[Any]:
    """``ctype`` if it is a ctypes data type, else TypeError."""
    if not is_ctype(ctype):
        raise TypeError(
            "expected a ctypes data type (a simple type, Structure, Union, Array or "
            f"pointer type), got {ctype!r}"
        )
    return ctype  # type: ignore[return-value]


def holds_py_object(ctype: type[Any]) -> bool:
    """True if ``ctype`` embeds a ``py_object`` anywhere (fields, elements).

    Pointers do not count: a pointer field stores an address, not a reference.
    """
    if issubclass(ctype, ctypes._SimpleCData):
        return getattr(ctype, "_type_", None) == "O"
    if issubclass(ctype, ctypes.Array):
        element: Any = ctype._type_
        return holds_py_object(element)
    if issubclass(ctype, (ctypes.Structure, ctypes.Union)):
        return any(holds_py_object(field[1]) for field in getattr(ctype, "_fields_", ()))
    return False


def holds_pointer(ctype: type[Any]) -> bool:
    """True if ``ctype`` embeds a pointer anywhere (``POINTER(T)``, ``c_char_p``,
    ``c_wchar_p``, ``c_void_p``, in fields or elements).

    Reading such a value from uncleared memory would follow a stale address.
    """
    if issubclass(ctype, ctypes._Pointer):
        return True
    if issubclass(ctype, ctypes._SimpleCData):
        return getattr(ctype, "_type_", None) in ("z", "Z", "P")
    if issubclass(ctype, ctypes.Array):
        element: Any = ctype._type_
        return holds_pointer(element)
    if issubclass(ctype, (ctypes.Structure, ctypes.Union)):
        return any(holds_pointer(field[1]) for field in getattr(ctype, "_fields_", ()))
    return False


def check_storable(ctype: object) -> type[Any]:
    """A ctypes data type that raw arena memory may hold (no ``py_object``)."""
    ctype = check_ctype(ctype)
    if holds_py_object(ctype):
        raise TypeError(
            f"{ctype.__name__} holds a py_object: arena memory cannot own Python "
            "references; store an index or an id instead"
        )
    return ctype


class Layout:
    """The size and alignment of a block of memory, like Rust's ``Layout``.

    ``align`` must be a positive power of two, ``size`` an int >= 0, and ``size``
    rounded up to ``align`` must not exceed ``sys.maxsize``. Layouts are
    immutable, hashable and compare equal by value.

    >>> import ctypes
    >>> Layout(24, 8)
    Layout(size=24, align=8)
    >>> Layout.new(ctypes.c_double) == Layout.from_size_align(8, 8)
    True
    >>> Layout.array(ctypes.c_int32, 10)
    Layout(size=40, align=4)
    >>> Layout(8, 3)
    Traceback (most recent call last):
    ...
    ValueError: align must be a positive power of two, got 3
    """

    __slots__ = ("_size", "_align")
    _size: int
    _align: int

    def __init__(self, size: int, align: int = 1) -> None:
        size = check_int("size", size)
        align = check_int("align", align)
        if align <= 0 or align & (align - 1):
            raise ValueError(f"align must be a positive power of two, got {align}")
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        if (size + align - 1) & -align > sys.maxsize:
            raise ValueError(f"size {size} rounded up to align {align} exceeds sys.maxsize")
        object.__setattr__(self, "_size", size)
        object.__setattr__(self, "_align", align)

    @classmethod
    def from_size_align(cls, size: int, align: int) -> Layout:
        """The layout of ``size`` bytes aligned to ``align``; same checks as ``Layout()``.

        >>> Layout.from_size_align(16, 8)
        Layout(size=16, align=8)
        >>> Layout.from_size_align(-1, 8)
        Traceback (most recent call last):
        ...
        ValueError: size must be >= 0, got -1
        """
        return cls(size, align)

    @classmethod
    def new(cls, ctype: type[Any]) -> Layout:
        """The layout of one value of a ctypes type.

        >>> import ctypes
        >>> Layout.new(ctypes.c_int64)
        Layout(size=8, align=8)
        """
        ctype = check_ctype(ctype)
        return cls(ctypes.sizeof(ctype), ctypes.alignment(ctype))

    @classmethod
    def array(cls, ctype: type[Any], n: int) -> Layout:
        """The layout of ``n`` contiguous values of a ctypes type.

        >>> import ctypes
        >>> Layout.array(ctypes.c_uint16, 5)
        Layout(size=10, align=2)
        """
        ctype = check_ctype(ctype)
        n = check_count("n", n)
        return cls(ctypes.sizeof(ctype) * n, ctypes.alignment(ctype))

    @property
    def size(self) -> int:
        """Size in bytes.

        >>> Layout(24, 8).size
        24
        """
        return self._size

    @property
    def align(self) -> int:
        """Alignment in bytes, a power of two.

        >>> Layout(24, 8).align
        8
        """
        return self._align

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Layout is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Layout is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Layout):
            return NotImplemented
        return self._size == other._size and self._align == other._align

    def __hash__(self) -> int:
        return hash((Layout, self._size, self._align))

    def __repr__(self) -> str:
        return f"Layout(size={self._size}, align={self._align})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Layout, (self._size, self._align))
