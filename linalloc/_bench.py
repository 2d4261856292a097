"""``python -m linalloc bench``: linalloc against what a Python user does today.

Every figure is a ratio A / B of two pieces of work run side by side in this
process: the median, over at least 15 pairs run A, B, A, B ..., of the ratio
of each pair. Absolute times are printed for orientation only; the machine
may be noisy, the ratios are what the goals bound. Rows stream as they are
measured. ``--quick`` runs in well under a minute, ``--json`` prints one JSON
object per line (a ``meta`` line, one ``figure`` line per row, a ``summary``
line), ``--only NAME[,NAME...]`` runs some figures (``--list`` names them).

Timed loops are generated code: the statement under test is repeated ten
times per loop iteration, with every name it uses a local variable, so that
A and B pay the same (small) loop overhead. The garbage collector stays as a
Python user has it (enabled), and is run before each timed piece of work.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, Callable

import linalloc
from linalloc import (
    BumpArena,
    BumpArenaLazy,
    Layout,
    TypedArena,
    TypedArenaLazy,
)

__all__ = ["FIGURES", "Point", "main"]


class Point(ctypes.Structure):
    """The benchmark value: two doubles and an int32 (24 bytes)."""

    _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double), ("z", ctypes.c_int32)]


SIZE = ctypes.sizeof(Point)
UNROLL = 10
_perf = time.perf_counter


@dataclass
class Config:
    """How much work each figure does."""

    quick: bool
    pairs: int

    def scale(self, full: int, quick: int) -> int:
        return quick if self.quick else full


@dataclass
class Result:
    """One measured figure."""

    ratio: float
    a: float  # median per-operation value of A (ns, bytes, ms or a count)
    b: float
    unit: str  # unit of ``a`` and ``b``
    pairs: int
    note: str = ""
    spread: tuple[float, float] = (0.0, 0.0)  # quartiles of the ratios


@dataclass
class Figure:
    """A row of the table: what A and B are, the goal, and how to measure it."""

    name: str
    a: str
    b: str
    goal: float | None  # the ratio must be <= goal; None: printed for information
    measure: Callable[[Config], Result]
    group: str = "figure"
    tags: tuple[str, ...] = field(default_factory=tuple)


# -- timing helpers ----------------------------------------------------------


def _compile_loop(stmt: str, names: Sequence[str]) -> Callable[..., float]:
    """A function ``run(n, *values)`` timing ``n * UNROLL`` executions of ``stmt``.

    The names ``stmt`` uses are the function's parameters, so they are locals.
    """
    params = ", ".join(["n", *names])
    body = "".join(f"        {stmt}\n" for _ in range(UNROLL))
    src = (
        f"def run({params}):\n"
        "    t0 = _perf()\n"
        "    for _ in _repeat(None, n):\n"
        f"{body}"
        "    return _perf() - t0\n"
    )
    namespace: dict[str, Any] = {"_perf": _perf, "_repeat": repeat}
    exec(compile(src, f"<bench: {stmt}>", "exec"), namespace)
    run: Callable[..., float] = namespace["run"]
    return run


_SECONDS = {"ns": 1e9, "us": 1e6, "ms": 1e3}  # units of time: from seconds


def _paired(
    run_a: Callable[[], float],
    run_b: Callable[[], float],
    pairs: int,
    per_run: float = 1.0,
    unit: str = "ns",
    warmup: int = 2,
) -> Result:
    """Run A, B, A, B ... ``pairs`` times; the median ratio and per-op medians.

    ``run_a``/``run_b`` do their own untimed set-up and return the timed
    seconds (or any other measured quantity); ``per_run`` divides them into
    per-operation values.
    """
    scale = _SECONDS.get(unit, 1.0) / per_run
    for _ in range(warmup):  # let the specializing interpreter settle
        run_a()
        run_b()
    ratios: list[float] = []
    a_values: list[float] = []
    b_values: list[float] = []
    for _ in range(pairs):
        gc.collect()
        a = run_a()
        gc.collect()
        b = run_b()
        ratios.append(a / b)
        a_values.append(a * scale)
        b_values.append(b * scale)
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    return Result(
        ratio=statistics.median(ratios),
        a=statistics.median(a_values),
        b=statistics.median(b_values),
        unit=unit,
        pairs=pairs,
        spread=(quartiles[0], quartiles[2]),
    )


def _calls(cfg: Config, full: int, quick: int) -> int:
    """Loop iterations for ``full``/``quick`` operations per timed run."""
    return max(1, cfg.scale(full, quick) // UNROLL)


# -- the allocation figures --------------------------------------------------


def _alloc_pair(
    cfg: Config,
    make_arena: Callable[[int], Any],
    stmt_a: str,
    stmt_b: str,
    b_value: Any,
    extra: Any = None,
    fresh: bool = False,
    per_stmt: int = 1,
    full: int = 100_000,
    quick: int = 30_000,
) -> Result:
    """A: ``stmt_a`` on an arena (``arena``, ``arg``); B: ``stmt_b`` (``new``, ``arg``).

    The arena is reset before each timed run (or, with ``fresh``, a new one is
    made: then lazy arenas commit during the timed run, as they do in use).
    Each statement makes ``per_stmt`` values; figures are per value, and the
    arena holds the values of a whole run.
    """
    iters = _calls(cfg, full, quick)
    ops = iters * UNROLL * per_stmt
    loop_a = _compile_loop(stmt_a, ["arena", "arg"])
    loop_b = _compile_loop(stmt_b, ["new", "arg"])
    holder: list[Any] = [make_arena(ops)]

    def run_a() -> float:
        if fresh:
            holder[0] = None
            holder[0] = make_arena(ops)
        else:
            holder[0].reset()
        return loop_a(iters, holder[0], extra)

    def run_b() -> float:
        return loop_b(iters, b_value, extra)

    return _paired(run_a, run_b, cfg.pairs, per_run=ops)


def _typed_alloc(cfg: Config) -> Result:
    return _alloc_pair(cfg, lambda n: TypedArena(Point, n), "arena.alloc()", "new()", Point)


def _typed_alloc_unchecked(cfg: Config) -> Result:
    return _alloc_pair(
        cfg,
        lambda n: TypedArena(Point, n, check_thread=False),
        "arena.alloc()",
        "new()",
        Point,
    )


def _typed_alloc_args(cfg: Config) -> Result:
    return _alloc_pair(
        cfg, lambda n: TypedArena(Point, n), "arena.alloc(1.0, 2.0, 3)", "new(1.0, 2.0, 3)", Point
    )


def _bump_slice(cfg: Config) -> Result:
    return _alloc_pair(
        cfg,
        lambda n: BumpArena(n * 24),
        "arena.alloc_uninit_slice(arg)",
        "new(24)",
        ctypes.create_string_buffer,
        extra=Layout(24, 8),
    )


def _bump_struct(cfg: Config) -> Result:
    return _alloc_pair(
        cfg, lambda n: BumpArena(n * SIZE), "arena.alloc(arg)", "new()", Point, extra=Point
    )


def _request_cycle(cfg: Config) -> Result:
    """10k values made, held in a list, dropped; the arena is then reset."""
    count = 10_000
    cycles = cfg.scale(8, 3)
    rng = range(count)
    arena = TypedArena(Point, count)

    def run_a() -> float:
        t0 = _perf()
        for _ in range(cycles):
            alloc = arena.alloc
            values = [alloc() for _ in rng]
            del values
            arena.reset()
        return _perf() - t0

    def run_b() -> float:
        t0 = _perf()
        for _ in range(cycles):
            new = Point
            values = [new() for _ in rng]
            del values
        return _perf() - t0

    return _paired(run_a, run_b, cfg.pairs, per_run=cycles, unit="ms")


# -- bulk allocation, scopes, growing in place --------------------------------


def _alloc_many(n: int) -> Callable[[Config], Result]:
    """Per value: ``alloc_many(n)`` / ``[Point() for _ in range(n)]``."""

    def measure(cfg: Config) -> Result:
        full, quick = (100_000, 30_000) if n < 100 else (1000, 300)
        return _alloc_pair(
            cfg,
            lambda k: TypedArena(Point, k),
            f"arena.alloc_many({n})",
            "[new() for _ in arg]",
            Point,
            extra=range(n),
            per_stmt=n,
            full=full,
            quick=quick,
        )

    return measure


def _alloc_extend(cfg: Config) -> Result:
    """``alloc_extend`` of a ``Point * 1000`` array / ``(Point * 1000).from_buffer_copy``."""
    n = 1000
    source = (Point * n)()
    for k in range(n):
        source[k].x = k
    return _alloc_pair(
        cfg,
        lambda k: TypedArena(Point, k),
        "arena.alloc_extend(arg)",
        "new.from_buffer_copy(arg)",
        Point * n,
        extra=source,
        per_stmt=n,
        full=1000,
        quick=300,
    )


def _scoped_values(arena: Any, rng: range) -> None:
    with arena.scope():
        alloc = arena.alloc
        values = [alloc() for _ in rng]
        del values


def _listed_values(new: Any, rng: range) -> list[Any]:
    return [new() for _ in rng]


def _scope(cfg: Config) -> Result:
    """``with arena.scope():`` 1000 ``alloc()`` in a list / 1000 ``Point()`` in a list."""
    n = 1000
    rng = range(n)
    iters = _calls(cfg, 1000, 300)
    arena = TypedArena(Point, n)  # the scope frees the values: 1000 slots are enough
    loop = _compile_loop("work(arena, arg)", ["work", "arena", "arg"])
    return _paired(
        lambda: loop(iters, _scoped_values, arena, rng),
        lambda: loop(iters, _listed_values, Point, rng),
        cfg.pairs,
        per_run=iters * UNROLL * n,
    )


def _grow(cfg: Config) -> Result:
    """One 4 KiB ``grow()`` of a lazy buffer already 256 MiB long / one already 1 MiB long."""
    step = 4096
    iters = _calls(cfg, 2000, 1000)
    reach = iters * UNROLL * step  # what one run adds
    loop = _compile_loop("arg = grow(arg, arg.nbytes + step)", ["grow", "arg", "step"])

    def make(start: int) -> Callable[[], float]:
        arena = BumpArenaLazy(start + reach + (1 << 20))

        def run() -> float:
            arena.reset()
            view = arena.alloc_uninit_slice(Layout(start))
            return float(loop(iters, arena.grow, view, step))

        return run

    return _paired(make(256 << 20), make(1 << 20), cfg.pairs, per_run=iters * UNROLL)


def _lazy_pair(
    cfg: Config, lazy: Callable[[int], Any], eager: Callable[[int], Any], stmt: str, arg: Any
) -> Result:
    """The same work on a fresh lazy arena (A) and a fresh eager one (B)."""
    iters = _calls(cfg, 100_000, 30_000)
    ops = iters * UNROLL
    loop = _compile_loop(stmt, ["arena", "arg"])
    holder: list[Any] = [None]

    def run(make: Callable[[int], Any]) -> float:
        holder[0] = None
        holder[0] = make(ops)
        return loop(iters, holder[0], arg)

    return _paired(lambda: run(lazy), lambda: run(eager), cfg.pairs, per_run=ops)


def _lazy_typed(cfg: Config) -> Result:
    return _lazy_pair(
        cfg,
        lambda n: TypedArenaLazy(Point, n),
        lambda n: TypedArena(Point, n),
        "arena.alloc()",
        None,
    )


def _lazy_bump_slice(cfg: Config) -> Result:
    return _lazy_pair(
        cfg,
        lambda n: BumpArenaLazy(n * 24),
        lambda n: BumpArena(n * 24),
        "arena.alloc_uninit_slice(arg)",
        Layout(24, 8),
    )


def _lazy_bump_struct(cfg: Config) -> Result:
    return _lazy_pair(
        cfg,
        lambda n: BumpArenaLazy(n * 24),
        lambda n: BumpArena(n * 24),
        "arena.alloc(arg)",
        Point,
    )


def _fill(arena: Any, n: int) -> None:
    alloc = arena.alloc
    for _ in repeat(None, n):
        alloc()


def _reset(cfg: Config) -> Result:
    """reset() of an arena that held 1M values / del of a list of 1M Point()."""
    count = 1_000_000
    arena = TypedArena(Point, count)

    def run_a() -> float:
        _fill(arena, count)
        t0 = _perf()
        arena.reset()
        return _perf() - t0

    def run_b() -> float:
        values = [Point() for _ in range(count)]
        t0 = _perf()
        del values
        return _perf() - t0

    return _paired(run_a, run_b, cfg.pairs, unit="ms", warmup=1)


def _memory(cfg: Config) -> Result:
    """tracemalloc bytes: a TypedArena holding 200k Points / a list of 200k Point()."""
    count = 200_000

    def traced(make: Callable[[], Any]) -> float:
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            kept = make()
            after = tracemalloc.get_traced_memory()[0]
            del kept
        finally:
            tracemalloc.stop()
        return float(after - before)

    def arena() -> Any:
        made = TypedArena(Point, count)
        _fill(made, count)
        return made

    def points() -> Any:
        return [Point() for _ in range(count)]

    result = _paired(
        lambda: traced(arena), lambda: traced(points), cfg.pairs, unit="MB", per_run=1e6, warmup=0
    )
    return result


def _import(cfg: Config) -> Result:
    """Start-up: import linalloc and use a lazy arena / import ctypes and mmap and map."""
    code_a = (
        "import linalloc; a = linalloc.BumpArenaLazy(1 << 20); "
        "a.alloc_uninit_slice(linalloc.Layout(64, 8))"
    )
    code_b = "import ctypes, mmap; mmap.mmap(-1, 1 << 20)"
    env = dict(os.environ)
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(linalloc.__file__)))
    env["PYTHONPATH"] = package_parent + os.pathsep + env.get("PYTHONPATH", "")
    # As for a user: bytecode is cached (the warm-up runs write it if need be).
    env.pop("PYTHONDONTWRITEBYTECODE", None)

    def run(code: str) -> float:
        t0 = _perf()
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
        return _perf() - t0

    result = _paired(lambda: run(code_a), lambda: run(code_b), cfg.pairs, unit="ms", warmup=2)
    result.note = _abi_module_note()
    return result


def _abi_module_note() -> str:
    """Whether this linalloc carries its generated cffi module (an installed one does)."""
    import importlib.util

    from . import _decls

    name = _decls.module_name()
    if importlib.util.find_spec(f"{__package__}.{name}") is not None:
        return "cffi module bundled"
    return "source checkout: cffi module from the user cache, platformdirs imported"


# -- scaling -----------------------------------------------------------------


def _fill_level(level: float) -> Callable[[Config], Result]:
    """alloc() at ``level`` fill (A) against alloc() on an empty arena (B)."""

    def measure(cfg: Config) -> Result:
        capacity = cfg.scale(1_000_000, 200_000)
        window = capacity // 100  # the last 1%
        iters = max(1, window // UNROLL)
        loop = _compile_loop("arena.alloc()", ["arena", "arg"])
        arena = TypedArena(Point, capacity)

        def run(fill: int) -> float:
            arena.reset()
            _fill(arena, fill)
            return loop(iters, arena, None)

        filled = int(capacity * level)
        return _paired(lambda: run(filled), lambda: run(0), cfg.pairs, per_run=iters * UNROLL)

    return measure


def _capacity(kind: str, nbytes: int) -> Callable[[Config], Result]:
    """Allocation cost in a lazy arena of ``nbytes`` (A) against one of 1 KiB (B).

    Each timed round makes 32 allocations (they fit in 1 KiB) and resets.
    """

    def measure(cfg: Config) -> Result:
        rounds = cfg.scale(2000, 500)
        per_round = 32
        if kind == "typed":

            def make(n: int) -> Any:
                return TypedArenaLazy(Point, n // ctypes.sizeof(Point))

            stmt, arg = "arena.alloc()", None
        else:

            def make(n: int) -> Any:
                return BumpArenaLazy(n)

            stmt, arg = "arena.alloc_uninit_slice(arg)", Layout(24, 8)
        body = "".join(f"        {stmt}\n" for _ in range(per_round))
        src = (
            "def run(arena, arg, rounds):\n"
            "    reset = arena.reset\n"
            "    t0 = _perf()\n"
            "    for _ in _repeat(None, rounds):\n"
            f"{body}"
            "        reset()\n"
            "    return _perf() - t0\n"
        )
        namespace: dict[str, Any] = {"_perf": _perf, "_repeat": repeat}
        exec(compile(src, "<bench: capacity>", "exec"), namespace)
        loop = namespace["run"]
        big, small = make(nbytes), make(1024)
        return _paired(
            lambda: loop(big, arg, rounds),
            lambda: loop(small, arg, rounds),
            cfg.pairs,
            per_run=rounds * per_round,
        )

    return measure


def _reset_scaling(cfg: Config) -> Result:
    """reset() after 1M values (A) against reset() after 1k values (B)."""
    big_n, small_n = 1_000_000, 1_000
    big, small = TypedArena(Point, big_n), TypedArena(Point, small_n)

    def run(arena: Any, n: int) -> float:
        _fill(arena, n)
        t0 = _perf()
        arena.reset()
        return _perf() - t0

    return _paired(
        lambda: run(big, big_n), lambda: run(small, small_n), cfg.pairs, unit="us", warmup=1
    )


class _CountingVM:
    """Wraps the platform VM object and counts commit calls."""

    def __init__(self, vm: Any) -> None:
        self.vm = vm
        self.commits = 0

    def commit(self, addr: int, size: int) -> Any:
        self.commits += 1
        return self.vm.commit(addr, size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.vm, name)


def _commits(kind: str) -> Callable[[Config], Result]:
    """Commit system calls per MiB allocated in a lazy arena (a count, not a ratio)."""

    def measure(cfg: Config) -> Result:
        from . import _vm

        mib = cfg.scale(64, 16)
        vm = _vm.get()
        counting = _CountingVM(vm)
        if kind == "typed":
            arena: Any = TypedArenaLazy(Point, (mib << 20) // ctypes.sizeof(Point))
        else:
            arena = BumpArenaLazy(mib << 20)
        arena._store.vm = counting  # count the calls of this one arena's store
        try:
            if kind == "typed":
                _fill(arena, (mib << 20) // ctypes.sizeof(Point))
            else:
                layout = Layout(24, 8)
                alloc = arena.alloc_uninit_slice
                for _ in repeat(None, (mib << 20) // 24):
                    alloc(layout)
        finally:
            arena._store.vm = vm
        per_mib = counting.commits / mib
        step = arena.commit_step
        return Result(
            ratio=per_mib,
            a=per_mib,
            b=(1 << 20) / step,
            unit="calls",
            pairs=1,
            note=f"commit_step {step // 1024} KiB",
        )

    return measure


FIGURES: list[Figure] = [
    Figure("typed_alloc", "TypedArena(Point, n).alloc()", "Point()", 2.5, _typed_alloc),
    Figure(
        "typed_alloc_unchecked",
        "same, check_thread=False",
        "Point()",
        1.5,
        _typed_alloc_unchecked,
    ),
    Figure("typed_alloc_args", "alloc(1.0, 2.0, 3)", "Point(1.0, 2.0, 3)", 2.0, _typed_alloc_args),
    Figure(
        "request_cycle",
        "10k alloc() in a list, del, reset()",
        "10k Point() in a list, del",
        2.0,
        _request_cycle,
    ),
    Figure(
        "bump_slice",
        "BumpArena.alloc_uninit_slice(Layout(24, 8))",
        "create_string_buffer(24)",
        1.0,
        _bump_slice,
    ),
    Figure("bump_struct", "BumpArena.alloc(Point)", "Point()", 3.0, _bump_struct),
    Figure(
        "alloc_many_1000",
        "alloc_many(1000), per value",
        "[Point() for _ in range(1000)]",
        0.05,
        _alloc_many(1000),
    ),
    Figure(
        "alloc_many_10",
        "alloc_many(10), per value",
        "[Point() for _ in range(10)]",
        2.0,
        _alloc_many(10),
    ),
    Figure(
        "alloc_extend",
        "alloc_extend(Point * 1000 array)",
        "(Point * 1000).from_buffer_copy",
        1.5,
        _alloc_extend,
    ),
    Figure(
        "scope_1000",
        "with scope(): 1000 alloc() in a list",
        "[Point() for _ in range(1000)]",
        2.5,
        _scope,
    ),
    Figure("lazy_typed_alloc", "TypedArenaLazy.alloc()", "TypedArena.alloc()", 1.15, _lazy_typed),
    Figure(
        "lazy_bump_slice",
        "BumpArenaLazy.alloc_uninit_slice",
        "BumpArena.alloc_uninit_slice",
        1.15,
        _lazy_bump_slice,
    ),
    Figure(
        "lazy_bump_struct",
        "BumpArenaLazy.alloc(Point)",
        "BumpArena.alloc(Point)",
        1.15,
        _lazy_bump_struct,
    ),
    Figure("reset", "reset() after 1M values", "del list of 1M Point()", 0.05, _reset),
    Figure("memory", "TypedArena of 200k Point", "list of 200k Point()", 0.2, _memory),
    Figure(
        "import",
        "import linalloc, lazy arena, alloc",
        "import ctypes, mmap; mmap.mmap",
        1.3,
        _import,
    ),
    Figure(
        "fill_50", "alloc() at 50% fill", "alloc() at 0% fill", 1.2, _fill_level(0.5), "scaling"
    ),
    Figure(
        "fill_99", "alloc() at 99% fill", "alloc() at 0% fill", 1.2, _fill_level(0.99), "scaling"
    ),
    Figure(
        "capacity_1MiB",
        "TypedArenaLazy 1 MiB alloc()",
        "TypedArenaLazy 1 KiB alloc()",
        1.2,
        _capacity("typed", 1 << 20),
        "scaling",
    ),
    Figure(
        "capacity_1GiB",
        "TypedArenaLazy 1 GiB alloc()",
        "TypedArenaLazy 1 KiB alloc()",
        1.2,
        _capacity("typed", 1 << 30),
        "scaling",
    ),
    Figure(
        "capacity_1TiB",
        "TypedArenaLazy 1 TiB alloc()",
        "TypedArenaLazy 1 KiB alloc()",
        1.2,
        _capacity("typed", 1 << 40),
        "scaling",
    ),
    Figure(
        "capacity_1TiB_bump",
        "BumpArenaLazy 1 TiB alloc_uninit_slice",
        "BumpArenaLazy 1 KiB alloc_uninit_slice",
        1.2,
        _capacity("bump", 1 << 40),
        "scaling",
    ),
    Figure(
        "grow_256MiB",
        "grow() by 4 KiB, lazy buffer at 256 MiB",
        "the same at 1 MiB",
        1.3,
        _grow,
        "scaling",
    ),
    Figure(
        "reset_1M_vs_1k",
        "reset() after 1M values",
        "reset() after 1k values",
        None,
        _reset_scaling,
        "scaling",
    ),
    Figure(
        "commits_per_MiB_typed",
        "commit calls per MiB, TypedArenaLazy",
        "1 MiB / commit_step",
        1 << 20 >> 16,
        _commits("typed"),
        "scaling",
    ),
    Figure(
        "commits_per_MiB_bump",
        "commit calls per MiB, BumpArenaLazy",
        "1 MiB / commit_step",
        1 << 20 >> 16,
        _commits("bump"),
        "scaling",
    ),
]


# -- output ------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """The machine and interpreter the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "linalloc": linalloc.__version__,
    }


