"""Every example in examples/ and the tour (``python -m linalloc``) run as a user runs them.

Each runs in its own interpreter; the test checks the exit status and the
lines that show the example did its job. No timing is asserted: the speed
lines are only checked to be there and to hold numbers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_python

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
HAS_PROC = os.path.exists("/proc/self/statm")


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python *args`` from the repository root, as a user would type it."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def mib(text: str) -> int:
    return int(text.split()[0])


def test_every_example_is_tested() -> None:
    tested = {
        "quickstart.py",
        "c_interop.py",
        "lazy_terabyte.py",
        "request_scratch.py",
        "numpy_zero_copy.py",
        "scoped_requests.py",
        "growable_buffer.py",
    }
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_quickstart() -> None:
    out = run("examples/quickstart.py").stdout
    assert "number = 42, slice = 00010203..., used = 24" in out
    assert "the slice starts 8 bytes after the number" in out
    assert "value = Point(1.0, 2.0), len = 1" in out
    assert "reset() refused: cannot reset: 1 view of this arena still alive" in out
    assert "after del + reset(): len = 0" in out
    assert "alloc_many(10): Point_Array_10 of 10, len = 10" in out
    assert "alloc_extend: [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)], len = 14" in out
    assert "alloc_extend of a Point * 3 array: y = [1.0, 4.0, 9.0], len = 17" in out
    assert re.search(r"alloc_copy: b'arena\\x00' at 0x[0-9a-f]+, used = 6", out), out


def test_scoped_requests() -> None:
    out = run("examples/scoped_requests.py").stdout
    lines = out.splitlines()
    assert lines[0] == "at start: 3 values live (the price list)"
    # inside the nested scope: price list + order + scratch; after each request: the list only
    assert "    checking: 5 values live (price list, order, scratch)" in lines
    assert "    checking: 7 values live (price list, order, scratch)" in lines
    assert "  order of 2 lines: total 20.00, 0 unknown item(s)" in lines
    assert "  order of 3 lines: total 10.50, 1 unknown item(s)" in lines
    assert lines.count("  after the request: 3 values live") == 2
    refused = next(line for line in lines if line.startswith("  scope exit refused: "))
    assert "cannot rewind to this checkpoint: 1 view of memory allocated after" in refused
    assert "delete them first" in refused
    assert "  nothing was freed: 4 values live; kept: item 2 x 5" in lines
    assert "  cache cleared, rewind accepted: 3 values live" in lines
    assert lines[-1] == "the price list is intact: [(1, 2.5), (2, 4.0), (3, 10.0)]"


def test_growable_buffer() -> None:
    out = run("examples/growable_buffer.py").stdout
    start = re.search(r"^arena buffer: 4 bytes at (0x[0-9a-f]+); C reads b'LOG'$", out, re.M)
    assert start, out
    grown = re.findall(r"^  grown to +(\d+) KiB: (.*), committed (\d+) KiB$", out, re.M)
    assert [int(size) for size, _, _ in grown] == [64, 1024, 16384], out
    assert {same for _, same, _ in grown} == {"same address"}, out
    assert all(int(committed) >= int(size) for size, _, committed in grown), out
    assert "  C's pointer, never updated, still reads b'LOG\\x00'" in out
    assert "  after another allocation, grow(buf) -> None" in out
    assert "  reset() + trim(): 16 MiB given back" in out
    assert "  grow while C holds its address: BufferError: " in out
    assert re.search(r"^  grown to +16384 KiB at 0x[0-9a-f]+: (moved|did not move)", out, re.M)


def test_c_interop() -> None:
    out = run("examples/c_interop.py").stdout
    if "no C library found" not in out:
        before = re.search(r"^before: \[(.*)\]$", out, re.M)
        after = re.search(r"^after: +\[(.*)\]$", out, re.M)
        assert before and after, out
        masses_before = [float(m) for m in before.group(1).split(", ")]
        masses_after = [float(m) for m in after.group(1).split(", ")]
        assert masses_after == sorted(masses_before) != masses_before
    walk = re.findall(r"node at 0x([0-9a-f]+) +value +(\d+) +next -> 0x([0-9a-f]+)", out)
    assert [int(v) for _, v, _ in walk] == [40, 20, 10, 30]
    # each node's next is the address of the node printed after it; the last is NULL
    assert [n for _, _, n in walk] == [a for a, _, _ in walk[1:]] + ["0"]
    assert "the 4 nodes sit in slots [0, 1, 2, 3] of one block, 16 bytes apart" in out


def test_lazy_terabyte() -> None:
    out = run("examples/lazy_terabyte.py").stdout
    assert "reserved 1 TiB" in out, out
    rows = re.findall(r"^ +(\d+) MiB +(\d+) MiB +(\S+(?: MiB)?)$", out, re.M)
    used = [int(u) for u, _, _ in rows]
    committed = [int(c) for _, c, _ in rows]
    assert used == [0, 32, 64, 96, 128, 160, 192, 224, 256, 0]
    assert committed == [0, 32, 64, 96, 128, 160, 192, 224, 256, 0]
    assert "reset() + trim(): 256 MiB given back to the OS" in out
    rss = [r for _, _, r in rows]
    if HAS_PROC:
        first, full, last = mib(rss[0]), mib(rss[-2]), mib(rss[-1])
        assert full - first >= 240, out  # the 256 MiB written are resident
        assert last - first <= 16, out  # and trim() handed them back
    else:
        assert set(rss) == {"n/a"}


def test_request_scratch() -> None:
    out = run("examples/request_scratch.py").stdout
    for label in ("alloc(), set fields", "alloc(x, y)"):
        ratio = re.search(rf"ratio fresh / scratch \({re.escape(label)}\): +(\d+\.\d+)", out)
        assert ratio and float(ratio.group(1)) > 0, out
    assert "<TypedArena of Point len=0 capacity=256 used=0>" in out


def test_numpy_zero_copy() -> None:
    pytest.importorskip("numpy")
    out = run("examples/numpy_zero_copy.py").stdout
    addresses = re.search(r"numpy data at (0x[0-9a-f]+), arena slice at (0x[0-9a-f]+)", out)
    assert addresses and addresses.group(1) == addresses.group(2), out
    assert "sum computed by numpy over arena memory: 249750.0" in out
    assert "reset() while the numpy array is alive: BufferError: cannot reset: 1 view" in out
    assert "del values; reset() accepted, used = 0" in out
    assert "(4.0, -16.0)]" in out


def test_numpy_zero_copy_without_numpy() -> None:
    proc = run_python(
        f"""
        import runpy, sys
        sys.modules["numpy"] = None  # import numpy now raises ImportError
        runpy.run_path({str(EXAMPLES / "numpy_zero_copy.py")!r}, run_name="__main__")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "numpy is not installed: nothing to show (pip install numpy)\n"


