"""``address()``: where a view an arena returned starts in memory."""

from __future__ import annotations

import ctypes

from ._unbound import _CData as _CData
from ._unbound import from_buffer

TYPE_CHECKING = False  # typing takes milliseconds to import: for type checkers only
if TYPE_CHECKING:
    from typing import Any


def address(view: Any) -> int:
    """The address (an int) of a memoryview or ctypes object an arena returned.

    For a ctypes object this is ``ctypes.addressof``; for a writable,
    contiguous memoryview it is the address of its first byte (for an empty
    view, where that byte would be). ``TypeError`` for anything else.

    >>> from linalloc import BumpArena, Layout, address
    >>> arena = BumpArena(64)
    >>> a = arena.alloc_uninit_slice(Layout(8, 8))
    >>> b = arena.alloc_uninit_slice(Layout(8, 8))
    >>> address(b) - address(a)
    8
    """
    if type(view) is memoryview:  # (not isinstance: a __class__ can lie)
        try:
            return ctypes.addressof(from_buffer(ctypes.c_char * 0, view))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"address() needs a writable, contiguous memoryview: {exc}") from None
    if isinstance(view, _CData):
        cdata: Any = view
        return ctypes.addressof(cdata)
    raise TypeError(f"address() takes a memoryview or a ctypes object, not {type(view).__name__}")
