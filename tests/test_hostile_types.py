"""Types whose classes or metaclasses lie: a metaclass property that hides a
``py_object`` field, a metaclass ``__new__`` or ``__mul__`` that answers another
type, an ``__instancecheck__`` that accepts a smaller value, methods set on the
array types the arenas use, and an object posing as a memoryview.

Each test asserts the promise (no memory handed out twice, no crash, a rewind
refused while a view lives): the type or object is refused, or handled safely.
Those whose failure is a crash run the attack in a child interpreter.
"""

from __future__ import annotations

import ctypes
import itertools
from typing import Any

import pytest
from conftest import BUMP_KINDS, TYPED_KINDS, run_python

import linalloc
from linalloc import Layout, address

ALL_KINDS = BUMP_KINDS + TYPED_KINDS
BUMP_NAMES = [cls.__name__ for cls in BUMP_KINDS]
TYPED_NAMES = [cls.__name__ for cls in TYPED_KINDS]

#: What a correct arena may raise to refuse a type or object that lies.
REFUSED = (TypeError, ValueError)


def overlap(first: int, first_size: int, second: int, second_size: int) -> bool:
    """Whether the byte ranges ``[first, first + first_size)`` and ``[second, ...)`` meet."""
    return first < second + second_size and second < first + first_size


def ran_clean(code: str) -> str:
    """Run ``code`` in a child interpreter; assert it exited 0 and return its last line."""
    result = run_python(code, timeout=60)
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr[-600:])
    return result.stdout.splitlines()[-1]


# -- a py_object field hidden from the type walk ------------------------------------------

_HIDDEN_PY_OBJECT = """
import ctypes, linalloc

if {hiding!r} == "dict":
    class Meta(type(ctypes.Structure)):
        @property
        def __dict__(cls):
            return {{}}

    class T(ctypes.Structure, metaclass=Meta):
        _fields_ = [("o", ctypes.py_object)]
else:
    class Meta(type(ctypes.Structure)):
        @property
        def __mro__(cls):
            return (cls,)

    class Base(ctypes.Structure):
        _fields_ = [("o", ctypes.py_object)]

    class T(Base, metaclass=Meta):
        pass

kind = linalloc.{kind}
if kind in (linalloc.TypedArena, linalloc.TypedArenaLazy):
    try:
        kind(T, 4)
    except (TypeError, ValueError):
        print("refused")
    else:
        print("accepted")
    raise SystemExit

arena = kind(4096)
stale = arena.alloc_uninit_slice(linalloc.Layout(8, 8))
stale[:] = (0x4141414141414141).to_bytes(8, "little")
del stale
arena.reset()
try:
    value = arena.alloc(T)
except (TypeError, ValueError):
    print("refused")
    raise SystemExit
print("allocated", flush=True)
try:
    value.o
except ValueError:  # a NULL py_object
    pass
print("read")
"""


@pytest.mark.parametrize("hiding", ["dict", "mro"])
@pytest.mark.parametrize("kind", BUMP_NAMES + TYPED_NAMES)
def test_a_py_object_hidden_by_the_metaclass_is_refused(kind: str, hiding: str) -> None:
    """A metaclass property ``__dict__`` (or ``__mro__``) hides a ``py_object`` field
    (or the base holding one): a typed arena must refuse the type as it refuses any
    type holding a ``py_object``; a bump arena must refuse it or hand out a value
    that does not read stale bytes as a Python object (a crash)."""
    last = ran_clean(_HIDDEN_PY_OBJECT.format(kind=kind, hiding=hiding))
    if kind in TYPED_NAMES:
        assert last == "refused"
    else:
        assert last in ("refused", "read")


# -- a metaclass __new__ answering another type for the arena's own subclass ---------------

