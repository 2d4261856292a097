"""The two first examples of linalloc: a BumpArena of raw bytes and a TypedArena of structs.

Run it: python examples/quickstart.py
"""

from __future__ import annotations

import ctypes

from linalloc import BumpArena, Layout, TypedArena, address


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double)]


def bump_example() -> None:
    """Raw bytes: a u64 and a 16-byte slice from a 1 KiB arena."""
    arena = BumpArena(1024)

    number = arena.alloc(ctypes.c_uint64)  # an 8-byte, 8-aligned c_uint64 in the arena
    assert number is not None  # None would mean the arena is full
    number.value = 42

    raw = arena.alloc_uninit_slice(Layout.from_size_align(16, 8))  # 16 bytes, not cleared
    assert raw is not None
    raw[:] = bytes(range(16))

    print(f"number = {number.value}, slice = {bytes(raw[:4]).hex()}..., used = {arena.used}")
    print(f"the slice starts {address(raw) - address(number)} bytes after the number")


def typed_example() -> None:
    """Values of one ctypes type; reset() is refused while a value is still held."""
    arena = TypedArena(Point, 100)

    value = arena.alloc(1.0, 2.0)
    assert value is not None
    print(f"value = Point({value.x}, {value.y}), len = {len(arena)}")

    # In the Rust crate, using `value` after `arena.reset()` does not compile.
    # Here reset() checks at run time, and refuses while `value` is referenced:
    try:
        arena.reset()
    except BufferError as exc:
        print(f"reset() refused: {exc}")

    del value  # drop the last reference...
    arena.reset()  # ...and the same reset() is accepted
    print(f"after del + reset(): len = {len(arena)}")


def bulk_example() -> None:
    """Many values in one call: alloc_many, alloc_extend, alloc_copy."""
    arena = TypedArena(Point, 100)

    grid = arena.alloc_many(10)  # 10 zeroed Points in consecutive slots: a Point * 10 array
    assert grid is not None
    grid[9].x = 9.0
    print(f"alloc_many(10): {type(grid).__name__} of {len(grid)}, len = {len(arena)}")

    corners = arena.alloc_extend([(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)])
    assert corners is not None  # all or nothing: None if they did not all fit
    print(f"alloc_extend: {[(p.x, p.y) for p in corners]}, len = {len(arena)}")

    source = (Point * 3)(Point(1.0, 1.0), Point(2.0, 4.0), Point(3.0, 9.0))
    copied = arena.alloc_extend(source)  # a ctypes array of Point: one memmove
    assert copied is not None
    print(f"alloc_extend of a Point * 3 array: y = {[p.y for p in copied]}, len = {len(arena)}")

    bump = BumpArena(256)
    name = bump.alloc_copy(b"arena\0")  # a copy of any buffer's bytes: here a C string
    assert name is not None
    print(f"alloc_copy: {bytes(name)!r} at {address(name):#x}, used = {bump.used}")


if __name__ == "__main__":
    bump_example()
    typed_example()
    bulk_example()
