"""No code may re-enter a typed arena while one of its calls changes it.

Two deterministic ways to run code in the middle of a call:

- a finalizer run by the collector: while memory freed by ``reset()`` is still
  *held* (a drop callback kept a value), an allocation collects garbage before
  refusing; a cycle with a ``__del__`` is collected then, while the arena is
  changing, and every call it makes into the arena must raise ``RuntimeError``
  (the arena is busy).
- a profile function (``sys.setprofile``), which runs at every Python call as
  a signal handler could: from the first drop callback of a ``reset()`` or a
  ``rewind()`` until the call returns, allocating must raise ``RuntimeError``.
"""

from __future__ import annotations

import ctypes
import gc
import re
import sys
from typing import Any, Callable

import pytest
from conftest import UNDER_MUTATION

BUSY = (
    "the arena is busy: a drop callback cannot allocate from, rewind, reset or close "
    "the arena it is dropping from, nor can code that runs in the middle of one of its "
    "calls (a finalizer, a signal handler)"
)


class _Prober:
    """In a reference cycle, so that only the collector frees it; its ``__del__`` probes."""

    def __init__(self, arena: Any, value: Any, log: list[tuple[str, str]]) -> None:
        self.arena, self.value, self.log = arena, value, log
        self.me = self

    def __del__(self) -> None:
        arena = self.arena
        calls: list[tuple[str, Callable[[], object]]] = [
            ("as_array", arena.as_array),
            ("iter", lambda: list(arena)),
            ("alloc", lambda: arena.alloc(100)),
            ("alloc_raw", lambda: arena.alloc_raw(101)),
            ("alloc_many", lambda: arena.alloc_many(1)),
            ("checkpoint", arena.checkpoint),
        ]
        for name, call in calls:
            try:
                call()
            except RuntimeError as exc:
                self.log.append((name, "busy" if str(exc) == BUSY else str(exc)))
            except Exception as exc:  # noqa: BLE001 - recorded, asserted on below
                self.log.append((name, f"{type(exc).__name__}: {exc}"))
            else:
                self.log.append((name, "ran"))
        self.value = None  # the held memory is free once this is gone


CALLS: dict[str, Callable[[Any], Any]] = {
    "alloc": lambda arena: arena.alloc(7),
    "alloc_raw": lambda arena: arena.alloc_raw(7),
    "alloc_many": lambda arena: arena.alloc_many(2),
    "alloc_extend": lambda arena: arena.alloc_extend([7, 8]),
    "alloc_extend_array": lambda arena: arena.alloc_extend((ctypes.c_int64 * 2)(7, 8)),
}

EXPECTED = {
    "alloc": [7],
    "alloc_raw": [7],
    "alloc_many": [0, 0],
    "alloc_extend": [7, 8],
    "alloc_extend_array": [7, 8],
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_finalizer_run_while_an_allocation_changes_the_arena_is_refused(
    typed_cls: type, call: str
) -> None:
    log: list[tuple[str, str]] = []
    keepers: list[_Prober] = []

    def drop(value: Any) -> None:
        if not log:  # (the first time only)
            keepers.append(_Prober(arena, value, log))

    arena: Any = typed_cls(ctypes.c_int64, 8, drop=drop)
    first = arena.alloc(1)
    del first
    arena.reset()  # the drop callback kept the value: that memory is held
    assert arena.live_views() == 1
    gc.collect()
    gc.disable()  # only the allocation's own collection frees the keeper
    try:
        keepers.clear()
        result = CALLS[call](arena)
    finally:
        gc.enable()
    names = ["as_array", "iter", "alloc", "alloc_raw", "alloc_many", "checkpoint"]
    assert log == [(name, "busy") for name in names]
    assert result is not None and len(arena) == len(EXPECTED[call])
    assert [v.value for v in arena] == EXPECTED[call]
    del result
    arena.close()
    assert arena.closed and log[6:] == []


def try_to_allocate(arena: Any, outcomes: list[str], *args: object) -> None:
    """``arena.alloc(*args)``; ``outcomes`` gets how it ended: "busy" (refused: the arena is
    busy), "allocated", or the other error it raised, as text."""
    try:
        arena.alloc(*args)
    except RuntimeError as exc:
        outcomes.append("busy" if str(exc) == BUSY else str(exc))
    except Exception as exc:  # noqa: BLE001 - recorded, asserted on by the caller
        outcomes.append(f"{type(exc).__name__}: {exc}")
    else:
        outcomes.append("allocated")


def _probe_calls(arena: Any, started: list[int], outcomes: list[str]) -> Callable[..., None]:
    def probe(frame: Any, event: str, arg: Any) -> None:
        if started and event == "call":
            try_to_allocate(arena, outcomes, 100)

    return probe


@pytest.mark.skipif(
    UNDER_MUTATION,
    reason="mutmut's trampolines make calls after the library's own call has returned",
)
@pytest.mark.parametrize("how", ["reset", "rewind"])
def test_no_allocation_from_the_first_drop_until_reset_or_rewind_returns(
    typed_cls: type, how: str
) -> None:
    started: list[int] = []
    outcomes: list[str] = []
    arena: Any = typed_cls(ctypes.c_int64, 8, drop=lambda value: started.append(value.value))
    keep = arena.alloc(1)
    cp = arena.checkpoint()
    for n in (2, 3):
        arena.alloc(n)
    if how == "reset":
        del keep
    sys.setprofile(_probe_calls(arena, started, outcomes))
    try:
        if how == "reset":
            arena.reset()
        else:
            arena.rewind(cp)
    finally:
        sys.setprofile(None)
    assert started == ([3, 2, 1] if how == "reset" else [3, 2])
    assert outcomes and set(outcomes) == {"busy"}
    assert len(arena) == (0 if how == "reset" else 1)
    assert [v.value for v in arena] == ([] if how == "reset" else [1])
    after = arena.alloc(4)
    assert after.value == 4 and len(arena) == (1 if how == "reset" else 2)
    del after
    if how == "rewind":
        del keep
    started.clear()
    arena.close()
    assert started == ([4] if how == "reset" else [4, 1])


def test_message_of_the_busy_error(typed_cls: type) -> None:
    errors: list[str] = []
    arena: Any = None

    def drop(value: Any) -> None:
        try:
            arena.alloc(5)
        except RuntimeError as exc:
            errors.append(str(exc))

    arena = typed_cls(ctypes.c_int64, 4, drop=drop)
    arena.alloc(1)
    arena.reset()
    assert len(errors) == 1
    assert re.fullmatch(re.escape(BUSY), errors[0])
    arena.close()
