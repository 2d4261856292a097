"""``Layout`` (size and alignment of a request) and the checks on ctypes types."""

from __future__ import annotations

import ctypes
import operator
import sys
from _functools import partial  # type: ignore[import-not-found]

from ._address import _CData
from ._unbound import ARRAY_ITEM as _ARRAY_ITEM
from ._unbound import ARRAY_LEN as _ARRAY_LEN
from ._unbound import CLASS_DICT as _CLASS_DICT
from ._unbound import MRO as _MRO

TYPE_CHECKING = False  # typing takes milliseconds to import: for type checkers only
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_DATA_BASES = (
    ctypes._SimpleCData,
    ctypes.Structure,
    ctypes.Union,
    ctypes.Array,
    ctypes._Pointer,
)
# Function pointer types (CFUNCTYPE, PYFUNCTYPE, WINFUNCTYPE) derive from this.
_FUNC_PTR: Any = getattr(ctypes, "_CFuncPtr")  # noqa: B009 (not in the stubs)
# ``_type_`` codes of simple types that hold an address: char*, wchar_t*, void*, BSTR.
_POINTER_CODES = frozenset("zZPX")


class _Probe(ctypes.Structure):
    """A structure with one field, to name the type of ctypes' field descriptors."""

    _fields_ = [("field", ctypes.c_char)]


#: The type of the descriptors ctypes makes for the fields it lays out.
_CFIELD: Any = type(_Probe.__dict__["field"])
_SIMPLE_META: Any = type(ctypes.c_int)
_ARRAY_META: Any = type(ctypes.c_int * 1)
_CHAR1 = ctypes.c_char * 1
_VALUE: Any = vars(ctypes._SimpleCData)["value"]
#: Zeroed memory that the checks read values of unknown type from (never written).
_ZEROS = (ctypes.c_longdouble * 4)()


def check_int(name: str, value: object) -> int:
    """``value`` as an exact int; TypeError for anything else, bool included.

    Anything with ``__index__`` (numpy integers, an ``int`` subclass) is
    converted to a plain ``int`` first, so a subclass cannot lie in later
    comparisons; floats are refused.

    >>> check_int("n", 3)
    3
    >>> class Liar(int):
    ...     def __lt__(self, other): return False
    >>> type(check_int("n", Liar(5)))
    <class 'int'>
    >>> check_int("n", 2.0)
    Traceback (most recent call last):
    ...
    TypeError: n must be an int, not float
    """
    if type(value) is int:
        return value
    if not isinstance(value, bool):
        try:
            index = operator.index(value)  # type: ignore[arg-type]
        except TypeError:
            pass
        else:
            # Python 3.9's operator.index may return an int subclass: make it exact.
            return int.__index__(index)
    raise TypeError(f"{name} must be an int, not {type(value).__name__}")


def check_count(name: str, value: object) -> int:
    """An exact int >= 0 (TypeError / ValueError otherwise); see ``check_int``.

    >>> check_count("capacity", 16)
    16
    >>> check_count("capacity", -1)
    Traceback (most recent call last):
    ...
    ValueError: capacity must be >= 0, got -1
    """
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


def _incomplete(ctype: type[Any], part: type[Any]) -> TypeError:
    if part is ctype:
        return TypeError(
            f"{ctype.__name__} is an incomplete type: it has no _fields_ yet; set "
            f"{ctype.__name__}._fields_ (an empty list for an empty type) before using it"
        )
    return TypeError(
        f"{ctype.__name__} is an incomplete type: {part.__name__} in it has no _fields_; "
        f"set {part.__name__}._fields_ before building types on it (ctypes freezes a "
        "type once it is a field, a base or an instance: then define it again)"
    )


