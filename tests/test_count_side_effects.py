"""A count runs no caller code, never fails for good, and loses nothing when interrupted.

To leave the arena's own links out of a count, entries are taken out of
ctypes' ``_objects`` dicts and put back (``_views.Ledger.unlinked``). What
is taken out must not die and run a finalizer meanwhile, must come back even
when the object it was found through spans other memory, and must not be lost
to an interrupt. The type checks, too, must not be fooled by a metaclass that
changes a type while it is walked.
"""

from __future__ import annotations

import ctypes
import gc
import sys
import weakref
from collections.abc import Callable
from typing import Any

import pytest
from conftest import UNDER_MUTATION, at_line_of, run_python, traced

import linalloc
import linalloc._typed_bulk
import linalloc._watch
from linalloc import _views


class Node(ctypes.Structure):
    pass


Node._fields_ = [("v", ctypes.c_int64), ("next", ctypes.POINTER(Node))]


class Holder(ctypes.Structure):
    _fields_ = [("node", Node)]


def test_an_entry_spanning_other_memory_comes_back_in_a_bump_arena() -> None:
    """A value reached through a row that begins after it (its view is based on that row)."""
    arena = linalloc.BumpArena(1024)
    first = arena.alloc(Node)
    pad = arena.alloc(ctypes.c_int64)
    second = arena.alloc(Node)  # (a row whose array begins after ``first``)
    second.next = ctypes.pointer(first)
    reached = second.next.contents  # ``first``'s memory, based on the later row
    third = arena.alloc(Node)
    third.next = ctypes.pointer(reached)
    del first, pad, second, reached, third
    gc.collect()
    arena.reset()  # (was: ValueError from every count, for ever)
    assert arena.used == 0 and not arena._ledger.out


def test_an_entry_spanning_other_memory_comes_back_in_a_lazy_arena() -> None:
    arena = linalloc.TypedArenaLazy(Node, 1 << 20)
    per_part = arena.commit_step // ctypes.sizeof(Node)
    first = arena.alloc(1)
    fill = arena.alloc_many(per_part - 1)
    del fill
    second = arena.alloc(2)  # (the first slot of the next commit: a new part)
    first.next = ctypes.pointer(second)
    reached = first.next.contents  # ``second``'s memory, based on the first part
    third = arena.alloc(3)
    third.next = ctypes.pointer(reached)
    del first, second, reached, third
    gc.collect()
    arena.reset()
    assert len(arena) == 0 and not arena._ledger.out


class Finalized(ctypes.Structure):
    """A value whose finalizer copies it out by value when it dies."""

    copies: list[Any] = []
    armed = False

    def __del__(self) -> None:
        if Finalized.armed and self.v == 2:
            copy = FinalizedHolder()
            copy.node = self  # (shares the slot array's keep-alive dict)
            Finalized.copies.append(copy)


Finalized._fields_ = [("v", ctypes.c_int64), ("next", ctypes.POINTER(Finalized))]


class FinalizedHolder(ctypes.Structure):
    _fields_ = [("node", Finalized)]


@pytest.mark.parametrize("kind", ["TypedArena", "TypedArenaLazy"])
def test_a_link_to_a_value_with_a_finalizer_always_counts(kind: str) -> None:
    """Taken out for a count, it could die there and copy itself out: it is never taken out."""
    last: list[Any] = []

    def drop(value: Any) -> None:  # (links each value to the one dropped before it)
        if last:
            value.next = ctypes.pointer(last[0])
        last[:] = [value] if value.v != 1 else []

    arena = getattr(linalloc, kind)(Finalized, 8, drop=drop)
    for v in (1, 2, 3):
        arena.alloc(v)
    Finalized.armed = True
    try:
        arena.reset()  # (the links the drops made keep the memory held)
    finally:
        Finalized.armed = False
    copies = Finalized.copies
    try:
        fresh = []
        try:
            fresh = [arena.alloc(100 + i) for i in range(3)]
        except BufferError:
            pass  # held while the links (or a copy) live
        for copy in copies:
            target = ctypes.addressof(copy.node.next.contents)
            assert all(ctypes.addressof(v) != target for v in fresh)
    finally:
        copies.clear()


