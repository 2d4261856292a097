"""Type checks: the cache of checked types.

- ``ctype_info`` answers a type whose layout is final from its cache: a later
  change to the class dict (a refused, forged ``_fields_`` that a new walk
  would refuse) does not change the answer.
- A field the class dict no longer lists is read where ctypes laid it out,
  at the checks' zeroed memory, not further along.
- The cache is bounded: it never holds more than ``_MAX_INFOS`` types (it is
  emptied when full, and recomputed on the next use).
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator

import pytest

from linalloc import _layout
from linalloc._layout import ctype_info


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(_layout, "_infos", {})
    yield


def test_ctype_info_of_a_checked_final_type_comes_from_the_cache() -> None:
    """A final type's (size, align, holds a pointer) is cached: a forged dict later changes
    nothing."""

    class Rec(ctypes.Structure):
        _fields_ = [("x", ctypes.c_int64), ("y", ctypes.c_int32)]

    assert ctype_info(Rec) == (16, 8, False)
    with pytest.raises(AttributeError, match="_fields_ is final"):
        Rec._fields_ = [("x", 5)]  # (a forged dict: a walk now would refuse it)
    assert ctype_info(Rec) == (16, 8, False)
    assert ctype_info(Rec) == (16, 8, False)


def test_the_cache_of_checked_types_never_grows_past_its_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cache holds at most _MAX_INFOS types: it is emptied when full."""
    monkeypatch.setattr(_layout, "_MAX_INFOS", 2)
    types = [
        type(f"Rec{i}", (ctypes.Structure,), {"_fields_": [("x", ctypes.c_int32)]})
        for i in range(5)
    ]
    for ctype in types:
        assert ctype_info(ctype) == (4, 4, False)
        assert 1 <= len(_layout._infos) <= 2
        assert id(ctype) in _layout._infos
    for ctype in types:  # recomputed after the cache was emptied: the same answer
        assert ctype_info(ctype) == (4, 4, False)
        assert len(_layout._infos) <= 2


def test_a_field_no_longer_listed_is_read_at_the_zeroed_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A laid-out field is read at the zeroed memory, whatever its offset."""
    # (In-process, with zeroed memory whose bytes past the first 64 are not zero: a
    # read 64 bytes further along would find an address there, not a null pointer.)
    memory = (ctypes.c_ubyte * 512)()
    ctypes.memset(ctypes.addressof(memory) + 64, 0xFF, 512 - 64)
    monkeypatch.setattr(_layout, "_ZEROS", memory)

    class Far(ctypes.Structure):
        _fields_ = [("pad", ctypes.c_char * 64), ("p", ctypes.c_void_p)]

    assert Far.p.offset == 64
    del Far._fields_  # (the layout stays as it was; only the descriptor tells)
    assert _layout.holds_pointer(Far)
    assert ctype_info(Far) == (72, 8, True)
