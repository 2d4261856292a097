"""View accounting: how an arena knows that a view of its memory is alive (rule 2).

Every view an arena hands out (a value, a memoryview, an array) is made from a
*tracked object* of the arena and holds a reference to it, directly or through
the objects ctypes and memoryview keep. So the CPython reference counts of the
tracked objects, less the references the arena itself holds, tell whether a
view lives; no view is registered one by one.

The objects, from the bottom up:

- the **store** owns the memory (a string buffer, or a reservation). Every
  root refers to it, so the memory lives as long as anything made from it
  (rule 1); the store itself is private and not counted.
- a **part**: one *root* (a ``c_char`` array over the memory, made by the
  store) and the *arrays* the arena made over it (a typed arena's slot array,
  a bump arena's per-type rows). An array made from a root holds one
  reference to it, so an array the part no longer lists, if something still
  holds it, shows on the root.
- a **region**: the memory from one checkpoint's position to the next one's.
  A region's views are made from its own parts only, so that ``rewind(cp)``
  can count the views of the memory after ``cp`` apart from the others. A lazy
  arena adds a part to its last region each time its committed memory grows
  (no ctypes object spans memory that is not committed).

The invariant, for every part ``p``::

    refs(p) - own(p) >= the number of live views made from p's objects

with equality whenever no arena method is running, where ``refs(p)`` is the
sum of the reference counts of ``p.root`` and ``p.arrays`` and ``own(p)`` the
references the arena holds: one for each object (the part's slot for it), one
from each array to the root, and one from ``p.take`` (a typed arena's value
iterator) when set. ``own(p)`` is *derived* from the part's shape each time it
is needed, never kept as a running total, so no sequence of steps, and no
exception or signal landing between two of them, can leave it stale. Values
made ahead for a window (not handed out yet) each hold one reference too; the
arena passes their number to :meth:`Ledger.live`, and they always belong to
the newest part.

Every state change keeps the invariant at every bytecode boundary (an
exception or a signal may land between any two lines) by its order: what it
adds is made first, while nothing counts it as the arena's own (an
over-count), and is registered by one store; what it removes goes in one
store too. Over-counting is safe: a ``reset()`` refused. Under-counting never
happens:

==========================  ===================================================
change                      why the invariant holds throughout
==========================  ===================================================
new part (lazy growth,      made (root, arrays) while unregistered: nothing
checkpoint, rewind)         counted refers to it; registered by one store of
                            ``Region.parts`` or ``Ledger.regions`` before any
                            value is made from it; the part it replaces is
                            forgotten only after the arena switched to it
new bump row                made (its root reference over-counts by one), then
                            one dict store registers it
typed window opened         its values made first (each over-counts by one),
                            then one store of ``Cursor.win`` makes ``ahead``
                            count them; ``alloc()`` meanwhile takes the slow
                            path, which installs what an interrupt left out
value handed out            ``list.pop``: out of ``ahead``, into the caller
window closed               the arena's other hold on the values (``_take``)
                            goes first; one store of an empty window frees them
drop-path iterator          the new ``map`` made first, then stored in
                            ``part.take`` (the old one freed in that store)
part forgotten              only with no view left (lazy growth), or once a
                            rewind found none (``free_after``); still viewed
                            after drop callbacks: kept, as held (``hold_after``).
                            A part no longer listed that something still holds
                            keeps the store, so the memory, alive (rule 1)
==========================  ===================================================

The reference counts are read while the collector may run: an unreachable
cycle holding a view over-counts until it is collected, so a refusal
collects once and counts again.
"""

from __future__ import annotations

import ctypes
import gc
from _operator import getitem
from _weakref import ref
from itertools import repeat
from sys import getrefcount

from ._address import _CData
from ._store import root_over

TYPE_CHECKING = False  # typing takes milliseconds to import: for type checkers only
if TYPE_CHECKING:
    from typing import Any


