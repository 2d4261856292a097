"""Checkpoints, rewind and scopes (SPEC "Version 0.2": checkpoints and scopes).

Every sentence of that section, on all four arenas: the checkpoint object,
what ``rewind()`` frees and drops, rule 2 per region (which views stop a
rewind and which do not), savepoints and invalidation, refused calls changing
nothing, scopes, lazy commits, thread and closed checks, and a drop callback
that keeps a value.
"""

from __future__ import annotations

import copy
import ctypes
import gc
import pickle
import weakref
from typing import Any, Callable

import pytest
from conftest import run_in_thread, stable_id

import linalloc
from linalloc import Checkpoint, Layout, address

try:
    import numpy
except ImportError:  # pragma: no cover - numpy is a test dependency
    numpy = None  # type: ignore[assignment]

ALL_KINDS = [
    linalloc.BumpArena,
    linalloc.BumpArenaLazy,
    linalloc.TypedArena,
    linalloc.TypedArenaLazy,
]
SLOT = ctypes.sizeof(ctypes.c_int64)


@pytest.fixture(params=ALL_KINDS, ids=lambda cls: cls.__name__)
def arena_cls(request: pytest.FixtureRequest) -> type:
    """All four arenas: the checkpoint API is shared."""
    return request.param  # type: ignore[no-any-return]


def typed(arena: Any) -> bool:
    return isinstance(arena, linalloc.TypedArena)


def lazy(arena: Any) -> bool:
    return isinstance(arena, (linalloc.BumpArenaLazy, linalloc.TypedArenaLazy))


def make(cls: Any, n: int = 64, **kwargs: Any) -> Any:
    """An arena with room for ``n`` int64 values."""
    if issubclass(cls, linalloc.TypedArena):
        return cls(ctypes.c_int64, n, **kwargs)
    return cls(n * SLOT, **kwargs)


def new(arena: Any, value: int = 0) -> Any:
    """One int64 value from any arena (None when full)."""
    if typed(arena):
        return arena.alloc(value)
    made = arena.alloc(ctypes.c_int64)
    if made is not None:
        made.value = value
    return made


def count(arena: Any) -> int:
    """``len`` for a typed arena, values of ``SLOT`` bytes for a bump arena."""
    return len(arena) if typed(arena) else arena.used // SLOT


def state(arena: Any) -> tuple[Any, ...]:
    """What a refused call must leave unchanged."""
    return (
        arena.used,
        count(arena),
        arena.committed if lazy(arena) else None,
        arena.live_views(),
    )


def refused(call: Callable[[], object], fragment: str = "") -> str:
    """``call`` raises BufferError; returns the message (keeps no traceback)."""
    try:
        call()
    except BufferError as exc:
        message = str(exc)
    else:
        raise AssertionError("not refused")
    assert fragment in message, message
    return message


# -- the checkpoint object ------------------------------------------------------


def test_checkpoint_is_a_checkpoint(arena_cls: Any) -> None:
    arena = make(arena_cls)
    cp = arena.checkpoint()
    assert type(cp) is Checkpoint
    with arena.scope() as scoped:
        assert type(scoped) is Checkpoint


def test_checkpoint_is_immutable(arena_cls: Any) -> None:
    arena = make(arena_cls)
    cp = arena.checkpoint()
    for name in ("_position", "_region", "_token", "anything"):
        with pytest.raises(AttributeError):
            setattr(cp, name, 0)
        with pytest.raises(AttributeError):
            delattr(cp, name)
    assert not hasattr(cp, "__dict__")
    new(arena)
    arena.rewind(cp)  # still valid: nothing was changed
    assert arena.used == 0


def test_checkpoint_is_hashable_and_opaque(arena_cls: Any) -> None:
    arena = make(arena_cls)
    first = arena.checkpoint()
    value = new(arena)
    second = arena.checkpoint()
    assert hash(first) == hash(first)
    assert {first: 1, second: 2}[first] == 1
    assert first == first and first != second
    public = [name for name in dir(first) if not name.startswith("_")]
    # (under mutation testing the class also holds mutmut's mangled copies, "xǁ...")
    assert [name for name in public if "ǁ" not in name] == []
    assert repr(first).startswith("<Checkpoint")
    with pytest.raises(TypeError):
        pickle.dumps(first)
    assert copy.copy(first) is first and copy.deepcopy(first) is first
    del value