TOUR_LINES = [
    "1. BumpArena",
    "alloc(c_uint64)  # aligned to 8      -> 0x",
    "(+8 ) used=16",
    "(+16) used=48",
    "-> None (full: the arena never grows)  used=48",
    "the c_uint64 still reads 42",
    "qsort(arena.as_array(), ...) sorted them in place: [-1.0, 0.0, 2.0, 3.0]",
    "BufferError: cannot reset: 1 view of this arena still alive",
    "del value; arena.reset()  -> accepted, len(arena) = 0",
    "arena = BumpArenaLazy(1 TiB)",
    "touched:  used 64 MiB  committed 64 MiB",
    "reset() + trim() gave 64 MiB back: committed 0 B",
    "TypedArenaLazy(Point, 1 << 30): 16 GiB reserved, 64 KiB committed after one alloc",
]


def test_tour() -> None:
    out = run("-m", "linalloc").stdout
    for line in TOUR_LINES:
        assert line in out, f"missing {line!r} in:\n{out}"
    speed = re.search(r"alloc\(\): (\d+) ns, Point\(\): (\d+) ns \(ratio (\d+\.\d+)\)", out)
    assert speed and float(speed.group(3)) > 0, out
    if HAS_PROC:
        before = re.search(r"before: .* RSS ([\d.]+) MiB", out)
        touched = re.search(r"touched: .* RSS ([\d.]+) MiB", out)
        assert before and touched, out
        assert float(touched.group(1)) - float(before.group(1)) >= 60, out


def test_tour_degrades_politely() -> None:
    """No C library, no /proc, no room for 1 TiB: the tour says so and goes on."""
    proc = run_python(
        """
        import sys
        if sys.platform.startswith("linux"):
            import resource
            resource.setrlimit(resource.RLIMIT_AS, (4 << 30, resource.RLIM_INFINITY))
        from linalloc import _tour
        _tour.load_libc = lambda: None
        _tour.rss_bytes = lambda: None
        sys.exit(_tour.main([]))
        """
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "skipped: no C library with qsort found on this system" in out
    assert "RSS n/a (no /proc/self/statm here)" in out
    assert "committed 64 MiB" in out and "gave 64 MiB back" in out
    assert "ratio" in out
    if sys.platform.startswith("linux"):
        assert "1 TiB refused here" in out and "arena = BumpArenaLazy(1 GiB)" in out


def test_tour_rejects_unknown_arguments() -> None:
    proc = run_python("import sys; from linalloc.__main__ import main; sys.exit(main(['--x']))")
    assert proc.returncode == 2
    assert "unexpected arguments" in proc.stderr


def test_readme_examples() -> None:
    """Every ``>>>`` example in README.md runs and prints what the README shows."""
    proc = run("-m", "doctest", "README.md")
    assert proc.stdout == "", proc.stdout
