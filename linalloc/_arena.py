"""What every arena shares: the lifetime and safety rules of the contract.

- rule 2: ``reset()``/``close()`` (and ``rewind()``, per region) are refused
  with ``BufferError`` while a view the arena handed out is alive. The
  counting is the ledger's: ``_views`` writes down its one invariant (the
  live views of every part never exceed the references its objects hold
  beyond the arena's own, equal when no method runs) and, for each state
  change, why it holds at every bytecode boundary. This module asks the
  ledger, and collects garbage once before refusing (a cycle may hold a view
  until the collector runs).
- checkpoints: ``checkpoint()``, ``rewind(cp)``, ``scope()``, written once for
  all four arenas over a few hooks of the allocation algorithm.
- rule 3: ``close()`` is idempotent; afterwards methods raise ``ValueError``.
- rule 4: calls from a thread other than the creating one raise ``RuntimeError``
  unless the arena was made with ``check_thread=False``.
- rule 5: no pickling or copying (``TypeError``); a readable repr.
"""

from __future__ import annotations

import gc
from _thread import _local, get_ident
from _weakref import ref
from itertools import chain

from ._store import EagerStore
from ._views import Ledger, Part, Region, collect_and_count, reusable

TYPE_CHECKING = False  # typing takes milliseconds to import: for type checkers only
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType
    from typing import Any, NoReturn

    from ._views import Watching

#: A thread-local object: ``_THREAD.__dict__`` is a different dict in every thread.
#: An arena keeps its creating thread's one; comparing it with the calling
#: thread's is the same-thread check of the hot paths (``get_ident()`` would
#: make an int each call, and a thread id can be reused once its thread ended).
_THREAD = _local()


def _closed_error() -> ValueError:
    return ValueError("arena is closed")


def raise_closed(*args: object) -> NoReturn:
    raise _closed_error()


def raise_busy(*args: object) -> NoReturn:
    raise RuntimeError(
        "the arena is busy: a drop callback cannot allocate from, rewind, reset or close "
        "the arena it is dropping from, nor can code that runs in the middle of one of its "
        "calls (a finalizer, a signal handler)"
    )


class Busy:
    """What an arena is doing while it must not be re-entered.

    The running call keeps it in a local variable and the arena refers to it
    weakly: an exception or a signal that skips the call's ``finally`` leaves
    nothing stuck once the call's frame is gone.
    """

    __slots__ = ("kind", "__weakref__")

    def __init__(self, kind: str) -> None:
        self.kind = kind


def _viewed(action: str, since: int, live: int) -> BufferError:
    """The refusal of ``action`` while ``live`` views of ``regions[since:]`` are alive."""
    what = "this arena" if since == 0 else "memory allocated after the checkpoint"
    return BufferError(
        f"cannot {action}: {_views_text(live)} of {what} still alive (values, "
        "memoryviews, ctypes objects or arrays made from them); delete them first"
    )


def _views_text(count: int) -> str:
    return "1 view" if count == 1 else f"{count} views"


class Checkpoint:
    """A position of one arena, to ``rewind()`` to: opaque, immutable, hashable.

    It holds no reference to the arena or its memory. It stays valid until
    the arena rewinds to an earlier checkpoint, resets or closes.

    >>> import ctypes
    >>> from linalloc import BumpArena
    >>> arena = BumpArena(64)
    >>> cp = arena.checkpoint()
    >>> type(cp).__name__, cp == cp, hash(cp) == hash(cp)
    ('Checkpoint', True, True)
    """

    __slots__ = ("_token", "_serial", "_position", "_region")
    _token: object
    _serial: int
    _position: int
    _region: ref[Region]

    def __init__(self, token: object, serial: int, position: int, region: Region) -> None:
        object.__setattr__(self, "_token", token)
        object.__setattr__(self, "_serial", serial)
        object.__setattr__(self, "_position", position)
        object.__setattr__(self, "_region", ref(region))  # weak: no memory is held

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Checkpoint is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Checkpoint is immutable")

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("cannot pickle or copy a Checkpoint: it belongs to one arena")

    def __copy__(self) -> Checkpoint:
        return self  # immutable

    def __deepcopy__(self, memo: object) -> Checkpoint:
        return self

    def __repr__(self) -> str:
        return f"<Checkpoint #{self._serial} at position {self._position}>"


