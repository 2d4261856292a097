"""Keep-alive pruning and held memory: never hand memory out twice while an old value reaches it.

The arena leaves ctypes keep-alive entries that hold only its own memory out
of its view counts (``Ledger.unlinked``, ``Ledger.held_views``), makes a
fresh part when an old one has entries (``reusable``) and carries entries
over on growth (``Ledger.prune_parts``); these tests pin down when an entry
must count.
"""

from __future__ import annotations

import ctypes
import gc
import weakref
from typing import Any

import pytest
from conftest import run_python

from linalloc import TypedArena, TypedArenaLazy


class Node(ctypes.Structure):
    pass


Node._fields_ = [("value", ctypes.c_int64), ("next", ctypes.POINTER(Node))]


def _node(arena: Any, value: int) -> Any:
    """A Node in a typed or a bump arena."""
    if isinstance(arena, TypedArena):
        return arena.alloc(value)
    node = arena.alloc(Node)
    node.value = value
    return node


# -- a by-value copy shares the array's keep-alive dict ------------------------------


def _copy_out_then_reset(arena: Any) -> None:
    a, b = _node(arena, 1), _node(arena, 2)
    a.next = ctypes.pointer(b)  # ctypes keeps b in the array's _objects
    holder = (Node * 1)()  # outside any arena
    holder[0] = a  # by value: its keep-alive is the array's whole _objects dict
    del a, b
    gc.collect()
    with pytest.raises(BufferError):
        arena.reset()  # the copy's pointer still reaches b
    assert holder[0].next.contents.value == 2
    fresh = [_node(arena, 100 + k) for k in range(2)]
    assert holder[0].next.contents.value == 2  # not handed out again
    assert ctypes.addressof(holder[0].next.contents) not in [ctypes.addressof(v) for v in fresh]
    del fresh, holder
    gc.collect()
    arena.reset()  # the copy is gone: nothing holds the memory any more
    arena.close()


def test_by_value_copy_keeps_its_keepalives_typed(typed_cls: type) -> None:
    _copy_out_then_reset(typed_cls(Node, 8))


def test_by_value_copy_keeps_its_keepalives_bump(bump_cls: type) -> None:
    _copy_out_then_reset(bump_cls(1 << 12))


@pytest.mark.parametrize("free", ["reset", "rewind"])
def test_by_value_copy_of_a_freed_value_keeps_its_keepalives(typed_cls: type, free: str) -> None:
    """``reusable()``: after a rewind, a shared dict is not emptied either."""
    arena = typed_cls(Node, 8)
    cp = arena.checkpoint()
    a, b = arena.alloc(1), arena.alloc(2)
    a.next = ctypes.pointer(b)
    holder = (Node * 1)()
    holder[0] = a
    del a, b
    gc.collect()
    with pytest.raises(BufferError):
        arena.reset() if free == "reset" else arena.rewind(cp)
    assert holder[0].next.contents.value == 2
    del holder
    gc.collect()
    arena.reset() if free == "reset" else arena.rewind(cp)
    arena.close()


# -- a refused call changes nothing -------------------------------------------------


def test_refused_reset_keeps_a_link_into_held_memory(typed_cls: type) -> None:
    """A drop callback links a survivor to a value being freed: held, and stays held."""
    links: list[Any] = []

    def drop(value: Any) -> None:
        if links:
            links[0].next = ctypes.pointer(value)

    arena = typed_cls(Node, 8, drop=drop)
    survivor = arena.alloc(1)
    links.append(survivor)
    cp = arena.checkpoint()
    arena.alloc(2)
    arena.rewind(cp)
    with pytest.raises(BufferError):
        arena.alloc(3)  # held: survivor.next reaches the freed value
    with pytest.raises(BufferError):
        arena.reset()  # refused: survivor is alive
    gc.collect()
    with pytest.raises(BufferError):
        arena.alloc(3)  # still held
    assert survivor.next.contents.value == 2
    links.clear()
    del survivor  # (setting a pointer field to None would keep ctypes' entry)
    gc.collect()
    arena.reset()
    new = arena.alloc(3)
    assert new is not None and new.value == 3
    del new
    arena.close()


