"""The checks on ctypes types see the whole type, and every count is an exact int.

- Inherited ``_fields_``, nested Structures and Unions (anonymous ones too),
  bitfields, arrays of any depth and subclasses of simple types are all
  visited: a ``py_object`` anywhere is refused, a pointer anywhere is cleared.
- Function pointer fields (``CFUNCTYPE``...) count as pointers.
- Incomplete types (no ``_fields_`` yet) get a ``TypeError`` from every entry
  point and nothing is cached for them.
- What ctypes laid out counts, not only what the class dict says now: a
  ``_fields_`` reassigned (refused by ctypes, stored all the same) or deleted,
  or a ``_type_`` set, hides no ``py_object`` and no pointer.
- Counts go through ``operator.index`` to an exact ``int``.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np
import pytest
from conftest import run_python

import linalloc
from linalloc import BumpArena, Layout, TypedArena, _layout
from linalloc._layout import check_count, check_int, holds_pointer, holds_py_object

CB = ctypes.CFUNCTYPE(ctypes.c_int)
PYCB = ctypes.PYFUNCTYPE(ctypes.c_int)


# -- shapes that hold a pointer or a py_object somewhere --------------------------

# Defines in a fresh interpreter (the crash tests) or here: one shared source.
SHAPES = """
import ctypes

CB = ctypes.CFUNCTYPE(ctypes.c_int)
PYCB = ctypes.PYFUNCTYPE(ctypes.c_int)


class VoidP(ctypes.c_void_p):
    pass


class Base(ctypes.Structure):
    _fields_ = [("n", ctypes.c_int32), ("s", ctypes.c_char_p)]


class Derived(Base):  # inherits every field
    pass


class Deeper(Derived):  # its own fields, and a pointer two classes up
    _fields_ = [("k", ctypes.c_int16)]


class VoidBase(ctypes.Structure):
    _fields_ = [("v", VoidP)]  # a subclass of a simple pointer type


class VoidChild(VoidBase):
    _fields_ = [("b", ctypes.c_uint8, 3), ("c", ctypes.c_uint8, 5)]  # bitfields


class Callback(ctypes.Structure):
    _fields_ = [("n", ctypes.c_int8), ("f", CB)]


class Callbacks(ctypes.Structure):
    _fields_ = [("fs", CB * 3), ("g", PYCB)]


class Inner(ctypes.Union):
    _fields_ = [("i", ctypes.c_int64), ("d", Deeper)]


class Nested(ctypes.Structure):
    _anonymous_ = ("u",)
    _fields_ = [
        ("bits", ctypes.c_uint32, 3),
        ("u", Inner),
        ("rows", (Deeper * 2) * 2),
        ("w", VoidChild),
    ]


class FromNested(Nested):
    _fields_ = [("tail", ctypes.c_int8)]


def pointers_are_null(value):
    '''True if every pointer in ``value`` reads as NULL (reading crashes if stale).'''
    if isinstance(value, ctypes.Array):
        return all(pointers_are_null(item) for item in value)
    if isinstance(value, ctypes._CFuncPtr):  # (calling a NULL one would crash ctypes)
        return not value
    if isinstance(value, Base):
        return value.s is None
    if isinstance(value, VoidBase):
        return value.v.value is None
    if isinstance(value, Callback):
        return not value.f
    if isinstance(value, Callbacks):
        return not any(value.fs) and not value.g
    if isinstance(value, Nested):
        return (
            value.d.s is None  # through the anonymous union
            and pointers_are_null(value.rows)
            and pointers_are_null(value.w)
        )
    raise AssertionError(type(value))


