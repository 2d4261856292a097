"""Property tests (hypothesis) for the four arenas, eager and lazy alike.

- random layout sequences give aligned, non-overlapping blocks whose contents
  survive later allocations, and ``used`` is the end of the last allocation;
- a typed arena drops exactly the values it handed out, each once, newest first;
- a refused call (bad input, full arena, reset with a live view, a value of the
  wrong kind) changes nothing: ``used``/``len``/``committed`` and earlier contents.
"""

from __future__ import annotations

import collections
import ctypes
import gc
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import linalloc
from linalloc import Layout, address

# The arena class comes from a fixture that is the same for every example.
fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
# (``frozen``, conftest: the collections the examples and the library run walk what
# the examples made, not the whole test session.)


class Item(ctypes.Structure):
    _fields_ = [("ident", ctypes.c_int64), ("weight", ctypes.c_double), ("tag", ctypes.c_char)]


CTYPES: list[Any] = [
    ctypes.c_char,
    ctypes.c_int16,
    ctypes.c_int32,
    ctypes.c_int64,
    ctypes.c_double,
    Item,
    ctypes.c_int16 * 3,
]

slice_op = st.tuples(
    st.just("slice"),
    st.one_of(st.integers(0, 16), st.integers(0, 600)),
    st.integers(0, 9).map(lambda k: 1 << k),
)
alloc_op = st.tuples(st.just("alloc"), st.sampled_from(CTYPES))
array_op = st.tuples(st.just("array"), st.sampled_from(CTYPES), st.integers(0, 40))
bad_op = st.tuples(
    st.just("bad"),
    st.sampled_from(
        ["tuple_layout", "int_layout", "not_ctype", "py_object", "negative_n", "float_n"]
    ),
)
bump_ops = st.lists(
    st.one_of(slice_op, slice_op, alloc_op, array_op, bad_op, st.just(("reset",))),
    max_size=30,
)


def refused_bump_call(arena: Any, kind: str) -> None:
    """One call the arena must refuse with its documented exception."""
    calls: dict[str, tuple[type[Exception], Any]] = {
        "tuple_layout": (TypeError, lambda: arena.alloc_uninit_slice((8, 8))),
        "int_layout": (TypeError, lambda: arena.alloc_uninit_slice(8)),
        "not_ctype": (TypeError, lambda: arena.alloc(int)),
        "py_object": (TypeError, lambda: arena.alloc_array(ctypes.py_object, 2)),
        "negative_n": (ValueError, lambda: arena.alloc_array(ctypes.c_int32, -1)),
        "float_n": (TypeError, lambda: arena.alloc_array(ctypes.c_int32, 2.0)),
    }
    error, call = calls[kind]
    with pytest.raises(error):
        call()


