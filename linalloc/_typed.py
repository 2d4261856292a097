"""Typed bump allocation: ``TypedArena`` (eager) and ``TypedArenaLazy``.

Values live in contiguous slots: value k at ``base + k * sizeof(ctype)``. The
slots are a ctypes array over a root of the store (a *part*, see ``_views``),
and a value is an element of that array: it keeps the array (and so the
memory) alive, and it counts as a live view on the array's reference count.

Slots are handed out a *window* at a time (8 slots, growing to 512 with use;
``_slots``). Opening a window is the slow path, in Python: it commits memory
(lazy), zeroes the window's slots if a ``reset()`` or ``rewind()`` left them
dirty (one ``memset``), and makes the window's values. Handing out a value
inside the window runs no Python code beyond ``alloc()`` itself. A used-up
window shows as ``IndexError`` (``list.pop``) or ``StopIteration`` (``map``),
which ``alloc()`` catches at no cost while none is raised; so does
``_EMPTY_POP``, which stands in while no window is installed, so that every
allocation then takes the slow path, which repairs what an interrupted call left.
"""

from __future__ import annotations

import ctypes
import sys
from _collections import deque  # type: ignore[import-not-found]
from _functools import partial  # type: ignore[import-not-found]
from _operator import getitem
from _weakref import ref
from itertools import chain, islice, repeat

from ._arena import _THREAD, ArenaBase, _closed_error, raise_closed
from ._layout import check_count, check_storable, ctype_info
from ._lazy import LazyArenaMixin
from ._slots import NOTHING, Cursor, Dropper, Window, carrying_type, drop_values, slot_type
from ._store import array_type as array_type_of
from ._store import exact_array_type
from ._values import convert, init_error
from ._views import _LISTED_ONE, _SOURCE_KEY, Part, _refcounts

TYPE_CHECKING = False  # typing takes milliseconds to import: for type checkers only
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from ctypes import Array, _CData
    from typing import Any, Generic, TypeVar

    T = TypeVar("T", bound=_CData)

    class _Generic(Generic[T]):
        """``typing.Generic``, for type checkers."""

else:
    T = "T"

    class _Generic:
        """``TypedArena[Point]`` works at run time as with ``typing.Generic``, without typing."""

        __slots__ = ()

        def __class_getitem__(cls, params: object) -> object:
            return type(list[int])(cls, params)  # types.GenericAlias


#: The most slots a window holds, and the fewest (windows double in size while
#: they are used up, and start small again after a restart, a checkpoint or a
#: rewind). Made ahead, a window's values count towards the collector's
#: threshold (700 new objects): 512 stay below it.
_WINDOW = 512
_MIN_WINDOW = 8

#: The key of a part's slot array.
_SLOTS = "slots"

#: Never holds anything: ``alloc()`` through this goes to the slow path.
_EMPTY: list[Any] = []
_EMPTY_POP = _EMPTY.pop


#: The key, in a slot array's ``_objects``, of the arrays made over it whose
#: keep-alives it takes over when they die (ctypes' own keys are hex numbers
#: joined by ``:``, and ``_SOURCE_KEY``).
_WATCH = "linalloc:arrays"


