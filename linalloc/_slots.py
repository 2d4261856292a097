"""A typed arena's slots: the value type, the window of values, and dropping.

Values live in contiguous slots, value k at ``base + k * sizeof(ctype)``. They
are handed out a *window* at a time: the window's values are made by one
slice of the slot array (C) and handed out by ``list.pop``, or, when the arena
has a ``drop`` callback, one at a time by ``next()`` on a ``map`` of
``operator.getitem`` over a range iterator, whose length tells how many are
live even at collection time, when the :class:`Dropper` drops them.

A window is published whole, by one store of :attr:`Cursor.win`: the count of
live values (``win.end`` less what the window has not handed out) is exact at
every bytecode boundary, whatever exception or signal lands between two lines.
"""

from __future__ import annotations

import ctypes
import sys
from _operator import length_hint

from ._store import array_type

TYPE_CHECKING = False  # typing takes milliseconds to import: for type checkers only
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


_slot_types: dict[type[Any], type[Any]] = {}


def _simple_repr(self: Any) -> str:
    return f"{type(self).__mro__[1].__name__}({self.value!r})"


def _simple_reduce(self: Any) -> Any:
    """Pickle and copy a value as a plain instance of the arena's ctype.

    (The slot subclass is made at run time: pickle could not find it by name.)
    """
    reduced: Any = ctypes._SimpleCData.__reduce__(self)
    unpickle, (cls, state) = reduced
    return unpickle, (cls.__mro__[1], state)


def slot_type(ctype: type[Any]) -> type[Any]:
    """The element type of the slot array.

    Indexing a ctypes array of a *simple* type (``c_int64``...) returns a plain
    Python value, not an object living in the array. A trivial subclass makes
    indexing return instances instead; they are ``isinstance(v, ctype)`` and
    read and write through ``.value``.
    """
    if not issubclass(ctype, ctypes._SimpleCData) or ctype.__mro__[1] is not ctypes._SimpleCData:
        return ctype  # Structures, arrays, pointers: indexing already gives instances
    found = _slot_types.get(ctype)
    if found is None:
        found = type(
            ctype.__name__,
            (ctype,),
            {"__repr__": _simple_repr, "__reduce__": _simple_reduce, "__slots__": ()},
        )
        _slot_types[ctype] = found
    return found


class Window:
    """Slots up to ``end``; ``source`` holds those not handed out yet.

    ``source`` is a list of the values, newest first (no drop callback), or an
    iterator over their indices (with one: it refers to no value).
    """

    __slots__ = ("end", "source")

    def __init__(self, end: int, source: Any) -> None:
        self.end = end
        self.source = source


class Cursor:
    """Which slots are live, ``[0, count())``, and the window being handed out.

    Slots below ``hi`` are usable now (lazy: committed). Slots from ``dirty``
    on are known to be zero. With a drop callback the :class:`Dropper` shares
    this object, so then it refers to no slot array and no value.
    """

    __slots__ = ("hi", "dirty", "win")

    def __init__(self, hi: int) -> None:
        self.hi = hi
        self.dirty = 0
        self.win = Window(0, [])

    def count(self) -> int:
        win = self.win
        return win.end - length_hint(win.source)


def drop_all(drop: Callable[[Any], object], array: Any, n: int, lo: int) -> BaseException | None:
    """Call ``drop`` on ``array[n-1] ... array[lo]``; return the first exception.

    Every value is dropped even when a callback raises. A ``BaseException``
    that is not an ``Exception`` (KeyboardInterrupt) stops at once; the values
    not yet dropped, ``[lo, k)``, are told by its ``.linalloc_remaining = k``.
    The first exception's traceback starts at the callback's frame.
    """
    first: BaseException | None = None
    try:
        for k in range(n - 1, lo - 1, -1):
            try:
                drop(array[k])
            except Exception as exc:
                if first is None:
                    first = exc
                    tb = exc.__traceback__
                    exc.__traceback__ = tb.tb_next if tb is not None else None
                    del tb
            except BaseException as exc:
                exc.linalloc_remaining = k  # type: ignore[attr-defined]
                raise
    finally:
        # A callback's frame kept by a traceback refers to this one (f_back):
        # it must not keep the slot array.
        del array
    return first


class Dropper:
    """Drops what an unreachable arena still held, once; errors go to sys.unraisablehook.

    Every root of the arena refers to it, so it is collected with the last of
    them: when the arena and every value are unreachable. The drop callback
    may refer to the arena's owner (``drop=self.release``): the cycle is
    collected like any other, and this ``__del__`` runs first (PEP 442).
    Nothing runs while the interpreter shuts down.
    """

    __slots__ = ("drop", "ctype", "store", "offset", "cursor")

    def __init__(
        self, drop: Callable[[Any], object], ctype: Any, store: Any, offset: int, cursor: Cursor
    ) -> None:
        self.drop: Callable[[Any], object] | None = drop
        self.ctype = ctype
        self.store = store
        self.offset = offset
        self.cursor = cursor
        reservation = getattr(store, "reservation", None)
        if reservation is not None:
            reservation.pins += 1

    def detach(self) -> None:
        """Nothing left to drop (the arena dropped its values itself)."""
        if self.drop is not None:
            self.drop = None
            reservation = getattr(self.store, "reservation", None)
            if reservation is not None:
                reservation.unpin()

    def __del__(self) -> None:
        drop = self.drop
        if drop is None or sys.is_finalizing():
            return
        try:
            n = self.cursor.count()
            if n:
                # A root made here does not refer to this object: a value the
                # callback keeps keeps the memory, not a second drop.
                root = self.store.root
                array = array_type(slot_type(self.ctype), n).from_buffer(root, self.offset)
                del root
                error = drop_all(drop, array, n, 0)
                del array
                if error is not None:
                    raise error
        finally:
            self.detach()
