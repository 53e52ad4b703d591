"""The engine's due index: a heap of packed ints saying which row may be due when.

One int per entry, ``(time_s << 64) | (row_id << 1) | kind``: ordering the ints orders entries by
time, then row. SQLite row ids are below 2**63, so 63 bits keep every id. The index is a hint, never
the truth: every popped entry is checked against its row, and stale ones (replaced, paused, deleted
schedules) are dropped there.
"""

from __future__ import annotations

import enum
import heapq
from collections.abc import Iterable
from typing import NamedTuple

__all__ = ("ID_MASK", "DueEntry", "DueIndex", "EntryKind", "ceil_s", "pack", "unpack")

_ID_BITS = 63
# A key's row id is (key >> 1) & ID_MASK and its kind key & 1 (the engine reads keys inline).
ID_MASK = (1 << _ID_BITS) - 1
_TIME_SHIFT = _ID_BITS + 1


class EntryKind(enum.IntEnum):
    """What a due entry points at: a schedule row or a retry row."""

    FIRE = 0
    RETRY = 1


class DueEntry(NamedTuple):
    time_s: int
    row_id: int
    kind: EntryKind


def ceil_s(us: int) -> int:
    """Microseconds since the epoch, rounded up to whole seconds (the index's resolution)."""
    return -(-us // 1_000_000)


def pack(time_s: int, row_id: int, kind: EntryKind) -> int:
    return (time_s << _TIME_SHIFT) | (row_id << 1) | kind


_KINDS = (EntryKind.FIRE, EntryKind.RETRY)  # by the key's lowest bit; faster than EntryKind()


def unpack(key: int) -> DueEntry:
    return DueEntry(key >> _TIME_SHIFT, (key >> 1) & ID_MASK, _KINDS[key & 1])


class DueIndex:
    """A min-heap of due entries; cheap to push, pop and rebuild."""

    __slots__ = ("_heap", "live", "pushed_while_loading")

    def __init__(self) -> None:
        self._heap: list[int] = []
        # Entries that stand for a live row (the rest are stale duplicates awaiting their pop).
        self.live = 0
        self.pushed_while_loading: list[int] | None = None

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, time_s: int, row_id: int, kind: EntryKind) -> int:
        """Add an entry; returns its key."""
        key = pack(time_s, row_id, kind)
        if self.pushed_while_loading is not None:
            self.pushed_while_loading.append(key)
        heapq.heappush(self._heap, key)
        return key

    def begin_load(self) -> list[int]:
        """Start building a new heap, to replace this one at ``end_load``; pushes meanwhile go
        to both. Fill it in chunks with ``add_loaded``: one heapify of a large list would hold
        the event loop for longer than a push per key spread over chunks."""
        self.pushed_while_loading = []
        return []

    @staticmethod
    def add_loaded(heap: list[int], keys: Iterable[int]) -> None:
        push = heapq.heappush
        for key in keys:
            push(heap, key)

    def end_load(self, heap: list[int], live: int) -> None:
        if self.pushed_while_loading is not None:
            self.add_loaded(heap, self.pushed_while_loading)
        self._heap = heap
        self.live = live
        self.pushed_while_loading = None

    def abort_load(self) -> None:
        self.pushed_while_loading = None

    def earliest_s(self) -> int | None:
        return self._heap[0] >> _TIME_SHIFT if self._heap else None

    def pop_due(self, now_s: int, limit: int) -> list[int]:
        """The keys of up to ``limit`` entries due at or before ``now_s``, earliest first."""
        heap: list[int] = self._heap
        # Every key below this one is due at or before now_s.
        bound = (now_s + 1) << _TIME_SHIFT
        keys: list[int] = []
        pop = heapq.heappop
        while heap and heap[0] < bound and len(keys) < limit:
            keys.append(pop(heap))
        return keys

    def bloated(self) -> bool:
        """Whether stale entries dominate, so a rebuild from the store would pay off."""
        return len(self._heap) > 4 * self.live + 10_000
