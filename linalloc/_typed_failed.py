"""Undoing a typed allocation that failed (rule 6: a failed call changes nothing).

A constructor that raises, a store that raises, or an interrupt gives back
the slot and what opening its window committed; but a slot is never handed
out again while an object over it may live (rule 1 first): then it stays
used, cleared, and is never dropped (``Cursor.dead``).
"""

from __future__ import annotations

import ctypes
from _weakref import ref

from ._typed_state import T, TypedState
from ._values import init_error
from ._views import freed_prefix

TYPE_CHECKING = False  # typing takes milliseconds to import: for type checkers only
if TYPE_CHECKING:
    from typing import Any


class FailedAllocation(TypedState[T]):
    """Giving back what an allocation that raised took."""

    def _check_args(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Raise what ``ctype(*args, **kwargs)`` raises (reworded), building it aside."""
        try:
            self._ctype(*args, **kwargs)
            return
        except (TypeError, ValueError, OverflowError, IndexError) as exc:
            error = init_error(self._ctype, args, exc)
            if error is None:
                raise
        try:
            raise error from None  # (outside the handler: no frame kept as its context)
        finally:
            del error  # no cycle frame -> error -> traceback -> frame

    def _uncommit(self, committed: int) -> None:
        """Give back what a failed allocation committed (rule 6: nothing changes).

        Never below the live values (a constructor may have allocated). Marks
        the arena busy if it is not already.
        """
        previous = self._busy
        token = self._begin("change", nested=True)
        try:
            self._busy = ref(token)
            self._halt()
            try:
                self._store.trim(max(committed, self._used_bytes()))
            except OSError:
                pass  # the pages stay committed; the allocation still failed cleanly
            self._after_trim()
        finally:
            self._busy = previous
            del token

    def _init_failed(
        self, failed: list[Any], args: tuple[Any, ...], exc: BaseException, reads: int
    ) -> BaseException | None:
        """Undo an allocation whose constructor raised: clear the slot, hand it out again.

        ``failed`` holds the value, the caller's only reference to it (the
        list is emptied). The slot is handed out again only if nothing else
        holds the value (see :meth:`_give_back_failed`); else it stays used,
        cleared, and is never dropped. The same if the constructor made views
        of the live values (iterated the arena, ``as_array()``: ``reads``,
        the arena's count of such calls before it ran, differs now), which
        can take one over the slot; if it allocated
        from this arena (the slot is no longer the newest) or took a
        checkpoint (or entered a scope) of it: that checkpoint's position
        counts the slot, and a rewind to it must not make a slot never
        handed out live again. Returns the error to raise instead of the
        constructor's, if any.
        """
        if self._size:
            previous = self._busy
            token = self._begin("change", nested=True)
            try:
                self._busy = ref(token)
                self._halt()  # (the count is read below: nothing may take a slot meanwhile)
                self._give_back_failed(failed, self._reads != reads)
            finally:
                self._busy = previous
                del token
        failed.clear()
        return init_error(self._ctype, args, exc)

    def _give_back_failed(self, failed: list[Any], viewed: bool = False) -> None:
        """Clear the slot of the value in ``failed``; hand it out again if the value is gone.

        ``failed``: a list holding the value whose allocation failed, the
        only reference the arena keeps; it is emptied here. Something else
        may hold the value: the traceback of a Python ``__init__`` that
        raised (its frame holds ``self``; the library cannot drop a frame of
        the caller's exception), or whatever the constructor gave ``self``
        to; or a ``__del__`` brought it back to life. The slot is given back
        only if the value is freed once the list lets go of it (told by a
        weak reference: see ``_views.freed_prefix``). Else the slot stays
        used (dead), as the live value's; so it does if ``viewed`` (other
        objects over the slot may live). Call while busy and halted.
        """
        k = (ctypes.addressof(failed[0]) - self._root_address()) // self._size
        kept = freed_prefix(failed) == 0  # (freed here unless something else holds it)
        self._give_back(k, kept or viewed)

    def _give_back(self, k: int, kept: bool = False) -> None:
        """Clear slot ``k``, a value's whose allocation failed, and hand it out again.

        Call while the arena is busy and halted, once no value over the slot
        is left: ``kept`` says one may be, and the slot stays used (dead).
        The same if the slot is no longer the newest, or a checkpoint was
        taken after it.
        """
        ctypes.memset(self._root_address() + k * self._size, 0, self._size)
        if not kept and k == self._cursor.count() - 1 and self._ledger.regions[-1].start <= k:
            self._restart(k)
        else:
            self._cursor.dead.add(k)