def test_a_failed_constructor_that_changes_its_class_keeps_its_slot() -> None:
    revived: list[Any] = []

    class Point(ctypes.Structure):
        _fields_ = [("x", ctypes.c_int64), ("y", ctypes.c_int64)]

        def __init__(self, *args: Any) -> None:
            if args == ("boom",):
                self.__class__ = Revive
                del self
                raise ValueError("constructor failed")
            super().__init__(*args)

    class Revive(Point):
        def __del__(self) -> None:
            revived.append(self)

    arena = linalloc.TypedArena(Point, 4)
    with pytest.raises(ValueError, match="constructor failed"):
        arena.alloc("boom")
    fresh = arena.alloc(1, 2)
    assert all(ctypes.addressof(v) != ctypes.addressof(fresh) for v in revived)
    assert len(arena) == 2  # (the failed slot stays used)


def _interrupted(code: Any, n: int, call: Callable[[], object]) -> bool:
    """``call()`` with a KeyboardInterrupt at the n-th line run in ``code``; True if raised."""
    seen = [0]

    def tracer(frame: Any, event: str, arg: object) -> Any:
        if frame.f_code is not code:
            return None
        if event == "line":
            seen[0] += 1
            if seen[0] == n:
                raise KeyboardInterrupt
        return tracer

    sys.settrace(tracer)
    try:
        call()
    except KeyboardInterrupt:
        return True
    finally:
        sys.settrace(None)
    return False


def _interrupted_reset(arena: Any, n: int) -> bool:
    """``arena.reset()`` with a KeyboardInterrupt at the n-th line run in ``_prune_dict``.

    True if the interrupt was raised (else the reset ran, and was refused).
    """
    try:
        interrupted = _interrupted(_views._Scope.prune_dict.__code__, n, arena.reset)
    except BufferError:
        return False
    assert interrupted, "the reset was accepted while a value lives"
    return True


@pytest.mark.skipif(UNDER_MUTATION, reason="traces a line of the library: not under mutmut")
def test_an_interrupt_while_entries_are_taken_out_loses_none() -> None:
    """At every line of the taking out: the entry comes back, now or at the next count."""
    n = 1
    while True:
        arena = linalloc.TypedArena(Node, 8)
        first, second = arena.alloc(1), arena.alloc(2)
        first.next = ctypes.pointer(second)
        del second
        interrupted = _interrupted_reset(arena, n)
        gc.collect()  # (the interrupt's traceback and its frames are gone)
        copy = Holder()
        copy.node = first  # (shares the dict the entry was taken out of)
        del first
        with pytest.raises(BufferError):
            arena.reset()  # the copy keeps ``second``: its entry is back
        assert copy.node.next.contents.v == 2, n
        del copy
        arena.reset()
        if not interrupted:
            break
        n += 1
    assert n > 3


def test_a_metaclass_that_changes_a_type_while_it_is_checked_is_refused() -> None:
    """Run in a child: a type holding a py_object, handed out uncleared, would crash it.
    The metaclass hooks the reading of ``__dict__``: the check refuses the type it
    changed, or reads the class through ``type``'s own getters and runs no hook."""
    proc = run_python(
        """
        import ctypes, sys
        import linalloc

        state = {"armed": False, "reads": 0}

        class Meta(type(ctypes.Structure)):
            def __getattribute__(cls, name):
                if name == "__dict__" and state["armed"] and type.__getattribute__(
                    cls, "__name__"
                ) == "Base":
                    state["reads"] += 1
                    if state["reads"] == 2:
                        state["armed"] = False
                        Sub._fields_ = [("obj", ctypes.py_object)]
                return super().__getattribute__(name)

        class Base(ctypes.Structure, metaclass=Meta):
            _fields_ = [("a", ctypes.c_int64)]

        class Sub(Base):
            pass

        arena = linalloc.BumpArena(4096)
        dirty = arena.alloc_uninit_slice(linalloc.Layout(4096))
        dirty[:] = b"\\x41" * 4096
        del dirty
        arena.reset()
        state["armed"] = True
        try:
            value = arena.alloc(Sub)
        except TypeError as exc:
            print("refused:", exc)
            sys.exit(0)
        if "_fields_" not in type.__dict__["__dict__"].__get__(Sub):
            print("accepted unchanged: the check ran none of the metaclass's code")
            sys.exit(0)
        print("accepted; holds a py_object:", Sub._fields_)
        value.obj  # (reads the uncleared bytes as a PyObject*)
        sys.exit(1)
        """
    )
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr[-2000:])
    assert "changed while it was checked" in proc.stdout or "accepted unchanged" in proc.stdout