def _read_zero(ctype: type[Any], what: str, read: Callable[[], Any]) -> tuple[bool, bool, Any]:
    """What ``read()`` of a zeroed value gives: (a py_object, a pointer, a type to visit).

    ``read`` reads through a type's own code (a field descriptor, an array's
    item, a simple type's value), which follows the layout ctypes really
    made, whatever the class dict says now. A ctypes object read is a view:
    its type is visited. ``None`` is a null ``c_char_p``, ``c_wchar_p`` or
    ``c_void_p``; ``ValueError`` a null ``py_object``.
    """
    try:
        value = read()
    except ValueError:  # "PyObject is NULL"
        return True, False, None
    except Exception as exc:
        raise TypeError(f"{ctype.__name__}: cannot read {what}: {exc}") from None
    if value is None:
        return False, True, None
    if isinstance(value, _CData):
        return False, False, type(value)
    return False, False, None


def _laid_out(ctype: type[Any], part: type[Any]) -> list[tuple[bool, bool, Any]]:
    """Read a zeroed value of each field ctypes laid out for ``part`` (see :func:`_read_zero`).

    A second ``_fields_`` that ctypes refuses ("_fields_ is final") is
    stored in the class dict all the same, and ``del`` removes it: the field
    descriptors (``CField``) in the dicts of the classes of the MRO are what
    ctypes reads and writes. Each is read at zeroed memory (a descriptor
    reads at the object's address plus its offset, whatever the object).
    A simple type or an array is read the same way, through its own code.
    """
    zeros = ctypes.addressof(_ZEROS)
    found: list[tuple[bool, bool, Any]] = []
    if issubclass(part, ctypes._SimpleCData):
        value = _SIMPLE_META.from_address(part, zeros)
        found.append(_read_zero(ctype, part.__name__, partial(_VALUE.__get__, value)))
    elif issubclass(part, ctypes.Array):
        array = _ARRAY_META.from_address(part, zeros)
        if _ARRAY_LEN(array):
            found.append(
                _read_zero(ctype, f"an item of {part.__name__}", partial(_ARRAY_ITEM, array, 0))
            )
    else:
        size = ctypes.sizeof(part)
        for klass in _MRO(part):  # (type's own getters: a metaclass can answer others)
            for name, field in list(_CLASS_DICT(klass).items()):
                if type(field) is not _CFIELD:
                    continue
                what = f"{klass.__name__}.{name}"
                width = getattr(field, "byte_size", field.size)
                if width >> 16:  # (a bitfield before 3.14: bits and bit offset)
                    width = 0
                if not 0 <= field.offset <= field.offset + width <= size:
                    # (a descriptor taken from another type: ctypes would read past the value)
                    raise TypeError(f"{ctype.__name__}: {what} is not a field of {part.__name__}")
                holder = _CHAR1.from_address(zeros - field.offset)
                found.append(_read_zero(ctype, what, partial(field.__get__, holder, part)))
    return found


