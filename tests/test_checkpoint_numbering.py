"""Checkpoints and scopes (``linalloc._arena``): how checkpoints are numbered in
their repr, and the exit of a scope that was never entered."""

from __future__ import annotations

import contextlib
import ctypes
from typing import Any

import pytest
from conftest import BUMP_KINDS, TYPED_KINDS

import linalloc

ALL_KINDS = BUMP_KINDS + TYPED_KINDS


def make(cls: type) -> Any:
    if cls in TYPED_KINDS:
        return cls(ctypes.c_int64, 16)
    return cls(256)


def alloc_one(arena: Any) -> Any:
    """One value: 8 bytes in an untyped arena, one slot in a typed one."""
    if isinstance(arena, linalloc.BumpArena):
        return arena.alloc_uninit_slice(linalloc.Layout(8))
    return arena.alloc(1)


@pytest.mark.parametrize("cls", ALL_KINDS, ids=lambda c: c.__name__)
def test_checkpoints_are_numbered_one_by_one_in_their_repr(cls: type) -> None:
    arena = make(cls)
    one = arena.checkpoint()
    kept = alloc_one(arena)
    two = arena.checkpoint()
    with arena.scope() as three:
        pass
    four = arena.checkpoint()
    step = 8 if cls in BUMP_KINDS else 1
    assert [repr(cp) for cp in (one, two, three, four)] == [
        "<Checkpoint #1 at position 0>",
        f"<Checkpoint #2 at position {step}>",
        f"<Checkpoint #3 at position {step}>",
        f"<Checkpoint #4 at position {step}>",
    ]
    # each arena counts on its own
    assert repr(make(cls).checkpoint()) == "<Checkpoint #1 at position 0>"
    del kept


@pytest.mark.parametrize("cls", ALL_KINDS, ids=lambda c: c.__name__)
def test_a_scope_never_entered_exits_doing_nothing(cls: type) -> None:
    # ExitStack.push registers a context manager's __exit__ without entering it.
    arena = make(cls)
    kept = alloc_one(arena)
    cp = arena.checkpoint()
    scope = arena.scope()
    with contextlib.ExitStack() as stack:
        stack.push(scope)
        later = alloc_one(arena)
    assert scope.__exit__(None, None, None) is None
    step = 8 if cls in BUMP_KINDS else 1
    # nothing was rewound: both values stay, and the checkpoint is still valid
    assert arena.live_views() == 2
    if cls in BUMP_KINDS:
        assert arena.used == 2 * step
    else:
        assert len(arena) == 2 and [v.value for v in arena] == [1, 1]
    del later
    arena.rewind(cp)
    if cls in BUMP_KINDS:
        assert arena.used == step
    else:
        assert len(arena) == 1
    # the scope can still be entered once, and then works as usual
    with scope:
        scratch = alloc_one(arena)
        del scratch
    assert arena.live_views() == 1
    del kept
