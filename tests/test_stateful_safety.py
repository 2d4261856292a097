"""Stateful safety model: several arenas at once, linked values, interrupts, drops.

A hypothesis ``RuleBasedStateMachine`` drives three arenas of random kinds
(typed ones with no drop callback, one that keeps the values it is given, or
one that is a bound method of the arena's owner) through allocations of many
distinct Structure types, pointer links (``a.link = ctypes.pointer(b.base)``)
and by-value copies (``a.copy = b.base``) between values of the same and of
different arenas, writes, drops, resets and abandoning an arena. Any call into
an arena may be interrupted: a trace function raises ``KeyboardInterrupt`` at a
random line event inside linalloc's code.

After every step the model checks what must hold whatever was interrupted:

- no arena under-counts: ``live_views()`` is at least the number of views the
  model holds of it (values held or kept by a drop callback);
- no aliasing: the live values (held, kept, or reachable through a link) do
  not overlap, and each holds what was last written to it;
- a reset accepted leaves no value of that arena reachable;
- an abandoned arena whose values are all gone is collected, even when its drop
  callback closes over its owner, and drop ran exactly once per value;
- the arenas stay usable: once everything is released, every arena resets.
  An arena left unusable by an interrupt (a known defect, see
  ``test_safety.py``) is counted apart and reported, not failed here.

The machine runs in a fresh interpreter (a broken arena could crash it);
``python -m pytest tests/test_stateful_safety.py -n 0 -s`` prints the steps run.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys
import weakref
from typing import Any, Callable

import pytest
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

import linalloc

STEPS_PER_EXAMPLE = 40
MAX_EXAMPLES = 200
#: Steps the run must reach (rules that did not apply are not counted).
MIN_STEPS = 3000

LIB = os.path.dirname(os.path.abspath(linalloc.__file__)) + os.sep
COUNTS: dict[str, int] = {"steps": 0, "interrupts": 0, "unusable": 0, "mutual": 0}
UNUSABLE: list[str] = []


class Base(ctypes.Structure):
    _fields_ = [("tag", ctypes.c_uint64)]


PAD_SIZES = [1, 3, 7, 24, 8192, 20000]  # the big ones make lazy arenas commit often
N_TYPES = 90


def _make_types() -> list[type[ctypes.Structure]]:
    types = []
    for k in range(N_TYPES):
        fields = [
            ("base", Base),
            ("link", ctypes.POINTER(Base)),
            ("copy", Base),
            ("pad", ctypes.c_uint8 * PAD_SIZES[k % len(PAD_SIZES)]),
        ]
        types.append(type(f"Cell{k}", (ctypes.Structure,), {"_fields_": fields}))
    return types


TYPES = _make_types()
KINDS = ["BumpArena", "BumpArenaLazy", "TypedArena", "TypedArenaLazy"]
DROPS = ["none", "keep", "owner"]
#: 0: no interrupt; else the line event (in linalloc's code) that raises it.
#: Fast paths run a handful of lines, slow paths (growth, windows) a few hundred.
INTERRUPT_AT = st.one_of(st.just(0), st.integers(1, 30), st.integers(1, 400))


class Interrupt:
    """A trace function: ``KeyboardInterrupt`` at the n-th line event in linalloc."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen = 0
        self.fired = False

    def __call__(self, frame: Any, event: str, arg: Any) -> Any:
        if not frame.f_code.co_filename.startswith(LIB):
            return None
        return self.local

    def local(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "line" and not self.fired:
            self.seen += 1
            if self.seen == self.n:
                self.fired = True
                raise KeyboardInterrupt
        return self.local


class Rec:
    """One value the model knows of: where it lives and what it holds."""

    def __init__(self, obj: Any, slot: Slot, tag: int) -> None:
        self.addr = ctypes.addressof(obj)
        self.size = ctypes.sizeof(obj)
        self.slot = slot
        self.tag = tag
        self.link: Rec | None = None  # what obj.link points to (kept alive by ctypes)
        self.copy_tag = 0  # what obj.copy.tag holds


class Owner:
    """Owns an arena whose drop callback is its own bound method (a cycle)."""

    def __init__(self, make: Callable[..., Any], log: list[tuple[int, int]]) -> None:
        self.log = log
        self.arena = make(drop=self.on_drop)

    def on_drop(self, value: Any) -> None:
        self.log.append((id(self), value.base.tag))


class Slot:
    """One arena of the machine and what the model knows of it."""

    def __init__(self, kind: str, drop: str, type_index: int, serial: int) -> None:
        self.kind = kind
        self.serial = serial
        self.typed = kind.startswith("Typed")
        self.ctype = TYPES[type_index]
        self.drop = drop if self.typed else "none"
        self.kept: list[tuple[Any, int]] = []  # (value, its tag when dropped)
        self.log: list[tuple[int, int]] = []
        self.owner: Owner | None = None
        self.interrupted = False
        self.broken = False
        self.copied_from: set[int] = set()  # serials of arenas its values copied from
        self.links_to: set[int] = set()  # serials of arenas its values point into
        lazy = kind.endswith("Lazy")
        cls = getattr(linalloc, kind)
        if self.typed:
            capacity = 4096 if lazy else 48

            def make(drop: Any = None) -> Any:
                return cls(self.ctype, capacity, drop=drop)

            if self.drop == "owner":
                self.owner = Owner(make, self.log)
                self.arena = self.owner.arena
            elif self.drop == "keep":
                kept = self.kept
                self.arena = make(drop=lambda v: kept.append((v, v.base.tag)))
            else:
                self.arena = make()
        else:
            self.arena = cls((1 << 24) if lazy else (1 << 16))

    def alloc(self, type_index: int) -> Any:
        if self.typed:
            return self.arena.alloc()
        return self.arena.alloc(TYPES[type_index])

    def alloc_many(self, n: int, type_index: int) -> Any:
        if self.typed:
            return self.arena.alloc_many(n)
        return self.arena.alloc_array(TYPES[type_index], n)


class SafetyMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.slots: list[Slot] = []
        self.held: list[tuple[Any, Rec]] = []  # (value, its record)
        self.arrays: list[tuple[Any, list[Rec]]] = []  # (array, a record per element)
        self.next_tag = 1
        self.serial = 0
        self.skipped = False

    # -- helpers ------------------------------------------------------------------

    def new_slot(self, kind: str, drop: str, type_index: int) -> Slot:
        self.serial += 1
        return Slot(kind, drop, type_index, self.serial)

    def tag(self) -> int:
        self.next_tag += 1
        return self.next_tag

    def call(self, slot: Slot, fn: Callable[[], Any], interrupt_at: int) -> tuple[bool, Any]:
        """Run ``fn`` (a call into ``slot``'s arena), interrupted at a line event if asked.

        Returns (completed, result). A broken arena's calls are not made.
        """
        if interrupt_at == 0:
            return True, fn()
        inject = Interrupt(interrupt_at)
        previous = sys.gettrace()
        sys.settrace(inject)
        try:
            result = fn()
        except KeyboardInterrupt:
            if not inject.fired:
                raise
            slot.interrupted = True
            COUNTS["interrupts"] += 1
            return False, None
        finally:
            sys.settrace(previous)
        return True, result

    def unusable(self, slot: Slot, what: str, exc: BaseException) -> None:
        """An arena that an interrupt broke: tallied and left alone; else a failure."""
        if slot.broken:
            return
        slot.broken = True
        if isinstance(exc, BufferError) and self.linked_both_ways(slot):
            # Two arenas whose memory points into each other: each is a live view of
            # the other, so neither can reset until a link is cleared (README).
            COUNTS["mutual"] += 1
        elif slot.interrupted:
            COUNTS["unusable"] += 1
        else:
            raise AssertionError(f"{slot.kind}: {what} raised {exc!r} with no interrupt")
        UNUSABLE.append(f"{slot.kind}/{slot.drop}: {what}: {type(exc).__name__}: {exc}")

    def linked_both_ways(self, slot: Slot) -> bool:
        """Whether ``slot``'s arena is on a cycle of pointers or copies between arenas,
        or is viewed, through links or copies, by an arena on such a cycle (that one
        never resets, so its links keep this one viewed).

        (A by-value copy of another arena's value shares that arena's keep-alives:
        its links into itself stay counted while the copy lives, README.)
        """
        return any(
            self._on_a_cycle(other)
            for other in self.slots
            if other is slot or slot.serial in self._viewed_by(other)
        )

    def _viewed_by(self, slot: Slot) -> set[int]:
        """The serials of the arenas ``slot``'s links and copies reach, transitively."""
        by_serial = {other.serial: other for other in self.slots}
        seen: set[int] = set()
        todo = [*slot.links_to, *slot.copied_from]
        while todo:
            serial = todo.pop()
            if serial in seen or serial not in by_serial:
                continue
            seen.add(serial)
            todo.extend(by_serial[serial].links_to)
            todo.extend(by_serial[serial].copied_from)
        return seen

    def _on_a_cycle(self, slot: Slot) -> bool:
        return slot.serial in self._viewed_by(slot)

    def records(self) -> list[Rec]:
        return [rec for _, rec in self.held] + [rec for _, recs in self.arrays for rec in recs]

    def reachable(self) -> list[Rec]:
        """Records whose memory is alive: held, and linked from those (transitively)."""
        seen: dict[int, Rec] = {}
        todo = self.records()
        while todo:
            rec = todo.pop()
            if id(rec) in seen:
                continue
            seen[id(rec)] = rec
            if rec.link is not None:
                todo.append(rec.link)
        return list(seen.values())

    def pick(self, index: int) -> tuple[Any, Rec] | None:
        if not self.held:
            return None
        return self.held[index % len(self.held)]

    def counted(self) -> None:
        COUNTS["steps"] += 1

    # -- rules --------------------------------------------------------------------

    @initialize(
        kinds=st.lists(st.sampled_from(KINDS), min_size=3, max_size=3),
        drops=st.lists(st.sampled_from(DROPS), min_size=3, max_size=3),
        types=st.lists(st.integers(0, N_TYPES - 1), min_size=3, max_size=3),
    )
    def start(self, kinds: list[str], drops: list[str], types: list[int]) -> None:
        # The collections below (and those of refused resets) then walk this
        # example's objects only, not hypothesis' own: a tenth of the time.
        gc.collect()
        gc.freeze()
        self.slots = [self.new_slot(k, d, t) for k, d, t in zip(kinds, drops, types)]

    @rule(
        which=st.integers(0, 2),
        type_index=st.integers(0, N_TYPES - 1),
        interrupt_at=INTERRUPT_AT,
    )
    def alloc(self, which: int, type_index: int, interrupt_at: int) -> None:
        slot = self.slots[which]
        if slot.broken:
            return
        kept_before = bool(slot.kept)
        try:
            done, value = self.call(slot, lambda: slot.alloc(type_index), interrupt_at)
        except BufferError as exc:
            # Only while values a drop callback kept (of freed memory) live.
            assert kept_before and "drop callback" in str(exc), exc
            self.counted()
            return
        except Exception as exc:
            self.unusable(slot, "alloc", exc)
            return
        self.counted()
        if done and value is not None:
            rec = Rec(value, slot, self.tag())
            value.base.tag = rec.tag
            value.link = None
            value.copy.tag = 0
            self.held.append((value, rec))

    @rule(
        which=st.integers(0, 2),
        n=st.integers(1, 6),
        type_index=st.integers(0, N_TYPES - 1),
        interrupt_at=INTERRUPT_AT,
    )
    def alloc_many(self, which: int, n: int, type_index: int, interrupt_at: int) -> None:
        slot = self.slots[which]
        if slot.broken:
            return
        kept_before = bool(slot.kept)
        try:
            done, array = self.call(slot, lambda: slot.alloc_many(n, type_index), interrupt_at)
        except BufferError as exc:
            assert kept_before and "drop callback" in str(exc), exc
            self.counted()
            return
        except Exception as exc:
            self.unusable(slot, "alloc_many", exc)
            return
        self.counted()
        if done and array is not None:
            recs = []
            for item in array:
                rec = Rec(item, slot, self.tag())
                item.base.tag = rec.tag
                item.link = None
                item.copy.tag = 0
                recs.append(rec)
            del item
            self.arrays.append((array, recs))

    @rule(i=st.integers(0, 1 << 16), j=st.integers(0, 1 << 16))
    def link(self, i: int, j: int) -> None:
        """``a.link = ctypes.pointer(b.base)``: same or different arenas."""
        a, b = self.pick(i), self.pick(j)
        if a is None or b is None:
            return
        a[0].link = ctypes.pointer(b[0].base)
        a[1].link = b[1]
        a[1].slot.links_to.add(b[1].slot.serial)
        self.counted()

    @rule(i=st.integers(0, 1 << 16), j=st.integers(0, 1 << 16))
    def copy(self, i: int, j: int) -> None:
        """``a.copy = b.base``: a by-value copy of (part of) another value."""
        a, b = self.pick(i), self.pick(j)
        if a is None or b is None:
            return
        a[0].copy = b[0].base
        a[1].copy_tag = b[1].tag
        a[1].slot.copied_from.add(b[1].slot.serial)
        self.counted()

    @rule(i=st.integers(0, 1 << 16))
    def write(self, i: int) -> None:
        a = self.pick(i)
        if a is None:
            return
        a[1].tag = self.tag()
        a[0].base.tag = a[1].tag
        self.counted()

    @rule(i=st.integers(0, 1 << 16), arrays=st.booleans())
    def release(self, i: int, arrays: bool) -> None:
        pool: list[Any] = self.arrays if arrays else self.held
        if not pool:
            return
        del pool[i % len(pool)]
        self.counted()

    @rule(which=st.integers(0, 2))
    def release_kept(self, which: int) -> None:
        slot = self.slots[which]
        if not slot.kept:
            return
        slot.kept.clear()
        self.counted()

    @rule(which=st.integers(0, 2), interrupt_at=INTERRUPT_AT)
    def reset(self, which: int, interrupt_at: int) -> None:
        slot = self.slots[which]
        if slot.broken:
            return
        try:
            done, _ = self.call(slot, slot.arena.reset, interrupt_at)
        except BufferError:
            self.counted()
            return  # refused: always safe
        except Exception as exc:
            self.unusable(slot, "reset", exc)
            return
        self.counted()
        if done:
            self.after_reset(slot)

    def after_reset(self, slot: Slot) -> None:
        alive = [rec for rec in self.reachable() if rec.slot is slot]
        assert not alive, f"{slot.kind}: reset accepted while {len(alive)} of its values live"

    @rule(which=st.integers(0, 2), kind=st.sampled_from(KINDS), drop=st.sampled_from(DROPS))
    def abandon(self, which: int, kind: str, drop: str) -> None:
        """Forget an arena (its values too) and put a new one in its place.

        Once nothing reaches its values, the arena is collected, its drop
        callback ran once per value (also when it is a method of the owner).
        """
        slot = self.slots[which]
        self.held = [(v, r) for v, r in self.held if r.slot is not slot]
        self.arrays = [(a, rs) for a, rs in self.arrays if rs[0].slot is not slot]
        reached = any(rec.slot is slot for rec in self.reachable())
        # A struct copied by value out of one of its values into another arena's
        # value makes ctypes keep this arena's whole keep-alive dict there, and
        # with it the memory (and the owner a drop callback refers to).
        reached = reached or any(
            slot.serial in other.copied_from for other in self.slots if other is not slot
        )
        checked = slot.typed and not slot.interrupted and not reached
        expected = len(slot.arena) if checked and slot.drop == "owner" else 0
        ref = weakref.ref(slot.arena)
        slot.kept.clear()
        log = slot.log
        before = len(log)
        self.slots[which] = self.new_slot(kind, drop, which * 7 % N_TYPES)
        slot.arena = slot.owner = None
        del slot
        gc.collect()
        if not reached:
            assert ref() is None, "an abandoned arena was not collected"
        if checked:
            assert len(log) - before == expected, ("drops at collection", len(log) - before)
        self.counted()

    def settle(self, action: str) -> list[Slot]:
        """``reset``/``close`` every arena, in rounds: a value of one arena may link into
        another, which stays viewed until the first one's slots are freed. Returns the
        arenas it succeeded on; one still refused at the end is unusable."""
        pending = [slot for slot in self.slots if not slot.broken]
        done: list[Slot] = []
        errors: dict[int, BaseException] = {}
        progress = True
        while pending and progress:
            progress = False
            if action == "reset":
                # Memory an arena held for a drop callback's values is let go at its
                # next call once nothing views it; until then, the pointers stored in
                # it still count in the arenas they point into (README).
                for slot in done:
                    try:
                        slot.arena.reset()
                    except BufferError:
                        pass  # (a pending arena's value points into that held memory)
                gc.collect()
            for slot in list(pending):
                try:
                    getattr(slot.arena, action)()
                except Exception as exc:
                    errors[id(slot)] = exc
                    continue
                slot.kept.clear()  # (what the drops of this call kept)
                pending.remove(slot)
                done.append(slot)
                progress = True
            gc.collect()
        for slot in pending:
            self.unusable(slot, f"{action} after releasing everything", errors[id(slot)])
        return done

    @rule()
    def release_everything(self) -> None:
        """Let go of every value; then every arena resets (unless an interrupt broke it)."""
        self.held.clear()
        self.arrays.clear()
        for slot in self.slots:
            slot.kept.clear()
        gc.collect()
        for slot in self.settle("reset"):
            if slot.owner is not None:
                assert len(slot.log) == len({tag for _, tag in slot.log}), "dropped twice"
            try:
                value = slot.alloc(0)
            except Exception as exc:
                self.unusable(slot, "alloc after reset", exc)
                continue
            assert value is not None
            value.base.tag = self.tag()
            del value
            gc.collect()
            slot.arena.reset()
            slot.kept.clear()
        self.counted()

    # -- invariants ---------------------------------------------------------------

    @invariant()
    def never_under_counts(self) -> None:
        for slot in self.slots:
            held = sum(1 for _, rec in self.held if rec.slot is slot)
            held += sum(1 for _, recs in self.arrays if recs[0].slot is slot)
            held += len(slot.kept)
            live = slot.arena.live_views()
            assert live >= held, f"{slot.kind}: live_views() {live} < {held} views held"

    @invariant()
    def values_hold_their_bytes(self) -> None:
        for value, rec in self.held:
            assert value.base.tag == rec.tag, "a held value was overwritten"
            assert value.copy.tag == rec.copy_tag, "a by-value copy was overwritten"
            if rec.link is not None:
                assert value.link.contents.tag == rec.link.tag, "a linked value was overwritten"
        for array, recs in self.arrays:
            assert [item.base.tag for item in array] == [rec.tag for rec in recs]
        for slot in self.slots:
            for value, tag in slot.kept:
                assert value.base.tag == tag, "a value kept by a drop callback was overwritten"

    @invariant()
    def no_aliasing(self) -> None:
        spans = [(rec.addr, rec.size) for rec in self.reachable()]
        for slot in self.slots:
            spans += [(ctypes.addressof(v), ctypes.sizeof(v)) for v, _ in slot.kept]
        spans.sort()
        for (a, n), (b, _) in zip(spans, spans[1:]):
            assert a + n <= b, f"two live values overlap at {b:#x}"

    def teardown(self) -> None:
        self.held.clear()
        self.arrays.clear()
        for slot in self.slots:
            slot.kept.clear()
        gc.collect()
        self.settle("reset")  # (first: close() keeps keep-alive entries, see test_safety.py)
        self.settle("close")


def main() -> None:
    """Run the machine; print the counts (subprocess entry point)."""
    run_state_machine_as_test(
        SafetyMachine,
        settings=settings(
            max_examples=MAX_EXAMPLES,
            stateful_step_count=STEPS_PER_EXAMPLE,
            deadline=None,
            # (no "explain": it traces lines itself, and the rules set their own tracer)
            phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
        ),
    )
    for name, count in COUNTS.items():
        print(name, count)
    for line in UNUSABLE[:5]:
        print("  ", line)


@pytest.fixture(scope="module")
def machine_run() -> tuple[Any, dict[str, int]]:
    from conftest import run_python

    here = os.path.dirname(os.path.abspath(__file__))
    code = f"import sys; sys.path.insert(0, {here!r}); import test_stateful_safety as t; t.main()"
    result = run_python(code, timeout=900)
    numbers = {}
    for line in result.stdout.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] in COUNTS and words[1].isdigit():
            numbers[words[0]] = int(words[1])
    return result, numbers