_SLOT_TYPE_SWAP = """
import ctypes, linalloc

class Meta(type(ctypes.c_int64)):
    def __new__(mcls, name, bases, ns, **kw):
        if any(isinstance(base, mcls) for base in bases):  # a subclass of I64
            other = ctypes.{other}
            return type(other)("Other", (other,), {{}})
        return super().__new__(mcls, name, bases, ns, **kw)

class I64(ctypes._SimpleCData, metaclass=Meta):
    _type_ = "q"

size = ctypes.sizeof(I64)
try:
    arena = linalloc.{kind}(I64, 16)
    many = arena.alloc_many(2)
    one = arena.alloc()
except (TypeError, ValueError):
    print("refused")
    raise SystemExit
start = ctypes.addressof(many)
where = ctypes.addressof(one)
assert not (start < where + size and where < start + 2 * size), (start, where)
values = arena.as_array()
for i in range(len(values)):
    values[i] = 0x4141414141414141
print("written", flush=True)
try:
    one.value
except ValueError:
    pass
print("ok")
"""


@pytest.mark.parametrize("other", ["c_int8", "py_object"])
@pytest.mark.parametrize("kind", TYPED_NAMES)
def test_a_metaclass_cannot_swap_the_slot_type(kind: str, other: str) -> None:
    """The type's metaclass answers every subclass made of it with a subclass of
    another type (a 1-byte ``c_int8``, a ``py_object``): the arena must refuse the
    type or still hand out values that neither overlap an ``alloc_many()`` array nor
    read the arena's bytes as a Python object."""
    assert ran_clean(_SLOT_TYPE_SWAP.format(kind=kind, other=other)) in ("refused", "ok")


# -- a size cached before the type is complete ---------------------------------------------


def test_a_type_that_grows_after_its_size_is_taken_does_not_overlap(bump_cls: type) -> None:
    """A metaclass property ``__dict__`` claims ``_fields_`` for a subclass that has
    none of its own yet; once allocated, the subclass is given ``_fields_`` and grows.
    An array of it then must not overlap the next allocation."""

    class Meta(type(ctypes.Structure)):  # type: ignore[misc]
        @property
        def __dict__(cls) -> dict[str, Any]:  # type: ignore[override]
            own = dict(type.__dict__["__dict__"].__get__(cls))
            own.setdefault("_fields_", [])
            return own

    class Base(ctypes.Structure):
        _fields_ = [("a", ctypes.c_int64)]

    class D(Base, metaclass=Meta):
        pass

    arena = bump_cls(256)
    try:
        probe = arena.alloc_array(D, 1)
    except REFUSED:
        pass
    else:
        del probe
    arena.reset()
    try:
        D._fields_ = [("big", ctypes.c_char * 64)]
    except AttributeError:  # the layout was made final: D cannot grow
        return
    try:
        array = arena.alloc_array(D, 2)
    except REFUSED:
        return
    assert array is not None
    after = arena.alloc_uninit_slice(Layout(16))
    assert not overlap(ctypes.addressof(array), ctypes.sizeof(array), address(after), len(after))


# -- `ctype * n` answering an array of another layout --------------------------------------

_ARRAY_TYPE_LIES = """
import ctypes, linalloc

class Meta(type(ctypes.c_int64)):
    def __mul__(cls, n):
        fake = ctypes.py_object * n  # laid out as n py_objects
        fake._type_ = cls            # its dict says: n of cls
        return fake

class I(ctypes.c_int64, metaclass=Meta):
    pass

kind = linalloc.{kind}
try:
    if kind in (linalloc.TypedArena, linalloc.TypedArenaLazy):
        arena = kind(I, 4)
        arena.alloc(0x4141414141414141)
    else:
        arena = kind(4096)
        stale = arena.alloc_uninit_slice(linalloc.Layout(8, 8))
        stale[:] = (0x4141414141414141).to_bytes(8, "little")
        del stale
        arena.reset()
    array = arena.{call}
except (TypeError, ValueError):
    print("refused")
    raise SystemExit
print("made", flush=True)
item = array[0]  # (a py_object over the arena's bytes: a crash, or NULL)
assert isinstance(item, (int, I)), type(item)
print("ok")
"""


