"""More corners of the view count: what a keep-alive entry holds through an object
made with ``from_buffer`` over the arena's memory.

Each test checks one rule through what a caller sees: a refusal, a view count; most
also check that a count made before (``live_views()``) changes no later answer.
"""

from __future__ import annotations

import ctypes

import pytest

from linalloc import BumpArena, Layout


class Node(ctypes.Structure):
    pass


Node._fields_ = [("value", ctypes.c_int64), ("next", ctypes.POINTER(Node))]


# -- _arena_only: what a from_buffer object of the arena keeps besides its source ------------


@pytest.mark.parametrize("count_first", [False, True])
def test_rewind_refused_by_a_value_kept_through_a_from_buffer_object_a_pointer_keeps(
    count_first: bool,
) -> None:
    """Rule 2, per region: a value made after ``cp`` that memory before ``cp`` keeps counts.

    ``over`` is made with ``from_buffer`` over a value allocated before ``cp``;
    a pointer stored in it keeps ``later``, allocated after ``cp``. Setting
    ``node.next.contents = over`` makes ctypes keep ``over`` itself in one
    entry of ``node``'s row and ``over``'s own keep-alive dict in another;
    ``node.next[0] = ...`` (a copy of the same bytes) then replaces the
    second, so ``later`` is kept only through what ``over`` keeps. It is
    still a view of the memory after ``cp``: ``rewind(cp)`` is refused with
    one view, whether or not a count (``live_views()``) ran before.
    """
    arena = BumpArena(4096)
    node = arena.alloc(Node)
    under = arena.alloc(Node)  # (before the checkpoint: ``over``'s memory)
    cp = arena.checkpoint()
    later = arena.alloc(Node)
    later.value = 7
    over = Node.from_buffer(under)
    over.next = ctypes.pointer(later)  # kept in ``over``'s own dict
    node.next.contents = over  # two entries: ``over``, and ``over``'s dict
    node.next[0] = Node.from_buffer_copy(under)  # (same bytes) the second replaced
    del over, under, later
    assert node.next.contents.next.contents.value == 7
    if count_first:
        assert arena.live_views() == 1  # `node` only: the links are the arena's own
    for _ in range(2):
        with pytest.raises(BufferError, match="^cannot rewind to this checkpoint: 1 view "):
            arena.rewind(cp)
    assert node.next.contents.next.contents.value == 7
    assert arena.live_views() == 1
    del node
    arena.reset()  # (all of it freed at once: the links hold only the arena's own memory)
    assert arena.used == 0 and arena.live_views() == 0


class TextLink(ctypes.Structure):
    """A value holding a pointer to a ``c_char_p``."""

    _fields_ = [("value", ctypes.c_int64), ("text", ctypes.POINTER(ctypes.c_char_p))]


class TextLinkHolder(ctypes.Structure):
    """Memory outside the arena that a TextLink is copied into by value."""

    _fields_ = [("link", TextLink)]


@pytest.mark.parametrize("count_first", [False, True])
def test_a_shared_link_to_a_simple_object_over_a_slice_counts_once_after_a_count(
    count_first: bool,
) -> None:
    """Rule 2: a keep-alive dict that a by-value copy shares counts what it holds, once.

    ``over`` (a ``c_char_p`` made with ``from_buffer`` over a 16-byte slice)
    keeps the slice's memoryview as its ``_objects``. ``link.text.contents =
    over`` makes ctypes keep ``over`` in one entry of the row and the
    memoryview in another, which ``link.text[0] = data`` replaces (by the
    bytes). Once a copy outside the arena shares the row's dict, ``over``
    is one view: a count made before (``live_views()``, which takes the
    entry out and puts back a view of ``over``'s own 8 bytes) changes nothing.
    """
    arena = BumpArena(4096)
    link = arena.alloc(TextLink)
    view = arena.alloc_uninit_slice(Layout(16))
    assert view is not None
    over = ctypes.c_char_p.from_buffer(view)
    link.text.contents = over
    data = b"kept by the row"
    link.text[0] = data  # (the entry that held the memoryview now holds the bytes)
    del over, view, data
    assert link.text.contents.value == b"kept by the row"
    if count_first:
        assert arena.live_views() == 1  # `link` only: the link is the arena's own
    copy = TextLinkHolder()
    copy.link = link  # by value: the copy shares the row's keep-alive dict
    del link
    assert arena.live_views() == 1  # `over` (or the view that stands for it)
    with pytest.raises(BufferError, match="^cannot reset: 1 view "):
        arena.reset()
    assert copy.link.text.contents.value == b"kept by the row"
    del copy
    arena.reset()
    assert arena.used == 0