# -- what a count puts back, and where it counts -----------------------------------


class CharLink(ctypes.Structure):
    _fields_ = [("p", ctypes.POINTER(ctypes.c_char)), ("pad", ctypes.c_int64)]


@pytest.mark.parametrize("lazy", [False, True], ids=["eager", "lazy"])
def test_a_link_to_memory_spanning_a_checkpoint_counts_after_it(lazy: bool) -> None:
    """An array over a view grown across a checkpoint: after a count, it still stops a rewind."""
    arena = linalloc.BumpArenaLazy(1 << 22) if lazy else linalloc.BumpArena(1 << 17)
    step = arena.commit_step if lazy else 4096
    holder = arena.alloc(CharLink)
    view = arena.alloc_uninit_slice(linalloc.Layout(step - 256))
    cp = arena.checkpoint()
    grown = arena.grow(view, len(view) + 4096)  # (into the memory after cp, and a new commit)
    assert grown is not None
    array = (ctypes.c_char * len(grown)).from_buffer(grown)
    holder.p = array
    del view, grown, array
    with pytest.raises(BufferError):
        arena.reset()  # (a count: the entry is taken out and put back)
    with pytest.raises(BufferError, match="after the checkpoint"):
        arena.rewind(cp)
    holder.p = ctypes.POINTER(ctypes.c_char)()
    arena.rewind(cp)
    del holder
    arena.reset()


@pytest.mark.parametrize("how", ["alloc_many", "as_array", "alloc_extend"])
def test_a_pointer_field_set_from_an_array_of_the_arena_is_its_own_link(how: str) -> None:
    arena = linalloc.TypedArena(Node, 16)
    first = arena.alloc(1)
    array = {
        "alloc_many": lambda: arena.alloc_many(2),
        "as_array": arena.as_array,
        "alloc_extend": lambda: arena.alloc_extend([Node(), Node()]),
    }[how]()
    first.next = array  # (a POINTER(Node) field set from an array of Node)
    del first, array
    gc.collect()
    arena.reset()  # (was refused for ever: the array is watched by a weak reference)
    arena.close()


def test_a_held_link_into_memory_that_stays_does_not_block_reset() -> None:
    kept: list[Any] = []
    arena = linalloc.TypedArena(Node, 16, drop=lambda v: kept.append(v) if v.v == 2 else None)
    first = arena.alloc(1)
    cp = arena.checkpoint()
    second = arena.alloc(2)
    second.next = ctypes.pointer(first)
    del second
    arena.rewind(cp)  # (the drop keeps ``second``: held)
    del first
    kept.clear()
    gc.collect()
    arena.reset()  # (no allocation first)
    arena.close()


def test_a_deep_chain_of_links_is_walked_without_recursion() -> None:
    depth = sys.getrecursionlimit()
    arena = linalloc.BumpArena(64 * depth + 4096)
    head = arena.alloc(Node)
    previous = None
    for i in range(depth):
        node = Node.from_buffer(arena.alloc_uninit_slice(linalloc.Layout(ctypes.sizeof(Node), 8)))
        node.v = i
        if previous is not None:
            node.next = ctypes.pointer(previous)
        previous = node
    head.next = ctypes.pointer(previous)
    del node, previous
    gc.collect()
    with pytest.raises(BufferError, match="^cannot reset: 1 view "):
        arena.reset()
    assert arena.live_views() == 1
    del head
    arena.reset()