def _refused_reset_then_rewind(arena: Any) -> None:
    a = _node(arena, 1)
    cp = arena.checkpoint()
    b = _node(arena, 2)
    a.next = ctypes.pointer(b)  # from memory that stays into memory a rewind frees
    del b
    with pytest.raises(BufferError):
        arena.reset()  # refused (a is alive): must not forget a's link
    with pytest.raises(BufferError):
        arena.rewind(cp)  # a.next keeps b
    assert a.next.contents.value == 2
    del a
    arena.reset()
    arena.close()


def test_refused_reset_keeps_links_a_rewind_needs_typed(typed_cls: type) -> None:
    _refused_reset_then_rewind(typed_cls(Node, 8))


def test_refused_reset_keeps_links_a_rewind_needs_bump(bump_cls: type) -> None:
    _refused_reset_then_rewind(bump_cls(1 << 12))


def _rewind_then_earlier_rewind(arena: Any) -> None:
    """A rewind to a later checkpoint keeps a link from before it into between."""
    a = _node(arena, 1)
    cp1 = arena.checkpoint()
    b = _node(arena, 2)
    cp2 = arena.checkpoint()
    c = _node(arena, 3)
    a.next = ctypes.pointer(b)  # region 0 -> region 1
    c.next = ctypes.pointer(c)  # makes the rewind to cp2 prune
    del b, c
    arena.rewind(cp2)
    with pytest.raises(BufferError):
        arena.rewind(cp1)  # a.next still reaches b
    assert a.next.contents.value == 2
    del a
    arena.reset()
    arena.close()


def test_rewind_keeps_links_an_earlier_rewind_needs_typed(typed_cls: type) -> None:
    _rewind_then_earlier_rewind(typed_cls(Node, 8))


def test_rewind_keeps_links_an_earlier_rewind_needs_bump(bump_cls: type) -> None:
    _rewind_then_earlier_rewind(bump_cls(1 << 12))


@pytest.mark.parametrize("finish", ["reset", "close"])
def test_links_within_the_arena_still_do_not_stick(typed_cls: type, finish: str) -> None:
    arena = typed_cls(Node, 8)
    a, b = arena.alloc(1), arena.alloc(2)
    a.next, b.next = ctypes.pointer(b), ctypes.pointer(a)
    with pytest.raises(BufferError):
        arena.reset()
    assert a.next.contents.next.contents.value == 1
    del a, b
    getattr(arena, finish)()
    if finish == "reset":
        arena.close()


# -- lazy growth carries keep-alives without losing a newer one ------------------------


class Big(ctypes.Structure):
    _fields_ = [("data", ctypes.c_char * 64)]


class Ref(ctypes.Structure):
    _fields_ = [("n", ctypes.c_int64), ("p", ctypes.POINTER(Big))]


def test_lazy_growth_never_overwrites_a_newer_keepalive() -> None:
    arena = TypedArenaLazy(Ref, 1 << 20)
    per_step = arena.commit_step // ctypes.sizeof(Ref)

    def grow() -> None:
        start = len(arena)
        while len(arena) < start + per_step:
            arena.alloc()

    def slot0() -> Any:
        return next(iter(arena))

    x1 = Big(b"one")
    v0 = arena.alloc()  # part 1
    v0.p = ctypes.pointer(x1)  # entry "0" in part 1's slot array
    grow()  # part 2; part 1 kept (v0 views it)
    w = slot0()  # slot 0 through part 2
    x2 = Big(b"two")
    w.p = ctypes.pointer(x2)  # the newer entry "0", in part 2
    probe = weakref.ref(x2)
    del x2, v0
    grow()  # part 3: part 1 carried into it; part 2 kept (w views it)
    del w
    grow()  # part 4: parts 2 and 3 carried into it
    gc.collect()
    assert probe() is not None, "the pointer's target was freed while a value points at it"
    assert slot0().p.contents.data == b"two"
    arena.close()