POINTER_SHAPES = {
    "Deeper": Deeper,
    "VoidChild": VoidChild,
    "Callback": Callback,
    "Callbacks": Callbacks,
    "CB*4": CB * 4,
    "Nested": Nested,
    "FromNested": FromNested,
    "Deeper*3": Deeper * 3,
    "(Deeper*2)*3": (Deeper * 2) * 3,
    "(Callback*2)*2": (Callback * 2) * 2,
}
"""

_namespace: dict[str, Any] = {}
exec(SHAPES, _namespace)
POINTER_SHAPES: dict[str, Any] = _namespace["POINTER_SHAPES"]


@pytest.mark.parametrize("name", list(POINTER_SHAPES))
def test_holds_pointer_sees_the_whole_type(name: str) -> None:
    ctype = POINTER_SHAPES[name]
    assert holds_pointer(ctype)
    assert _layout.ctype_info(ctype) == (ctypes.sizeof(ctype), ctypes.alignment(ctype), True)


def _null(value: Any) -> bool:
    """True if a function pointer, or all in an array, are NULL (bool() only reads them)."""
    if isinstance(value, ctypes.Array):
        return all(_null(item) for item in value)
    return not value


@pytest.mark.parametrize("ctype", [CB, PYCB, CB * 2, (PYCB * 2) * 2])
def test_function_pointers_are_pointers(ctype: Any, bump_cls: Any) -> None:
    """Only types holding a pointer are cleared: the others keep their bytes."""
    assert holds_pointer(ctype)

    class Plain(ctypes.Structure):
        _fields_ = [("a", ctypes.c_int32), ("b", ctypes.c_double * 3)]

    class PlainChild(Plain):
        _fields_ = [("c", ctypes.c_uint8, 4)]

    holder = type("Holder", (ctypes.Structure,), {"_fields_": [("n", ctypes.c_int8), ("f", ctype)]})
    arena = bump_cls(4096)
    for _ in range(3):  # windows of 1, 2, 4 values
        dirty = arena.alloc_uninit_slice(Layout(4096))
        dirty[:] = b"\xff" * 4096
        del dirty
        arena.reset()
        held = [arena.alloc(holder) for _ in range(7)]
        assert all(_null(value.f) for value in held)
        assert _null(arena.alloc_array(ctype * 2, 3))  # (CB itself is no data type)
        plain = arena.alloc(PlainChild)
        assert plain.a == -1 and not holds_pointer(PlainChild)
        assert _layout.ctype_info(PlainChild)[2] is False
        del held, plain
        arena.reset()


CRASH_CHECK = """
from linalloc import BumpArena, BumpArenaLazy, Layout

for kind in (BumpArena, BumpArenaLazy):
    for name, ctype in POINTER_SHAPES.items():
        size = ctypes.sizeof(ctype)
        capacity = 16 * size
        arena = kind(capacity)
        for how in ("alloc", "alloc_array"):
            dirty = arena.alloc_uninit_slice(Layout(capacity))
            dirty[:] = b"\\xff" * capacity
            del dirty
            arena.reset()
            if how == "alloc":  # one by one: windows of growing sizes
                values = []
                while True:
                    value = arena.alloc(ctype)
                    if value is None:
                        break
                    values.append(value)
                assert len(values) == 16, (name, len(values))
            else:
                values = [arena.alloc_array(ctype, 5), arena.alloc_array(ctype, 11)]
            for value in values:
                assert pointers_are_null(value), (kind.__name__, name, how)
            del values, value
            arena.reset()
        arena.close()
