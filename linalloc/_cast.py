"""``cast()``: ``ctypes.cast`` whose result keeps its source, and so the arena, alive.

ctypes' own ``cast()`` keeps its source alive only when the source owns its
memory. An arena value is a *sub-object* of the arena's array (its
``_b_base_``), and a ``byref()`` is no ctypes object at all: for both,
``ctypes.cast`` stores nothing (CPython issue 46376), so its result is a bare
address that neither keeps the memory alive nor counts as a view. That is the
one hole in rule 1; this function is the safe form.
"""

from __future__ import annotations

import ctypes

from ._address import _CData
from ._unbound import OBJECTS as _OBJECTS
from ._unbound import from_buffer

TYPE_CHECKING = False  # typing takes milliseconds to import: for type checkers only
if TYPE_CHECKING:
    from typing import Any, TypeVar

    P = TypeVar("P")

_CArgObject = type(ctypes.byref(ctypes.c_int()))
# simple types whose value is an address: cast() reinterprets the address they hold
_POINTER_CODES = ("z", "Z", "P")


def cast(obj: Any, typ: type[P]) -> P:
    """``ctypes.cast(obj, typ)`` whose result keeps ``obj`` alive (and counted).

    ``obj``: a ctypes object (an arena value, an array...), a ``byref()`` of
    one, or a writable contiguous memoryview; ``typ``: a pointer type
    (``POINTER(T)``, ``c_void_p``, ``c_char_p``, a ``CFUNCTYPE``), as for
    ``ctypes.cast``. The result points where ``ctypes.cast`` would; while it
    lives, ``obj`` lives, so the arena counts it as a view: ``reset()`` and
    ``close()`` are refused.

    >>> import ctypes, linalloc
    >>> arena = linalloc.TypedArena(ctypes.c_int64 * 4, 8)
    >>> quad = arena.alloc(1, 2, 3, 4)
    >>> p = linalloc.cast(quad, ctypes.POINTER(ctypes.c_int64))
    >>> del quad
    >>> p[2], arena.live_views()
    (3, 1)
    >>> del p
    >>> arena.reset()
    """
    source: Any = obj
    if type(obj) is memoryview:  # (not isinstance: a __class__ can lie)
        try:
            source = from_buffer(ctypes.c_char * obj.nbytes, obj)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"cast() needs a writable, contiguous memoryview: {exc}") from None
        obj = source
    elif type(obj) is _CArgObject:  # (not isinstance: a __class__ can lie)
        arg: Any = obj
        source = arg._obj  # what byref() refers to; the address below keeps its offset
    elif not isinstance(obj, _CData):
        raise TypeError(
            "cast() takes a ctypes object, a byref() of one or a memoryview, "
            f"not {type(obj).__name__} (ctypes.cast of an int keeps nothing alive anyway)"
        )
    address: int | None
    if isinstance(obj, (ctypes.Structure, ctypes.Union)) or (
        isinstance(obj, ctypes._SimpleCData) and getattr(obj, "_type_", "") not in _POINTER_CODES
    ):
        address = ctypes.addressof(obj)  # (ctypes.cast refuses these: a pointer to them)
    else:
        address = ctypes.cast(obj, ctypes.c_void_p).value
    # A fresh c_void_p owns its (empty) keep-alive dict; ctypes.cast shares it
    # with the result, which is how the result can keep ``source`` too.
    target: Any = typ
    result: Any = ctypes.cast(ctypes.c_void_p(address), target)
    objects = _OBJECTS(result)
    if not isinstance(objects, dict):  # pragma: no cover - ctypes.cast always makes one
        raise TypeError(f"cannot keep the source alive for a {typ.__name__}")
    objects[f"linalloc.cast:{id(source):x}"] = source
    return result  # type: ignore[no-any-return]
