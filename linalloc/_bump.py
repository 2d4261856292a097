"""Untyped bump allocation: ``BumpArena`` (eager) and ``BumpArenaLazy``."""

from __future__ import annotations

import ctypes
from typing import Any, TypeVar

from ._arena import ArenaBase
from ._layout import Layout, check_count, check_storable
from ._lazy import LazyArenaMixin

C = TypeVar("C")

# ctypes type -> (size, align), for types already checked by check_storable.
_layouts: dict[type[Any], tuple[int, int]] = {}


def _ctype_layout(ctype: Any) -> tuple[int, int]:
    found = _layouts.get(ctype)
    if found is None:
        check_storable(ctype)
        found = (ctypes.sizeof(ctype), ctypes.alignment(ctype))
        if len(_layouts) >= 4096:
            _layouts.clear()
        _layouts[ctype] = found
    return found


class BumpArena(ArenaBase):
    """A fixed-capacity arena of raw bytes in one ctypes string buffer.

    Allocation moves a pointer forward ("bumps" it); nothing is freed one by
    one; ``reset()`` frees everything at once. When the arena is full,
    allocation returns ``None``. Addresses never move, so the memory can be
    handed to C.

    ``capacity`` is in bytes: an int >= 0 (``TypeError``/``ValueError``
    otherwise; ``MemoryError`` when the buffer cannot be had). With
    ``check_thread=True`` (the default) calls from another thread raise
    ``RuntimeError``.

    >>> import ctypes
    >>> from linalloc import BumpArena, Layout, address
    >>> arena = BumpArena(1024)
    >>> view = arena.alloc_uninit_slice(Layout(16, 8))
    >>> view[:5] = b"hello"
    >>> len(view), view.format, address(view) % 8
    (16, 'B', 0)
    >>> n = arena.alloc(ctypes.c_int64)
    >>> n.value = 42
    >>> arena.used
    24
    >>> arena.reset()  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    BufferError: cannot reset: 2 views of this arena still alive ...
    >>> del view, n
    >>> arena.reset(); arena.used
    0
    """

    def __init__(self, capacity: int, *, check_thread: bool = True) -> None:
        capacity = check_count("capacity", capacity)
        self._init_guard(check_thread)
        self._store = store = self._store_type(capacity)
        self._root: Any = store.root
        self._base: int = store.address
        self._capacity = capacity
        self._used = 0
        self._limit: int = store.committed  # bytes usable without asking the store
        self._track(self._root)

    # -- the algorithm -----------------------------------------------------

    def _bump(self, size: int, align: int) -> int | None:
        """Offset of a new block of ``size`` bytes aligned to ``align``, or None."""
        base = self._base
        start = ((base + self._used + align - 1) & -align) - base
        end = start + size
        if end > self._limit:
            if end > self._capacity or not self._store.ensure(end):
                return None
            self._limit = self._store.committed
        self._used = end
        return start

    def alloc_uninit_slice(self, layout: Layout) -> memoryview | None:
        """A writable 1-D memoryview (format ``'B'``) of ``layout.size`` bytes.

        Its first byte's address is a multiple of ``layout.align``. Returns
        ``None`` when the arena has no room (lazy: or the commit failed); a
        failed request changes nothing. The bytes are not cleared. A zero-size
        request returns an empty view and does not advance ``used``; its
        address is aligned when the aligned position lies within the arena.
        """
        self._enter()
        if type(layout) is not Layout:
            raise TypeError(f"layout must be a Layout, not {type(layout).__name__}")
        size = layout._size
        if size == 0:
            base = self._base
            here = ((base + self._used + layout._align - 1) & -layout._align) - base
            return memoryview(self._root)[here:here].cast("B")
        start = self._bump(size, layout._align)
        if start is None:
            return None
        return memoryview(self._root)[start : start + size].cast("B")

    def alloc(self, ctype: type[C]) -> C | None:
        """An instance of ``ctype`` living in the arena (bytes not cleared), or None.

        Aligned to ``ctypes.alignment(ctype)``. Types holding a ``py_object``
        are refused with ``TypeError``.
        """
        self._enter()
        size, align = _ctype_layout(ctype)
        start = self._bump(size, align)
        if start is None:
            return None
        return ctype.from_buffer(self._root, start)  # type: ignore[attr-defined,no-any-return]

    def alloc_array(self, ctype: type[C], n: int) -> Any | None:
        """An instance of ``ctype * n`` living in the arena, or None."""
        self._enter()
        n = check_count("n", n)
        size, align = _ctype_layout(ctype)
        if size * n > self._capacity:
            return None  # cannot fit; also keeps ctypes from building a huge type
        array_type: Any = ctype * n  # type: ignore[operator]
        start = self._bump(size * n, align)
        if start is None:
            return None
        return array_type.from_buffer(self._root, start)

    # -- state -------------------------------------------------------------

    @property
    def used(self) -> int:
        """Bytes from the start to the end of the last allocation, padding included."""
        self._enter()
        return self._used

    @property
    def capacity(self) -> int:
        """The fixed capacity in bytes (readable after close too)."""
        return self._capacity

    def reset(self) -> None:
        """Make all capacity free again. Refused with ``BufferError`` while a view lives.

        Runs no destructors; committed memory (lazy) stays committed.
        """
        self._enter_mut()
        self._refuse_if_viewed("reset")
        self._used = 0

    def _used_bytes(self) -> int:
        return self._used

    def _after_trim(self) -> None:
        self._limit = self._store.committed

    def _release(self) -> None:
        self._root = None
        self._store = None

    def _repr_fields(self) -> list[str]:
        return [f"capacity={self._capacity}", f"used={self._used}"]


class BumpArenaLazy(LazyArenaMixin, BumpArena):
    """A ``BumpArena`` over reserved virtual memory, committed as it fills.

    ``BumpArenaLazy(1 << 40)`` reserves a terabyte of address space and
    commits pages only as the bump pointer reaches them. Raises ``OSError``
    (with ``errno``) when the OS refuses the reservation.

    >>> from linalloc import BumpArenaLazy, Layout
    >>> arena = BumpArenaLazy(1 << 40)
    >>> arena.committed
    0
    >>> view = arena.alloc_uninit_slice(Layout(100, 8))
    >>> arena.used, arena.committed == arena.commit_step
    (100, True)
    """