@fixture_ok
@given(
    capacity=st.one_of(st.integers(0, 64), st.integers(0, 5000), st.just(70_000)),
    ops=bump_ops,
    seed=st.integers(0, 2**32 - 1),
)
def test_bump_blocks_aligned_disjoint_and_kept(
    bump_cls: Any, frozen: None, capacity: int, ops: list[Any], seed: int
) -> None:
    rng = random.Random(seed)
    arena = bump_cls(capacity)
    lazy = isinstance(arena, linalloc.BumpArenaLazy)
    base = address(arena.alloc_uninit_slice(Layout(0)))
    used = 0
    # (start offset, bytes written, object keeping the block alive)
    blocks: list[tuple[int, bytes, Any]] = []

    def check_unchanged(before_used: int, before_committed: int | None) -> None:
        assert arena.used == before_used
        if lazy:
            assert arena.committed == before_committed
        for start, data, _ in blocks:
            assert ctypes.string_at(base + start, len(data)) == data

    for op in ops:
        result: Any = None  # no view from the previous step may linger
        before_committed = arena.committed if lazy else None
        if op[0] == "bad":
            refused_bump_call(arena, op[1])
            check_unchanged(used, before_committed)
            continue
        if op[0] == "reset":
            if blocks:
                with pytest.raises(BufferError):
                    arena.reset()
                check_unchanged(used, before_committed)
                if rng.random() < 0.5:
                    continue
                blocks.clear()
            arena.reset()
            used = 0
            assert arena.used == 0
            if lazy:
                assert arena.committed == before_committed  # reset keeps commits
            continue
        if op[0] == "slice":
            size, align = op[1], op[2]
            result: Any = arena.alloc_uninit_slice(Layout(size, align))
        elif op[0] == "alloc":
            ctype = op[1]
            size, align = ctypes.sizeof(ctype), ctypes.alignment(ctype)
            result = arena.alloc(ctype)
        else:
            ctype, n = op[1], op[2]
            size, align = ctypes.sizeof(ctype) * n, ctypes.alignment(ctype)
            result = arena.alloc_array(ctype, n)
        start = ((base + used + align - 1) // align * align) - base
        fits = start + size <= capacity
        if op[0] == "slice" and size == 0:
            assert result is not None and len(result) == 0
            assert arena.used == used
            continue
        if not fits:
            assert result is None
            check_unchanged(used, before_committed)
            continue
        assert result is not None
        at = address(result)
        assert at == base + start and at % align == 0
        if op[0] == "slice":
            assert len(result) == size and result.format == "B" and not result.readonly
        else:
            assert ctypes.sizeof(result) == size
        # no overlap with any live block
        assert all(start >= at0 + len(d) or start + size <= at0 for at0, d, _ in blocks)
        data = rng.randbytes(size)
        if op[0] == "slice":
            result[:] = data
        else:
            ctypes.memmove(at, data, size)
        blocks.append((start, data, result))
        used = start + size
        assert arena.used == used
        if lazy:
            step = arena.commit_step
            assert used <= arena.committed
            if not any(o[0] == "reset" for o in ops):
                assert arena.committed <= -(-used // step) * step

    check_unchanged(used, arena.committed if lazy else None)
    blocks.clear()
    result = None
    arena.close()


class Tracked(ctypes.Structure):
    """4 KiB: a lazy arena's commit step holds 16, so runs cross commit boundaries."""

    _fields_ = [
        ("ident", ctypes.c_int64),
        ("weight", ctypes.c_double),
        ("pad", ctypes.c_char * 4080),
    ]


typed_ops = st.lists(
    st.one_of(
        st.tuples(st.just("alloc"), st.booleans()),
        st.tuples(st.just("raw"), st.booleans()),
        st.tuples(st.just("bad"), st.sampled_from(["raw_str", "raw_float", "raw_big_tuple"])),
        st.tuples(st.just("bad"), st.sampled_from(["alloc_str", "alloc_field"])),
        st.just(("reset",)),
        st.just(("release",)),
    ),
    max_size=40,
)


@fixture_ok
@given(
    capacity=st.one_of(st.integers(0, 12), st.just(40)),
    ops=typed_ops,
    ending=st.sampled_from(["close", "collect", "reset_then_collect"]),
)
def test_typed_drops_reverse_once_and_refusals_change_nothing(
    typed_cls: Any, frozen: None, capacity: int, ops: list[Any], ending: str
) -> None:
    dropped: list[int] = []

    def drop(value: Any) -> None:
        dropped.append(value.ident)

    arena = typed_cls(Tracked, capacity, drop=drop)
    lazy = isinstance(arena, linalloc.TypedArenaLazy)
    size = ctypes.sizeof(Tracked)
    live: list[int] = []  # idents in slot order
    held: dict[int, Any] = {}
    handed_out: list[int] = []
    base: int | None = None
    next_ident = 1

    def state() -> tuple[Any, ...]:
        contents = [(v.ident, v.weight) for v in arena]
        return len(arena), arena.committed if lazy else None, contents, dropped[:]

    for op in ops:
        if op[0] in ("alloc", "raw"):
            ident = next_ident
            next_ident += 1
            before = state()
            if op[0] == "alloc":
                value = arena.alloc(ident, weight=ident / 2)
            else:
                value = arena.alloc_raw((ident, ident / 2))
            if len(live) >= capacity:
                assert value is None
                assert state() == before
                continue
            assert value is not None and value.ident == ident and value.weight == ident / 2
            if base is None:
                base = ctypes.addressof(value)
            assert ctypes.addressof(value) == base + len(live) * size
            live.append(ident)
            handed_out.append(ident)
            if op[1]:
                held[ident] = value
            del value
        elif op[0] == "bad":
            before = state()
            calls: dict[str, Any] = {
                "raw_str": lambda: arena.alloc_raw("not a Tracked"),
                "raw_float": lambda: arena.alloc_raw(1.5),
                "raw_big_tuple": lambda: arena.alloc_raw((1, 2.0, 3)),
                "alloc_str": lambda: arena.alloc("x"),
                "alloc_field": lambda: arena.alloc(1, weight="heavy"),
            }
            with pytest.raises(TypeError):  # full or not: bad arguments are an error
                calls[op[1]]()
            assert state() == before
            assert arena.live_views() == len(held)
        elif op[0] == "reset":
            if held:
                before = state()
                with pytest.raises(BufferError, match=f"{len(held)} view"):
                    arena.reset()
                assert state() == before
                assert all(held[k].ident == k for k in held)
            else:
                mark = len(dropped)
                arena.reset()
                assert dropped[mark:] == live[::-1]
                live.clear()
                assert len(arena) == 0 and arena.is_empty()
        else:
            held.clear()
        assert [v.ident for v in arena] == live

    held.clear()
    if ending == "reset_then_collect":
        mark = len(dropped)
        arena.reset()
        assert dropped[mark:] == live[::-1]
        live.clear()
        if capacity:
            assert arena.alloc(-1) is not None
            live.append(-1)
            handed_out.append(-1)
    mark = len(dropped)
    if ending == "close":
        arena.close()
    else:
        del arena
        gc.collect()
    assert dropped[mark:] == live[::-1]
    gc.collect()
    counts = collections.Counter(dropped)
    assert sorted(counts) == sorted(handed_out)
    assert set(counts.values()) <= {1}


# Every refused reset runs the garbage collector first: keep this one lighter.
@settings(
    max_examples=max(20, settings.default.max_examples // 4),
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    sizes=st.lists(st.integers(1, 200), min_size=1, max_size=20),
    hold=st.integers(0, 19),
    seed=st.integers(0, 2**32 - 1),
)
def test_bump_reset_refused_while_any_view_lives(
    bump_cls: Any, frozen: None, sizes: list[int], hold: int, seed: int
) -> None:
    rng = random.Random(seed)
    arena = bump_cls(4096)
    views = [arena.alloc_uninit_slice(Layout(n, 8)) for n in sizes]
    for view in views:
        if view is not None:
            view[:] = rng.randbytes(len(view))
    del view
    kept = views[hold % len(views)]
    snapshot = [bytes(v) if v is not None else None for v in views]
    used = arena.used
    with pytest.raises(BufferError):
        arena.reset()
    assert arena.used == used
    assert [bytes(v) if v is not None else None for v in views] == snapshot
    survivor = bytes(kept) if kept is not None else None
    views.clear()
    if kept is not None:
        with pytest.raises(BufferError, match="1 view"):
            arena.reset()
        assert arena.used == used and bytes(kept) == survivor
        del kept
    arena.reset()
    assert arena.used == 0
