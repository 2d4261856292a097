"""View accounting rules: how a count judges keep-alive entries, walks dicts and puts entries back.

A count takes out the keep-alive entries that hold only the arena's own
memory, and puts them back as views over the same bytes, based on the
region of their last byte (an empty piece: of its address). It keeps whole
an entry holding a view it cannot make again, or a view of an object that
only poses as another arena's root. Its walks for shared dicts (and for the
dicts that memory staying after a rewind reaches) follow a value's
``_b_base_`` out of the arena but not to the arena's own arrays, skip a dict
met again and go on, count the dicts of watched arrays, and cope with a
watched array that dies in the middle of a count. These tests check each
rule through what a caller sees: a rewind or reset accepted or refused, the
number of live views, a drop callback run or not.
"""

from __future__ import annotations

import ctypes
import weakref
from typing import Any

import pytest
from conftest import UNDER_MUTATION, at_line_of, traced

from linalloc import BumpArena, Layout, TypedArena, _views

Empty = ctypes.c_char * 0


class EmptyRef(ctypes.Structure):
    """A value of the arena that points to an empty array."""

    _fields_ = [("target", ctypes.POINTER(Empty)), ("pad", ctypes.c_char * 8)]


class Outside(ctypes.Structure):
    """Memory outside the arena that an EmptyRef is copied into by value."""

    _fields_ = [("ref", EmptyRef)]


def test_an_empty_piece_at_the_end_of_memory_stays_in_the_region_it_starts() -> None:
    """Rule: a piece put back comes back over its own bytes, not all of the memory.

    An empty array allocated when the arena is full lies at the end of its
    memory, where a checkpoint taken then begins its region: a pointer to it
    counts on that region. Put back over a view of the whole memory instead,
    the next count would place it by that view's last byte, in the region
    before the checkpoint, and a rewind to the checkpoint would be accepted
    while a struct copied by value outside the arena keeps the pointer (and
    so the array) alive.
    """
    size = ctypes.sizeof(EmptyRef)
    arena = BumpArena(size)
    ref = arena.alloc(EmptyRef)
    assert ref is not None
    empty = arena.alloc(Empty)
    assert empty is not None
    assert ctypes.addressof(empty) == ctypes.addressof(ref) + size  # at the very end
    ref.target = ctypes.pointer(empty)
    del empty
    cp = arena.checkpoint()
    # two counts: each takes the entry out and puts it back
    assert arena.live_views() == 1  # (``ref``)
    assert arena.live_views() == 1
    copy = Outside()
    copy.ref = ref  # (shares the keep-alive dict: its entries count)
    del ref
    with pytest.raises(BufferError, match="1 view"):
        arena.rewind(cp)
    del copy
    arena.rewind(cp)
    assert arena.live_views() == 0


class Inner(ctypes.Structure):
    """A pointer to an int64: set in a Boxed, copied by value into the arena."""

    _fields_ = [("p", ctypes.POINTER(ctypes.c_int64))]


class Boxed(ctypes.Structure):
    """Memory outside the arena: its py_object keeps any object in its keep-alive dict."""

    _fields_ = [("inner", Inner), ("obj", ctypes.py_object)]


class Linked(ctypes.Structure):
    """A value of the arena an Inner is copied into by value (it shares Boxed's dict)."""

    _fields_ = [("inner", Inner)]


