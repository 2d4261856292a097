"""View accounting rules: what a count does with links it cannot place, and after an interrupt.

A count takes the arena's own links out of ctypes' keep-alive dicts and puts
them back whatever happens: an error raised while they are out is the one
the caller sees, and every later count works. A link holding a slice of the
arena's memory that the count cannot place (read-only, or not contiguous)
is not taken out: it counts, and the count does not fail.
"""

from __future__ import annotations

import ctypes
import gc
from typing import Any

import pytest

from linalloc import Layout, TypedArenaLazy, _views


class Node(ctypes.Structure):
    pass


Node._fields_ = [("value", ctypes.c_int64), ("next", ctypes.POINTER(Node))]


class Keeper(ctypes.Structure):
    """A struct outside any arena that holds a Python object (a memoryview here)."""

    _fields_ = [("obj", ctypes.py_object)]


class Box(ctypes.Structure):
    """An arena value pointing to a Keeper: its link keeps what the Keeper holds."""

    _fields_ = [("keeper", ctypes.POINTER(Keeper)), ("x", ctypes.c_int64)]


def _interrupt_once_while_links_are_out(
    monkeypatch: pytest.MonkeyPatch, arena: Any, at: str = "part_views"
) -> None:
    """The next count raises MemoryError in ``_views.<at>`` once it has taken entries out.

    (As a signal could at any point while they are out: ``part_views`` once all
    are out, ``_arena_only`` as it judges the next entry.)
    """
    real = getattr(_views, at)
    armed = [True]

    def interrupted(*args: Any) -> Any:
        if armed[0] and arena._ledger.out:
            armed[0] = False
            raise MemoryError("injected")
        return real(*args)

    monkeypatch.setattr(_views, at, interrupted)


def _link_through_an_outgrown_part() -> tuple[Any, Any, Any]:
    """A lazy typed arena whose third value links to memory reached through an older part.

    ``reached`` is the first slot of the second commit, got through a pointer
    of a value of the first part (whose slot array ends where it begins).
    Returns (arena, first, third); ``third.next`` points to the value 2.
    """
    arena = TypedArenaLazy(Node, 1 << 20)
    per_part = arena.commit_step // ctypes.sizeof(Node)
    first = arena.alloc(1)
    fill = arena.alloc_many(per_part - 1)
    del fill
    second = arena.alloc(2)  # (the first slot of the next commit: a new part)
    first.next = ctypes.pointer(second)
    reached = first.next.contents  # ``second``'s memory, based on the first part
    third = arena.alloc(3)
    third.next = ctypes.pointer(reached)
    del second, reached
    gc.collect()
    return arena, first, third


def test_an_error_while_links_are_out_is_the_one_raised_and_later_counts_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    arena, first, third = _link_through_an_outgrown_part()
    _interrupt_once_while_links_are_out(monkeypatch, arena)
    with pytest.raises(MemoryError, match="^injected$"):
        arena.live_views()
    assert not arena._ledger.out, "an entry taken out was not put back"
    assert arena.live_views() == 2  # first, third
    assert arena.live_views() == 2
    assert third.next.contents.value == 2
    with pytest.raises(BufferError, match="^cannot reset: 2 views "):
        arena.reset()
    del first, third
    arena.reset()
    assert len(arena) == 0 and not arena._ledger.out


def test_a_link_into_memory_after_a_checkpoint_stops_the_rewind_after_an_interrupted_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    arena = TypedArenaLazy(Node, 1 << 20)
    per_part = arena.commit_step // ctypes.sizeof(Node)
    first, third, fourth = arena.alloc(1), arena.alloc(3), arena.alloc(4)
    fill = arena.alloc_many(per_part - 3)
    del fill
    cp = arena.checkpoint()
    second = arena.alloc(2)  # (after cp, in the next commit: a new part)
    first.next = ctypes.pointer(second)
    reached = first.next.contents  # ``second``'s memory, based on the first part
    first.next = ctypes.POINTER(Node)()  # (first's own link to ``second`` is gone)
    third.next = ctypes.pointer(reached)  # third, before cp, points after it
    fourth.next = ctypes.pointer(first)  # (an entry judged after third's)
    del second, reached
    gc.collect()
    _interrupt_once_while_links_are_out(monkeypatch, arena, "_arena_only")
    with pytest.raises(MemoryError):
        arena.live_views()
    with pytest.raises(BufferError, match="after the checkpoint"):
        arena.rewind(cp)
    assert third.next.contents.value == 2


