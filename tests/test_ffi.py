"""The cffi layer: no C parsing on import, the keyed module cache, the declarations.

Cache tests run against a copy of the package without any generated module,
with ``XDG_CACHE_HOME`` (which ``platformdirs`` honours on Linux) pointing at a
fresh directory, so they exercise the fallback a plain source checkout uses.
The Windows code path is driven on this system through a stand-in for
kernel32 that checks each call against the documented rules and backs the
memory with real mappings.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import re
import runpy
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import _cffi_backend
import cffi
import pytest

import linalloc
from linalloc import BumpArenaLazy, Layout, TypedArenaLazy, _decls, _ffi, _vm

REPO = Path(__file__).resolve().parent.parent
MODULE = _decls.module_name(_cffi_backend.__version__)


def copy_package(dest: Path) -> Path:
    """Copy linalloc's sources (no generated module) under ``dest``; returns the root."""
    shutil.copytree(
        REPO / "linalloc",
        dest / "src" / "linalloc",
        ignore=shutil.ignore_patterns("__pycache__", "_vm_ffi_*"),
    )
    return dest / "src"


def run_copy(code: str, src: Path, cache: Path) -> str:
    """Run ``code`` against the copied package with its own cache; must exit 0."""
    prelude = f"""
import sys
import linalloc
assert linalloc.__file__.startswith({str(src)!r}), linalloc.__file__
"""
    proc = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=src.parent,  # not the checkout: "" on sys.path must not find its linalloc
        env=dict(os.environ, PYTHONPATH=str(src), XDG_CACHE_HOME=str(cache)),
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def parser_modules() -> str:
    """Code printing which of cffi, pycparser and _cffi_backend are loaded."""
    return """
print(sorted({m.split(".")[0] for m in sys.modules} & {"cffi", "pycparser", "_cffi_backend"}))
"""


# -- importing -----------------------------------------------------------------


def test_import_parses_no_c_declarations() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import linalloc"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    names = {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert {"linalloc", "linalloc._vm", "linalloc._ffi"} <= names
    loaded = {n for n in names if n.split(".")[0] in {"cffi", "pycparser", "_cffi_backend"}}
    assert loaded == set()


def test_cache_fallback_generates_once_then_loads_without_parsing(tmp_path: Path) -> None:
    src, cache = copy_package(tmp_path), tmp_path / "cache"
    use_arena = """
arena = linalloc.BumpArenaLazy(1 << 30)
view = arena.alloc_uninit_slice(linalloc.Layout(100))
view[:2] = b"ok"
assert arena.committed == arena.commit_step
"""
    first = run_copy(use_arena + parser_modules(), src, cache)
    assert first.strip() == "['_cffi_backend', 'cffi', 'pycparser']"  # it had to generate
    files = sorted(p.name for p in (cache / "linalloc").iterdir() if p.is_file())
    assert files == [MODULE + ".py"]  # keyed name, no temporary file left
    generated = (cache / "linalloc" / (MODULE + ".py")).read_text()
    assert "_cffi_backend.FFI(" in generated

    second = run_copy(use_arena + parser_modules(), src, cache)
    assert second.strip() == "['_cffi_backend']"  # no cffi, no pycparser
    assert (cache / "linalloc" / (MODULE + ".py")).read_text() == generated


def test_in_package_module_is_preferred_over_the_cache(tmp_path: Path) -> None:
    src, cache = copy_package(tmp_path), tmp_path / "cache"
    runpy.run_path(str(REPO / "build_ffi.py"))["emit"](str(src / "linalloc"))
    out = run_copy(
        f"""
import ctypes
assert linalloc.TypedArenaLazy(ctypes.c_int, 10).alloc(1).value == 1
module = sys.modules["linalloc.{MODULE}"]
assert module.__file__.startswith({str(src)!r})
"""
        + parser_modules(),
        src,
        cache,
    )
    assert out.strip() == "['_cffi_backend']"
    assert not cache.exists()