print("ok")
"""


def test_bump_clears_every_pointer_in_the_type() -> None:
    """Stale 0xFF bytes under a pointer anywhere in the type would crash the reader."""
    result = run_python(SHAPES + CRASH_CHECK)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"


# -- py_object at any depth is refused -----------------------------------------------


class PyBase(ctypes.Structure):
    _fields_ = [("n", ctypes.c_int32), ("obj", ctypes.py_object)]


class PyDerived(PyBase):
    pass


class PyDeeper(PyDerived):  # its own fields, and a py_object two classes up
    _fields_ = [("k", ctypes.c_int32)]


class PyObjectChild(ctypes.py_object):
    pass


class PyChildBase(ctypes.Structure):
    _fields_ = [("o", PyObjectChild)]


class PyChildDerived(PyChildBase):
    _fields_ = [("b", ctypes.c_uint8, 2)]


class PyInUnion(ctypes.Union):
    _fields_ = [("i", ctypes.c_int64), ("d", PyDeeper)]


class PyAnonymous(ctypes.Structure):
    _anonymous_ = ("u",)
    _fields_ = [("flag", ctypes.c_uint8, 1), ("u", PyInUnion)]


class PyInArrays(ctypes.Structure):
    _fields_ = [("grid", (PyDeeper * 2) * 3)]


class PyFromNested(PyAnonymous):
    _fields_ = [("tail", ctypes.c_int8)]


PY_SHAPES: list[Any] = [
    PyDeeper,
    PyChildDerived,
    PyInUnion,
    PyAnonymous,
    PyInArrays,
    PyFromNested,
    PyDeeper * 2,
    (PyFromNested * 1) * 2,
]


@pytest.mark.parametrize("ctype", PY_SHAPES, ids=lambda t: t.__name__)
def test_py_object_anywhere_is_refused(ctype: Any, typed_cls: Any, bump_cls: Any) -> None:
    assert holds_py_object(ctype)
    with pytest.raises(TypeError, match="py_object"):
        typed_cls(ctype, 4)
    arena = bump_cls(1024)
    with pytest.raises(TypeError, match="py_object"):
        arena.alloc(ctype)
    with pytest.raises(TypeError, match="py_object"):
        arena.alloc_array(ctype, 2)
    assert arena.used == 0 and arena.live_views() == 0
    # A pointer stores an address: what it points to may hold a py_object.
    holder = type("Holder", (ctypes.Structure,), {"_fields_": [("p", ctypes.POINTER(ctype))]})
    assert not holds_py_object(holder)
    assert typed_cls(holder, 2).alloc() is not None


# -- the class dict changed after ctypes laid the type out ---------------------------
#
# ctypes refuses a second ``_fields_`` ("_fields_ is final") only after
# ``type.__setattr__`` stored it in the class dict, and ``del`` removes it
# without a word; ``_type_`` of an array or a simple subclass can be set. The
# layout (and the field descriptors that read and write it) stays as it was.


def _forge_fields(klass: Any, how: str) -> None:
    """Change ``klass._fields_`` in its dict the ways ctypes lets through."""
    if how == "reassigned":
        with pytest.raises(AttributeError, match="_fields_ is final"):
            klass._fields_ = [("a", ctypes.c_int64), ("b", ctypes.c_int64)]
        assert klass.__dict__["_fields_"][0][1] is ctypes.c_int64  # (stored all the same)
    else:
        del klass._fields_
        assert "_fields_" not in klass.__dict__


FORGERIES = ["reassigned", "deleted"]
POINTER_FIELDS: list[Any] = [
    ctypes.POINTER(ctypes.c_int64),
    ctypes.c_void_p,
    ctypes.c_char_p,
    CB,
    type("VoidChild", (ctypes.c_void_p,), {}),
]


@pytest.mark.parametrize("how", FORGERIES)
def test_forged_fields_do_not_hide_a_py_object(how: str, typed_cls: Any, bump_cls: Any) -> None:
    class Hidden(ctypes.Structure):
        _fields_ = [("a", ctypes.py_object), ("b", ctypes.c_int64)]

    class Outer(ctypes.Structure):
        _fields_ = [("n", ctypes.c_int8), ("inner", Hidden * 2)]

    _forge_fields(Hidden, how)
    message = "Hidden holds a py_object: arena memory cannot own Python references"
    for ctype in (Hidden, Outer, Hidden * 3):
        assert holds_py_object(ctype)
        with pytest.raises(TypeError, match="py_object"):
            typed_cls(ctype, 4)
    with pytest.raises(TypeError, match="^" + message):
        typed_cls(Hidden, 4)
    arena = bump_cls(256)
    with pytest.raises(TypeError, match="^" + message):
        arena.alloc(Hidden)
    with pytest.raises(TypeError, match="py_object"):
        arena.alloc_array(Outer, 2)
    assert arena.used == 0 and arena.live_views() == 0
    assert Layout.new(Hidden) == Layout(16, 8)  # (a Layout may describe it)


@pytest.mark.parametrize("how", FORGERIES)
@pytest.mark.parametrize("field", POINTER_FIELDS, ids=lambda t: t.__name__)
def test_forged_fields_do_not_hide_a_pointer(how: str, field: Any, bump_cls: Any) -> None:
    class Hidden(ctypes.Structure):
        _fields_ = [("a", field), ("b", ctypes.c_int64)]

    class Outer(ctypes.Structure):
        _fields_ = [("n", ctypes.c_int8), ("inner", Hidden)]

    _forge_fields(Hidden, how)
    for ctype in (Hidden, Outer, Hidden * 2):
        assert holds_pointer(ctype) and _layout.ctype_info(ctype)[2] is True
    arena = bump_cls(1024)
    dirty = arena.alloc_uninit_slice(Layout(1024))
    dirty[:] = b"\xff" * 1024
    del dirty
    arena.reset()
    value = arena.alloc(Outer)
    assert bytes(value) == bytes(ctypes.sizeof(Outer))  # zeroed, no stale address
    del value
    arena.close()


def test_forged_type_codes_do_not_hide_a_py_object_or_a_pointer() -> None:
    objects = ctypes.py_object * 2
    objects._type_ = ctypes.c_int64  # (same size: the array's size check passes)

    class ObjectChild(ctypes.py_object):
        pass

    class VoidChild(ctypes.c_void_p):
        pass

    ObjectChild._type_ = "q"
    VoidChild._type_ = "q"
    for ctype in (objects, ObjectChild):
        assert holds_py_object(ctype)
        with pytest.raises(TypeError, match="holds a py_object"):
            TypedArena(ctype, 4)
    assert holds_pointer(VoidChild) and _layout.ctype_info(VoidChild)[2] is True


def test_a_field_descriptor_from_another_type_is_refused() -> None:
    class Big(ctypes.Structure):
        _fields_ = [("pad", ctypes.c_char * 64), ("far", ctypes.c_int64)]

    class Objects(ctypes.Structure):
        _fields_ = [("obj", ctypes.py_object)]

    class Small(ctypes.Structure):
        _fields_ = [("x", ctypes.c_int64)]

    class Other(ctypes.Structure):
        _fields_ = [("x", ctypes.c_int64)]

    Small.x = Big.__dict__["far"]  # reads 8 bytes at offset 64 of an 8-byte value
    with pytest.raises(TypeError, match="^Small: Small.x is not a field of Small$"):
        _layout.ctype_info(Small)
    Other.x = Objects.__dict__["obj"]  # reads a py_object where an int64 was laid out
    assert holds_py_object(Other)
    with pytest.raises(TypeError, match="holds a py_object"):
        TypedArena(Other, 2)


FORGED_CRASH = """
import ctypes, sys
import linalloc
from linalloc import Layout

