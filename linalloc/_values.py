"""Turning what a user passes into what a typed arena's slot accepts, or a clear error.

ctypes' own errors name neither the value nor the arena; these do, and they
are raised before the arena changes (rule 6).
"""

from __future__ import annotations

import ctypes

from ._unbound import MRO as _MRO

TYPE_CHECKING = False  # typing takes milliseconds to import: for type checkers only
if TYPE_CHECKING:
    from typing import Any


def short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def reworded(error: BaseException, what: str) -> Exception:
    """``error`` (a TypeError, ValueError or OverflowError) with ``what`` in front."""
    for kind in (OverflowError, TypeError, ValueError):
        if isinstance(error, kind):
            return kind(f"{what}: {error}")
    raise AssertionError(error)  # pragma: no cover - callers pass only those three


def too_many(ctype: Any, n: int) -> TypeError:
    return TypeError(
        f"too many initializers: {ctype.__name__} holds {ctype._length_} elements, got {n}"
    )


def convert(ctype: Any, value: Any) -> Any:
    """``value`` in a form the slot array accepts on item assignment.

    A value ctypes refuses raises that error again, saying which value and
    which arena (ctypes alone says neither).
    """
    try:
        return _converted(ctype, value)
    except (TypeError, ValueError, OverflowError) as exc:
        what = f"cannot store {short_repr(value)} in an arena of {ctype.__name__}"
        raise reworded(exc, what) from None


_VALUE: Any = vars(ctypes._SimpleCData)["value"]


def _converted(ctype: Any, value: Any) -> Any:
    # (by its real type: a metaclass ``__instancecheck__`` or a ``__class__``
    # could pass off a smaller value, which the store would read past)
    if any([klass is ctype for klass in _MRO(type(value))]):  # (``in`` asks ``__eq__``)
        if issubclass(ctype, ctypes._SimpleCData):
            return _VALUE.__get__(value)
        return value
    if isinstance(value, tuple) and issubclass(
        ctype, (ctypes.Structure, ctypes.Union, ctypes.Array)
    ):
        if issubclass(ctype, ctypes.Array) and len(value) > ctype._length_:
            raise too_many(ctype, len(value))
        return ctype(*value)
    if (
        isinstance(value, (bytes, str))
        and issubclass(ctype, ctypes.Array)
        and ctype._type_ in (ctypes.c_char, ctypes.c_wchar)
    ):
        converted = ctype()
        converted.value = value  # TypeError for the wrong string kind
        return converted
    if issubclass(ctype, ctypes._SimpleCData):
        ctype(value)  # raises TypeError for a value of the wrong kind
        return value
    if issubclass(ctype, ctypes._Pointer):
        probe: Any = (ctype * 1)()
        probe[0] = value  # raises TypeError for a value of the wrong kind
        return value
    raise TypeError(
        f"expected a {ctype.__name__} or a tuple of its fields, got {type(value).__name__}"
    )


def init_error(ctype: Any, args: tuple[Any, ...], error: BaseException) -> BaseException | None:
    """What to raise instead of ``error``, which ``ctype(*args)`` raised; None: itself."""
    if issubclass(ctype, ctypes.Array) and len(args) > ctype._length_:
        return too_many(ctype, len(args))  # ctypes says "invalid index"
    if isinstance(error, (TypeError, ValueError, OverflowError)):
        return reworded(error, f"cannot build a {ctype.__name__} from {short_repr(args)}")
    return None
