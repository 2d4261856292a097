"""More rules of ``Layout``: the exact messages of its type checks."""

from __future__ import annotations

import re
from typing import Any

import pytest

from linalloc import Layout


@pytest.mark.parametrize(
    ("size", "align", "message"),
    [
        (8.0, 8, "size must be an int, not float"),
        ("8", 1, "size must be an int, not str"),
        (True, 8, "size must be an int, not bool"),
        (8, 8.0, "align must be an int, not float"),
        (8, None, "align must be an int, not NoneType"),
        (8, False, "align must be an int, not bool"),
    ],
)
def test_a_layout_of_a_non_int_names_the_argument_and_its_type(
    size: Any, align: Any, message: str
) -> None:
    pattern = "^" + re.escape(message) + "$"
    with pytest.raises(TypeError, match=pattern):
        Layout(size, align)
    with pytest.raises(TypeError, match=pattern):
        Layout.from_size_align(size, align)
