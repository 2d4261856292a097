"""Rules of a typed arena's failed allocations, and of the types its values come as.

- a failed allocation gives back what it took while the arena is busy: code
  run in the middle (a finalizer of the failed value, a profile function as a
  signal handler could run) can neither allocate from the arena nor view it,
  and the call that the failure happened in stays busy once it is undone;
- a constructor that ctypes refuses while another call of the arena runs the
  caller's code (``alloc_raw`` storing a value converts it again) raises the
  constructor's error and loses no slot: the next value lands in it, and no
  value never handed out is dropped;
- a subclass of a simple type is handed out as itself, its own methods
  included; the values of a simple type are of one type, whichever arena or
  commit (lazy) they come from.
"""

from __future__ import annotations

import ctypes
from typing import Any, Callable

import pytest
from test_typed_reentry import BUSY, try_to_allocate
from test_typed_rules import _is_call_from, _named, _profiled

from linalloc import TypedArenaLazy


def _outcome(call: Callable[[], object]) -> str:
    """How ``call()`` ended: "busy" (refused: the arena is busy), "ran", or its error."""
    try:
        call()
    except RuntimeError as exc:
        return "busy" if str(exc) == BUSY else str(exc)
    except Exception as exc:  # noqa: BLE001 - recorded, asserted on by the caller
        return f"{type(exc).__name__}: {exc}"
    return "ran"


def _probe(arena: Any, log: list[tuple[str, str]], when: str) -> None:
    """Try to allocate from ``arena`` and to view it; log how each ended."""
    log.append((f"{when} alloc", _outcome(lambda: arena.alloc())))
    log.append((f"{when} as_array", _outcome(arena.as_array)))


# -- code run while a failed allocation is undone -----------------------------------


def test_a_finalizer_of_a_failed_value_cannot_use_the_arena(typed_cls: type) -> None:
    log: list[tuple[str, str]] = []
    arena: Any = None
    armed = [True]

    class Mortal(ctypes.Structure):
        """A finalizer: it runs as the arena lets go of a value whose constructor failed."""

        _fields_ = [("v", ctypes.c_int64)]

        def __del__(self) -> None:
            if armed:  # (the first value to die only: the one whose constructor failed)
                armed.clear()
                _probe(arena, log, "finalizer")

    arena = typed_cls(Mortal, 4)
    with pytest.raises(TypeError, match="too many initializers"):
        arena.alloc(1, 2)  # refused by ctypes itself
    assert log == [("finalizer alloc", "busy"), ("finalizer as_array", "busy")]
    # (a finalizer could have brought the value back: its slot stays used, cleared)
    assert len(arena) == 1
    value = arena.alloc(3)
    assert value.v == 3 and len(arena) == 2
    del value
    arena.close()


class _Lying:
    """Converts the first time (``alloc_raw``'s check); raises at the store."""

    def __index__(self) -> int:
        if getattr(self, "checked", False):
            raise TypeError("changed my mind")
        self.checked = True
        return 5


def test_code_run_while_a_failed_alloc_raw_gives_back_its_commit_cannot_use_the_arena() -> None:
    arena: Any = TypedArenaLazy(ctypes.c_int64, 1 << 16)
    step = arena.commit_step // 8
    values = [arena.alloc(n) for n in range(step)]  # the next value needs a new commit
    committed = arena.committed
    log: list[tuple[str, str]] = []

    def probe(frame: Any, event: str, arg: object) -> None:
        if _is_call_from(frame, event, "_after_trim", "_uncommit"):
            _probe(arena, log, "giving back")
        elif event == "return" and _named(frame.f_code.co_name, "_uncommit"):
            _probe(arena, log, "given back")

    with pytest.raises(TypeError, match="changed my mind"):
        _profiled(probe, lambda: arena.alloc_raw(_Lying()))
    assert log == [
        ("giving back alloc", "busy"),
        ("giving back as_array", "busy"),
        ("given back alloc", "busy"),  # (alloc_raw has not returned yet)
        ("given back as_array", "busy"),
    ]
    assert len(arena) == step and arena.committed == committed
    value = arena.alloc_raw(6)
    assert ctypes.addressof(value) == ctypes.addressof(values[-1]) + 8
    del value, values
    arena.close()


