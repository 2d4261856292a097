"""Dead slots: a constructor that raises and leaves its slot used.

A constructor that raises after allocating from its own arena, or whose
failed value something still holds (the traceback of a Python ``__init__``,
a registry its ``__init__`` filled, a ``__del__`` that revives it), leaves
its slot used: the slot is never handed out while an object over it lives.
The first tests below are about a constructor that allocates from its own
arena and then raises.

The failed value's slot is no longer the newest, so it cannot be given back:
it stays used (it counts in ``len`` and iterates), is cleared to zero, and is
never passed to ``drop``. Once a ``reset()`` or a ``rewind()`` frees it, the
slot is an ordinary one again: the value that lands there next is dropped.

Each arena is used and reset once first, so that the failing call commits no
memory: a lazy arena gives back what a failed call committed, and here that
would include the page of the value the constructor allocated (a known
problem, reported separately; these tests are about the dead slot).
"""

from __future__ import annotations

import ctypes
import gc
import re
from typing import Any

import pytest

from linalloc import TypedArena

MESSAGE = "cannot build a Node from (7,): boom"


def _warm(arena: Any) -> None:
    """Use the arena once and reset it: its memory is committed and dirty."""
    arena.alloc_many(8)[7].v = -1
    arena.reset()


def _arena_with_a_dead_slot(typed_cls: type, before: int) -> tuple[Any, list[int], Any]:
    """An arena of ``Node`` with ``before`` values, then a dead slot, then one value (99)."""
    dropped: list[int] = []
    box: list[Any] = []

    class Node(ctypes.Structure):
        _fields_ = [("v", ctypes.c_int64), ("w", ctypes.c_int64)]

        def __init__(self, *args: Any) -> None:
            inner = box[0].alloc()  # from the same arena: this slot is no longer the newest
            inner.v = 99
            self.v, self.w = 55, 56
            raise ValueError("boom")

    arena = typed_cls(Node, 8, drop=lambda value: dropped.append(value.v))
    _warm(arena)
    dropped.clear()
    box.append(arena)
    for n in range(before):
        arena.alloc().v = n + 1
    with pytest.raises(ValueError, match="^" + re.escape(MESSAGE) + "$"):
        arena.alloc(7)
    box.clear()
    return arena, dropped, Node


@pytest.mark.parametrize("before", [0, 1, 3])
def test_dead_slot_stays_used_cleared_and_is_never_dropped(typed_cls: type, before: int) -> None:
    arena, dropped, node = _arena_with_a_dead_slot(typed_cls, before)
    size = ctypes.sizeof(node)
    assert len(arena) == before + 2 and arena.used == (before + 2) * size
    assert [v.v for v in arena] == [*range(1, before + 1), 0, 99]
    raw = bytes(arena.as_array())
    assert raw[before * size : (before + 1) * size] == bytes(size)  # cleared: all zero
    assert dropped == []
    arena.reset()
    assert dropped == [99, *range(before, 0, -1)]  # newest first, the dead slot skipped
    assert len(arena) == 0
    arena.close()
    assert dropped == [99, *range(before, 0, -1)]


def test_dead_slot_is_skipped_when_the_arena_closes(typed_cls: type) -> None:
    arena, dropped, _ = _arena_with_a_dead_slot(typed_cls, 2)
    arena.close()
    assert dropped == [99, 2, 1]


@pytest.mark.parametrize("before", [0, 2])
def test_after_a_reset_the_dead_slot_is_dropped_like_any_other(
    typed_cls: type, before: int
) -> None:
    arena, dropped, _ = _arena_with_a_dead_slot(typed_cls, before)
    arena.reset()
    dropped.clear()
    values = [arena.alloc() for _ in range(before + 2)]
    for k, value in enumerate(values):
        value.v = 10 + k
    del values, value
    arena.reset()
    assert dropped == [*range(10 + before + 1, 9, -1)]  # every slot, the once-dead one too
    arena.close()
    assert dropped == [*range(10 + before + 1, 9, -1)]