def test_checkpoint_holds_no_reference_to_memory(arena_cls: Any) -> None:
    arena = make(arena_cls)
    value = new(arena, 3)
    cp = arena.checkpoint()
    referents = [obj for obj in gc.get_referents(cp) if obj is not Checkpoint]
    assert referents, "expected the checkpoint's own fields"
    for obj in referents:
        # its fields: ints, an identity token and a weak reference (to the
        # arena's bookkeeping of the region): nothing kept alive
        assert type(obj) in (int, object, weakref.ReferenceType), type(obj)
        assert not gc.get_referents(obj)
    # and it keeps nothing alive: the arena and its memory go without it
    del value
    arena.close()
    with pytest.raises(ValueError, match="arena is closed"):
        arena.rewind(cp)


def test_checkpoint_keeps_the_arena_collectable(arena_cls: Any) -> None:
    import weakref

    arena = make(arena_cls)
    new(arena)
    cp = arena.checkpoint()
    ref = weakref.ref(arena)
    del arena
    gc.collect()
    assert ref() is None
    assert type(cp) is Checkpoint


# -- rewind: what it frees, where the next allocation lands --------------------------


def test_rewind_frees_after_and_reuses_the_first_address(arena_cls: Any) -> None:
    arena = make(arena_cls)
    before = [new(arena, k) for k in range(3)]
    used = arena.used
    cp = arena.checkpoint()
    after = [new(arena, 10 + k) for k in range(5)]
    first_after = address(after[0])
    del after
    arena.rewind(cp)
    assert arena.used == used and count(arena) == 3
    again = new(arena, 99)
    assert address(again) == first_after
    assert [v.value for v in before] == [0, 1, 2]  # untouched
    assert arena.used == used + SLOT


def test_rewind_bump_slices_and_alignment(bump_cls: Any) -> None:
    arena = bump_cls(1024)
    head = arena.alloc_uninit_slice(Layout(3))
    head[:] = b"abc"
    cp = arena.checkpoint()
    block = arena.alloc_uninit_slice(Layout(100, 64))
    where = address(block)
    del block
    arena.rewind(cp)
    assert arena.used == 3
    again = arena.alloc_uninit_slice(Layout(100, 64))
    assert address(again) == where and bytes(head) == b"abc"


def test_rewind_with_nothing_after_is_a_no_op(arena_cls: Any) -> None:
    arena = make(arena_cls)
    value = new(arena, 5)
    cp = arena.checkpoint()
    arena.rewind(cp)
    arena.rewind(cp)
    assert arena.used == SLOT and value.value == 5


def test_rewind_to_the_start_equals_reset(arena_cls: Any) -> None:
    arena = make(arena_cls)
    cp = arena.checkpoint()
    first = address(new(arena))
    for k in range(20):
        new(arena, k)
    arena.rewind(cp)
    assert arena.used == 0 and count(arena) == 0
    assert address(new(arena)) == first


def test_typed_rewind_drops_in_reverse_exactly_once(typed_cls: Any) -> None:
    dropped: list[int] = []
    arena = typed_cls(ctypes.c_int64, 32, drop=lambda v: dropped.append(v.value))
    for k in range(3):
        arena.alloc(k)
    cp = arena.checkpoint()
    for k in range(10, 15):
        arena.alloc(k)
    arena.rewind(cp)
    assert dropped == [14, 13, 12, 11, 10]
    assert len(arena) == 3 and [v.value for v in arena] == [0, 1, 2]
    arena.rewind(cp)  # nothing more to drop
    assert dropped == [14, 13, 12, 11, 10]
    arena.alloc(20)
    arena.reset()
    assert dropped == [14, 13, 12, 11, 10, 20, 2, 1, 0]
    arena.close()
    assert len(dropped) == 9


def test_typed_rewind_new_values_are_zeroed(typed_cls: Any) -> None:
    class Pair(ctypes.Structure):
        _fields_ = [("a", ctypes.c_int64), ("p", ctypes.c_void_p)]

    arena = typed_cls(Pair, 64)
    cp = arena.checkpoint()
    for _ in range(40):
        arena.alloc(-1, 0xDEAD)
    arena.rewind(cp)
    assert all((v.a, v.p) == (0, None) for v in [arena.alloc() for _ in range(40)])
    many = arena.alloc_many(5)
    assert many is not None and all(v.a == 0 for v in many)