def _walk(ctype: type[Any]) -> tuple[bool, bool, bool]:
    """(holds a py_object, holds a pointer, layout is final) for a ctypes data type.

    Visits the whole type: the ``_fields_`` of every Structure or Union class
    in the MRO (inherited fields included), nested Structures and Unions
    (anonymous ones and bitfields too), arrays of any depth, subclasses of
    simple types. Pointer targets are not visited: a pointer stores an address.
    Raises TypeError for a type that is incomplete anywhere in its nesting, or
    an array type whose element type changed after it was made. The layout is
    final when no Structure or Union in it can still be given ``_fields_`` (a
    subclass that inherits all its fields can), so it may be cached.

    The class dict (``_fields_``, ``_type_``) is not trusted alone: a second
    ``_fields_`` that ctypes refuses is stored in it all the same, ``del``
    takes it away, and ``_type_`` can be set. Each type is also read as
    ctypes laid it out (:func:`_laid_out`), and what that finds counts too.
    """
    py_object = pointer = False
    final = True
    stack: list[type[Any]] = [ctype]
    seen: set[int] = set()
    states: list[tuple[type[Any], tuple[Any, ...]]] = []
    while stack:
        part = stack.pop()
        if id(part) in seen:
            continue
        seen.add(id(part))
        if not isinstance(part, type):
            raise TypeError(f"{ctype.__name__} has a field whose type is not a type: {part!r}")
        states.append((part, _state(part)))
        if issubclass(part, (ctypes._Pointer, _FUNC_PTR)):
            pointer = True
        elif issubclass(part, ctypes._SimpleCData):
            code = getattr(part, "_type_", None)
            if code == "O":
                py_object = True
            elif code in _POINTER_CODES:
                pointer = True
        elif issubclass(part, ctypes.Array):
            element: Any = part._type_
            if ctypes.alignment(element) == 0:  # (its own check names it)
                stack.append(element)
                continue
            length: int = getattr(part, "_length_")  # noqa: B009 (not in the stubs)
            size, align = ctypes.sizeof(element), ctypes.alignment(element)
            if ctypes.sizeof(part) != length * size or ctypes.alignment(part) != align:
                raise TypeError(
                    f"{ctype.__name__}: the array type {part.__name__} was made before "
                    f"{element.__name__} got its final _fields_ and no longer matches it"
                )
            stack.append(element)
        elif issubclass(part, (ctypes.Structure, ctypes.Union)):
            if ctypes.alignment(part) == 0:  # how ctypes marks a type without _fields_
                raise _incomplete(ctype, part)
            if "_fields_" not in _CLASS_DICT(part):
                final = False
            for klass in _MRO(part):
                if not issubclass(klass, (ctypes.Structure, ctypes.Union)):
                    continue
                fields = _CLASS_DICT(klass).get("_fields_", ())
                try:
                    stack.extend(field[1] for field in fields)
                except (TypeError, IndexError, KeyError):
                    raise TypeError(
                        f"{ctype.__name__}: {klass.__name__}._fields_ is not a sequence of "
                        f"(name, type) or (name, type, bits) tuples: {fields!r}"
                    ) from None
        else:
            raise TypeError(f"{ctype.__name__} holds {part!r}, which is not a ctypes data type")
        if not issubclass(part, (ctypes._Pointer, _FUNC_PTR)):
            # What the class dict says (``_fields_``, ``_type_``) may have
            # changed since ctypes laid the type out: read the real layout too.
            for has_object, has_pointer, inner in _laid_out(ctype, part):
                py_object = py_object or has_object
                pointer = pointer or has_pointer
                if inner is not None:
                    stack.append(inner)
    # The walk reads class attributes, which a metaclass can hook: a type it
    # changed meanwhile (given ``_fields_``, say) may hold what was not seen.
    for part, state in states:
        now = _state(part)
        if now[:2] != state[:2] or now[2] is not state[2] or now[3] is not state[3]:
            raise TypeError(f"{ctype.__name__}: {part.__name__} changed while it was checked")
    return py_object, pointer, final


def _state(part: type[Any]) -> tuple[Any, ...]:
    """What a type's layout depends on, read without running any of its code.

    (size, alignment, its own ``_fields_`` and ``_type_`` objects or None)
    """
    own = _CLASS_DICT(part)
    try:
        size, align = ctypes.sizeof(part), ctypes.alignment(part)
    except TypeError:
        size = align = -1
    return size, align, own.get("_fields_"), own.get("_type_")


def holds_py_object(ctype: type[Any]) -> bool:
    """True if ``ctype`` embeds a ``py_object`` anywhere (fields, inherited
    fields, nested types, elements).

    Pointers do not count: a pointer field stores an address, not a reference.
    TypeError for an incomplete type.

    >>> import ctypes
    >>> class Base(ctypes.Structure):
    ...     _fields_ = [("obj", ctypes.py_object)]
    >>> class Derived(Base):
    ...     pass
    >>> holds_py_object(Derived), holds_py_object(ctypes.POINTER(Derived))
    (True, False)
    """
    return _walk(ctype)[0]


def holds_pointer(ctype: type[Any]) -> bool:
    """True if ``ctype`` embeds a pointer anywhere (``POINTER(T)``, ``c_char_p``,
    ``c_wchar_p``, ``c_void_p`` and their subclasses, function pointers, in
    fields, inherited fields, nested types or elements).

    Reading such a value from uncleared memory would follow a stale address.
    TypeError for an incomplete type.

    >>> import ctypes
    >>> class S(ctypes.Structure):
    ...     _fields_ = [("callback", ctypes.CFUNCTYPE(ctypes.c_int))]
    >>> holds_pointer(S * 2), holds_pointer(ctypes.c_int64 * 2)
    (True, False)
    """
    return _walk(ctype)[1]


