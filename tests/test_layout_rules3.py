"""Type checks: a field ctypes laid out is read where it lies, however far into the type.

When the class dict no longer lists a field (``del Type._fields_``), the
checks read the layout ctypes made, through each field's descriptor, at
zeroed memory: a field at any offset, even one far past the checks' own
zeroed memory, is read there and found.
"""

from __future__ import annotations

from conftest import run_python


def test_a_pointer_or_py_object_hidden_far_into_a_type_is_found() -> None:
    # (in a child: a field read anywhere but at the zeroed memory would crash it)
    proc = run_python(
        """
        import ctypes
        from linalloc._layout import holds_pointer, holds_py_object

        FAR = 1 << 56  # (no memory is ever made for these types)

        class FarPointer(ctypes.Structure):
            _fields_ = [("pad", ctypes.c_char * FAR), ("p", ctypes.c_void_p)]

        class FarObject(ctypes.Structure):
            _fields_ = [("pad", ctypes.c_char * FAR), ("o", ctypes.py_object)]

        assert FarPointer.p.offset == FarObject.o.offset == FAR
        del FarPointer._fields_, FarObject._fields_  # (the layout stays as it was)
        print(holds_pointer(FarPointer), holds_py_object(FarPointer))
        print(holds_pointer(FarObject), holds_py_object(FarObject))
        """
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout == "True False\nFalse True\n"
