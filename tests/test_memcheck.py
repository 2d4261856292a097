"""The arenas under valgrind memcheck: no invalid read or write, ever.

``tests/memcheck_smoke.py`` exercises all four arenas (allocation, writes and
reads through every kind of view, reset, trim, close, drop callbacks, views
outliving their arena while memory is reused) under
``valgrind --tool=memcheck`` with ``PYTHONMALLOC=malloc`` so that every
Python object is a malloc block memcheck tracks; so do the batches of the
misuse matrix where malloc'ed (eager) arena memory could be read after it
was freed. ``tests/valgrind.supp`` silences CPython's own noise only. One
more run proves the set-up can fail: a read of freed memory must be reported.

valgrind comes from the Debian package (``.ci/run`` installs it). Without it
these tests skip locally and fail in CI on Linux (``CI=true``, which GitHub sets
on every runner). valgrind does not run on Windows nor on current macOS, so
there they skip and say so, CI or not.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SUPPRESSIONS = os.path.join(HERE, "valgrind.supp")
SMOKE = os.path.join(HERE, "memcheck_smoke.py")
MISUSE = os.path.join(HERE, "misuse_cases.py")
#: Misuse batches run under memcheck (25-35 s each there): views outliving an
#: eager arena, drop callbacks keeping values, stale pointers in reused memory.
#: Two batches share an interpreter (each interpreter's start-up under memcheck
#: costs 10 s, numpy's import 5 more): the two with numpy views, and the others.
MISUSE_RUNS = [
    ["outlive[BumpArena]", "outlive[TypedArena]"],
    ["drop[TypedArena]", "values[BumpArena]"],
]
MISUSE_GROUPS = [group for run in MISUSE_RUNS for group in run]
#: A read of freed memory, which memcheck must report.
READ_OF_FREED = (
    "import ctypes; buffer = ctypes.create_string_buffer(64); "
    "where = ctypes.addressof(buffer); del buffer; ctypes.string_at(where, 8)"
)


def valgrind_path() -> str:
    """Where valgrind is; or skip, or fail in CI on Linux, when it is not installed."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        if not sys.platform.startswith("linux"):
            pytest.skip(f"valgrind memcheck runs on Linux only (this is {sys.platform})")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("valgrind is not installed (.ci/run installs it from Debian packages)")
        pytest.skip("valgrind is not installed")
    return valgrind


def memcheck(args: list[str]) -> tuple[subprocess.CompletedProcess[str], int, int]:
    """Run ``python args`` under memcheck: (result, errors, suppressed errors)."""
    valgrind = valgrind_path()
    env = dict(os.environ)
    env["PYTHONMALLOC"] = "malloc"
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    command = [
        valgrind,
        "--tool=memcheck",
        "--error-exitcode=99",
        f"--suppressions={SUPPRESSIONS}",
        "--num-callers=30",
        sys.executable,
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    summary = re.search(r"ERROR SUMMARY: (\d+) errors .*\(suppressed: (\d+) from", result.stderr)
    assert summary is not None, result.stderr[-3000:]
    return result, int(summary.group(1)), int(summary.group(2))


@pytest.fixture(scope="module")
def memcheck_runs(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Every selected run under memcheck, two at a time, the longest first: the misuse
    batches (by group), the smoke run ("smoke") and the read of freed memory ("freed")."""
    valgrind_path()
    names = {getattr(i, "originalname", "") for i in request.session.items}
    wanted = {
        i.callspec.params["group"]
        for i in request.session.items
        if getattr(i, "originalname", "") == "test_misuse_batch_has_no_memory_errors"
    }
    jobs: list[tuple[list[str], list[str]]] = []  # (keys, args)
    for run in MISUSE_RUNS:
        groups = [group for group in run if group in wanted]
        if groups:
            jobs.append((groups, [MISUSE, *groups]))
    if "test_smoke_has_no_memory_errors" in names:
        jobs.append((["smoke"], [SMOKE]))
    if "test_memcheck_reports_a_read_of_freed_memory" in names:
        jobs.append((["freed"], ["-c", READ_OF_FREED]))
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda job: memcheck(job[1]), jobs))
    return {key: result for (keys, _), result in zip(jobs, results) for key in keys}


def test_smoke_has_no_memory_errors(memcheck_runs: dict[str, Any]) -> None:
    result, errors, suppressed = memcheck_runs["smoke"]
    print(f"memcheck: {errors} errors ({suppressed} suppressed CPython noise)")
    assert "SMOKE OK" in result.stdout, result.stdout + result.stderr[-5000:]
    assert errors == 0 and result.returncode == 0, result.stderr[-20000:]


def test_memcheck_reports_a_read_of_freed_memory(memcheck_runs: dict[str, Any]) -> None:
    """Without this, a broken set-up (wrong tool, everything suppressed) would pass."""
    result, errors, _ = memcheck_runs["freed"]
    assert result.returncode == 99 and errors >= 1, result.stderr[-5000:]
    assert "Invalid read" in result.stderr


@pytest.mark.parametrize("group", MISUSE_GROUPS)
def test_misuse_batch_has_no_memory_errors(memcheck_runs: dict[str, Any], group: str) -> None:
    from misuse_cases import GROUPS

    result, errors, suppressed = memcheck_runs[group]
    print(f"memcheck {group}: {errors} errors ({suppressed} suppressed CPython noise)")
    # (the interpreter ran the batch it shares too: DONE last means all of them ran)
    passed = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("PASS ")}
    missing = [name for name in GROUPS[group] if name not in passed]
    assert not missing and result.stdout.rstrip().endswith("DONE"), result.stdout[-5000:]
    assert errors == 0 and result.returncode == 0, result.stderr[-20000:]


@pytest.mark.parametrize(
    ("platform", "outcome"),
    [("linux", pytest.fail.Exception), ("darwin", pytest.skip.Exception)],
)
def test_missing_valgrind_fails_ci_on_linux_only(
    monkeypatch: pytest.MonkeyPatch, platform: str, outcome: type[BaseException]
) -> None:
    """GitHub sets CI=true on every runner: only a Linux one must have valgrind."""
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(sys, "platform", platform)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(outcome, match="valgrind"):
        memcheck(["-c", "pass"])