def test_live_views_leaves_the_arenas_own_links_out() -> None:
    arena = linalloc.TypedArena(Node, 16)
    nodes = [arena.alloc(i) for i in range(10)]
    for a, b in zip(nodes, nodes[1:]):
        a.next = ctypes.pointer(b)
    assert arena.live_views() == 10
    del a, b
    del nodes[1:]
    assert arena.live_views() == 1
    nodes.clear()
    assert arena.live_views() == 0
    arena.reset()


def test_a_count_runs_no_code_of_the_callers_classes() -> None:
    """A property named ``_b_base_``, a metaclass ``__getattr__``: never called by a count."""
    calls: list[str] = []

    class Meta(type(ctypes.Structure)):  # type: ignore[misc]
        def __getattr__(cls, name: str) -> Any:
            calls.append(name)
            raise AttributeError(name)

    class T(ctypes.Structure, metaclass=Meta):
        @property
        def _b_base_(self) -> Any:
            calls.append("_b_base_")
            return None

    T._fields_ = [("q", ctypes.POINTER(T)), ("v", ctypes.c_int64)]
    arena = linalloc.TypedArena(T, 8)
    first, second = arena.alloc(), arena.alloc()
    first.q = ctypes.pointer(second)
    del second
    calls.clear()
    with pytest.raises(BufferError, match="^cannot reset: 1 view "):
        arena.reset()
    assert calls == []
    del first
    arena.reset()
    assert calls == []


def test_an_entry_a_memory_error_kept_out_is_back_before_the_next_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = _views._view_of
    fail = [1]

    def flaky(*args: Any) -> Any:
        if fail[0]:
            fail[0] -= 1
            raise MemoryError("injected")
        return real(*args)

    monkeypatch.setattr(_views, "_view_of", flaky)
    arena = linalloc.TypedArena(Node, 16)
    first = arena.alloc(1)
    cp = arena.checkpoint()
    second = arena.alloc(2)
    first.next = ctypes.pointer(second)  # (into the memory after cp)
    del second
    with pytest.raises(MemoryError):
        arena.reset()
    assert arena._ledger.out  # (kept out by the error)
    with pytest.raises(BufferError, match="after the checkpoint"):
        arena.rewind(cp)
    assert not arena._ledger.out and first.next.contents.v == 2
    del first
    arena.reset()


# -- what could die in a count, and what is the arena's own ------------------------


class IntLink(ctypes.Structure):
    _fields_ = [("p", ctypes.POINTER(ctypes.c_int64)), ("v", ctypes.c_int64)]


class IntLinkHolder(ctypes.Structure):
    _fields_ = [("s", IntLink)]


def test_a_memoryview_whose_death_runs_a_callback_is_never_taken_out() -> None:
    """The callback would copy a value out in the middle of the count."""
    import weakref

    arena = linalloc.BumpArena(4096)
    target = ctypes.c_int64.from_buffer(arena.alloc_uninit_slice(linalloc.Layout(8, 8)))
    target.value = 1234
    kept: list[Any] = []
    out = IntLinkHolder()

    def copy_out(weak: Any) -> None:
        out.s = kept.pop()  # (by value; the value itself dies)

    watch = weakref.ref(target._objects, copy_out)  # (the memoryview from_buffer keeps)
    value = arena.alloc(IntLink)
    value.p = ctypes.pointer(target)
    del target
    kept.append(value)
    del value
    gc.collect()
    with pytest.raises(BufferError):
        arena.reset()
    assert watch() is not None  # (nothing was taken out: the callback never ran)
    kept.clear()
    del watch
    arena.reset()


class PtrPtr(ctypes.Structure):
    pass


PtrPtr._fields_ = [
    ("next", ctypes.POINTER(PtrPtr)),
    ("pp", ctypes.POINTER(ctypes.POINTER(PtrPtr))),
    ("v", ctypes.c_int64),
]


