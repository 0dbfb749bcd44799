"""sim.generate.memo: per-object memo by identity."""

from __future__ import annotations

import gc
from dataclasses import dataclass

from sim.generate import memo
from sim.generate.memo import memo_by_identity


@dataclass(frozen=True)
class _Frozen:
    value: int


def _counting():
    calls = []

    @memo_by_identity
    def derived(first, second=None):
        calls.append((first, second))
        return object()

    return derived, calls


def test_the_same_objects_hit_and_equal_copies_miss():
    derived, calls = _counting()
    a, b = _Frozen(1), _Frozen(2)
    assert derived(a, b) is derived(a, b)
    assert len(calls) == 1
    derived(_Frozen(1), b)  # equal, not the same object: computed anew
    derived(b, a)
    assert len(calls) == 3


def test_an_entry_is_not_used_for_a_new_object_and_keeps_none_alive():
    derived, calls = _counting()
    first = _Frozen(1)
    derived(first)
    del first
    gc.collect()
    for _ in range(50):  # new objects, some at recycled addresses
        derived(_Frozen(1))
    assert len(calls) == 51


def test_least_recently_used_entries_are_dropped():
    derived, calls = _counting()
    kept = [_Frozen(i) for i in range(memo.LIMIT + 1)]
    for obj in kept:
        derived(obj)
    derived(kept[-1])
    assert len(calls) == memo.LIMIT + 1
    derived(kept[0])  # dropped: computed again
    assert len(calls) == memo.LIMIT + 2


def test_arguments_without_weak_references_are_computed_every_time():
    derived, calls = _counting()
    derived(3)
    derived(3)
    assert len(calls) == 2
