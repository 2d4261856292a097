"""Untyped bump allocation: ``BumpArena`` (eager) and ``BumpArenaLazy``.

The views handed out are cheap to make and counted by reference counts:

- ``alloc_uninit_slice`` returns a slice of a fresh ``'B'`` memoryview of the
  buffer: its managed buffer holds one reference to the buffer while it (or
  anything made from it) lives and has not been ``release()``d.
- ``alloc(ctype)`` returns elements of a ctypes array of ``ctype`` over the
  buffer (one array per offset modulo ``sizeof(ctype)``), counted on those
  arrays. Repeated allocations of one type are served from a *window*: the
  values for the next slots, made by one slice of the array and handed out by
  ``list.pop``; any other call first gives the slots not handed out back.
  Windows start at one value and double, up to 256, while they are used up.
  Simple types (``c_int64``...) and types whose array slices are not values
  (``c_char``) are made with ``from_buffer``, as is everything else that does
  not fit the scheme.
"""

from __future__ import annotations

import ctypes
import sys
from _weakref import ref

from ._address import address
from ._arena import _THREAD, ArenaBase, _closed_error
from ._layout import Layout, check_count, ctype_info
from ._lazy import LazyArenaMixin
from ._store import array_type as array_type_of
from ._store import exact_array_type, laid_out_as
from ._unbound import ARRAY_ITEM, ARRAY_LEN, from_buffer
from ._unbound import CLASS_DICT as _CLASS_DICT
from ._unbound import MRO as _MRO
from ._unbound import OBJECTS as _OBJECTS
from ._views import Part, freed_prefix, has_finalizer

TYPE_CHECKING = False  # typing takes milliseconds to import: for type checkers only
if TYPE_CHECKING:
    from typing import Any, TypeVar

    C = TypeVar("C")


#: Values per window at most; rows (arrays over one part, one per type and
#: offset modulo its size) per part at most. Past that, values are made with
#: ``from_buffer``: still counted, on the root (see ``_views``).
_WINDOW = 256
_MAX_ROWS = 256
#: Types the per-type caches below keep at most (emptied when full).
_MAX_TYPES = 4096
#: Stands for the window while the hot paths must not run: it is never
#: empty, so every allocation calls ``_close_window()``, which checks.
_HALT: list[Any] = [None]
#: The window's type while there is none: no argument of ``alloc()`` is it
#: (``None`` would be: ``alloc(None)`` then popped a value made ahead for a
#: window an interrupt left half open).
_NO_WINDOW: Any = object()

# id(ctypes type) -> (the type, whether a slice of an array of it is a list of
# exact instances). Keyed by identity: a metaclass may make types compare equal.
_windowed: dict[int, tuple[type[Any], bool]] = {}


# Made with ``from_buffer``, a simple value keeps its source as its whole
# ``_objects``, which setting a string value (ctypes' codes "z" and "Z": c_char_p,
# c_wchar_p, any type made with them) *replaces* by the string: the value would keep
# the arena's memory no longer. Its instance dict keeps the source too, under this
# key. id(ctype) -> (the type, whether its values keep a string): a type's code is
# fixed when ctypes makes it.
_SOURCE_ATTRIBUTE = "_linalloc_source"
_strings: dict[int, tuple[type[Any], bool]] = {}
_GETSET = type(ctypes.c_char_p.__dict__["__dict__"])