@pytest.mark.parametrize("kind", ["read-only", "strided"])
def test_an_entry_holding_a_view_no_count_can_rebuild_stays_whole(kind: str) -> None:
    """Rule: an entry holding a view of the arena that cannot be rebuilt is never taken out.

    A read-only, or not contiguous, memoryview of the arena's memory cannot be
    made again from its bytes (``from_buffer`` needs a writable contiguous
    buffer). A keep-alive entry that holds one, besides a link the arena
    would leave out, stays whole at every count: the view stays alive and
    counts, so a rewind that would free its memory is refused.
    """
    arena = BumpArena(256)
    linked = arena.alloc(Linked)
    target = arena.alloc(ctypes.c_int64)
    assert linked is not None and target is not None
    cp = arena.checkpoint()
    block = arena.alloc_uninit_slice(Layout(8))
    assert block is not None
    block[:] = b"linalloc"
    view = block.toreadonly() if kind == "read-only" else block[::2]
    expected = view.tobytes()
    box = Boxed()
    box.obj = view  # (first in the dict: a count meets it last)
    box.inner.p = ctypes.pointer(target)  # (a link into the arena: left out alone)
    linked.inner = box.inner  # (the arena's dict now holds Boxed's whole dict)
    kept = weakref.ref(view)
    del box, view, block, target
    assert arena.live_views() == 3  # (``linked``, the view, ``target`` through the link)
    seen = kept()
    assert seen is not None  # (not let go by the count)
    assert seen.tobytes() == expected
    del seen
    with pytest.raises(BufferError, match="1 view"):
        arena.rewind(cp)
    assert kept() is not None
    assert arena.live_views() == 3


class _PosingMeta(type(ctypes.Array)):  # type: ignore[misc]
    """An array metaclass that is not ctypes' own."""


def _posing_root() -> Any:
    """An array with a ``_linalloc_owner``, as a root has, whose class another metaclass made."""
    posing_type: Any = _PosingMeta(
        "c_char_Array_16", (ctypes.Array,), {"_type_": ctypes.c_char, "_length_": 16}
    )
    posing = posing_type()
    posing._linalloc_owner = object()
    return posing


def test_a_view_of_an_array_posing_as_a_root_is_no_other_arena_s() -> None:
    """Rule: only an exact ``c_char`` array of ctypes' own metaclass is taken for a root.

    A memoryview of another arena's root, in a keep-alive entry, is kept as
    it is for a count (that arena counts it). An array that only poses as
    one (a ``_linalloc_owner`` attribute, a class made by another metaclass)
    is judged as any object outside the arena: the entry holding a view of
    it stays whole, and its link into the arena counts.
    """
    arena = BumpArena(256)
    linked = arena.alloc(Linked)
    target = arena.alloc(ctypes.c_int64)
    assert linked is not None and target is not None
    box = Boxed()
    box.obj = memoryview(_posing_root())  # (first in the dict: a count meets it last)
    box.inner.p = ctypes.pointer(target)
    linked.inner = box.inner  # (the arena's dict now holds Boxed's whole dict)
    del box, target
    assert arena.live_views() == 2  # (``linked``, and ``target`` through the entry)
    del linked
    with pytest.raises(BufferError, match="1 view"):
        arena.reset()
    assert arena.live_views() == 1


class Sub(ctypes.Structure):
    """A struct nested in memory outside the arena."""

    _fields_ = [("v", ctypes.c_int64)]


class Cell(ctypes.Structure):
    pass


class Pair(ctypes.Structure):
    """A link, copied by value between Cells and memory outside the arena."""

    _fields_ = [("p", ctypes.POINTER(Cell))]


Cell._fields_ = [("next", ctypes.POINTER(Cell)), ("sub", ctypes.POINTER(Sub)), ("pair", Pair)]


class Outer(ctypes.Structure):
    """Memory outside the arena: a Cell copied by value, and a Sub a Cell points to."""

    _fields_ = [("cell", Cell), ("sub", Sub)]


class PairBox(ctypes.Structure):
    """Memory outside the arena whose py_object keeps a tuple of the arena's values."""

    _fields_ = [("pair", Pair), ("obj", ctypes.py_object)]


def test_a_dict_only_the_arena_s_links_reach_through_a_value_s_base_is_not_shared() -> None:
    """Rule: the walk for shared dicts follows a value's ``_b_base_`` to the object it is in.

    A pointer to a struct nested in memory outside the arena keeps the nested
    struct, which keeps the outside struct (its ``_b_base_``), which keeps its
    dict. When nothing else holds the outside struct, every reference to that
    dict comes from the arena's keep-alives: it is not shared, nor the slot
    array's dict it holds (a Cell copied by value into the outside struct),
    so a link between two values of the arena is still left out of a count.
    """
    arena = TypedArena(Cell, 8)
    a, b, c = arena.alloc(), arena.alloc(), arena.alloc()
    assert a is not None and b is not None and c is not None
    a.next = ctypes.pointer(c)  # (the arena's own link: left out of a count)
    outer = Outer()
    outer.cell = a  # (its dict now holds the slot array's)
    b.sub = ctypes.pointer(outer.sub)  # (keeps ``outer.sub``, so ``outer``)
    del outer, a, b, c
    assert arena.live_views() == 0
    arena.reset()
    assert len(arena) == 0