def test_an_arena_viewed_by_arenas_linked_both_ways_is_not_taken_as_broken() -> None:
    """A found example: the first arena links into the second and the second into the
    first (a documented cycle: neither resets), and the first also into the third,
    which then stays viewed too. Replayed step by step, with no interrupt."""
    machine = SafetyMachine()
    machine.start(kinds=["BumpArena"] * 3, drops=["none"] * 3, types=[0, 0, 0])
    try:

        def alloc(which: int = 0) -> None:
            machine.alloc(which=which, type_index=0, interrupt_at=0)

        alloc()
        machine.link(0, 0)
        alloc()
        for _ in range(5):
            machine.link(0, 0)
        for _ in range(3):
            alloc()
        machine.link(0, 0)
        alloc(1)
        alloc(2)
        machine.link(0, 0)
        machine.link(0, 0)
        machine.link(0, 2154)
        for _ in range(3):
            machine.release(arrays=False, i=0)
        machine.link(0, 3)
        machine.link(2, 0)
        mutual = COUNTS["mutual"]
        machine.teardown()  # (an arena refused with no interrupt and no cycle fails here)
        assert COUNTS["mutual"] > mutual
        assert [slot.broken for slot in machine.slots] == [True, True, True]
    finally:
        gc.unfreeze()


def test_machine_never_under_counts_nor_aliases(machine_run: tuple[Any, dict[str, int]]) -> None:
    result, numbers = machine_run
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    print(f"safety machine: {numbers}")
    assert numbers["steps"] >= MIN_STEPS
    assert numbers["interrupts"] > 0


def test_machine_leaves_arenas_usable(machine_run: tuple[Any, dict[str, int]]) -> None:
    result, numbers = machine_run
    assert result.returncode == 0, result.stderr[-3000:]
    assert numbers["unusable"] == 0, result.stdout[-3000:]


if __name__ == "__main__":
    main()