def test_typed_rewind_raising_callback(typed_cls: Any) -> None:
    """Every value after cp is dropped; the first error is raised after the rewind."""
    dropped: list[int] = []

    def drop(value: Any) -> None:
        dropped.append(value.value)
        if value.value in (12, 11):
            raise KeyError(value.value)

    arena = typed_cls(ctypes.c_int64, 32, drop=drop)
    keep = arena.alloc(1)
    cp = arena.checkpoint()
    first_after = address(arena.alloc(10))
    for k in range(11, 14):
        arena.alloc(k)
    with pytest.raises(KeyError) as info:
        arena.rewind(cp)
    assert info.value.args == (12,)
    del info
    assert dropped == [13, 12, 11, 10]
    assert len(arena) == 1 and keep.value == 1
    assert address(arena.alloc(5)) == first_after
    arena.rewind(cp)  # cp stayed valid
    assert dropped == [13, 12, 11, 10, 5]


def test_typed_rewind_keyboard_interrupt(typed_cls: Any) -> None:
    """A KeyboardInterrupt stops the drops; the values left are dropped later, once. The
    values dropped keep their slots (dead: counted, never dropped again)."""
    dropped: list[int] = []
    interrupt = [True]

    def drop(value: Any) -> None:
        dropped.append(value.value)
        if value.value == 12 and interrupt[0]:
            interrupt[0] = False
            raise KeyboardInterrupt

    arena = typed_cls(ctypes.c_int64, 32, drop=drop)
    arena.alloc(1)
    cp = arena.checkpoint()
    for k in range(10, 15):
        arena.alloc(k)
    with pytest.raises(KeyboardInterrupt):
        arena.rewind(cp)
    assert dropped == [14, 13, 12]
    assert [v.value for v in arena] == [1, 10, 11, 12, 13, 14] and len(arena) == 6
    arena.rewind(cp)  # cp is still valid: the rest go now
    assert dropped == [14, 13, 12, 11, 10]
    assert len(arena) == 1
    arena.alloc(2)
    arena.close()
    assert dropped == [14, 13, 12, 11, 10, 2, 1]


def test_typed_rewind_drop_cannot_reenter(typed_cls: Any) -> None:
    errors: list[str] = []
    arena_box: list[Any] = []
    cps: list[Any] = []

    def drop(value: Any) -> None:
        for call in (lambda: arena_box[0].rewind(cps[0]), arena_box[0].checkpoint):
            try:
                call()
            except RuntimeError as exc:
                errors.append(str(exc))

    arena = typed_cls(ctypes.c_int64, 8, drop=drop)
    arena_box.append(arena)
    cps.append(arena.checkpoint())
    arena.alloc(1)
    arena.rewind(cps[0])
    assert len(errors) == 2 and all("drop callback" in e for e in errors)
    assert len(arena) == 0