def test_a_value_s_base_of_the_arena_is_not_walked_to_its_dict() -> None:
    """Rule: the walk for dicts a rewind's memory reaches stops at the arena's own arrays.

    A dict of memory to be freed that memory which stays reaches counts whole.
    A value of the arena met on the way holds its slot array (its
    ``_b_base_``), but that array's dict is reached only if a keep-alive holds
    the dict itself: a value kept (in a tuple an outside struct's py_object
    holds) does not make the whole dict of its region count. The rewind is
    refused for that value alone, not for a link its region leaves out.
    """
    arena = TypedArena(Cell, 8)
    z = arena.alloc()
    cp = arena.checkpoint()
    y = arena.alloc()
    arena.checkpoint()
    kept, d, e = arena.alloc(), arena.alloc(), arena.alloc()
    assert z is not None and y is not None and d is not None and e is not None
    z.pair = y.pair  # (by value: the memory that stays reaches y's dict)
    box = PairBox()
    box.obj = (kept,)
    y.pair = box.pair  # (y's dict reaches ``kept`` through the box's dict and the tuple)
    d.next = ctypes.pointer(e)  # (a link within the last region: left out)
    del z, y, kept, d, e, box
    with pytest.raises(BufferError, match="1 view of memory"):
        arena.rewind(cp)


@pytest.mark.skipif(UNDER_MUTATION, reason="traces a line of the library: not under mutmut")
@pytest.mark.parametrize(
    ("func", "line"),
    [
        (_views._Scope.__init__, "self.shared = "),
        (_views.Ledger._own_links, "scope.shared |= _dicts_reached"),
    ],
    ids=["shared-dicts", "dicts-reached"],
)
def test_a_watched_array_let_go_in_the_middle_of_a_count_is_skipped(func: Any, line: str) -> None:
    """Rule: a count copes with a watched array that dies after it listed the live ones.

    Code that runs between two lines of a count (a signal handler) can drop
    the last reference to an array ``as_array()`` made: the walks for shared
    dicts, and for the dicts a rewind's memory reaches, meet its weak
    reference dead, skip it, and the count goes on (then settles what the
    array kept, and counts again).
    """
    arena = TypedArena(Cell, 8)
    first, second = arena.alloc(), arena.alloc()
    assert first is not None and second is not None
    arrays = [arena.as_array()]
    arrays[0][0].next = ctypes.pointer(second)  # (kept in the array's own keep-alives)
    gone = weakref.ref(arrays[0])
    del first, second
    tracer, fired = at_line_of(func, line, arrays.clear)
    assert traced(tracer, arena.live_views) == 0
    assert fired == [None]  # (the array was let go there, not before)
    assert gone() is None
    arena.reset()


def _count_while_held_and_listed(link: bool) -> object:
    """A count run in the middle of a reset whose drop callback keeps a value and makes an
    array over the memory freed (so the part is listed and held at once); with ``link``,
    the array's first element points at the kept value."""
    kept: list[Any] = []

    def drop(value: Any) -> None:
        kept.append(value)
        if len(kept) == 1:
            array = arena.as_array()  # (over the memory being freed: watched)
            if link:
                array[0].next = ctypes.pointer(value)  # (in the array's keep-alives)
            kept.append(array)

    arena = TypedArena(Cell, 8, drop=drop)
    arena.alloc()
    arena.alloc()
    tracer, fired = at_line_of(_views.Ledger.hold_after, "if serial is None", arena.live_views)
    traced(tracer, arena.reset)
    assert len(kept) == 3 and len(fired) == 1
    return fired[0]