def _string_dict(ctype: Any) -> Any:
    """The getter of the instance dict of ``ctype``'s values if they keep a string, else None.

    Runs none of the type's code: the type's code is read off the buffer
    format of an array of one made by ctypes (not ``_type_``,
    which can be set after ctypes read it), and the getter is the dict's own
    descriptor, found on the class dicts as they are now (a ``__dict__`` a
    class defines is passed over), tried on a value made by ctypes' own
    ``from_buffer``. ``TypeError`` for a
    string type whose values have no instance dict.
    """
    found = _strings.get(id(ctype))
    if found is None or found[0] is not ctype:
        string = False
        if issubclass(ctype, ctypes._SimpleCData):
            # (an array of one: ctypes' own buffer; a value's ``__buffer__``, from
            # Python 3.12 on, could answer any format)
            string = laid_out_as(array_type_of(ctype, 1))[0][-1:] in ("z", "Z")
        if len(_strings) >= _MAX_TYPES:  # (bounded, as ``_windowed`` is)
            _strings.clear()
        found = _strings[id(ctype)] = (ctype, string)
    if not found[1]:
        return None
    probe: Any = from_buffer(ctype, bytearray(ctypes.sizeof(ctype)), 0)
    mro = _MRO(ctype)
    for klass in mro:
        getter = _CLASS_DICT(klass).get("__dict__")
        if type(getter) is _GETSET and getter.__name__ == "__dict__" and getter.__objclass__ in mro:
            if type(getter.__get__(probe)) is dict:
                return getter.__get__
    raise TypeError(
        f"values of {ctype.__name__} keep a string for ctypes and have no instance dict"
        " (__slots__): the arena could not keep its memory for them"
    )


