"""Leak checks: thousands of create / allocate / close-or-drop cycles of each arena.

Each arena kind runs in a fresh interpreter: a warm-up, a measure, thousands
of cycles, a measure. A cycle creates an arena, fills it (committing several
steps, lazy), writes and reads through views, then either closes it or drops
it while a view still lives and uses that view before letting it go. After
the cycles nothing may remain: not a mapping (``/proc/self/maps`` lines),
not a Python memory block (``sys.getallocatedblocks()``), not the RSS a
cycle used. Linux only (``/proc``).
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import linalloc
from linalloc import Layout

KINDS = ["BumpArena", "BumpArenaLazy", "TypedArena", "TypedArenaLazy"]
MODES = ["close", "drop"]
WARMUP = 300
CYCLES = 3000

# Tolerances, after WARMUP cycles have brought every cache and free list to its
# steady size:
# - maps lines: exact. A leaked reservation or buffer mapping adds a line per
#   cycle (thousands); the allowance of 2 covers glibc splitting or merging the
#   heap mapping when its top moves.
MAPS_SLACK = 2
# - Python memory blocks: a leaked object per cycle adds CYCLES blocks; 200
#   covers interned strings, type caches and free lists still growing a little.
BLOCKS_SLACK = 200
# - RSS: one cycle touches 240-300 KiB, so a leaked arena per cycle would add
#   ~600 MiB, and a leak of 1 KiB per cycle ~3 MiB. 2 MiB covers the noise of
#   malloc's heap top, pymalloc arenas kept for reuse and page-table pages.
RSS_SLACK = 2 << 20


class Block(ctypes.Structure):
    _fields_ = [("n", ctypes.c_int64), ("data", ctypes.c_char * 4088)]


def measure() -> dict[str, int]:
    gc.collect()
    with open("/proc/self/maps") as maps:
        lines = sum(1 for _ in maps)
    with open("/proc/self/statm") as statm:
        resident = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return {"maps": lines, "blocks": sys.getallocatedblocks(), "rss": resident}


def bump_cycle(kind: str, mode: str, k: int) -> None:
    arena = getattr(linalloc, kind)(300_000)
    views = [arena.alloc_uninit_slice(Layout(1000 + k % 7, 8)) for _ in range(50)]
    for k_view in range(len(views)):
        views[k_view][:8] = b"cyclecyc"
    big = arena.alloc_uninit_slice(Layout(200_000, 4096))  # lazy: several commit steps
    big[::4096] = b"\x01" * len(big[::4096])
    number = arena.alloc(ctypes.c_int64)
    number.value = k
    assert all(bytes(view[:8]) == b"cyclecyc" for view in views)
    if mode == "close":
        del views, big, number
        if kind.endswith("Lazy") and k % 2:
            arena.reset()
            arena.trim()
        arena.close()
        return
    del views, big
    del arena  # the value outlives its arena
    assert number.value == k
    number.value = -k


def typed_cycle(kind: str, mode: str, k: int, dropped: list[int]) -> None:
    def drop(block: Block) -> None:
        dropped[0] += 1

    arena = getattr(linalloc, kind)(Block, 80, drop=drop)
    for n in range(60 + k % 10):  # 240-280 KB: lazy, several commit steps
        arena.alloc(n)
    first = next(iter(arena))
    array = arena.as_array()
    array[1].data = b"cycle"
    assert array[0].n == first.n == 0
    if mode == "close":
        del first, array
        arena.close()
        return
    del arena, array
    first.data = b"kept"
    assert first.data == b"kept"
    assert first.n == 0


def main(kind: str, mode: str) -> None:
    """Warm up, measure, run the cycles, measure; print both measures as JSON."""
    dropped = [0]  # values dropped so far

    def run(count: int) -> None:
        for k in range(count):
            if kind.startswith("Typed"):
                typed_cycle(kind, mode, k, dropped)
            else:
                bump_cycle(kind, mode, k)

    run(WARMUP)
    before = measure()
    dropped[0] = 0
    run(CYCLES)
    after = measure()
    expected_drops = sum(60 + k % 10 for k in range(CYCLES)) if kind.startswith("Typed") else 0
    print(json.dumps({"before": before, "after": after, "drops": dropped[0] - expected_drops}))


@pytest.fixture(scope="module")
def leak_runs(request: pytest.FixtureRequest) -> dict[tuple[str, str], Any]:
    """Every selected (kind, mode) in its own interpreter, two at a time."""
    if not os.path.exists("/proc/self/maps"):
        pytest.skip("needs /proc (Linux)")
    from conftest import run_python

    here = os.path.dirname(os.path.abspath(__file__))
    items = [
        i
        for i in request.session.items
        if getattr(i, "originalname", "") == "test_cycles_leave_nothing"
    ]
    wanted = {(i.callspec.params["kind"], i.callspec.params["mode"]) for i in items}
    runs = [(kind, mode) for kind in KINDS for mode in MODES if (kind, mode) in wanted]

    def run(key: tuple[str, str]) -> Any:
        code = f"import sys; sys.path.insert(0, {here!r}); import test_leaks; "
        code += f"test_leaks.main({key[0]!r}, {key[1]!r})"
        return run_python(code, timeout=300)

    with ThreadPoolExecutor(2) as pool:
        return dict(zip(runs, pool.map(run, runs)))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_cycles_leave_nothing(leak_runs: dict[tuple[str, str], Any], kind: str, mode: str) -> None:
    result = leak_runs[(kind, mode)]
    assert result.returncode == 0, result.stdout + result.stderr[-5000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    before, after = found["before"], found["after"]
    grown = {key: after[key] - before[key] for key in before}
    print(f"{kind} {mode}: {CYCLES} cycles, growth {grown}")
    assert found["drops"] == 0, "values not dropped exactly once"
    assert grown["maps"] <= MAPS_SLACK, grown
    assert grown["blocks"] <= BLOCKS_SLACK, grown
    assert grown["rss"] <= RSS_SLACK, grown