def test_existing_complete_cache_file_is_reused(tmp_path: Path) -> None:
    src, cache = copy_package(tmp_path), tmp_path / "cache"
    target = cache / "linalloc" / (MODULE + ".py")
    target.parent.mkdir(parents=True)
    _decls.make_builder(MODULE).emit_python_code(str(target))
    marked = target.read_text() + "\nimport builtins\nbuiltins.linalloc_cache_marker = True\n"
    target.write_text(marked)
    out = run_copy(
        """
import builtins
arena = linalloc.BumpArenaLazy(1 << 20)
print(getattr(builtins, "linalloc_cache_marker", False))
"""
        + parser_modules(),
        src,
        cache,
    )
    assert out.split("\n")[:2] == ["True", "['_cffi_backend']"]
    assert target.read_text() == marked


# -- the module's name -------------------------------------------------------------


def test_module_name_is_keyed_by_declarations_and_cffi_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = _decls.module_name("1.17.1")
    assert re.fullmatch(r"_vm_ffi_[0-9a-f]{8}", name)
    assert _decls.module_name("1.17.1") == name
    assert _decls.module_name("2.0.0") != name
    monkeypatch.setattr(_decls, "CDEF", _decls.CDEF + "int getpagesize(void);\n")
    assert _decls.module_name("1.17.1") != name
    monkeypatch.setattr(_decls, "CDEF", _decls.CDEF.replace("size_t length", "size_t len"))
    assert _decls.module_name("1.17.1") != name


def test_packaging_and_run_time_agree_on_the_name(tmp_path: Path) -> None:
    builder = runpy.run_path(str(REPO / "build_ffi.py"))
    assert cffi.__version__ == _cffi_backend.__version__
    path = builder["emit"](str(tmp_path))
    assert os.path.basename(path) == MODULE + ".py"
    assert "linalloc." + MODULE in Path(path).read_text()


# -- atomic writes ---------------------------------------------------------------


def test_generate_writes_a_temporary_file_then_renames_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    final = tmp_path / (MODULE + ".py")
    seen: list[tuple[str, bool, int]] = []
    real_builder = _decls.make_builder

    class Watched:
        def __init__(self, name: str) -> None:
            self.real = real_builder(name)

        def emit_python_code(self, path: str) -> None:
            self.real.emit_python_code(path)
            seen.append((path, final.exists(), os.path.getsize(path)))

    monkeypatch.setattr(_decls, "make_builder", Watched)
    assert _ffi._generate(str(tmp_path), MODULE) == str(final)
    [(written, final_existed, size)] = seen
    assert written != str(final) and os.path.dirname(written) == str(tmp_path)
    assert not final_existed  # the complete module appears under its name only by rename
    assert final.stat().st_size == size
    assert [p.name for p in tmp_path.iterdir()] == [final.name]


def test_failed_generation_leaves_no_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    class Broken:
        def __init__(self, name: str) -> None:
            pass

        def emit_python_code(self, path: str) -> None:
            with open(path, "w") as f:
                f.write("ffi = _cffi_backend.FFI(")  # half a module
            raise KeyboardInterrupt

    monkeypatch.setattr(_decls, "make_builder", Broken)
    with pytest.raises(KeyboardInterrupt):
        _ffi._generate(str(tmp_path), MODULE)
    assert list(tmp_path.iterdir()) == []


def test_concurrent_processes_generating_at_once_all_succeed(tmp_path: Path) -> None:
    src, cache, barrier = copy_package(tmp_path), tmp_path / "cache", tmp_path / "barrier"
    barrier.mkdir()
    count = 3
    # Each process holds its finished temporary file until every process has
    # one: all of them generate at the same time, then all rename.
    code = """
import os, sys, time
import linalloc
index, count, barrier = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
real_replace = os.replace

def replace_when_all_are_ready(tmp, dst):
    assert os.path.getsize(tmp) > 0 and not os.path.exists(dst)
    open(os.path.join(barrier, f"ready-{index}"), "w").close()
    deadline = time.monotonic() + 60
    while len(os.listdir(barrier)) < count:
        assert time.monotonic() < deadline, "the other processes never generated"
        time.sleep(0.005)
    real_replace(tmp, dst)

os.replace = replace_when_all_are_ready
arena = linalloc.BumpArenaLazy(1 << 20)
view = arena.alloc_uninit_slice(linalloc.Layout(8))
view[:] = b"12345678"
print(bytes(view).decode())
"""
    env = dict(os.environ, PYTHONPATH=str(src), XDG_CACHE_HOME=str(cache))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(i), str(count), str(barrier)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env=env,
        )
        for i in range(count)
    ]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    for status, out, err in results:
        assert status == 0, err
        assert out.strip() == "12345678"
    assert sorted(os.listdir(barrier)) == [f"ready-{i}" for i in range(count)]
    files = sorted(p.name for p in (cache / "linalloc").iterdir() if p.is_file())
    assert files == [MODULE + ".py"]
    fresh = tmp_path / "fresh.py"
    _decls.make_builder(MODULE).emit_python_code(str(fresh))
    assert (cache / "linalloc" / files[0]).read_text() == fresh.read_text()


