"""The system calls behind the lazy arenas: reserve, commit, decommit, release.

One small class per operating system, both with the same four operations plus
``page_size``. Addresses and sizes are Python ints; every size passed in is a
whole number of pages and every address page-aligned.

POSIX (Linux, macOS):

- reserve: ``mmap(NULL, n, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)``
- commit: ``mprotect(addr, n, PROT_READ | PROT_WRITE)``
- decommit (Linux and other POSIX): ``madvise(addr, n, MADV_DONTNEED)``
- decommit (macOS): ``mmap(addr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANON |
  MAP_FIXED, -1, 0)``
- release: ``munmap(addr, n)``

Decommitting never makes pages inaccessible: objects handed out earlier (and
ctypes objects reachable from them) may span those pages, and reading them
must not crash. The pages' memory goes back to the OS and they read as zero
afterwards, but they stay mapped readable and writable until the reservation is
released. On Linux ``mprotect(PROT_NONE)`` would gain nothing anyway: the
commit charge of a private writable mapping stays with it until ``munmap``.

Why macOS differs: on Linux, ``MADV_DONTNEED`` on private anonymous memory
drops the pages at once (RSS falls) and they read as zero when touched again.
On macOS it is only a hint that lowers the pages' priority: they stay resident
and keep their contents. ``MADV_FREE`` is no better there (freed lazily, under
memory pressure only, contents undefined until then). Mapping fresh anonymous
readable and writable pages over the range with ``MAP_FIXED`` frees the old
pages eagerly and guarantees zeros, in one call that leaves the range
accessible; it stays inside the reservation, so the final ``munmap`` is
unchanged.
(On Linux that would also work, but a failed ``MAP_FIXED`` there may leave the
range unmapped, while XNU restores the old mapping on failure.)

Windows:

- reserve: ``VirtualAlloc(NULL, n, MEM_RESERVE, PAGE_NOACCESS)``
- commit: ``VirtualAlloc(addr, n, MEM_COMMIT, PAGE_READWRITE)``
- decommit: ``VirtualAlloc(addr, n, MEM_RESET, PAGE_READWRITE)``
- release: ``VirtualFree(addr, 0, MEM_RELEASE)``

``MEM_DECOMMIT`` would make the pages inaccessible while views of them may
still exist. ``MEM_RESET`` keeps them committed and accessible but tells the
memory manager their contents no longer matter: it drops them from the
working set without writing them to the paging file. Their contents are then
undefined (not guaranteed zero), so ``zero_on_recommit`` is True and the store
clears such pages when it commits them again.

POSIX constants come from the stdlib ``mmap`` module of the running platform,
except two it does not export on every version: ``PROT_NONE`` (0 on every POSIX
system) and ``MAP_FIXED`` (0x0010 in macOS's ``<sys/mman.h>``; used on macOS only).
The Windows ones are the values documented for ``VirtualAlloc``/``VirtualFree``.
Error codes are read right after the failing call: ``ffi.errno`` on POSIX,
``ffi.getwinerror()`` on Windows.
"""

from __future__ import annotations

import errno as _errno
import os
import sys

from . import _ffi

TYPE_CHECKING = False  # typing takes milliseconds to import: for type checkers only
if TYPE_CHECKING:
    from typing import Any