@pytest.mark.parametrize(
    ("kind", "call"),
    [(name, "alloc_array(I, 1)") for name in BUMP_NAMES]
    + [(name, call) for name in TYPED_NAMES for call in ("as_array()", "alloc_many(1)")],
)
def test_an_array_type_relabelled_by_a_metaclass_mul_is_not_trusted(kind: str, call: str) -> None:
    """The metaclass answers ``I * n`` with ``py_object * n`` whose ``_type_`` is
    re-assigned to ``I``: the arrays ``alloc_array()``, ``as_array()`` and
    ``alloc_many()`` hand out must be refused or really hold ``I`` items, not
    ``py_object`` items over the arena's bytes (read as an address: a crash)."""
    assert ran_clean(_ARRAY_TYPE_LIES.format(kind=kind, call=call)) in ("refused", "ok")


# -- an __instancecheck__ accepting a smaller value ----------------------------------------

_SMALL_VALUE = """
import ctypes, linalloc

class Meta(type(ctypes.Structure)):
    def __instancecheck__(cls, obj):
        return isinstance(obj, ctypes._SimpleCData) or type.__instancecheck__(cls, obj)

class Big(ctypes.Structure, metaclass=Meta):
    _fields_ = [("data", ctypes.c_char * 4096)]

source = linalloc.BumpArenaLazy(1 << 24)
pad = source.alloc_uninit_slice(linalloc.Layout(source.commit_step - 1))
last = source.alloc(ctypes.c_char)  # the last committed byte: the next page is not readable
assert linalloc.address(last) - linalloc.address(pad) + 1 == source.committed
arena = linalloc.{kind}(Big, 2)
try:
    arena.{call}
except (TypeError, ValueError):
    print("refused")
    raise SystemExit
print("ok")
"""


@pytest.mark.parametrize("call", ["alloc_raw(last)", "alloc_extend([last])"])
@pytest.mark.parametrize("kind", TYPED_NAMES)
def test_a_smaller_value_passing_the_instance_check_is_not_over_read(kind: str, call: str) -> None:
    """The type's metaclass ``__instancecheck__`` accepts any simple value: storing a
    1-byte value, on the last readable byte, into an arena of a 4096-byte type must
    be refused, not copy 4096 bytes from it (reading unmapped memory: a crash)."""
    assert ran_clean(_SMALL_VALUE.format(kind=kind, call=call)) in ("refused", "ok")


# -- methods set on the array types the arenas use -----------------------------------------


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda cls: cls.__name__)
def test_a_from_buffer_set_on_the_array_type_does_not_alias(kind: type) -> None:
    """A ``from_buffer`` set on ``P * 2`` (ctypes' cached class, after the arena has
    made one array of it) answers the arena's first bytes: the next array of two
    must not overlap the first."""

    class P(ctypes.Structure):
        _fields_ = [("x", ctypes.c_int64)]

    typed = kind in TYPED_KINDS
    arena = kind(P, 8) if typed else kind(256)
    first = arena.alloc_many(2) if typed else arena.alloc_array(P, 2)
    pair = P * 2
    real = type(pair).__dict__["from_buffer"]
    pair.from_buffer = classmethod(  # type: ignore[method-assign, assignment]
        lambda cls, buffer, offset=0: real(cls, buffer, 0)
    )
    try:
        try:
            second = arena.alloc_many(2) if typed else arena.alloc_array(P, 2)
        except REFUSED:
            return
        assert not overlap(
            ctypes.addressof(first),
            ctypes.sizeof(first),
            ctypes.addressof(second),
            ctypes.sizeof(second),
        )
    finally:
        del pair.from_buffer


