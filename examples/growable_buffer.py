"""A byte buffer that grows in place: C keeps one pointer to its start, and it stays true.

Run it: python examples/growable_buffer.py

A ``BumpArenaLazy`` reserves 1 TiB of address space and commits memory only
as it is used. A buffer allocated in it (``alloc_copy``) grows with
``grow()``: the grown view starts at the same address, so a pointer handed to
C code once (``linalloc.cast(view, c_char_p)``, or the integer of
``linalloc.address(view)``) stays valid as the buffer grows to any size the
reservation holds. Nothing is copied.

A ``bytearray`` grows by reallocation: its address moves (C's pointer would
dangle), and while anything exports its buffer (a ctypes object over it, a
memoryview) it refuses to resize at all.
"""

from __future__ import annotations

import ctypes

import linalloc
from linalloc import BumpArenaLazy

CHUNK = b"0123456789abcdef" * 4096  # 64 KiB
CHUNKS = 256  # 16 MiB in all


def arena_buffer() -> None:
    arena = BumpArenaLazy(1 << 40)
    buf = arena.alloc_copy(b"LOG\0")
    assert buf is not None
    c_pointer = linalloc.cast(buf, ctypes.c_char_p)  # what C would hold; keeps buf counted
    start = linalloc.address(buf)
    print(f"arena buffer: {len(buf)} bytes at {start:#x}; C reads {c_pointer.value!r}")
    for k in range(CHUNKS):
        end = len(buf)
        grown = arena.grow(buf, end + len(CHUNK))
        assert grown is not None  # None: no room, or buf is not the last allocation
        grown[end:] = CHUNK
        buf = grown
        if k + 1 in (1, 16, CHUNKS):
            same = "same address" if linalloc.address(buf) == start else "MOVED"
            committed = arena.committed >> 10
            print(f"  grown to {len(buf) >> 10:>6} KiB: {same}, committed {committed} KiB")
    # C's pointer still points at the start: read the first bytes through it.
    head = ctypes.string_at(c_pointer, 4)
    print(f"  C's pointer, never updated, still reads {head!r}")
    other = arena.alloc_copy(b"another allocation")
    print(f"  after another allocation, grow(buf) -> {arena.grow(buf, len(buf) + 1)}")
    del buf, grown, c_pointer, other
    arena.reset()
    print(f"  reset() + trim(): {arena.trim() >> 20} MiB given back")


def bytearray_buffer() -> None:
    buf = bytearray(b"LOG\0")
    exported = ctypes.c_char.from_buffer(buf)  # C's pointer to the start, as ctypes gives it
    start = ctypes.addressof(exported)
    print(f"bytearray: {len(buf)} bytes at {start:#x}")
    try:
        buf += CHUNK
    except BufferError as exc:
        print(f"  grow while C holds its address: BufferError: {exc}")
    del exported  # let go of the pointer: only then can it grow
    for _ in range(CHUNKS):
        buf += CHUNK
    now = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    moved = "moved: the old pointer dangles" if now != start else "did not move this time"
    print(f"  grown to {len(buf) >> 10:>6} KiB at {now:#x}: {moved}")


if __name__ == "__main__":
    arena_buffer()
    bytearray_buffer()
