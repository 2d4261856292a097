"""Keep-alive dicts a caller rewrites by hand: ctypes lets any code write an object's
``_objects`` dict. A count must still end and raise nothing (``linalloc._views``:
``_based_on``, ``_source_of``). (An object whose source was replaced by hand keeps
no memory alive, as one made by ``ctypes.cast``: it is not counted. The value it was
made over is.)"""

from __future__ import annotations

import ctypes
import gc
import threading
from typing import Any

import pytest

_SOURCE = "ffffffff"  # (the key ctypes keeps a from_buffer object's source under)


class _Node(ctypes.Structure):
    pass


_Node._fields_ = [("v", ctypes.c_int64), ("next", ctypes.POINTER(_Node))]


def _linked_to(arena: Any, target: Any) -> None:
    """A value of ``arena`` that points to ``target`` (ctypes keeps ``target`` in the
    arena's own keep-alives: the count judges it)."""
    holder = arena.alloc(v=9)
    holder.next = ctypes.pointer(target)


def test_a_loop_of_sources_written_by_hand_ends_the_count(typed_cls: type) -> None:
    """Two objects over arena memory, each made the other's source by hand: the count
    follows sources until it meets one twice, and takes the link for one it cannot
    judge (it holds none of the arena's roots: nothing more is counted)."""
    arena: Any = typed_cls(_Node, 8, check_thread=False)
    value = arena.alloc(v=1)
    first = _Node.from_buffer(value)
    second = _Node.from_buffer(first)
    assert type(first._objects) is dict and _SOURCE in first._objects
    first._objects[_SOURCE] = memoryview(second)  # first -> second -> first
    _linked_to(arena, first)
    del first, second
    gc.collect()
    # (counted in a thread, so that a count that never ends fails the test)
    counted: list[int] = []
    thread = threading.Thread(target=lambda: counted.append(arena.live_views()), daemon=True)
    thread.start()
    thread.join(20)
    assert counted == [1]  # the value
    with pytest.raises(BufferError, match="^cannot reset: 1 view"):
        arena.reset()
    assert value.v == 1


@pytest.mark.parametrize("written", [5, b"bytes", None], ids=repr)
def test_a_source_written_by_hand_that_is_no_memoryview_is_not_followed(
    typed_cls: type, written: Any
) -> None:
    """An object over arena memory whose source entry a caller replaced by something
    else: the count does not follow it (no ``AttributeError``)."""
    arena: Any = typed_cls(_Node, 8)
    value = arena.alloc(v=1)
    over = _Node.from_buffer(value)
    over._objects[_SOURCE] = written
    _linked_to(arena, over)
    del over
    gc.collect()
    assert arena.live_views() == 1  # the value
    with pytest.raises(BufferError, match="^cannot reset: 1 view"):
        arena.reset()
    assert value.v == 1