class PosixVM:
    """mmap/mprotect/madvise/munmap from the C library."""

    def __init__(self, decommit_by_remap: bool = sys.platform == "darwin") -> None:
        import mmap

        self.decommit_by_remap = decommit_by_remap
        self.ffi = ffi = _ffi.load()
        self.lib: Any = ffi.dlopen(None)
        # PROT_NONE is 0 on every POSIX system; the stdlib does not export it.
        self.prot_none = getattr(mmap, "PROT_NONE", 0)
        self.prot_rw = mmap.PROT_READ | mmap.PROT_WRITE
        anon = getattr(mmap, "MAP_ANONYMOUS", None)
        if anon is None:  # Python < 3.10 on some platforms only has MAP_ANON
            anon = mmap.MAP_ANON
        self.map_flags = mmap.MAP_PRIVATE | anon
        self.madv_dontneed = mmap.MADV_DONTNEED
        self.map_fixed = getattr(mmap, "MAP_FIXED", 0x0010)
        self.page_size = mmap.PAGESIZE
        self.zero_on_recommit = False
        self._map_failed = int(ffi.cast("uintptr_t", ffi.cast("void *", -1)))

    def _ptr(self, addr: int) -> Any:
        return self.ffi.cast("void *", addr)

    def reserve(self, size: int) -> int:
        """Reserve ``size`` bytes of inaccessible address space; raises OSError."""
        ffi = self.ffi
        ptr = self.lib.mmap(ffi.NULL, size, self.prot_none, self.map_flags, -1, 0)
        addr = int(ffi.cast("uintptr_t", ptr))
        if addr == self._map_failed or addr == 0:
            code = ffi.errno or _errno.ENOMEM
            raise OSError(code, f"cannot reserve {size} bytes: {os.strerror(code)}")
        return addr

    def commit(self, addr: int, size: int) -> int | None:
        """Make pages readable and writable; returns None or the errno."""
        if self.lib.mprotect(self._ptr(addr), size, self.prot_rw) != 0:
            return int(self.ffi.errno)
        return None

    def decommit(self, addr: int, size: int) -> int | None:
        """Give pages' memory back to the OS; they stay accessible and read as zero.

        Returns None or the errno.
        """
        ptr = self._ptr(addr)
        if self.decommit_by_remap:
            flags = self.map_flags | self.map_fixed
            new = self.lib.mmap(ptr, size, self.prot_rw, flags, -1, 0)
            if int(self.ffi.cast("uintptr_t", new)) != addr:
                return int(self.ffi.errno) or _errno.ENOMEM
            return None
        if self.lib.madvise(ptr, size, self.madv_dontneed) != 0:
            return int(self.ffi.errno)
        return None

    def release(self, addr: int, size: int) -> None:
        """Unmap a reservation. Called only when nothing can view it any more."""
        self.lib.munmap(self._ptr(addr), size)


class WindowsVM:
    """VirtualAlloc/VirtualFree from kernel32."""

    MEM_COMMIT = 0x00001000
    MEM_RESERVE = 0x00002000
    MEM_RELEASE = 0x00008000
    MEM_RESET = 0x00080000
    PAGE_NOACCESS = 0x01
    PAGE_READWRITE = 0x04

    def __init__(self) -> None:
        self.ffi = ffi = _ffi.load()
        self.lib: Any = ffi.dlopen("kernel32.dll")
        info = ffi.new("SYSTEM_INFO *")
        self.lib.GetSystemInfo(info)
        self.page_size = int(info.dwPageSize)
        self.zero_on_recommit = True  # MEM_RESET leaves the contents undefined

    def _ptr(self, addr: int) -> Any:
        return self.ffi.cast("void *", addr)

    def _last_error(self) -> tuple[int, str]:
        code, message = self.ffi.getwinerror()
        return int(code), str(message)

    def reserve(self, size: int) -> int:
        ffi = self.ffi
        ptr = self.lib.VirtualAlloc(ffi.NULL, size, self.MEM_RESERVE, self.PAGE_NOACCESS)
        if ptr == ffi.NULL:
            code, message = self._last_error()
            # OSError maps the Windows error code to errno by itself.
            raise OSError(None, f"cannot reserve {size} bytes: {message}", None, code)
        return int(ffi.cast("uintptr_t", ptr))

    def commit(self, addr: int, size: int) -> int | None:
        ptr = self.lib.VirtualAlloc(self._ptr(addr), size, self.MEM_COMMIT, self.PAGE_READWRITE)
        if ptr == self.ffi.NULL:
            return self._last_error()[0]
        return None

    def decommit(self, addr: int, size: int) -> int | None:
        # MEM_RESET keeps the pages committed and accessible: views may span them.
        ptr = self.lib.VirtualAlloc(self._ptr(addr), size, self.MEM_RESET, self.PAGE_READWRITE)
        if ptr == self.ffi.NULL:
            return self._last_error()[0]
        return None

    def release(self, addr: int, size: int) -> None:
        # MEM_RELEASE requires size 0 and the base address of the reservation.
        self.lib.VirtualFree(self._ptr(addr), 0, self.MEM_RELEASE)


_vm: Any = None


def get() -> Any:
    """The platform's VM object, created on first use (loads cffi then)."""
    global _vm
    if _vm is None:
        _vm = WindowsVM() if sys.platform == "win32" else PosixVM()
    return _vm


def page_size() -> int:
    """The size in bytes of a virtual-memory page on this system.

    It is the stdlib's ``mmap.PAGESIZE`` (on Windows, ``GetSystemInfo``'s
    ``dwPageSize``), so asking for it loads no cffi module.

    >>> page_size() >= 4096 and page_size() & (page_size() - 1) == 0
    True
    """
    import mmap

    return mmap.PAGESIZE
