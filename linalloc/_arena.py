"""What every arena shares: the lifetime and safety rules of the contract.

- rule 2: ``reset()``/``close()`` are refused with ``BufferError`` while a view
  the arena handed out is alive. Views are counted in O(1) from CPython
  reference counts: every view holds one reference to one of the arena's
  *tracked* objects (the store's root buffer, the typed slot array), so
  ``sys.getrefcount(obj)`` above its value at construction is the number of
  live views. A cycle may hold a view until the collector runs, so the count
  is taken again after ``gc.collect()`` before refusing. A lazy arena makes
  new tracked objects each time its committed memory grows (no object spans
  memory not yet committed); the earlier *generations* stay counted, each with
  its own baseline, until none of their views is left.
- rule 3: ``close()`` is idempotent; afterwards methods raise ``ValueError``.
- rule 4: calls from a thread other than the creating one raise ``RuntimeError``
  unless the arena was made with ``check_thread=False``.
- rule 5: no pickling or copying (``TypeError``); a readable repr.
"""

from __future__ import annotations

import gc
import sys
from _thread import _local, get_ident

from ._store import EagerStore

TYPE_CHECKING = False  # typing takes milliseconds to import: for type checkers only
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

#: A thread-local object: ``_THREAD.__dict__`` is a different dict in every thread.
#: An arena keeps its creating thread's one; comparing it with the calling
#: thread's is the same-thread check of the hot paths (``get_ident()`` would
#: make an int each call, and a thread id can be reused once its thread ended).
_THREAD = _local()


def _closed_error() -> ValueError:
    return ValueError("arena is closed")


def raise_closed(*args: object) -> NoReturn:
    raise _closed_error()


def refcounts_of(objs: tuple[Any, ...]) -> int:
    """The summed reference counts of tracked objects (one generation's)."""
    return sum([sys.getrefcount(obj) for obj in objs])


def raise_busy(*args: object) -> NoReturn:
    raise RuntimeError(
        "a drop callback cannot allocate from, reset or close the arena it is dropping from"
    )


