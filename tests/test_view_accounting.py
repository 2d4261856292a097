"""The view count's arithmetic (``linalloc._views``), checked on parts made by hand."""

from __future__ import annotations

import ctypes
import sys
from itertools import repeat
from operator import getitem

from linalloc import _views
from linalloc._store import root_over
from linalloc._views import Part, part_views


def hand_made_part(size: int = 64) -> tuple[Part, ctypes.Array[ctypes.c_char]]:
    buffer = ctypes.create_string_buffer(size)
    return Part(root_over(ctypes.addressof(buffer), size, buffer)), buffer


def test_calibration_measures_again_what_import_measured() -> None:
    # measured on a view-less part each time: the same three numbers, every one
    # positive (the part's own slot for each object at least)
    again = _views._calibrate()
    assert again == (_views._ROOT_OWN, _views._ARRAY_OWN, _views._TAKE_OWN)
    assert all(n >= 1 for n in again)


def test_a_part_without_views_counts_none_whatever_its_shape() -> None:
    part, _ = hand_made_part()
    assert part_views(part) == 0
    part.arrays["a"] = (ctypes.c_int32 * 4).from_buffer(part.root)
    assert part_views(part) == 0
    part.arrays["b"] = (ctypes.c_int32 * 4).from_buffer(part.root, 16)
    assert part_views(part) == 0
    part.take = map(getitem, repeat(part.arrays["a"]), iter(()))
    assert part_views(part) == 0
    part.take = None
    assert part_views(part) == 0


def test_each_view_of_a_part_counts_one() -> None:
    part, _ = hand_made_part()
    part.arrays["a"] = (ctypes.c_int32 * 4).from_buffer(part.root)
    of_root = (ctypes.c_char * 8).from_buffer(part.root, 32)
    assert part_views(part) == 1
    of_array = memoryview(part.arrays["a"])
    assert part_views(part) == 2
    # an array the part no longer lists: what holds it (here the memoryview)
    # shows through the array's own reference to the root
    del part.arrays["a"]
    assert part_views(part) == 2
    del of_array
    assert part_views(part) == 1
    del of_root
    assert part_views(part) == 0


def test_the_value_iterator_counts_as_the_arenas_own() -> None:
    part, _ = hand_made_part()
    part.arrays[0] = (ctypes.c_int64 * 8).from_buffer(part.root)
    part.take = map(getitem, repeat(part.arrays[0]), iter(range(8)))
    value = next(part.take)  # an int: no view
    assert value == 0 and part_views(part) == 0
    kept = part.take
    part.take = None  # the iterator, no longer the part's, holds the array: a view
    assert part_views(part) == 1
    del kept
    assert part_views(part) == 0


def test_the_constants_read_off_ctypes_and_lists_at_import_read_the_same_again() -> None:
    # the key under which from_buffer keeps its source, for any from_buffer array
    assert _views._from_buffer_key() == _views._SOURCE_KEY
    array = (ctypes.c_int32 * 2).from_buffer(bytearray(8))
    assert list(array._objects) == [_views._SOURCE_KEY]
    # the references of an object that one list alone holds
    assert _views._refcounts([bytearray()]) == [_views._LISTED_ONE]
    alone = [object()]
    assert sum(map(sys.getrefcount, alone)) == _views._LISTED_ONE


def test_ledger_index_finds_regions_by_identity() -> None:
    part, _ = hand_made_part()
    ledger = _views.Ledger()
    assert ledger.index(None) == -1
    ledger.open_region(0, part)
    first = ledger.regions[0]
    assert ledger.index(first) == 0
    ledger.open_region(4, hand_made_part()[0])
    second = ledger.regions[1]
    assert (ledger.index(first), ledger.index(second)) == (0, 1)
    assert ledger.index(_views.Region(0, part)) == -1  # equal in shape, not the same
    assert ledger.index(None) == -1
