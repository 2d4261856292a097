"""The resident set size of this process, for the tour and the examples.

The resident set is the memory the OS really backs with RAM right now; it is
what a lazy arena's commits and ``trim()`` move. Each system has its own way to
read it, and each reader returns None rather than raising when its way is not
there:

- Linux: field 2 of ``/proc/self/statm``, in pages;
- macOS: ``task_info(mach_task_self(), MACH_TASK_BASIC_INFO, ...)``'s
  ``resident_size`` (``resource.getrusage`` only has the peak, ``ru_maxrss``,
  which never falls, so it cannot show ``trim()``);
- Windows: ``GetProcessMemoryInfo``'s ``WorkingSetSize`` (psapi.dll).

All of it goes through ``ctypes`` (no cffi module, no new declarations).

>>> rss = rss_bytes()
>>> rss is None or rss > 0
True
"""

from __future__ import annotations

import ctypes
import sys

#: ``MACH_TASK_BASIC_INFO`` from ``<mach/task_info.h>``.
MACH_TASK_BASIC_INFO = 20


class MachTaskBasicInfo(ctypes.Structure):
    """``struct mach_task_basic_info`` (``<mach/task_info.h>``, ``#pragma pack(4)``)."""

    _pack_ = 4
    _fields_ = [
        ("virtual_size", ctypes.c_uint64),
        ("resident_size", ctypes.c_uint64),
        ("resident_size_max", ctypes.c_uint64),
        ("user_time", ctypes.c_int32 * 2),  # time_value_t: seconds, microseconds
        ("system_time", ctypes.c_int32 * 2),
        ("policy", ctypes.c_int32),
        ("suspend_count", ctypes.c_int32),
    ]


class ProcessMemoryCounters(ctypes.Structure):
    """``PROCESS_MEMORY_COUNTERS`` (``<psapi.h>``): DWORDs, then SIZE_Ts."""

    _fields_ = [
        ("cb", ctypes.c_uint32),
        ("PageFaultCount", ctypes.c_uint32),
        ("PeakWorkingSetSize", ctypes.c_size_t),
        ("WorkingSetSize", ctypes.c_size_t),
        ("QuotaPeakPagedPoolUsage", ctypes.c_size_t),
        ("QuotaPagedPoolUsage", ctypes.c_size_t),
        ("QuotaPeakNonPagedPoolUsage", ctypes.c_size_t),
        ("QuotaNonPagedPoolUsage", ctypes.c_size_t),
        ("PagefileUsage", ctypes.c_size_t),
        ("PeakPagefileUsage", ctypes.c_size_t),
    ]


def rss_linux() -> int | None:
    """Resident bytes from ``/proc/self/statm``; None where it cannot be read."""
    import mmap

    try:
        with open("/proc/self/statm") as f:
            fields = f.read().split()
        return int(fields[1]) * mmap.PAGESIZE
    except (OSError, IndexError, ValueError):
        return None


def rss_macos() -> int | None:
    """Resident bytes from ``task_info``; None where Mach is not there."""
    try:
        libc = ctypes.CDLL(None)
        task = ctypes.c_uint32.in_dll(libc, "mach_task_self_")  # what mach_task_self() reads
        task_info = libc.task_info
    except (OSError, ValueError, AttributeError):
        return None
    task_info.argtypes = [
        ctypes.c_uint32,
        ctypes.c_uint32,
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_uint32),
    ]
    task_info.restype = ctypes.c_int
    info = MachTaskBasicInfo()
    count = ctypes.c_uint32(ctypes.sizeof(info) // 4)  # MACH_TASK_BASIC_INFO_COUNT
    if task_info(task.value, MACH_TASK_BASIC_INFO, ctypes.byref(info), ctypes.byref(count)) != 0:
        return None
    return int(info.resident_size)


def rss_windows() -> int | None:
    """The working set size from ``GetProcessMemoryInfo``; None off Windows."""
    if sys.platform != "win32":
        return None
    try:
        psapi = ctypes.WinDLL("psapi")
        kernel32 = ctypes.WinDLL("kernel32")
    except OSError:
        return None
    kernel32.GetCurrentProcess.restype = ctypes.c_void_p
    get_info = psapi.GetProcessMemoryInfo
    get_info.argtypes = [ctypes.c_void_p, ctypes.POINTER(ProcessMemoryCounters), ctypes.c_uint32]
    get_info.restype = ctypes.c_int
    counters = ProcessMemoryCounters()
    counters.cb = ctypes.sizeof(counters)
    if not get_info(kernel32.GetCurrentProcess(), ctypes.byref(counters), counters.cb):
        return None
    return int(counters.WorkingSetSize)


def rss_bytes() -> int | None:
    """This process's resident set size in bytes, or None where it cannot be read."""
    if sys.platform == "win32":
        return rss_windows()
    if sys.platform == "darwin":
        return rss_macos()
    return rss_linux()
