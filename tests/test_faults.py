"""The operating system says no: refused reservations, commits and decommits.

Real refusals come from resource limits set inside a fresh interpreter:
``RLIMIT_AS`` caps the address space (so a 1 TiB reservation fails with ENOMEM),
and Linux counts memory that ``mprotect`` turns writable against ``RLIMIT_DATA``
(so a lowered limit makes a commit fail with ENOMEM). A refused decommit, which
no limit can provoke, is simulated by a platform layer that reports an error.
The real refusals need Linux (``resource`` is POSIX only, ``/proc/self/status``
Linux only, and only Linux counts committed memory against ``RLIMIT_DATA``):
those tests skip elsewhere and say so; the simulated ones run everywhere.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
import textwrap
import warnings
from typing import Any

import pytest
from conftest import run_python

import linalloc
from linalloc import BumpArenaLazy, Layout, TypedArenaLazy

PRELUDE = """
import ctypes, errno, resource
import linalloc
from linalloc import BumpArenaLazy, Layout, TypedArenaLazy, address

MiB = 1 << 20

def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024

def map_lines():
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)

def limit_data(extra):
    \"\"\"Allow only ``extra`` more bytes of writable private memory.\"\"\"
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    resource.setrlimit(resource.RLIMIT_DATA, (status("VmData") + extra, hard))
    return soft, hard
