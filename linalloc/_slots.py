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
from _weakref import ref

from ._store import array_type, laid_out_as
from ._unbound import ARRAY_ITEM, from_buffer
from ._unbound import MRO as _MRO
from ._unbound import OBJECTS as _OBJECTS
from ._views import _SOURCE_KEY

TYPE_CHECKING = False  # typing takes milliseconds to import: for type checkers only
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


# id(ctype) -> (ctype, its slot type). By identity: a metaclass may make types equal.
_slot_types: dict[int, tuple[type[Any], type[Any]]] = {}


def _simple_repr(self: Any) -> str:
    return f"{type(self).__mro__[1].__name__}({self.value!r})"


def _simple_reduce(self: Any) -> Any:
    """Pickle and copy a value as a plain instance of the arena's ctype.

    (The slot subclass is made at run time: pickle could not find it by name.)
    As for a plain one, ``ValueError`` for a pointer (``c_char_p``,
    ``c_void_p``...): a copy would hold the address and keep nothing alive.
    """
    base: Any = type(self).__mro__[1]
    plain: Any = base.from_buffer_copy(self)
    return plain.__reduce__()


def _laid_out(ctype: Any) -> tuple[str, tuple[int, ...] | None, int]:
    """How ctypes laid out ``ctype``'s values: read from an array of one, whose
    buffer is ctypes' own (a value's own ``__buffer__``, from Python 3.12 on, can
    answer any format)."""
    return laid_out_as(array_type(ctype, 1))


def slot_type(ctype: type[Any]) -> type[Any]:
    """The element type of the slot array.

    Indexing a ctypes array of a *simple* type (``c_int64``...) returns a plain
    Python value, not an object living in the array. A trivial subclass makes
    indexing return instances instead; they are ``isinstance(v, ctype)`` and
    read and write through ``.value``.
    """
    if not issubclass(ctype, ctypes._SimpleCData) or _MRO(ctype)[1] is not ctypes._SimpleCData:
        return ctype  # Structures, arrays, pointers: indexing already gives instances
    entry = _slot_types.get(id(ctype))
    if entry is None or entry[0] is not ctype:
        try:
            made: Any = type(
                ctype.__name__,
                (ctype,),
                {"__repr__": _simple_repr, "__reduce__": _simple_reduce, "__slots__": ()},
            )
        except Exception as exc:  # (the metaclass's code: whatever it raises)
            raise TypeError(
                f"{ctype.__name__}: its metaclass cannot make a subclass of it: {exc}"
            ) from None
        # (``type()`` hands the call to ``ctype``'s metaclass, which may answer
        # anything: a type of another size would step through memory wrongly)
        try:
            mro, own = _MRO(made), _MRO(ctype)
            same = (
                isinstance(made, type)
                and len(mro) == len(own) + 1
                and all([a is b for a, b in zip(mro[1:], own)])
                and ctypes.sizeof(made) == ctypes.sizeof(ctype)
                and _laid_out(made) == _laid_out(ctype)
            )
        except TypeError:  # (not a ctypes type: no size, no array of it)
            same = False
        if not same:
            raise TypeError(
                f"{ctype.__name__}: its metaclass answers another type for a subclass of it"
            )
        entry = _slot_types[id(ctype)] = (ctype, made)
    return entry[1]