def test_a_pointer_to_an_array_of_pointers_into_the_arena_is_its_own_link() -> None:
    """The C ``T **`` pattern, all in one arena."""
    arena = linalloc.BumpArena(4096)
    first, second = arena.alloc(PtrPtr), arena.alloc(PtrPtr)
    pointers = arena.alloc_array(ctypes.POINTER(PtrPtr), 1)
    pointers[0] = ctypes.pointer(second)
    first.pp = pointers
    del pointers, second
    gc.collect()
    with pytest.raises(BufferError, match="^cannot reset: 1 view "):
        arena.reset()
    assert first.pp[0].contents.v == 0
    del first
    arena.reset()


@pytest.mark.parametrize("kind", ["typed", "bump"])
def test_a_link_to_an_object_made_over_a_value_is_its_own_link(kind: str) -> None:
    arena = linalloc.TypedArena(Node, 16) if kind == "typed" else linalloc.BumpArena(4096)
    make = arena.alloc if kind == "typed" else (lambda: arena.alloc(Node))
    first, second = make(), make()
    first.next = ctypes.pointer(Node.from_buffer(second))
    del first, second
    gc.collect()
    arena.reset()
    arena.close()


def test_a_bump_arena_refuses_rather_than_holds_a_view_made_in_the_middle() -> None:
    """No drop callback ran: a view found by the last count refuses the reset."""
    arena = linalloc.BumpArena(4096)
    arena.alloc_uninit_slice(linalloc.Layout(8))
    made: list[Any] = []
    real = arena._drop_after

    def drop_after(position: int) -> Any:  # (code that runs between the two counts)
        made.append(memoryview(arena._ledger.regions[-1].parts[-1].root))
        return real(position)

    arena._drop_after = drop_after  # type: ignore[method-assign]
    arena._drops_after = lambda position: False  # type: ignore[method-assign]
    with pytest.raises(BufferError, match="^cannot reset: 1 view "):
        arena.reset()
    assert not arena._ledger.held and arena.used == 8
    made.clear()
    del arena._drop_after, arena._drops_after
    arena.reset()
    assert arena.used == 0


def test_a_link_to_a_value_whose_death_could_run_code_counts_until_cleared() -> None:
    """Left out of a count, its target could die there and run code: it counts (documented)."""
    fired: list[int] = []

    class Bomb:
        def __del__(self) -> None:
            fired.append(1)

    arena = linalloc.TypedArena(Node, 8)
    first, second = arena.alloc(1), arena.alloc(2)
    first.next = ctypes.pointer(second)
    second.bomb = Bomb()  # (an attribute of the value: it dies with it)
    del second
    with pytest.raises(BufferError, match="^cannot reset: 2 views "):
        arena.reset()
    assert fired == []  # (nothing died in the count)
    first.next = ctypes.POINTER(Node)()  # cleared: the target is no longer linked
    del first
    gc.collect()
    assert fired == [1]
    arena.reset()


class Chained(ctypes.Structure):
    pass


Chained._fields_ = [
    ("q", ctypes.POINTER(Chained)),
    ("r", ctypes.POINTER(ctypes.c_char * 24)),
    ("s", ctypes.POINTER(ctypes.c_int64)),
    ("v", ctypes.c_int64),
]


@pytest.mark.parametrize("last", ["array", "simple"])
def test_what_an_object_in_a_chain_of_sources_keeps_counts(last: str) -> None:
    """A link to an object made over an object made over a value: the middle one's links count."""
    arena = linalloc.TypedArena(Chained, 16)
    first = arena.alloc()
    cp = arena.checkpoint()
    later = arena.alloc(v=42)
    middle = Chained.from_buffer(first)
    middle.q = ctypes.pointer(later)  # (``middle`` keeps ``later``: memory after cp)
    if last == "array":
        end = (ctypes.c_char * 24).from_buffer(middle)
        first.r = ctypes.pointer(end)
    else:
        end = ctypes.c_int64.from_buffer(middle, 24)
        first.s = ctypes.pointer(end)
    del middle, end, later
    gc.collect()
    with pytest.raises(BufferError, match="after the checkpoint"):
        arena.rewind(cp)
    assert first.q.contents.v == 42
    del first
    arena.reset()


