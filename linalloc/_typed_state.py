"""What the parts of ``TypedArena`` share: its fields, and the slots' constants.

``TypedArena`` is put together from mixins, one job each: the windows of
slots (``_typed_windows``), bulk allocation and iteration (``_typed_bulk``),
undoing an allocation that failed (``_typed_failed``). Each derives from
:class:`TypedState`, which declares for type checkers what they read of
each other; at run time it adds nothing to ``ArenaBase``.
"""

from __future__ import annotations

from ._arena import ArenaBase

TYPE_CHECKING = False  # typing takes milliseconds to import: for type checkers only
if TYPE_CHECKING:
    from ctypes import _CData
    from typing import Any, Callable, Generic, TypeVar

    from ._slots import Cursor

    T = TypeVar("T", bound=_CData)

    class _Generic(Generic[T]):
        """``typing.Generic``, for type checkers."""

else:
    T = "T"

    class _Generic:
        """``TypedArena[Point]`` works at run time as with ``typing.Generic``, without typing."""

        __slots__ = ()

        def __class_getitem__(cls, params: object) -> object:
            return type(list[int])(cls, params)  # types.GenericAlias


#: The key of a part's slot array.
_SLOTS = "slots"

#: Never holds anything: ``alloc()`` through this goes to the slow path.
_EMPTY: list[object] = []
_EMPTY_POP = _EMPTY.pop


class TypedState(ArenaBase, _Generic[T]):
    """The fields of a typed arena, and the methods its mixins call of each other."""

    if TYPE_CHECKING:
        _ctype: Any
        _size: int
        _capacity: int
        _offset: int
        _pointers: bool
        #: values made ahead for a window, a slice at a time (no drop callback)
        _batched: bool
        #: slicing the slot array gives a list of values (not bytes or str)
        _slices: bool
        _cursor: Cursor
        #: hands out the next value of the window (``list.pop`` or a map's ``__next__``)
        _take: Callable[[], Any]
        #: the next window's size
        _wn: int
        _dropper: Any

        def alloc(self, *args: Any, **kwargs: Any) -> T | None: ...
        def _alloc_slow(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> T | None: ...
        def _usable_slots(self) -> int: ...
        def _restart(self, k: int) -> None: ...
        def _open_window(self) -> bool: ...
        def _extend_to(self, k: int) -> bool: ...
        def _slots_at(self, k: int) -> Any: ...
        def _shown_count(self) -> int: ...
        def _root_address(self) -> int: ...
        def _used_bytes(self) -> int: ...
        def _after_trim(self) -> None: ...
        def _uncommit(self, committed: int) -> None: ...
        def _check_args(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None: ...
        def _init_failed(
            self, failed: list[Any], args: tuple[Any, ...], exc: BaseException, reads: int
        ) -> BaseException | None: ...
        def _give_back_failed(self, failed: list[Any], viewed: bool = False) -> None: ...
