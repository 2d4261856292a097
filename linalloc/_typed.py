"""Typed bump allocation: ``TypedArena`` (eager) and ``TypedArenaLazy``.

Values live in contiguous slots: value k at ``base + k * sizeof(ctype)``. The
slots are one ctypes array over the store's root buffer, and handing out the
next value is ``next()`` on a ``map`` over that array's ``__getitem__``: a
value is an array element, so it keeps the array (and so the memory) alive,
and it counts as a live view on the array's reference count.
"""

from __future__ import annotations

import ctypes
import sys
import weakref
from collections.abc import Iterator
from functools import partial
from operator import length_hint
from threading import get_ident
from typing import Any, Callable, Generic, TypeVar

from ._arena import ArenaBase, raise_busy, raise_closed
from ._layout import check_count, check_storable
from ._lazy import LazyArenaMixin

T = TypeVar("T")

_slot_types: dict[type[Any], type[Any]] = {}


def _simple_repr(self: Any) -> str:
    return f"{type(self).__mro__[1].__name__}({self.value!r})"


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
        found = type(ctype.__name__, (ctype,), {"__repr__": _simple_repr, "__slots__": ()})
        _slot_types[ctype] = found
    return found


class _Cursor:
    """Which slots are live: ``[0, count())``. Slots up to ``hi`` are usable now.

    ``rng`` is the iterator over the not-yet-handed-out usable slots; the
    collection-time finalizer shares this object, so it must not refer to the
    slot array.
    """

    __slots__ = ("hi", "rng")

    def __init__(self, hi: int) -> None:
        self.hi = hi
        self.rng: Iterator[int] = iter(range(hi))

    def count(self) -> int:
        return self.hi - length_hint(self.rng)


def _drop_all(drop: Callable[[Any], object], array: Any, n: int) -> BaseException | None:
    """Call ``drop`` on ``array[n-1] ... array[0]``; return the first exception.

    Every value is dropped even when a callback raises. A ``BaseException``
    that is not an ``Exception`` (KeyboardInterrupt) stops at once; the values
    not yet dropped are returned in its ``.linalloc_remaining`` attribute.
    """
    first: BaseException | None = None
    for k in range(n - 1, -1, -1):
        try:
            drop(array[k])
        except Exception as exc:
            if first is None:
                first = exc
        except BaseException as exc:
            exc.linalloc_remaining = k  # type: ignore[attr-defined]
            raise
    return first


def _drop_at_collection(
    drop: Callable[[Any], object], array_type: Any, root: Any, offset: int, cursor: _Cursor
) -> None:
    """Drop what an unreachable arena still held; errors go to sys.unraisablehook."""
    n = cursor.count()
    if n:
        error = _drop_all(drop, array_type.from_buffer(root, offset), n)
        if error is not None:
            raise error