def test_a_getitem_set_on_the_slot_array_does_not_alias(typed_cls: type) -> None:
    """A ``__getitem__`` set on the class of a value's base (the arena's slot array)
    answers slot 0 for every index: a value allocated after a checkpoint must not
    overlap one that is still alive."""

    class P(ctypes.Structure):
        _fields_ = [("x", ctypes.c_int64)]

    arena = typed_cls(P, 64)
    first = arena.alloc()
    slots = type(first._b_base_)
    real = ctypes.Array.__getitem__

    def getitem(self: Any, index: Any) -> Any:
        if isinstance(index, slice):
            return [real(self, 0) for _ in range(*index.indices(len(self)))]
        return real(self, 0)

    slots.__getitem__ = getitem
    try:
        with arena.scope():
            try:
                second = arena.alloc()
            except REFUSED:
                return
            where = ctypes.addressof(second)
            del second
    finally:
        del slots.__getitem__
    assert where != ctypes.addressof(first)


# -- objects posing as the arena's own ------------------------------------------------------


def test_grow_of_an_object_posing_as_a_memoryview_does_not_free_a_live_view(
    bump_cls: type,
) -> None:
    """``grow()`` is given a ctypes array over the first allocation whose ``__class__``
    answers ``memoryview`` and whose ``nbytes`` is 16, then the arena's ``used``:
    it must refuse it, or not give the memory of a later, live view to the next
    allocation."""
    reads = itertools.chain([16], itertools.repeat(32))

    class Fake(ctypes.Array):  # type: ignore[type-arg]
        _type_ = ctypes.c_char
        _length_ = 16
        __class__ = property(lambda self: memoryview)
        nbytes = property(lambda self: next(reads))

    arena = bump_cls(64)
    first = arena.alloc_uninit_slice(Layout(16))
    second = arena.alloc_uninit_slice(Layout(16))
    try:
        arena.grow(Fake.from_buffer(first), 16)
    except REFUSED:
        return
    third = arena.alloc_uninit_slice(Layout(16))
    assert not overlap(address(second), len(second), address(third), len(third))


# -- lies told to ``==``, ``len()`` and ``isinstance`` -----------------------------------------

_SMALL_SOURCE = """
import ctypes, linalloc

class Meta(type(ctypes.Structure)):
    def __eq__(cls, other):  # (``ctype in mro`` asks this)
        return other is ctypes.c_char or type.__eq__(cls, other)
    __hash__ = type.__hash__
    def __instancecheck__(cls, obj):  # (ctypes' own store asks this)
        return type(obj) is ctypes.c_char or type.__instancecheck__(cls, obj)

class Big(ctypes.Structure, metaclass=Meta):
    _fields_ = [("data", ctypes.c_char * 4096), ("p", ctypes.c_void_p)]

lazy = linalloc.BumpArenaLazy(1 << 24)
pad = lazy.alloc_uninit_slice(linalloc.Layout(lazy.commit_step - 1))
last = lazy.alloc(ctypes.c_char)  # the last committed byte: the next page is not readable
class Fake:  # (poses as an array of one Big holding ``last``)
    __class__ = property(lambda self: Big * 1)
    _type_ = Big
    def __len__(self):
        return 1
    def __getitem__(self, index):
        return [last]

typed = linalloc.TypedArena(Big, 2)
try:
    typed.alloc_raw(last) if {how!r} == "alloc_raw" else typed.alloc_extend(Fake())
except TypeError as exc:
    print("refused")
else:
    print("stored")
"""


@pytest.mark.parametrize("how", ["alloc_raw", "alloc_extend"])
def test_a_smaller_value_passed_off_through_eq_or_a_fake_array_is_not_over_read(
    how: str,
) -> None:
    """A 1-byte ``c_char`` on the last readable byte, passed off as a 4 KiB struct: by a
    metaclass ``__eq__`` (which ``x in mro`` asks) and ``__instancecheck__``, or inside
    an object posing as an array of it. It is refused, never read past its end."""
    assert ran_clean(_SMALL_SOURCE.format(how=how)) in ("refused", "stored")