def _take_over_keepalives(objects: dict[str, Any], first: int, arena: Any) -> None:
    """Move the keep-alives of a dying array over slots from ``first`` on to the slot arrays.

    ``objects``: the array's ``_objects``. ctypes names an entry by the path
    of the field stored, the last part the index of the element in the
    array: the same entry, stored through the slot array, is named with the
    slot's index there. It goes into the slot array its values come from
    (the newest of its region's, so that a rewind frees it with its region),
    or, once the arena is gone, the one the array was made over. An entry the
    slot array already has is kept beside the new one (one of them was stored
    last; both stay alive).
    """
    source = objects[_SOURCE_KEY].obj  # (the slot array the array was made over)
    for key, entry in list(objects.items()):
        if key == _SOURCE_KEY or entry is None:
            continue
        head, colon, last = key.rpartition(":")
        try:
            slot = int(last, 16) + first
        except ValueError:  # pragma: no cover - not a key ctypes makes
            source._objects[f"linalloc:{id(entry)}"] = entry
            continue
        target = source
        if arena is not None and not arena._closed:
            target = arena._slots_at(slot)
        kept = target._objects
        name = f"{head}{colon}{slot:x}"
        old = kept.get(name)
        kept[name] = entry if old is None or old is entry else (old, entry)


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
        self._store = self._store_type(capacity * size)
        offset = (-self._store.address) % align
        if offset:  # the buffer is less aligned than the type: make room to align
            self._store = self._store_type(capacity * size + align - 1)
            offset = (-self._store.address) % align
        self._offset: int = offset
        self._pointers = ctype_info(ctype)[2]
        # Values are made ahead for a window, a slice at a time, unless a drop
        # callback must see how many were handed out, or the type has a
        # finalizer (it could keep a value that was never handed out).
        self._batched = drop is None and not hasattr(ctype, "__del__")
        # Slicing a c_char/c_wchar array gives bytes/str, not values.
        self._slices = isinstance((slot_type(ctype) * 0)()[0:0], list)
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
            n = min(self._capacity, (len(part.root) - self._offset) // self._size)
            # (this module's own type: lengths follow the committed size, and
            # ctypes' cache would keep every one for the life of the process)
            array_type = array_type_of(slot_type(self._ctype), max(n, 0))
            if self._dropper is not None and self._pointers:
                array_type = carrying_type(array_type)  # (keep-alives for a collection-time drop)
            part.arrays[_SLOTS] = array_type.from_buffer(part.root, self._offset)
        else:
            # Zero-size values: every allocation succeeds and none is counted.
            part.take = partial(self._ctype.from_buffer, part.root, self._offset)
        return part

    def _switch_part(self, part: Part) -> None:
        old = self._part
        self._take = _EMPTY_POP if self._size else part.take
        self._part = part
        old.take = None  # (its map over the old slot array, counted as the old part's own)
        self._restart(self._cursor.count())

    # -- the algorithm -----------------------------------------------------

    def _usable_slots(self) -> int:
        """Slots that lie wholly in usable (committed) memory; none once retired.

        (A store is retired when the values were dropped at collection time and
        a drop callback kept one, bringing the arena back to life: its memory
        is never handed out again, whatever call comes next.)
        """
        store = self._store
        if store.retired:
            return 0
        return min(self._capacity, (int(store.committed) - self._offset) // self._size)

    def _restart(self, k: int) -> None:
        """Hand out slots from k on: close the window; the next allocation opens one at k.

        The slots handed out so far may hold data: they are zeroed when a
        window over them opens.
        """
        if not self._size:
            self._take = self._part.take  # (zero-size values: no window, every call succeeds)
            return
        cursor = self._cursor
        cursor.dirty = max(cursor.dirty, cursor.count())
        self._wn = _MIN_WINDOW  # (a restart, a checkpoint or a rewind: start small again)
        self._take = _EMPTY_POP  # first: the old window's values die with the old window
        old = cursor.win.source
        cursor.win = Window(k, NOTHING)
        # Empty the old window: an ``alloc()`` that read ``_take`` before this
        # restart (re-entered between its two lines by a trace function or a
        # signal handler) then finds nothing and takes the slow path, instead
        # of handing out a slot the new window hands out again.
        if type(old) is list:
            old.clear()
        elif old is not NOTHING:
            deque(old, 0)  # (the range iterator the value map shares)

    def _set_window(self, k: int, end: int) -> None:
        """Make slots ``[k, end)`` the window (they must be usable and zero)."""
        part = self._part
        arr = part.arrays[_SLOTS]
        cursor = self._cursor
        if self._batched:
            if self._slices:  # newest first, for list.pop
                source = arr[end - 1 : k - 1 if k else None : -1]  # (-1 would mean the last)
            else:
                source = list(map(getitem, repeat(arr), range(end - 1, k - 1, -1)))
            del arr
            window = Window(end, source)
            cursor.win = window  # published whole: the count stays exact
            self._take = source.pop
        else:
            rng = iter(range(k, end))
            part.take = map(getitem, repeat(arr), rng)
            del arr
            cursor.win = Window(end, rng)
            self._take = part.take.__next__

    def _open_window(self) -> bool:
        """Open the next window at the cursor; False when full.

        Called when the window is used up. Zeroing that ``reset()`` deferred
        is done here, one ``memset`` per window.
        """
        cursor = self._cursor
        self._take = _EMPTY_POP
        win = cursor.win
        k = cursor.count()
        if k < win.end:  # published, not installed: an interrupted call
            self._take = win.source.pop if self._batched else self._part.take.__next__
            return True
        if k >= cursor.hi and not self._extend():
            return False
        self._refuse_if_held()
        end = min(cursor.hi, k + self._wn)
        self._wn = min(2 * self._wn, _WINDOW)  # windows double while they are used up
        if k < cursor.dirty:
            size = self._size
            ctypes.memset(self._root_address() + k * size, 0, (min(end, cursor.dirty) - k) * size)
        self._set_window(k, end)
        return True

    def _extend(self) -> bool:
        """Make slot ``hi`` usable (lazy: commit more); False when full."""
        return self._extend_to(self._cursor.hi + 1)

    def _extend_to(self, k: int) -> bool:
        """Make slots up to ``k`` usable (lazy: commit more); False when they cannot be."""
        cursor = self._cursor
        if self._size == 0 or k > self._capacity:
            return False
        store = self._store
        if not store.ensure(self._offset + k * self._size):
            return False
        if store.extent > len(self._part.root):
            # A part over all committed memory; the older ones stay counted.
            part = self._make_part()
            self._ledger.add_part(part)
            self._switch_part(part)
            self._ledger.prune_parts()
        cursor.hi = self._usable_slots()
        return True

    def _ahead(self) -> int:
        source = self._cursor.win.source
        return len(source) if type(source) is list else 0

    def _halt(self) -> None:
        if self._closed:
            raise _closed_error()
        if self._size:  # (zero-size values have no window to protect)
            self._take = _EMPTY_POP  # the slow path checks _busy
            self._restart(self._cursor.count())  # (read now: nothing can take a slot)

    def _position(self) -> int:
        return self._cursor.count()

    def _address_of(self, position: int) -> int:
        return self._root_address() + position * self._size

    def _set_position(self, position: int) -> None:
        self._restart(position)
        cursor = self._cursor
        if cursor.dead:  # (slots a failed constructor could not give back)
            cursor.dead = {k for k in cursor.dead if k < position}

    def _slots_at(self, k: int) -> Any:
        """The slot array that values of slot ``k`` come from (its region's newest)."""
        regions = self._ledger.regions
        for region in reversed(regions):
            if region.start <= k:
                return region.parts[-1].arrays[_SLOTS]
        return regions[0].parts[-1].arrays[_SLOTS]  # pragma: no cover - regions[0].start == 0

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
            try:
                if kwargs:
                    value.__init__(*args, **kwargs)
                else:  # (no dict to pass: quicker)
                    value.__init__(*args)
            except BaseException as exc:
                del take  # the traceback must not keep the window's iterator
                failed = [value]  # (the arena's one reference: see _give_back_failed)
                del value
                error = self._init_failed(failed, args, exc)
                del failed, exc  # nor the value, as a view
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
        given back (rule 6: a failed call changes nothing). On a full arena
        the arguments are still checked: bad ones raise as they would with room.
        """
        self._enter_mut()
        committed = self._store.committed
        token = self._begin("change")  # no re-entry (a finalizer) while the window changes
        try:
            self._busy = ref(token)
            if self._closed:  # (by code that ran before the mark: a finalizer)
                raise _closed_error()
            opened = self._open_window()
        finally:
            self._busy = None
            del token
        if not opened:
            if args or kwargs:
                self._check_args(args, kwargs)
            return None
        try:
            return self.alloc(*args, **kwargs)  # the window now has a slot: the fast path
        except BaseException:
            if self._store.committed != committed:
                self._uncommit(committed)
            raise

    def _check_args(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Raise what ``ctype(*args, **kwargs)`` raises (reworded), building it aside."""
        try:
            self._ctype(*args, **kwargs)
            return
        except (TypeError, ValueError, OverflowError, IndexError) as exc:
            error = init_error(self._ctype, args, exc)
            if error is None:
                raise
        try:
            raise error from None  # (outside the handler: no frame kept as its context)
        finally:
            del error  # no cycle frame -> error -> traceback -> frame

    def _uncommit(self, committed: int) -> None:
        """Give back what a failed allocation committed (rule 6: nothing changes).

        Never below the live values (a constructor may have allocated). Marks
        the arena busy if it is not already.
        """
        previous = self._busy
        token = self._begin("change", nested=True)
        try:
            self._busy = ref(token)
            self._halt()
            try:
                self._store.trim(max(committed, self._used_bytes()))
            except OSError:
                pass  # the pages stay committed; the allocation still failed cleanly
            self._after_trim()
        finally:
            self._busy = previous
            del token

    def _init_failed(
        self, failed: list[Any], args: tuple[Any, ...], exc: BaseException
    ) -> BaseException | None:
        """Undo an allocation whose constructor raised: clear the slot, hand it out again.

        ``failed`` holds the value, the caller's only reference to it (the
        list is emptied). The slot is handed out again only if nothing else
        holds the value (see :meth:`_give_back_failed`); else it stays used,
        cleared, and is never dropped. The same if the constructor allocated
        from this arena (the slot is no longer the newest) or took a
        checkpoint (or entered a scope) of it: that checkpoint's position
        counts the slot, and a rewind to it must not make a slot never
        handed out live again. Returns the error to raise instead of the
        constructor's, if any.
        """
        if self._size:
            previous = self._busy
            token = self._begin("change", nested=True)
            try:
                self._busy = ref(token)
                self._halt()  # (the count is read below: nothing may take a slot meanwhile)
                self._give_back_failed(failed)
            finally:
                self._busy = previous
                del token
        failed.clear()
        return init_error(self._ctype, args, exc)

    def _give_back_failed(self, failed: list[Any]) -> None:
        """Clear the slot of the value in ``failed``; hand it out again if the value is gone.

        ``failed``: a list holding the value whose allocation failed, the
        only reference the arena keeps; it is emptied here. Something else
        may hold the value: the traceback of a Python ``__init__`` that
        raised (its frame holds ``self``; the library cannot drop a frame of
        the caller's exception), or whatever the constructor gave ``self``
        to. Read off its reference count (as the view accounting reads
        counts, ``_views``): the slot is given back only if the list's is the
        only one, and only once the value is freed (a type with ``__del__``
        could bring it back to life: never given back). Else the slot stays
        used (dead), as the live value's. Call while busy and halted.
        """
        k = (ctypes.addressof(failed[0]) - self._root_address()) // self._size
        kept = hasattr(self._ctype, "__del__")
        kept = kept or _refcounts(failed)[0] != _LISTED_ONE
        failed.clear()  # (freed here unless something else holds it)
        self._give_back(k, kept)

    def _give_back(self, k: int, kept: bool = False) -> None:
        """Clear slot ``k``, a value's whose allocation failed, and hand it out again.

        Call while the arena is busy and halted, once no value over the slot
        is left: ``kept`` says one may be, and the slot stays used (dead).
        The same if the slot is no longer the newest, or a checkpoint was
        taken after it.
        """
        ctypes.memset(self._root_address() + k * self._size, 0, self._size)
        if not kept and k == self._cursor.count() - 1 and self._ledger.regions[-1].start <= k:
            self._restart(k)
        else:
            self._cursor.dead.add(k)

    def _watch(self, array: Any, first: int) -> Any:
        """``array`` (made with ``from_buffer`` over a slot array, slot ``first`` on).

        ctypes keeps the target of a pointer stored through such an array in
        the array's own ``_objects``, not in the slot array: when the array
        died, the values (which the arena still hands out by iterating) would
        point at freed memory. So when it dies, its keep-alives go to the slot
        arrays (see :func:`_take_over_keepalives`). The weak reference that
        calls back lives in the slot array's ``_objects``: it outlives the
        array even when a cycle holds the array (the collector then calls it
        too), and nothing of it refers to the slot array but the array's own
        ``_objects``. Only for types that hold pointers.
        """
        objects = array._objects
        watched = objects[_SOURCE_KEY].obj._objects.setdefault(_WATCH, {})
        arena = ref(self)

        def dead(weak: Any) -> None:
            watched.pop(id(weak), None)  # (once empty, the pruning forgets it)
            _take_over_keepalives(objects, first, arena())

        weak = ref(array, dead)
        watched[id(weak)] = weak
        return array

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
                self._part.arrays[_SLOTS][k] = converted
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

    # -- bulk allocation ---------------------------------------------------

    def alloc_many(self, n: int) -> Array[T] | None:
        """``n`` zeroed values in consecutive slots, as one ``ctype * n`` array.

        None when fewer than ``n`` slots are left (nothing changes). The
        values count in ``len``, iterate and are dropped like values from
        ``alloc()``; the array is a view (``reset()`` is refused while it
        lives). One slice of memory, and one ``memset`` where a ``reset()``
        left data: not ``n`` allocations.

        >>> import ctypes
        >>> from linalloc import TypedArena
        >>> class Point(ctypes.Structure):
        ...     _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double)]
        >>> arena = TypedArena(Point, 1000)
        >>> points = arena.alloc_many(600)
        >>> points[599].x = 2.5
        >>> len(points), len(arena), points[0].x
        (600, 600, 0.0)
        >>> print(arena.alloc_many(401))  # 400 left
        None
        """
        self._enter_mut()
        n = check_count("n", n)
        return self._take_slots(n, True)  # type: ignore[no-any-return]

    def _take_slots(self, n: int, zero: bool, fill: Any = None) -> Any:
        """``n`` consecutive slots as one array, counted as values; None if they do not fit.

        Zeroed where a reset left data when ``zero`` is true or the type holds
        pointers (a stale address must never be read); otherwise ``fill``
        overwrites every byte. ``fill``: None, a list of ``n`` converted
        items (stored through the slot array, so that the keep-alives ctypes
        makes for pointers stay with the arena, not with the array returned)
        or a ctypes array of ``n`` values (copied with one ``memmove``). It is
        stored while the arena is busy; if storing raises (an item's
        ``__index__``, say), the slots and what was committed go back: all or
        nothing.
        """
        # (the caller's checks ran code of the caller's: ``__index__``, an
        # iterator; it may have closed the arena or be running inside a call)
        self._enter_mut()
        if not self._size:
            return exact_array_type(self._ctype, n).from_buffer(self._part.root, self._offset)
        cursor = self._cursor
        if n > self._capacity - cursor.count():
            return None
        array_type = exact_array_type(self._ctype, n)
        committed = self._store.committed
        token = self._begin("change")  # no re-entry (a finalizer) while the window changes
        k = -1  # (the first slot, once the slots are counted)
        try:
            self._busy = ref(token)
            self._halt()
            first = cursor.count()  # (read now: nothing can take a slot until the end)
            if n > self._capacity - first:
                self._busy = None
                return None
            self._refuse_if_held()
            if first + n > cursor.hi and not self._extend_to(first + n):
                if self._store.committed != committed:
                    self._uncommit(committed)
                self._busy = None
                return None
            if first < cursor.dirty and (zero or self._pointers):
                size = self._size
                end = min(first + n, cursor.dirty)
                ctypes.memset(self._root_address() + first * size, 0, (end - first) * size)
            array = array_type.from_buffer(self._part.arrays[_SLOTS], first * self._size)
            k = first  # (first: an interrupt after the next line gives the slots back)
            cursor.win = Window(k + n, NOTHING)  # counted from here
            if fill is None or not n:
                pass
            elif type(fill) is list:
                slots = self._part.arrays[_SLOTS]
                for i, item in enumerate(fill, k):
                    slots[i] = item
                del slots
            else:
                memoryview(array).cast("B")[:] = memoryview(fill).cast("B")
            if self._pointers:
                self._watch(array, k)
            # No ``finally``: its lines would run after the slots are counted,
            # and an interrupt landing there would lose them. An interrupt
            # before ``return`` gives them back.
            self._busy = None
            return array
        except BaseException:
            self._busy = ref(token)
            try:
                array = slots = None  # (the traceback keeps this frame: no view)
                if k >= 0:
                    self._restart(k)  # (the slots are dirty from here on: zeroed when reused)
                if self._store.committed != committed:
                    self._uncommit(committed)
            finally:
                self._busy = None
            raise

    def alloc_extend(self, items: Iterable[Any]) -> Array[T] | None:
        """A ``ctype * k`` array holding a copy of each of the ``k`` items, in order.

        Each item is what ``alloc_raw`` accepts. None when they do not all fit.
        All or nothing: on None, or on an item of the wrong kind
        (``TypeError``), the arena is as it was; an iterator is read no
        further than one item past the free slots. A ctypes array of
        ``ctype`` is copied with one ``memmove`` (element by element when the
        type holds pointers, so that the keep-alives ctypes needs come along).

        >>> import ctypes
        >>> from linalloc import TypedArena
        >>> arena = TypedArena(ctypes.c_int32, 8)
        >>> list(arena.alloc_extend(range(5)))
        [0, 1, 2, 3, 4]
        >>> source = (ctypes.c_int32 * 3)(7, 8, 9)
        >>> list(arena.alloc_extend(source)), len(arena)
        ([7, 8, 9], 8)
        >>> print(arena.alloc_extend([1]))
        None
        """
        self._enter_mut()
        ctype = self._ctype
        if isinstance(items, ctypes.Array) and getattr(items, "_type_", None) is ctype:
            n = len(items)
            if self._pointers:  # element by element: the keep-alives come along
                converted: list[Any] = items[0:n]
            else:
                return self._take_slots(n, False, items)  # type: ignore[no-any-return]
        else:
            free = self._capacity - self._cursor.count() if self._size else sys.maxsize
            iterator = iter(items)
            converted = [convert(ctype, item) for item in islice(iterator, free)]
            if len(converted) == free:
                for _ in islice(iterator, 1):
                    return None  # one more than fits
        return self._take_slots(len(converted), False, converted)  # type: ignore[no-any-return]

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
        self._enter_view()
        n = self._cursor.count()
        regions = self._ledger.regions
        if not self._size:
            return map(self._part.root.__getitem__, range(0))
        if len(regions) == 1 or not n:
            return map(self._slots_at(n - 1).__getitem__, range(n))
        # Each value from its own region's array: a value of memory allocated
        # before a checkpoint does not stop a rewind to it.
        ends = [region.start for region in regions[1:]] + [n]
        return chain.from_iterable(
            [
                map(region.parts[-1].arrays[_SLOTS].__getitem__, range(region.start, min(end, n)))
                for region, end in zip(regions, ends)
                if region.start < n
            ]
        )

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
        self._enter_view()
        n = self._cursor.count()
        if not self._size:
            return exact_array_type(self._ctype, n).from_buffer(self._part.root, self._offset)
        array = exact_array_type(self._ctype, n).from_buffer(self._slots_at(n - 1))
        return self._watch(array, 0) if self._pointers else array

    # -- dropping ----------------------------------------------------------

    def _drop_after(self, position: int) -> BaseException | None:
        """Drop the values from slot ``position`` on, newest first; the first error.

        A ``KeyboardInterrupt`` in a callback stops the drops: the values
        dropped so far are no longer counted, the others stay live.
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
            arr = self._part.arrays[_SLOTS]
            return drop_values(drop, arr, cursor, position)  # (dead slots are passed over)
        finally:
            del arr
            self._busy = previous
            del token

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

    def _used_bytes(self) -> int:
        return self._offset + self._cursor.count() * self._size

    def _after_trim(self) -> None:
        if not self._size:
            return  # zero-size values take no slots (and have no slot iterator to restart)
        live = self._cursor.count()  # before ``hi`` changes: count() is derived from it
        self._cursor.hi = self._usable_slots()
        self._restart(live)

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
