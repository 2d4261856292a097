"""The cffi layer: no C parsing on import, the keyed module cache, the declarations.

Cache tests run against a copy of the package without any generated module,
with ``LINALLOC_CACHE_DIR`` (linalloc's own override, honoured on every system,
unlike ``XDG_CACHE_HOME``) pointing at a fresh directory, so they exercise the
fallback a plain source checkout uses and never touch the real user cache.
The Windows code path is driven on POSIX systems through a stand-in for
kernel32 that checks each call against the documented rules and backs the
memory with real mappings; on Windows itself those tests skip (the lazy arenas
run on the real kernel32 in every other test there), as do the few that call
the POSIX layer directly.
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
MODULE = _decls.module_name()

posix_only = pytest.mark.skipif(
    sys.platform == "win32", reason="calls mmap and friends through PosixVM (POSIX only)"
)


def cache_env(cache: Path, **extra: str) -> dict[str, str]:
    """This environment with linalloc's cache directory set to ``cache``."""
    env = dict(os.environ, LINALLOC_CACHE_DIR=str(cache), **extra)
    return env


def copy_package(dest: Path) -> Path:
    """Copy linalloc's sources (no generated module) under ``dest``; returns the root."""
    shutil.copytree(
        REPO / "linalloc",
        dest / "src" / "linalloc",
        ignore=shutil.ignore_patterns("__pycache__", "_vm_ffi_*"),
    )
    return dest / "src"


def run_copy(code: str, src: Path, cache: Path, env: dict[str, str] | None = None) -> str:
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
        env=cache_env(cache, PYTHONPATH=str(src), **(env or {})),
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
    files = sorted(p.name for p in cache.iterdir() if p.is_file())
    assert files == [MODULE + ".py"]  # keyed name, no temporary file left
    generated = (cache / (MODULE + ".py")).read_text()
    assert "_cffi_backend.FFI(" in generated

    second = run_copy(use_arena + parser_modules(), src, cache)
    assert second.strip() == "['_cffi_backend']"  # no cffi, no pycparser
    assert (cache / (MODULE + ".py")).read_text() == generated


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
    target = cache / (MODULE + ".py")
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


def test_module_name_is_keyed_by_declarations_and_abi_level_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = _decls.module_name()
    assert re.fullmatch(r"_vm_ffi_[0-9a-f]{8}", name)
    # Whatever cffi runs: the name takes no version, and the backend's is not read.
    monkeypatch.setattr(_cffi_backend, "__version__", "1.17.1")
    monkeypatch.setattr(cffi, "__version__", "1.17.1")
    assert _decls.module_name() == name
    monkeypatch.setattr(_decls, "ABI_VERSION", 0x2801)
    assert _decls.module_name() != name
    monkeypatch.setattr(_decls, "ABI_VERSION", 0x2601)
    assert _decls.module_name() == name
    monkeypatch.setattr(_decls, "CDEF", _decls.CDEF + "int getpagesize(void);\n")
    assert _decls.module_name() != name
    monkeypatch.setattr(_decls, "CDEF", _decls.CDEF.replace("size_t length", "size_t len"))
    assert _decls.module_name() != name


def test_packaging_and_run_time_agree_on_the_name(tmp_path: Path) -> None:
    builder = runpy.run_path(str(REPO / "build_ffi.py"))
    assert cffi.__version__ == _cffi_backend.__version__
    path = builder["emit"](str(tmp_path))
    assert os.path.basename(path) == MODULE + ".py"
    source = Path(path).read_text()
    assert "linalloc." + MODULE in source
    assert f"_version = {_decls.ABI_VERSION:#x}," in source  # the level the name promises


def test_build_refuses_a_module_of_another_abi_level(tmp_path: Path) -> None:
    builder = runpy.run_path(str(REPO / "build_ffi.py"))
    builder["_decls"].ABI_VERSION = 0x2801  # what a char16_t declaration would need
    with pytest.raises(RuntimeError, match="another ABI level than 0x2801"):
        builder["emit"](str(tmp_path))
    assert list(tmp_path.iterdir()) == []


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
    env = cache_env(cache, PYTHONPATH=str(src))
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
    files = sorted(p.name for p in cache.iterdir() if p.is_file())
    assert files == [MODULE + ".py"]
    fresh = tmp_path / "fresh.py"
    _decls.make_builder(MODULE).emit_python_code(str(fresh))
    assert (cache / files[0]).read_text() == fresh.read_text()