def test_a_second_dead_slot_after_a_reset(typed_cls: type) -> None:
    dropped: list[int] = []
    box: list[Any] = []

    class Node(ctypes.Structure):
        _fields_ = [("v", ctypes.c_int64)]

        def __init__(self, *args: Any) -> None:
            box[0].alloc().v = 99
            raise ValueError("boom")

    arena = typed_cls(Node, 8, drop=lambda value: dropped.append(value.v))
    _warm(arena)
    dropped.clear()
    box.append(arena)
    for _ in range(2):
        with pytest.raises(ValueError, match="^" + re.escape(MESSAGE) + "$"):
            arena.alloc(7)
        assert len(arena) == 2 and [v.v for v in arena] == [0, 99]
        arena.reset()
        assert dropped == [99]
        dropped.clear()
    box.clear()
    arena.close()


@pytest.mark.parametrize("before", [0, 1, 2])
def test_rewind_to_a_checkpoint_at_the_dead_slot_frees_it(typed_cls: type, before: int) -> None:
    dropped: list[int] = []
    box: list[Any] = []

    class Node(ctypes.Structure):
        _fields_ = [("v", ctypes.c_int64)]

        def __init__(self, *args: Any) -> None:
            box[0].alloc().v = 99
            raise ValueError("boom")

    arena = typed_cls(Node, 8, drop=lambda value: dropped.append(value.v))
    _warm(arena)
    dropped.clear()
    box.append(arena)
    kept = [arena.alloc() for _ in range(before)]
    for k in range(before):
        kept[k].v = k + 1
    cp = arena.checkpoint()
    with pytest.raises(ValueError, match="^" + re.escape(MESSAGE) + "$"):
        arena.alloc(7)  # slot `before` dead, 99 after it
    box.clear()
    arena.rewind(cp)
    assert dropped == [99] and len(arena) == before
    dropped.clear()
    again = arena.alloc()  # lands in the once-dead slot
    again.v = 50
    assert len(arena) == before + 1
    del again
    arena.rewind(cp)
    assert dropped == [50]
    del kept
    arena.close()
    assert dropped == [50, *range(before, 0, -1)]


# -- a failed value that something still holds ---------------------------------


class Checked(ctypes.Structure):
    """A structure whose Python ``__init__`` validates its arguments."""

    _fields_ = [("x", ctypes.c_int64), ("y", ctypes.c_int64)]

    def __init__(self, x: int = 0, y: int = 0) -> None:
        if x < 0:
            raise RuntimeError("x must be >= 0")
        super().__init__(x, y)


def _self_in(error: BaseException) -> Any:
    """The ``self`` of the ``Checked.__init__`` frame in ``error``'s traceback, or None."""
    tb = error.__traceback__
    while tb is not None:
        # (only that frame's locals: reading a running frame's would keep them)
        if tb.tb_frame.f_code is Checked.__init__.__code__:
            return tb.tb_frame.f_locals["self"]
        tb = tb.tb_next
    return None


@pytest.mark.parametrize("with_drop", [False, True], ids=["no-drop", "drop"])
def test_a_failed_value_the_traceback_holds_keeps_its_slot(
    typed_cls: type, with_drop: bool
) -> None:
    dropped: list[int] = []
    kwargs: dict[str, Any] = {"drop": lambda v: dropped.append(v.x)} if with_drop else {}
    arena = typed_cls(Checked, 4, **kwargs)
    first = arena.alloc(1, 2)
    errors: list[BaseException] = []
    try:
        arena.alloc(-1, 5)
    except RuntimeError as exc:
        errors.append(exc)  # kept, as a test runner or a logger keeps it
    ghost = _self_in(errors[0])
    assert ghost is not None and (ghost.x, ghost.y) == (0, 0)  # cleared
    assert len(arena) == 2 and arena.live_views() == 2
    second = arena.alloc(7, 8)
    size = ctypes.sizeof(Checked)
    assert ctypes.addressof(second) == ctypes.addressof(ghost) + size
    ghost.x = 999
    assert (second.x, second.y) == (7, 8)
    del first, second
    with pytest.raises(BufferError):
        arena.reset()  # the failed value is a live view
    del ghost, errors
    arena.reset()
    assert dropped == ([7, 1] if with_drop else [])  # the dead slot is never dropped
    assert len(arena) == 0
    arena.close()


