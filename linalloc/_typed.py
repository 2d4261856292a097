"""Typed bump allocation: ``TypedArena`` (eager) and ``TypedArenaLazy``.

Values live in contiguous slots: value k at ``base + k * sizeof(ctype)``. The
slots are one ctypes array over the store's root buffer, and a value is an
element of that array: it keeps the array (and so the memory) alive, and it
counts as a live view on the array's reference count.

Slots are handed out a *window* at a time (8 slots, growing to 512 with use).
Opening a window is the slow path, in Python: it commits memory (lazy), zeroes
the window's slots if a ``reset()`` left them dirty (one ``memset``), and
makes the window's values. Handing out a value inside the window runs no
Python code beyond ``alloc()`` itself:

- without a ``drop`` callback, the window's values are made by one slice of
  the slot array (C) and handed out by ``list.pop``; the arena subtracts the
  ones not yet handed out when it counts live views;
- with one, values are made one at a time by ``next()`` on a ``map`` of
  ``operator.getitem`` over a range iterator, whose length tells how many are
  live even at collection time, when the finalizer drops them.

A used-up window shows as ``IndexError`` (``list.pop``) or ``StopIteration``
(``map``), which ``alloc()`` catches at no cost while none is raised.
"""

from __future__ import annotations

import ctypes
import sys
import weakref
from _functools import partial  # type: ignore[import-not-found]
from _operator import getitem, length_hint
from itertools import repeat

from ._address import _CData
from ._arena import _THREAD, ArenaBase, raise_busy, raise_closed
from ._layout import check_count, check_storable
from ._lazy import LazyArenaMixin
from ._store import Reservation
from ._store import array_type as array_type_of

TYPE_CHECKING = False  # typing takes milliseconds to import: for type checkers only
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any, Generic, TypeVar

    T = TypeVar("T")

    class _Generic(Generic[T]):
        """``typing.Generic``, for type checkers."""

else:
    T = "T"

    class _Generic:
        """``TypedArena[Point]`` works at run time as with ``typing.Generic``, without typing."""

        __slots__ = ()

        def __class_getitem__(cls, params: object) -> object:
            return type(list[int])(cls, params)  # types.GenericAlias


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


#: The most slots a window holds, and the fewest (a window holds as many slots
#: as have been live at most, within these bounds). Made ahead, a window's
#: values count towards the collector's threshold (700 new objects): 512 stay
#: below it.
_WINDOW = 512
_MIN_WINDOW = 8


class _Cursor:
    """Which slots are live, ``[0, count())``, and the window being handed out.

    Slots below ``hi`` are usable now (lazy: committed). The window ends at
    ``end``; its slots not handed out yet are ``pending`` (the values, newest
    first, when the arena has no drop callback) or ``rng`` (their indices,
    when it has one). Slots from ``dirty`` on are known to be zero. With a
    drop callback the collection-time finalizer shares this object, so then it
    must not refer to the slot array or to any value.
    """

    __slots__ = ("hi", "end", "dirty", "rng", "pending")

    def __init__(self, hi: int, batched: bool) -> None:
        self.hi = hi
        self.end = 0
        self.dirty = 0
        self.rng: Iterator[int] = iter(())
        self.pending: list[Any] | None = [] if batched else None

    def count(self) -> int:
        pending = self.pending
        if pending is not None:
            return self.end - len(pending)
        return self.end - length_hint(self.rng)


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


def _arena_only(entry: Any, lo: int, hi: int, arrs: set[int], seen: set[int]) -> bool:
    """True if a ctypes keep-alive entry holds nothing but memory in ``[lo, hi)``.

    ``arrs``: the ids of the arena's slot arrays (memoryviews of them are its own).
    """
    if entry is None or id(entry) in seen:
        return True
    seen.add(id(entry))
    if isinstance(entry, dict):
        return all(_arena_only(item, lo, hi, arrs, seen) for item in entry.values())
    if isinstance(entry, memoryview):
        return id(entry.obj) in arrs
    if isinstance(entry, _CData):
        cdata: Any = entry
        start = ctypes.addressof(cdata)
        if not lo <= start <= start + ctypes.sizeof(cdata) <= hi:
            return False
        return _arena_only(cdata._objects, lo, hi, arrs, seen)
    return False


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _reworded(error: BaseException, what: str) -> Exception:
    """``error`` (a TypeError, ValueError or OverflowError) with ``what`` in front."""
    for kind in (OverflowError, TypeError, ValueError):
        if isinstance(error, kind):
            return kind(f"{what}: {error}")
    raise AssertionError(error)  # pragma: no cover - callers pass only those three