class Part:
    """A root over the arena's memory and the arrays the arena made from it."""

    __slots__ = ("root", "arrays", "take")

    def __init__(self, root: Any) -> None:
        self.root = root
        #: key -> ctypes array made with ``from_buffer(root, ...)``
        self.arrays: dict[Any, Any] = {}
        #: a typed arena's ``map`` of values over the slot array, or None
        self.take: Any = None


def _refs(part: Part) -> int:
    """The reference counts of a part's objects (as :func:`_calibrate` reads them)."""
    return getrefcount(part.root) + sum(map(getrefcount, part.arrays.values()))


def _calibrate() -> tuple[int, int, int]:
    """The references a part's shape accounts for, read off a part with no view.

    Returns (for the root alone, for each array, for ``take``). Measured
    rather than written down: what a call's arguments and a getter's result
    add differs between CPython versions.
    """
    buffer = ctypes.create_string_buffer(8)
    part = Part(root_over(ctypes.addressof(buffer), 8, buffer))
    root_only = _refs(part)
    part.arrays[0] = (ctypes.c_char * 8).from_buffer(part.root)
    per_array = _refs(part) - root_only
    part.take = map(getitem, repeat(part.arrays[0]), iter(()))
    per_take = _refs(part) - root_only - per_array
    return root_only, per_array, per_take


_ROOT_OWN, _ARRAY_OWN, _TAKE_OWN = _calibrate()


def part_views(part: Part) -> int:
    """Live views made from one part's objects (see the invariant above)."""
    own = _ROOT_OWN + _ARRAY_OWN * len(part.arrays)
    if part.take is not None:
        own += _TAKE_OWN
    return _refs(part) - own


class Held:
    """A part whose memory was freed while a view of it lived, held *weakly*.

    Nothing of the arena keeps its root and arrays any more: they live
    exactly as long as a view does (and with them the keep-alive entries
    ctypes stored for the freed values), so every reference they have is a
    view's, but those of arrays to the root. Once none is left, nothing is.
    """

    __slots__ = ("refs",)

    def __init__(self, part: Part) -> None:
        self.refs = [ref(part.root), *[ref(array) for array in part.arrays.values()]]

    def views(self) -> int:
        alive = [obj for obj in [known() for known in self.refs] if obj is not None]
        if not alive:
            return 0
        arrays = len(alive) - (self.refs[0]() is not None)
        return sum(map(getrefcount, alive)) - _LISTED * len(alive) - arrays


def _listed() -> int:
    """The references of an object held by one list only, as :meth:`Held.views` reads them."""
    alive = [bytearray()]
    return sum(map(getrefcount, alive))


_LISTED = _listed()


def _from_buffer_key() -> str:
    """The ``_objects`` key under which ``from_buffer`` keeps its source alive."""
    array: Any = (ctypes.c_char * 1).from_buffer(bytearray(1))
    key: str = next(iter(array._objects))
    return key


_SOURCE_KEY = _from_buffer_key()


class Region:
    """The memory from ``start`` (a position of the arena) to the next region's.

    ``marks``: the serial numbers of the valid checkpoints taken at ``start``.
    A checkpoint refers to its region weakly; it is valid while its region is
    one of the ledger's and its serial is marked there, so that validity
    changes with the same stores as the regions themselves.
    """

    __slots__ = ("start", "parts", "marks", "__weakref__")

    def __init__(self, start: int, *parts: Part) -> None:
        self.start = start
        #: newest last; replaced as a whole (one store), never changed in place
        self.parts: tuple[Part, ...] = parts
        self.marks: tuple[int, ...] = ()