def test_failed_rename_onto_an_existing_module_uses_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Windows refuses to replace a module another process has open: use that one."""
    final = tmp_path / (MODULE + ".py")

    def replace_refused(src: str, dst: str) -> None:
        Path(dst).write_text("# written by another process\n")
        raise PermissionError(13, "Access is denied", dst)

    monkeypatch.setattr(os, "replace", replace_refused)
    assert _ffi._generate(str(tmp_path), MODULE) == str(final)
    assert [p.name for p in tmp_path.iterdir()] == [final.name]  # no temporary file
    assert final.read_text() == "# written by another process\n"


def test_failed_rename_with_no_module_there_raises_and_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def replace_refused(src: str, dst: str) -> None:
        raise PermissionError(13, "Access is denied", dst)

    monkeypatch.setattr(os, "replace", replace_refused)
    with pytest.raises(PermissionError):
        _ffi._generate(str(tmp_path), MODULE)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_cache_generates_in_memory_and_leaves_no_directory(tmp_path: Path) -> None:
    src, scratch = copy_package(tmp_path), tmp_path / "tmp"
    scratch.mkdir()
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    cache = blocker / "cache"  # cannot be created, whoever runs the test
    out = run_copy(
        f"""
import tempfile
assert tempfile.gettempdir() == {str(scratch)!r}
arena = linalloc.BumpArenaLazy(1 << 20)
view = arena.alloc_uninit_slice(linalloc.Layout(4))
view[:] = b"mem!"
print(bytes(view).decode())
print(sys.modules.get("linalloc.{MODULE}"))
print(linalloc._ffi.load() is not None)
""",
        src,
        cache,
        env={"TMPDIR": str(scratch), "TEMP": str(scratch), "TMP": str(scratch)},
    )
    assert out.split("\n")[:3] == ["mem!", "None", "True"]
    assert not cache.exists() and list(scratch.iterdir()) == []  # nothing left anywhere


def test_cache_dir_is_linalloc_cache_dir_when_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import platformdirs

    monkeypatch.setenv("LINALLOC_CACHE_DIR", str(tmp_path))
    assert _ffi.cache_dir() == str(tmp_path)
    monkeypatch.setenv("LINALLOC_CACHE_DIR", "")  # empty: as if unset
    assert _ffi.cache_dir() == platformdirs.user_cache_dir("linalloc")
    monkeypatch.delenv("LINALLOC_CACHE_DIR")
    assert _ffi.cache_dir() == platformdirs.user_cache_dir("linalloc")


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
    # dir() of an ABI-mode library lists every declared name, found or not.
    # dlopen(None) (the C library) does not exist on Windows: use kernel32 there.
    declared = set(dir(ffi.dlopen("kernel32.dll" if sys.platform == "win32" else None)))
    assert {"VirtualAlloc", "VirtualFree", "VirtualUnlock", "GetSystemInfo"} <= declared
    assert {"mmap", "mprotect", "madvise", "munmap"} <= declared


def test_windows_function_signatures_match_the_documentation() -> None:
    ffi = cffi.FFI()
    ffi.cdef(_decls.CDEF)
    # LPVOID VirtualAlloc(LPVOID, SIZE_T, DWORD, DWORD);
    # BOOL VirtualFree(LPVOID, SIZE_T, DWORD);  void GetSystemInfo(LPSYSTEM_INFO);
    # BOOL VirtualUnlock(LPVOID, SIZE_T);
    # all WINAPI (__stdcall); DWORD is 32 bits, SIZE_T pointer-sized, BOOL an int.
    declarations = ffi._parser._declarations
    signatures = {
        name: declarations["function " + name][0]._get_c_name()
        for name in ("VirtualAlloc", "VirtualFree", "GetSystemInfo", "VirtualUnlock")
    }
    assert signatures == {
        "VirtualAlloc": "void *(__stdcall *)(void *, size_t, uint32_t, uint32_t)",
        "VirtualFree": "int(__stdcall *)(void *, size_t, uint32_t)",
        "GetSystemInfo": "void(__stdcall *)(SYSTEM_INFO *)",
        "VirtualUnlock": "int(__stdcall *)(void *, size_t)",
    }


@posix_only
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
ERROR_NOT_ENOUGH_MEMORY, ERROR_INVALID_PARAMETER, ERROR_NOT_LOCKED = 8, 87, 158
ERROR_INVALID_ADDRESS, ERROR_COMMITMENT_LIMIT = 487, 1455
#: dwAllocationGranularity: where a reservation may start.
GRANULARITY = 64 * 1024


class FakeKernel32:
    """VirtualAlloc, VirtualFree, VirtualUnlock and GetSystemInfo as Microsoft documents them.

    Memory comes from real POSIX mappings. The rules enforced: a reservation
    starts on the 64 KiB allocation granularity and spans whole pages;
    ``MEM_COMMIT`` only inside a reservation; ``MEM_RESET`` only on committed,
    page-aligned pages (their contents become garbage); ``MEM_RELEASE`` only
    with size 0 and a reservation's base address; ``VirtualUnlock`` only on
    committed pages, and since nothing here locks pages it removes them from
    the working set (recorded in ``unlocked``) and fails with
    ``ERROR_NOT_LOCKED``. Any other call fails with ERROR_INVALID_PARAMETER
    and is recorded in ``misuse``.
    """

    def __init__(self, ffi: Any) -> None:
        self.ffi = ffi
        self.posix = _vm.PosixVM()
        self.page = self.posix.page_size
        self.regions: dict[int, int] = {}  # base -> reserved size
        self.mappings: dict[int, tuple[int, int]] = {}  # base -> the real mapping
        self.committed: set[int] = set()  # addresses of committed pages
        self.unlocked: list[tuple[int, int]] = []
        self.calls: list[tuple[Any, ...]] = []
        self.misuse: list[tuple[Any, ...]] = []
        self.last_error = 0
        self.max_reserve = 1 << 40
        self.refuse_commit = False
        self.refuse_reset = False
        self.refuse_release = False

    def _int(self, pointer: Any) -> int:
        return int(self.ffi.cast("uintptr_t", pointer))

    def _region_of(self, addr: int, size: int) -> int | None:
        for base, length in self.regions.items():
            if base <= addr and addr + size <= base + length:
                return base
        return None

    def _pages(self, addr: int, size: int) -> range:
        start = addr // self.page * self.page
        return range(start, addr + size, self.page)

    def _all_committed(self, addr: int, size: int) -> bool:
        return size > 0 and all(p in self.committed for p in self._pages(addr, size))

    def _fail(self, code: int, call: tuple[Any, ...], misuse: bool) -> None:
        self.last_error = code
        if misuse:
            self.misuse.append(call)

    def VirtualAlloc(self, address: Any, size: int, kind: int, protect: int) -> Any:
        addr = self._int(address)
        call = ("VirtualAlloc", addr, size, kind, protect)
        self.calls.append(call)
        page = self.page
        if kind == MEM_RESERVE and protect == PAGE_NOACCESS and addr == 0 and size > 0:
            if size > self.max_reserve:
                self._fail(ERROR_NOT_ENOUGH_MEMORY, call, misuse=False)
                return self.ffi.NULL
            size = -(-size // page) * page
            real = self.posix.reserve(size + GRANULARITY)
            base = -(-real // GRANULARITY) * GRANULARITY
            self.mappings[base] = (real, size + GRANULARITY)
            self.regions[base] = size
            return self.ffi.cast("void *", base)
        if kind == MEM_COMMIT and protect == PAGE_READWRITE and size > 0:
            start = addr // page * page
            if self._region_of(start, addr + size - start) is not None:
                if self.refuse_commit:
                    self._fail(ERROR_COMMITMENT_LIMIT, call, misuse=False)
                    return self.ffi.NULL
                assert self.posix.commit(start, -(-(addr + size - start) // page) * page) is None
                self.committed.update(self._pages(addr, size))
                return self.ffi.cast("void *", start)
        if kind == MEM_RESET and size > 0 and addr % page == 0 and size % page == 0:
            if self._region_of(addr, size) is not None and self._all_committed(addr, size):
                if self.refuse_reset:
                    self._fail(ERROR_INVALID_ADDRESS, call, misuse=False)
                    return self.ffi.NULL
                # Pages stay committed and accessible; their contents become
                # undefined: model that as garbage, not zeros.
                ctypes.memset(addr, 0xAB, size)
                return self.ffi.cast("void *", addr)
        self._fail(ERROR_INVALID_PARAMETER, call, misuse=True)
        return self.ffi.NULL

    def VirtualUnlock(self, address: Any, size: int) -> int:
        addr = self._int(address)
        call = ("VirtualUnlock", addr, size)
        self.calls.append(call)
        if self._region_of(addr, size) is not None and self._all_committed(addr, size):
            # Not locked: the pages leave the working set, and the call says so.
            assert (
                self.posix.decommit(
                    addr // self.page * self.page, len(self._pages(addr, size)) * self.page
                )
                is None
            )
            self.unlocked.append((addr, size))
            self._fail(ERROR_NOT_LOCKED, call, misuse=False)
            return 0
        self._fail(ERROR_INVALID_PARAMETER, call, misuse=True)
        return 0

    def VirtualFree(self, address: Any, size: int, kind: int) -> int:
        addr = self._int(address)
        call = ("VirtualFree", addr, size, kind)
        self.calls.append(call)
        if kind == MEM_RELEASE and size == 0 and addr in self.regions:
            if self.refuse_release:
                self._fail(ERROR_INVALID_ADDRESS, call, misuse=False)
                return 0
            length = self.regions.pop(addr)
            self.committed.difference_update(self._pages(addr, length))
            self.posix.release(*self.mappings.pop(addr))
            return 1
        if kind == MEM_DECOMMIT and size > 0 and self._region_of(addr, size) is not None:
            assert self.posix.decommit(addr, size) is None
            self.committed.difference_update(self._pages(addr, size))
            return 1
        self._fail(ERROR_INVALID_PARAMETER, call, misuse=True)
        return 0

    def GetSystemInfo(self, info: Any) -> None:
        self.calls.append(("GetSystemInfo",))
        info.dwPageSize = self.page
        info.dwAllocationGranularity = GRANULARITY
        info.dwNumberOfProcessors = 2


class FakeWindowsFFI:
    """The real generated ffi, with kernel32 and getwinerror() from the stand-in."""

    MESSAGES = {
        ERROR_NOT_ENOUGH_MEMORY: "Not enough memory resources are available",
        ERROR_INVALID_ADDRESS: "Attempt to access invalid address",
        ERROR_NOT_LOCKED: "The segment is already unlocked",
        ERROR_COMMITMENT_LIMIT: "The paging file is too small",
    }

    def __init__(self, ffi: Any) -> None:
        self._ffi = ffi
        self.kernel32 = FakeKernel32(ffi)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ffi, name)

    def dlopen(self, name: str) -> FakeKernel32:
        assert name == "kernel32.dll"
        return self.kernel32

    def getwinerror(self, code: int = -1) -> tuple[int, str]:
        """As cffi's: the last error by default, or the message of ``code``."""
        if code == -1:
            code = self.kernel32.last_error
        return code, self.MESSAGES.get(code, "The parameter is incorrect")