@pytest.mark.skipif(UNDER_MUTATION, reason="traces a line of the library: not under mutmut")
def test_a_link_through_a_watched_array_listed_twice_is_left_out_once() -> None:
    """Rule: a watched array met twice in one count has its dict judged once.

    In the middle of a reset that holds memory a drop callback kept, its part
    is both listed and held: the count meets the array ``as_array()`` made
    over it once for each. Its dict is the arena's own all the same: a link
    stored through it, to a value of the arena, is left out of the count.
    """
    plain = _count_while_held_and_listed(link=False)
    assert type(plain) is int and plain > 0
    assert _count_while_held_and_listed(link=True) == plain


def test_a_watched_array_of_memory_that_stays_reaching_freed_memory_keeps_its_links() -> None:
    """Rule: what an array over memory that stays reaches of memory to be freed counts whole.

    A struct copied by value out of a value made after a checkpoint, through
    an array ``as_array()`` made before it, puts the later value's whole dict
    in the array's keep-alives: the pointers it copied point at what that dict
    keeps. The dict's entries all stay and count, and the rewind is refused.
    """
    arena = TypedArena(Cell, 8)
    first = arena.alloc()
    assert first is not None
    array = arena.as_array()  # (over the memory before the checkpoint: watched)
    cp = arena.checkpoint()
    later, target = arena.alloc(), arena.alloc()
    assert later is not None and target is not None
    later.pair.p = ctypes.pointer(target)  # (a link within the memory to be freed)
    array[0].pair = later.pair  # (by value: the array's dict holds the later one's)
    del later, target
    with pytest.raises(BufferError, match="^cannot rewind to this checkpoint: 1 view "):
        arena.rewind(cp)
    assert first.pair.p.contents is not None
    del array


def test_a_watched_array_of_freed_memory_that_memory_which_stays_reaches_counts_whole() -> None:
    """Rule: the dicts of watched arrays over memory to be freed are among those it looks for.

    A struct copied by value, out of an element of an array ``as_array()``
    made after a checkpoint, into a value made before it shares that array's
    dict: the pointers the copy holds point at what the dict keeps. When a
    rewind to the checkpoint counts, the dict's entries all stay and count:
    a link stored through the array counts beside the array.
    """
    arena = TypedArena(Cell, 8)
    first = arena.alloc()
    assert first is not None
    cp = arena.checkpoint()
    arena.alloc()
    target = arena.alloc()
    array = arena.as_array()  # (over the memory after the checkpoint: watched)
    array[1].next = ctypes.pointer(target)  # (in the array's own keep-alives)
    first.pair = array[1].pair  # (by value: ``first``'s dict holds the array's)
    del target
    with pytest.raises(BufferError, match="^cannot rewind to this checkpoint: 2 views "):
        arena.rewind(cp)  # (the array, and the target its link keeps)
    del array


def test_the_walk_for_reached_dicts_goes_on_past_a_dict_met_again() -> None:
    """Rule: the walk for the dicts memory that stays reaches skips a dict met again, and goes on.

    A link between two values before a checkpoint keeps their dict, which
    the walk starts from: met again through that link, it is skipped, and
    the walk still reaches the dict of a value made after the checkpoint
    that one of them copied a struct out of by value. That dict's entries
    all stay and count: the rewind is refused at its first count, before a
    drop callback runs.
    """
    dropped: list[int] = []
    arena = TypedArena(Cell, 8, drop=lambda value: dropped.append(ctypes.addressof(value)))
    first, second = arena.alloc(), arena.alloc()
    assert first is not None and second is not None
    cp = arena.checkpoint()
    later, target = arena.alloc(), arena.alloc()
    assert later is not None and target is not None
    later.pair.p = ctypes.pointer(target)  # (a link within the memory to be freed)
    first.pair = later.pair  # (by value, first: the walk meets it last)
    second.pair.p = ctypes.pointer(first)  # (holds the dict the walk starts from)
    del later, target
    with pytest.raises(BufferError, match="^cannot rewind to this checkpoint: 1 view "):
        arena.rewind(cp)
    assert dropped == []  # (refused at the first count: no value dropped)
    assert len(arena) == 4
    first.pair = Pair()  # (the copy gone, the link within freed memory counts no more)
    arena.rewind(cp)
    assert len(dropped) == 2 and len(arena) == 2