class S(ctypes.Structure):
    _fields_ = [("obj", ctypes.py_object), ("n", ctypes.c_int64)]

try:
    S._fields_ = [("obj", ctypes.c_int64), ("n", ctypes.c_int64)]
except AttributeError:
    pass
for kind in (linalloc.BumpArena, linalloc.BumpArenaLazy):
    arena = kind(64)
    view = arena.alloc_uninit_slice(Layout(64, 8))
    view[:] = b"\x41" * 64
    del view
    arena.reset()
    try:
        value = arena.alloc(S)
    except TypeError:
        continue
    print(repr(value.obj))  # would follow 0x4141414141414141 as a PyObject*
    sys.exit(3)
for kind in (linalloc.TypedArena, linalloc.TypedArenaLazy):
    try:
        kind(S, 4)
    except TypeError:
        continue
    sys.exit(4)
print("refused")
"""


def test_a_refused_fields_reassignment_does_not_hand_out_a_py_object() -> None:
    """The arenas must refuse the type, not read a py_object out of stale bytes."""
    result = run_python(FORGED_CRASH)
    assert result.returncode == 0, (result.returncode, result.stderr[-3000:])
    assert result.stdout.strip() == "refused"


# -- incomplete types -----------------------------------------------------------------


def _fresh(base: Any = ctypes.Structure) -> Any:
    return type("Later", (base,), {})


ENTRY_POINTS: dict[str, Any] = {
    "Layout.new": lambda t: Layout.new(t),
    "Layout.array": lambda t: Layout.array(t, 3),
    "TypedArena": lambda t: TypedArena(t, 4),
    "TypedArenaLazy": lambda t: linalloc.TypedArenaLazy(t, 4),
    "BumpArena.alloc": lambda t: BumpArena(256).alloc(t),
    "BumpArena.alloc_array": lambda t: BumpArena(256).alloc_array(t, 3),
    "BumpArenaLazy.alloc": lambda t: linalloc.BumpArenaLazy(256).alloc(t),
    "BumpArenaLazy.alloc_array": lambda t: linalloc.BumpArenaLazy(256).alloc_array(t, 3),
    "ctype_info": lambda t: _layout.ctype_info(t),
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("base", [ctypes.Structure, ctypes.Union])
def test_incomplete_type_is_type_error_then_works_once_complete(entry: str, base: Any) -> None:
    call = ENTRY_POINTS[entry]
    later = _fresh(base)
    for _ in range(2):  # the failure is not cached either
        with pytest.raises(TypeError, match="incomplete.*_fields_"):
            call(later)
    later._fields_ = [("a", ctypes.c_int32), ("b", ctypes.c_int64)]
    assert call(later) is not None
    size, align = ctypes.sizeof(later), ctypes.alignment(later)
    assert Layout.new(later) == Layout(size, align)
    assert _layout.ctype_info(later) == (size, align, False)
    # Empty complete types stay valid: ``_fields_ = []``, a subclass of one, arrays.
    empty = _fresh(base)
    empty._fields_ = []
    for ctype in (empty, type("EmptyChild", (empty,), {}), empty * 4):
        assert call(ctype) is not None
        assert Layout.new(ctype) == Layout(0, 1)
        assert _layout.ctype_info(ctype) == (0, 1, False)


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_incomplete_type_nested_anywhere_is_type_error(entry: str) -> None:
    call = ENTRY_POINTS[entry]
    inner = _fresh()
    outer = type("Outer", (ctypes.Structure,), {"_fields_": [("x", ctypes.c_int), ("i", inner)]})
    array_inner = _fresh(ctypes.Union)
    in_array = type("InArray", (ctypes.Structure,), {"_fields_": [("a", array_inner * 2)]})
    incomplete_base = _fresh()
    child = type("Child", (incomplete_base,), {})
    for ctype in (outer, outer * 2, in_array, child, _fresh() * 3):
        with pytest.raises(TypeError, match="incomplete"):
            call(ctype)


def test_incomplete_refused_changes_nothing(bump_cls: Any) -> None:
    arena = bump_cls(256)
    kept = arena.alloc(ctypes.c_int64)
    used = arena.used
    later = _fresh()
    with pytest.raises(TypeError, match="incomplete"):
        arena.alloc(later)
    with pytest.raises(TypeError, match="incomplete"):
        arena.alloc_array(later, 2)
    assert arena.used == used and arena.live_views() == 1
    del kept
    arena.reset()


def test_inheriting_subclass_is_not_cached_before_it_gets_fields() -> None:
    """A subclass without its own ``_fields_`` may still get some: its size grows."""
    code = (
        SHAPES
        + """