@pytest.mark.parametrize("arena_cls", [linalloc.BumpArenaLazy, linalloc.TypedArenaLazy])
def test_lazy_rewind_keeps_commits_and_trim_returns_them(arena_cls: Any) -> None:
    arena = make(arena_cls, 1 << 20)
    keep = new(arena)
    cp = arena.checkpoint()
    step = arena.commit_step
    if typed(arena):
        many = arena.alloc_many(3 * step // SLOT)
        assert many is not None
        del many
    else:
        block = arena.alloc_uninit_slice(Layout(3 * step))
        assert block is not None
        del block
    committed = arena.committed
    assert committed >= 3 * step
    arena.rewind(cp)
    assert arena.committed == committed  # kept
    released = arena.trim()
    assert released > 0 and arena.committed == committed - released
    assert arena.committed <= step
    keep.value = 4
    assert keep.value == 4
    again = new(arena, 6)  # commits again as needed
    assert again.value == 6


# -- rule 2 per region: views of memory before cp do not stop a rewind --------------


def test_views_before_cp_do_not_stop_rewind(arena_cls: Any) -> None:
    arena = make(arena_cls)
    value = new(arena, 7)
    mv = memoryview(value)
    if typed(arena):
        whole = arena.as_array()
    else:
        whole = arena.alloc_uninit_slice(Layout(8))
    cp = arena.checkpoint()
    later = new(arena)
    del later
    arena.rewind(cp)
    assert value.value == 7 and mv.nbytes == SLOT and len(whole) in (1, 8)


def test_value_got_by_iterating_after_cp_does_not_stop_rewind(typed_cls: Any) -> None:
    arena = typed_cls(ctypes.c_int64, 64)
    for k in range(3):
        arena.alloc(k)
    cp = arena.checkpoint()
    later = [arena.alloc(k) for k in range(10, 20)]
    old = [v for v in arena][:3]  # values of memory before cp, made after it
    it = iter(arena)
    first = next(it)
    del it, later
    arena.rewind(cp)
    assert [v.value for v in old] == [0, 1, 2] and first.value == 0


def test_memoryview_of_an_old_value_made_after_cp(arena_cls: Any) -> None:
    arena = make(arena_cls)
    value = new(arena, 5)
    cp = arena.checkpoint()
    later = new(arena)
    mv = memoryview(value)
    cast_view = (ctypes.c_ubyte * SLOT).from_buffer(value)
    arrays = [numpy.frombuffer(value, dtype=numpy.int64)] if numpy is not None else []
    del later
    arena.rewind(cp)
    assert bytes(mv) == bytes(ctypes.c_int64(5)) and cast_view[0] == 5
    assert all(int(a[0]) == 5 for a in arrays)


def test_as_array_before_cp_after_more_allocated(typed_cls: Any) -> None:
    """``as_array()`` made after cp spans memory after cp once more was allocated."""
    arena = typed_cls(ctypes.c_int64, 64)
    arena.alloc(1)
    cp = arena.checkpoint()
    only_old = arena.as_array()  # made after cp, nothing allocated yet: old memory only
    arena.alloc(2)
    spanning = arena.as_array()
    refused(lambda: arena.rewind(cp), "1 view")
    del spanning
    arena.rewind(cp)
    assert list(only_old) == [1]


# -- ...and a view of memory after cp does ------------------------------------------


def _after_views(arena: Any) -> dict[str, Callable[[], Any]]:
    """Ways to make a view of memory allocated after a checkpoint."""
    made: dict[str, Callable[[], Any]] = {
        "value": lambda: new(arena, 3),
        "memoryview of a value": lambda: memoryview(new(arena, 3)),
        "from_buffer of a value": lambda: (ctypes.c_char * SLOT).from_buffer(new(arena, 3)),
        "cast of an array": lambda: linalloc.cast(
            arena.alloc_many(2) if typed(arena) else arena.alloc_array(ctypes.c_int64, 2),
            ctypes.POINTER(ctypes.c_int64),
        ),
        "cast of byref": lambda: linalloc.cast(
            ctypes.byref(new(arena, 3)), ctypes.POINTER(ctypes.c_int64)
        ),
    }
    if numpy is not None:
        made["numpy of a value"] = lambda: numpy.frombuffer(new(arena, 3), dtype=numpy.int64)
    if typed(arena):

        def spanning_array() -> Any:
            new(arena, 3)
            return arena.as_array()

        def iterator() -> Any:
            new(arena, 3)
            return iter(arena)

        def late_value_by_iterating() -> Any:
            new(arena, 3)
            return list(arena)[-1]

        made["as_array after more allocated"] = spanning_array
        made["iterator over the arena"] = iterator
        made["value got by iterating"] = late_value_by_iterating
        made["alloc_many"] = lambda: arena.alloc_many(3)
        made["alloc_extend"] = lambda: arena.alloc_extend([1, 2])
        made["alloc_raw"] = lambda: arena.alloc_raw(4)
    else:
        made["slice"] = lambda: arena.alloc_uninit_slice(Layout(8))
        made["alloc_array"] = lambda: arena.alloc_array(ctypes.c_int32, 2)
        made["alloc_copy"] = lambda: arena.alloc_copy(b"abc")
        made["cast of a slice"] = lambda: linalloc.cast(
            arena.alloc_uninit_slice(Layout(8)), ctypes.c_void_p
        )
        made["numpy of a slice"] = (
            (lambda: numpy.frombuffer(arena.alloc_uninit_slice(Layout(8)), dtype=numpy.uint8))
            if numpy is not None
            else made["slice"]
        )
    return made


def test_views_after_cp_stop_rewind(arena_cls: Any, frozen: None) -> None:
    """(``frozen``: the collections, one per view, walk what the test made, not the session.)"""
    arena = make(arena_cls, 256)
    keep = new(arena, 1)
    for what, make_view in _after_views(arena).items():
        cp = arena.checkpoint()
        view = make_view()
        assert view is not None, what
        gc.collect()
        before = state(arena)
        refused(lambda: arena.rewind(cp), "after the checkpoint")  # noqa: B023
        assert state(arena) == before, what
        del view
        arena.rewind(cp)
        assert arena.used == SLOT, what
    assert keep.value == 1


def test_grow_result_after_cp_stops_rewind(bump_cls: Any) -> None:
    arena = bump_cls(1024)
    buf = arena.alloc_copy(b"head")
    cp = arena.checkpoint()
    grown = arena.grow(buf, 64)
    assert grown is not None
    refused(lambda: arena.rewind(cp), "1 view")
    assert arena.used == 64
    del grown
    arena.rewind(cp)
    assert arena.used == 4 and bytes(buf) == b"head"


def test_refusal_message_counts_views(arena_cls: Any) -> None:
    arena = make(arena_cls)
    cp = arena.checkpoint()
    views = [new(arena) for _ in range(3)]
    message = refused(lambda: arena.rewind(cp), "3 views")
    assert "delete them" in message
    del views
    arena.rewind(cp)


def test_reset_keeps_its_whole_arena_rule(arena_cls: Any) -> None:
    arena = make(arena_cls)
    old = new(arena)
    cp = arena.checkpoint()
    refused(arena.reset, "cannot reset")
    arena.rewind(cp)  # an old view does not stop the rewind...
    refused(arena.reset, "1 view of this arena")  # ...but does stop reset
    del old
    arena.reset()


# -- savepoints and invalidation --------------------------------------------------


def test_savepoint_rewound_twice(arena_cls: Any) -> None:
    arena = make(arena_cls)
    new(arena)
    cp = arena.checkpoint()
    first = address(new(arena))
    arena.rewind(cp)
    assert address(new(arena)) == first
    new(arena)
    arena.rewind(cp)
    assert arena.used == SLOT
    assert address(new(arena)) == first


def test_rewind_invalidates_later_checkpoints(arena_cls: Any) -> None:
    arena = make(arena_cls)
    cp1 = arena.checkpoint()
    new(arena)
    cp2 = arena.checkpoint()
    new(arena)
    cp3 = arena.checkpoint()
    arena.rewind(cp2)
    assert arena.used == SLOT
    before = state(arena)
    with pytest.raises(ValueError, match="no longer valid"):
        arena.rewind(cp3)
    assert state(arena) == before
    arena.rewind(cp2)  # cp2 itself stays valid
    arena.rewind(cp1)
    for stale in (cp2, cp3):
        with pytest.raises(ValueError, match="no longer valid"):
            arena.rewind(stale)
    arena.rewind(cp1)


def test_reset_invalidates_all(arena_cls: Any) -> None:
    arena = make(arena_cls)
    cps = [arena.checkpoint()]
    new(arena)
    cps.append(arena.checkpoint())
    arena.reset()
    new(arena)
    before = state(arena)
    for cp in cps:
        with pytest.raises(ValueError, match="no longer valid"):
            arena.rewind(cp)
        assert state(arena) == before


def test_close_invalidates_all(arena_cls: Any) -> None:
    arena = make(arena_cls)
    cp = arena.checkpoint()
    arena.close()
    with pytest.raises(ValueError, match="arena is closed"):
        arena.rewind(cp)


def test_checkpoint_of_another_arena(arena_cls: Any) -> None:
    arena, other = make(arena_cls), make(arena_cls)
    keep = new(arena)
    foreign = other.checkpoint()
    new(arena)
    before = state(arena)
    with pytest.raises(ValueError, match="another arena"):
        arena.rewind(foreign)
    assert state(arena) == before
    del keep


def test_checkpoint_of_another_kind(arena_cls: Any) -> None:
    arena = make(arena_cls)
    for cls in ALL_KINDS:
        foreign = make(cls).checkpoint()
        with pytest.raises(ValueError):
            arena.rewind(foreign)


@pytest.mark.parametrize("bad", [None, 0, "cp", object(), (0,)], ids=stable_id)
def test_rewind_to_a_non_checkpoint(arena_cls: Any, bad: object) -> None:
    arena = make(arena_cls)
    value = new(arena)
    before = state(arena)
    with pytest.raises(TypeError, match="Checkpoint"):
        arena.rewind(bad)
    assert state(arena) == before
    del value


def test_rewind_to_a_checkpoint_subclass_instance(arena_cls: Any) -> None:
    class Fake(Checkpoint):
        __slots__ = ()

    arena = make(arena_cls)
    real = arena.checkpoint()
    fake = Fake(real._token, real._serial, real._position, real._region())
    with pytest.raises(TypeError):
        arena.rewind(fake)


# -- a refused rewind changes nothing ------------------------------------------------


def test_refused_rewind_changes_nothing(arena_cls: Any) -> None:
    arena = make(arena_cls, 1 << 12)
    old = new(arena, 1)
    cp1 = arena.checkpoint()
    middle = [new(arena, k) for k in range(2, 6)]
    cp2 = arena.checkpoint()
    late = new(arena, 9)
    before = state(arena)
    contents = [v.value for v in (old, *middle, late)]
    refused(lambda: arena.rewind(cp1), "5 views")
    assert state(arena) == before
    assert [v.value for v in (old, *middle, late)] == contents
    after_refusal = new(arena, 10)
    assert address(after_refusal) == address(late) + SLOT  # nothing moved
    del late, after_refusal
    arena.rewind(cp2)  # later checkpoints still valid
    assert count(arena) == 5
    del middle
    arena.rewind(cp1)
    assert count(arena) == 1 and old.value == 1


def test_refused_rewind_on_typed_arena_drops_nothing(typed_cls: Any) -> None:
    dropped: list[int] = []
    arena = typed_cls(ctypes.c_int64, 16, drop=lambda v: dropped.append(v.value))
    cp = arena.checkpoint()
    values = [arena.alloc(k) for k in range(3)]
    refused(lambda: arena.rewind(cp))
    assert dropped == [] and len(arena) == 3
    assert [v.value for v in arena] == [0, 1, 2]
    del values
    arena.rewind(cp)
    assert dropped == [2, 1, 0]


# -- scopes --------------------------------------------------------------------


def test_scope_rewinds_on_exit(arena_cls: Any) -> None:
    arena = make(arena_cls)
    keep = new(arena, 1)
    with arena.scope() as cp:
        assert isinstance(cp, Checkpoint)
        first = address(new(arena))
        for _ in range(5):
            new(arena)
    assert arena.used == SLOT and keep.value == 1
    assert address(new(arena)) == first
    # the scope's checkpoint ends with the scope (so scopes in a loop keep nothing)
    with pytest.raises(ValueError, match="no longer valid"):
        arena.rewind(cp)


def test_scopes_nest(arena_cls: Any) -> None:
    arena = make(arena_cls)
    with arena.scope():
        new(arena)
        with arena.scope():
            new(arena)
            with arena.scope():
                new(arena)
                assert arena.used == 3 * SLOT
            assert arena.used == 2 * SLOT
        assert arena.used == SLOT
        new(arena)
    assert arena.used == 0


def test_scope_exit_with_a_live_view_raises_and_frees_nothing(arena_cls: Any) -> None:
    arena = make(arena_cls)
    leaked: list[Any] = []
    try:
        with arena.scope() as cp:
            leaked.append(new(arena, 5))
    except BufferError as exc:
        assert exc.__cause__ is None
        assert "cannot rewind" in str(exc) and "1 view" in str(exc)
    else:
        raise AssertionError("scope exit was not refused")
    assert arena.used == SLOT and leaked[0].value == 5
    leaked.clear()
    arena.rewind(cp)  # a later rewind can free it
    assert arena.used == 0


def test_scope_exit_refusal_chains_the_block_error(arena_cls: Any) -> None:
    arena = make(arena_cls)
    leaked: list[Any] = []
    caught: BaseException | None = None
    try:
        with arena.scope():
            leaked.append(new(arena, 5))
            raise LookupError("inside")
    except BufferError as exc:
        caught = exc
    assert isinstance(caught, BufferError)
    assert isinstance(caught.__cause__, LookupError)
    assert str(caught.__cause__) == "inside"
    del caught
    assert arena.used == SLOT
    leaked.clear()
    arena.reset()  # a later reset can free it
    assert arena.used == 0


def test_scope_exit_after_an_error_rewinds(arena_cls: Any) -> None:
    arena = make(arena_cls)
    with pytest.raises(LookupError):
        with arena.scope():
            new(arena)
            raise LookupError
    assert arena.used == 0


def test_scope_exit_after_close_inside(arena_cls: Any) -> None:
    arena = make(arena_cls)
    with arena.scope():
        new(arena)
        arena.close()
    assert arena.closed


def test_scope_exit_after_reset_inside(arena_cls: Any) -> None:
    arena = make(arena_cls)
    new(arena)
    with arena.scope():
        new(arena)
        arena.reset()
        kept = new(arena, 8)  # after the reset: not the scope's to free
    assert arena.used == SLOT and kept.value == 8


def test_scope_exit_after_rewinding_past_it(arena_cls: Any) -> None:
    arena = make(arena_cls)
    outer = arena.checkpoint()
    new(arena)
    with arena.scope():
        new(arena)
        arena.rewind(outer)
        kept = new(arena, 4)
    assert arena.used == SLOT and kept.value == 4


def test_scope_entered_twice(arena_cls: Any) -> None:
    arena = make(arena_cls)
    scope = arena.scope()
    with scope:
        with pytest.raises(RuntimeError):
            scope.__enter__()


# -- thread and closed checks ---------------------------------------------------


def test_new_methods_check_the_thread(arena_cls: Any) -> None:
    arena = make(arena_cls)
    cp = arena.checkpoint()
    new(arena)
    calls: list[Callable[[], object]] = [
        arena.checkpoint,
        lambda: arena.rewind(cp),
        arena.scope,
    ]
    for call in calls:
        error = run_in_thread(call)
        assert isinstance(error, RuntimeError), error
        assert "same thread" in str(error)
    assert arena.used == SLOT
    arena.rewind(cp)


def test_new_methods_without_thread_check(arena_cls: Any) -> None:
    arena = make(arena_cls, check_thread=False)
    box: list[Any] = []

    def work() -> None:
        cp = arena.checkpoint()
        with arena.scope():
            new(arena)
        new(arena)
        arena.rewind(cp)
        box.append(cp)

    assert run_in_thread(work) is None
    arena.rewind(box[0])
    assert arena.used == 0


def test_new_methods_after_close(arena_cls: Any) -> None:
    arena = make(arena_cls)
    cp = arena.checkpoint()
    arena.close()
    for call in (arena.checkpoint, lambda: arena.rewind(cp), arena.scope):
        with pytest.raises(ValueError, match="arena is closed"):
            call()


# -- a drop callback that keeps a value during rewind ------------------------------


def test_value_kept_by_a_drop_callback_holds_its_memory(typed_cls: Any) -> None:
    kept: list[Any] = []
    arena = typed_cls(ctypes.c_int64, 16, drop=kept.append)
    first = arena.alloc(1)
    cp = arena.checkpoint()
    where = address(arena.alloc(2))
    arena.rewind(cp)  # the callback keeps the value: its memory is held
    assert len(arena) == 1 and len(kept) == 1 and kept[0].value == 2
    for call in (arena.alloc, lambda: arena.alloc_raw(3), lambda: arena.alloc_many(1)):
        refused(call, "freed by reset() or rewind()")
    assert len(arena) == 1 and kept[0].value == 2 and first.value == 1
    kept.clear()
    again = arena.alloc(3)
    assert address(again) == where and again.value == 3
    assert len(arena) == 2


def test_value_kept_by_a_drop_callback_in_a_scope(typed_cls: Any) -> None:
    kept: list[Any] = []
    arena = typed_cls(ctypes.c_int64, 16, drop=kept.append)
    with arena.scope():
        arena.alloc(7)
    assert len(arena) == 0 and [v.value for v in kept] == [7]
    refused(arena.alloc, "still alive")
    kept.clear()
    assert arena.alloc(8) is not None


def test_held_memory_checked_in_subprocess(typed_cls: Any) -> None:
    """Writing to a kept value while the arena is used again never corrupts or crashes."""
    from conftest import run_python

    result = run_python(
        f"""
        import ctypes, gc, linalloc
        kept = []
        arena = linalloc.{typed_cls.__name__}(ctypes.c_int64, 1 << 14, drop=kept.append)
        cp = arena.checkpoint()
        for k in range(5000):
            arena.alloc(k)
        arena.rewind(cp)
        assert len(kept) == 5000
        try:
            arena.alloc(1)
        except BufferError:
            pass
        else:
            raise SystemExit("allocation over held memory")
        for v in kept:
            v.value = -1
        del v
        kept.clear()
        gc.collect()
        values = [arena.alloc(k) for k in range(5000)]
        assert [v.value for v in values[:3]] == [0, 1, 2]
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_values_left_after_rewind_dropped_once_at_collection(typed_cls: Any) -> None:
    dropped: list[int] = []
    arena = typed_cls(ctypes.c_int64, 32, drop=lambda v: dropped.append(v.value))
    for k in range(3):
        arena.alloc(k)
    cp = arena.checkpoint()
    arena.alloc(10)
    arena.alloc(11)
    arena.rewind(cp)
    arena.alloc(12)
    assert dropped == [11, 10]
    del arena
    gc.collect()
    assert dropped == [11, 10, 12, 2, 1, 0]


def test_values_left_by_an_interrupted_rewind_dropped_once_at_collection(
    typed_cls: Any,
) -> None:
    dropped: list[int] = []
    interrupt = [True]

    def drop(value: Any) -> None:
        dropped.append(value.value)
        if value.value == 11 and interrupt[0]:
            interrupt[0] = False
            raise KeyboardInterrupt

    arena = typed_cls(ctypes.c_int64, 32, drop=drop)
    arena.alloc(1)
    cp = arena.checkpoint()
    for k in (10, 11, 12):
        arena.alloc(k)
    with pytest.raises(KeyboardInterrupt):
        arena.rewind(cp)
    assert dropped == [12, 11]
    del arena, cp
    gc.collect()
    assert dropped == [12, 11, 10, 1]


@pytest.mark.xfail(
    strict=True,
    reason="an empty view made after a checkpoint (alloc_uninit_slice(Layout(0)), "
    "alloc_many(0), alloc_extend([])) views no memory, yet stops rewind() to it",
)
def test_empty_views_after_cp_do_not_stop_rewind(arena_cls: Any) -> None:
    arena = make(arena_cls)
    new(arena)
    cp = arena.checkpoint()
    if typed(arena):
        empties = [arena.alloc_many(0), arena.alloc_extend([])]
    else:
        empties = [arena.alloc_uninit_slice(Layout(0)), arena.alloc_copy(b"")]
    assert all(e is not None and len(e) == 0 for e in empties)
    arena.rewind(cp)  # no memory after cp is viewed


def _checkpoints_alive() -> int:
    gc.collect()
    return sum(type(obj) is Checkpoint for obj in gc.get_objects())


def test_scopes_in_a_loop_keep_nothing(arena_cls: Any) -> None:
    arena = make(arena_cls)
    keep = new(arena)  # a long-lived value: no reset between requests
    before = _checkpoints_alive()
    for _ in range(500):
        with arena.scope():
            new(arena)
    assert _checkpoints_alive() - before <= 2
    del keep


def test_interrupted_rewind_then_rewind_to_a_later_checkpoint(typed_cls: Any) -> None:
    dropped: list[int] = []
    interrupt = [True]

    def drop(value: Any) -> None:
        dropped.append(value.value)
        if value.value == 13 and interrupt[0]:
            interrupt[0] = False
            raise KeyboardInterrupt

    arena = typed_cls(ctypes.c_int64, 32, drop=drop)
    arena.alloc(1)
    cp1 = arena.checkpoint()
    arena.alloc(10)
    arena.alloc(11)
    cp2 = arena.checkpoint()
    for k in (12, 13, 14):
        arena.alloc(k)
    with pytest.raises(KeyboardInterrupt):
        arena.rewind(cp1)
    assert dropped == [14, 13] and len(arena) == 6  # (13 and 14 dead)
    try:
        arena.rewind(cp2)  # valid (then 12 is dropped) or invalidated: never corrupted
    except ValueError:
        assert dropped == [14, 13] and len(arena) == 6
    else:
        assert dropped == [14, 13, 12] and len(arena) == 3
    arena.reset()
    assert sorted(dropped) == [1, 10, 11, 12, 13, 14], "a value dropped twice"


def test_interrupted_reset_then_rewind(typed_cls: Any) -> None:
    dropped: list[int] = []
    interrupt = [True]

    def drop(value: Any) -> None:
        dropped.append(value.value)
        if value.value == 13 and interrupt[0]:
            interrupt[0] = False
            raise KeyboardInterrupt

    arena = typed_cls(ctypes.c_int64, 32, drop=drop)
    arena.alloc(1)
    cp1 = arena.checkpoint()
    for k in (10, 11, 12, 13, 14):
        arena.alloc(k)
    with pytest.raises(KeyboardInterrupt):
        arena.reset()
    assert dropped == [14, 13] and len(arena) == 6  # (13 and 14 dead)
    try:
        arena.rewind(cp1)
    except ValueError:  # the reset began: cp1 may be invalid
        assert dropped == [14, 13] and len(arena) == 6
    arena.reset()
    assert sorted(dropped) == [1, 10, 11, 12, 13, 14], "a value dropped twice"