@pytest.fixture
def windows(monkeypatch: pytest.MonkeyPatch) -> FakeKernel32:
    """Make the lazy arenas use WindowsVM over the stand-in kernel32."""
    if sys.platform == "win32":
        pytest.skip("the stand-in backs kernel32 with POSIX mappings; here kernel32 is real")
    fake = FakeWindowsFFI(_ffi.load())
    monkeypatch.setattr(_ffi, "load", lambda: fake)
    monkeypatch.setattr(_vm, "_vm", _vm.WindowsVM())
    return fake.kernel32


def test_stand_in_kernel32_enforces_the_documented_rules(windows: FakeKernel32) -> None:
    """Without this, a lax stand-in would let WindowsVM's calls pass unchecked."""
    page, ffi = windows.page, windows.ffi

    def ptr(addr: int) -> Any:
        return ffi.cast("void *", addr)

    def alloc(addr: int, size: int, kind: int, protect: int = PAGE_READWRITE) -> int:
        return windows._int(windows.VirtualAlloc(ptr(addr), size, kind, protect))

    # Reservations start on the 64 KiB allocation granularity, whatever their size.
    bases = [alloc(0, size, MEM_RESERVE, PAGE_NOACCESS) for size in (1, page, 3 * page + 1)]
    assert all(base != 0 and base % GRANULARITY == 0 for base in bases)
    base = bases[2]
    assert windows.regions[base] == 4 * page
    # MEM_RESET: committed pages only.
    assert alloc(base, page, MEM_RESET) == 0 and windows.last_error == ERROR_INVALID_PARAMETER
    assert alloc(base, page, MEM_COMMIT) == base
    assert alloc(base, 2 * page, MEM_RESET) == 0  # the second page is only reserved
    assert alloc(base, page, MEM_RESET) == base
    # VirtualUnlock: committed pages only; on unlocked ones FALSE with ERROR_NOT_LOCKED.
    assert windows.VirtualUnlock(ptr(base), page) == 0
    assert windows.last_error == ERROR_NOT_LOCKED and windows.unlocked == [(base, page)]
    assert windows.VirtualUnlock(ptr(base + page), page) == 0
    assert windows.last_error == ERROR_INVALID_PARAMETER
    # MEM_RELEASE: size 0 and the base address only, once.
    assert windows.VirtualFree(ptr(base), 4 * page, MEM_RELEASE) == 0
    assert windows.VirtualFree(ptr(base + page), 0, MEM_RELEASE) == 0
    assert windows.VirtualFree(ptr(base), 0, MEM_RELEASE) == 1
    assert windows.VirtualFree(ptr(base), 0, MEM_RELEASE) == 0
    assert alloc(base, page, MEM_COMMIT) == 0  # released: nothing to commit into
    assert windows.misuse == [
        ("VirtualAlloc", base, page, MEM_RESET, PAGE_READWRITE),
        ("VirtualAlloc", base, 2 * page, MEM_RESET, PAGE_READWRITE),
        ("VirtualUnlock", base + page, page),
        ("VirtualFree", base, 4 * page, MEM_RELEASE),
        ("VirtualFree", base + page, 0, MEM_RELEASE),
        ("VirtualFree", base, 0, MEM_RELEASE),
        ("VirtualAlloc", base, page, MEM_COMMIT, PAGE_READWRITE),
    ]
    for other in bases[:2]:
        assert windows.VirtualFree(ptr(other), 0, MEM_RELEASE) == 1
    assert windows.regions == {} and windows.committed == set()