@pytest.mark.parametrize("with_drop", [False, True], ids=["no-drop", "drop"])
def test_a_failed_value_its_constructor_registered_keeps_its_slot(
    typed_cls: type, with_drop: bool
) -> None:
    registry: list[Any] = []

    class Registered(ctypes.Structure):
        _fields_ = [("v", ctypes.c_int64)]

        def __init__(self, v: int) -> None:
            registry.append(self)
            raise ValueError("refused")

    kwargs: dict[str, Any] = {"drop": lambda v: None} if with_drop else {}
    arena = typed_cls(Registered, 2, **kwargs)
    message = "cannot build a Registered from (1,): refused"
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        arena.alloc(1)
    ghost = registry.pop()  # (the traceback is gone)
    other = arena.alloc()
    assert other is not None
    assert ctypes.addressof(other) == ctypes.addressof(ghost) + ctypes.sizeof(Registered)
    assert len(arena) == 2 and arena.alloc() is None
    del ghost, other
    arena.close()


def test_a_failed_value_its_finalizer_revives_keeps_its_slot(typed_cls: type) -> None:
    revived: list[Any] = []

    class Phoenix(ctypes.Structure):
        _fields_ = [("v", ctypes.c_int64)]

        def __del__(self) -> None:
            revived.append(self)

    arena = typed_cls(Phoenix, 2)
    with pytest.raises(TypeError, match="too many initializers"):
        arena.alloc(1, 2)  # refused by ctypes itself: nothing else holds the value
    assert len(revived) == 1  # ... until its __del__ ran
    other = arena.alloc(3)
    assert other is not None
    assert ctypes.addressof(other) == ctypes.addressof(revived[0]) + ctypes.sizeof(Phoenix)
    assert len(arena) == 2
    del other
    revived.clear()
    arena.close()


@pytest.mark.parametrize("before", [0, 1, 3])
def test_dead_slot_is_skipped_when_the_arena_is_collected(typed_cls: type, before: int) -> None:
    arena, dropped, _ = _arena_with_a_dead_slot(typed_cls, before)
    del arena  # no reset, no close: the values are dropped at collection
    gc.collect()
    assert dropped == [99, *range(before, 0, -1)]  # as close() drops them


_BOX: list[Any] = []


class _Failing(ctypes.Structure):
    """``_Failing(7)`` allocates 99 from the arena in ``_BOX``, then raises."""

    _fields_ = [("v", ctypes.c_int64)]

    def __init__(self, *args: Any) -> None:
        if args == (7,):
            _BOX[0].alloc().v = 99
            raise ValueError("boom")
        super().__init__(*args)


class _Owner:
    """Owns an arena whose drop callback keeps the owner (not the value)."""

    revived: list[_Owner] = []

    def __init__(self, kind: type) -> None:
        self.arena = kind(_Failing, 8, drop=self.release)
        self.dropped: list[int] = []

    def release(self, value: Any) -> None:
        self.dropped.append(value.v)
        _Owner.revived.append(self)  # the arena lives again


def test_an_arena_revived_at_collection_drops_every_value_in_a_once_dead_slot() -> None:
    # (eager: a lazy arena revived by a callback that keeps no value works the same way)
    gc.collect()
    owner = _Owner(TypedArena)
    owner.arena.alloc(1)
    _BOX.append(owner.arena)
    with pytest.raises(
        ValueError, match="^" + re.escape("cannot build a _Failing from (7,): boom")
    ):
        owner.arena.alloc(7)
    _BOX.clear()
    assert len(owner.arena) == 3  # 1, the dead slot, 99
    del owner
    gc.collect()
    try:
        owner = _Owner.revived[0]
        assert owner.dropped == [99, 1]  # the dead slot (slot 1) skipped
        arena = owner.arena
        assert len(arena) == 0
        assert [arena.alloc(k) for k in (10, 11, 12)] == [None] * 3  # (it hands out nothing)
        arena.reset()
        arena.close()
        assert owner.dropped == [99, 1]
    finally:
        _Owner.revived.clear()
