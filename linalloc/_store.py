"""Backing stores: where an arena's bytes live.

A store owns one contiguous block and answers four questions for the
allocation algorithm, which is written once in ``_bump``/``_typed``:

- ``root``: a ctypes ``c_char`` array over the block's usable bytes. Every view
  an arena hands out is derived from a root (``from_buffer``/``memoryview``),
  so the block lives exactly as long as the last view of it. Each ``root``
  is a new array that keeps the store alive (the buffer itself is never
  handed out): over the whole buffer (eager), or over the bytes committed so
  far (lazy; the arena asks again when that grows).
- ``address``, ``capacity``: where the block starts and how many bytes it has.
- ``ensure(end) -> bool``: make bytes ``[0, end)`` usable; False if not.
- ``trim(keep) -> int``: give back what lies past ``keep`` (lazy only).

``EagerStore`` is a zero-filled ctypes string buffer: every byte is usable at
once. ``LazyStore`` reserves address space and commits it in steps of
``commit_step`` bytes as ``ensure`` asks for more. ``extent``: the bytes a root
spans (all of them for the eager store).
"""

from __future__ import annotations

import ctypes
import mmap
import sys

from . import _vm
from ._release import release_when_freed

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
    #: True once a typed arena with a drop callback was collected (its
    #: ``Dropper`` ran): the memory is not handed out again
    retired = False

    def __init__(self, capacity: int) -> None:
        if capacity > sys.maxsize:
            raise OverflowError(f"capacity {capacity} exceeds sys.maxsize")
        try:
            self._buffer: Any = ctypes.create_string_buffer(capacity)
        except (MemoryError, OverflowError):
            raise MemoryError(f"cannot allocate an arena of {capacity} bytes") from None
        self.address = ctypes.addressof(self._buffer)
        self.capacity = capacity
        self.committed = capacity
        self.extent = capacity

    @property
    def root(self) -> Any:
        """A new ``c_char`` array over the whole buffer, keeping the store alive.

        The buffer itself is never handed out: every object over it is made
        from a root, and every root refers to this store (see ``_views``).
        """
        return root_over(self.address, self.capacity, self)

    def ensure(self, end: int) -> bool:
        return end <= self.capacity and not self.retired

    def trim(self, keep: int) -> int:
        return 0


# (id(ctype), n) -> array type, for array_type(); bounded. By identity: a
# metaclass may make distinct types compare equal.
_array_types: dict[tuple[int, int], Any] = {}


def array_type(ctype: Any, n: int) -> Any:
    """A ``ctype * n`` array type, from a bounded cache of this module's own.

    The lazy arenas make arrays whose lengths follow the committed size; ctypes
    would keep every ``ctype * n`` it ever made for the life of the process.
    (ctypes' own cache can also hand back a type made while ``ctype`` was
    still incomplete, of the wrong size.)
    """
    key = (id(ctype), n)
    found = _array_types.get(key)
    if found is None or found._type_ is not ctype:
        meta: Any = type(ctypes.Array)
        found = meta(
            f"{ctype.__name__}_Array_{n}", (ctypes.Array,), {"_type_": ctype, "_length_": n}
        )
        if len(_array_types) >= 1024:
            _array_types.clear()
        _array_types[key] = found
    return found


# (id(ctype), n) -> ``ctype * n`` as checked by exact_array_type(); bounded.
_exact_types: dict[tuple[int, int], Any] = {}


_FROM_ADDRESS: Any = type(ctypes.Array).__dict__["from_address"]
_NOWHERE = ctypes.addressof(ctypes.c_char())  # (a value over it is made, never read)


# id(array type) -> (the type, what laid_out_as() found); bounded. (What ctypes laid
# out for a type never changes.)
_layouts: dict[int, tuple[Any, tuple[str, tuple[int, ...] | None, int]]] = {}


def laid_out_as(array_type: Any) -> tuple[str, tuple[int, ...] | None, int]:
    """(format, shape, itemsize) of an array type as ctypes laid it out.

    ``_type_`` and ``_length_`` can be set on a class after ctypes made it;
    the buffer a value exports is what ctypes reads and writes.
    """
    found = _layouts.get(id(array_type))
    if found is not None and found[0] is array_type:
        return found[1]
    view = memoryview(_FROM_ADDRESS(array_type, _NOWHERE))
    layout = (view.format, view.shape, view.itemsize)
    if len(_layouts) >= 1024:
        _layouts.clear()
    _layouts[id(array_type)] = (array_type, layout)
    return layout