def test_windows_path_reserves_commits_decommits_and_releases(windows: FakeKernel32) -> None:
    page = mmap.PAGESIZE
    assert windows.calls == [("GetSystemInfo",)]
    assert _vm.get().page_size == page
    arena = BumpArenaLazy(10 * 65536 + 1)
    reserved = -(-(10 * 65536 + 1) // page) * page
    [(base, size)] = windows.regions.items()
    assert size == reserved and base % GRANULARITY == 0
    view = arena.alloc_uninit_slice(Layout(100))
    assert linalloc.address(view) == base
    more = arena.alloc_uninit_slice(Layout(2 * 65536))
    step = arena.commit_step
    more[-1] = 7
    del view, more
    arena.reset()
    assert arena.trim() == 3 * step
    # MEM_RESET, then VirtualUnlock: the pages left the working set.
    assert windows.unlocked == [(base, 3 * step)]
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
        ("VirtualUnlock", base, 3 * step),
        ("VirtualAlloc", base, 3 * step, MEM_COMMIT, PAGE_READWRITE),
        ("VirtualFree", base, 0, MEM_RELEASE),
    ]
    assert windows.misuse == [] and windows.regions == {}


def test_windows_path_reports_getlasterror(windows: FakeKernel32) -> None:
    windows.max_reserve = 1 << 30
    with pytest.raises(OSError, match="Not enough memory resources") as info:
        BumpArenaLazy(1 << 31)
    # The Windows code is the winerror (4th) argument, never the errno.
    assert info.value.args[3] == ERROR_NOT_ENOUGH_MEMORY
    if sys.platform != "win32":
        assert info.value.errno is None  # (Windows would map it to ENOMEM)
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