# -- declarations and constants --------------------------------------------------


class _SystemInfo(ctypes.Structure):
    """SYSTEM_INFO as documented (sysinfoapi.h), in ctypes: an independent layout."""

    class _Oem(ctypes.Union):
        class _Arch(ctypes.Structure):
            _fields_ = [("wProcessorArchitecture", ctypes.c_uint16), ("wReserved", ctypes.c_uint16)]

        _anonymous_ = ("arch",)
        _fields_ = [("dwOemId", ctypes.c_uint32), ("arch", _Arch)]

    _anonymous_ = ("oem",)
    _fields_ = [
        ("oem", _Oem),
        ("dwPageSize", ctypes.c_uint32),
        ("lpMinimumApplicationAddress", ctypes.c_void_p),
        ("lpMaximumApplicationAddress", ctypes.c_void_p),
        ("dwActiveProcessorMask", ctypes.c_size_t),  # DWORD_PTR
        ("dwNumberOfProcessors", ctypes.c_uint32),
        ("dwProcessorType", ctypes.c_uint32),
        ("dwAllocationGranularity", ctypes.c_uint32),
        ("wProcessorLevel", ctypes.c_uint16),
        ("wProcessorRevision", ctypes.c_uint16),
    ]


@pytest.mark.parametrize("source", ["cdef", "generated"])
def test_windows_declarations_parse_with_documented_layout(source: str) -> None:
    if source == "cdef":
        ffi: Any = cffi.FFI()
        ffi.cdef(_decls.CDEF)
    else:
        ffi = _ffi.load()
    assert ffi.sizeof("SYSTEM_INFO") == ctypes.sizeof(_SystemInfo)
    assert ffi.sizeof("SYSTEM_INFO") == (48 if sys.maxsize > 2**32 else 36)
    fields = [name for name, _ in ffi.typeof("SYSTEM_INFO").fields]
    assert fields == [
        "dwOemId",
        "wProcessorArchitecture",
        "wReserved",
        *[name for name, _ in _SystemInfo._fields_[1:]],
    ]
    for name in fields:
        assert ffi.offsetof("SYSTEM_INFO", name) == getattr(_SystemInfo, name).offset, name
    declared = set(dir(ffi.dlopen(None)))
    assert {"VirtualAlloc", "VirtualFree", "GetSystemInfo"} <= declared
    assert {"mmap", "mprotect", "madvise", "munmap"} <= declared


def test_windows_function_signatures_match_the_documentation() -> None:
    ffi = cffi.FFI()
    ffi.cdef(_decls.CDEF)
    # LPVOID VirtualAlloc(LPVOID, SIZE_T, DWORD, DWORD);
    # BOOL VirtualFree(LPVOID, SIZE_T, DWORD);  void GetSystemInfo(LPSYSTEM_INFO);
    # all WINAPI (__stdcall); DWORD is 32 bits, SIZE_T pointer-sized, BOOL an int.
    declarations = ffi._parser._declarations
    signatures = {
        name: declarations["function " + name][0]._get_c_name()
        for name in ("VirtualAlloc", "VirtualFree", "GetSystemInfo")
    }
    assert signatures == {
        "VirtualAlloc": "void *(__stdcall *)(void *, size_t, uint32_t, uint32_t)",
        "VirtualFree": "int(__stdcall *)(void *, size_t, uint32_t)",
        "GetSystemInfo": "void(__stdcall *)(SYSTEM_INFO *)",
    }


