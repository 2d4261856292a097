"""Rule 2 for a keep-alive entry whose only piece is a view of a whole array of the
arena's that holds no pointer (``from_buffer`` of a value's ``_b_base_``): a count
that takes it out puts it back, so it still counts once a by-value copy outside the
arena shares its dict."""

from __future__ import annotations

import pytest
from conftest import TYPED_KINDS
from test_count_corners import Box, BoxHolder, Pair


@pytest.mark.parametrize("cls", TYPED_KINDS, ids=lambda c: c.__name__)
def test_a_view_of_a_whole_slot_array_put_back_by_a_count_still_counts(cls: type) -> None:
    """Counted, taken out and put back, a whole-array view keeps reset() refused for a copy."""
    arena = cls(Box, 8)
    first, second = arena.alloc(), arena.alloc()
    first.pair = Pair.from_buffer(second._b_base_)  # keeps a view of all the slots
    del second
    assert arena.live_views() == 1  # `first` (its entry is the arena's own: out and back)
    copy = BoxHolder()
    copy.box = first  # by value: shares the slot array's keep-alive dict, and the view
    del first
    assert arena.live_views() == 1  # the view the copy keeps through the shared dict
    with pytest.raises(BufferError, match="^cannot reset: 1 view "):
        arena.reset()
    assert len(arena) == 2
    del copy
    arena.reset()
    assert len(arena) == 0