def test_a_len_set_on_the_root_class_does_not_trim_held_memory() -> None:
    """``__len__`` set on the class of the arena's root (a value reaches it through
    ``_b_base_`` and ``_objects``): ``trim()`` still keeps the memory held for values a
    drop callback kept, which read back the same."""
    kept: list[Any] = []
    arena: Any = linalloc.TypedArenaLazy(ctypes.c_int64, 1 << 20, drop=kept.append)
    for _ in range(arena.commit_step // 8):
        arena.alloc(7)
    arena.reset()  # the callback keeps every value: their memory is held
    slots = kept[-1]._b_base_
    root = next(iter(slots._objects.values())).obj
    del slots
    root_class = type(root)
    del root
    root_class.__len__ = lambda self: 0
    try:
        arena.trim()
    finally:
        del root_class.__len__
    assert arena.committed >= arena.commit_step
    assert kept[-1].value == 7 and kept[0].value == 7
    kept.clear()
    arena.close()


def test_cast_of_an_object_posing_as_a_byref_is_refused() -> None:
    """An object whose ``__class__`` says ``byref()``, pointing into an arena value but
    naming another object to keep: refused, so no pointer into the arena goes
    uncounted."""
    arena = linalloc.TypedArena(ctypes.c_int64, 4)
    value = arena.alloc(41)
    carg = type(ctypes.byref(ctypes.c_int()))

    class FakeRef:
        __class__ = property(lambda self: carg)  # type: ignore[assignment]

        def __init__(self, target: Any) -> None:
            self._as_parameter_ = ctypes.addressof(target)
            self._obj = ctypes.c_int64()

    with pytest.raises(TypeError):
        linalloc.cast(FakeRef(value), ctypes.POINTER(ctypes.c_int64))
    del value
    arena.reset()


class _LinkedWithObject(ctypes.Structure):
    pass


_LinkedWithObject._fields_ = [
    ("value", ctypes.c_int64),
    ("next", ctypes.POINTER(_LinkedWithObject)),
    ("obj", ctypes.POINTER(ctypes.py_object)),
]


@pytest.mark.parametrize("call", ["reset", "rewind", "close", "live_views"])
@pytest.mark.parametrize("kind", [*TYPED_KINDS, *BUMP_KINDS], ids=lambda cls: cls.__name__)
def test_an_object_a_value_keeps_runs_no_code_while_the_arena_counts(
    kind: type, call: str
) -> None:
    """A value's keep-alives can hold any object (a ``POINTER(py_object)`` field
    holds the object itself); asking whether it is a ctypes object must not read
    its ``__class__``, a property that could make a view in the middle of a count."""
    reads: list[str] = []

    class Spy:
        @property  # type: ignore[misc]
        def __class__(self) -> type:
            reads.append("__class__")
            return Spy

    typed = kind in TYPED_KINDS
    arena = kind(_LinkedWithObject, 8) if typed else kind(4096)
    start = arena.checkpoint()
    a, b, c = (arena.alloc(n) if typed else arena.alloc(_LinkedWithObject) for n in (1, 2, 3))
    a.obj = ctypes.pointer(ctypes.py_object(Spy()))
    b.next = ctypes.pointer(c)  # (a link inside the arena: walked by the count)
    del a, b, c
    reads.clear()
    if call == "live_views":
        assert arena.live_views() == 0
    elif call == "rewind":
        arena.rewind(start)
    else:
        getattr(arena, call)()
    assert reads == []


class _Pair(ctypes.Structure):
    _fields_ = [("a", ctypes.c_int64), ("b", ctypes.c_int64)]


def _derived_from(how: str, source: memoryview) -> object:
    if how == "numpy.frombuffer":
        numpy = pytest.importorskip("numpy")
        return numpy.frombuffer(source, dtype=numpy.uint8)
    return {
        "itself": lambda: source,
        "slice": lambda: source[1:],
        "memoryview": lambda: memoryview(source),
        "cast": lambda: source.cast("B"),
        "toreadonly": lambda: source.toreadonly(),
    }[how]()


@pytest.mark.xfail(
    strict=True,
    reason="known bug (README): the memoryview ctypes keeps an arena's array by, in the "
    "array's _objects, and what shares its buffer are not counted",
)
@pytest.mark.parametrize(
    "how", ["itself", "slice", "memoryview", "cast", "toreadonly", "numpy.frombuffer"]
)
@pytest.mark.parametrize("kind", [*TYPED_KINDS, *BUMP_KINDS], ids=lambda cls: cls.__name__)
def test_a_view_of_the_memoryview_an_arena_array_keeps_its_root_by_counts(
    kind: type, how: str
) -> None:
    """ctypes keeps an array made by ``from_buffer`` with a memoryview of the
    arena's memory, in the array's ``_objects``: a value's ``_b_base_`` reaches it.
    What shares its buffer is a view of the arena's memory, counted."""
    typed = kind in TYPED_KINDS
    arena = kind(_Pair, 4) if typed else kind(4096)
    value = arena.alloc() if typed else arena.alloc(_Pair)
    array = value._b_base_
    assert array is not None
    (source,) = [x for x in array._objects.values() if type(x) is memoryview]
    derived = _derived_from(how, source)
    del value, array, source
    for call in ("reset", "close"):
        with pytest.raises(BufferError, match="still alive"):
            getattr(arena, call)()
    assert arena.live_views() == 1
    del derived
    arena.reset()
    arena.close()


@pytest.mark.xfail(
    strict=True,
    reason="known bug (README): the memoryview ctypes keeps an arena's array by, in the "
    "array's _objects, and what shares its buffer are not counted",
)
@pytest.mark.parametrize("kind", [*TYPED_KINDS, *BUMP_KINDS], ids=lambda cls: cls.__name__)
def test_a_released_source_memoryview_keeps_the_arena_viewed(kind: type) -> None:
    """Releasing that memoryview lets go of the root reference it held: the arena
    counts that reference all the same, so a value still alive keeps ``reset()``
    refused (not one view fewer), and with none alive it is accepted."""
    typed = kind in TYPED_KINDS
    arena = kind(_Pair, 4) if typed else kind(4096)
    value = arena.alloc() if typed else arena.alloc(_Pair)
    (source,) = [x for x in value._b_base_._objects.values() if type(x) is memoryview]
    source.release()
    del source
    with pytest.raises(BufferError, match="still alive"):
        arena.reset()
    assert arena.live_views() == 1
    del value
    assert arena.live_views() == 0
    arena.reset()
    assert arena.alloc() is not None if typed else arena.alloc(_Pair) is not None


def test_an_array_class_dict_property_runs_no_code_while_the_arena_counts(
    typed_cls: type,
) -> None:
    """Whether an array met in a keep-alive is an arena's root is read off its
    instance dict through the getter ``type`` made for its class, never through a
    ``__dict__`` the class defines (code run in the middle of a count)."""
    reads: list[str] = []

    class Evil(ctypes.Array):  # type: ignore[type-arg]
        _type_ = ctypes.c_char
        _length_ = 64

        @property  # type: ignore[misc]
        def __dict__(self) -> dict[str, Any]:
            reads.append("__dict__")
            return {}

    class Inner(ctypes.Structure):
        _fields_ = [("x", ctypes.c_int64)]

    class Node(ctypes.Structure):
        _fields_ = [("inner", Inner), ("pad", ctypes.c_int64)]

    outside = Node.from_buffer(Evil())  # (memory that is not the arena's)
    arena = typed_cls(Node, 8)
    value = arena.alloc()
    value.inner = outside.inner  # (the copy keeps outside's keep-alives: Evil's memoryview)
    del outside, value
    reads.clear()
    arena.reset()
    assert arena.live_views() == 0
    assert reads == []
