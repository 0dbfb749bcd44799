"""Per-object memo of what a function derives from immutable inputs (a frozen ``Scenario``, a
``Calibration``), so that the generator's per-call constants (Cholesky factors, marginal tables,
grade thresholds, ...) are computed once per scenario object rather than on every block.

A runner's worker unpickles its (scenario, calibration) pair once and generates every block of
it from the same objects (:mod:`sim.run.runner`), so memoising by object identity hits on every
block but the first. Identity, not equality: hashing or comparing a whole scenario on every call
would cost what the memo saves. An entry is keyed by the ``id`` of each argument and holds weak
references to them, so it is used only while those very objects are alive (a new object at a
recycled address misses), and it keeps none of them alive. The arguments must not be mutated
afterwards (frozen dataclasses cannot be, short of ``object.__setattr__``); the memoised
values are shared by every caller and must be treated as read-only (arrays are returned
non-writeable where the builder makes them so).
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections import OrderedDict
from typing import Any, Callable, TypeVar

T = TypeVar("T")

#: Entries kept per memoised function (least recently used dropped first): a sweep's worker
#: sees a few grid points at a time, a test many throwaway scenarios.
LIMIT = 32


def memo_by_identity(function: Callable[..., T]) -> Callable[..., T]:
    """``function(*objects)`` memoised by the identity of its positional arguments (module
    docstring). Arguments that cannot be weakly referenced are not memoised (computed on every
    call)."""
    entries: "OrderedDict[tuple[int, ...], tuple[tuple[weakref.ref, ...], Any]]" = OrderedDict()
    lock = threading.Lock()

    @functools.wraps(function)
    def memoised(*objects):
        key = tuple(map(id, objects))
        entry = entries.get(key)
        if entry is not None and all(ref() is obj for ref, obj in zip(entry[0], objects)):
            return entry[1]
        value = function(*objects)
        try:
            refs = tuple(weakref.ref(obj) for obj in objects)
        except TypeError:  # not weakly referenceable: nothing to key a safe entry on
            return value
        with lock:
            entries[key] = (refs, value)
            entries.move_to_end(key)
            while len(entries) > LIMIT:
                entries.popitem(last=False)
        return value

    memoised.cache_clear = entries.clear  # type: ignore[attr-defined]
    return memoised