def _too_many(ctype: Any, n: int) -> TypeError:
    return TypeError(
        f"too many initializers: {ctype.__name__} holds {ctype._length_} elements, got {n}"
    )


def _drop_at_collection(
    drop: Callable[[Any], object], ctype: Any, source: Any, offset: int, cursor: _Cursor
) -> None:
    """Drop what an unreachable arena still held; errors go to sys.unraisablehook.

    ``source`` is the root (eager) or the reservation (lazy), whose ``view``
    makes a root over the committed memory that keeps the reservation alive
    while a value a drop callback kept lives.
    """
    n = cursor.count()
    if n:
        root = (
            source.view(offset + n * ctypes.sizeof(ctype))
            if isinstance(source, Reservation)
            else source
        )
        array = array_type_of(slot_type(ctype), n).from_buffer(root, offset)
        error = _drop_all(drop, array, n)
        if error is not None:
            raise error


class TypedArena(ArenaBase, _Generic[T]):
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
            self._cursor = _Cursor(0, batched=False)
            self._take: Callable[[], Any] = partial(ctype.from_buffer, self._root, offset)
            self._track("_arr", "_root")
            return
        self._arr = self._slot_array()
        # Slicing a c_char/c_wchar array gives bytes/str, not values.
        self._slices = isinstance(self._arr[0:0], list)
        self._cursor = _Cursor(self._usable_slots(), batched=drop is None)
        if self._cursor.pending is not None:
            self._take = self._cursor.pending.pop
        self._restart(0)
        if drop is not None:
            if store.lazy:
                # The slot array changes as memory is committed; every root refers
                # to the store, so the store lives as long as any value does.
                self._finalizer = weakref.finalize(
                    store, _drop_at_collection, drop, ctype, store.reservation, offset, self._cursor
                )
            else:
                self._finalizer = weakref.finalize(
                    self._arr, _drop_at_collection, drop, ctype, self._root, offset, self._cursor
                )
            self._finalizer.atexit = False
        self._track("_arr", "_root")

    def _slot_array(self) -> Any:
        """The slot array over the root: every slot that lies wholly in it."""
        n = min(self._capacity, (len(self._root) - self._offset) // self._size)
        if self._store.lazy:  # lengths follow the committed size: keep ctypes' cache small
            array_type: Any = array_type_of(slot_type(self._ctype), max(n, 0))
        else:
            array_type = slot_type(self._ctype) * n
        return array_type.from_buffer(self._root, self._offset)

    # -- the algorithm -----------------------------------------------------

    def _usable_slots(self) -> int:
        """Slots that lie wholly in usable (committed) memory."""
        return min(self._capacity, (int(self._store.committed) - self._offset) // self._size)

    def _restart(self, k: int) -> None:
        """Hand out slots from k on: close the window; the next allocation opens one at k.

        The slots handed out so far may hold data: they are zeroed when a
        window over them opens.
        """
        cursor = self._cursor
        cursor.dirty = max(cursor.dirty, cursor.count())
        self._set_window(k, k)

    def _set_window(self, k: int, end: int) -> None:
        """Make slots ``[k, end)`` the window (they must be usable and zero)."""
        cursor = self._cursor
        cursor.end = end
        pending = cursor.pending
        arr = self._arr
        if pending is None:
            cursor.rng = iter(range(k, end))
            self._take = map(getitem, repeat(arr), cursor.rng).__next__
        elif end == k:
            pending.clear()
        elif self._slices:  # newest first, for list.pop
            pending[:] = arr[end - 1 : k - 1 if k else None : -1]  # (-1 would mean the last)
        else:
            pending[:] = map(getitem, repeat(arr), range(end - 1, k - 1, -1))

    def _open_window(self) -> bool:
        """Open the next window at the cursor's ``end``; False when full.

        Called when the window is used up. Zeroing that ``reset()`` deferred
        is done here, one ``memset`` per window.
        """
        cursor = self._cursor
        k = cursor.end
        if k >= cursor.hi and not self._extend():
            return False
        end = min(cursor.hi, k + max(_MIN_WINDOW, min(max(k, cursor.dirty), _WINDOW)))
        if k < cursor.dirty:
            size = self._size
            start = self._root_address() + k * size
            ctypes.memset(start, 0, (min(end, cursor.dirty) - k) * size)
        self._set_window(k, end)
        return True

    def _extend(self) -> bool:
        """Make slot ``hi`` usable (lazy: commit more); False when full."""
        cursor = self._cursor
        k = cursor.hi
        if self._size == 0 or k >= self._capacity:
            return False
        store = self._store
        if not store.ensure(self._offset + (k + 1) * self._size):
            return False
        if store.extent > len(self._root):
            self._regrow()
        cursor.hi = self._usable_slots()
        return True

    def _regrow(self) -> None:
        """Move to a root and slot array over all committed memory (lazy).

        Called with no window value pending. Values and views made earlier
        keep the earlier arrays, which stay counted as their generation.
        """
        self._retire(self._forget)
        self._root = self._store.root
        self._arr = self._slot_array()
        k = self._cursor.end
        self._set_window(k, k)
        self._track("_arr", "_root")

    def _forget(self) -> None:
        """Drop the arena's references to its root and slot array."""
        if self._cursor.pending is None:  # (a drop arena's iterator holds the array)
            self._take = raise_closed
        self._arr = None
        self._root = None

    def _refcounts(self) -> int:
        # The window's values not handed out yet refer to the slot array too.
        pending = self._cursor.pending
        return super()._refcounts() - (len(pending) if pending else 0)

    def alloc(self, *args: Any, **kwargs: Any) -> T | None:
        """Build the next value in place as ``ctype(*args, **kwargs)`` would; None when full.

        Fields not given are zero. If the constructor raises, the slot is
        cleared and nothing changes. With no arguments no constructor runs:
        ``alloc()`` then setting fields is the quicker way to fill a slot.

        >>> import ctypes
        >>> from linalloc import TypedArena
        >>> class Point(ctypes.Structure):
        ...     _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double)]
        >>> arena = TypedArena(Point, 2)
        >>> p = arena.alloc(1.0, y=2.0)
        >>> q = arena.alloc()
        >>> (p.x, p.y), (q.x, q.y)
        ((1.0, 2.0), (0.0, 0.0))
        >>> print(arena.alloc())  # full
        None
        """
        tdict = self._tdict
        if tdict is not None and tdict is not _THREAD.__dict__:
            self._wrong_thread()
        take = self._take
        try:
            value = take()
        except (IndexError, StopIteration):  # the window is used up
            del take  # (it may hold the slot array, which opening a window can replace)
            return self._alloc_slow(args, kwargs)
        if args or kwargs:
            try:
                if kwargs:
                    value.__init__(*args, **kwargs)
                else:  # (no dict to pass: quicker)
                    value.__init__(*args)
            except BaseException:
                error = self._init_failed(value, args)
                del value  # the traceback must not keep the cleared slot alive as a view
                if error is not None:
                    try:
                        raise error from None
                    finally:
                        del error  # no cycle frame -> error -> traceback -> frame
                raise
        return value  # type: ignore[no-any-return]

    def _alloc_slow(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> T | None:
        """``alloc()`` once the window is used up: open the next one, or None when full.

        If the constructor then raises, what opening the window committed is
        given back (rule 6: a failed call changes nothing).
        """
        committed = self._store.committed
        if not self._open_window():
            return None
        try:
            return self.alloc(*args, **kwargs)  # the window now has a slot: the fast path
        except BaseException:
            if self._store.committed != committed:
                self._uncommit(committed)
            raise

    def _uncommit(self, committed: int) -> None:
        """Give back what a failed allocation committed (rule 6: nothing changes)."""
        try:
            self._store.trim(committed)
        except OSError:
            pass  # the pages stay committed; the allocation still failed cleanly
        self._after_trim()

    def _init_failed(self, value: Any, args: tuple[Any, ...]) -> BaseException | None:
        """Undo an allocation whose constructor raised: clear the slot, hand it out again.

        Returns the error to raise instead of the constructor's, if any.
        """
        if self._size:
            ctypes.memset(ctypes.addressof(value), 0, self._size)
            self._restart(self._cursor.count() - 1)
        if issubclass(self._ctype, ctypes.Array) and len(args) > self._ctype._length_:
            return _too_many(self._ctype, len(args))  # ctypes says "invalid index"
        error = sys.exc_info()[1]
        if isinstance(error, (TypeError, ValueError, OverflowError)):
            what = f"cannot build a {self._ctype.__name__} from {_short_repr(args)}"
            return _reworded(error, what)
        return None

    def alloc_raw(self, value: Any) -> T | None:
        """Store a copy of ``value`` in the next slot; return the value living there.

        ``value`` is an instance of ``ctype`` or what ctypes accepts on
        assignment: an int for ``c_int64``, bytes for ``c_char * 16``, a tuple
        of fields for a Structure or Union (a tuple of elements for an Array).
        A value of the wrong kind raises ``TypeError`` (``ValueError`` when
        ctypes does, e.g. bytes too long) and changes nothing. None when full.

        >>> import ctypes
        >>> from linalloc import TypedArena
        >>> names = TypedArena(ctypes.c_char * 8, 4)
        >>> names.alloc_raw(b"arena").value
        b'arena'
        >>> names.alloc_raw(3.5)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        TypeError: ...
        >>> len(names)
        1
        """
        self._enter_mut()
        cursor = self._cursor
        if self._size == 0:
            self._convert(value)
            return self._take()  # type: ignore[no-any-return]
        k = cursor.count()
        converted = self._convert(value)  # before committing more memory: rule 6
        if k >= cursor.end and not self._open_window():
            return None
        self._arr[k] = converted
        return self._take()  # type: ignore[no-any-return]

    def _convert(self, value: Any) -> Any:
        """``value`` in a form the slot array accepts on item assignment.

        A value ctypes refuses raises that error again, saying which value and
        which arena (ctypes alone says neither).
        """
        try:
            return self._converted(value)
        except (TypeError, ValueError, OverflowError) as exc:
            what = f"cannot store {_short_repr(value)} in an arena of {self._ctype.__name__}"
            raise _reworded(exc, what) from None

    def _converted(self, value: Any) -> Any:
        ctype = self._ctype
        if isinstance(value, ctype):
            if issubclass(ctype, ctypes._SimpleCData):
                return value.value
            return value
        if isinstance(value, tuple) and issubclass(
            ctype, (ctypes.Structure, ctypes.Union, ctypes.Array)
        ):
            if issubclass(ctype, ctypes.Array) and len(value) > ctype._length_:
                raise _too_many(ctype, len(value))
            return ctype(*value)
        if (
            isinstance(value, (bytes, str))
            and issubclass(ctype, ctypes.Array)
            and ctype._type_ in (ctypes.c_char, ctypes.c_wchar)
        ):
            converted = ctype()
            converted.value = value  # TypeError for the wrong string kind
            return converted
        if issubclass(ctype, ctypes._SimpleCData):
            ctype(value)  # raises TypeError for a value of the wrong kind
            return value
        if issubclass(ctype, ctypes._Pointer):
            probe: Any = (ctype * 1)()
            probe[0] = value  # raises TypeError for a value of the wrong kind
            return value
        raise TypeError(
            f"expected a {ctype.__name__} or a tuple of its fields, got {type(value).__name__}"
        )

    # -- state -------------------------------------------------------------

    def __len__(self) -> int:
        """The number of live values.

        >>> import ctypes
        >>> from linalloc import TypedArena
        >>> arena = TypedArena(ctypes.c_int8, 4)
        >>> values = [arena.alloc(n) for n in range(6)]  # the last two get None
        >>> len(arena), values[-1]
        (4, None)
        """
        self._enter()
        return self._cursor.count()

    def is_empty(self) -> bool:
        """True when no value is live.

        >>> import ctypes
        >>> from linalloc import TypedArena
        >>> arena = TypedArena(ctypes.c_int16, 4)
        >>> arena.is_empty()
        True
        >>> _ = arena.alloc(5)
        >>> arena.is_empty()
        False
        """
        return len(self) == 0

    @property
    def capacity(self) -> int:
        """The fixed capacity in elements (readable after close too).

        >>> import ctypes
        >>> from linalloc import TypedArena
        >>> TypedArena(ctypes.c_double, 1000).capacity
        1000
        """
        return self._capacity

    @property
    def ctype(self) -> type[T]:
        """The ctypes type of the values.

        >>> import ctypes
        >>> from linalloc import TypedArena
        >>> TypedArena(ctypes.c_uint32, 4).ctype is ctypes.c_uint32
        True
        """
        return self._ctype  # type: ignore[no-any-return]

    @property
    def used(self) -> int:
        """Bytes taken by live values: ``len(arena) * sizeof(ctype)``.

        >>> import ctypes
        >>> from linalloc import TypedArena
        >>> arena = TypedArena(ctypes.c_int64, 10)
        >>> for n in range(3):
        ...     _ = arena.alloc(n)
        >>> arena.used
        24
        """
        return len(self) * self._size

    def __iter__(self) -> Iterator[T]:
        """The live values in allocation order (an iterator alive counts as a view).

        >>> import ctypes
        >>> from linalloc import TypedArena
        >>> arena = TypedArena(ctypes.c_uint8, 4)
        >>> for n in (7, 8, 9):
        ...     _ = arena.alloc(n)
        >>> [v.value for v in arena]
        [7, 8, 9]
        """
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
        # Holding the slot array as the usual one does keeps live_views() right.
        self._take = partial(raise_busy, self._arr)
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

    def _prune_keepalive(self) -> None:
        """Forget ctypes keep-alive entries of the slot array that hold only arena memory.

        Storing a pointer in a slot (``node.next = ctypes.pointer(other)``) makes
        ctypes keep the target object in the slot array's ``_objects``. A target
        inside the arena needs no keeping (its memory lives as long as the slot
        array), yet the entry would count as a live view for ever.
        """
        arrays = [self._arr, *[gen[0][0] for gen in self._retired]]
        ids = {id(arr) for arr in arrays}
        lo = self._root_address()
        hi = lo + self._capacity * self._size
        for arr in arrays:
            objects = arr._objects
            if not objects:
                continue
            for key, entry in list(objects.items()):
                if _arena_only(entry, lo, hi, ids, {id(objects)}):
                    del objects[key]
        del arrays

    def _root_address(self) -> int:
        return int(self._store.address) + self._offset

    def reset(self) -> None:
        """Drop the live values (newest first), then reuse the same storage.

        Refused with ``BufferError`` while a value or view is alive. The next
        value lands at the first value's address. If a ``drop`` callback
        raises, the others still run and the first exception is raised after
        the reset is complete.

        >>> import ctypes
        >>> from linalloc import TypedArena
        >>> arena = TypedArena(ctypes.c_int32, 8, drop=lambda v: print("drop", v.value))
        >>> a, b = arena.alloc(1), arena.alloc(2)
        >>> where = ctypes.addressof(a)
        >>> arena.reset()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        BufferError: cannot reset: 2 views of this arena still alive ...
        >>> del a, b
        >>> arena.reset()
        drop 2
        drop 1
        >>> ctypes.addressof(arena.alloc(3)) == where
        True
        >>> arena.close()
        drop 3
        """
        self._enter_mut()
        self._refuse_if_viewed("reset")
        n = self._cursor.count()
        error = self._drop_live()
        if n and self._size:
            self._restart(0)  # the slots are zeroed window by window as they are reused
        if error is not None:
            raise error

    def _drop_for_close(self) -> BaseException | None:
        # Detach only once the drops have run: if a KeyboardInterrupt stops them,
        # the finalizer still drops the values left at collection time.
        error = self._drop_live()
        if self._finalizer is not None:
            self._finalizer.detach()
        return error

    def _used_bytes(self) -> int:
        return self._offset + self._cursor.count() * self._size

    def _after_trim(self) -> None:
        if not self._size:
            return  # zero-size values take no slots (and have no slot iterator to restart)
        live = self._cursor.count()  # before ``hi`` changes: count() is derived from it
        self._cursor.hi = self._usable_slots()
        self._restart(live)

    def _release(self) -> None:
        self._take = raise_closed
        if self._cursor.pending:
            self._cursor.pending.clear()  # the window's values hold the memory
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