def test_a_constructor_refused_while_alloc_raw_stores_gives_its_slot_back(
    typed_cls: type,
) -> None:
    dropped: list[int] = []
    arena: Any = typed_cls(ctypes.c_int64, 8, drop=lambda v: dropped.append(v.value))
    outcomes: list[str] = []

    class Meddling:
        """Converts to 7; at the store (its second conversion) it calls the arena."""

        calls = 0

        def __index__(self) -> int:
            self.calls += 1
            if self.calls == 2:
                try_to_allocate(arena, outcomes, "seven")  # ctypes refuses a str
                try_to_allocate(arena, outcomes, 5)  # alloc_raw is still running
            return 7

    first = arena.alloc_raw(Meddling())
    assert len(outcomes) == 2
    assert outcomes[0].startswith("TypeError: ") and outcomes[1] == "busy"
    assert first.value == 7 and len(arena) == 1
    second = arena.alloc(8)  # in the slot the refused value had
    assert ctypes.addressof(second) == ctypes.addressof(first) + 8
    assert len(arena) == 2 and [v.value for v in arena] == [7, 8]
    del first, second
    arena.reset()
    assert dropped == [8, 7]  # nothing that was never handed out
    arena.close()


# -- the types values are handed out as -----------------------------------------


def test_a_subclass_of_a_simple_type_keeps_its_own_methods(typed_cls: type) -> None:
    class Celsius(ctypes.c_double):
        def __repr__(self) -> str:
            return f"{self.value:g} °C"

    arena = typed_cls(Celsius, 4)
    value = arena.alloc(21.5)
    assert repr(value) == "21.5 °C" and isinstance(value, Celsius)
    assert [repr(v) for v in arena] == ["21.5 °C"]
    del value
    arena.close()


def test_values_of_one_lazy_arena_are_of_one_type_across_its_commits() -> None:
    arena: Any = TypedArenaLazy(ctypes.c_int32, 1 << 16)
    per_commit = arena.commit_step // 4
    values = [arena.alloc(n) for n in range(per_commit + 1)]
    assert arena.committed == 2 * arena.commit_step  # the last one is in a second commit
    assert {type(v) for v in values} == {type(values[0])}
    assert isinstance(values[-1], ctypes.c_int32) and values[-1].value == per_commit
    del values
    arena.close()


_STASHING: list[Any] = []


class _Stashing(ctypes.Structure):
    """A constructor that, given "iter", "array" or "base", keeps an object over its
    own slot (the arena's newest value: by iterating the arena, through
    ``as_array()``, or through the array ``self._b_base_`` it was made from) and
    raises."""

    _fields_ = [("v", ctypes.c_int64)]

    def __init__(self, *args: Any) -> None:
        if args in (("iter",), ("array",), ("base",)):
            arena, kept = _STASHING
            if args == ("iter",):
                kept.append(list(arena)[-1])
            elif args == ("array",):
                kept.append(arena.as_array()[-1])
            else:
                base = self._b_base_
                kept.append(base[(ctypes.addressof(self) - ctypes.addressof(base)) // 8])
                del base
            del self  # (the traceback does not keep the failed value)
            raise ValueError("stashed")
        super().__init__(*args)


def _stash_and_allocate(arena: Any, how: str) -> tuple[Any, Any]:
    kept: list[Any] = []
    _STASHING[:] = [arena, kept]
    try:
        first = arena.alloc(1)
        with pytest.raises(ValueError, match="stashed"):
            arena.alloc(how)
        return kept[0], arena.alloc(7)
    finally:
        del first
        _STASHING.clear()


@pytest.mark.parametrize("how", ["iter", "array"])
def test_a_slot_is_not_given_back_while_an_object_over_it_lives(typed_cls: type, how: str) -> None:
    """A constructor takes an object over its own slot from the arena and raises: the
    slot stays used (dead) while that object may live, not handed out to the next value
    (which the object would alias).

    (The slot was given back: only the failed value was looked at.)
    """
    arena = typed_cls(_Stashing, 8)
    kept, value = _stash_and_allocate(arena, how)
    assert ctypes.addressof(value) == ctypes.addressof(kept) + 8
    assert len(arena) == 3
    del kept, value
    arena.reset()


@pytest.mark.xfail(
    strict=True,
    reason="known bug (README): a failed constructor's slot is given back while an "
    "object over it, taken from the array its value was made from, lives",
)
def test_a_slot_is_not_given_back_while_an_object_from_its_base_lives(
    typed_cls: type,
) -> None:
    """The same with an object over the slot taken from ``self._b_base_``, the slot
    array the value was made from."""
    arena = typed_cls(_Stashing, 8)
    kept, value = _stash_and_allocate(arena, "base")
    assert ctypes.addressof(value) != ctypes.addressof(kept)
