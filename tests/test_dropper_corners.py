"""Corners of the collection-time dropper and of a rewind with nothing to drop
(surviving mutants of ``_slots.Dropper`` and ``TypedArena._drops_after``):

- once ``close()`` has dropped the values, the dropper carries nothing: a target a
  close-time callback stored through ``as_array()`` dies with the value it kept,
  even while a by-value copy of an older value (which shares another slot array's
  keep-alives, and so the dropper) lives on;
- a drop callback at collection that keeps no value leaves the dropper carrying
  nothing, not even the keep-alives of slot 0 or a watched array's registry, once
  the revived arena lets its slot arrays go;
- a view made in the middle of a rewind that has no value to drop (though the arena
  has a drop callback) makes it refuse, as without a callback: nothing has changed.

A target is a Python subclass of a ctypes type, so that a weak reference shows when it
dies. The collector clears weak references to what it finds unreachable even if a
finalizer brings it back: a test holds its targets strongly across such a collection,
and takes weak references only afterwards.
"""

from __future__ import annotations

import ctypes
import gc
from typing import Any
from weakref import ref

from test_target_lifetimes import Node, Target, _Owner
from test_typed_rules import taking_views_of


class Holder(ctypes.Structure):
    """Memory outside the arena that a Node is copied into by value: ctypes makes the
    copy share the keep-alives (``_objects``) of the slot array the Node came from."""

    _fields_ = [("node", Node)]


def _let_go(strong: list[Any]) -> list[Any]:
    """Weak references to the objects in ``strong``, which lets go of them."""
    weak = [ref(item) for item in strong]
    strong.clear()
    gc.collect()
    return weak


def test_a_target_stored_through_an_array_at_close_dies_with_the_value_kept(
    typed_cls: type,
) -> None:
    """After ``close()`` the dropper carries nothing: a target a close-time callback
    stored through ``as_array()`` (kept by the registry of the newest slot array) dies
    once the value kept goes, though the arena is gone and a by-value copy of a value
    of an older region, which keeps that region's keep-alives and so the dropper,
    lives on."""
    kept: list[Any] = []
    strong: list[Any] = []
    arenas: list[Any] = []

    def drop(value: Any) -> None:
        if value.n == 2:  # (the count is 2 here: the array spans slots 0 and 1)
            array = arenas[0].as_array()
            target = Target(42)
            array[1].p = ctypes.pointer(target)  # slot 1: the newest region's
            strong.append(target)
            kept.append(value)

    arena = typed_cls(Node, 16, drop=drop)
    arenas.append(arena)
    holder = Holder()
    holder.node = arena.alloc(0)  # (the value is gone at once: not a view)
    arena.checkpoint()
    arena.alloc(1)
    arena.alloc(2)
    arena.close()
    assert [value.n for value in kept] == [2] and len(strong) == 1
    gone = ref(arena)
    arenas.clear()
    del arena
    gc.collect()
    assert gone() is None
    assert kept[0].n == 2
    kept.clear()
    gc.collect()  # (the slot array and its registry: a cycle)
    (target,) = _let_go(strong)
    assert target() is None
    assert holder.node.n == 0 and not holder.node.p


def test_a_collection_that_kept_no_value_carries_no_target_of_slot_zero(
    typed_cls: type,
) -> None:
    """The values dropped at collection and kept by none need none of their targets:
    once the revived arena lets its slot array go (a reset), every target dies, the
    one stored in slot 0 too (the dropper, which the revived arena holds, carries
    none of them), and the one stored through an ``as_array()`` since gone."""
    revived: list[Any] = []
    owner = _Owner(typed_cls, revived)
    arena = owner.arena
    strong = [Target(0), Target(1), Target(10)]  # (reachable across the collections)
    arena.alloc(0).p = ctypes.pointer(strong[0])
    arena.alloc(1).p = ctypes.pointer(strong[1])
    array = arena.as_array()
    array[1].p = ctypes.pointer(strong[2])
    del owner, arena, array
    gc.collect()
    (owner,) = revived
    assert owner.log == [1, 0]
    owner.arena.reset()
    gc.collect()
    assert [target() for target in _let_go(strong)] == [None, None, None]
    assert len(owner.arena) == 0
    owner.arena.close()


class Link(ctypes.Structure):
    """``Link("link")``: the constructor takes another object over the slot being
    made (from the array ``self._b_base_`` it was made from), points it at itself, and
    raises, holding nothing."""

    def __init__(self, *args: Any) -> None:
        if args == ("link",):
            base = self._b_base_
            other = base[(ctypes.addressof(self) - ctypes.addressof(base)) // ctypes.sizeof(Link)]
            del self, base
            other.next = ctypes.pointer(other)  # (kept in the slot array's keep-alives)
            del other
            raise ValueError("no link")
        super().__init__(*args)


Link._fields_ = [("next", ctypes.POINTER(Link)), ("v", ctypes.c_int64)]


def test_a_view_made_in_the_middle_of_a_rewind_with_nothing_to_drop_makes_it_refuse(
    typed_cls: type,
) -> None:
    """A rewind to the position the arena is at has no value to drop, drop callback or
    not: a view made by code run in its middle (a profile function, as a signal handler
    could), after the first count, makes it refuse as if it had lived all along; no
    memory is held. Here the view is an object over the slot after the checkpoint that
    only the arena's own keep-alives held (left out of the first count): a failed
    constructor pointed it at itself, and its slot was given back (the known bug of
    ``test_failed_allocation_rules.py``: once it is fixed, this state needs another
    way in, and the assert on ``len`` below says so)."""
    dropped: list[int] = []
    arena = typed_cls(Link, 8, drop=lambda link: dropped.append(link.v))
    first = arena.alloc(None, 1)
    cp = arena.checkpoint()
    where = ctypes.addressof(first) + ctypes.sizeof(Link)
    try:
        arena.alloc("link")
    except ValueError:
        pass
    assert len(arena) == 1  # (the slot was given back: the count is the position)
    taken, refused = taking_views_of(lambda: arena.rewind(cp), where, ctypes.sizeof(Link))
    assert len(taken) == 1
    assert refused is not None and refused.startswith("cannot rewind to this checkpoint: 1 view")
    taken.clear()
    second = arena.alloc(None, 2)  # (nothing is held: no BufferError)
    assert second is not None and len(arena) == 2
    assert [link.v for link in arena] == [1, 2]
    del first, second
    arena.rewind(cp)
    assert dropped == [2] and len(arena) == 1
    arena.close()
    assert dropped == [2, 1]