def test_posix_constants_come_from_the_mmap_module(monkeypatch: pytest.MonkeyPatch) -> None:
    vm = _vm.PosixVM()
    assert vm.prot_rw == mmap.PROT_READ | mmap.PROT_WRITE
    assert vm.map_flags == mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
    assert vm.madv_dontneed == mmap.MADV_DONTNEED
    assert vm.page_size == mmap.PAGESIZE == linalloc.page_size()
    # Values the platform would report differently show up unchanged.
    for name, value in [
        ("PROT_READ", 1 << 20),
        ("PROT_WRITE", 1 << 21),
        ("MAP_PRIVATE", 1 << 22),
        ("MAP_ANONYMOUS", 1 << 23),
        ("MADV_DONTNEED", 77),
        ("PAGESIZE", 1 << 14),
    ]:
        monkeypatch.setattr(mmap, name, value)
    other = _vm.PosixVM()
    assert other.prot_rw == 3 << 20
    assert other.map_flags == 3 << 22
    assert other.madv_dontneed == 77
    assert other.page_size == 1 << 14


# -- the Windows path, against a documented stand-in for kernel32 ----------------------

MEM_COMMIT, MEM_RESERVE, MEM_DECOMMIT, MEM_RELEASE = 0x1000, 0x2000, 0x4000, 0x8000
MEM_RESET = 0x80000
PAGE_NOACCESS, PAGE_READWRITE = 0x01, 0x04
ERROR_NOT_ENOUGH_MEMORY, ERROR_INVALID_PARAMETER, ERROR_COMMITMENT_LIMIT = 8, 87, 1455


