"""numpy arrays over arena memory, without a copy.

Run it: python examples/numpy_zero_copy.py   (needs numpy; skips politely without it)

- ``numpy.frombuffer`` over a memoryview from ``BumpArena.alloc_uninit_slice``
  gives an array whose data *is* the arena's bytes.
- ``numpy.ctypeslib.as_array`` over ``TypedArena.as_array()`` gives a
  structured array over the arena's structs.

Writes through numpy show up in the arena and the other way round. While a
numpy array made from arena memory is alive, ``reset()`` is refused, so the
array can never see memory that was handed out again.
"""

from __future__ import annotations

import ctypes
import sys

from linalloc import BumpArena, Layout, TypedArena, address

try:
    import numpy as np
except ImportError:  # numpy is optional
    np = None  # type: ignore[assignment]


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double)]


def floats_example() -> None:
    arena = BumpArena(1 << 16)
    n = 1000
    view = arena.alloc_uninit_slice(Layout.array(ctypes.c_double, n))
    assert view is not None
    values = np.frombuffer(view, dtype=np.float64)  # no copy: wraps the arena's bytes
    values[:] = np.arange(n) * 0.5
    print(f"numpy data at 0x{values.ctypes.data:x}, arena slice at 0x{address(view):x}")
    assert values.ctypes.data == address(view)
    assert ctypes.c_double.from_buffer(view, 8 * 10).value == 5.0  # seen through ctypes too
    print(f"sum computed by numpy over arena memory: {values.sum()}")

    del view  # values still refers to the arena (through the memoryview it wraps)
    try:
        arena.reset()
    except BufferError as exc:
        print(f"reset() while the numpy array is alive: BufferError: {exc}")
    del values
    arena.reset()
    print(f"del values; reset() accepted, used = {arena.used}")
    arena.close()


def structs_example() -> None:
    arena = TypedArena(Point, 100)
    for i in range(5):
        arena.alloc(float(i), float(i * i))
    points = np.ctypeslib.as_array(arena.as_array())  # structured array, no copy
    print(f"dtype {points.dtype}, x = {points['x']}, y = {points['y']}")
    points["y"] *= -1  # written straight into the arena's structs
    print(f"after points['y'] *= -1, the arena's Points: {[(p.x, p.y) for p in arena]}")
    assert [p.y for p in arena] == [-0.0, -1.0, -4.0, -9.0, -16.0]
    del points
    arena.close()


if __name__ == "__main__":
    if np is None:
        print("numpy is not installed: nothing to show (pip install numpy)")
        sys.exit(0)
    floats_example()
    structs_example()
