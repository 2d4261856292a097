"""Backing stores: where an arena's bytes live.

A store owns one contiguous block and answers four questions for the
allocation algorithm, which is written once in ``_bump``/``_typed``:

- ``root``: a ctypes ``c_char`` array over the whole block. Every view an arena
  hands out is derived from it (``from_buffer``/``memoryview``), so the block
  lives exactly as long as the last view of it.
- ``address``, ``capacity``: where the block starts and how many bytes it has.
- ``ensure(end) -> bool``: make bytes ``[0, end)`` usable; False if not.
- ``trim(keep) -> int``: give back what lies past ``keep`` (lazy only).

``EagerStore`` is a zero-filled ctypes string buffer: every byte is usable at
once. ``LazyStore`` reserves address space and commits it in steps of
``commit_step`` bytes as ``ensure`` asks for more.
"""

from __future__ import annotations

import ctypes
import mmap
import sys
import weakref

from . import _vm

TYPE_CHECKING = False  # typing takes milliseconds to import: for type checkers only
if TYPE_CHECKING:
    from typing import Any

#: Lazy stores commit in steps of this many bytes (rounded up to whole pages).
COMMIT_STEP = 64 * 1024


def _round_up(n: int, step: int) -> int:
    return (n + step - 1) // step * step


class EagerStore:
    """``capacity`` bytes in one ``ctypes.create_string_buffer``, all usable."""

    lazy = False
    last_error: int | None = None

    def __init__(self, capacity: int) -> None:
        if capacity > sys.maxsize:
            raise OverflowError(f"capacity {capacity} exceeds sys.maxsize")
        try:
            self.root: Any = ctypes.create_string_buffer(capacity)
        except (MemoryError, OverflowError):
            raise MemoryError(f"cannot allocate an arena of {capacity} bytes") from None
        self.address = ctypes.addressof(self.root)
        self.capacity = capacity
        self.committed = capacity

    def ensure(self, end: int) -> bool:
        return end <= self.capacity

    def trim(self, keep: int) -> int:
        return 0


class LazyStore:
    """``capacity`` bytes of reserved address space, committed on demand.

    The reservation is released (``munmap``/``VirtualFree``) when ``root`` and
    every object derived from it have been garbage collected, never earlier.
    Capacity 0 reserves nothing and makes no system call.
    """

    lazy = True

    def __init__(self, capacity: int) -> None:
        if capacity > sys.maxsize:
            raise OverflowError(f"capacity {capacity} exceeds sys.maxsize")
        self.capacity = capacity
        self.committed = 0
        self.last_error: int | None = None
        if capacity == 0:
            self.vm: Any = None
            # No reservation, no system call; the step is still the documented one.
            self.page = mmap.PAGESIZE
            self.step = _round_up(COMMIT_STEP, self.page)
            self.reserved = 0
            self.root = ctypes.create_string_buffer(0)
            self.address = ctypes.addressof(self.root)
            return
        self.vm = vm = _vm.get()
        self.page = vm.page_size
        self.step = _round_up(COMMIT_STEP, self.page)
        self.reserved = _round_up(capacity, self.page)
        if self.reserved > sys.maxsize:
            raise OverflowError(f"capacity {capacity} exceeds the address space")
        self.address = vm.reserve(self.reserved)
        try:
            self.root = (ctypes.c_char * capacity).from_address(self.address)
        except BaseException:
            vm.release(self.address, self.reserved)
            raise
        # Not at interpreter exit: views may still be used by other finalizers,
        # and the OS reclaims the mapping with the process anyway.
        weakref.finalize(self.root, vm.release, self.address, self.reserved).atexit = False

    def ensure(self, end: int) -> bool:
        if end <= self.committed:
            return True
        if end > self.capacity:
            return False
        target = min(_round_up(end, self.step), self.reserved)
        error = self.vm.commit(self.address + self.committed, target - self.committed)
        if error is not None:
            self.last_error = error
            return False
        self.committed = target
        return True

    def trim(self, keep: int) -> int:
        keep = _round_up(keep, self.page)
        if keep >= self.committed:
            return 0
        error = self.vm.decommit(self.address + keep, self.committed - keep)
        if error is not None:
            self.last_error = error
            raise OSError(error, f"cannot decommit arena pages (error code {error})")
        released = self.committed - keep
        self.committed = keep
        return released