def _format_value(value: float, unit: str) -> str:
    if unit == "calls":
        return f"{value:.1f}"
    if value >= 100:
        return f"{value:.0f} {unit}"
    if value >= 10:
        return f"{value:.1f} {unit}"
    return f"{value:.3g} {unit}"


_HEADER = f"{'figure':<22} {'A':<44} {'B':<30} {'A':>10} {'B':>10} {'A/B':>8} {'goal':>7}  met"


def _row_text(fig: Figure, res: Result) -> str:
    goal = "-" if fig.goal is None else f"<={fig.goal:g}"
    met = "-" if fig.goal is None else ("yes" if res.ratio <= fig.goal else "NO")
    ratio = f"{res.ratio:.1f}" if res.unit == "calls" else f"{res.ratio:.3g}"
    line = (
        f"{fig.name:<22} {fig.a[:44]:<44} {fig.b[:30]:<30} "
        f"{_format_value(res.a, res.unit):>10} {_format_value(res.b, res.unit):>10} "
        f"{ratio:>8} {goal:>7}  {met}"
    )
    return line + (f"  ({res.note})" if res.note else "")


def _row_json(fig: Figure, res: Result) -> dict[str, Any]:
    return {
        "type": "figure",
        "figure": fig.name,
        "group": fig.group,
        "a": fig.a,
        "b": fig.b,
        "ratio": res.ratio,
        "ratio_quartiles": list(res.spread),
        "a_value": res.a,
        "b_value": res.b,
        "unit": res.unit,
        "pairs": res.pairs,
        "goal": fig.goal,
        "met": None if fig.goal is None else res.ratio <= fig.goal,
        "note": res.note,
    }


