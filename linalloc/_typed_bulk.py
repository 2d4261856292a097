"""Many values at once: ``alloc_many``, ``alloc_extend``, iteration and ``as_array``.

An array over many slots is a view like a value. ctypes keeps the targets of
pointers stored through it in the array's own ``_objects``: for types that
hold pointers, the arena watches the array (``_watch``) and, once it is gone,
moves those to the slot arrays before a count, since the values still point
at them.
"""

from __future__ import annotations

import ctypes
import sys
from _weakref import ref
from itertools import chain, islice, repeat

from ._layout import check_count
from ._slots import NOTHING, Window, forget_dead_from
from ._store import exact_array_type, laid_out_as
from ._typed_state import _SLOTS, T, TypedState
from ._unbound import ARRAY_ITEM, ARRAY_LEN, ARRAY_SET, CLASS_DICT, MRO, from_buffer
from ._values import convert
from ._watch import settle, watch

TYPE_CHECKING = False  # typing takes milliseconds to import: for type checkers only
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from ctypes import Array
    from typing import Any

    from ._views import Watching


# (id(type of items), id(ctype)) -> (those two, the answer); bounded. By identity.
_arrays_of: dict[tuple[int, int], tuple[Any, Any, bool]] = {}


def _is_array_of(items: Any, ctype: Any) -> bool:
    """Whether ``items`` is a ctypes array of ``ctype``, as ctypes laid it out.

    By its real type (a ``__class__`` or a metaclass can lie to ``isinstance``
    and ``getattr``), and by the buffer ctypes made for that type (``_type_``
    can be set on a class after ctypes laid it out). The answer is kept per
    type: what ctypes laid out for a type never changes, and a label set
    later changes nothing the copy reads (same layout, same bytes).
    """
    kind = type(items)
    key = (id(kind), id(ctype))
    found = _arrays_of.get(key)
    if found is not None and found[0] is kind and found[1] is ctype:
        return found[2]
    answer = (
        any([klass is ctypes.Array for klass in MRO(kind)])
        and CLASS_DICT(kind).get("_type_") is ctype
        and laid_out_as(kind) == laid_out_as(exact_array_type(ctype, ARRAY_LEN(items)))
    )
    if len(_arrays_of) >= 1024:
        _arrays_of.clear()
    _arrays_of[key] = (kind, ctype, answer)
    return answer


class BulkAllocation(TypedState[T]):
    """A typed arena's calls that take, or show, many slots at once."""

    def _settle(self) -> Watching:
        """Before a count: what the watched arrays that are gone kept goes to the slot arrays.

        (See ``_watch.settle``.) An array over held memory (made by a drop
        callback) may span slots that stay, below the position: their
        entries go to the memory that stays; the others stay with the held
        memory (nothing is allocated there while it is held).
        """
        ledger = self._ledger
        if ledger.out:  # (entries an interrupt kept out: back first, or a copy misses them)
            ledger.put_back()
        position = self._position()
        slots_at = self._slots_at

        def held_target(k: int) -> Any:
            return slots_at(k) if k < position else None

        current = [part for region in ledger.regions for part in region.parts]
        held = [held.part for held in ledger.held]
        return settle([(current, slots_at), (held, held_target)])

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
            return from_buffer(exact_array_type(self._ctype, n), self._part.root, self._offset)
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
            forget_dead_from(cursor, first)
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
            array = from_buffer(array_type, self._part.arrays[_SLOTS], first * self._size)
            k = first  # (first: an interrupt after the next line gives the slots back)
            cursor.win = Window(k + n, NOTHING)  # counted from here
            if fill is None or not n:
                pass
            elif type(fill) is list:
                slots = self._part.arrays[_SLOTS]
                for i, item in enumerate(fill, k):
                    ARRAY_SET(slots, i, item)
                del slots
            else:
                memoryview(array).cast("B")[:] = memoryview(fill).cast("B")
            if self._pointers:
                watch(array, k)
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
        if _is_array_of(items, ctype):
            n = ARRAY_LEN(items)
            if self._pointers:  # element by element: the keep-alives come along
                converted: list[Any] = [
                    convert(ctype, item) for item in ARRAY_ITEM(items, slice(0, n))
                ]
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
        n = self._shown_count()
        regions = self._ledger.regions
        if not self._size:
            return map(ARRAY_ITEM, repeat(self._part.root), range(0))
        if len(regions) == 1 or not n:
            return map(ARRAY_ITEM, repeat(self._slots_at(n - 1)), range(n))
        # Each value from its own region's array: a value of memory allocated
        # before a checkpoint does not stop a rewind to it.
        ends = [region.start for region in regions[1:]] + [n]
        return chain.from_iterable(
            [
                map(
                    ARRAY_ITEM,
                    repeat(region.parts[-1].arrays[_SLOTS]),
                    range(region.start, min(end, n)),
                )
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
        n = self._shown_count()
        if not self._size:
            return from_buffer(exact_array_type(self._ctype, n), self._part.root, self._offset)
        array = from_buffer(exact_array_type(self._ctype, n), self._slots_at(n - 1))
        return watch(array, 0) if self._pointers else array