def _can_window(ctype: Any) -> bool:
    found = _windowed.get(id(ctype))
    if found is None or found[0] is not ctype:
        items: Any = ARRAY_ITEM(array_type_of(ctype, 1)(), slice(0, 1))
        # (not for a type with a finalizer: it would keep a value made ahead
        # for a window and never handed out, see _halt)
        found = (
            ctype,
            isinstance(items, list) and type(items[0]) is ctype and not has_finalizer(ctype),
        )
        if len(_windowed) >= _MAX_TYPES:
            _windowed.clear()
        _windowed[id(ctype)] = found
    return found[1]


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
        self._store = self._store_type(capacity)
        self._base: int = self._store.address
        self._capacity = capacity
        self._used = 0
        # bytes usable without asking the store (a lazy store may commit past capacity)
        self._limit: int = min(self._store.committed, capacity)
        # Offsets aligned to at most this are aligned addresses (the buffer's alignment).
        self._base_align = self._base & -self._base if self._base else 1 << 62
        # The window: values for the slots just before ``_used``, newest last.
        self._pending: list[Any] = []
        self._pop: Any = self._pending.pop
        self._wtype: Any = _NO_WINDOW
        self._wsize = 0
        self._wn = 0
        self._init_ledger()

    def _make_part(self) -> Part:
        return Part(self._store.root)

    # -- the algorithm -----------------------------------------------------

    def _bump(self, size: int, align: int) -> int | None:
        """Offset of a new block of ``size`` bytes aligned to ``align``, or None."""
        used = self._used
        if align <= self._base_align and not align & (align - 1):
            # (an offset aligned to a power of two up to the buffer's alignment
            # is an aligned address; ctypes also allows others: ``_pack_ = 3``)
            start = used + (-used % align)
        else:
            start = used + (-(self._base + used) % align)
        return start if self._advance_to(start + size) else None

    def _advance_to(self, end: int) -> bool:
        """Move ``used`` to ``end``, committing (lazy) up to there; False if it cannot."""
        if end > self._limit:
            if end > self._capacity or not self._store.ensure(end):
                return False
            self._grown()
        self._used = end
        return True

    def _grown(self) -> None:
        """After a commit: a lazy arena moves to a root over all of it; raise the limit.

        The limit last: until it is raised, allocations past the old one come
        back here (and an interrupted call is finished by the next).
        """
        store = self._store
        if store.extent > ARRAY_LEN(self._part.root):
            part = self._make_part()
            self._ledger.add_part(part)  # the older parts stay counted while viewed
            self._part = part
            self._ledger.prune_parts()
        self._limit = min(store.committed, self._capacity)

    def _halt(self) -> None:
        """Stop the hot paths, then give back the window's slots not handed out.

        Called once the arena is marked busy (the slow paths begin with
        ``_begin``, then store ``_busy`` and call this first thing in their
        ``try``): from here on ``_used`` is exact and nothing can allocate
        until the call ends. A finalizer run by the collector, or a signal
        handler, could otherwise allocate between two of its lines. Raises
        ``ValueError`` on a closed arena.
        """
        if self._closed:
            raise _closed_error()
        pending = self._pending
        if pending is _HALT:  # (an interrupt in a halt left the window's values in _pop's list)
            pending = self._pop.__self__
        self._wtype = _NO_WINDOW  # first: no new call pops from the window
        self._pending = _HALT
        if pending:  # (never _HALT: an earlier halt's list is taken back above)
            # (emptied: an ``alloc()`` that read ``_pop`` before this, and was
            # re-entered before calling it, takes the slow path). A value that
            # outlives it (found with ``gc.get_objects()``), or any whose death
            # could run code (a ``__del__`` its type got since), keeps its slot
            # and those below. (A pointer type's window is zeroed as it opens.)
            given = freed_prefix(pending)  # (newest first: the highest slot first)
            self._used -= given * self._wsize
            self._wn = 0  # the window was too big: start small again

    def _close_window(self) -> None:
        """Give back the window's slots not handed out: ``_used`` is exact again.

        Every allocation reaches this before touching memory unless a window of
        its type is open, and a closed arena has none: it raises here. Refused
        while the arena is busy (a call re-entered from the middle of another).
        """
        token = self._begin("change")
        try:
            self._busy = ref(token)
            self._halt()
            pending: list[Any] = []  # (hot paths open again; also after an interrupted call)
            self._pop = pending.pop
            self._pending = pending
        finally:
            self._busy = None
            del token

    def _exact_used(self) -> int:
        """``used`` without the window's slots not handed out yet."""
        return self._used - self._ahead() * self._wsize

    def _ahead(self) -> int:
        # Values made for the window but not handed out refer to a tracked array.
        pending = self._pending
        return 0 if pending is _HALT else len(pending)

    def _position(self) -> int:
        return self._used

    def _address_of(self, position: int) -> int:
        return self._base + position

    def _set_position(self, position: int) -> None:
        self._used = position

    def alloc_uninit_slice(self, layout: Layout) -> memoryview | None:
        """A writable 1-D memoryview (format ``'B'``) of ``layout.size`` bytes.

        Its first byte's address is a multiple of ``layout.align``. Returns
        ``None`` when the arena has no room (lazy: or the commit failed); a
        failed request changes nothing. The bytes are not cleared. A zero-size
        request returns an empty view and does not advance ``used``; its
        address is aligned when the aligned position lies within the arena
        (lazy: within its committed memory).

        >>> from linalloc import BumpArena, Layout, address
        >>> arena = BumpArena(64)
        >>> view = arena.alloc_uninit_slice(Layout(40, 16))
        >>> view[:3] = b"abc"
        >>> len(view), address(view) % 16, arena.used
        (40, 0, 40)
        >>> print(arena.alloc_uninit_slice(Layout(40)))  # full: None, nothing changes
        None
        >>> arena.used
        40
        """
        tdict = self._tdict
        if tdict is not None and tdict is not _THREAD.__dict__:
            self._wrong_thread()
        if type(layout) is not Layout:
            raise TypeError(f"layout must be a Layout, not {type(layout).__name__}")
        if self._pending:  # a window is open, or the arena is closed
            self._close_window()
        used = self._used
        align = layout._align
        if align <= self._base_align:  # (bitwise and on a negative number is slow)
            start = used + (-used % align)
        else:
            start = used + (-(self._base + used) % align)
        end = start + layout._size
        if end > self._limit or end == start:
            return self._slice_slow(start, end)
        # The root first: from the bump until the view is made, it is counted
        # as one (a reset re-entered there, by a signal handler, is refused).
        root = self._part.root
        self._used = end
        return memoryview(root).cast("B")[start:end]

    def _slice_slow(self, start: int, end: int) -> memoryview | None:
        """``alloc_uninit_slice`` of zero bytes, or past the committed memory."""
        if end == start:
            return memoryview(self._part.root).cast("B")[start:start]
        token = self._begin("change")
        try:
            self._busy = ref(token)
            self._halt()
            if start < self._used or not self._advance_to(end):
                return None  # (start < used: a call came in between and took that memory)
            root = self._part.root  # (counted as a view until the view is made)
        finally:
            self._busy = None
            del token
        return memoryview(root).cast("B")[start:end]

    def alloc(self, ctype: type[C]) -> C | None:
        """An instance of ``ctype`` living in the arena (bytes not cleared), or None.

        Aligned to ``ctypes.alignment(ctype)``. Types holding a ``py_object``
        are refused with ``TypeError``. Types holding a pointer (``POINTER(T)``,
        ``c_char_p``...) are cleared to zero (NULL): a stale address left by
        earlier use would crash the reader. ``alloc_array`` does the same.
        A ``c_char_p`` or ``c_wchar_p`` value keeps the arena's memory in its
        instance dict too (``_linalloc_source``; do not delete it, nor clear
        the dict): ctypes itself forgets the memory once the value is set.

        >>> import ctypes
        >>> from linalloc import BumpArena
        >>> arena = BumpArena(16)
        >>> flag = arena.alloc(ctypes.c_uint8)
        >>> number = arena.alloc(ctypes.c_uint64)
        >>> number.value = 42
        >>> ctypes.addressof(number) - ctypes.addressof(flag), arena.used  # 7 bytes of padding
        (8, 16)
        >>> print(arena.alloc(ctypes.c_uint8))
        None
        """
        tdict = self._tdict
        if tdict is not None and tdict is not _THREAD.__dict__:
            self._wrong_thread()
        if ctype is self._wtype:
            pop = self._pop
            try:
                return pop()  # type: ignore[no-any-return]
            except IndexError:  # the window is used up
                pass
        return self._alloc_slow(ctype)  # type: ignore[no-any-return]

    def _alloc_slow(self, ctype: Any) -> Any:
        """``alloc()`` outside a window: open one if the type allows, else ``from_buffer``."""
        size, align, zeroed = ctype_info(ctype)
        strings = _string_dict(ctype)  # (before anything changes: it may raise)
        wtype = self._wtype
        token = self._begin("change")
        try:
            self._busy = ref(token)
            self._halt()
            start = self._bump(size, align)
            if start is None:
                return None
            row = self._row(ctype, size, start % size) if size and _can_window(ctype) else None
            if row is None:
                if zeroed:
                    ctypes.memset(self._base + start, 0, size)
                # (ctypes' own from_buffer: not one the type defines, see _store)
                value = from_buffer(ctype, self._part.root, start)
                if strings is None:
                    return value
                strings(value)[_SOURCE_ATTRIBUTE] = _OBJECTS(value)
                return value
            # A window of n values from ``start``, in committed memory.
            n = min(max(1, 2 * self._wn) if ctype is wtype else 1, _WINDOW)
            n = min(n, (self._limit - start) // size)
            if zeroed:
                ctypes.memset(self._base + start, 0, n * size)
            k = start // size
            batch = ARRAY_ITEM(row, slice(k, k + n))
            del row
            batch.reverse()
            value = batch.pop()  # ours before the rest is published (and open to others)
            self._wsize = size
            self._wn = n
            self._used = start + n * size  # over until the window is in place: safe
            self._pending = batch
            self._pop = batch.pop
            self._wtype = ctype
            return value
        finally:
            self._busy = None
            del token

    def _row(self, ctype: Any, size: int, r: int) -> Any:
        """The array of the part whose element k lies at offset ``r + k * size``, or None.

        None when the part has as many rows as it keeps: the caller then makes
        the value with ``from_buffer``, counted on the root all the same.
        """
        arrays = self._part.arrays
        key = (id(ctype), r)  # (by identity; the row keeps the type alive)
        row = arrays.get(key)
        if row is not None or len(arrays) >= _MAX_ROWS:
            return row
        root = self._part.root
        n = (ARRAY_LEN(root) - r) // size
        if n <= 0:
            return None
        # (this module's own type: lengths follow the committed size, and
        # ctypes' cache would keep every one for the life of the process)
        arrays[key] = from_buffer(array_type_of(ctype, n), root, r)  # counted from here on
        del root
        return arrays[key]

    def alloc_copy(self, data: Any, align: int = 1) -> memoryview | None:
        """A writable ``'B'`` memoryview holding a copy of the bytes of ``data``.

        ``data`` is any buffer (bytes, bytearray, memoryview, array.array, a
        numpy array; a non-contiguous one is copied in C order, as
        ``memoryview.tobytes()`` gives); it is only read, and may be a view of
        this arena. The copy's first byte is aligned to ``align`` (the errors
        of ``Layout`` for a bad one). None when there is no room. ``TypeError``
        for anything that is not a buffer, ``str`` included: encode it.

        >>> from linalloc import BumpArena, address
        >>> arena = BumpArena(64)
        >>> name = arena.alloc_copy(b"arena\\0")  # a C string, for C code
        >>> bytes(name), address(name) % 1
        (b'arena\\x00', 0)
        >>> arena.alloc_copy("text")
        Traceback (most recent call last):
        ...
        TypeError: alloc_copy() needs a buffer (bytes, memoryview...), not str: encode it first
        """
        try:
            source = memoryview(data)
        except TypeError:
            hint = ": encode it first" if isinstance(data, str) else ""
            what = type(data).__name__
            raise TypeError(
                f"alloc_copy() needs a buffer (bytes, memoryview...), not {what}{hint}"
            ) from None
        with source:
            view = self.alloc_uninit_slice(Layout(source.nbytes, align))
            if view is not None and source.nbytes:
                if source.c_contiguous:
                    view[:] = source.cast("B")
                else:
                    view[:] = source.tobytes()
        return view

    def grow(self, view: memoryview, new_size: int) -> memoryview | None:
        """Grow the most recent allocation in place: a ``'B'`` view of ``new_size`` bytes.

        ``view`` must be the arena's most recent allocation (a memoryview from
        ``alloc_uninit_slice`` or ``alloc_copy`` that ends at ``used``) and
        there must be room: then the new view starts at the same address, the
        old bytes are kept and ``used`` advances. Otherwise None, and nothing
        changes. ``new_size < len(view)`` raises ``ValueError`` (shrink by
        rewinding to a checkpoint); a non-memoryview ``TypeError``. The old
        view stays valid. What ``grow`` adds after a checkpoint is memory
        allocated after it. On a lazy arena this is a buffer that grows to
        the reservation's size and never moves.

        >>> from linalloc import BumpArena, address
        >>> arena = BumpArena(64)
        >>> buf = arena.alloc_copy(b"abc")
        >>> bigger = arena.grow(buf, 8)
        >>> address(bigger) == address(buf), bytes(bigger[:3]), arena.used
        (True, b'abc', 8)
        >>> print(arena.grow(buf, 16))  # buf no longer ends at used
        None
        """
        self._enter()
        if type(view) is not memoryview:  # (not isinstance: a __class__ can lie)
            raise TypeError(f"grow() takes a memoryview, not {type(view).__name__}")
        new_size = check_count("new_size", new_size)
        nbytes = view.nbytes
        if new_size < nbytes:
            raise ValueError(
                f"grow() cannot shrink a view ({nbytes} to {new_size} bytes); "
                "rewind to a checkpoint instead"
            )
        try:
            start = address(view) - self._base
        except TypeError:
            return None  # read-only or strided: not a view this arena handed out
        end = start + new_size
        token = self._begin("change")
        try:
            self._busy = ref(token)
            self._halt()
            if start < 0 or start + nbytes != self._used or not self._advance_to(end):
                return None  # not this arena's most recent allocation, or no room
            root = self._part.root  # (counted as a view until the view is made)
        finally:
            self._busy = None
            del token
        return memoryview(root).cast("B")[start:end]

    def alloc_array(self, ctype: type[C], n: int) -> Any | None:
        """An instance of ``ctype * n`` living in the arena, or None.

        >>> import ctypes
        >>> from linalloc import BumpArena
        >>> arena = BumpArena(64)
        >>> row = arena.alloc_array(ctypes.c_int32, 4)
        >>> row[:] = [1, 2, 3, 4]
        >>> sum(row), ctypes.sizeof(row), arena.used
        (10, 16, 16)
        >>> print(arena.alloc_array(ctypes.c_int32, 100))
        None
        """
        self._enter()
        n = check_count("n", n)
        size, align, zeroed = ctype_info(ctype)
        if self._closed:  # (the checks ran the caller's code: ``__index__``)
            raise _closed_error()
        if size * n > self._capacity or n > sys.maxsize:
            return None  # cannot fit; also keeps ctypes from building a huge type
        array_type = exact_array_type(ctype, n)
        token = self._begin("change")
        try:
            self._busy = ref(token)
            self._halt()
            start = self._bump(size * n, align)
            if start is None:
                return None
            if zeroed:
                ctypes.memset(self._base + start, 0, size * n)
            root = self._part.root  # (counted as a view until the array is made)
        finally:
            self._busy = None
            del token
        return from_buffer(array_type, root, start)

    # -- state -------------------------------------------------------------

    @property
    def used(self) -> int:
        """Bytes from the start to the end of the last allocation, padding included.

        >>> from linalloc import BumpArena, Layout
        >>> arena = BumpArena(64)
        >>> a = arena.alloc_uninit_slice(Layout(3))
        >>> b = arena.alloc_uninit_slice(Layout(8, 8))  # starts at 8: 5 bytes of padding
        >>> arena.used
        16
        """
        self._enter()
        return self._exact_used()

    @property
    def capacity(self) -> int:
        """The fixed capacity in bytes (readable after close too).

        >>> from linalloc import BumpArena
        >>> arena = BumpArena(4096)
        >>> arena.close()
        >>> arena.capacity
        4096
        """
        return self._capacity

    def reset(self) -> None:
        """Make all capacity free again. Refused with ``BufferError`` while a view lives.

        Runs no destructors; committed memory (lazy) stays committed.

        >>> import ctypes
        >>> from linalloc import BumpArena, address
        >>> arena = BumpArena(64)
        >>> first = arena.alloc(ctypes.c_double)
        >>> where = address(first)
        >>> arena.reset()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        BufferError: cannot reset: 1 view of this arena still alive ...
        >>> del first
        >>> arena.reset()
        >>> address(arena.alloc(ctypes.c_double)) == where  # the same memory again
        True
        """
        self._enter_mut()
        self._rewind_to(0, 0, "reset", None)

    def _used_bytes(self) -> int:
        return self._used  # (called halted: the window is given back)

    def _after_trim(self) -> None:
        self._limit = min(self._store.committed, self._capacity)

    def _release(self) -> None:
        if self._pending is not _HALT:
            self._pending.clear()
        self._pending = _HALT  # every allocation calls _close_window(), which raises
        self._wtype = _NO_WINDOW
        self._part = Part(None)
        self._store = None

    def _repr_fields(self) -> list[str]:
        return [f"capacity={self._capacity}", f"used={self._exact_used()}"]


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