class Ledger:
    """The tracked objects of one arena, by region, and the counts read off them."""

    __slots__ = ("regions", "held")

    def __init__(self) -> None:
        #: oldest first; ``regions[0].start == 0``; appended to or replaced as a
        #: whole (one operation each)
        self.regions: list[Region] = []
        #: parts of memory a rewind freed while a drop callback kept a value:
        #: not handed out again while such a value lives
        self.held: tuple[Held, ...] = ()

    # -- the counts -----------------------------------------------------------

    def live(self, since: int = 0, ahead: int = 0) -> int:
        """Live views of the memory of ``regions[since:]`` (and of held regions).

        ``ahead``: values made ahead of time from the newest part.
        """
        count = -ahead
        for region in self.regions[since:]:
            for part in region.parts:
                count += part_views(part)
        for held in self.held:
            count += held.views()
        return count

    def held_views(self) -> int:
        """Live views of the held regions; forgets them once there are none."""
        count = sum([held.views() for held in self.held])
        if count <= 0:
            self.held = ()
        return count

    def index(self, region: Region | None) -> int:
        """Where ``region`` is among the regions (by identity), or -1."""
        for at, known in enumerate(self.regions):
            if known is region:
                return at
        return -1

    # -- changes ----------------------------------------------------------------

    def open_region(self, start: int, part: Part) -> None:
        """Begin a region at ``start`` whose views are made from ``part``."""
        self.regions.append(Region(start, part))

    def add_part(self, part: Part) -> None:
        """Make ``part`` the newest of the last region (its older parts stay listed)."""
        region = self.regions[-1]
        region.parts = (*region.parts, part)

    def prune_parts(self) -> None:
        """Forget the last region's older parts that no view needs any more.

        Call once the arena makes its views from the newest part. ctypes'
        keep-alive entries of a forgotten part's arrays (the targets of
        pointers stored in the arena) are copied into the same array of the
        newest part; a part whose entries cannot be carried over is kept.
        """
        region = self.regions[-1]
        newest = region.parts[-1]
        kept = [
            old
            for old in region.parts[:-1]
            if part_views(old) > 0 or not _carry_keepalives(old, newest)
        ]
        region.parts = (*kept, newest)

    def free_after(self, index: int, part: Part, serial: int | None) -> None:
        """Free the regions from ``index`` on; ``part`` serves ``regions[index]`` anew.

        Called once no view of them is left (else :meth:`hold_after`); their
        parts are dropped, and with their arrays the keep-alive entries ctypes
        stored for the freed values (see :func:`reusable`). With a ``serial``,
        ``regions[index]`` stays (with the checkpoints marked up to it);
        without one (a reset) a new region takes its place and every
        checkpoint becomes invalid.
        """
        regions = self.regions
        if serial is None:
            self.regions = [*regions[:index], Region(regions[index].start, part)]
            return
        region = regions[index]
        region.marks = tuple([mark for mark in region.marks if mark <= serial])
        region.parts = (part,)  # (``part`` may also be the last region's until the next line)
        self.regions = regions[: index + 1]

    def hold_after(self, index: int, part: Part, serial: int | None) -> None:
        """Like :meth:`free_after`, but the freed memory is still viewed: hold it."""
        regions = self.regions
        region = regions[index]
        freed = [Held(old) for later in regions[index:] for old in later.parts if old is not part]
        self.held = (*self.held, *freed)  # (counted twice until the next store: over)
        if serial is None:
            self.regions = [*regions[:index], Region(region.start, part)]
            return
        region.marks = tuple([mark for mark in region.marks if mark <= serial])
        region.parts = (part,)
        self.regions = regions[: index + 1]

    def release(self) -> None:
        """Forget everything (the arena is closed)."""
        self.regions = []
        self.held = ()

    # -- ctypes keep-alives -----------------------------------------------------

    def prune_keepalives(self, lo: int, hi: int, since: int, cut: int) -> None:
        """Forget keep-alive entries of the arena's arrays that hold only its own memory.

        Storing a pointer in a value (``node.next = ctypes.pointer(other)``), or a
        struct copied out of another value, makes ctypes keep the source in the
        array's ``_objects``. A source inside the arena needs no keeping (its
        memory lives as long as the array), yet the entry would count as a
        live view for ever. ``[lo, hi)``: the arena's memory. Before a rewind
        of ``regions[since:]``, the memory from ``cut`` on is about to be
        freed: an entry of an earlier region that holds some of it is a
        pointer from memory that stays into memory that goes, and is kept
        (it stops the rewind until the field is cleared).
        """
        regions = self.regions
        parts = [part for region in regions for part in region.parts]
        ours = {id(obj) for part in parts for obj in (part.root, *part.arrays.values())}
        for at, region in enumerate(regions):
            end = cut if at < since else hi
            for part in region.parts:
                for array in part.arrays.values():
                    objects = array._objects
                    if not objects:
                        continue
                    for key, entry in list(objects.items()):
                        if key != _SOURCE_KEY and _arena_only(entry, lo, end, ours, {id(objects)}):
                            del objects[key]
        del parts, regions