class FakeKernel32:
    """VirtualAlloc, VirtualFree and GetSystemInfo as Microsoft documents them.

    Memory comes from real POSIX mappings; any call outside the documented
    rules fails with ERROR_INVALID_PARAMETER and is recorded in ``misuse``.
    """

    def __init__(self, ffi: Any) -> None:
        self.ffi = ffi
        self.posix = _vm.PosixVM()
        self.regions: dict[int, int] = {}  # base -> reserved size
        self.calls: list[tuple[Any, ...]] = []
        self.misuse: list[tuple[Any, ...]] = []
        self.last_error = 0
        self.max_reserve = 1 << 40
        self.refuse_commit = False

    def _int(self, pointer: Any) -> int:
        return int(self.ffi.cast("uintptr_t", pointer))

    def _region_of(self, addr: int, size: int) -> int | None:
        for base, length in self.regions.items():
            if base <= addr and addr + size <= base + length:
                return base
        return None

    def _fail(self, code: int, call: tuple[Any, ...], misuse: bool) -> None:
        self.last_error = code
        if misuse:
            self.misuse.append(call)

    def VirtualAlloc(self, address: Any, size: int, kind: int, protect: int) -> Any:
        addr = self._int(address)
        call = ("VirtualAlloc", addr, size, kind, protect)
        self.calls.append(call)
        page = self.posix.page_size
        if kind == MEM_RESERVE and protect == PAGE_NOACCESS and addr == 0 and size > 0:
            if size > self.max_reserve:
                self._fail(ERROR_NOT_ENOUGH_MEMORY, call, misuse=False)
                return self.ffi.NULL
            base = self.posix.reserve(-(-size // page) * page)
            self.regions[base] = -(-size // page) * page
            return self.ffi.cast("void *", base)
        if kind == MEM_COMMIT and protect == PAGE_READWRITE and size > 0:
            start = addr // page * page
            if self._region_of(start, addr + size - start) is not None:
                if self.refuse_commit:
                    self._fail(ERROR_COMMITMENT_LIMIT, call, misuse=False)
                    return self.ffi.NULL
                assert self.posix.commit(start, -(-(addr + size - start) // page) * page) is None
                return self.ffi.cast("void *", start)
        if kind == MEM_RESET and size > 0 and addr % page == 0 and size % page == 0:
            if self._region_of(addr, size) is not None:
                # Pages stay committed and accessible; their contents become
                # undefined: model that as garbage, not zeros.
                assert self.posix.decommit(addr, size) is None
                ctypes.memset(addr, 0xAB, size)
                return self.ffi.cast("void *", addr)
        self._fail(ERROR_INVALID_PARAMETER, call, misuse=True)
        return self.ffi.NULL

    def VirtualFree(self, address: Any, size: int, kind: int) -> int:
        addr = self._int(address)
        call = ("VirtualFree", addr, size, kind)
        self.calls.append(call)
        if kind == MEM_RELEASE and size == 0 and addr in self.regions:
            self.posix.release(addr, self.regions.pop(addr))
            return 1
        if kind == MEM_DECOMMIT and size > 0 and self._region_of(addr, size) is not None:
            assert self.posix.decommit(addr, size) is None
            return 1
        self._fail(ERROR_INVALID_PARAMETER, call, misuse=True)
        return 0

    def GetSystemInfo(self, info: Any) -> None:
        self.calls.append(("GetSystemInfo",))
        info.dwPageSize = self.posix.page_size
        info.dwAllocationGranularity = 65536
        info.dwNumberOfProcessors = 2


class FakeWindowsFFI:
    """The real generated ffi, with kernel32 and getwinerror() from the stand-in."""

    def __init__(self, ffi: Any) -> None:
        self._ffi = ffi
        self.kernel32 = FakeKernel32(ffi)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ffi, name)

    def dlopen(self, name: str) -> FakeKernel32:
        assert name == "kernel32.dll"
        return self.kernel32

    def getwinerror(self) -> tuple[int, str]:
        messages = {
            ERROR_NOT_ENOUGH_MEMORY: "Not enough memory resources are available",
            ERROR_COMMITMENT_LIMIT: "The paging file is too small",
        }
        code = self.kernel32.last_error
        return code, messages.get(code, "The parameter is incorrect")


@pytest.fixture
def windows(monkeypatch: pytest.MonkeyPatch) -> FakeKernel32:
    """Make the lazy arenas use WindowsVM over the stand-in kernel32."""
    fake = FakeWindowsFFI(_ffi.load())
    monkeypatch.setattr(_ffi, "load", lambda: fake)
    monkeypatch.setattr(_vm, "_vm", _vm.WindowsVM())
    return fake.kernel32


def test_windows_path_reserves_commits_decommits_and_releases(windows: FakeKernel32) -> None:
    page = mmap.PAGESIZE
    assert windows.calls == [("GetSystemInfo",)]
    assert _vm.get().page_size == page
    arena = BumpArenaLazy(10 * 65536 + 1)
    reserved = -(-(10 * 65536 + 1) // page) * page
    [(base, size)] = windows.regions.items()
    assert size == reserved
    view = arena.alloc_uninit_slice(Layout(100))
    assert linalloc.address(view) == base
    more = arena.alloc_uninit_slice(Layout(2 * 65536))
    step = arena.commit_step
    more[-1] = 7
    del view, more
    arena.reset()
    assert arena.trim() == 3 * step
    # Reset pages stay accessible (views may span them); recommitted, they read as zero.
    again = arena.alloc_uninit_slice(Layout(3 * step))
    assert again is not None and bytes(again) == bytes(3 * step)
    del again
    arena.close()
    assert windows.calls[1:] == [
        ("VirtualAlloc", 0, reserved, MEM_RESERVE, PAGE_NOACCESS),
        ("VirtualAlloc", base, step, MEM_COMMIT, PAGE_READWRITE),
        ("VirtualAlloc", base + step, 2 * step, MEM_COMMIT, PAGE_READWRITE),
        ("VirtualAlloc", base, 3 * step, MEM_RESET, PAGE_READWRITE),
        ("VirtualAlloc", base, 3 * step, MEM_COMMIT, PAGE_READWRITE),
        ("VirtualFree", base, 0, MEM_RELEASE),
    ]
    assert windows.misuse == [] and windows.regions == {}


def test_windows_path_reports_getlasterror(windows: FakeKernel32) -> None:
    windows.max_reserve = 1 << 30
    with pytest.raises(OSError, match="Not enough memory resources") as info:
        BumpArenaLazy(1 << 31)
    if sys.platform == "win32":
        assert info.value.winerror == ERROR_NOT_ENOUGH_MEMORY
    assert windows.regions == {}

    typed = TypedArenaLazy(ctypes.c_int64, 1 << 20)
    windows.refuse_commit = True
    assert typed.alloc() is None
    assert typed.last_os_error_code == ERROR_COMMITMENT_LIMIT
    assert (len(typed), typed.committed) == (0, 0)
    windows.refuse_commit = False
    assert typed.alloc() is not None
    assert len(typed) == 1 and typed.committed == typed.commit_step
    typed.close()
    assert windows.misuse == [] and windows.regions == {}
