"""How big a run is, from a timing of its first block: time, disk and memory, said before the
rest starts, and a run that cannot fit in memory refused.

The runner computes the first pending block alone, times it and measures it, then computes
the next task (a group of blocks, :mod:`sim.run.block_groups`) and times it too, and
:class:`RunScale` extrapolates linearly in replicates (time divided by the workers; a block's
cost does not depend on its index):

- time left ≈ seconds per replicate × replicates to do / workers, at the second task's speed
  (the first block pays every first call of the process — fresh memory, lazy imports, cold
  caches: a liu2021 first block of 100 replicates took 0.08–0.12 s, the next 1,000 replicates
  0.26 s); two workers sharing two cores, the workers' start (imports and the compiled
  kernels loaded, about 3 s each) and the read-back make a run somewhat longer (10⁶ liu2021
  replicates: 152 s against an estimate of 2 min 9 s);
- disk ≈ (block file bytes + in-memory bytes) per replicate × replicates (the blocks, then
  ``replicates.nc`` of about the in-memory size);
- memory of this process, where the blocks are read back and combined whole (a sweep: its
  per-point reshaping needs the whole Dataset; a plain run streams them and its memory stays
  flat) ≈ :data:`MEMORY_FACTOR` × in-memory bytes per replicate × replicates (measured when
  plain runs combined too: the parent peaked about 437 MiB higher per 100,000 replicates of
  liu2021, ≈ 2.2 × the Dataset's bytes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sim.errors import PsmsimError

#: Peak memory of this process per byte of the combined replicates Dataset (see above).
MEMORY_FACTOR = 2.5
#: A run is "large", and its estimate printed, above this many seconds left or bytes on disk.
LARGE_SECONDS, LARGE_BYTES = 60.0, 1e9


class RunScaleError(PsmsimError):
    """A run too big for this machine (named by the field that sets its size)."""


def physical_memory() -> int | None:
    """Bytes of RAM of this machine, or None where unknown."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _bytes(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def _duration(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"
    if seconds >= 60:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{seconds:.0f} s"


@dataclass(frozen=True)
class RunScale:
    """The extrapolated size of a run from its first block.

    first_size : replicates in the timed block; seconds : its wall time; file_bytes : bytes of
    its block file; memory_bytes : bytes of its Dataset; to_do : replicates not yet finished
    (the timed block included); total : replicates of the whole run; workers : processes;
    in_memory : the blocks are combined in this process's memory; rate_size, rate_seconds :
    replicates of the task timed after the first block and its wall time (0: none, the first
    block's speed is used).
    """

    first_size: int
    seconds: float
    file_bytes: int
    memory_bytes: int
    to_do: int
    total: int
    workers: int
    in_memory: bool = True
    rate_size: int = 0
    rate_seconds: float = 0.0

    @property
    def seconds_left(self) -> float:
        if self.rate_size:
            left = max(0, self.to_do - self.first_size - self.rate_size)
            return self.rate_seconds / self.rate_size * left / self.workers
        return self.seconds / self.first_size * max(0, self.to_do - self.first_size) / self.workers

    @property
    def disk_bytes(self) -> float:
        return (self.file_bytes + self.memory_bytes) / self.first_size * self.total

    @property
    def peak_memory(self) -> float:
        return MEMORY_FACTOR * self.memory_bytes / self.first_size * self.total

    @property
    def is_large(self) -> bool:
        return self.seconds_left > LARGE_SECONDS or self.disk_bytes > LARGE_BYTES

    def describe(self) -> str:
        """One line: ``"1,000,000 replicates: about 2 min 13 s more on 2 workers, 3.5 GB on
        disk (the first block: 100 replicates in 0.12 s, the next 1,000 in 0.27 s)"``."""
        memory = f" and {_bytes(self.peak_memory)} of memory" if self.in_memory else ""
        rate = f", the next {self.rate_size:,} in {self.rate_seconds:.2f} s" if self.rate_size else ""
        return (f"{self.total:,} replicates: about {_duration(self.seconds_left)} more on "
                f"{self.workers} worker{'s' if self.workers > 1 else ''}, {_bytes(self.disk_bytes)} "
                f"on disk{memory} (the first block: {self.first_size} replicates in "
                f"{self.seconds:.2f} s{rate})")

    def check(self, field: str, memory: int | None = None) -> None:
        """:class:`RunScaleError` naming ``field`` when the blocks are combined in memory and
        the run needs more than the machine has (``memory``: its bytes, default :func:`physical_memory`)."""
        memory = physical_memory() if memory is None else memory
        if self.in_memory and memory is not None and self.peak_memory > memory:
            raise RunScaleError(
                f"{field}: the results of {self.total:,} replicates need about "
                f"{_bytes(self.peak_memory)} of memory and this machine has {_bytes(memory)}; "
                "run fewer replicates (the finished block is kept)"
            )