def _carry_keepalives(old: Part, new: Part) -> bool:
    """Copy the keep-alive entries of ``old``'s arrays into ``new``'s; False if one has no twin.

    The entries are copied, not moved: ``old``'s dicts may be shared.
    """
    for key, array in old.arrays.items():
        objects = array._objects
        if not objects or len(objects) == 1 and _SOURCE_KEY in objects:
            continue
        twin = new.arrays.get(key)
        if twin is None:
            return False
        twin._objects.update(
            {name: entry for name, entry in objects.items() if name != _SOURCE_KEY}
        )
    return True


def reusable(part: Part, lo: int, hi: int) -> bool:
    """Whether ``part`` can serve again once the values made from it are freed.

    Its arrays' keep-alive entries (all of freed values) must go. Entries that
    hold only the arena's own memory (``[lo, hi)``) are deleted here. Any
    other entry may be shared: ctypes puts an array's whole ``_objects`` dict
    into the keep-alives of every struct copied out of it, and the copy needs
    what it keeps. Such a dict is not changed; the part is not reusable, and
    the arena makes a fresh one, so the old dict lives exactly as long as
    something still holds it.
    """
    ours = {id(obj) for obj in (part.root, *part.arrays.values())}
    clean = True
    for array in part.arrays.values():
        objects = array._objects
        if not objects:
            continue
        for key, entry in list(objects.items()):
            if key == _SOURCE_KEY:
                continue
            if _arena_only(entry, lo, hi, ours, {id(objects)}):
                del objects[key]
            else:
                clean = False
    return clean


def _arena_only(entry: Any, lo: int, hi: int, ours: set[int], seen: set[int]) -> bool:
    """True if a keep-alive entry holds nothing but memory in ``[lo, hi)``.

    ``ours``: the ids of the arena's roots and arrays (memoryviews of them are its own).
    """
    if entry is None or id(entry) in seen:
        return True
    seen.add(id(entry))
    if isinstance(entry, dict):
        return all(_arena_only(item, lo, hi, ours, seen) for item in entry.values())
    if isinstance(entry, tuple):  # (a pointer field set from an array: its _objects, itself)
        return all(_arena_only(item, lo, hi, ours, seen) for item in entry)
    if isinstance(entry, memoryview):
        # a view of one of this arena's roots, or of another arena's: what it
        # keeps alive is memory, which every value of that arena keeps anyway
        return id(entry.obj) in ours or hasattr(entry.obj, "_linalloc_owner")
    if isinstance(entry, _CData):
        cdata: Any = entry
        start = ctypes.addressof(cdata)
        if not lo <= start <= start + ctypes.sizeof(cdata) <= hi:
            return False
        return _arena_only(cdata._objects, lo, hi, ours, seen)
    return False


def collect_and_count(count: Any) -> int:
    """``count()``, and if views seem alive, again after a garbage collection."""
    live: int = count()
    if live > 0:
        gc.collect()
        live = count()
    return live
