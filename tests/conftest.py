"""Shared fixtures: the eager/lazy arena pairs, subprocess runs, hypothesis profiles."""

from __future__ import annotations

import contextlib
import gc
import inspect
import os
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, settings

import linalloc

# Profiles: "ci" (default) keeps the whole suite within CI's budget; "long" is
# for local runs: HYPOTHESIS_PROFILE=long python -m pytest
settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "long", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Under mutation testing (tools/mutation.sh) every library function is reached
# through a trampoline whose frame holds the call's arguments, so a kept traceback
# holds more views than the library's own frames do.
UNDER_MUTATION = "mutmut" in sys.modules


if UNDER_MUTATION:

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_runtest_teardown(item: pytest.Item) -> Any:
        """No collection while mutmut records which functions a test reached (its stats).

        Its stats hook iterates a set that the library's functions add to as they
        run: a finalizer run by the collector there (a drop callback) would change
        the set during the iteration (``RuntimeError``). Collect first, then hold
        the collector off.
        """
        if os.environ.get("MUTANT_UNDER_TEST") != "stats":
            yield
            return
        gc.collect()
        collecting = gc.isenabled()
        gc.disable()
        try:
            yield
        finally:
            if collecting:
                gc.enable()


#: The test files that take longest, longest first (seconds on CI's 2 cores, most of
#: it in child interpreters: valgrind, hypothesis machines, interrupt sweeps). Each
#: worker takes one file at a time (``--dist=loadfile``): these go first, then the
#: others, most tests first, so that no long file starts last while the other
#: worker has nothing left to do (the valgrind runs alone take 100 s).
LONGEST_FIRST = (
    "test_memcheck.py",
    "test_lazy_reach.py",
    "test_count_side_effects.py",
    "test_safety.py",
    "test_stateful.py",
    "test_stateful_regions.py",
    "test_leaks.py",
    "test_examples.py",
    "test_misuse.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files in the order of :data:`LONGEST_FIRST`, then by number of tests (stable)."""
    per_file: dict[str, int] = {}
    for item in items:
        per_file[item.path.name] = per_file.get(item.path.name, 0) + 1

    def rank(item: pytest.Item) -> tuple[int, int]:
        name = item.path.name
        if name in LONGEST_FIRST:
            return (LONGEST_FIRST.index(name), 0)
        return (len(LONGEST_FIRST), -per_file[name])

    items.sort(key=rank)


BUMP_KINDS = [linalloc.BumpArena, linalloc.BumpArenaLazy]
TYPED_KINDS = [linalloc.TypedArena, linalloc.TypedArenaLazy]


@pytest.fixture(params=BUMP_KINDS, ids=lambda cls: cls.__name__)
def bump_cls(request: pytest.FixtureRequest) -> type:
    """BumpArena and BumpArenaLazy: every untyped test runs against both."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(params=TYPED_KINDS, ids=lambda cls: cls.__name__)
def typed_cls(request: pytest.FixtureRequest) -> type:
    """TypedArena and TypedArenaLazy: every typed test runs against both."""
    return request.param  # type: ignore[no-any-return]


def stable_id(value: object) -> str:
    """A test id for a parameter: its repr, less what differs between runs
    (object addresses), so that a test can be selected again by its id."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(value))


def run_python(
    code: str,
    *,
    timeout: float = 120,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (for anything that could crash).

    Returns the completed process; callers assert on ``returncode`` (a crash
    shows as a negative signal number) and on the output.
    """
    full_env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    full_env["PYTHONPATH"] = root + os.pathsep + full_env.get("PYTHONPATH", "")
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def run_in_thread(fn: Callable[[], object]) -> BaseException | None:
    """Run ``fn`` in a new thread; return the exception it raised, or None."""
    caught: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as exc:
            caught.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    return caught[0] if caught else None


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Leave the objects that exist now out of every garbage collection in the block.

    The library collects when a view seems alive (a refused reset, close or
    rewind), and some tests collect at every step: each such collection walks
    the whole heap, most of it pytest's, hypothesis's and the modules' objects
    (``gc.freeze``). The objects made in the block (the arenas, their views, the
    cycles holding them) are collected as before.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@pytest.fixture
def frozen() -> Iterator[None]:
    """The test runs in ``frozen_heap()``."""
    with frozen_heap():
        yield


def at_line_of(func: Any, text: str, action: Callable[[], object]) -> tuple[Any, list[object]]:
    """A trace function that runs ``action`` once, when ``func`` reaches its line holding
    ``text``; the list gets what it returned, or ``(type name, message)`` of what it raised.

    Skips the test under mutmut, whose trampolines run the library's functions
    from other code objects.
    """
    if UNDER_MUTATION:
        pytest.skip("traces a line of the library: not under mutmut")
    code = func.__code__
    source, start = inspect.getsourcelines(func)
    line = start + next(i for i, t in enumerate(source) if text in t)
    fired: list[object] = []

    def tracer(frame: Any, event: str, arg: object) -> Any:
        if frame.f_code is not code:
            return None
        if event == "line" and frame.f_lineno == line and not fired:
            try:
                fired.append(action())
            except Exception as error:  # (its message only: no frames kept)
                fired.append((type(error).__name__, str(error)))
        return tracer

    return tracer, fired


def traced(tracer: Any, call: Callable[[], object]) -> object:
    """``call()`` with ``tracer`` set as the trace function."""
    sys.settrace(tracer)
    try:
        return call()
    finally:
        sys.settrace(None)


#: For tests that read ``/proc/self/maps`` (Linux only).
needs_maps = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc/self/maps"
)


def mapped(where: int) -> bool:
    """Whether the address ``where`` lies in a mapping of this process (``/proc/self/maps``)."""
    with open("/proc/self/maps", encoding="ascii") as maps:
        for line in maps:
            low, high = (int(part, 16) for part in line.split()[0].split("-"))
            if low <= where < high:
                return True
    return False