class TypedArena(ArenaBase, Generic[T]):
    """A fixed-capacity arena of values of one ctypes type, in one string buffer.

    ``capacity`` counts elements. Values are handed out in contiguous slots
    and dropped (``drop(value)`` for each, when given) in reverse allocation
    order by ``reset()``, by ``close()``, or when the arena and all its values
    have become unreachable, each exactly once. Values of a simple type
    (``c_int64``...) are returned as instances of a trivial subclass of that
    type, so that they live in the arena; read them with ``.value``.

    ``ctype`` must be a ctypes data type holding no ``py_object``
    (``TypeError``); ``capacity * sizeof(ctype)`` beyond ``sys.maxsize``
    raises ``OverflowError`` before any memory is touched.

    >>> import ctypes
    >>> from linalloc import TypedArena
    >>> class Point(ctypes.Structure):
    ...     _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double)]
    >>> arena = TypedArena(Point, 100)
    >>> p = arena.alloc(1.0, 2.0)
    >>> q = arena.alloc_raw((3.0, 4.0))
    >>> len(arena), [pt.x for pt in arena]
    (2, [1.0, 3.0])
    >>> ctypes.addressof(q) - ctypes.addressof(p) == ctypes.sizeof(Point)
    True
    >>> del p, q
    >>> arena.reset(); len(arena)
    0
    """

    def __init__(
        self,
        ctype: type[T],
        capacity: int,
        *,
        drop: Callable[[T], object] | None = None,
        check_thread: bool = True,
    ) -> None:
        ctype = check_storable(ctype)
        capacity = check_count("capacity", capacity)
        if drop is not None and not callable(drop):
            raise TypeError(f"drop must be callable or None, not {type(drop).__name__}")
        size = ctypes.sizeof(ctype)
        align = ctypes.alignment(ctype)
        if capacity * size > sys.maxsize:
            raise OverflowError(
                f"{capacity} values of {size} bytes exceed the address space (sys.maxsize)"
            )
        self._init_guard(check_thread)
        self._ctype: Any = ctype
        self._size = size
        self._capacity = capacity
        self._drop = drop
        store = self._store_type(capacity * size)
        offset = (-store.address) % align
        if offset:  # the buffer is less aligned than the type: make room to align
            store = self._store_type(capacity * size + align - 1)
            offset = (-store.address) % align
        self._store: Any = store
        self._root: Any = store.root
        self._offset: int = offset
        self._finalizer: weakref.finalize[Any, Any] | None = None
        if size == 0:
            # Zero-size values: every allocation succeeds and none is counted.
            self._arr: Any = (ctype * 0).from_buffer(self._root, offset)
            self._cursor = _Cursor(0)
            self._take: Callable[[], Any] = partial(ctype.from_buffer, self._root, offset)
            self._track(self._arr, self._root)
            return
        array_type = slot_type(ctype) * capacity
        self._arr = array_type.from_buffer(self._root, offset)
        self._cursor = _Cursor(self._usable_slots())
        self._restart(0)
        if drop is not None:
            self._finalizer = weakref.finalize(
                self._arr, _drop_at_collection, drop, array_type, self._root, offset, self._cursor
            )
            self._finalizer.atexit = False
        self._track(self._arr, self._root)

    # -- the algorithm -----------------------------------------------------

    def _usable_slots(self) -> int:
        """Slots that lie wholly in usable (committed) memory."""
        return min(self._capacity, (int(self._store.committed) - self._offset) // self._size)

    def _restart(self, k: int) -> None:
        """Hand out slots from k on, up to the cursor's ``hi``."""
        cursor = self._cursor
        cursor.rng = iter(range(k, cursor.hi))
        self._take = partial(next, map(self._arr.__getitem__, cursor.rng), None)

    def _extend(self) -> bool:
        """Make the next slot usable (lazy: commit more); False when full."""
        cursor = self._cursor
        k = cursor.hi
        if self._size == 0 or k >= self._capacity:
            return False
        if not self._store.ensure(self._offset + (k + 1) * self._size):
            return False
        cursor.hi = self._usable_slots()
        self._restart(k)
        return True

    def alloc(self, *args: Any, **kwargs: Any) -> T | None:
        """Build the next value in place as ``ctype(*args, **kwargs)`` would; None when full.

        Fields not given are zero. If the constructor raises, the slot is
        cleared and nothing changes.
        """
        owner = self._owner
        if owner is not None and owner != get_ident():
            self._wrong_thread()
        value = self._take()
        if value is None:
            if not self._extend():
                return None
            value = self._take()
        if args or kwargs:
            self._init_in_place(value, args, kwargs)
        return value  # type: ignore[no-any-return]

    def _init_in_place(self, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            self._ctype.__init__(value, *args, **kwargs)
        except BaseException:
            if self._size:
                ctypes.memset(ctypes.addressof(value), 0, self._size)
                self._restart(self._cursor.count() - 1)
            raise

    def alloc_raw(self, value: Any) -> T | None:
        """Store a copy of ``value`` in the next slot; return the value living there.

        ``value`` is an instance of ``ctype`` or what ctypes accepts on
        assignment: an int for ``c_int64``, bytes for ``c_char * 16``, a tuple
        of fields for a Structure or Union (a tuple of elements for an Array).
        A value of the wrong kind raises ``TypeError`` (``ValueError`` when
        ctypes does, e.g. bytes too long) and changes nothing. None when full.
        """
        self._enter_mut()
        cursor = self._cursor
        if self._size == 0:
            self._convert(value)
            return self._take()  # type: ignore[no-any-return]
        k = cursor.count()
        if k >= cursor.hi and not self._extend():
            return None
        self._arr[k] = self._convert(value)
        return self._take()  # type: ignore[no-any-return]

    def _convert(self, value: Any) -> Any:
        """``value`` in a form the slot array accepts on item assignment."""
        ctype = self._ctype
        if isinstance(value, ctype):
            if issubclass(ctype, ctypes._SimpleCData):
                return value.value
            return value
        if isinstance(value, tuple) and issubclass(
            ctype, (ctypes.Structure, ctypes.Union, ctypes.Array)
        ):
            return ctype(*value)
        if isinstance(value, (bytes, str)) and issubclass(ctype, ctypes.Array):
            converted = ctype()
            converted.value = value  # c_char/c_wchar arrays; TypeError otherwise
            return converted
        if issubclass(ctype, ctypes._SimpleCData):
            ctype(value)  # raises TypeError for a value of the wrong kind
            return value
        if issubclass(ctype, ctypes._Pointer):
            return value
        raise TypeError(
            f"expected a {ctype.__name__} or a tuple of its fields, got {type(value).__name__}"
        )

    # -- state -------------------------------------------------------------

    def __len__(self) -> int:
        self._enter()
        return self._cursor.count()

    def is_empty(self) -> bool:
        """True when no value is live."""
        return len(self) == 0

    @property
    def capacity(self) -> int:
        """The fixed capacity in elements (readable after close too)."""
        return self._capacity

    @property
    def ctype(self) -> type[T]:
        """The ctypes type of the values."""
        return self._ctype  # type: ignore[no-any-return]

    @property
    def used(self) -> int:
        """Bytes taken by live values: ``len(arena) * sizeof(ctype)``."""
        return len(self) * self._size

    def __iter__(self) -> Iterator[T]:
        """The live values in allocation order (an iterator alive counts as a view)."""
        self._enter()
        return map(self._arr.__getitem__, range(self._cursor.count()))

    def as_array(self) -> Any:
        """A ``ctype * len(arena)`` array over the live values, to hand to C.

        >>> import ctypes
        >>> from linalloc import TypedArena
        >>> arena = TypedArena(ctypes.c_int32, 8)
        >>> for n in (3, 1, 2):
        ...     _ = arena.alloc(n)
        >>> list(arena.as_array())
        [3, 1, 2]
        """
        self._enter()
        return (self._ctype * self._cursor.count()).from_buffer(self._arr)

    # -- dropping ----------------------------------------------------------

    def _drop_live(self) -> BaseException | None:
        """Drop every live value, newest first; returns the first exception."""
        drop = self._drop
        n = self._cursor.count()
        if drop is None or n == 0:
            return None
        saved = self._take
        self._busy = True
        self._take = raise_busy
        try:
            return _drop_all(drop, self._arr, n)
        except BaseException as exc:
            remaining = getattr(exc, "linalloc_remaining", n)
            ctypes.memset(
                self._root_address() + remaining * self._size, 0, (n - remaining) * self._size
            )
            self._restart(remaining)
            saved = self._take
            raise
        finally:
            self._busy = False
            self._take = saved

    def _root_address(self) -> int:
        return int(self._store.address) + self._offset

    def reset(self) -> None:
        """Drop the live values (newest first), then reuse the same storage.

        Refused with ``BufferError`` while a value or view is alive. The next
        value lands at the first value's address. If a ``drop`` callback
        raises, the others still run and the first exception is raised after
        the reset is complete.
        """
        self._enter_mut()
        self._refuse_if_viewed("reset")
        n = self._cursor.count()
        error = self._drop_live()
        if n and self._size:
            ctypes.memset(self._root_address(), 0, n * self._size)
            self._restart(0)
        if error is not None:
            raise error

    def _drop_for_close(self) -> BaseException | None:
        if self._finalizer is not None:
            self._finalizer.detach()
        return self._drop_live()

    def _used_bytes(self) -> int:
        return self._offset + self._cursor.count() * self._size

    def _after_trim(self) -> None:
        self._cursor.hi = self._usable_slots()
        self._restart(self._cursor.count())

    def _release(self) -> None:
        self._take = raise_closed
        self._arr = None
        self._root = None
        self._store = None

    def _repr_fields(self) -> list[str]:
        return [
            f"of {self._ctype.__name__}",
            f"len={self._cursor.count()}",
            f"capacity={self._capacity}",
            f"used={self._cursor.count() * self._size}",
        ]


class TypedArenaLazy(LazyArenaMixin, TypedArena[T]):
    """A ``TypedArena`` over reserved virtual memory, committed as it fills.

    Reserving is cheap: ``TypedArenaLazy(ctype, n)`` takes address space for
    ``n`` values but commits (and the OS backs) only the pages values are
    allocated in, ``commit_step`` bytes at a time. Everything else is as in
    ``TypedArena``; adds ``committed``, ``last_os_error_code`` and ``trim()``.
    When a commit fails, allocation returns ``None`` and
    ``last_os_error_code`` tells why.

    >>> import ctypes
    >>> from linalloc import TypedArenaLazy
    >>> arena = TypedArenaLazy(ctypes.c_double, 1 << 30)   # 8 GiB reserved
    >>> arena.committed
    0
    >>> arena.alloc(1.5).value
    1.5
    >>> arena.committed == arena.commit_step
    True
    """
