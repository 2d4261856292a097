"""ctypes' own methods and getters, called unbound.

A class can shadow any attribute of its instances, and a metaclass any of
the class: a ``from_buffer`` or ``__getitem__`` of its own, a class
attribute ``_objects`` hiding the instances' keep-alives, a property
``__mro__``. The library's own array types are no exception: a value's
``_b_base_`` is the array it was made from, and anyone can set attributes on
its class. So every call the library makes on a ctypes type or value whose
class it does not control, or whose class others can reach, goes through
these: none runs a caller's code, and none can be answered by a lie.
"""

from __future__ import annotations

import ctypes

TYPE_CHECKING = False  # typing takes milliseconds to import: for type checkers only
if TYPE_CHECKING:
    from typing import Any

_CData = ctypes.c_char.__mro__[-2]  # _ctypes._CData, the base of every ctypes instance
#: A class's own dict and method resolution order, read without a metaclass's code.
CLASS_DICT: Any = type.__dict__["__dict__"].__get__
MRO: Any = type.__dict__["__mro__"].__get__
#: A ctypes value's keep-alives and the object whose memory it uses.
OBJECTS: Any = _CData.__dict__["_objects"].__get__
B_BASE: Any = _CData.__dict__["_b_base_"].__get__
#: Item access and length of a ctypes array (slices too).
ARRAY_ITEM: Any = ctypes.Array.__getitem__
ARRAY_SET: Any = ctypes.Array.__setitem__
ARRAY_LEN: Any = ctypes.Array.__len__

#: ctypes' own ``from_buffer``, by the ctypes metaclass that defines it.
_FROM_BUFFER: dict[type, Any] = {
    meta: CLASS_DICT(meta)["from_buffer"]
    for meta in {
        type(t)
        for t in (
            ctypes.c_int,
            ctypes.Structure,
            ctypes.Union,
            ctypes.POINTER(ctypes.c_int),
            ctypes.c_int * 1,
            ctypes.CFUNCTYPE(None),
        )
    }
}


def from_buffer(ctype: Any, source: Any, offset: int = 0) -> Any:
    """``ctype.from_buffer(source, offset)`` by ctypes' own method.

    Never the type's own or its metaclass's: one that returned a value at
    another offset would hand out memory twice (or run code in the middle
    of an allocation).

    >>> buffer = bytearray(8)
    >>> from_buffer(ctypes.c_int32, buffer, 4).value = 7
    >>> buffer[4]
    7
    """
    method = _FROM_BUFFER.get(type(ctype))
    if method is None:
        for klass in MRO(type(ctype)):
            method = _FROM_BUFFER.get(klass)
            if method is not None:
                break
        else:
            raise TypeError(f"{ctype!r} is not a ctypes data type")
    return method(ctype, source, offset)