from linalloc import BumpArena, Layout

class Grows(Base):
    pass

assert BumpArena(0).alloc(Grows) is None  # full: nothing made, Grows stays open
assert Layout.new(Grows) == Layout(16, 8)
Grows._fields_ = [("t", ctypes.c_char_p)]
assert ctypes.sizeof(Grows) == 24
arena = BumpArena(24 * 4)
dirty = arena.alloc_uninit_slice(Layout(24 * 4))
dirty[:] = b"\\xff" * (24 * 4)
del dirty
arena.reset()
value = arena.alloc(Grows)
assert arena.used == 24, arena.used
assert value.s is None and value.t is None
assert arena.alloc_array(Grows, 3)[2].t is None
assert arena.used == 96
print("ok")
"""
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"


def test_stale_array_type_is_refused() -> None:
    """An array type made while its element was incomplete never matches it again."""
    later = _fresh()
    stale = later * 3
    later._fields_ = [("a", ctypes.c_int32)]
    for kind in (BumpArena, linalloc.BumpArenaLazy):
        with pytest.raises(TypeError, match="array type"):
            kind(64).alloc(stale)
    with pytest.raises(TypeError, match="array type"):
        TypedArena(stale, 4)
    with pytest.raises(TypeError, match="array type"):
        _layout.ctype_info(stale)


def test_self_referential_and_deep_types(bump_cls: Any, typed_cls: Any) -> None:
    deep: Any = ctypes.c_int8
    for _ in range(2000):  # deeper than the recursion limit
        deep = deep * 1
    assert bump_cls(16).alloc(deep) is not None
    assert typed_cls(deep, 2).alloc() is not None
    assert _layout.ctype_info(deep) == (1, 1, False)
    node = _fresh()
    node._fields_ = [("value", ctypes.c_int32), ("next", ctypes.POINTER(node))]
    assert not bump_cls(64).alloc(node).next
    assert _layout.ctype_info(node)[2] is True


def test_metaclass_equality_cannot_alias_cached_types() -> None:
    """Types are told apart by identity: a type equal to every other gets its own layout."""
    code = """
