"""linalloc: fixed-capacity arena allocators whose memory C code can use directly.

You pick the capacity up front. The arena never grows; addresses stay stable;
when it is full, allocation returns ``None``.

=================  ============================  ======================================
type               gives you                     backing memory
=================  ============================  ======================================
``BumpArena``      raw bytes, any layout         one ctypes string buffer
``TypedArena``     values of one ctypes type     one ctypes string buffer
``BumpArenaLazy``  raw bytes, any layout         reserved virtual memory, committed
                                                 as the bump pointer advances
``TypedArenaLazy`` values of one ctypes type     reserved virtual memory, committed
                                                 as it fills
=================  ============================  ======================================

>>> import ctypes, linalloc
>>> with linalloc.TypedArena(ctypes.c_int64, 4) as arena:
...     [arena.alloc(n).value for n in range(5) if len(arena) < 4]
[0, 1, 2, 3]
"""

from ._address import address
from ._arena import Checkpoint
from ._bump import BumpArena, BumpArenaLazy
from ._cast import cast
from ._layout import Layout
from ._store import COMMIT_STEP
from ._typed import TypedArena, TypedArenaLazy
from ._vm import page_size

__version__ = "0.2.0"

__all__ = [
    "COMMIT_STEP",
    "BumpArena",
    "BumpArenaLazy",
    "Checkpoint",
    "Layout",
    "TypedArena",
    "TypedArenaLazy",
    "address",
    "cast",
    "page_size",
    "__version__",
]
