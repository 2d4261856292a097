"""The windows of a typed arena: which slots ``alloc()`` hands out next.

Slots are handed out a *window* at a time (8 slots, growing to 512 with use;
``_slots``). Opening a window is the slow path, in Python: it commits memory
(lazy), zeroes the window's slots if a ``reset()`` or ``rewind()`` left them
dirty (one ``memset``), and makes the window's values. Handing out a value
inside the window runs no Python code beyond ``alloc()`` itself. A used-up
window shows as ``IndexError`` (``list.pop``) or ``StopIteration`` (``map``),
which ``alloc()`` catches at no cost while none is raised; so does
``_EMPTY_POP``, which stands in while no window is installed, so that every
allocation then takes the slow path, which repairs what an interrupted call left.
"""

from __future__ import annotations

import ctypes
from _collections import deque  # type: ignore[import-not-found]
from _weakref import ref
from itertools import repeat

from ._arena import _closed_error
from ._slots import NOTHING, Window, forget_dead_from
from ._typed_state import _EMPTY_POP, _SLOTS, T, TypedState
from ._unbound import ARRAY_ITEM, ARRAY_LEN
from ._views import freed_prefix

TYPE_CHECKING = False  # typing takes milliseconds to import: for type checkers only
if TYPE_CHECKING:
    from typing import Any

#: The most slots a window holds, and the fewest (windows double in size while
#: they are used up, and start small again after a restart, a checkpoint or a
#: rewind). Made ahead, a window's values count towards the collector's
#: threshold (700 new objects): 512 stay below it.
_WINDOW = 512
_MIN_WINDOW = 8


