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
part held                   ``Held`` keeps the part strongly: its views count
                            as a listed part's, whatever the collector does
own links left out          keep-alive entries that hold the arena's own
                            memory are taken out for one count and put back
                            in its ``finally`` (:meth:`Ledger.unlinked`);
                            what else they hold (the bytes of a ``c_char_p``,
                            objects outside the arena) is kept meanwhile, in
                            ``Ledger.out``, so what it refers to still counts;
                            never deleted for good, since a struct copied by
                            value later shares the dict and needs them. One
                            an interrupt kept out stays in ``Ledger.out``
                            and is put back before the next count. Each
                            piece comes back based on the region of its
                            last byte (freed no later than it), worked out
                            before the entry is taken out. Nothing a
                            count takes out can run code as it dies (no
                            ``__del__``, no weak-reference callback, nor in
                            what its memory comes from), and a count reads
                            only through ctypes' and ``type``'s own getters:
                            no code runs in the middle of one. (The library
                            has no callback: what a watched array kept is
                            moved by the arena before a count, see
                            ``_watch``)
==========================  ===================================================

The reference counts are read while the collector may run: an unreachable
cycle holding a view over-counts until it is collected, so a refusal
collects once and counts again. From the count that lets memory be freed to
the store that frees it, the collector is off: a finalizer run in between
could otherwise copy a value about to be freed out by value.
"""

from __future__ import annotations

import ctypes
import gc
from _bisect import bisect_right
from _functools import partial  # type: ignore[import-not-found]
from _operator import contains, getitem
from _weakref import getweakrefcount, getweakrefs
from _weakref import ref as _weak_ref
from gc import get_referents
from itertools import repeat
from sys import getrefcount

from ._address import _CData, address
from ._layout import _ARRAY_META, holds_pointer
from ._store import root_over
from ._unbound import ARRAY_LEN, from_buffer
from ._unbound import B_BASE as _B_BASE
from ._unbound import CLASS_DICT as _CLASS_DICT
from ._unbound import MRO as _MRO
from ._unbound import OBJECTS as _OBJECTS

TYPE_CHECKING = False  # typing takes milliseconds to import: for type checkers only
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    #: Entries taken out of ``_objects`` dicts for a count: (the dict, the key, the
    #: pieces of the arena's memory the entry held, as (part, key, address, size)).
    Undo = list[tuple[Any, Any, list["Piece"]]]
    #: A piece of the arena's memory an entry held: (part, key of its object, None
    #: for the root; address, size; a size of None: a memoryview of the object).
    #: Or something else the entry held, kept as it is for the count: (None, it, 0, None).
    Piece = tuple["Part | None", Any, int, "int | None"]
    #: The live watched arrays (``_watch``) over each part, by ``id`` of part:
    #: weak references.
    Watching = dict[int, list[Any]]


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
    part.arrays[0] = from_buffer(ctypes.c_char * 8, part.root)
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
    """A part whose memory was freed while a view of it lived, held until none is left.

    The ledger keeps the part (its root and arrays) strongly, so its views
    are counted as a listed part's are (:func:`part_views`): every reference
    beyond the part's own is a view's, whatever the collector does. (Weak
    references would be cleared while a cyclic value is collected, before a
    finalizer may bring the value back to life.) Keep-alive entries of held
    arrays that hold only held memory (all of it is freed at once) are
    forgotten before a refusal (:meth:`Ledger.held_views`), so that a cycle
    of pointers within held memory does not hold it for ever.
    """

    __slots__ = ("part",)

    def __init__(self, part: Part) -> None:
        self.part = part

    def views(self) -> int:
        return part_views(self.part)


def _from_buffer_key() -> str:
    """The ``_objects`` key under which ``from_buffer`` keeps its source alive."""
    array: Any = (ctypes.c_char * 1).from_buffer(bytearray(1))
    key: str = next(iter(_OBJECTS(array)))
    return key


_SOURCE_KEY = _from_buffer_key()

#: The key of the watched-array registry in a slot array's ``_objects`` (see
#: ``_watch``): a count never takes it out (it is put back as a tuple of views).
WATCH_KEY = "linalloc:arrays"


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

    __slots__ = ("regions", "held", "out")

    def __init__(self) -> None:
        #: oldest first; ``regions[0].start == 0``; appended to or replaced as a
        #: whole (one operation each)
        self.regions: list[Region] = []
        #: parts of memory a rewind freed while a drop callback kept a value:
        #: not handed out again while such a value lives
        self.held: tuple[Held, ...] = ()
        #: keep-alive entries taken out for a count, until :meth:`put_back`
        self.out: Undo = []

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

    def held_views(self, watching: Watching) -> int:
        """Live views of the held regions; forgets them once there are none.

        Keep-alive entries of held arrays that hold only held memory are left
        out of the count (:meth:`_held_links`), not deleted: a struct copied by
        value out of a held value later shares its array's ``_objects`` and
        needs them. The collector is off from the count to the store that
        forgets the held regions, so that no finalizer can copy a value out
        in between. ``watching``: see :meth:`unlinked`.
        """
        collecting = gc.isenabled()
        try:
            gc.disable()
            count = sum([held.views() for held in self.held])
            if count > 0:
                try:
                    self.put_back()
                    self._held_links(watching)
                    count = sum([held.views() for held in self.held])
                finally:
                    self.put_back()
            if count <= 0:
                self.held = ()
            return count
        finally:
            if collecting:
                gc.enable()

    def _held_links(self, watching: Watching) -> None:
        """Take out, for a count, the keep-alive entries of held arrays that hold only held memory.

        Held memory is freed all at once, when no view of any of it is left:
        a pointer from held memory into held memory needs no keeping. (Into
        the arena's own memory it does: a value kept may follow it.) Call
        with nothing taken out yet (see :meth:`put_back`).
        """
        parts = [held.part for held in self.held]
        if not parts:
            return
        ours = _ours(parts)
        lo = min([ctypes.addressof(part.root) for part in parts])
        hi = max([ctypes.addressof(part.root) + ARRAY_LEN(part.root) for part in parts])
        scope = _Scope(lo, hi, ours, parts, watching, self.out, _on_held_roots)
        for part in parts:
            scope.prune_part(part)

    def index(self, region: Region | None) -> int:
        """Where ``region`` is among the regions (by identity), or -1."""
        for at, known in enumerate(self.regions):
            if known is region:
                return at
        return -1

    # -- changes ----------------------------------------------------------------
    # (Each first puts back what an interrupted count kept out: a part would
    # otherwise be judged, or forgotten, while entries of its arrays are out.)

    def open_region(self, start: int, part: Part) -> None:
        """Begin a region at ``start`` whose views are made from ``part``."""
        self.put_back()
        self.regions.append(Region(start, part))

    def add_part(self, part: Part) -> None:
        """Make ``part`` the newest of the last region (its older parts stay listed)."""
        self.put_back()
        region = self.regions[-1]
        region.parts = (*region.parts, part)

    def prune_parts(self) -> None:
        """Forget the last region's older parts that no view needs any more.

        Call once the arena makes its views from the newest part. ctypes'
        keep-alive entries of a forgotten part's arrays (the targets of
        pointers stored in the arena) are copied into the same array of the
        newest part; a part whose entries cannot be carried over is kept.
        """
        self.put_back()
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
        self.put_back()
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
        self.put_back()
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

    def unlinked(
        self,
        since: int,
        ahead: int,
        lo: int,
        hi: int,
        address_of: Callable[[int], int],
        watching: Watching,
    ) -> int:
        """:meth:`live`, leaving out what the arena's own pointers into itself hold.

        Storing a pointer in a value (``node.next = ctypes.pointer(other)``), or a
        struct copied out of another value, makes ctypes keep the source in the
        array's ``_objects``. A source inside the arena needs no keeping (its
        memory lives as long as the array), yet the entry would count as a
        live view for ever. ``[lo, hi)``: the arena's memory; ``address_of``:
        where a position's memory begins. For a rewind of ``regions[since:]``:
        an entry of a region that stays is left out only if what it holds
        lies in that region or an earlier one (freed no sooner than the
        pointer itself); an entry of a region to be freed, if what it holds
        is based on the arena's current parts (held memory is not). A dict
        another object shares (a by-value copy's keep-alive) counts whole
        (see :func:`_shared_dicts`). ``watching``: the live watched arrays,
        whose entries are judged as the arena's arrays' are (``_watch``).

        The entries are taken out for the count and put back before the
        return, whatever happens (as views over the same memory, based on the
        same arrays): nothing is ever deleted for good, so a struct copied by
        value later (by a finalizer, a drop callback, the caller) shares a
        dict that keeps what it points to. The collector is off meanwhile.
        """
        collecting = gc.isenabled()
        try:
            gc.disable()
            try:
                self._own_links(lo, hi, since, address_of, watching)
                return self.live(since, ahead)
            finally:
                self.put_back()
        finally:
            if collecting:
                gc.enable()

    def _own_links(
        self,
        lo: int,
        hi: int,
        since: int,
        address_of: Callable[[int], int],
        watching: Watching,
    ) -> None:
        """Take out the entries :meth:`unlinked` leaves out (into ``out``)."""
        regions = self.regions
        current = [part for region in regions for part in region.parts]
        now = _ours(current)
        held = [held.part for held in self.held]
        ours = {**now, **_ours(held)}
        starts = [address_of(region.start) for region in regions]
        place = partial(_in_regions, regions, starts, now)
        scope = _Scope(lo, hi, ours, current + held, watching, self.out, place)
        if since < len(regions):
            # A dict of memory to be freed that memory which stays reaches (a
            # struct copied by value out of a value made after the checkpoint
            # into one made before it shares the later value's dict): the
            # pointers it keeps the targets of may now lie in memory that
            # stays. Its entries all stay, and count.
            staying = [part for region in regions[:since] for part in region.parts] + held
            freed = [part for region in regions[since:] for part in region.parts]
            scope.shared |= _dicts_reached(staying, freed, watching, ours)
        self.put_back()
        for at, region in enumerate(regions):
            # (what a region that stays points to must be the arena's own now;
            # a region to be freed may point to held memory too)
            if at < since:
                scope.hi, scope.ours = starts[at + 1], now
            else:
                scope.hi, scope.ours = hi, ours
            for part in region.parts:
                scope.prune_part(part)
        self._held_links(watching)  # (held memory counts too, as in held_views)

    def put_back(self) -> None:
        """Put back the entries taken out for a count, as views over the same memory.

        Each comes back where the count placed it (``_Scope.place``). An entry
        leaves ``out`` only once it is back, so one that an interrupt kept
        out is put back by the next count.
        """
        out = self.out
        while out:
            objects, key, reached = out[-1]
            # (one call: an entry stored meanwhile, by a signal handler, stays)
            objects.setdefault(key, tuple([_view_of(*piece) for piece in reached]))
            out.pop()


class _Scope:
    """What one count judges keep-alive entries by, and where it puts those it takes out.

    ``lo``, ``hi``: the memory an entry taken out may hold; ``ours``: the
    roots and arrays, by id, that are the arena's own (see :func:`_ours`).
    Both are set anew for each region. ``dicts``: the ids of the ``_objects``
    dicts judged on their own (the arrays' and the live watched arrays':
    see :meth:`prune_dict`); ``shared``: those something else reaches
    (:func:`_shared_dicts`), whose entries all stay. ``out``: the ledger's.
    ``place``: where the pieces of an entry taken out come back (see
    :func:`_in_regions`), worked out before it is taken out, so that an
    interrupt at any point puts it back where a finished count would.
    """

    __slots__ = ("lo", "hi", "ours", "dicts", "shared", "watching", "out", "place")

    def __init__(
        self,
        lo: int,
        hi: int,
        ours: dict[int, tuple[Part, Any]],
        parts: list[Part],
        watching: Watching,
        out: Undo,
        place: Callable[[list[Piece]], list[Piece]],
    ) -> None:
        self.lo = lo
        self.hi = hi
        self.ours = ours
        self.watching = watching
        self.out = out
        self.place = place
        watched = [weak for part in parts for weak in watching.get(id(part), ())]
        dicts = _dict_ids(ours)
        for weak in watched:
            array = weak()
            if array is not None:
                dicts.add(id(_OBJECTS(array)))
            del array
        self.dicts = dicts
        self.shared = _shared_dicts(ours, watched)

    def prune_part(self, part: Part) -> None:
        """:meth:`prune_dict` for each array of ``part`` and each live array it watches.

        (A watched array is held weakly meanwhile: one that only its own links
        kept, taken out, dies here.)
        """
        for array in part.arrays.values():
            self.prune_dict(array)
        for weak in self.watching.get(id(part), ()):
            watched = weak()
            if watched is not None:
                self.prune_dict(watched)
            del watched

    def prune_dict(self, array: Any) -> None:
        """Take out the entries of ``array._objects`` holding only the arena's memory in [lo, hi).

        (An entry that holds one of ``dicts`` holds nothing that array does
        not: its entries are pruned, or kept, on their own.)
        """
        objects = _OBJECTS(array)
        if not objects or id(objects) in self.shared:
            return
        lo, hi, ours, dicts, out = self.lo, self.hi, self.ours, self.dicts, self.out
        for key, entry in list(objects.items()):
            reached: list[Piece] = []
            # (an entry that holds none of the arena's memory counts nothing)
            if (
                key != _SOURCE_KEY
                and key != WATCH_KEY
                and _arena_only(entry, lo, hi, ours, dicts, reached)
                and any([piece[0] is not None for piece in reached])
            ):
                placed = self.place(reached)
                out.append((objects, key, placed))  # (first: an interrupt then loses nothing)
                taken = objects.pop(key, None)
                if taken is not entry and taken is not None:
                    # replaced since it was judged (by a signal handler): the new one stays
                    objects.setdefault(key, taken)
                del taken


def _in_regions(
    regions: list[Region], starts: list[int], now: dict[int, Any], reached: list[Piece]
) -> list[Piece]:
    """Where a count puts back the pieces an entry held: over the arena's current parts.

    Each comes back based on the newest part of the region its memory lies
    in, not on the object it was found through: that may be of a region
    about to be freed (a value of memory before a checkpoint, got through an
    array made after it). The region of its last byte: a piece that spans
    two regions counts on the later one, which is freed first. A memoryview
    of a whole object (a size of None) keeps the memory in being, which any
    root does, not what lies in it: the first region's; and none is needed
    beside a sized piece (put back over region 0, it would hold that region's
    root from memory that may later be held). Held memory stays held (over
    its root, which spans most); what was kept as it was stays so.
    """
    sized = any([size is not None for whose, _, _, size in reached if whose is not None])
    placed: list[Piece] = []
    for piece in reached:
        whose, _, address, size = piece
        if whose is None:
            placed.append(piece)
        elif id(whose.root) not in now:
            placed.append((whose, None, address, size))
        elif size is not None:
            at = max(bisect_right(starts, address + size - 1 if size else address) - 1, 0)
            placed.append((regions[at].parts[-1], None, address, size))
        elif not sized:
            placed.append((regions[0].parts[-1], None, address, size))
    return placed


def _on_held_roots(reached: list[Piece]) -> list[Piece]:
    """Where a count puts back the pieces an entry of held memory held: over their roots."""
    return [
        (whose, None, address, size) if whose is not None else (whose, key, address, size)
        for whose, key, address, size in reached
    ]


def _ours(parts: list[Part]) -> dict[int, tuple[Part, Any]]:
    """id of each root and array of ``parts`` -> (its part, its key; None for the root)."""
    ours: dict[int, tuple[Part, Any]] = {}
    for part in parts:
        ours[id(part.root)] = (part, None)
        for key, array in part.arrays.items():
            ours[id(array)] = (part, key)
    return ours


def _dict_ids(ours: dict[int, tuple[Part, Any]]) -> set[int]:
    """The ids of the ``_objects`` dicts of the arrays ``ours`` lists."""
    ids = set()
    for part, key in ours.values():
        if key is not None:
            ids.add(id(_OBJECTS(part.arrays[key])))
    return ids


def _view_of(part: Part | None, key: Any, address: int, size: int | None) -> Any:
    """A ``c_char`` array over ``[address, address + size)``, made from a part's object.

    A ``size`` of None, or memory the object does not span (it was reached
    through it, not in it): a memoryview of the whole object, which keeps at
    least as much alive. A ``part`` of None: ``key`` itself (kept as it was).
    """
    if part is None:
        return key  # (kept as it was: see _arena_only)
    base = part.root if key is None else part.arrays[key]
    if size is None or not 0 <= address - ctypes.addressof(base) <= ctypes.sizeof(base) - size:
        return memoryview(base)
    offset = address - ctypes.addressof(base)
    return from_buffer(ctypes.c_char * size, base, offset)


def _refcounts(objs: list[Any]) -> list[int]:
    """The reference counts of objects held by one list only (as :data:`_LISTED_ONE` reads them)."""
    return list(map(getrefcount, objs))


_LISTED_ONE = _refcounts([bytearray()])[0]


def _calibrate_dict() -> int:
    """The references an array's ``_objects`` dict has from the array alone."""
    array: Any = (ctypes.c_char * 1).from_buffer(bytearray(1))
    objs = [_OBJECTS(array)]
    return _refcounts(objs)[0] - _LISTED_ONE


_DICT_OWN = _calibrate_dict()


def _owner_of(ours: dict[int, tuple[Part, Any]]) -> object:
    """The store of the arena whose objects ``ours`` lists (None if none)."""
    for part, key in ours.values():
        if key is None:
            return _root_owner(part.root)
    return None


def _containers_in(container: Any, ours: dict[int, tuple[Part, Any]]) -> list[Any]:
    """What a container holds that can refer to a dict: dicts, tuples, ctypes objects.

    A dict's values, a tuple's items; a ctypes object's ``_objects`` dict (the
    one it holds: ctypes puts ``(array._objects, array)`` in the keep-alives
    of a pointer field set from an array) and its ``_b_base_`` (a value got
    from an array holds the array: a pointer to an element of a watched
    array keeps that array), unless that is one of the arena's own roots or
    arrays (``ours``: their dicts are where the walk starts). (A watched
    array's ``_objects`` is in its registry's tuple.) Exact types only: no
    caller code.
    """
    kind = type(container)
    if kind is dict:
        items = list(dict.values(container))
    elif kind is tuple:
        items = list(container)
    else:  # (a ctypes object)
        objects = _OBJECTS(container)
        base = _B_BASE(container)
        found = [objects] if type(objects) is dict else []
        return found if base is None or id(base) in ours else [*found, base]
    return [
        item
        for item in items
        if type(item) is dict or type(item) is tuple or issubclass(type(item), _CData)
    ]


def _shared_dicts(ours: dict[int, tuple[Part, Any]], watched: list[Any]) -> set[int]:
    """The ids of the ``_objects`` dicts of the arena's arrays that something else reaches.

    ctypes puts an array's whole ``_objects`` dict into the keep-alives of a
    struct copied by value out of it (and of a pointer to one of its
    values): deleting an entry of it would take the keep-alive away from the
    copy too, whose memory (outside the arena) does not go with the arena's.
    A dict is *not* shared when every reference to it is the array's own or
    comes from the keep-alive graph of the arena's arrays, through
    containers (dicts, tuples) that nothing else refers to either. Read off
    the reference counts; over-counting a dict as shared is the safe side
    (its entries stay, and count as views).

    A struct copied by value into another arena's value is no exception: the
    other arena's memory holds the copy's pointers into this one, which must
    stay kept while the copy lives. ``watched``: weak references to the
    arrays the arena watches, whose dicts are judged as its arrays' are.

    The walk follows a value's ``_b_base_`` to the array it was got from (a
    pointer to an element keeps the element, which keeps its array; a
    ``cast`` of an array puts the array in its own dict), but never counts
    an array's own reference to its dict twice: it is :data:`_DICT_OWN`,
    and whatever holds the array holds a view, counted as one.
    """
    objs: list[Any] = []  # every container met, once
    index: dict[int, int] = {}
    found: list[int] = []  # references from the arena's dicts and the containers met
    children: list[list[int]] = []
    owners: list[int] = []  # id of the array whose own reference _DICT_OWN takes off
    for part, key in ours.values():
        if key is not None:
            array = part.arrays[key]
            objects = _OBJECTS(array)
            if type(objects) is dict and id(objects) not in index:
                index[id(objects)] = len(objs)
                objs.append(objects)
                owners.append(id(array))
                found.append(0)
                children.append([])
            del array, objects
    for weak in watched:
        array = weak()
        objects = _OBJECTS(array) if array is not None else None
        if type(objects) is dict and id(objects) not in index:
            index[id(objects)] = len(objs)
            objs.append(objects)
            owners.append(id(array))
            found.append(0)
            children.append([])
        del array, objects
    mine = len(objs)
    at = 0
    while at < len(objs):
        for kid in _containers_in(objs[at], ours):
            where = index.get(id(kid))
            if where is None:
                where = index[id(kid)] = len(objs)
                objs.append(kid)
                found.append(0)
                children.append([])
            if where < mine and owners[where] == id(objs[at]):
                # the array's own reference to its dict, met again when the walk
                # reaches the array (through a value got from it), is _DICT_OWN;
                # one holding the array is a view, counted as such, and reaches
                # the dict as the array's own
                continue
            found[where] += 1
            children[at].append(where)
        at += 1
    kid = None  # (the last one met must not be counted)
    counts = _refcounts(objs)
    excess = [
        counts[k] - _LISTED_ONE - (_DICT_OWN if k < mine else 0) - found[k]
        for k in range(len(objs))
    ]
    external = [extra > 0 for extra in excess]
    del objs
    # What an external container refers to is reached from outside too.
    stack = [k for k in range(len(external)) if external[k]]
    while stack:
        for kid in children[stack.pop()]:
            if not external[kid]:
                external[kid] = True
                stack.append(kid)
    return {key for key, k in index.items() if k < mine and external[k]}


def _dicts_reached(
    staying: list[Part],
    freed: list[Part],
    watching: Watching,
    ours: dict[int, tuple[Part, Any]],
) -> set[int]:
    """The ids of the ``_objects`` dicts of ``freed``'s arrays (and the live arrays
    watched over them) that the keep-alives of ``staying``'s arrays reach.

    Walks dicts, tuples and ctypes objects (:func:`_containers_in`), through
    dicts of freed memory too; exact types only: no caller code.
    """
    wanted: set[int] = set()
    for objects in _dicts_of(freed, watching):
        wanted.add(id(objects))
    if not wanted:
        return set()
    todo = _dicts_of(staying, watching)
    seen: set[int] = set()
    reached: set[int] = set()
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if id(item) in wanted:
            reached.add(id(item))
        todo.extend(_containers_in(item, ours))
    return reached


def _dicts_of(parts: list[Part], watching: Watching) -> list[Any]:
    """The ``_objects`` dicts of ``parts``' arrays and of the live arrays watched over them."""
    found = []
    for part in parts:
        for array in part.arrays.values():
            objects = _OBJECTS(array)
            if type(objects) is dict:
                found.append(objects)
        for weak in watching.get(id(part), ()):
            watched = weak()
            objects = _OBJECTS(watched) if watched is not None else None
            if type(objects) is dict:
                found.append(objects)
            del watched
    return found


def _carry_keepalives(old: Part, new: Part) -> bool:
    """Copy the keep-alive entries of ``old``'s arrays into ``new``'s; False if one has no twin.

    The entries are copied, not moved: ``old``'s dicts may be shared. An
    entry never replaces one the twin has for the same key (which of the two
    is newer is not known: a part carried earlier may hold an older entry
    than a part kept for longer): the twin then keeps both.
    """
    for key, array in old.arrays.items():
        objects = _OBJECTS(array)
        if not objects or len(objects) == 1 and _SOURCE_KEY in objects:
            continue
        twin = new.arrays.get(key)
        if twin is None:
            return False
        mine = _OBJECTS(twin)
        for name, entry in list(objects.items()):
            if name == _SOURCE_KEY:
                continue
            present = mine.get(name)
            if present is None:
                mine[name] = entry
            elif present is not entry:
                mine[name] = (present, entry)
    return True


def _has_entries(array: Any) -> bool:
    """Whether ``array._objects`` holds more than ``from_buffer``'s source."""
    objects = _OBJECTS(array)
    return bool(objects) and not (len(objects) == 1 and _SOURCE_KEY in objects)


def reusable(part: Part) -> bool:
    """Whether ``part`` can serve again once the values made from it are freed.

    Only if its arrays hold no keep-alive entry (but ``from_buffer``'s
    source): entries are never deleted (a struct copied by value out of a
    value shares its array's whole ``_objects`` dict and needs them), so a
    part that has some is replaced by a fresh one, and its dicts live
    exactly as long as something holds them.
    """
    return not any([_has_entries(array) for array in part.arrays.values()])


#: ctypes' own getters and type's: reading through them runs no code of a
#: caller's class (a property named ``_b_base_``, a metaclass ``__getattr__``).
_CALLBACK: Any = _weak_ref.__dict__["__callback__"].__get__


def has_finalizer(klass: Any) -> bool:
    """Whether instances of ``klass`` run a ``__del__`` as they die.

    Read off the class dicts along the MRO: ``hasattr`` asks the metaclass,
    whose ``__getattribute__`` may hide one.
    """
    return any(map(contains, map(_CLASS_DICT, _MRO(klass)), repeat("__del__")))


def freed_prefix(values: list[Any]) -> int:
    """Empty ``values``, the arena's only hold on them; how many of the first are freed.

    Counts up to the first value that something else holds (``gc.get_objects()``
    finds any object). If the death of any of them could run code (a
    ``__del__``, which a class can get at any time; an attribute set on a
    value found that way; a weak reference's callback), none counts: that code
    could bring any of them back to life, unseen (the collector clears a weak
    reference before it runs the finalizers of a cycle). Otherwise emptying
    the list runs no code, and each value it held alone is freed. The
    collector is off from the reading to the emptying. (A thread or a signal
    handler that takes a value, or gives it a finalizer, in between is not
    seen.)
    """
    collecting = gc.isenabled()
    try:
        gc.disable()  # (a finalizer the collector runs could take a value after the count)
        quiet = False
        if values:  # (the values of one window: one type, one array)
            first = values[0]
            known = {id(type(first)), id(_B_BASE(first))}
            quiet = (
                not has_finalizer(type(first))
                and not any(map(getweakrefcount, values))
                # nothing else referred to: no instance dict, no other type, no keep-alives
                and set(map(id, get_referents(*values))) <= known
            )
            del first
        freed = 0
        counts = _refcounts(values) if quiet else []
        while freed < len(counts) and counts[freed] == _LISTED_ONE:
            freed += 1
        values.clear()
        return freed
    finally:
        if collecting:
            gc.enable()


def _may_run_code(obj: Any) -> bool:
    """Whether ``obj``'s death could run code: a ``__del__``, a weak reference's callback.

    For a ctypes object, anything it refers to besides its type, its base and
    its ``_objects`` (an instance dict that is not empty, slots) counts too:
    it could die with it.
    """
    if type(obj) is not memoryview:
        if has_finalizer(type(obj)):
            return True
        known = (type(obj), _B_BASE(obj), _OBJECTS(obj))
        for other in get_referents(obj):
            if not any([other is k for k in known]) and not (type(other) is dict and not other):
                return True
    if not getweakrefcount(obj):
        return False
    return any(
        [type(weak) is not _weak_ref or _CALLBACK(weak) is not None for weak in getweakrefs(obj)]
    )


def _top(cdata: Any, ours: dict[int, tuple[Part, Any]]) -> Any:
    """The ctypes object that owns ``cdata``'s memory (following ``_b_base_``).

    None if an object on the way past ``cdata`` that is not the arena's own
    could run code as it dies (it may die with an entry taken out).
    """
    while True:
        base = _B_BASE(cdata)
        if base is None:
            return cdata
        cdata = base
        if id(cdata) not in ours and _may_run_code(cdata):
            return None


def _arena_only(
    entry: Any,
    lo: int,
    hi: int,
    ours: dict[int, tuple[Part, Any]],
    dicts: set[int],
    reached: list[Piece],
) -> bool:
    """True if a keep-alive entry can be taken out for a count, leaving out its arena memory.

    ``ours``: the arena's roots and arrays by id (memoryviews of them, and
    ctypes objects based on them, are its own). ``dicts``: the ids of their
    ``_objects`` dicts (judged on their own, not walked). ``reached``: gets a
    :data:`Piece` for each piece of the arena's memory in ``[lo, hi)`` the
    entry holds, and one for each object it holds that is none of this
    arena's memory (the bytes of a ``c_char_p`` field, a ctypes object
    outside the arena): such an object is not let go during the count, but
    kept as it is (so whatever it refers to still counts) and put back with
    the views. False if the entry holds something let go that could run
    code as it dies, or this arena's memory that is not its own now (held,
    or past ``hi``; a memoryview of a root the count does not list: what
    holds it may lie in memory that is). Runs no code of
    a caller's (exact types only; ctypes' own getters), and walks with a
    list, not by recursion (a chain of any depth).
    """
    store = _owner_of(ours)
    seen: set[int] = set()
    todo = [entry]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen or id(item) in dicts:
            continue
        seen.add(id(item))
        kind = type(item)
        if kind is dict:
            todo.extend(dict.values(item))
        elif kind is tuple:  # (a pointer field set from an array: its _objects, itself)
            todo.extend(item)
        elif kind is memoryview:
            # a view of one of this arena's roots or arrays; of another arena's
            # root: kept (that arena counts it); of this arena's memory that is
            # not its own now (held, or left by a rewind): not the arena's own.
            if _may_run_code(item):
                return False
            whole: Any = item.obj
            where = ours.get(id(whole))
            owner = _root_owner(whole)
            if where is not None:
                # (a slice holds only its own memory: placed where it lies)
                piece = _slice_of(item, whole, where[1] is None)  # (a root holds any type)
                if piece is None:
                    return False
                start, size = piece
                if size is not None and not lo <= start <= start + size <= hi:
                    return False  # (as for a ctypes object: a slice past ``hi``)
                reached.append((*where, start, size))
            elif owner is not None:
                if owner is store:
                    return False
                reached.append((None, item, 0, None))
            elif issubclass(type(whole), _CData):  # (a value of the arena, or one over it)
                value: Any = whole
                start = ctypes.addressof(value)
                size = ctypes.sizeof(value)
                where = _based_on(whole, ours, todo)
                todo.append(_OBJECTS(whole))  # (what the value itself keeps)
                if where is None or _may_run_code(whole) or not lo <= start <= start + size <= hi:
                    return False
                reached.append((*where, start, size))
            else:
                return False
        elif issubclass(type(item), _CData):
            cdata: Any = item
            if _may_run_code(cdata):
                return False  # (taken out, it could die and run code in the middle of a count)
            start = ctypes.addressof(cdata)
            size = ctypes.sizeof(cdata)
            if not lo <= start <= start + size <= hi:
                reached.append((None, item, 0, None))  # (with what it keeps: not walked)
                continue
            where = _based_on(cdata, ours, todo)
            if where is None:
                return False
            reached.append((*where, start, size))
            # (what it keeps besides: the source of a ``from_buffer`` is walked
            # by _based_on, not another piece)
            objects = _OBJECTS(cdata)
            if type(objects) is dict:
                if id(objects) not in dicts:  # (an array's of the arena: judged on its own)
                    todo.extend([value for key, value in objects.items() if key != _SOURCE_KEY])
            elif objects is not _source_of(cdata):
                todo.append(objects)
        else:  # (bytes of a c_char_p, anything else: kept, not walked)
            reached.append((None, item, 0, None))
    return True


def _slice_of(view: memoryview, whole: Any, root: bool) -> tuple[int, int | None] | None:
    """(address, size) of the memory ``view`` holds of ``whole``, a ctypes object.

    A size of None: all of it, when no pointer can be read through it
    (``whole`` an array of a type that holds none; see :data:`Piece`). None
    if that cannot be read: a view that is not contiguous, or not writable
    (``from_buffer`` needs that), and is not the whole object.
    """
    start = ctypes.addressof(whole)
    if view.nbytes == ctypes.sizeof(whole) and view.c_contiguous:
        # All of it. A pointer read through it (``from_buffer`` of the array, a
        # struct copied by value out of an array over it) may point anywhere in
        # it, to a target only the keep-alives of the memory there keep: then
        # it holds all the memory it spans; else only the memory in being.
        if root or holds_pointer(type(whole)):
            return start, ctypes.sizeof(whole)
        return start, None
    if not view.c_contiguous or view.readonly:
        return None
    return address(view), view.nbytes  # (a c_char array over it, gone on return: no code runs)


def _based_on(cdata: Any, ours: dict[int, tuple[Part, Any]], kept: list[Any]) -> Any:
    """(part, key) of the arena's object ``cdata``'s memory comes from; None if none.

    Follows ``_b_base_`` to the object that owns the memory, and from an
    object made by ``from_buffer`` to its source (a root, an array, or a value
    of the arena made by ``from_buffer`` in turn). Memory the arena holds
    (freed, still viewed) lies in the same range, but is not its own now.
    What the objects on the way keep besides their source goes to ``kept``,
    for the caller to judge: it lives as long as they do.
    """
    met: set[int] = set()
    first = cdata  # (the caller walks what this one keeps, and judged it)
    while True:
        top = _top(cdata, ours)
        if top is None:
            return None
        where = ours.get(id(top))
        if where is not None:
            return where
        if top is not first:
            kept.append(_OBJECTS(top))  # (its source in there is judged again: harmless)
        source = _source_of(top)
        if source is None or _may_run_code(source) or not issubclass(type(source.obj), _CData):
            return None
        if id(source.obj) in met:
            return None  # (a loop of sources: not the arena's)
        met.add(id(source.obj))
        cdata = source.obj
        if id(cdata) not in ours and _may_run_code(cdata):
            return None  # (an object on the way dies with the entry: no code may run)


def _root_owner(obj: Any) -> object:
    """The store a root of some arena belongs to; None for anything else.

    (A root is an exact ``c_char`` array made by ``_store.root_over``; its
    owner is in its instance dict: read without running any class's code.)
    """
    cls = type(obj)
    if type(cls) is not _ARRAY_META or _MRO(cls)[1] is not ctypes.Array:
        return None
    # (the class's own ``__dict__`` getter, which ``type`` made: not a property)
    getter = _CLASS_DICT(cls).get("__dict__")
    if type(getter) is not _GETSET_DESCRIPTOR or getter.__objclass__ is not cls:
        return None
    own = getter.__get__(obj)
    return own.get("_linalloc_owner") if type(own) is dict else None


_GETSET_DESCRIPTOR = type(type.__dict__["__dict__"])


def _source_of(cdata: Any) -> memoryview | None:
    """The memoryview a ``from_buffer`` object keeps its source by, if it is one.

    (ctypes keeps it in the object's ``_objects`` dict, or as ``_objects``
    itself for an object with no fields: a simple type, an empty array.)
    """
    objects = _OBJECTS(cdata)
    if type(objects) is memoryview:
        return objects
    source = objects.get(_SOURCE_KEY) if type(objects) is dict else None
    return source if type(source) is memoryview else None


def collect_and_count(count: Any) -> int:
    """``count()``, and if views seem alive, again after a garbage collection."""
    live: int = count()
    if live > 0:
        gc.collect()
        live = count()
    return live
