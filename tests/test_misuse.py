"""The misuse matrix: every way a careless or hostile caller can hold an arena wrong.

The cases (``tests/misuse_cases.py``) are generated from tables (arena kinds x
view kinds x actions, bad inputs x arenas, drop-callback behaviours x moments)
and run in fresh interpreters, one batch per family and arena kind: each case
prints ``PASS name`` or ``FAIL name`` with its traceback, so a crash (a signal,
a non-zero exit) stops the batch and every case not reported fails the test.
Every case checks the exception type and message and that the arena and the
views it handed out lost nothing.

Run one batch by hand: ``python tests/misuse_cases.py refused[BumpArenaLazy]``
(or ``python tests/test_misuse.py refused[BumpArenaLazy]``).
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from misuse_cases import CASES, GROUPS, KINDS, run_group


@pytest.fixture(scope="module")
def group_runs(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Every selected batch in its own interpreter, two at a time."""
    from conftest import run_python

    items = request.session.items
    wanted = {
        i.callspec.params["group"] for i in items if getattr(i, "originalname", "") == "test_misuse"
    }
    groups = [group for group in GROUPS if group in wanted]

    here = os.path.dirname(os.path.abspath(__file__))

    def run(group: str) -> Any:
        code = f"import sys; sys.path.insert(0, {here!r}); import misuse_cases; "
        code += f"misuse_cases.run_group({group!r})"
        return run_python(code, timeout=300)

    with ThreadPoolExecutor(2) as pool:
        return dict(zip(groups, pool.map(run, groups)))


@pytest.mark.parametrize("group", list(GROUPS))
def test_misuse(group_runs: dict[str, Any], group: str) -> None:
    result = group_runs[group]
    out = result.stdout
    passed = {line.split()[1] for line in out.splitlines() if line.startswith("PASS ")}
    missing = [name for name in GROUPS[group] if name not in passed]
    details = (
        f"exit {result.returncode}, not passed: {missing}\n{out[-6000:]}{result.stderr[-4000:]}"
    )
    assert result.returncode == 0 and out.rstrip().endswith("DONE") and not missing, details


def test_matrix_size() -> None:
    """The matrix covers every family for every arena kind."""
    print(f"misuse matrix: {len(CASES)} cases in {len(GROUPS)} batches")
    families = {group.split("[")[0] for group in GROUPS}
    assert families == {
        "after_close",
        "refused",
        "outlive",
        "threads",
        "copy",
        "layouts",
        "huge",
        "capacity",
        "values",
        "drop",
    }
    for kind in KINDS:
        assert all(
            f"{family}[{kind}]" in GROUPS
            for family in (
                "after_close",
                "refused",
                "outlive",
                "threads",
                "copy",
                "capacity",
                "values",
            )
        )


if __name__ == "__main__":
    run_group(sys.argv[1])
