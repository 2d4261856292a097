"""Edge cases of ``alloc_many``/``alloc_extend``, iteration and ``as_array``.

All or nothing (rule 6), byte-exact copies of a ctypes array source, zero-size
types (every allocation succeeds, none counts), commits refused by the OS,
held memory, and which regions an iterator keeps alive.
"""

from __future__ import annotations

import ctypes
import errno
import re
from typing import Any

import pytest
from conftest import run_python

import linalloc
from linalloc import TypedArenaLazy

HELD = (
    "cannot allocate: 1 view of memory freed by reset() or rewind() still alive (kept by a "
    "drop callback, or by the traceback of its error); delete them first"
)


def test_alloc_extend_copies_a_ctypes_array_byte_for_byte(typed_cls: type) -> None:
    source = (ctypes.c_bool * 4)()
    ctypes.memmove(source, b"\x02\x00\x01\xff", 4)  # bytes a c_bool does not normalise
    arena = typed_cls(ctypes.c_bool, 8)
    copy = arena.alloc_extend(source)
    assert bytes(copy) == b"\x02\x00\x01\xff"
    assert bytes(arena.as_array()) == b"\x02\x00\x01\xff" and len(arena) == 4
    del copy
    arena.close()


def test_alloc_extend_of_a_pointer_array_that_does_not_fit_changes_nothing(
    typed_cls: type,
) -> None:
    arena = typed_cls(ctypes.c_void_p, 4)
    a, b = arena.alloc_raw(1), arena.alloc_raw(2)
    assert arena.alloc_extend((ctypes.c_void_p * 3)(7, 8, 9)) is None
    assert (a.value, b.value) == (1, 2)
    assert len(arena) == 2 and [v.value for v in arena] == [1, 2]
    rest = arena.alloc_extend((ctypes.c_void_p * 2)(7, 8))
    assert [v for v in rest] == [7, 8] and [v.value for v in arena] == [1, 2, 7, 8]
    del a, b, rest
    arena.close()


@pytest.mark.parametrize("capacity", [0, 1, 2])
def test_zero_size_values_always_fit_in_alloc_extend(typed_cls: type, capacity: int) -> None:
    empty = ctypes.c_int32 * 0
    arena = typed_cls(empty, capacity)
    copy = arena.alloc_extend([(), (), ()])
    assert copy is not None and len(copy) == 3 and len(arena) == 0
    again = arena.alloc_extend(iter([()] * (capacity + 2)))
    assert again is not None and len(again) == capacity + 2
    del copy, again
    arena.close()


def test_as_array_and_iteration_of_zero_size_values(typed_cls: type) -> None:
    empty = ctypes.c_double * 0
    arena = typed_cls(empty, 2)
    values = [arena.alloc() for _ in range(3)]
    assert len(arena) == 0 and all(v is not None for v in values)
    array = arena.as_array()
    assert isinstance(array, ctypes.Array) and len(array) == 0
    assert array._type_ is empty
    assert ctypes.addressof(array) == ctypes.addressof(values[0])
    del array, values
    iterator = iter(arena)  # an iterator alive counts as a view, empty or not
    assert arena.live_views() == 1
    message = (
        "cannot reset: 1 view of this arena still alive (values, memoryviews, ctypes "
        "objects or arrays made from them); delete them first"
    )
    with pytest.raises(BufferError, match="^" + re.escape(message) + "$"):
        arena.reset()
    assert list(iterator) == []
    del iterator
    arena.reset()
    arena.close()


def test_an_iterator_made_at_a_checkpoint_does_not_stop_the_rewind(typed_cls: type) -> None:
    arena = typed_cls(ctypes.c_int64, 8)
    for n in (1, 2):
        arena.alloc(n)
    cp = arena.checkpoint()
    arena.alloc(3)
    arena.rewind(cp)  # the checkpoint's region stays, empty
    iterator = iter(arena)  # made when nothing lies past the checkpoint
    arena.rewind(cp)
    assert [v.value for v in iterator] == [1, 2]
    del iterator
    arena.close()


class Node(ctypes.Structure):
    pass


Node._fields_ = [("v", ctypes.c_int64), ("next", ctypes.POINTER(Node))]


def test_pointer_into_memory_before_the_checkpoint_does_not_stop_the_rewind(
    typed_cls: type,
) -> None:
    arena = typed_cls(Node, 8)
    first = arena.alloc(1)
    second = arena.alloc(2)
    cp = arena.checkpoint()
    third = arena.alloc(3)
    array = arena.as_array()  # spans both sides of the checkpoint
    first.next = ctypes.pointer(array[1])  # points at `second`: memory that stays
    del array, third
    arena.rewind(cp)
    assert len(arena) == 2 and first.next.contents.v == 2
    # a pointer into memory past the checkpoint does stop it
    fourth = arena.alloc(4)
    first.next = ctypes.pointer(fourth)
    del fourth
    with pytest.raises(BufferError, match="^cannot rewind to this checkpoint: 1 view of memory"):
        arena.rewind(cp)
    first.next = ctypes.POINTER(Node)()  # cleared (a None would leave ctypes' keep-alive)
    arena.rewind(cp)
    assert len(arena) == 2
    del first, second
    arena.close()