def select(only: str | None) -> list[Figure]:
    """The figures named in ``only`` (comma-separated), in table order; all if None."""
    if not only:
        return list(FIGURES)
    wanted = [name.strip() for name in only.split(",") if name.strip()]
    known = {fig.name for fig in FIGURES}
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise SystemExit(f"unknown figure(s): {', '.join(unknown)}; --list shows the names")
    return [fig for fig in FIGURES if fig.name in wanted]


def run(figures: Sequence[Figure], cfg: Config) -> Iterator[tuple[Figure, Result]]:
    """Measure ``figures`` one by one."""
    for fig in figures:
        yield fig, fig.measure(cfg)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; returns the process exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m linalloc bench",
        description="linalloc's figures: median ratios of paired runs A / B with their goals.",
    )
    parser.add_argument("--quick", action="store_true", help="less work per run (under a minute)")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    parser.add_argument("--only", metavar="NAMES", help="comma-separated figure names")
    parser.add_argument("--pairs", type=int, default=None, help="paired runs per figure (>= 15)")
    parser.add_argument("--list", action="store_true", help="list the figures and exit")
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 if a goal is not met"
    )
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.list:
        for fig in FIGURES:
            goal = "-" if fig.goal is None else f"<= {fig.goal:g}"
            print(f"{fig.name:<24} {goal:>8}  {fig.a} / {fig.b}")
        return 0
    pairs = args.pairs if args.pairs is not None else (15 if args.quick else 31)
    if pairs < 15:
        parser.error("--pairs must be at least 15")
    figures = select(args.only)
    cfg = Config(quick=args.quick, pairs=pairs)
    info = machine_info()
    start = _perf()
    if args.json:
        print(json.dumps({"type": "meta", **info, "quick": args.quick, "pairs": pairs}))
    else:
        print(
            f"linalloc {info['linalloc']} on {info['implementation']} {info['python']}, "
            f"{info['cpu']} x{info['cpus']}, {info['platform']}"
        )
        print(f"each figure: median of {pairs} paired runs A, B in this process\n")
        print(_HEADER)
    sys.stdout.flush()
    met = total = 0
    for fig, res in run(figures, cfg):
        if fig.goal is not None:
            total += 1
            met += res.ratio <= fig.goal
        if args.json:
            print(json.dumps(_row_json(fig, res)))
        else:
            print(_row_text(fig, res))
        sys.stdout.flush()
    seconds = _perf() - start
    if args.json:
        print(json.dumps({"type": "summary", "met": met, "goals": total, "seconds": seconds}))
    else:
        print(f"\n{met} of {total} goals met in {seconds:.0f} s")
    return 1 if args.strict and met < total else 0
