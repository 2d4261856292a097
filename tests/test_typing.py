"""Static typing: a type checker infers ``Point | None`` from ``TypedArena(Point, n).alloc()``.

Runs ``mypy --strict`` on tests/typing_check.py (every ``assert_type`` there
must hold), on a snippet that must be rejected, and on the library itself as
Linux, macOS and Windows see it (``--platform``). Skipped only when mypy is
not installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

MISUSE = """\
import ctypes
from linalloc import TypedArena

class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double)]

point: Point = TypedArena(Point, 1).alloc()  # may be None: must be rejected
"""


def mypy(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_typed_arena_alloc_is_optional_of_its_type(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    misuse = tmp_path / "misuse.py"
    misuse.write_text(MISUSE)
    proc = mypy("tests/typing_check.py", str(misuse), tmp_path=tmp_path)
    out = proc.stdout
    assert 'note: Revealed type is "typing_check.Point | None"' in out, out
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 1, out  # typing_check.py is clean...
    assert "misuse.py:7: error: Incompatible types in assignment" in errors[0], out
    assert 'expression has type "Point | None", variable has type "Point"' in errors[0], out


@pytest.mark.parametrize("platform", ["linux", "darwin", "win32"])
def test_library_is_strictly_typed_on_every_platform(tmp_path: Path, platform: str) -> None:
    """Checked as each supported system would see it, whatever this one is."""
    pytest.importorskip("mypy")
    proc = mypy("--platform", platform, "linalloc", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success: no issues found" in proc.stdout, proc.stdout
