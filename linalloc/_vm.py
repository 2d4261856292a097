"""The system calls behind the lazy arenas: reserve, commit, decommit, release.

One small class per operating system, both with the same four operations plus
``page_size``. Addresses and sizes are Python ints; every size passed in is a
whole number of pages and every address page-aligned.

POSIX (Linux, macOS, the BSDs):

- reserve: ``mmap(NULL, n, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)``
- commit: ``mprotect(addr, n, PROT_READ | PROT_WRITE)``
- decommit (Linux): ``madvise(addr, n, MADV_DONTNEED)``
- decommit (macOS and every other POSIX system): ``mmap(addr, n, PROT_READ |
  PROT_WRITE, MAP_PRIVATE | MAP_ANON | MAP_FIXED, -1, 0)``
- release: ``munmap(addr, n)``

Decommitting never makes pages inaccessible: objects handed out earlier (and
ctypes objects reachable from them) may span those pages, and reading them
must not crash. The pages' memory goes back to the OS and they read as zero
afterwards, but they stay mapped readable and writable until the reservation is
released. On Linux ``mprotect(PROT_NONE)`` would gain nothing anyway: the
commit charge of a private writable mapping stays with it until ``munmap``.

Why macOS and the BSDs differ: on Linux, ``MADV_DONTNEED`` on private
anonymous memory drops the pages at once (RSS falls) and they read as zero when
touched again. On macOS, FreeBSD, NetBSD and OpenBSD it is only a hint that
lowers the pages' priority: they stay resident and keep their contents.
``MADV_FREE`` is no better there (freed lazily, under memory pressure only,
contents undefined until then). Mapping fresh anonymous
readable and writable pages over the range with ``MAP_FIXED`` frees the old
pages eagerly and guarantees zeros, in one call that leaves the range
accessible; it stays inside the reservation, so the final ``munmap`` is
unchanged.
(On Linux that would also work, but a failed ``MAP_FIXED`` there may leave the
range unmapped, while XNU restores the old mapping on failure.)

Windows:

- reserve: ``VirtualAlloc(NULL, n, MEM_RESERVE, PAGE_NOACCESS)``
- commit: ``VirtualAlloc(addr, n, MEM_COMMIT, PAGE_READWRITE)``
- decommit: ``VirtualAlloc(addr, n, MEM_RESET, PAGE_READWRITE)``, then
  ``VirtualUnlock(addr, n)``
- release: ``VirtualFree(addr, 0, MEM_RELEASE)``

``MEM_DECOMMIT`` would make the pages inaccessible while views of them may
still exist. ``MEM_RESET`` keeps them committed and accessible but tells the
memory manager their contents no longer matter, so it never writes them to
the paging file; Microsoft does not say that it removes them from the working
set. ``VirtualUnlock`` on pages that are not locked does: it releases them from
the working set (and fails with ``ERROR_NOT_LOCKED``, which is expected). The
.NET garbage collector (``GCToOSInterface::VirtualReset``) and mimalloc make the
same two calls. The unlock's result is not checked: ``MEM_RESET`` has already
made the contents undefined, so failing the decommit then would leave the store
believing the pages still hold what they held. The contents are undefined (not
guaranteed zero), so ``zero_on_recommit`` is True and the store clears such
pages when it commits them again.

Commit charge: on Windows, as on Linux, decommitted pages stay committed (they
remain writable), so the commit charge they take returns only when the
reservation is released; what ``trim()`` gives back is their physical memory.

Errors: the VM object builds every ``OSError`` (``os_error``): on POSIX the
code is the ``errno``; on Windows it is passed as ``winerror``, from which
Python derives ``errno``. A failed release (``munmap``/``VirtualFree``) cannot
be undone and is reported as a ``ResourceWarning``: the address space leaks.

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
import warnings

from . import _ffi

TYPE_CHECKING = False  # typing takes milliseconds to import: for type checkers only
if TYPE_CHECKING:
    from typing import Any


class PosixVM:
    """mmap/mprotect/madvise/munmap from the C library.

    ``decommit_by_remap`` chooses how ``decommit`` gives pages back: True (every
    POSIX system but Linux) maps fresh pages over them, False uses ``madvise``.
    """

    # Declared here so that type checkers know them on every platform (on
    # Windows the body of __init__ is unreachable).
    ffi: Any
    lib: Any
    decommit_by_remap: bool
    prot_none: int
    prot_rw: int
    map_flags: int
    madv_dontneed: int
    map_fixed: int
    page_size: int
    zero_on_recommit: bool
    _map_failed: int

    def __init__(self, decommit_by_remap: bool = not sys.platform.startswith("linux")) -> None:
        if sys.platform == "win32":
            raise OSError(_errno.ENOSYS, "PosixVM needs a POSIX system: use WindowsVM on Windows")
        import mmap

        self.decommit_by_remap = decommit_by_remap
        self.ffi = ffi = _ffi.load()
        self.lib = ffi.dlopen(None)
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
            raise self.os_error(ffi.errno or _errno.ENOMEM, f"cannot reserve {size} bytes")
        return addr

    def os_error(self, code: int, what: str) -> OSError:
        """The ``OSError`` for ``errno`` ``code``, its message starting with ``what``."""
        return OSError(code, f"{what}: {os.strerror(code)}")

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
        """Unmap a reservation. Called only when nothing can view it any more.

        A refusal cannot be undone: it is reported as a ``ResourceWarning``.
        """
        if self.lib.munmap(self._ptr(addr), size) != 0:
            _warn_leak(self.os_error(int(self.ffi.errno), f"munmap of {size} bytes failed"))


class WindowsVM:
    """VirtualAlloc/VirtualFree/VirtualUnlock from kernel32."""

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

    def _last_error(self) -> int:
        return int(self.ffi.getwinerror()[0])

    def os_error(self, code: int, what: str) -> OSError:
        """The ``OSError`` for Windows error ``code``, its message starting with ``what``.

        The code goes in the ``winerror`` slot: Python maps it to ``errno``.
        """
        message = str(self.ffi.getwinerror(code)[1])
        return OSError(None, f"{what}: {message}", None, code)

    def reserve(self, size: int) -> int:
        ffi = self.ffi
        ptr = self.lib.VirtualAlloc(ffi.NULL, size, self.MEM_RESERVE, self.PAGE_NOACCESS)
        if ptr == ffi.NULL:
            raise self.os_error(self._last_error(), f"cannot reserve {size} bytes")
        return int(ffi.cast("uintptr_t", ptr))

    def commit(self, addr: int, size: int) -> int | None:
        ptr = self.lib.VirtualAlloc(self._ptr(addr), size, self.MEM_COMMIT, self.PAGE_READWRITE)
        if ptr == self.ffi.NULL:
            return self._last_error()
        return None

    def decommit(self, addr: int, size: int) -> int | None:
        # MEM_RESET keeps the pages committed and accessible: views may span them.
        ptr = self.lib.VirtualAlloc(self._ptr(addr), size, self.MEM_RESET, self.PAGE_READWRITE)
        if ptr == self.ffi.NULL:
            return self._last_error()
        # Out of the working set (see the module docstring); its result is not
        # checked: on unlocked pages it fails with ERROR_NOT_LOCKED by design.
        self.lib.VirtualUnlock(ptr, size)
        return None

    def release(self, addr: int, size: int) -> None:
        """Free a reservation; a refusal is reported as a ``ResourceWarning``."""
        # MEM_RELEASE requires size 0 and the base address of the reservation.
        if not self.lib.VirtualFree(self._ptr(addr), 0, self.MEM_RELEASE):
            what = f"VirtualFree of a {size}-byte reservation failed"
            _warn_leak(self.os_error(self._last_error(), what))


def _warn_leak(error: OSError) -> None:
    warnings.warn(
        f"{error.strerror}; its address space stays reserved until the process exits",
        ResourceWarning,
        stacklevel=2,
    )


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