class Scope:
    """``with arena.scope() as cp:``: a checkpoint on entry, a rewind to it on exit."""

    __slots__ = ("_arena", "_checkpoint")

    def __init__(self, arena: ArenaBase) -> None:
        self._arena = arena
        self._checkpoint: Checkpoint | None = None

    def __enter__(self) -> Checkpoint:
        if self._checkpoint is not None:
            raise RuntimeError("a scope can be entered only once; call arena.scope() again")
        self._checkpoint = self._arena.checkpoint()
        return self._checkpoint

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        arena = self._arena
        cp = self._checkpoint
        if cp is None or arena._closed or arena._region_of(cp) < 0:
            return  # closed, reset or rewound past inside the block: nothing left to free
        try:
            arena.rewind(cp)
        except BufferError as error:
            if exc is not None:
                raise error from exc
            raise
        arena._unmark(cp)  # the scope's own checkpoint ends with it


class ArenaBase:
    """Shared behaviour of the four arenas; not instantiated directly.

    The allocation algorithm (``_bump``, ``_typed``) provides the hooks:
    ``_make_part`` (a new part over the store's current root), ``_switch_part``
    (make it the one values come from), ``_halt`` (stop the hot paths and
    give back values made ahead), ``_ahead`` (how many there are),
    ``_position``, ``_set_position``, ``_drop_after`` and ``_release``.

    Every call that changes the arena's state follows one order: ``_begin``
    (refused if the arena is busy), then, first thing inside its ``try``, the
    store of ``_busy``, then ``_halt()``; its ``finally`` sets ``_busy``
    back. From the store on, code that runs in the middle of the call (a
    finalizer run by the collector, a signal handler, a trace function)
    cannot allocate: the hot paths go to the slow paths, which check
    ``_busy``. So the position ``_halt`` reads is exact and stays so.
    """

    _store_type: Any = EagerStore

    _owner: int | None
    _tdict: dict[str, Any] | None
    _closed: bool
    _store: Any
    _ledger: Ledger
    _part: Part

    def _init_guard(self, check_thread: bool) -> None:
        # A second ``__init__`` would put a new store and ledger under the values, views
        # and running calls of the first, and clear the busy mark: refused.
        try:
            object.__getattribute__(self, "_token")
        except AttributeError:
            pass
        else:
            raise RuntimeError(f"{type(self).__name__}.__init__() runs once: make a new arena")
        if not isinstance(check_thread, bool):
            raise TypeError(f"check_thread must be a bool, not {type(check_thread).__name__}")
        self._owner = get_ident() if check_thread else None
        self._tdict = _THREAD.__dict__ if check_thread else None
        self._closed = False
        self._busy: ref[Busy] | None = None
        #: calls that made views of live values (``_enter_view``), so far
        self._reads = 0
        self._serial = 0
        self._token = object()

    def _init_ledger(self) -> None:
        """Track the store and its first part; call once ``self._store`` is set.

        Nothing may be handed out before this.
        """
        self._ledger = Ledger()
        self._part = self._make_part()
        self._ledger.open_region(0, self._part)

    # -- hooks of the allocation algorithm ------------------------------------

    def _make_part(self) -> Part:
        raise NotImplementedError

    def _switch_part(self, part: Part) -> None:
        self._part = part

    def _halt(self) -> None:
        """Send every allocation, hot paths included, to a path that checks ``_busy``,
        and give back the values made ahead (the position is exact from here on).

        Call it once the arena is marked busy. Raises ``ValueError`` if the
        arena is closed (code that ran before the mark may have closed it).
        """

    def _begin(self, kind: str, nested: bool = False) -> Busy:
        """A token to mark the arena busy (``"change"``, or ``"drop"`` while drop callbacks run).

        Raises if already busy, unless ``nested``. The caller stores
        ``ref(token)`` in ``_busy`` as the first line of its ``try``, keeps
        the token in a local variable for as long as the call runs, and sets
        ``_busy`` back in the ``finally``: an exception or a signal landing
        anywhere (a ``KeyboardInterrupt`` in the middle of this method
        included) cannot leave the arena marked busy once the call is over.
        """
        if not nested and self._busy_kind() is not None:
            raise_busy()
        return Busy(kind)

    def _busy_kind(self) -> str | None:
        busy = self._busy
        token = busy() if busy is not None else None
        return token.kind if token is not None else None

    def _ahead(self) -> int:
        return 0

    def _position(self) -> int:
        raise NotImplementedError

    def _set_position(self, position: int) -> None:
        raise NotImplementedError

    def _drop_after(self, position: int) -> BaseException | None:
        return None

    def _clear_freed(self, position: int) -> None:
        """Clear what the memory from ``position`` on, about to be freed, must not keep."""

    def _drops_after(self, position: int) -> bool:
        """Whether ``_drop_after(position)`` will run drop callbacks."""
        return False

    def _memory_range(self) -> tuple[int, int]:
        address = int(self._store.address)
        return address, address + int(self._store.capacity)

    def _address_of(self, position: int) -> int:
        """Where the memory of ``position`` begins."""
        raise NotImplementedError

    # -- counting views ---------------------------------------------------------

    def _views(self, since: int = 0) -> int:
        ledger = self._ledger
        if ledger.out:  # (entries an interrupt kept out of their dicts: back first)
            ledger.put_back()
        return ledger.live(since, self._ahead())

    def live_views(self) -> int:
        """How many views handed out by this arena are still referenced.

        Values, memoryviews, ctypes objects and arrays (numpy too) made from
        them count (at least one each while any lives); pointers stored in
        its values to its own memory do not. Objects kept only by an
        unreachable cycle count until the garbage collector has run.

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
        return self._unlinked_views()

    def _unlinked_views(self, since: int = 0) -> int:
        """``_views(since)`` less what the arena's own pointers into itself hold."""
        lo, hi = self._memory_range()
        ledger, address_of = self._ledger, self._address_of
        return self._settled(
            lambda watching: ledger.unlinked(since, self._ahead(), lo, hi, address_of, watching)
        )

    def _held_views(self) -> int:
        """Live views of the held memory; forgets it once there are none."""
        return self._settled(self._ledger.held_views)

    def _settled(self, count: Callable[[Watching], int]) -> int:
        """``count`` of the live watched arrays, once what the gone ones kept is settled.

        A watched array that only its own keep-alives held (``ctypes.cast`` puts
        it in them) dies in the count, what it kept not settled yet: settle it
        and count again.
        """
        while True:
            watching = self._settle()
            live = count(watching)
            if live <= 0 or all([weak() is not None for weak in chain(*watching.values())]):
                return live

    def _settle(self) -> Watching:
        """Before a count: the live watched arrays (``_watch``: typed arenas only)."""
        return {}

    def _refuse_if_viewed(self, action: str, since: int = 0) -> None:
        """``BufferError`` if a view of the memory of ``regions[since:]`` is alive."""
        if self._ledger.held:
            self._held_views()  # (forgets held memory that no view needs any more)
        if self._views(since) > 0:
            live = collect_and_count(lambda: self._unlinked_views(since))
            if live > 0:
                raise _viewed(action, since, live)

    def _refuse_if_held(self) -> None:
        """``BufferError`` while memory that a rewind freed is still viewed (see ``_rewind_to``)."""
        if self._ledger.held and self._held_views() > 0:
            live = collect_and_count(self._held_views)
            if live > 0:
                raise BufferError(
                    f"cannot allocate: {_views_text(live)} of memory freed by reset() or "
                    "rewind() still alive (kept by a drop callback, or by the traceback of "
                    "its error); delete them first"
                )

    # -- checkpoints ------------------------------------------------------------

    def checkpoint(self) -> Checkpoint:
        """The arena's current position, to ``rewind()`` to later. O(1).

        A checkpoint holds no reference to the arena's memory. Views made
        after it of memory allocated before it (a value got by iterating, say)
        do not stop a rewind to it. Taken by the constructor of a value being
        allocated (``TypedArena.alloc(*args)``), it counts that value's slot:
        if the constructor then raises, the slot stays used (see ``alloc``).
        Refused with ``RuntimeError`` while the arena is busy (from a drop
        callback, or from code run in the middle of another of its calls).

        >>> from linalloc import BumpArena, Layout
        >>> arena = BumpArena(64)
        >>> keep = arena.alloc_uninit_slice(Layout(8))
        >>> cp = arena.checkpoint()
        >>> scratch = arena.alloc_uninit_slice(Layout(32))
        >>> del scratch
        >>> arena.rewind(cp); arena.used
        8
        """
        self._enter_mut()
        token = self._begin("change")
        try:
            self._busy = ref(token)
            self._halt()
            position = self._position()
            ledger = self._ledger
            last = ledger.regions[-1]
            if last.start != position:
                part = self._make_part()
                ledger.open_region(position, part)  # registered before anything comes from it
                self._switch_part(part)
                del part
            elif self._part is not last.parts[-1]:
                # (an interrupt landed between the two lines above in an earlier
                # call: values must come from the region's own part)
                self._switch_part(last.parts[-1])
            del last
            self._serial += 1
            region = ledger.regions[-1]
            cp = Checkpoint(self._token, self._serial, position, region)
            region.marks = (*region.marks, self._serial)
        finally:
            self._busy = None
            del token
        return cp

    def rewind(self, checkpoint: Checkpoint) -> None:
        """Free at once everything allocated after ``checkpoint``.

        A typed arena first drops those values, newest first (the error rules
        of ``reset()``); then the next allocation lands where the first one
        after ``checkpoint`` did. What was allocated before it is untouched;
        lazy arenas keep their commits (``trim()`` gives them back). Refused
        with ``BufferError``, changing nothing, while a view of memory
        allocated after ``checkpoint`` is alive. ``checkpoint`` stays valid
        (rewind to it again); those taken after it become invalid. An invalid
        checkpoint, or one of another arena, raises ``ValueError``.

        >>> import ctypes
        >>> from linalloc import TypedArena
        >>> arena = TypedArena(ctypes.c_int64, 8)
        >>> first = arena.alloc(1)
        >>> cp = arena.checkpoint()
        >>> second = arena.alloc(2)
        >>> arena.rewind(cp)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        BufferError: cannot rewind to this checkpoint: 1 view of memory allocated after ...
        >>> del second
        >>> arena.rewind(cp); len(arena), first.value
        (1, 1)
        """
        self._enter_mut()
        index = self._find(checkpoint)
        error = self._rewind_to(
            index, checkpoint._position, "rewind to this checkpoint", checkpoint._serial
        )
        if error is not None:
            raise error

    def scope(self) -> Scope:
        """A context manager: a checkpoint on entry, a rewind to it on exit.

        Scopes nest. If a view made inside the block is still alive at exit,
        the exit raises ``BufferError`` (chained to the block's own exception,
        if any) and frees nothing; a later ``rewind`` or ``reset`` still can.
        If the block closed or reset the arena, or rewound past the scope's
        checkpoint, the exit has nothing left to free and does nothing. The
        scope's checkpoint is valid until the scope ends.

        >>> from linalloc import BumpArena, Layout
        >>> arena = BumpArena(1024)
        >>> with arena.scope():
        ...     scratch = arena.alloc_uninit_slice(Layout(512))
        ...     arena.used
        ...     del scratch
        512
        >>> arena.used
        0
        """
        self._enter()
        return Scope(self)

    def _fresh_part(self) -> Part:
        """A new part, registered (in the last region) and switched to.

        The part it replaces stays registered until the caller's next store.
        """
        part = self._make_part()
        self._ledger.add_part(part)
        self._switch_part(part)
        return part

    def _unmark(self, checkpoint: Checkpoint) -> None:
        """Make ``checkpoint`` invalid (it names no memory from now on)."""
        region = checkpoint._region()
        if region is not None:
            region.marks = tuple([m for m in region.marks if m != checkpoint._serial])

    def _region_of(self, checkpoint: Checkpoint) -> int:
        """The index of a valid checkpoint's region among the ledger's; else -1."""
        region = checkpoint._region()
        index = self._ledger.index(region)
        if region is None or index < 0 or checkpoint._serial not in region.marks:
            return -1
        return index

    def _find(self, checkpoint: object) -> int:
        """The index of a valid checkpoint's region; else ``TypeError``/``ValueError``."""
        if type(checkpoint) is not Checkpoint:
            raise TypeError(f"expected a Checkpoint, not {type(checkpoint).__name__}")
        if checkpoint._token is not self._token:
            raise ValueError("the checkpoint belongs to another arena")
        index = self._region_of(checkpoint)
        if index < 0:
            raise ValueError(
                "the checkpoint is no longer valid: the arena was reset, or rewound to an "
                "earlier checkpoint, since it was taken"
            )
        return index

    def _rewind_to(
        self, region: int, position: int, action: str, serial: int | None
    ) -> BaseException | None:
        """Free the memory of ``regions[region:]`` and go back to ``position``.

        ``serial``: the checkpoint rewound to (it and those before it stay
        valid); None for a reset (every checkpoint becomes invalid). Returns
        the first error a drop callback raised, for the caller to raise. If a
        view of the freed memory is alive after the drops (a callback kept a
        value, or the traceback of its error holds one), that memory is
        *held*: allocation raises ``BufferError`` until the view is gone, so
        nothing is ever handed out twice. No call may re-enter the arena
        meanwhile (a finalizer run by the collector, a signal handler).
        """
        ledger = self._ledger
        kept = True
        collecting = gc.isenabled()
        token = self._begin("change")
        try:
            self._busy = ref(token)
            self._halt()
            self._refuse_if_viewed(action, region)
            dropping = self._drops_after(position)
            try:
                error = self._drop_after(position)
                # From the count to the store that frees the memory, no finalizer
                # may run: one could copy a freed value out by value.
                gc.disable()
                live = self._unlinked_views(region)
                kept = live > 0
                if kept and not dropping:
                    # No drop ran: nothing has changed yet, so refuse (a view
                    # made since the first count, by code run in the middle).
                    kept = False
                    raise _viewed(action, region, live)
            finally:
                # (Not when a KeyboardInterrupt stopped the drops: the values
                # dropped keep their slots then, see _drop_after.)
                if kept and not self._drops_after(position):
                    fresh = self._fresh_part()
                    ledger.hold_after(region, fresh, serial)
                    # Held: the count goes down, also when an interrupt (from the
                    # last callback, say) is on its way.
                    self._set_position(position)
            if not kept:
                part = self._part
                if not reusable(part):
                    part = self._fresh_part()
                self._clear_freed(position)  # (no view of that memory is alive)
                ledger.free_after(region, part, serial)
                self._set_position(position)
        finally:
            if collecting:
                gc.enable()
            self._busy = None
            del token
        return error

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

    def _enter_view(self) -> None:
        """Checks for a call that makes views: also not while the arena is changing.

        (Drop callbacks may read the arena; code run by a finalizer in the
        middle of a rewind may not: what it made could be forgotten.)
        """
        self._enter()
        if self._busy is not None and self._busy_kind() == "change":
            raise_busy()
        self._reads += 1  # (an allocation whose constructor ran this must not give back)

    def _enter_mut(self) -> None:
        """Checks for a call that changes the arena: also not inside a drop callback."""
        self._enter()
        if self._busy is not None and self._busy_kind() is not None:
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
        is released when that value is collected instead. If a callback raises
        ``KeyboardInterrupt`` the drops stop and the arena stays open, as after
        a stopped ``reset()``: the values dropped keep their slots, used and
        never dropped again, until a ``reset()`` or ``close()`` past them.

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
        token = self._begin("change")
        try:
            self._busy = ref(token)
            if self._closed:
                return  # (closed by code that ran before the mark: a finalizer)
            self._halt()
            self._refuse_if_viewed("close")
            try:
                error = self._drop_for_close()
                self._closed = True
            except BaseException:
                # Interrupted once every value was dropped (drops stopped in the
                # middle leave the values dropped in their slots): close all the
                # same, or the next allocation could land on a value a callback kept.
                if not self._closed and not self._drops_after(0):
                    self._closed = True
                    self._release()
                    self._ledger.release()
                raise
            self._release()
            self._ledger.release()
        finally:
            self._busy = None
            del token
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

    def __reduce__(self) -> NoReturn:
        self.__reduce_ex__(0)

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
