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
MISUSE = os.path.join(HERE, "test_misuse.py")
#: Misuse batches run under memcheck (about 25 s each there): views outliving an
#: eager arena, drop callbacks keeping values, stale pointers in reused memory.
MISUSE_GROUPS = [
    "outlive[BumpArena]",
    "outlive[TypedArena]",
    "drop[TypedArena]",
    "values[BumpArena]",
]


def memcheck(args: list[str]) -> tuple[subprocess.CompletedProcess[str], int, int]:
    """Run ``python args`` under memcheck: (result, errors, suppressed errors)."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        if not sys.platform.startswith("linux"):
            pytest.skip(f"valgrind memcheck runs on Linux only (this is {sys.platform})")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("valgrind is not installed (.ci/run installs it from Debian packages)")
        pytest.skip("valgrind is not installed")
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
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    summary = re.search(r"ERROR SUMMARY: (\d+) errors .*\(suppressed: (\d+) from", result.stderr)
    assert summary is not None, result.stderr[-3000:]
    return result, int(summary.group(1)), int(summary.group(2))


def test_smoke_has_no_memory_errors() -> None:
    result, errors, suppressed = memcheck([SMOKE])
    print(f"memcheck: {errors} errors ({suppressed} suppressed CPython noise)")
    assert "SMOKE OK" in result.stdout, result.stdout + result.stderr[-5000:]
    assert errors == 0 and result.returncode == 0, result.stderr[-20000:]


def test_memcheck_reports_a_read_of_freed_memory() -> None:
    """Without this, a broken set-up (wrong tool, everything suppressed) would pass."""
    code = (
        "import ctypes; buffer = ctypes.create_string_buffer(64); "
        "where = ctypes.addressof(buffer); del buffer; ctypes.string_at(where, 8)"
    )
    result, errors, _ = memcheck(["-c", code])
    assert result.returncode == 99 and errors >= 1, result.stderr[-5000:]
    assert "Invalid read" in result.stderr


@pytest.fixture(scope="module")
def misuse_runs(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The selected misuse batches under memcheck, two at a time."""
    name = "test_misuse_batch_has_no_memory_errors"
    items = request.session.items
    wanted = {i.callspec.params["group"] for i in items if getattr(i, "originalname", "") == name}
    groups = [group for group in MISUSE_GROUPS if group in wanted]
    with ThreadPoolExecutor(2) as pool:
        return dict(zip(groups, pool.map(lambda g: memcheck([MISUSE, g]), groups)))


@pytest.mark.parametrize("group", MISUSE_GROUPS)
def test_misuse_batch_has_no_memory_errors(misuse_runs: dict[str, Any], group: str) -> None:
    from test_misuse import GROUPS

    result, errors, suppressed = misuse_runs[group]
    print(f"memcheck {group}: {errors} errors ({suppressed} suppressed CPython noise)")
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