# -- what dies with an entry taken out: every object on its way, and the library's callbacks


class WithFinalizer(ctypes.Structure):
    """A struct over a value whose finalizer copies a kept value out by value."""

    _fields_ = [("inner", Node)]
    kept: list[Any] = []
    copies: list[Any] = []

    def __del__(self) -> None:
        while self.kept:
            copy = Holder()
            copy.node = self.kept.pop()  # (shares the slot array's dict)
            self.copies.append(copy)


@pytest.mark.parametrize("how", ["base", "source"])
def test_an_object_on_the_way_to_a_value_with_a_finalizer_keeps_the_link_counted(
    how: str,
) -> None:
    """The linked object is fine; what its memory comes from (its ``_b_base_``, or the
    source it was made over) has a finalizer that would run in the middle of a count."""
    seen: list[Any] = []

    def drop(value: Any) -> None:
        seen.append(value)
        if len(seen) == 2:  # (newest first)
            later, first = seen
            over = WithFinalizer.from_buffer(later)
            linked = over.inner if how == "base" else Node.from_buffer(over)
            first.next = ctypes.pointer(linked)
            WithFinalizer.kept.append(first)  # kept, for the finalizer to copy
            seen.clear()

    arena = linalloc.TypedArena(Node, 8, drop=drop)
    arena.alloc(1)
    arena.alloc(2)
    copies, kept = WithFinalizer.copies, WithFinalizer.kept
    try:
        arena.reset()  # the memory is held: the kept value points into it
        assert arena._ledger.held
        with pytest.raises(BufferError, match="^cannot allocate: 2 views "):
            arena.alloc(3)
        assert not copies, "a finalizer ran in the middle of a count"
        assert [v.v for v in kept] == [1] and kept[0].next.contents.v == 2
        kept.clear()
        gc.collect()
        # The link's objects could run code as they die: it counts as long as it
        # lives, and in held memory no field is left to clear (a documented over-count).
        with pytest.raises(BufferError, match="^cannot allocate: 1 view "):
            arena.alloc(3)
        assert not copies
        gone = weakref.ref(arena)
        del arena
        gc.collect()
        assert gone() is None, "held memory kept its arena alive"
    finally:
        copies.clear()
        kept.clear()


class Linked2(ctypes.Structure):
    pass


Linked2._fields_ = [
    ("next", ctypes.POINTER(Linked2)),
    ("q", ctypes.POINTER(Linked2)),
    ("v", ctypes.c_int64),
]


def test_an_array_that_dies_in_the_middle_of_a_count_loses_no_link() -> None:
    """Its keep-alives go to the slot array once the count has put back what it took out."""
    arena = linalloc.TypedArena(Linked2, 16)
    first = arena.alloc(v=10)
    b = arena.alloc(v=20)
    arr = arena.as_array()  # watched: pointers stored through it are kept for the slots
    arr[0].next = ctypes.pointer(Linked2.from_buffer(b))  # (its dict, key of slot 0)
    cp = arena.checkpoint()
    c = arena.alloc(v=30)
    first.next = ctypes.pointer(c)  # the slot array's dict, the same key
    b.q = arr  # the array is kept by the arena's own link only
    del arr, b, c
    gc.collect()
    arena.live_views()  # the count takes out b.q's entry: the array dies meanwhile
    with pytest.raises(BufferError, match="^cannot rewind to this checkpoint: 1 view "):
        arena.rewind(cp)  # ``first`` points at c
    assert first.next.contents.v == 30
    first.next = ctypes.POINTER(Linked2)()
    gc.collect()
    arena.rewind(cp)
    assert arena.live_views() == 1  # ``first``