class ArenaBase:
    """Shared behaviour of the four arenas; not instantiated directly."""

    _store_type: Any = EagerStore

    _owner: int | None
    _tdict: dict[str, Any] | None
    _closed: bool
    _busy: bool
    _tracked: tuple[Any, ...]
    _baseline: int
    _retired: list[tuple[tuple[Any, ...], int]]

    def _init_guard(self, check_thread: bool) -> None:
        if not isinstance(check_thread, bool):
            raise TypeError(f"check_thread must be a bool, not {type(check_thread).__name__}")
        self._owner = get_ident() if check_thread else None
        self._tdict = _THREAD.__dict__ if check_thread else None
        self._closed = False
        self._busy = False
        self._tracked = ()
        self._baseline = 0
        self._retired = []

    def _track(self, *names: str) -> None:
        """Record the objects views refer to; call once all setup references exist.

        Takes attribute names, not the objects: CPython < 3.11 keeps a call's
        arguments on the caller's stack during the call, which would put one
        reference too many into the baseline and hide one live view.
        """
        self._tracked = tuple([getattr(self, name) for name in names])
        self._baseline = self._refcounts()

    def _refcounts(self) -> int:
        return refcounts_of(self._tracked)

    def _live(self) -> int:
        """Live views of every generation; forgets retired generations with none left."""
        live = self._refcounts() - self._baseline
        if self._retired:
            kept = [gen for gen in self._retired if refcounts_of(gen[0]) > gen[1]]
            self._retired = kept
            live += sum([refcounts_of(gen[0]) - gen[1] for gen in kept])
        return live

    def _retire(self, forget: Callable[[], None]) -> None:
        """Retire the tracked objects: ``forget()`` drops the arena's references to them.

        Their live views (counted before, with no window value pending) stay
        counted: the retired generation's baseline is its reference count once
        the arena let go, less those views. The collector is paused meanwhile,
        so that no view dies between the two counts.
        """
        enabled = gc.isenabled()
        gc.disable()
        try:
            live = self._refcounts() - self._baseline
            old = self._tracked
            forget()
            self._tracked = ()
            if live > 0:
                self._retired.append((old, refcounts_of(old) - live))
            del old
        finally:
            if enabled:
                gc.enable()

    def live_views(self) -> int:
        """How many views handed out by this arena are still referenced.

        Values, memoryviews, ctypes objects and arrays (numpy too) made from
        them each count. Objects kept only by an unreachable cycle count until
        the garbage collector has run.

        >>> import ctypes
        >>> from linalloc import BumpArena
        >>> arena = BumpArena(64)
        >>> value = arena.alloc(ctypes.c_int32)
        >>> arena.live_views()
        1
        >>> del value
        >>> arena.live_views()
        0
        """
        self._enter()
        return self._live()

    def _refuse_if_viewed(self, action: str) -> None:
        live = self._live()
        if live > 0:
            self._prune_keepalive()
            gc.collect()
            live = self._live()
        if live > 0:
            views = "1 view" if live == 1 else f"{live} views"
            raise BufferError(
                f"cannot {action}: {views} of this arena still alive (values, memoryviews, "
                "ctypes objects or arrays made from them); delete them first"
            )

    def _prune_keepalive(self) -> None:
        """Forget references the arena's own memory holds to its own views (typed)."""

    def _wrong_thread(self) -> NoReturn:
        raise RuntimeError(
            f"{type(self).__name__} objects created in a thread can only be used in that "
            f"same thread (created in thread {self._owner}, called from {get_ident()}); "
            "pass check_thread=False to share one under your own lock"
        )

    def _enter(self) -> None:
        """Checks for any call: not closed, right thread."""
        if self._closed:
            raise _closed_error()
        tdict = self._tdict
        if tdict is not None and tdict is not _THREAD.__dict__:
            self._wrong_thread()

    def _enter_mut(self) -> None:
        """Checks for a call that changes the arena: also not inside a drop callback."""
        self._enter()
        if self._busy:
            raise_busy()

    # -- closing -----------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once ``close()`` has run.

        >>> from linalloc import BumpArena
        >>> with BumpArena(16) as arena:
        ...     arena.closed
        False
        >>> arena.closed
        True
        """
        return self._closed

    def close(self) -> None:
        """Drop live values (typed arenas), then release the memory at once.

        Raises ``BufferError`` and changes nothing while a view is alive.
        Idempotent: closing a closed arena does nothing. Afterwards every method
        raises ``ValueError``. If a ``drop`` callback keeps a value, the memory
        is released when that value is collected instead.

        >>> import ctypes
        >>> from linalloc import TypedArena
        >>> arena = TypedArena(ctypes.c_int32, 4, drop=lambda v: print("drop", v.value))
        >>> value = arena.alloc(7)
        >>> arena.close()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        BufferError: cannot close: 1 view of this arena still alive ...
        >>> del value
        >>> arena.close()
        drop 7
        >>> arena.close()  # idempotent
        >>> arena.alloc(1)
        Traceback (most recent call last):
        ...
        ValueError: arena is closed
        """
        if self._closed:
            return
        self._enter_mut()
        self._refuse_if_viewed("close")
        error = self._drop_for_close()
        self._closed = True
        self._release()
        self._tracked = ()
        self._retired = []
        if error is not None:
            raise error

    def _drop_for_close(self) -> BaseException | None:
        return None

    def _release(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Any:
        self._enter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- rule 5 ------------------------------------------------------------

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError(f"cannot pickle or copy a {type(self).__name__}: it owns raw memory")

    def __copy__(self) -> NoReturn:
        self.__reduce_ex__(0)

    def __deepcopy__(self, memo: object) -> NoReturn:
        self.__reduce_ex__(0)

    def _repr_fields(self) -> list[str]:
        raise NotImplementedError

    def __repr__(self) -> str:
        if self._closed:
            return f"<{type(self).__name__} closed>"
        return f"<{type(self).__name__} {' '.join(self._repr_fields())}>"
