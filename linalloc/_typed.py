"""Typed bump allocation: ``TypedArena`` (eager) and ``TypedArenaLazy``.

Values live in contiguous slots: value k at ``base + k * sizeof(ctype)``. The
slots are a ctypes array over a root of the store (a *part*, see ``_views``),
and a value is an element of that array: it keeps the array (and so the
memory) alive, and it counts as a live view on the array's reference count.

The class is put together from mixins (see ``_typed_state``): the windows of
slots that ``alloc()`` hands out (``_typed_windows``), bulk allocation and
iteration (``_typed_bulk``), undoing a failed allocation (``_typed_failed``).
"""

from __future__ import annotations

import ctypes
import sys
from _functools import partial  # type: ignore[import-not-found]
from _weakref import ref

from ._arena import _THREAD, _closed_error, raise_closed
from ._layout import check_count, check_storable, ctype_info
from ._lazy import LazyArenaMixin
from ._slots import Cursor, Dropper, carrying_type, drop_values, slot_type
from ._store import array_type as array_type_of
from ._typed_bulk import BulkAllocation
from ._typed_failed import FailedAllocation
from ._typed_state import _EMPTY_POP, _SLOTS, T
from ._typed_windows import _MIN_WINDOW, SlotWindows
from ._unbound import ARRAY_ITEM, ARRAY_LEN, ARRAY_SET, from_buffer
from ._unbound import OBJECTS as _OBJECTS
from ._values import convert
from ._views import Part, has_finalizer

TYPE_CHECKING = False  # typing takes milliseconds to import: for type checkers only
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

#: The key, in the ``_objects`` of the slot array values are dropped from, of
#: the keep-alives of the other slot arrays they need (``TypedArena._drop_array``).
_PARTS = "linalloc:parts"


