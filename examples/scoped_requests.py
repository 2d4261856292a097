"""A long-lived arena with a scope per request: nested scopes, and a leaked value refused.

Run it: python examples/scoped_requests.py

A server keeps one ``TypedArena`` for its whole life. A price list is
allocated once, before any request, and stays. Each request works inside
``with arena.scope():``, which frees everything the request allocated when the
block ends, in one step; a step of the request (here, checking the order's
lines) opens a nested scope of its own. What was allocated before a scope is
never touched by its exit.

A handler that keeps a value past the end of its scope (here, in a cache) is
caught: the scope's exit raises ``BufferError`` and frees nothing, so the kept
value never shares memory with the next request's. Once the value is let go, a
rewind (or ``reset()``) frees the memory again.
"""

from __future__ import annotations

import ctypes
from typing import Any

from linalloc import TypedArena


class Line(ctypes.Structure):
    """One line of an order, or of the price list."""

    _fields_ = [("item", ctypes.c_int32), ("qty", ctypes.c_int32), ("price", ctypes.c_double)]


arena = TypedArena(Line, 1024)


def price_list() -> ctypes.Array[Line]:
    """Allocated before any scope: lives as long as the server does."""
    array = arena.alloc_extend([(1, 0, 2.50), (2, 0, 4.00), (3, 0, 10.00)])
    assert array is not None  # None would mean the arena is full
    return array


prices = price_list()
PRICE = {line.item: line.price for line in prices}


def check(order: Any) -> int:
    """A step of the request with its own scratch values, freed when it returns."""
    with arena.scope():
        bad = [arena.alloc(line.item, line.qty) for line in order if line.item not in PRICE]
        print(f"    checking: {len(arena)} values live (price list, order, scratch)")
        count = len(bad)
        del bad
    return count


def handle(request: list[tuple[int, int]], cache: list[Any] | None = None) -> float:
    """Price one order; with ``cache``, wrongly keep its first line after the request."""
    with arena.scope():
        order = arena.alloc_extend([(item, qty, 0.0) for item, qty in request])
        assert order is not None
        unknown = check(order)
        total = 0.0
        for line in order:
            line.price = PRICE.get(line.item, 0.0)
            total += line.qty * line.price
        print(f"  order of {len(order)} lines: total {total:.2f}, {unknown} unknown item(s)")
        if cache is not None:
            cache.append(order[0])  # outlives the scope: a bug the exit catches
        del order, line  # every name bound to a value inside the scope
    return total


def main() -> None:
    print(f"at start: {len(arena)} values live (the price list)")
    for number, request in enumerate([[(1, 4), (3, 1)], [(2, 2), (9, 1), (1, 1)]], 1):
        print(f"request {number}:")
        handle(request)
        print(f"  after the request: {len(arena)} values live")

    print("request 3 keeps one of its values in a cache:")
    cache: list[Any] = []
    cp = arena.checkpoint()
    try:
        handle([(2, 5)], cache)
    except BufferError as exc:
        print(f"  scope exit refused: {exc}")
    kept = cache[0]
    print(f"  nothing was freed: {len(arena)} values live; kept: item {kept.item} x {kept.qty}")
    del kept
    cache.clear()
    arena.rewind(cp)
    print(f"  cache cleared, rewind accepted: {len(arena)} values live")
    print(f"the price list is intact: {[(p.item, p.price) for p in prices]}")


if __name__ == "__main__":
    main()