"""


#: For the tests that provoke real refusals with resource limits (Linux only).
needs_linux_limits = pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="real refusals come from RLIMIT_AS/RLIMIT_DATA and /proc/self/status (Linux only)",
)


def run_checked(code: str) -> str:
    proc = run_python(PRELUDE + textwrap.dedent(code))
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@needs_linux_limits
def test_refused_reservation_raises_enomem_and_smaller_arenas_still_work() -> None:
    out = run_checked(
        """
        BumpArenaLazy(1).close()  # load the platform layer before limiting
        lines = map_lines()
        resource.setrlimit(resource.RLIMIT_AS, (status("VmSize") + (4 << 30), -1))
        for make in (
            lambda: BumpArenaLazy(1 << 40),
            lambda: TypedArenaLazy(ctypes.c_double, 1 << 37),
        ):
            try:
                make()
            except OSError as exc:
                assert exc.errno == errno.ENOMEM, exc
                assert not isinstance(exc, MemoryError)
            else:
                raise AssertionError("a 1 TiB reservation under a 4 GiB RLIMIT_AS succeeded")
        assert map_lines() == lines  # nothing left behind

        small = BumpArenaLazy(1 << 30)
        view = small.alloc_uninit_slice(Layout(3 * MiB))
        ctypes.memset(address(view), 1, len(view))
        typed = TypedArenaLazy(ctypes.c_double, 1 << 20)
        assert typed.alloc(1.5).value == 1.5
        print(bytes(view[:2]).hex(), small.committed >= 3 * MiB)
        """
    )
    assert out.split() == ["0101", "True"]


@needs_linux_limits
def test_refused_commit_returns_none_and_changes_nothing() -> None:
    out = run_checked(
        """
        arena = BumpArenaLazy(1 << 30)
        first = arena.alloc_uninit_slice(Layout(100))
        first[:] = b"a" * 100
        value = arena.alloc(ctypes.c_int64)
        value.value = -42

        saved = limit_data(8 * MiB)
        views = []
        while True:
            used, committed = arena.used, arena.committed
            view = arena.alloc_uninit_slice(Layout(MiB))
            if view is None:
                break
            view[:1] = bytes([len(views) % 256])
            views.append(view)
            assert len(views) < 64, "the data limit never refused a commit"
        assert arena.last_os_error_code == errno.ENOMEM
        assert (arena.used, arena.committed) == (used, committed)
        # the other allocation calls fail the same way, changing nothing
        assert arena.alloc_array(ctypes.c_char, MiB) is None
        assert arena.alloc(ctypes.c_char * (2 * MiB)) is None
        assert (arena.used, arena.committed) == (used, committed)
        # every earlier view is intact and still writable
        assert bytes(first) == b"a" * 100 and value.value == -42
        assert [v[0] for v in views] == [k % 256 for k in range(len(views))]
        views[-1][-1] = 9

        resource.setrlimit(resource.RLIMIT_DATA, saved)
        more = arena.alloc_uninit_slice(Layout(MiB))
        assert more is not None and address(more) == address(views[-1]) + MiB
        more[-1] = 1
        assert arena.used == used + MiB and arena.committed >= arena.used
        assert arena.last_os_error_code == errno.ENOMEM  # the last failed commit
        print(len(views))
        """
    )
    assert int(out) >= 1


@needs_linux_limits
def test_refused_commit_in_a_typed_arena() -> None:
    out = run_checked(
        """
        Page = ctypes.c_uint8 * 65536
        arena = TypedArenaLazy(Page, 1 << 14)  # 1 GiB
        first = arena.alloc_raw(Page(*range(256)))

        saved = limit_data(4 * MiB)
        kept = []
        while True:
            n, committed = len(arena), arena.committed
            value = arena.alloc(*([len(kept) % 256] * 8))
            if value is None:
                break
            kept.append(value)
            assert len(kept) < 256, "the data limit never refused a commit"
        assert arena.last_os_error_code == errno.ENOMEM
        assert (len(arena), arena.committed) == (n, committed)
        assert arena.alloc_raw(Page()) is None
        assert (len(arena), arena.committed) == (n, committed)
        assert list(first[:256]) == list(range(256))
        assert [v[7] for v in kept] == [k % 256 for k in range(len(kept))]

        resource.setrlimit(resource.RLIMIT_DATA, saved)
        again = arena.alloc(5)
        assert again is not None and again[0] == 5 and len(arena) == n + 1
        assert ctypes.addressof(again) == ctypes.addressof(first) + n * 65536
        print(len(kept))
        """
    )
    assert int(out) >= 1


class _RefusingVM:
    """Wraps the real platform layer; decommit or commit report ``code``."""

    def __init__(self, real: Any, code: int, refuse: str) -> None:
        self._real, self._code, self._refuse = real, code, refuse
        self.page_size = real.page_size

    def __getattr__(self, name: str) -> Any:
        if name == self._refuse:
            return lambda addr, size: self._code
        return getattr(self._real, name)


def test_refused_decommit_raises_and_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    real = linalloc._vm.get()
    monkeypatch.setattr(linalloc._vm, "get", lambda: _RefusingVM(real, errno.EINVAL, "decommit"))
    arena = BumpArenaLazy(1 << 24)
    view = arena.alloc_uninit_slice(Layout(3 * arena.commit_step))
    del view
    arena.reset()
    committed = arena.committed
    with pytest.raises(OSError) as info:
        arena.trim()
    assert info.value.errno == errno.EINVAL
    message = str(info.value)
    assert os.strerror(errno.EINVAL) in message and "the arena is unchanged" in message
    assert arena.committed == committed
    assert arena.last_os_error_code == errno.EINVAL
    again = arena.alloc_uninit_slice(Layout(committed))  # still committed: no new commit
    assert again is not None and arena.used == committed
    del again
    arena.close()


@pytest.mark.parametrize("kind", ["bump", "typed"])
def test_refused_commit_reports_the_code(monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    real = linalloc._vm.get()
    monkeypatch.setattr(linalloc._vm, "get", lambda: _RefusingVM(real, 1455, "commit"))
    arena: Any
    if kind == "bump":
        arena = BumpArenaLazy(1 << 20)
        assert arena.alloc_uninit_slice(Layout(1)) is None
        assert arena.alloc(ctypes.c_int32) is None
        assert arena.used == 0
    else:
        arena = TypedArenaLazy(ctypes.c_int32, 1 << 18)
        assert arena.alloc(1) is None
        assert arena.alloc_raw(2) is None
        assert len(arena) == 0 and list(arena) == []
    assert arena.committed == 0
    assert arena.last_os_error_code == 1455
    arena.close()


@pytest.mark.skipif(sys.platform == "win32", reason="munmap is POSIX; test_ffi covers VirtualFree")
def test_refused_release_warns_instead_of_leaking_silently() -> None:
    vm = linalloc._vm.PosixVM()
    page = vm.page_size
    base = vm.reserve(2 * page)
    try:
        # munmap of an address that is not page-aligned: the kernel says EINVAL.
        with pytest.warns(ResourceWarning, match=os.strerror(errno.EINVAL)) as caught:
            vm.release(base + 1, page)
        assert "address space stays reserved" in str(caught[0].message)
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the real release must not warn
            vm.release(base, 2 * page)
