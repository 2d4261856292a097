"""A per-request scratch arena, reset between requests, against fresh ctypes objects.

Run it: python examples/request_scratch.py

Each simulated request turns 256 samples into ``Point`` structs, lays them out
as one C array and serializes it (``ctypes.string_at`` reads the array the way
C code would). Two handlers do the same work:

- ``fresh``: builds new ``Point`` objects, then copies them into a new
  ``Point * n`` array for C; Python frees it all after the request.
- ``scratch``: builds the values in one long-lived ``TypedArena``, whose slots
  already form the C array (``as_array()``, no copy); ``reset()`` after each
  request makes the whole capacity free again. It is timed twice: taking a
  zeroed slot with ``alloc()`` and setting the fields, and passing the fields
  to ``alloc(x, y)``, which runs the ctypes constructor on the slot.

Both answers are checked equal, then both handlers are timed and the ratio
printed. The ratio is this machine's, measured now; run it on yours.
"""

from __future__ import annotations

import ctypes
import random
import sys
import time
from typing import Callable

from linalloc import TypedArena


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double)]


SAMPLES = 256
REQUESTS = 2000

Request = list[tuple[float, float]]


def make_requests(count: int) -> list[Request]:
    rng = random.Random(1)
    return [[(rng.random(), rng.random()) for _ in range(SAMPLES)] for _ in range(count)]


def handle_fresh(request: Request) -> bytes:
    points = [Point(x, y) for x, y in request]
    array = (Point * len(points))(*points)  # C needs them contiguous: copy
    return ctypes.string_at(array, ctypes.sizeof(array))


def make_scratch_handler(
    scratch: TypedArena[Point], *, construct: bool = False
) -> Callable[[Request], bytes]:
    """A handler that builds each request's points in ``scratch``.

    ``construct=False`` takes a zeroed slot with ``alloc()`` and sets the
    fields; ``construct=True`` passes them to ``alloc(x, y)``, which runs the
    ctypes constructor on the slot (same result, more work per value).
    """
    alloc = scratch.alloc

    def respond() -> bytes:
        array = scratch.as_array()  # the slots themselves: no copy
        response = ctypes.string_at(array, ctypes.sizeof(array))
        del array  # hold nothing, so that reset() is accepted
        scratch.reset()
        return response

    def handle_scratch(request: Request) -> bytes:
        for x, y in request:
            point = alloc()  # None would mean more samples than the arena holds
            point.x = x  # type: ignore[union-attr]
            point.y = y  # type: ignore[union-attr]
        del point
        return respond()

    def handle_construct(request: Request) -> bytes:
        for x, y in request:
            alloc(x, y)
        return respond()

    return handle_construct if construct else handle_scratch


def timed(handler: Callable[[Request], bytes], requests: list[Request]) -> float:
    """Best of three passes over all requests, in seconds."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for request in requests:
            handler(request)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    requests = make_requests(REQUESTS)
    scratch = TypedArena(Point, SAMPLES)
    handle_scratch = make_scratch_handler(scratch)
    handle_construct = make_scratch_handler(scratch, construct=True)
    for request in requests[:20]:
        expected = handle_fresh(request)
        assert handle_scratch(request) == expected
        assert handle_construct(request) == expected
    fresh = timed(handle_fresh, requests)
    arena = timed(handle_scratch, requests)
    construct = timed(handle_construct, requests)
    per = 1e6 / REQUESTS
    print(f"{REQUESTS} requests of {SAMPLES} points each (best of 3 passes):")
    print(f"  fresh Point(x, y) objects + copy to a C array: {fresh * per:7.1f} us per request")
    print(f"  scratch TypedArena: alloc(), set the fields:   {arena * per:7.1f} us per request")
    print(f"  scratch TypedArena: alloc(x, y):               {construct * per:7.1f} us per request")
    print(f"  ratio fresh / scratch (alloc(), set fields): {fresh / arena:.2f}")
    print(f"  ratio fresh / scratch (alloc(x, y)):         {fresh / construct:.2f}")
    print(f"the scratch arena after all requests: {scratch!r}")
    scratch.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
