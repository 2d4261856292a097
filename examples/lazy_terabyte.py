"""Reserve a terabyte, use a little of it: BumpArenaLazy commits pages only as it fills.

Run it: python examples/lazy_terabyte.py

The arena reserves 1 TiB of address space up front (no memory yet), then
allocates and writes 32 MiB blocks. After each block it prints ``used``,
``committed`` (what the arena asked the OS for) and the process's resident set
size (RSS, what the OS really backs with RAM: /proc/self/statm on Linux,
task_info on macOS, GetProcessMemoryInfo on Windows; "n/a" where none of them
answers). Finally ``reset()`` + ``trim()`` hand the pages
back to the OS.
"""

from __future__ import annotations

import ctypes
import sys

from linalloc import BumpArenaLazy, Layout, address, page_size
from linalloc._rss import rss_bytes  # the tour's reader, for Linux, macOS and Windows

MiB = 1 << 20
TiB = 1 << 40
BLOCK = 32 * MiB
BLOCKS = 8


def rss() -> str:
    resident = rss_bytes()
    return "n/a" if resident is None else f"{resident // MiB} MiB"


def main() -> int:
    try:
        arena = BumpArenaLazy(TiB)
    except (OSError, OverflowError) as exc:  # 32-bit Python, or a ulimit on address space
        print(f"cannot reserve 1 TiB here: {exc}")
        return 0
    print(f"reserved {arena.capacity / TiB:.0f} TiB: {arena!r}")
    print(f"{'used':>10} {'committed':>10} {'RSS':>10}")
    print(f"{arena.used // MiB:>6} MiB {arena.committed // MiB:>6} MiB {rss():>10}")

    blocks = []
    for _ in range(BLOCKS):
        block = arena.alloc_uninit_slice(Layout(BLOCK, page_size()))
        if block is None:  # the OS refused to commit more: the arena says why
            print(f"commit refused, OS error code {arena.last_os_error_code}")
            break
        ctypes.memset(address(block), 0x5A, BLOCK)  # write every page
        blocks.append(block)
        print(f"{arena.used // MiB:>6} MiB {arena.committed // MiB:>6} MiB {rss():>10}")

    assert all(b[0] == 0x5A and b[-1] == 0x5A for b in blocks)
    del blocks, block  # reset() is refused while any block is referenced
    arena.reset()
    released = arena.trim()
    print(f"reset() + trim(): {released // MiB} MiB given back to the OS")
    print(f"{arena.used // MiB:>6} MiB {arena.committed // MiB:>6} MiB {rss():>10}")
    arena.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