class SlotWindows(TypedState[T]):
    """Opening, restarting and extending a typed arena's window of slots."""

    def _usable_slots(self) -> int:
        """Slots that lie wholly in usable (committed) memory; none once retired.

        (A store is retired when the arena's drop callbacks are run at
        collection time, before the first: an arena brought back to life hands
        out none of its memory again, whatever call comes next.)
        """
        store = self._store
        if store.retired:
            return 0
        whole = (int(store.committed) - self._offset) // self._size  # (-1: ends before the offset)
        return max(min(self._capacity, whole), 0)

    def _restart(self, k: int) -> None:
        """Hand out slots from k on: close the window; the next allocation opens one at k.

        The slots handed out so far may hold data: they are zeroed when a
        window over them opens.
        """
        if not self._size:
            self._take = self._part.take  # (zero-size values: no window, every call succeeds)
            return
        cursor = self._cursor
        cursor.dirty = max(cursor.dirty, cursor.count())
        self._wn = _MIN_WINDOW  # (a restart, a checkpoint or a rewind: start small again)
        self._take = _EMPTY_POP  # first: the old window's values die with the old window
        win = cursor.win
        old = win.source
        batch = type(old) is list and len(old) > 0
        # Values made ahead (a list) keep their slots until known to be freed
        # (over: safe); a value that outlives the list (found with
        # ``gc.get_objects()``), or any whose death could run code (a ``__del__``
        # its type got since), keeps its slot and those below it. (No drop
        # callback: never dropped.)
        cursor.win = Window(max(k, win.end) if batch else k, NOTHING)
        # Empty the old window: an ``alloc()`` that read ``_take`` before this
        # restart (re-entered between its two lines by a trace function or a
        # signal handler) then finds nothing and takes the slow path, instead
        # of handing out a slot the new window hands out again.
        if batch:
            # (a value found may have written its slot before it died: all dirty)
            cursor.dirty = max(cursor.dirty, win.end)
            top = win.end - freed_prefix(old)  # (newest first: the highest slot first)
            cursor.win = Window(max(k, top), NOTHING)
        elif type(old) is not list and old is not NOTHING:
            deque(old, 0)  # (the range iterator the value map shares)

    def _set_window(self, k: int, end: int) -> None:
        """Make slots ``[k, end)`` the window (they must be usable and zero)."""
        part = self._part
        arr = part.arrays[_SLOTS]
        cursor = self._cursor
        if self._batched:
            if self._slices:  # newest first, for list.pop
                # (-1 would mean the last)
                source = ARRAY_ITEM(arr, slice(end - 1, k - 1 if k else None, -1))
            else:
                source = list(map(ARRAY_ITEM, repeat(arr), range(end - 1, k - 1, -1)))
            del arr
            window = Window(end, source)
            cursor.win = window  # published whole: the count stays exact
            self._take = source.pop
        else:
            rng = iter(range(k, end))
            part.take = map(ARRAY_ITEM, repeat(arr), rng)
            del arr
            cursor.win = Window(end, rng)
            self._take = part.take.__next__

    def _open_window(self) -> bool:
        """Open the next window at the cursor; False when full.

        Called when the window is used up. Zeroing that ``reset()`` deferred
        is done here, one ``memset`` per window.
        """
        cursor = self._cursor
        self._take = _EMPTY_POP
        win = cursor.win
        k = cursor.count()
        if k < win.end:  # published, not installed: an interrupted call
            self._take = win.source.pop if self._batched else self._part.take.__next__
            return True
        if k >= cursor.hi and not self._extend():
            return False
        self._refuse_if_held()
        end = min(cursor.hi, k + self._wn)
        self._wn = min(2 * self._wn, _WINDOW)  # windows double while they are used up
        if k < cursor.dirty:
            size = self._size
            ctypes.memset(self._root_address() + k * size, 0, (min(end, cursor.dirty) - k) * size)
        forget_dead_from(cursor, k)
        self._set_window(k, end)
        return True

    def _extend(self) -> bool:
        """Make slot ``hi`` usable (lazy: commit more); False when full."""
        return self._extend_to(self._cursor.hi + 1)

    def _extend_to(self, k: int) -> bool:
        """Make slots up to ``k`` usable (lazy: commit more); False when they cannot be."""
        cursor = self._cursor
        if self._size == 0 or k > self._capacity:
            return False
        store = self._store
        if not store.ensure(self._offset + k * self._size):
            return False
        if store.extent > ARRAY_LEN(self._part.root):
            # A part over all committed memory; the older ones stay counted.
            part = self._make_part()
            self._ledger.add_part(part)
            self._switch_part(part)
            self._ledger.prune_parts()
        cursor.hi = self._usable_slots()
        return True

    def _ahead(self) -> int:
        source = self._cursor.win.source
        return len(source) if type(source) is list else 0

    def _halt(self) -> None:
        if self._closed:
            raise _closed_error()
        if self._size:  # (zero-size values have no window to protect)
            self._take = _EMPTY_POP  # the slow path checks _busy
            self._restart(self._cursor.count())  # (read now: nothing can take a slot)

    def _position(self) -> int:
        return self._cursor.count()

    def _address_of(self, position: int) -> int:
        return self._root_address() + position * self._size

    def _clear_freed(self, position: int) -> None:
        """Zero the slots from ``position`` to the count, about to be freed, if pointers.

        The count goes down after the memory is freed: an interrupt landing in
        between leaves those slots counted, and iterating the arena must not
        find the addresses of targets freed with the memory.
        """
        if self._pointers and self._size:
            n = self._cursor.count()
            if n > position:
                size = self._size
                ctypes.memset(self._root_address() + position * size, 0, (n - position) * size)

    def _set_position(self, position: int) -> None:
        self._restart(position)
        # The dead slots above the count are gone with their memory; those below it
        # (a rewind to where a stopped drop left the count, which dropped nothing
        # more) stay dead: never dropped again.
        forget_dead_from(self._cursor, position)

    def _slots_at(self, k: int) -> Any:
        """The slot array that values of slot ``k`` come from (its region's newest)."""
        regions = self._ledger.regions
        for region in reversed(regions):
            if region.start <= k:
                return region.parts[-1].arrays[_SLOTS]
        return regions[0].parts[-1].arrays[_SLOTS]  # pragma: no cover - regions[0].start == 0

    def _root_address(self) -> int:
        return int(self._store.address) + self._offset

    def _used_bytes(self) -> int:
        return self._offset + self._cursor.count() * self._size

    def _after_trim(self) -> None:
        if not self._size:
            return  # zero-size values take no slots (and have no slot iterator to restart)
        live = self._cursor.count()  # before ``hi`` changes: count() is derived from it
        self._cursor.hi = self._usable_slots()
        self._restart(live)

    def _alloc_slow(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> T | None:
        """``alloc()`` once the window is used up: open the next one, or None when full.

        If the constructor then raises, what opening the window committed is
        given back (rule 6: a failed call changes nothing). On a full arena
        the arguments are still checked: bad ones raise as they would with room.
        """
        self._enter_mut()
        committed = self._store.committed
        token = self._begin("change")  # no re-entry (a finalizer) while the window changes
        try:
            self._busy = ref(token)
            if self._closed:  # (by code that ran before the mark: a finalizer)
                raise _closed_error()
            opened = self._open_window()
        finally:
            self._busy = None
            del token
        if not opened:
            if args or kwargs:
                self._check_args(args, kwargs)
            return None
        try:
            return self.alloc(*args, **kwargs)  # (the window now has a slot: the fast path)
        except BaseException:
            if self._store.committed != committed:
                self._uncommit(committed)
            raise