@pytest.mark.parametrize(
    "cut",
    [memoryview.toreadonly, lambda view: view[::2]],
    ids=["read-only", "not-contiguous"],
)
def test_a_link_holding_a_slice_the_count_cannot_place_counts(bump_cls: type, cut: Any) -> None:
    arena = bump_cls(4096)
    box = arena.alloc(Box)
    raw = arena.alloc_uninit_slice(Layout(16, 8))
    assert raw is not None
    keeper = Keeper()
    keeper.obj = cut(raw)  # a slice of the arena's memory, not a from_buffer source
    box.keeper = ctypes.pointer(keeper)  # box's link keeps keeper, and so the slice
    del raw, keeper
    gc.collect()
    assert arena.live_views() == 2  # box, and the slice
    del box
    gc.collect()
    with pytest.raises(BufferError, match="^cannot reset: 1 view "):
        arena.reset()
    assert arena.live_views() == 1


class Page(ctypes.Structure):
    """A value about a page long: a lazy arena commits more every few of them."""


Page._fields_ = [
    ("value", ctypes.c_int64),
    ("next", ctypes.POINTER(Page)),
    ("pad", ctypes.c_char * 4080),
]


@pytest.mark.parametrize("kind", ["BumpArenaLazy", "TypedArenaLazy"])
def test_links_an_interrupt_kept_out_are_back_before_the_arena_grows(
    monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Growth forgets older parts that show no view: never while their links are out."""
    import linalloc

    arena = getattr(linalloc, kind)(*((Page, 1000) if kind == "TypedArenaLazy" else (1 << 23,)))
    alloc = arena.alloc if kind == "TypedArenaLazy" else (lambda: arena.alloc(Page))
    first = alloc()
    cp = arena.checkpoint()
    second = alloc()
    second.value = 2
    first.next = ctypes.pointer(second)  # before the checkpoint, pointing past it
    del second
    real = _views.Ledger.put_back
    armed = [True]

    def put_back(ledger: Any) -> None:
        if armed[0] and ledger.out:
            armed[0] = False
            raise KeyboardInterrupt  # (as a signal could, at the count's last step)
        real(ledger)

    monkeypatch.setattr(_views.Ledger, "put_back", put_back)
    with pytest.raises(KeyboardInterrupt):
        arena.live_views()
    assert arena._ledger.out  # the link is still out of its dict
    committed = arena.committed
    while arena.committed == committed:  # until it commits more (a new part), viewing none
        if kind == "TypedArenaLazy":
            arena.alloc()
        else:
            arena.alloc_uninit_slice(Layout(4096))
    gc.collect()
    with pytest.raises(BufferError, match="after the checkpoint"):
        arena.rewind(cp)
    assert first.next.contents.value == 2
    first.next = ctypes.POINTER(Page)()
    gc.collect()
    arena.rewind(cp)
    del first
    arena.reset()


def test_a_link_within_the_arena_is_left_out_beside_one_that_counts() -> None:
    """Each entry is judged on its own: the arrays' dicts it reaches are not walked again."""
    arena = TypedArenaLazy(Node, 8)
    first, second, third, fourth = (arena.alloc(k) for k in range(4))
    first.next = ctypes.pointer(second)  # the arena's own link: left out
    view = Node.from_buffer(fourth)
    view.tag = "kept"  # (an attribute: its death could run code, so its link counts)
    third.next = ctypes.pointer(view)
    del second, fourth, view
    gc.collect()
    assert arena.live_views() == 3  # first, third, and the link to the view with an attribute
    third.next = ctypes.POINTER(Node)()
    gc.collect()
    assert arena.live_views() == 2
    del first, third
    arena.reset()