def exact_array_type(ctype: Any, n: int) -> Any:
    """``ctype * n``, unless what that gives is not exactly an array of n ``ctype``.

    A metaclass may answer ``ctype * n`` with anything (an array type with a
    ``from_buffer`` of its own, say), and ctypes' cache may hand back a type
    made while ``ctype`` was incomplete: then this module's own
    :func:`array_type`.
    """
    key = (id(ctype), n)
    found: Any = _exact_types.get(key)
    if found is not None and found._type_ is ctype:
        return found
    found = ctype * n
    own = array_type(ctype, n)
    # Made by ctypes' array metaclass straight from Array, and defining nothing
    # ctypes does not (a ``from_buffer`` or ``__getitem__`` of its own could
    # hand out memory twice).
    attributes = own.__dict__
    defined = found.__dict__.items() if type(found) is type(own) else ()
    exact = (
        type(found) is type(own)
        and found.__bases__ == (ctypes.Array,)
        and found.__dict__.get("_type_") is ctype
        and all(k in attributes and type(v) is type(attributes[k]) for k, v in defined)
        and found.__dict__.get("_length_") == n
        and laid_out_as(found) == laid_out_as(own)
    )
    if not (exact and ctypes.sizeof(found) == ctypes.sizeof(ctype) * n):
        found = own
    if len(_exact_types) >= 1024:
        _exact_types.clear()
    _exact_types[key] = found
    return found


def root_over(address: int, size: int, owner: object) -> Any:
    """A ``c_char`` array over ``[address, address + size)`` that keeps ``owner`` alive."""
    root: Any = array_type(ctypes.c_char, size).from_address(address)
    root._linalloc_owner = owner
    return root


class Reservation:
    """Reserved address space, released (``munmap``/``VirtualFree``) when this object is freed.

    ``extent`` is how many bytes from the start have ever been committed: they
    stay accessible until the release (decommitting never removes access).

    Whatever can reach the memory holds this object: each root holds its
    store, which holds this; a typed arena's dropper holds the store while its
    drop callbacks run. ``token`` dies with it and releases the space (see
    ``_release``: never while the collector only finalizes this object, and
    at the end of a collection that frees it).
    """

    __slots__ = ("address", "extent", "token", "__weakref__")

    def __init__(self, vm: Any, size: int) -> None:
        self.extent = 0
        self.address: int = vm.reserve(size)
        self.token = release_when_freed(vm, self.address, size)


class LazyStore:
    """``capacity`` bytes of reserved address space, committed on demand.

    ``root`` makes a new ``c_char`` array over the bytes committed so far (at
    most ``capacity``): no ctypes object an arena hands out, or that is
    reachable from one, spans memory that is not accessible. Each root keeps
    this store, and so the reservation, alive: the reservation is released
    when the store and every root and view have been collected, never earlier.
    Capacity 0 reserves nothing and makes no system call.
    """

    lazy = True
    retired = False  # (as EagerStore's)

    def __init__(self, capacity: int) -> None:
        if capacity > sys.maxsize:
            raise OverflowError(f"capacity {capacity} exceeds sys.maxsize")
        self.capacity = capacity
        self.committed = 0
        self.last_error: int | None = None
        self.reservation: Reservation | None = None
        if capacity == 0:
            self.vm: Any = None
            # No reservation, no system call; the step is still the documented one.
            self.page = mmap.PAGESIZE
            self.step = _round_up(COMMIT_STEP, self.page)
            self.reserved = 0
            self._empty = ctypes.create_string_buffer(0)
            self.address = ctypes.addressof(self._empty)
            return
        self.vm = vm = _vm.get()
        self.page = vm.page_size
        self.step = _round_up(COMMIT_STEP, self.page)
        self.reserved = _round_up(capacity, self.page)
        if self.reserved > sys.maxsize:
            raise OverflowError(f"capacity {capacity} exceeds the address space")
        self.reservation = Reservation(vm, self.reserved)
        self.address = self.reservation.address

    @property
    def extent(self) -> int:
        """Bytes a root spans now: those ever committed, at most ``capacity``."""
        reservation = self.reservation
        return 0 if reservation is None else min(reservation.extent, self.capacity)

    @property
    def root(self) -> Any:
        """A new ``c_char`` array over the ``extent`` bytes, keeping the store alive."""
        return root_over(self.address, self.extent, self)

    def ensure(self, end: int) -> bool:
        if self.retired:
            return False
        if end <= self.committed:
            return True
        if end > self.capacity:
            return False
        reservation: Any = self.reservation
        target = min(_round_up(end, self.step), self.reserved)
        error = self.vm.commit(self.address + self.committed, target - self.committed)
        if error is not None:
            self.last_error = error
            return False
        if self.vm.zero_on_recommit and reservation.extent > self.committed:
            # Pages decommitted earlier kept undefined contents: zero them.
            ctypes.memset(
                self.address + self.committed, 0, min(reservation.extent, target) - self.committed
            )
        reservation.extent = max(reservation.extent, target)  # (first: roots may span it)
        self.committed = target
        return True

    def trim(self, keep: int) -> int:
        if self.retired:
            return 0  # (a value a drop callback kept may lie anywhere)
        keep = _round_up(keep, self.page)
        if keep >= self.committed:
            return 0
        error = self.vm.decommit(self.address + keep, self.committed - keep)
        if error is not None:
            self.last_error = error
            raise self.vm.os_error(
                error,
                f"cannot give {self.committed - keep} bytes of arena pages back to the OS "
                "(the arena is unchanged and its pages stay committed)",
            )
        released = self.committed - keep
        self.committed = keep
        return released
