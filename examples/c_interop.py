"""Arena memory handed to C: libc qsort over a TypedArena, and a linked list in an arena.

Run it: python examples/c_interop.py

1. A TypedArena keeps its values in contiguous slots, so ``as_array()`` is a
   C array of them, over the arena's own memory. libc ``qsort`` sorts it in
   place, calling back into Python through a ctypes ``CFUNCTYPE`` comparator.
2. Nodes of a linked list live in one TypedArena; each ``next`` field is a C
   pointer to another node of the same arena. The list is walked by following
   the addresses, as C code would.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import random
import sys
from typing import Any

from linalloc import TypedArena, address


class Particle(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint32), ("mass", ctypes.c_double)]


class Node(ctypes.Structure):
    pass


Node._fields_ = [("value", ctypes.c_int64), ("next", ctypes.POINTER(Node))]


def load_libc() -> Any | None:
    """The C library, or None when this platform has none to find."""
    if sys.platform == "win32":
        return ctypes.cdll.msvcrt
    try:
        return ctypes.CDLL(ctypes.util.find_library("c"))
    except OSError:
        return None


COMPARE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(Particle), ctypes.POINTER(Particle))


def compare_mass(a: Any, b: Any) -> int:
    ma: float = a.contents.mass
    mb: float = b.contents.mass
    return (ma > mb) - (ma < mb)


by_mass = COMPARE(compare_mass)  # a C function pointer that calls compare_mass


def qsort_example(libc: Any) -> None:
    rng = random.Random(7)
    arena = TypedArena(Particle, 1000)
    for i in range(10):
        arena.alloc(i, round(rng.uniform(0.0, 100.0), 1))
    print("before:", [p.mass for p in arena])

    libc.qsort.restype = None
    libc.qsort.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, COMPARE]
    array = arena.as_array()  # Particle * len(arena), no copy
    first = next(iter(arena))
    assert address(array) == address(first), "as_array() is the arena's own memory"
    libc.qsort(array, len(array), ctypes.sizeof(Particle), by_mass)
    print("after: ", [p.mass for p in arena])
    print("ids:   ", [p.id for p in arena])
    masses = [p.mass for p in arena]
    assert masses == sorted(masses)

    del array, first
    arena.reset()  # no view left: accepted
    arena.close()


def linked_list_example() -> None:
    arena = TypedArena(Node, 64)
    head: Node | None = None
    for value in (30, 10, 20, 40):
        new = arena.alloc(value)
        assert new is not None
        if head is not None:
            new.next = ctypes.pointer(head)  # stores head's address in the new node's memory
        head = new
    assert head is not None

    print("walk from the head, following the C pointers:")
    walked = []
    node: Node = head
    while True:
        target = ctypes.cast(node.next, ctypes.c_void_p).value or 0  # the address stored
        print(f"  node at 0x{address(node):x}  value {node.value:>3}  next -> 0x{target:x}")
        walked.append(node.value)
        if not node.next:  # a NULL pointer is false
            break
        node = node.next.contents  # the node at that address (it keeps the arena alive)
    assert walked == [40, 20, 10, 30], walked
    base = address(next(iter(arena)))
    slots = [(address(n) - base) // ctypes.sizeof(Node) for n in arena]
    print(
        f"the {len(arena)} nodes sit in slots {slots} of one block, "
        f"{ctypes.sizeof(Node)} bytes apart"
    )

    del head, new, node
    arena.reset()
    arena.close()


if __name__ == "__main__":
    libc = load_libc()
    if libc is None:
        print("no C library found on this system: skipping the qsort example")
    else:
        qsort_example(libc)
    linked_list_example()