def test_windows_trim_failure_is_an_oserror_with_winerror(windows: FakeKernel32) -> None:
    arena = BumpArenaLazy(1 << 24)
    view = arena.alloc_uninit_slice(Layout(2 * arena.commit_step))
    del view
    arena.reset()
    committed = arena.committed
    windows.refuse_reset = True
    with pytest.raises(OSError, match="Attempt to access invalid address") as info:
        arena.trim()
    assert info.value.args[3] == ERROR_INVALID_ADDRESS  # winerror, which Python maps
    if sys.platform != "win32":
        assert info.value.errno is None  # not the Windows code in the errno slot
    assert "the arena is unchanged" in str(info.value)
    assert arena.committed == committed and arena.last_os_error_code == ERROR_INVALID_ADDRESS
    del info  # its traceback holds the store, and so the reservation
    windows.refuse_reset = False
    assert arena.trim() == committed
    arena.close()
    assert windows.misuse == [] and windows.regions == {}


def test_windows_failed_release_warns(windows: FakeKernel32) -> None:
    arena = BumpArenaLazy(1 << 20)
    [base] = windows.regions
    windows.refuse_release = True
    with pytest.warns(ResourceWarning, match="Attempt to access invalid address") as caught:
        arena.close()
    assert "VirtualFree" in str(caught[0].message)
    assert "address space stays reserved" in str(caught[0].message)
    assert list(windows.regions) == [base]  # still reserved, as reported
    windows.refuse_release = False
    assert windows.VirtualFree(windows.ffi.cast("void *", base), 0, MEM_RELEASE) == 1
    assert windows.misuse == []
