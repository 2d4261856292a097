"""The benchmark runner runs and reports well-formed rows (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from linalloc import _bench

ROOT = Path(__file__).resolve().parent.parent
QUICK = ["--quick", "--pairs", "15"]


def rows_of(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_json_rows_are_well_formed(capsys: pytest.CaptureFixture[str], frozen: None) -> None:
    # (``frozen``: the collection before each timed run walks what the figures made)
    names = "typed_alloc,bump_struct,commits_per_MiB_bump"
    assert _bench.main([*QUICK, "--json", "--only", names]) == 0
    rows = rows_of(capsys.readouterr().out)
    assert [row["type"] for row in rows] == ["meta", "figure", "figure", "figure", "summary"]
    meta, *figures, summary = rows
    assert meta["python"] and meta["implementation"] and meta["pairs"] == 15
    assert [row["figure"] for row in figures] == names.split(",")
    for row in figures:
        assert row["ratio"] > 0 and row["a_value"] > 0 and row["b_value"] > 0
        assert row["met"] == (row["ratio"] <= row["goal"])
        assert row["unit"] in ("ns", "calls")
        low, high = row["ratio_quartiles"]
        assert low <= high
    timed = [row for row in figures if row["unit"] == "ns"]
    assert all(row["pairs"] == 15 for row in timed)
    assert summary["goals"] == 3 and 0 <= summary["met"] <= 3 and summary["seconds"] > 0


def test_table_streams_one_row_per_figure(capsys: pytest.CaptureFixture[str], frozen: None) -> None:
    assert _bench.main([*QUICK, "--only", "commits_per_MiB_typed,bump_slice"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("figure"))
    assert lines[header].split()[-1] == "met"
    rows = lines[header + 1 : header + 3]
    assert [row.split()[0] for row in rows] == ["bump_slice", "commits_per_MiB_typed"]
    assert all(row.split()[-1] in ("yes", "NO") or "(" in row for row in rows)
    assert "of 2 goals met" in lines[-1]


def test_list_and_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert _bench.main(["--list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == [fig.name for fig in _bench.FIGURES]
    assert {"typed_alloc", "bump_slice", "reset", "memory", "import"} <= set(listed)
    with pytest.raises(SystemExit):
        _bench.main(["--only", "no_such_figure"])
    with pytest.raises(SystemExit):
        _bench.main(["--pairs", "3"])  # fewer than 15 pairs is refused


def test_every_figure_names_its_goal() -> None:
    for fig in _bench.FIGURES:
        assert fig.name and fig.a and fig.b and callable(fig.measure)
        assert fig.goal is None or fig.goal > 0
    assert len({fig.name for fig in _bench.FIGURES}) == len(_bench.FIGURES)


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "linalloc", "bench"],
        [sys.executable, str(ROOT / "benchmarks" / "run.py")],
    ],
    ids=["python -m linalloc bench", "benchmarks/run.py"],
)
def test_command_line(command: list[str]) -> None:
    proc = subprocess.run(
        [*command, *QUICK, "--json", "--only", "commits_per_MiB_bump", "--strict"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    rows = rows_of(proc.stdout)
    assert rows[1]["figure"] == "commits_per_MiB_bump" and rows[-1]["type"] == "summary"
