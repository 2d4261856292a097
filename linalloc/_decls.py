"""The C declarations of the virtual-memory calls, and the cffi builder for them.

This module is plain data plus one function; it imports nothing from the rest of
the package, so ``build_ffi.py`` can load it by path at packaging time.

The generated module is named ``_vm_ffi_<key>``, where ``<key>`` hashes these
declarations and ``ABI_VERSION``: a changed declaration makes a new module and
never reuses a stale one. The cffi version is not part of the key: the module
holds only pre-parsed type data tagged with the backend ABI level, and the
backends of cffi 1.17 and 2.x alike load ``_version`` 0x2601 to 0x28FF, so a
wheel built with one cffi serves a user with another.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing takes milliseconds to import: for type checkers only
if TYPE_CHECKING:
    from typing import Any

#: Declarations for both platforms. ABI mode only reads what is actually called,
#: so one out-of-line module serves Linux, macOS and Windows. Windows types are
#: spelled with fixed-width C types (DWORD = uint32_t, WORD = uint16_t,
#: SIZE_T = size_t, LPVOID = void *, DWORD_PTR = uintptr_t, BOOL = int).
CDEF = """
/* POSIX, from the C library. off_t is declared as long: it is 64 bits on
   every LP64 system (Linux, macOS) and the offset passed is always 0. */
void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset);
int mprotect(void *addr, size_t len, int prot);
int madvise(void *addr, size_t length, int advice);
int munmap(void *addr, size_t length);

/* Windows, from kernel32.dll. */
typedef struct {
    union {
        uint32_t dwOemId;
        struct {
            uint16_t wProcessorArchitecture;
            uint16_t wReserved;
        };
    };
    uint32_t dwPageSize;
    void *lpMinimumApplicationAddress;
    void *lpMaximumApplicationAddress;
    uintptr_t dwActiveProcessorMask;
    uint32_t dwNumberOfProcessors;
    uint32_t dwProcessorType;
    uint32_t dwAllocationGranularity;
    uint16_t wProcessorLevel;
    uint16_t wProcessorRevision;
} SYSTEM_INFO;
void *__stdcall VirtualAlloc(void *lpAddress, size_t dwSize,
                             uint32_t flAllocationType, uint32_t flProtect);
int __stdcall VirtualFree(void *lpAddress, size_t dwSize, uint32_t dwFreeType);
void __stdcall GetSystemInfo(SYSTEM_INFO *lpSystemInfo);
int __stdcall VirtualUnlock(void *lpAddress, size_t dwSize);
"""

#: The backend ABI level the generated module is tagged with (its ``_version=``).
#: cffi writes 0x2601 for ABI-mode modules that use no ``char16_t``/``char32_t``;
#: ``build_ffi.py`` refuses a generated module that says otherwise.
ABI_VERSION = 0x2601


def module_name() -> str:
    """Name of the generated module: keyed on the declarations and ``ABI_VERSION``.

    >>> module_name().startswith("_vm_ffi_") and module_name() == module_name()
    True
    """
    # The text read as one integer, modulo a prime: any one-byte change
    # changes the key, and no hashing module is imported (zlib is a shared
    # library to load: ten times what this costs).
    text = f"{ABI_VERSION:#x}\n{CDEF}".encode()
    key = int.from_bytes(text, "little") % _KEY_PRIME
    return f"_vm_ffi_{key:08x}"


#: The largest prime below 2**30 (one CPython digit: the modulo is one quick pass).
_KEY_PRIME = 1_073_741_789


def make_builder(qualified_name: str) -> Any:
    """An out-of-line ABI-mode ``cffi.FFI`` builder named ``qualified_name``.

    Parsing the declarations needs pycparser; this runs only at packaging time
    or once per cache key, never on an ordinary import.
    """
    import cffi

    builder = cffi.FFI()
    builder.cdef(CDEF)
    builder.set_source(qualified_name, None)
    return builder
