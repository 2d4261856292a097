"""Watched arrays: the arrays a typed arena made over its slots for many values at once.

``alloc_many()``, ``alloc_extend()`` and ``as_array()`` return an array made
with ``from_buffer`` over a slot array. ctypes keeps the target of a pointer
stored through such an array in the array's own ``_objects``, not in the slot
array's: once the array died, the values (which the arena still hands out by
iterating) would point at freed memory. For types that hold pointers the
arena watches the array:

- :func:`watch` puts it in a *registry* in the slot array's ``_objects``,
  under :data:`WATCH_KEY`: ``{id(weak): (weak, the array's _objects, its first
  slot)}``. The registry keeps the array's dict (the values still point at
  its targets) but only a weak reference to the array, with no callback:
  nothing runs when the array dies, whatever the arena is doing then.
- before every count, :func:`settle` moves the entries of the arrays that are
  gone to the slot arrays (:func:`take_over_keepalives`), and lists the live
  ones, whose dicts the count judges as its own arrays' (``_views``). Until
  then what a gone array kept counts as a view: over, so safe.

(ctypes' own keys are hex numbers joined by ``:``, and ``_views._SOURCE_KEY``.)
"""

from __future__ import annotations

from _weakref import ref

from ._unbound import OBJECTS as _OBJECTS
from ._views import _SOURCE_KEY, WATCH_KEY

TYPE_CHECKING = False  # typing takes milliseconds to import: for type checkers only
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ._views import Part


def watch(array: Any, first: int) -> Any:
    """Watch ``array`` (``from_buffer`` over a slot array, from slot ``first`` on); return it."""
    objects = _OBJECTS(array)
    if type(objects) is not dict:  # (no element: ctypes keeps the source as _objects itself)
        return array  # (nothing can be stored through it)
    kept = _OBJECTS(objects[_SOURCE_KEY].obj)
    old = kept.get(WATCH_KEY)
    registry = old
    if type(registry) is not dict:  # none yet, or several paired by lazy growth: one of all
        registry = {}
        for older in _registries_in(old):
            registry.update(older)
        kept[WATCH_KEY] = registry  # (one store: what the pair held is all in it)
    weak = ref(array)
    registry[id(weak)] = (weak, objects, first)
    return array


def registries(array: Any) -> list[dict[int, Any]]:
    """The registries in ``array._objects``.

    (Lazy growth carries two parts' entries into one, paired in a tuple.)
    """
    objects = _OBJECTS(array)
    return _registries_in(objects.get(WATCH_KEY) if type(objects) is dict else None)


def _registries_in(item: Any) -> list[dict[int, Any]]:
    """The registry dicts in ``item``: one, or tuples of them (nested), or None."""
    todo = [item]
    found = []
    while todo:
        item = todo.pop()
        if type(item) is dict:
            found.append(item)
        elif type(item) is tuple:
            todo.extend(item)
    return found


def settle(
    groups: list[tuple[list[Part], Callable[[int], Any]]],
) -> dict[int, list[Any]]:
    """Move what the gone arrays kept; the live ones' weak references, by ``id`` of part.

    ``groups``: parts, each with ``target_of`` (see :func:`take_over_keepalives`)
    for the arrays over them. An entry leaves its registry once copied: an
    interrupt in the middle leaves the rest for the next count. A part with
    no watched array is not in the result.
    """
    live: dict[int, list[Any]] = {}
    for parts, target_of in groups:
        for part in parts:
            for array in part.arrays.values():
                for registry in registries(array):
                    for key, (weak, objects, first) in list(registry.items()):
                        if weak() is None:
                            take_over_keepalives(objects, first, target_of)
                            del registry[key]
                        else:
                            live.setdefault(id(part), []).append(weak)
    return live


def take_over_keepalives(
    objects: dict[str, Any], first: int, target_of: Callable[[int], Any]
) -> None:
    """Copy the keep-alives of a dead array over slots from ``first`` on to the slot arrays.

    ``objects``: the array's ``_objects``. ctypes names an entry by the path
    of the field stored, the last part the index of the element in the
    array: the same entry, stored through the slot array, is named with the
    slot's index there. It goes into ``target_of(slot)``: the slot array the
    slot's values come from (the newest of its region's, so that a rewind
    frees it with its region), or None for the one the array was made over
    (memory held). An entry the slot array already has is kept beside the
    new one (one of them was stored last; both stay alive). Copying twice
    changes nothing.
    """
    source = objects[_SOURCE_KEY].obj  # (the slot array the array was made over)
    for key, entry in list(objects.items()):
        if key == _SOURCE_KEY or entry is None:
            continue
        # (ctypes names a field's entry by its path, in hex numbers; ``ctypes.cast``
        # adds ``id(source)``, an int; a caller may add anything)
        head, colon, last = key.rpartition(":") if type(key) is str else ("", "", "")
        try:
            slot = int(last, 16) + first
        except ValueError:  # (no slot: kept with the memory the array was made over)
            _OBJECTS(source)[f"linalloc:{id(entry)}"] = entry
            continue
        target = target_of(slot)
        kept = _OBJECTS(source if target is None else target)
        name = f"{head}{colon}{slot:x}"
        old = kept.get(name)
        kept[name] = entry if old is None or old is entry else (old, entry)
