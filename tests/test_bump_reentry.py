"""Code that runs in the middle of an untyped arena's call (``linalloc._bump``):
a signal handler during the commit of a lazy arena, a finalizer during a reset or
a close. It cannot allocate from the arena while the call changes it; what the
interrupted call returns is as if nothing had come in between."""

from __future__ import annotations

import ctypes
import gc
import re
from typing import Any, Callable

import pytest
from conftest import BUMP_KINDS

import linalloc
from linalloc import BumpArenaLazy, Layout

BUSY = (
    "the arena is busy: a drop callback cannot allocate from, rewind, reset or close "
    "the arena it is dropping from, nor can code that runs in the middle of one of its "
    "calls (a finalizer, a signal handler)"
)


def exactly(text: str) -> str:
    return "^" + re.escape(text) + "$"


class _InterruptingVM:
    """The platform's VM object, but the first commit runs ``handler`` first:
    what a signal handler arriving during the ``mprotect`` call would do."""

    def __init__(self, vm: Any, handler: Callable[[], Any], seen: list[Any]) -> None:
        self.vm = vm
        self.handler: Callable[[], Any] | None = handler
        self.seen = seen

    def commit(self, addr: int, size: int) -> Any:
        handler, self.handler = self.handler, None
        if handler is not None:
            try:
                self.seen.append(type(handler()).__name__)  # (the result is not kept)
            except RuntimeError as error:
                # (its message only: the traceback would keep the frames of the call)
                self.seen.append(("RuntimeError", str(error)))
        return self.vm.commit(addr, size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.vm, name)


def interrupt_next_commit(arena: Any, handler: Callable[[], Any]) -> list[Any]:
    seen: list[Any] = []
    arena._store.vm = _InterruptingVM(arena._store.vm, handler, seen)
    return seen


def interruptions(arena: Any) -> list[tuple[str, Callable[[], Any]]]:
    return [
        ("alloc_uninit_slice", lambda: arena.alloc_uninit_slice(Layout(8))),
        ("alloc_copy", lambda: arena.alloc_copy(b"abcdefgh")),
        ("alloc", lambda: arena.alloc(ctypes.c_int64)),
        ("alloc_array", lambda: arena.alloc_array(ctypes.c_int32, 2)),
    ]


@pytest.mark.parametrize("which", range(4))
def test_a_commit_of_alloc_uninit_slice_cannot_be_interrupted_by_an_allocation(
    which: int,
) -> None:
    arena = BumpArenaLazy(1 << 20)
    name, handler = interruptions(arena)[which]
    seen = interrupt_next_commit(arena, handler)
    view = arena.alloc_uninit_slice(Layout(16, 8))
    assert seen == [("RuntimeError", BUSY)], name
    assert view is not None and len(view) == 16 and linalloc.address(view) % 8 == 0
    assert arena.used == 16 and arena.committed == arena.commit_step
    assert arena.live_views() == 1
    # the arena goes on as usual: the next allocation follows the first one
    after = arena.alloc_uninit_slice(Layout(8))
    assert after is not None and linalloc.address(after) == linalloc.address(view) + 16


@pytest.mark.parametrize("which", range(4))
def test_a_commit_of_alloc_array_cannot_be_interrupted_by_an_allocation(which: int) -> None:
    arena = BumpArenaLazy(1 << 20)
    name, handler = interruptions(arena)[which]
    seen = interrupt_next_commit(arena, handler)
    row = arena.alloc_array(ctypes.c_int64, 3)
    assert seen == [("RuntimeError", BUSY)], name
    assert row is not None and len(row) == 3 and ctypes.addressof(row) % 8 == 0
    row[:] = [1, 2, 3]
    assert arena.used == 24 and arena.live_views() == 1
    after = arena.alloc_array(ctypes.c_int64, 1)
    assert after is not None and ctypes.addressof(after) == ctypes.addressof(row) + 24
    assert list(row) == [1, 2, 3]


@pytest.mark.parametrize("which", range(4))
def test_a_commit_of_grow_cannot_be_interrupted_by_an_allocation(which: int) -> None:
    arena = BumpArenaLazy(1 << 20)
    step = arena.commit_step
    view = arena.alloc_copy(b"abcd")
    assert view is not None and arena.committed == step
    name, handler = interruptions(arena)[which]
    seen = interrupt_next_commit(arena, handler)
    grown = arena.grow(view, step + 4)
    assert seen == [("RuntimeError", BUSY)], name
    assert grown is not None and len(grown) == step + 4
    assert linalloc.address(grown) == linalloc.address(view)
    assert bytes(grown[:4]) == b"abcd"
    assert arena.used == step + 4 and arena.committed == 2 * step
    assert arena.live_views() == 2


class _Finalizer:
    """An object in a garbage cycle: its ``__del__`` runs at the next collection."""

    def __init__(self, action: Callable[[Any], Any], seen: list[Any], keep: Any) -> None:
        self.action = action
        self.seen = seen
        self.keep = keep
        self.cycle = self

    def __del__(self) -> None:
        try:
            result = self.action(self.keep)
            self.seen.append(type(result).__name__)  # (the result itself is not kept)
            del result
        except RuntimeError as error:
            # (its message only: the traceback would keep this frame, and the view)
            self.seen.append(("RuntimeError", str(error)))


@pytest.mark.parametrize("cls", BUMP_KINDS, ids=lambda c: c.__name__)
def test_a_finalizer_cannot_grow_a_view_in_the_middle_of_a_reset(cls: type) -> None:
    # A reset refused at first collects garbage and counts again: a finalizer
    # run then is in the middle of the reset, and must not grow the arena.
    arena = cls(64)
    view = arena.alloc_copy(b"abcdefgh")
    seen: list[Any] = []
    gc.disable()
    try:
        _Finalizer(lambda kept: arena.grow(kept, 16), seen, keep=view)
        del view
        arena.reset()  # the only view was the cycle's: the reset goes through
    finally:
        gc.enable()
    assert seen == [("RuntimeError", BUSY)]
    assert arena.used == 0 and arena.live_views() == 0
    fresh = arena.alloc_uninit_slice(Layout(64))
    assert fresh is not None and arena.used == 64


@pytest.mark.parametrize("cls", BUMP_KINDS, ids=lambda c: c.__name__)
def test_an_arena_closed_while_a_finalizer_allocates_stays_closed(cls: type) -> None:
    # close() collects garbage when a view seems alive; a finalizer run then
    # may take a value (here of a simple type: the slow path) and let it go.
    # The close still goes through, and the arena is closed for every call.
    arena = cls(64)
    view = arena.alloc_copy(b"abcdefgh")
    seen: list[Any] = []
    gc.disable()
    try:
        _Finalizer(lambda kept: arena.alloc(ctypes.c_int64), seen, keep=view)
        del view
        arena.close()
    finally:
        gc.enable()
    assert len(seen) == 1
    assert arena.closed
    calls: list[Callable[[], object]] = [
        lambda: arena.alloc_uninit_slice(Layout(1)),
        lambda: arena.alloc_uninit_slice(Layout(0)),
        lambda: arena.alloc_copy(b"x"),
        lambda: arena.alloc(ctypes.c_int64),
        lambda: arena.alloc_array(ctypes.c_int8, 1),
        lambda: arena.grow(memoryview(bytearray(1)), 2),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=exactly("arena is closed")):
            call()
    # and another arena still refuses a reset while a view of it lives
    other = cls(64)
    kept = other.alloc_uninit_slice(Layout(8))
    with pytest.raises(BufferError):
        other.reset()
    del kept
    other.reset()
    assert other.used == 0
