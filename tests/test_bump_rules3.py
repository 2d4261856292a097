"""More rules of the untyped arenas (``linalloc._bump``), checked one by one: a
finalizer run while ``alloc_uninit_slice`` gives a window back cannot allocate
from the arena, and ``alloc_array`` clears the arrays that hold pointers (and
only those) over memory an earlier use left dirty."""

from __future__ import annotations

import ctypes
from typing import Any

from conftest import run_python
from test_bump import dirty_reset
from test_bump_rules2 import BUSY, window_of_two

from linalloc import Layout, address

# -- a window given back by alloc_uninit_slice -----------------------------------------


def test_a_finalizer_run_while_a_slice_gives_a_window_back_cannot_allocate(
    bump_cls: type,
) -> None:
    # The value made ahead for the window dies as alloc_uninit_slice gives the window
    # back; the __del__ its type got since runs then, in the middle of that call.
    local, arena, a, b = window_of_two(bump_cls)  # (b opened it: one value made ahead)
    fired: list[object] = []

    def finalizer(self: Any) -> None:
        if fired:
            return
        try:
            made = arena.alloc_uninit_slice(Layout(8))
            fired.append(type(made).__name__)  # (the view itself is not kept)
            del made
        except RuntimeError as error:  # (its message only: no frames kept)
            fired.append(("RuntimeError", str(error)))

    local.__del__ = finalizer
    try:
        view = arena.alloc_uninit_slice(Layout(8))
    finally:
        del local.__del__
    assert fired == [("RuntimeError", BUSY)]
    # the value that could have run code keeps its slot: the view comes after it
    assert isinstance(view, memoryview) and address(view) == ctypes.addressof(b) + 16
    assert arena.used == 32 and arena.live_views() == 3
    after = arena.alloc_uninit_slice(Layout(8))  # the arena goes on as usual
    assert after is not None and address(after) == address(view) + 8
    del a, b, view, after
    arena.reset()
    assert arena.used == 0


# -- alloc_array over dirty memory -------------------------------------------------------


def test_alloc_array_clears_arrays_holding_pointers_and_only_those(bump_cls: type) -> None:
    # Plain numbers keep the bytes an earlier use left ("bytes not cleared")...
    arena = bump_cls(256)
    dirty_reset(arena)
    numbers = arena.alloc_array(ctypes.c_uint8, 16)
    assert numbers is not None and bytes(numbers) == b"\xa5" * 16
    del numbers
    arena.reset()
    # ...pointers come back NULL (in a child: a stale one would crash the reader).
    result = run_python(
        f"""
        import ctypes, linalloc
        from linalloc import Layout
        arena = linalloc.{bump_cls.__name__}(256)
        view = arena.alloc_uninit_slice(Layout(256))
        view[:] = b"\\xa5" * 256
        del view
        arena.reset()
        arena.alloc_uninit_slice(Layout(1))  # an odd offset before the arrays
        strings = arena.alloc_array(ctypes.c_char_p, 4)
        pointers = arena.alloc_array(ctypes.POINTER(ctypes.c_int64), 3)
        raw = ctypes.string_at(ctypes.addressof(strings), ctypes.sizeof(strings))
        assert raw == bytes(len(raw)), raw
        raw = ctypes.string_at(ctypes.addressof(pointers), ctypes.sizeof(pointers))
        assert raw == bytes(len(raw)), raw
        assert list(strings) == [None] * 4 and not any(pointers[k] for k in range(3))
        print("null", arena.used)
        """,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["null", str(8 + 4 * 8 + 3 * 8)]