#: A window's source once it has nothing left to hand out.
NOTHING: tuple[()] = ()


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
    on are known to be zero. ``dead``: used slots that hold no live value:
    their values were dropped (the memory is not freed yet), or never handed out
    (a constructor that allocated from its own arena, then raised); they are
    never dropped. ``floor``: the slots from it up to the count are dead too
    (the values a drop has dropped so far, newest first: one store each, no
    set of them). With a drop callback the :class:`Dropper` shares this
    object, so then it refers to no slot array and no value.
    """

    __slots__ = ("hi", "dirty", "win", "dead", "floor")

    def __init__(self, hi: int) -> None:
        self.hi = hi
        self.dirty = 0
        self.win = Window(0, NOTHING)
        #: replaced as a whole or added to (one operation each)
        self.dead: set[int] = set()
        self.floor = NO_FLOOR

    def count(self) -> int:
        win = self.win
        return win.end - length_hint(win.source)

    def fold_floor(self, below: int) -> None:
        """Move the dead slots ``[floor, below)`` into ``dead``; no floor afterwards.

        (Rare: after a drop a ``KeyboardInterrupt`` stopped. The set is stored
        first: an interrupt in between leaves the slots marked twice.)
        """
        floor = self.floor
        if floor < below:
            self.dead = self.dead | set(range(floor, below))
        self.floor = NO_FLOOR


#: ``Cursor.floor`` when no drop has left dead slots above it.
NO_FLOOR = sys.maxsize


def forget_dead_from(cursor: Cursor, k: int) -> None:
    """Forget dead slots from ``k`` on: the count went down to ``k``, or slots from
    ``k`` are about to be handed out. Those below ``k`` stay dead.

    The count goes down before the dead slots above it are forgotten: an
    interrupt landing in between leaves entries there, which must not make
    the values handed out next be passed over by the drops.
    """
    if cursor.floor != NO_FLOOR:
        cursor.fold_floor(k)
    dead = cursor.dead
    if dead and max(dead) >= k:
        cursor.dead = {slot for slot in dead if slot < k}


def drop_values(
    drop: Callable[[Any], object], array: Any, cursor: Cursor, lo: int
) -> BaseException | None:
    """Drop the live values down to slot ``lo``, newest first; return the first error.

    Dead slots (``cursor.dead``, and from ``cursor.floor`` up) are passed over,
    not dropped. Before each call the value's slot is made dead (one store of
    ``cursor.floor``: the slots above it are dead already); the count does not
    change (the caller lowers it once the memory is freed or held): an
    exception or a signal landing anywhere leaves every value live and not
    dropped, dropped and dead, or (landing between the two) dead and not
    dropped: never dropped twice, and no slot in use uncounted. Every value
    is dropped even when a callback raises an ``Exception``; any other
    ``BaseException`` (KeyboardInterrupt) stops the drops at once. The first
    error's traceback starts at the callback's frame.
    """
    first: BaseException | None = None
    value = None
    n = cursor.count()
    if cursor.floor < n:  # (dead slots an earlier, stopped drop left)
        cursor.fold_floor(n)
    dead = cursor.dead
    try:
        for k in range(n - 1, lo - 1, -1):
            if k in dead:
                cursor.floor = k  # (keeps ``[k, n)`` one run)
                continue
            value = ARRAY_ITEM(array, k)
            cursor.floor = k
            try:
                drop(value)
            except Exception as exc:
                if first is None:
                    first = exc
                    tb = exc.__traceback__
                    exc.__traceback__ = tb.tb_next if tb is not None else None
                    del tb
            value = None
    finally:
        # A callback's frame kept by a traceback refers to this one (f_back):
        # it must not keep the slot array, nor a value.
        del array, value
    return first


#: The key, in the ``_objects`` of the slot array a :class:`Dropper` makes, of
#: the keep-alives it carried over from the arena's own slot arrays.
_CARRIED = "linalloc:carried"

# id(slot array type) -> (it, its subclass that carries keep-alives when it dies)
_carrying_types: dict[int, tuple[type[Any], type[Any]]] = {}


def carrying_type(array_type: type[Any]) -> type[Any]:
    """A subclass of ``array_type`` whose instances carry their keep-alives to the dropper.

    For the slot arrays of an arena that has a drop callback and a type that
    holds pointers: ctypes keeps the target of a pointer stored in a value
    in its slot array's ``_objects``. When the arena is collected, the
    :class:`Dropper` hands the values to the callback from a slot array of
    its own; before each of the arena's slot arrays dies (``__del__`` sees
    its ``_objects`` whole, even in a collected cycle), its keep-alives go to
    the dropper, so that a value the callback keeps keeps them too.
    """
    entry = _carrying_types.get(id(array_type))
    if entry is None or entry[0] is not array_type:
        meta: Any = type(array_type)
        made = meta(array_type.__name__, (array_type,), {"__del__": _carry})
        if len(_carrying_types) >= 1024:
            _carrying_types.clear()
        entry = _carrying_types[id(array_type)] = (array_type, made)
    return entry[1]


def _carry(array: Any) -> None:
    """``__del__`` of a slot array of a :func:`carrying_type`."""
    objects = _OBJECTS(array)
    source = objects.get(_SOURCE_KEY) if objects else None
    dropper = getattr(getattr(source, "obj", None), "_linalloc_dropper", None)
    if dropper is not None:
        dropper.carry(objects)


class Dropper:
    """Drops what an unreachable arena still held, once; errors go to sys.unraisablehook.

    Every root of the arena refers to it, so it is collected with the last of
    them: when the arena and every value are unreachable. The drop callback
    may refer to the arena's owner (``drop=self.release``): the cycle is
    collected like any other, and this ``__del__`` runs first (PEP 442).
    Slots in ``cursor.dead`` (never handed out) are not dropped, as by
    ``close()``. Nothing runs while the interpreter shuts down.

    ``carried``: the keep-alives of the arena's slot arrays that died once
    the arena was gone (:func:`carrying_type`), for the slot array this
    makes to hold. ``end``: the count of values dropped at collection, -1
    before (and once no value was kept).
    """

    __slots__ = ("drop", "ctype", "store", "offset", "cursor", "arena", "carried", "end")

    def __init__(
        self,
        drop: Callable[[Any], object],
        ctype: Any,
        store: Any,
        offset: int,
        cursor: Cursor,
        arena: Callable[[], object],
    ) -> None:
        self.drop: Callable[[Any], object] | None = drop
        self.ctype = ctype
        self.store = store
        self.offset = offset
        self.cursor = cursor
        self.arena = arena  # (a weak reference: the arena, while it lives)
        self.carried: list[Any] = []
        self.end = -1

    def detach(self) -> None:
        """Nothing left to drop (the arena dropped its values itself)."""
        self.drop = None

    def carry(self, objects: dict[str, Any]) -> None:
        """Keep the keep-alives of live values from a dying slot array's ``objects``.

        Only once the arena is gone (what a living arena lets go of is freed
        values', or was copied to its newest slot array) and its values are
        still to be dropped, or were dropped and one was kept. An entry whose
        key names no slot (not one ctypes makes) is kept too.
        """
        end = self.end
        if end < 0:
            if self.drop is None or self.arena() is not None or sys.is_finalizing():
                return
            end = self.cursor.count()
        carried = self.carried
        for key, entry in list(objects.items()):
            if key == _SOURCE_KEY or entry is None:
                continue
            head, _, last = key.rpartition(":")
            try:
                slot = int(last, 16) if not head.startswith("linalloc") else -1
            except ValueError:
                slot = -1
            if slot < end:
                carried.append(entry)

    def __del__(self) -> None:
        drop = self.drop
        if drop is None or sys.is_finalizing():
            return
        keeping = False
        try:
            cursor = self.cursor
            store = self.store
            # Before any code of the caller's runs: the arena, if a callback (or
            # its owner's finalizer) brings it back to life, hands out no memory
            # (its checkpoints' regions are those of the values dropped here: a
            # value it handed out again could be freed by a rewind that does not
            # see it; with none to drop, what it handed out would never be
            # dropped: this object runs once), and holds no value (they are this
            # object's to drop, once: a reset() or close() of the arena, even
            # from a callback, drops none of them).
            store.retired = True
            cursor.hi = 0
            n = cursor.count()
            self.end = n  # (slot arrays finalized later in a collected cycle still carry)
            cursor.dirty = max(cursor.dirty, n)
            # The arena's value iterator shares the window's range iterator:
            # exhaust it in one call (no signal lands in the middle), then
            # replace the window: until then, a value the iterator hands out
            # is counted.
            source = cursor.win.source
            list(source)  # (C code: the items of a range iterator, in one call)
            cursor.win = Window(n, NOTHING)
            if n:
                mine = Cursor(0)
                mine.dead = cursor.dead
                mine.floor = cursor.floor
                mine.win = Window(n, NOTHING)  # (first: an interrupt then drops none)
                cursor.win = Window(0, NOTHING)
                cursor.dead = set()
                cursor.floor = NO_FLOOR
                # A root made here does not refer to this object: a value the
                # callback keeps keeps the memory (the root holds the store,
                # and a lazy store its reservation), not a second drop.
                root = store.root
                kept = ref(root)
                array = from_buffer(array_type(slot_type(self.ctype), n), root, self.offset)
                del root
                # What the values' pointers point to lives while a value kept lives.
                _OBJECTS(array)[_CARRIED] = self.carried
                error = drop_values(drop, array, mine, 0)
                del array, mine
                if kept() is not None:  # a callback kept a value
                    keeping = True
                del store, kept
                if error is not None:
                    raise error
        finally:
            if not keeping:  # nothing kept: nothing more to carry
                self.end = -1
                self.carried = []  # (a new list: a kept value may hold the old one)
            self.detach()
