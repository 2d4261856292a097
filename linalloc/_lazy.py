"""What the lazy arenas add to their eager twins: the lazy store and its gauges."""

from __future__ import annotations

import ctypes
from _weakref import ref

from ._store import LazyStore
from ._unbound import ARRAY_LEN

TYPE_CHECKING = False  # typing takes milliseconds to import: for type checkers only
if TYPE_CHECKING:
    from typing import Any


class LazyArenaMixin:
    """Mixed in before an eager arena class to back it with reserved memory.

    The allocation algorithm is the eager class's, unchanged; only the store
    differs. Address space is reserved up front and committed in whole pages,
    ``commit_step`` bytes at a time, as allocation advances.
    """

    _store_type: Any = LazyStore
    _store: Any

    if TYPE_CHECKING:  # provided by ArenaBase and the arena class
        _busy: Any
        _ledger: Any

        def _enter(self) -> None: ...
        def _enter_mut(self) -> None: ...
        def _begin(self, kind: str, nested: bool = False) -> Any: ...
        def _halt(self) -> None: ...
        def _used_bytes(self) -> int: ...
        def _after_trim(self) -> None: ...
        def _held_views(self) -> int: ...

    @property
    def committed(self) -> int:
        """Bytes of the reservation now committed (readable and writable).

        Never more than the bytes used rounded up to ``commit_step`` (and to the
        reservation's end), except that ``reset()`` keeps what was committed
        until ``trim()``.

        >>> from linalloc import BumpArenaLazy, Layout
        >>> arena = BumpArenaLazy(1 << 30)
        >>> arena.committed
        0
        >>> view = arena.alloc_uninit_slice(Layout(arena.commit_step + 1))
        >>> arena.committed == 2 * arena.commit_step
        True
        """
        self._enter()
        return int(self._store.committed)

    @property
    def commit_step(self) -> int:
        """Bytes committed at a time: 64 KiB rounded up to whole pages.

        >>> from linalloc import COMMIT_STEP, TypedArenaLazy, page_size
        >>> import ctypes
        >>> step = TypedArenaLazy(ctypes.c_int8, 1 << 20).commit_step
        >>> step >= COMMIT_STEP and step % page_size() == 0
        True
        """
        self._enter()
        return int(self._store.step)

    @property
    def last_os_error_code(self) -> int | None:
        """``errno`` (POSIX) or ``GetLastError()`` (Windows) of the last failed
        commit or decommit, or ``None`` if there was none.

        >>> from linalloc import BumpArenaLazy
        >>> print(BumpArenaLazy(1 << 20).last_os_error_code)
        None
        """
        self._enter()
        error: int | None = self._store.last_error
        return error

    def trim(self) -> int:
        """Give committed pages past ``used`` back to the OS; returns the bytes released.

        Their memory goes back to the OS at once; the pages stay mapped
        readable and writable (objects handed out earlier may span them) until
        the reservation is released. A later allocation commits them again
        (they read as zero then). Raises ``OSError`` if the OS refuses.

        Memory that ``reset()`` or ``rewind()`` freed while a view of it lived
        (a value a drop callback kept) counts as used until the last such view
        is gone: its pages stay committed, and their contents with them, as a
        live view's must (the call is not refused: it gives back what lies
        past that memory, maybe nothing).

        >>> from linalloc import BumpArenaLazy, Layout
        >>> arena = BumpArenaLazy(1 << 30)
        >>> view = arena.alloc_uninit_slice(Layout(1 << 20))
        >>> del view
        >>> arena.reset()
        >>> arena.trim() == 1 << 20, arena.committed
        (True, 0)
        """
        self._enter_mut()
        token = self._begin("change")
        try:
            self._busy = ref(token)
            self._halt()  # (no allocation between reading ``used`` and trimming)
            released = int(self._store.trim(max(self._used_bytes(), self._held_bytes())))
            self._after_trim()
        finally:
            self._busy = None
            del token
        return released

    def _held_bytes(self) -> int:
        """Bytes from the start up to the end of the held memory still viewed; 0 if none.

        (Held memory: what a rewind or reset freed while a view of it lived.)
        """
        ledger = self._ledger
        if not ledger.held or self._held_views() <= 0:
            return 0
        start = int(self._store.address)
        ends = [
            ctypes.addressof(held.part.root) + ARRAY_LEN(held.part.root) - start
            for held in ledger.held
            if held.views() > 0
        ]
        return max(ends, default=0)

    def _repr_fields(self) -> list[str]:
        fields: list[str] = super()._repr_fields()  # type: ignore[misc]
        return [*fields, f"committed={self._store.committed}"]
