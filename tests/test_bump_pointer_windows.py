"""A window of a pointer-holding type opened past the start of a ``BumpArena`` is
cleared where its values lie (and nowhere else), however dirty an earlier use left
that memory.

Checked in a child interpreter: clearing the wrong bytes would write outside the
arena's buffer, which may crash the process instead of failing an assert."""

from __future__ import annotations

from conftest import run_python


def test_pointer_windows_opened_past_the_start_are_cleared_where_their_values_lie() -> None:
    """alloc() of a pointer struct from offset 24, windows of 1, 2 and 4: NULL, neighbours kept."""
    result = run_python(
        """
        import ctypes
        from linalloc import BumpArena, Layout, address

        class Linked(ctypes.Structure):
            _fields_ = [("next", ctypes.c_void_p)]

        arena = BumpArena(256)
        view = arena.alloc_uninit_slice(Layout(256))
        view[:] = b"\\xa5" * 256  # garbage an earlier use left
        del view
        arena.reset()
        head = arena.alloc_uninit_slice(Layout(24, 8))
        base = address(head)
        values = [arena.alloc(Linked) for _ in range(7)]  # windows of one, two, four
        print(*[ctypes.addressof(v) - base for v in values])
        print(*[ctypes.string_at(ctypes.addressof(v), 8).hex() for v in values])
        print(all(v.next is None for v in values), arena.used)
        print(bytes(head[16:]).hex(), ctypes.string_at(base + 80, 8).hex())  # around them
        """
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [str(24 + 8 * k) for k in range(7)]
    assert lines[1].split() == ["00" * 8] * 7
    assert lines[2].split() == ["True", "80"]
    assert lines[3].split() == ["a5" * 8, "a5" * 8]