class TypedArena(SlotWindows[T], BulkAllocation[T], FailedAllocation[T]):
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
        self._store = self._store_type(capacity * size)
        offset = (-self._store.address) % align
        if offset:  # the buffer is less aligned than the type: make room to align
            self._store = self._store_type(capacity * size + align - 1)
            offset = (-self._store.address) % align
        self._offset: int = offset
        self._pointers = ctype_info(ctype)[2]
        # Values are made ahead for a window, a slice at a time, unless a drop
        # callback must see how many were handed out, or the type has a
        # finalizer (it would keep a value that was never handed out: see
        # ``_restart``).
        self._batched = drop is None and not has_finalizer(ctype)
        # Slicing a c_char/c_wchar array gives bytes/str, not values.
        empty = array_type_of(slot_type(ctype), 0)()  # (this module's type: no __mul__ of ctype's)
        self._slices = isinstance(ARRAY_ITEM(empty, slice(0, 0)), list)
        self._cursor = Cursor(self._usable_slots() if size else 0)
        self._take: Callable[[], Any] = _EMPTY_POP
        self._wn = _MIN_WINDOW  # the next window's size
        self._dropper = (
            Dropper(drop, ctype, self._store, offset, self._cursor, ref(self))
            if drop is not None
            else None
        )
        self._init_ledger()
        if not size:
            self._take = self._part.take

    def _make_part(self) -> Part:
        """A root over the committed memory and a slot array over its whole slots."""
        part = Part(self._store.root)
        if self._dropper is not None:
            part.root._linalloc_dropper = self._dropper
        if self._size:
            n = min(self._capacity, (ARRAY_LEN(part.root) - self._offset) // self._size)
            # (this module's own type: lengths follow the committed size, and
            # ctypes' cache would keep every one for the life of the process)
            array_type = array_type_of(slot_type(self._ctype), max(n, 0))
            if self._dropper is not None and self._pointers:
                array_type = carrying_type(array_type)  # (keep-alives for a collection-time drop)
            # (a lazy root over nothing committed yet may end before the offset)
            start = min(self._offset, ARRAY_LEN(part.root))
            part.arrays[_SLOTS] = from_buffer(array_type, part.root, start)
        else:
            # Zero-size values: every allocation succeeds and none is counted.
            part.take = partial(from_buffer, self._ctype, part.root, self._offset)
        return part

    def _switch_part(self, part: Part) -> None:
        old = self._part
        self._take = _EMPTY_POP if self._size else part.take
        self._part = part
        old.take = None  # (its map over the old slot array, counted as the old part's own)
        self._restart(self._cursor.count())

    def alloc(self, *args: Any, **kwargs: Any) -> T | None:
        """Build the next value in place as ``ctype(*args, **kwargs)`` would; None when full.

        Fields not given are zero. With no arguments no constructor runs:
        ``alloc()`` then setting fields is the quicker way to fill a slot.
        If the constructor raises, the slot is cleared, and it is handed out
        again (nothing changes) only if the failed value is gone: its
        reference count shows that nothing but the arena holds it, and its
        type has no ``__del__`` that could revive it. That is the case when
        ctypes' own constructor refuses the arguments. A Python ``__init__``
        that raises leaves the failed value (``self``) in its frame, which
        the exception's traceback keeps (the arena cannot drop it), or may
        have stored ``self`` somewhere: then, as when the constructor
        allocates from this arena or takes a checkpoint of it (or enters a
        scope) and then raises, the slot stays used: cleared, counted in
        ``len``, never dropped, freed by the next rewind or reset past it (a
        reset is refused while the failed value lives, as for any view). No
        slot is handed out while an object over it lives.

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
        except MemoryError:  # making the value: its index was taken all the same
            del take
            self._restart(self._cursor.count() - 1)
            raise
        if args or kwargs:
            reads = self._reads  # (the constructor may take a view of the slot: see below)
            try:
                if kwargs:
                    value.__init__(*args, **kwargs)
                else:  # (no dict to pass: quicker)
                    value.__init__(*args)
            except BaseException as exc:
                del take  # the traceback must not keep the window's iterator
                failed = [value]  # (the arena's one reference: see _give_back_failed)
                del value
                error = self._init_failed(failed, args, exc, reads)
                del failed, exc  # nor the value, as a view
                if error is not None:
                    try:
                        raise error from None
                    finally:
                        del error  # no cycle frame -> error -> traceback -> frame
                raise
        return value  # type: ignore[no-any-return]

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
            convert(self._ctype, value)
            return self._take()  # type: ignore[no-any-return]
        converted = convert(self._ctype, value)  # before committing more memory: rule 6
        self._enter_mut()  # (the conversion ran the type's code: it may have closed the arena)
        committed = self._store.committed
        token = self._begin("change")
        try:
            self._busy = ref(token)
            if self._closed:  # (by code that ran before the mark: a finalizer)
                raise _closed_error()
            # The slot first, then the store into it: code run in between (by
            # the store itself: ``__index__``) cannot take the same slot.
            taken: Any = None
            try:
                try:
                    taken = self._take()
                except (IndexError, StopIteration):  # the window is used up
                    if not self._open_window():
                        return None
                    taken = self._take()
                except MemoryError:  # making the value: its index was taken all the same
                    self._take = _EMPTY_POP  # (before the count is read)
                    self._restart(cursor.count() - 1)
                    raise
                k = (ctypes.addressof(taken) - self._root_address()) // self._size
                ARRAY_SET(self._part.arrays[_SLOTS], k, converted)
                return taken  # type: ignore[no-any-return]
            except BaseException:
                # Storing ran the value's code again and it raised (or an
                # interrupt landed): give the slot back, and what opening the
                # window committed (rule 6).
                if taken is not None:
                    failed = [taken]
                    taken = None
                    self._halt()
                    self._give_back_failed(failed)
                if self._store.committed != committed:
                    self._uncommit(committed)
                raise
        finally:
            self._busy = None
            del token

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
        return self._shown_count()

    def _shown_count(self) -> int:
        """How many slots ``len``, iteration and ``as_array()`` show.

        All the used ones, but while drop callbacks run: the values dropped
        keep their slots (dead) until the memory is freed or held, and a
        callback sees none of those its call has dropped (the dead slots from
        the top down; those an earlier, stopped call left below values
        allocated since are shown, as they are outside callbacks).
        """
        cursor = self._cursor
        n = cursor.count()
        if self._busy is not None and self._busy_kind() == "drop":
            n = min(n, cursor.floor)
            dead = cursor.dead
            while n - 1 in dead:
                n -= 1
        return n

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

    # -- dropping ----------------------------------------------------------

    def _drops_after(self, position: int) -> bool:
        """Whether a live value (one not dropped yet: not dead) lies from ``position`` on."""
        if self._drop is None:
            return False
        cursor = self._cursor
        top = min(cursor.count(), cursor.floor)  # (from the floor up: dead)
        dead = cursor.dead
        if not dead:
            return top > position
        return sum([1 for k in dead if position <= k < top]) < top - position

    def _drop_after(self, position: int) -> BaseException | None:
        """Drop the values from slot ``position`` on, newest first; the first error.

        Each value's slot is made dead as it is dropped; the count stays: the
        caller lowers it (``_set_position``) once the memory is freed or held,
        so an interrupt landing anywhere leaves no slot in use uncounted. A
        ``KeyboardInterrupt`` in a callback stops the drops: the others stay
        live, and the values dropped so far keep their slots, never handed
        out and never dropped again, until a reset, rewind or close past them
        (which a callback that kept one refuses while it lives): the caller
        frees nothing.
        """
        drop = self._drop
        cursor = self._cursor
        n = cursor.count()
        if drop is None or n <= position:
            return None
        self._restart(n)  # (the slots handed out are dirty from here on)
        previous = self._busy
        token = self._begin("drop", nested=True)
        arr: Any = None
        try:
            self._busy = ref(token)
            self._take = _EMPTY_POP  # (the slow path refuses while drop callbacks run)
            arr = self._drop_array(position)
            return drop_values(drop, arr, cursor, position)  # (dead slots passed over)
        finally:
            del arr
            self._busy = previous
            del token

    def _drop_array(self, position: int) -> Any:
        """The slot array the values from slot ``position`` on are dropped from.

        The current one, made to keep what those values need: ctypes keeps
        what a value's pointers point to (and the registries of watched
        arrays) in the ``_objects`` of the slot array the value was made
        from, an older part's for a value below a checkpoint. A value a
        callback keeps must keep them: ``close()`` lets go of the parts at
        once, and the parts of held memory go with the arena. So the
        ``_objects`` dicts of the other parts of the regions from
        ``position`` on go into the current array's, under ``_PARTS``.
        Dicts are not views (a count takes them for the arena's own: see
        ``_views``); with them the current part is no longer
        :func:`~._views.reusable`, so a reset or rewind moves on to a fresh
        part, and they go with the old one. (Not for a type that holds no
        pointer: no value of it holds an address.)
        """
        current = self._part.arrays[_SLOTS]
        if not self._pointers:
            return current  # (no value holds an address: none of theirs can dangle)
        regions = self._ledger.regions
        first = 0
        for k, region in enumerate(regions):
            if region.start <= position:
                first = k
        others = tuple(
            [
                _OBJECTS(part.arrays[_SLOTS])
                for region in regions[first:]
                for part in region.parts
                if part is not self._part and _SLOTS in part.arrays
            ]
        )
        if others:
            objects = _OBJECTS(current)
            old = objects.get(_PARTS)
            objects[_PARTS] = others if old is None else (old, others)
        return current

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
        error = self._rewind_to(0, 0, "reset", None)
        if error is not None:
            raise error

    def _drop_for_close(self) -> BaseException | None:
        # Detach only once the drops have run: if a KeyboardInterrupt stops them,
        # the dropper still drops the values left at collection time.
        error = self._drop_after(0)
        if self._dropper is not None:
            self._dropper.detach()
        return error

    def _release(self) -> None:
        self._restart(self._cursor.count())  # the window's values hold the memory
        self._take = raise_closed
        self._part = Part(None)
        self._store = None
        self._dropper = None

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