# -- held memory is counted strongly: a finalizer may bring a value back -----------------


def test_held_value_resurrected_by_a_finalizer_is_not_aliased(typed_cls: type) -> None:
    resurrected: list[Any] = []

    class Keeper:
        value: Any
        cycle: Any

        def __del__(self) -> None:
            resurrected.append(self.value)  # brings the dropped value back

    def drop(value: Any) -> None:
        keeper = Keeper()
        keeper.value = value
        keeper.cycle = keeper  # only an unreachable cycle keeps it

    arena = typed_cls(ctypes.c_int64, 8, drop=drop)
    arena.alloc(111)
    arena.reset()  # the value is held (the cycle keeps it)
    with pytest.raises(BufferError):
        arena.alloc(222)  # collects: the finalizer brings the value back
    assert len(resurrected) == 1 and resurrected[0].value == 111
    with pytest.raises(BufferError):
        arena.alloc(222)
    resurrected.clear()
    new = arena.alloc(222)
    assert new is not None and new.value == 222
    del new
    arena.close()


def test_held_memory_with_a_cycle_of_its_own_is_freed(typed_cls: type) -> None:
    """Pointers within held memory do not hold it for ever (they are forgotten)."""
    kept: list[Any] = []

    def drop(value: Any) -> None:
        kept.append(value)

    arena = typed_cls(Node, 8, drop=drop)
    a, b = arena.alloc(1), arena.alloc(2)
    a.next, b.next = ctypes.pointer(b), ctypes.pointer(a)
    del a, b
    arena.reset()  # links within the arena are pruned; the drops keep both values
    kept[0].next = ctypes.pointer(kept[1])  # a cycle within held memory
    kept[1].next = ctypes.pointer(kept[0])
    with pytest.raises(BufferError):
        arena.alloc(3)
    kept.clear()
    new = arena.alloc(3)
    assert new is not None and new.value == 3
    del new
    arena.close()


# -- drop callbacks run at collection time that keep a value ----------------------------


def test_value_kept_at_collection_keeps_the_lazy_reservation() -> None:
    """The reservation's finalizer runs in the same collection: the release must wait."""
    result = run_python(
        """
        import ctypes, gc, linalloc
        kept = []
        class Owner:
            def __init__(self):
                self.arena = linalloc.TypedArenaLazy(ctypes.c_int64, 1 << 20, drop=self.release)
            def release(self, value):
                kept.append(value)
        o = Owner()
        for i in range(3):
            o.arena.alloc(i)
        del o
        gc.collect()
        assert sorted(v.value for v in kept) == [0, 1, 2]
        kept[0].value = 12345  # the memory is still mapped
        assert kept[0].value == 12345
        kept.clear()
        gc.collect()  # (released once the values are gone: test_store_rules2)
        print("done")
        """
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["done"]


def test_arena_brought_back_by_its_drop_callback_hands_out_no_kept_memory(
    typed_cls: type,
) -> None:
    """(In a subprocess: on failure the kept value's memory is handed out, or unmapped.)"""
    result = run_python(
        f"""
        import ctypes, gc, linalloc
        kept = []
        class Owner:
            def __init__(self):
                self.arena = linalloc.{typed_cls.__name__}(ctypes.c_int64, 8, drop=self.release)
            def release(self, value):
                kept.append((self, value))  # keeps the value and the owner
        owner = Owner()
        owner.arena.alloc(111)
        del owner
        gc.collect()
        owner, old = kept[0]
        kept.clear()
        arena = owner.arena
        assert arena.alloc(222) is None  # its memory stays with the kept value
        assert arena.alloc_raw(222) is None
        assert arena.alloc_many(1) is None
        assert old.value == 111
        arena.close()
        assert old.value == 111
        print("done")
        """
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["done"]
