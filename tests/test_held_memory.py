"""Memory freed by ``reset()`` or ``rewind()`` while a drop callback keeps a value:
held, counted exactly, and handed out again once the last view is gone."""

from __future__ import annotations

import ctypes
import re
from typing import Any

import pytest

from linalloc import TypedArenaLazy, page_size


def held_message(count: int) -> str:
    views = "1 view" if count == 1 else f"{count} views"
    return (
        "^"
        + re.escape(
            f"cannot allocate: {views} of memory freed by reset() or rewind() still alive "
            "(kept by a drop callback, or by the traceback of its error); delete them first"
        )
        + "$"
    )


def test_held_views_are_counted_one_by_one(typed_cls: Any) -> None:
    kept: list[Any] = []
    arena = typed_cls(ctypes.c_int64, 16, drop=kept.append)
    arena.alloc(1)
    cp = arena.checkpoint()
    arena.alloc(2)
    arena.alloc(3)
    arena.rewind(cp)
    assert [v.value for v in kept] == [3, 2]
    with pytest.raises(BufferError, match=held_message(2)):
        arena.alloc(5)
    view = memoryview(kept[0])  # (through the value: still one view of it)
    with pytest.raises(BufferError, match=held_message(2)):
        arena.alloc(5)
    kept.clear()
    with pytest.raises(BufferError, match=held_message(1)):
        arena.alloc(5)
    assert view.tobytes() == (3).to_bytes(8, "little", signed=True)
    del view
    assert arena.alloc(5).value == 5
    assert [v.value for v in arena] == [1, 5]


def test_after_memory_held_by_a_reset_the_arena_works_on(typed_cls: Any) -> None:
    kept: list[Any] = []
    arena = typed_cls(ctypes.c_int64, 16, drop=kept.append)
    for k in range(3):
        arena.alloc(k)
    arena.reset()  # every value kept by the callback: all of the memory is held
    assert len(arena) == 0 and len(kept) == 3
    with pytest.raises(BufferError, match=held_message(3)):
        arena.alloc(9)
    kept.clear()
    first = arena.alloc(10)
    cp = arena.checkpoint()
    second = arena.alloc(11)
    assert [v.value for v in arena] == [10, 11]
    assert list(arena.as_array()) == [10, 11]
    del second
    arena.rewind(cp)
    assert [v.value for v in arena] == [10] and first.value == 10
    assert len(kept) == 1 and kept[0].value == 11  # the callback ran for the rewound one
    kept.clear()
    with arena.scope():
        assert arena.alloc(12).value == 12
        assert [v.value for v in arena] == [10, 12]
    assert [v.value for v in arena] == [10]


@pytest.mark.parametrize("free", ["reset", "rewind"])
def test_trim_keeps_held_memory_committed_while_a_kept_value_views_it(free: str) -> None:
    kept: list[Any] = []
    arena = TypedArenaLazy(ctypes.c_int64, 1 << 20, drop=kept.append)
    step = arena.commit_step
    first = arena.alloc(-1)
    cp = arena.checkpoint()
    for n in range(3 * step // 8 - 1):  # three commit steps in all
        arena.alloc(n)
    committed = arena.committed
    if free == "reset":
        first = None
        arena.reset()
    else:
        arena.rewind(cp)
    values = list(kept)
    before = [v.value for v in values]
    assert arena.trim() == 0  # not refused: nothing past the held memory to give back
    assert arena.committed == committed
    assert [v.value for v in values] == before  # not zeroed under the kept values
    del values
    kept.clear()
    assert arena.trim() == committed - arena.committed  # once they are gone
    assert arena.committed == (0 if free == "reset" else page_size())  # (what ``first`` takes)
    del first
    arena.close()