@pytest.mark.parametrize("lazy", [False, True], ids=["eager", "lazy"])
@pytest.mark.parametrize("how", ["as_array", "alloc_many"])
def test_a_link_to_an_array_holding_a_link_of_its_own_does_not_block_reset(
    lazy: bool, how: str
) -> None:
    kind = linalloc.TypedArenaLazy if lazy else linalloc.TypedArena
    arena = kind(Linked2, 16)
    a = arena.alloc(v=1)
    b = arena.alloc(v=2)
    arr = arena.alloc_many(2) if how == "alloc_many" else arena.as_array()
    arr[len(arr) - 1].next = ctypes.pointer(b)  # a link of the array's own
    b.q = arr  # and a link to the array
    del a, b, arr
    gc.collect()
    arena.reset()  # (was refused for ever: the array's callback held its dict)
    arena.close()


@pytest.mark.parametrize("kind", ["TypedArena", "TypedArenaLazy"])
def test_a_list_linked_inside_a_bulk_array_does_not_block_reset(kind: str) -> None:
    """ctypes keeps each target element, and with it the array itself, in the array's
    own keep-alives: the array is its own link, not a view the caller holds."""
    arena = getattr(linalloc, kind)(Linked2, 16)
    nodes = arena.alloc_many(3)
    nodes[0].next = ctypes.pointer(nodes[1])
    nodes[1].next = ctypes.pointer(nodes[2])
    first = next(iter(arena))
    del nodes
    gc.collect()
    assert first.next.contents.next.contents.v == 0  # (the links hold while a value lives)
    with pytest.raises(BufferError, match="^cannot reset: 1 view "):
        arena.reset()
    del first
    arena.reset()  # (was refused for ever)
    assert arena.live_views() == 0 and len(arena) == 0


@pytest.mark.skipif(UNDER_MUTATION, reason="traces a line of the library: not under mutmut")
@pytest.mark.parametrize(
    "code",
    [
        linalloc._typed_bulk.BulkAllocation._settle.__code__,
        linalloc._watch.settle.__code__,
        linalloc._watch.take_over_keepalives.__code__,
    ],
    ids=["_settle", "settle", "take_over_keepalives"],
)
def test_an_interrupt_while_a_gone_arrays_keepalives_move_loses_none(code: Any) -> None:
    """At every line of the move: what the array kept stays kept, now or after the next count."""
    n = 1
    while True:
        arena = linalloc.TypedArena(Linked2, 8)
        other = linalloc.BumpArena(64)
        target = other.alloc(Linked2)
        target.v = 42
        nodes = arena.alloc_many(2)
        nodes[1].next = ctypes.pointer(target)  # kept in the array's own keep-alives
        first = next(iter(arena))
        del nodes, target
        interrupted = _interrupted(code, n, arena.live_views)
        gc.collect()
        with pytest.raises(BufferError):
            other.reset()  # the second value still points at ``target``
        second = list(arena)[1]
        assert second.next.contents.v == 42, n
        del second, first
        arena.reset()
        other.reset()  # (the arena's reset let go of the link)
        if not interrupted:
            break
        n += 1
    assert n > 3


@pytest.mark.skipif(UNDER_MUTATION, reason="traces a line of the library: not under mutmut")
def test_an_entry_an_interrupt_kept_out_is_back_before_a_gone_arrays_keepalives_move() -> None:
    """A count interrupted while it puts back leaves an entry of a watched array out;
    the array is gone before the next count, which must put it back before the move."""
    arena = linalloc.TypedArena(Linked2, 16)
    first = arena.alloc(v=10)
    cp = arena.checkpoint()
    later = arena.alloc(v=30)
    array = arena.as_array()
    array[0].next = ctypes.pointer(later)  # kept in the array's own keep-alives
    del later
    raised: list[bool] = []

    def interrupt_once() -> None:
        if not raised:
            raised.append(True)
            raise KeyboardInterrupt

    tracer, _ = at_line_of(_views.Ledger.put_back, "setdefault", interrupt_once)
    with pytest.raises(KeyboardInterrupt):
        traced(tracer, arena.live_views)
    assert arena._ledger.out  # (the entry is still out)
    del array
    gc.collect()
    arena.live_views()
    with pytest.raises(BufferError, match="^cannot rewind to this checkpoint: 1 view "):
        arena.rewind(cp)  # ``first`` points at ``later``
    assert first.next.contents.v == 30