import ctypes
from linalloc import BumpArena, Layout

class AllEqual(type(ctypes.Structure)):
    def __eq__(cls, other):
        return True

    def __hash__(cls):
        return hash(ctypes.c_int8)

class Liar(ctypes.Structure, metaclass=AllEqual):
    _fields_ = [("p", ctypes.c_char_p)]

arena = BumpArena(64)
dirty = arena.alloc_uninit_slice(Layout(64))
dirty[:] = b"\\xff" * 64
del dirty
arena.reset()
assert arena.alloc(ctypes.c_int8) is not None
value = arena.alloc(Liar)
assert arena.used == 16, arena.used
assert value.p is None
print("ok")
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"


# -- counts ---------------------------------------------------------------------------


class Liar(int):
    """An int that says it is never smaller, larger or equal in order."""

    def __lt__(self, other: object) -> bool:
        return False

    def __gt__(self, other: object) -> bool:
        return False

    def __le__(self, other: object) -> bool:
        return False

    def __ge__(self, other: object) -> bool:
        return False


def test_counts_become_exact_ints() -> None:
    for value in (Liar(16), np.int64(16), np.uint16(16), np.intp(16)):
        assert type(check_int("n", value)) is int and check_int("n", value) == 16
        assert type(check_count("n", value)) is int
    layout = Layout(Liar(24), Liar(8))
    assert type(layout.size) is int and type(layout.align) is int
    assert Layout.array(ctypes.c_int32, Liar(3)) == Layout(12, 4)
    with pytest.raises(ValueError):
        check_count("n", Liar(-1))


NOT_INDEXES: list[Any] = [True, False, np.bool_(True), 1.0, np.float64(2.0), "3", None]


def test_numpy_counts_are_accepted(bump_cls: Any, typed_cls: Any) -> None:
    """Anything with ``__index__`` is a count (numpy integers); bool and floats are not."""
    arena = bump_cls(np.int64(64))
    assert arena.capacity == 64 and type(arena.capacity) is int
    row = arena.alloc_array(ctypes.c_int32, np.int32(4))
    assert len(row) == 4 and arena.used == 16
    typed = typed_cls(ctypes.c_int64, np.uint8(3))
    assert typed.capacity == 3 and type(typed.capacity) is int
    assert Layout(np.int64(16), np.int64(8)) == Layout(16, 8)
    assert Layout.array(ctypes.c_int16, np.int16(3)) == Layout(6, 2)
    for bad in NOT_INDEXES:
        with pytest.raises(TypeError):
            bump_cls(bad)
        with pytest.raises(TypeError):
            typed_cls(ctypes.c_int32, bad)
        with pytest.raises(TypeError):
            arena.alloc_array(ctypes.c_int8, bad)
        with pytest.raises(TypeError):
            Layout.array(ctypes.c_int32, bad)
        with pytest.raises(TypeError):
            Layout(bad, 8)
    assert arena.used == 16


def test_lying_capacity_keeps_the_bounds() -> None:
    code = (
        LIAR_SOURCE
        + """
import ctypes
from linalloc import BumpArena, BumpArenaLazy, Layout, TypedArena

for kind in (BumpArena, BumpArenaLazy):
    arena = kind(Liar(16))
    assert arena.alloc_uninit_slice(Layout(1 << 20)) is None
    assert arena.alloc_array(ctypes.c_char, Liar(1 << 20)) is None
    assert arena.alloc_array(ctypes.c_char, 1 << 20) is None
    values = [arena.alloc(ctypes.c_int64) for _ in range(4)]
    assert values[2] is None and values[3] is None and arena.used == 16
    row = arena.alloc_array(ctypes.c_char, Liar(0))
    assert len(row) == 0
    assert type(arena.capacity) is int and arena.capacity == 16
typed = TypedArena(ctypes.c_int64, Liar(2))
assert type(typed.capacity) is int
assert [typed.alloc(7) is None for _ in range(3)] == [False, False, True]
print("ok")
"""
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"


LIAR_SOURCE = """
class Liar(int):
    __lt__ = __gt__ = __le__ = __ge__ = lambda self, other: False
"""