# id(ctype) -> (ctype, (size, align, holds_pointer)) for storable types whose
# layout is final. Keyed by identity (the entry keeps the type, so its id is not
# reused) so that a metaclass's __eq__/__hash__ cannot alias two types.
_infos: dict[int, tuple[type[Any], tuple[int, int, bool]]] = {}
_MAX_INFOS = 4096


def ctype_info(ctype: object) -> tuple[int, int, bool]:
    """``(sizeof, alignment, holds a pointer)`` of a type arena memory may hold.

    TypeError for anything that is not a ctypes data type, for a type holding
    a ``py_object`` (at any depth) and for an incomplete type (a Structure or
    Union without ``_fields_`` yet, anywhere in it). Results are cached per
    type once its layout is final; nothing is cached for a type that fails.

    >>> import ctypes
    >>> class Node(ctypes.Structure):
    ...     pass
    >>> ctype_info(Node)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: Node is an incomplete type: it has no _fields_ yet; ...
    >>> Node._fields_ = [("value", ctypes.c_int32), ("next", ctypes.POINTER(Node))]
    >>> ctype_info(Node) == (ctypes.sizeof(Node), ctypes.alignment(Node), True)
    True
    >>> ctype_info(ctypes.c_int16)
    (2, 2, False)
    """
    found = _infos.get(id(ctype))
    if found is not None and found[0] is ctype:
        return found[1]
    checked = check_ctype(ctype)
    py_object, pointer, final = _walk(checked)
    if py_object:
        raise TypeError(
            f"{checked.__name__} holds a py_object: arena memory cannot own Python "
            "references; store an index or an id instead"
        )
    info = (ctypes.sizeof(checked), ctypes.alignment(checked), pointer)
    if final:
        if len(_infos) >= _MAX_INFOS:
            _infos.clear()  # recomputed on the next use
        _infos[id(checked)] = (checked, info)
    return info


def check_storable(ctype: object) -> type[Any]:
    """A complete ctypes data type that raw arena memory may hold (no ``py_object``).

    TypeError otherwise, as ``ctype_info`` explains.
    """
    ctype_info(ctype)
    return ctype  # type: ignore[return-value]


def _size_align(ctype: object) -> tuple[int, int]:
    """Size and alignment of a complete ctypes data type (py_object allowed)."""
    found = _infos.get(id(ctype))
    if found is not None and found[0] is ctype:
        return found[1][0], found[1][1]
    checked = check_ctype(ctype)
    _walk(checked)
    return ctypes.sizeof(checked), ctypes.alignment(checked)


class Layout:
    """The size and alignment of a block of memory, like Rust's ``Layout``.

    ``align`` must be a positive power of two, ``size`` an int >= 0, and ``size``
    rounded up to ``align`` must not exceed ``sys.maxsize``. Like every count in
    linalloc (capacities, ``n``), they may be anything with ``__index__``, such
    as numpy integers, and are kept as plain ``int``; bool and float are
    ``TypeError``. Layouts are immutable, hashable and compare equal by value.

    >>> import ctypes
    >>> Layout(24, 8)
    Layout(size=24, align=8)
    >>> Layout.new(ctypes.c_double) == Layout.from_size_align(8, 8)
    True
    >>> Layout.array(ctypes.c_int32, 10)
    Layout(size=40, align=4)
    >>> class Count:  # anything with __index__, like a numpy integer
    ...     def __index__(self) -> int:
    ...         return 24
    >>> Layout(Count(), 8)
    Layout(size=24, align=8)
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
        size, align = _size_align(ctype)
        return cls(size, align)

    @classmethod
    def array(cls, ctype: type[Any], n: int) -> Layout:
        """The layout of ``n`` contiguous values of a ctypes type.

        >>> import ctypes
        >>> Layout.array(ctypes.c_uint16, 5)
        Layout(size=10, align=2)
        """
        size, align = _size_align(ctype)
        n = check_count("n", n)
        return cls(size * n, align)

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
