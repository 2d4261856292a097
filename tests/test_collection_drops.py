"""Values dropped when a typed arena is collected (neither reset nor closed).

An arena that the drop callback brings back to life while keeping a value is
retired: whatever is called next, it never hands that memory out again.
"""

from __future__ import annotations

from conftest import run_python

# -- a retired arena stays retired --------------------------------------------------------

_RETIRED_CHILD = """
import ctypes, gc
from linalloc import {kind}

revived = []

class Owner:
    def __init__(self):
        self.arena = {kind}(ctypes.c_int64, 1 << 16, drop=self.release)

    def release(self, value):
        revived.append((self, value))  # keeps the value and brings the arena back

owner = Owner()
for k in (1, 2, 3):
    owner.arena.alloc(k)
before = owner.arena.checkpoint()
del owner
gc.collect()
arena = revived[0][0].arena
values = [value for _, value in revived]
where = {{ctypes.addressof(value) for value in values}}

def nothing_handed_out(after):
    got = [arena.alloc(5), arena.alloc_raw(6), arena.alloc_many(2), arena.alloc_extend([7])]
    assert got == [None] * 4, (after, got)
    assert len(arena) == 0 and list(arena) == [] and len(arena.as_array()) == 0, after
    assert [value.value for value in values] == [3, 2, 1], (after, values)

nothing_handed_out("revived")
if hasattr(arena, "trim"):
    assert arena.trim() == 0
    nothing_handed_out("trim")
try:
    arena.rewind(before)
except ValueError:
    pass
nothing_handed_out("rewind")
with arena.scope():
    nothing_handed_out("scope")
nothing_handed_out("scope exit")
arena.rewind(arena.checkpoint())
nothing_handed_out("checkpoint")
arena.reset()
nothing_handed_out("reset")
if hasattr(arena, "trim"):
    arena.trim()
    nothing_handed_out("trim after reset")
arena.close()
gc.collect()
for value in values:
    value.value = -1
print([value.value for value in values], flush=True)
"""


def test_an_arena_revived_with_a_kept_value_stays_retired_through_every_call(
    typed_cls: type,
) -> None:
    # (In a subprocess: on failure the kept values' memory is handed out, or unmapped.)
    proc = run_python(_RETIRED_CHILD.format(kind=typed_cls.__name__))
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    assert proc.stdout == "[-1, -1, -1]\n"
