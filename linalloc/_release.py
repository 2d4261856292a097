"""When a lazy arena's reserved address space is released.

A reservation (``_store.Reservation``) holds a token from :func:`release_when_freed`:
a copy of a code object, which the cycle collector does not track, with a weak
reference whose callback releases the space. Only the reservation holds the
token, so the release happens when the reservation is freed, never when the
collector only finalizes it: an owner's ``__del__`` or a drop callback can
bring a collected cycle back to life, arena and store included, any number of
times. (An object the collector tracks would be part of the collected cycle:
the collector clears weak references to such objects, running their callbacks,
before it runs the cycle's finalizers.)

While the collector tears a cycle down, code it runs then (a finalizer, a weak
reference's callback) can still read the cycle's values, so a release due
while a collection may be running waits for its end. ``_collection``, kept
first in ``gc.callbacks`` (a callback before it that removes itself would make
the collector skip it), notes each collection's start and stop. When in doubt
a release waits (late, it leaks for a while; early, it crashes):

- between a collection's start and its stop: until the stop;
- while ``_collection`` is not first in the list the collector calls (user
  code took it out, or put a callback before it): it is put back first, and
  the release waits for the end of the next collection;
- while the interpreter shuts down (``sys.is_finalizing()``; its last
  collections call no callback): for ever, the process ends first.

A child process forked while another thread was collecting does not wait for
that collection. Not seen: ``gc.callbacks`` bound to another list before this
module is imported (the collector keeps calling its own list).
"""

from __future__ import annotations

import gc
import os
import sys
from _thread import get_ident
from _weakref import ref

TYPE_CHECKING = False  # typing takes milliseconds to import: for type checkers only
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

#: Weak references to the tokens of living reservations, by id.
_RELEASES: dict[int, Any] = {}
#: ``(vm, address, size)`` of the releases waiting for the end of a collection.
_AT_END: list[tuple[Any, int, int]] = []
#: The list the collector calls (should user code bind ``gc.callbacks`` to another).
_CALLBACKS = gc.callbacks
_collecting = False
_collector = 0  # (the thread that started the collection running)

#: Tokens are copies of this code object (``replace`` is quicker than ``compile``).
_TOKEN = compile("None", "<linalloc reservation>", "eval")


def _collection(phase: str, info: object) -> None:
    """Notes when a collection runs; makes the releases due during it once it is over."""
    global _collecting, _collector
    if phase == "start":
        _collector = get_ident()
        _collecting = True
        return
    _collecting = False
    while _AT_END and not _collecting:
        vm, address, size = _AT_END.pop()  # (first: a signal then leaks it, never releases twice)
        vm.release(address, size)


def _watch() -> bool:
    """Put ``_collection`` first in the collector's callbacks; whether it was already."""
    callbacks = _CALLBACKS
    if callbacks and callbacks[0] is _collection:
        return True
    if _collection in callbacks:
        callbacks.remove(_collection)
    callbacks.insert(0, _collection)
    return False


def _after_fork_in_child() -> None:
    global _collecting
    if _collecting and _collector != get_ident():
        _collecting = False  # (the collection ran in a thread this process does not have)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def release_when_freed(vm: Any, address: int, size: int) -> Any:
    """A token whose death releases ``[address, address + size)`` with ``vm.release``.

    The caller keeps it, and nothing else may: it dies with the caller.
    """
    _watch()
    token = _TOKEN.replace()
    known = ref(token, _releasing(vm, address, size))
    # (a signal before the next line leaks the space; after it, the token dies with
    # this frame unless the caller gets it: nothing can use the space then)
    _RELEASES[id(known)] = known
    return token


def _releasing(vm: Any, address: int, size: int) -> Callable[[Any], None]:
    """The callback of a token's weak reference (it refers to no reservation).

    What it uses at shutdown comes with it: the interpreter then clears this
    module's names.
    """

    def release(
        known: Any,
        finalizing: Callable[[], bool] = sys.is_finalizing,
        releases: dict[int, Any] = _RELEASES,
        at_end: list[tuple[Any, int, int]] = _AT_END,
    ) -> None:
        releases.pop(id(known), None)
        if finalizing() or _collecting or not _watch():
            at_end.append((vm, address, size))
        else:
            vm.release(address, size)

    return release