def test_as_array_of_an_empty_arena_of_a_pointer_type_is_an_empty_array(
    typed_cls: type,
) -> None:
    arena = typed_cls(Node, 8)
    empty = arena.as_array()
    assert len(empty) == 0 and type(empty)._type_ is Node
    first = arena.alloc(1)
    cp = arena.checkpoint()
    second = arena.alloc(2)
    del second
    arena.rewind(cp)
    before = arena.as_array()  # (empty past the checkpoint: the same)
    assert [node.v for node in before] == [1]
    del empty, before, first
    arena.reset()
    assert arena.alloc(3).v == 3
    arena.close()


def test_a_request_that_cannot_fit_returns_none_even_while_memory_is_held(
    typed_cls: type,
) -> None:
    kept: list[Any] = []
    arena = typed_cls(ctypes.c_int64, 4, drop=kept.append)
    first = arena.alloc(1)
    cp = arena.checkpoint()
    arena.alloc(2)
    arena.rewind(cp)  # the callback kept the value: its memory is held
    assert len(arena) == 1 and arena.live_views() == 2
    assert arena.alloc_many(4) is None  # 3 left: does not fit, held or not
    assert arena.alloc_extend((ctypes.c_int64 * 4)()) is None
    with pytest.raises(BufferError, match="^" + re.escape(HELD) + "$"):
        arena.alloc_many(3)
    assert len(arena) == 1 and first.value == 1
    kept.clear()
    assert list(arena.alloc_many(3)) == [0, 0, 0]
    del first
    arena.close()


def test_lazy_alloc_many_past_the_committed_memory_after_alloc(typed_cls: type) -> None:
    arena = typed_cls(ctypes.c_int64, 100_000)
    first = arena.alloc(5)  # opens a window of values
    many = arena.alloc_many(20_000)  # more than the first commit holds
    assert many is not None and len(arena) == 20_001 and first.value == 5
    assert ctypes.addressof(many) == ctypes.addressof(first) + 8
    many[19_999] = 7
    assert arena.alloc(6).value == 6 and len(arena) == 20_002
    assert [v.value for v in arena][-3:] == [0, 7, 6]
    del first, many
    arena.close()


class _RefusingCommits:
    """The real platform layer, except that commits fail while ``refusing``."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.page_size = real.page_size
        self.refusing = False

    def commit(self, address: int, size: int) -> int | None:
        if self.refusing:
            return errno.ENOMEM
        result: int | None = self._real.commit(address, size)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.mark.parametrize("call", ["alloc_many", "alloc_extend", "alloc_extend_array"])
def test_refused_commit_in_bulk_allocation_returns_none_and_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    vm = _RefusingCommits(linalloc._vm.get())
    monkeypatch.setattr(linalloc._vm, "get", lambda: vm)
    arena = TypedArenaLazy(ctypes.c_int64, 100_000)
    first = arena.alloc_extend(range(1, 11))
    committed = arena.committed
    vm.refusing = True
    n = 20_000  # past the committed memory
    calls = {
        "alloc_many": lambda: arena.alloc_many(n),
        "alloc_extend": lambda: arena.alloc_extend([3] * n),
        "alloc_extend_array": lambda: arena.alloc_extend((ctypes.c_int64 * n)()),
    }
    assert calls[call]() is None
    assert arena.last_os_error_code == errno.ENOMEM
    assert (len(arena), arena.committed) == (10, committed)
    assert list(first) == list(range(1, 11)) and [v.value for v in arena] == list(range(1, 11))
    vm.refusing = False
    assert len(calls[call]()) == n and len(arena) == 10 + n
    assert list(first) == list(range(1, 11))
    del first
    arena.close()


def test_alloc_many_over_dirty_slots_zeroes_only_its_own() -> None:
    # In a fresh interpreter: zeroing past the request would write past the
    # committed memory of a lazy arena and crash.
    proc = run_python(
        """
        import ctypes
        from linalloc import TypedArena, TypedArenaLazy
        for cls in (TypedArenaLazy, TypedArena):
            arena = cls(ctypes.c_int64, 100_000)
            step = 65536 // 8
            arena.alloc_extend(range(1, step - 100))
            arena.reset()  # slots [0, step - 100) are dirty
            arena.alloc_many(step - 2000)
            many = arena.alloc_many(1000)
            assert list(many) == [0] * 1000
            after = arena.alloc_many(1000)
            assert list(after) == [0] * 1000
            del many, after
            if cls is TypedArenaLazy:
                assert arena.committed == 65536, arena.committed
            arena.close()
        print("ok")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ok\n"
