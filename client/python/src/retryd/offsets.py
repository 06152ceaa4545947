"""In-order offset commits for out-of-order record completion (the Kafka helper's bookkeeping).

A consumer hands records of one partition to several handlers at once; they finish in any order.
An offset may be committed only when every earlier record of the partition is finished (it
succeeded, or its failure was acknowledged by retryd). :class:`PartitionOffsets` tracks one
partition; :class:`OffsetTracker` keys them by ``(topic, partition)``. Neither talks to Kafka and
neither is thread-safe: the consumer's poll loop owns them.
"""

from __future__ import annotations

import collections
from typing import Deque, Dict, List, Optional, Set, Tuple

TopicPartition = Tuple[str, int]


class PartitionOffsets:
    """Offsets of one partition handed out and not yet covered by a commit.

    Offsets must be started in increasing order (as a partition delivers them; gaps, such as
    compacted records or transaction markers, are fine). ``committable()`` is the offset to commit
    (Kafka's "next offset to read"): one past the longest finished prefix of what was started.
    """

    def __init__(self) -> None:
        self._started: Deque[int] = collections.deque()
        self._finished: Set[int] = set()
        self._position: Optional[int] = None  # one past the last offset of the finished prefix
        self._committed: Optional[int] = None

    def start(self, offset: int) -> None:
        """A record was handed to a handler."""
        if self._started and offset <= self._started[-1]:
            raise ValueError(f"offset {offset} started after {self._started[-1]}: offsets must increase")
        if self._position is not None and offset < self._position:
            raise ValueError(f"offset {offset} is below the finished prefix ending at {self._position}")
        self._started.append(offset)

    def finish(self, offset: int) -> None:
        """The record at ``offset`` is done with (succeeded, or its failure is safe in retryd)."""
        if offset not in self._started or offset in self._finished:
            raise ValueError(f"offset {offset} is not in flight")
        self._finished.add(offset)
        while self._started and self._started[0] in self._finished:
            done = self._started.popleft()
            self._finished.discard(done)
            self._position = done + 1

    def in_flight(self) -> int:
        """Records started and not finished."""
        return len(self._started) - len(self._finished)

    def committable(self) -> Optional[int]:
        """The offset to commit now, or None when nothing new may be committed."""
        if self._position is None or self._position == self._committed:
            return None
        return self._position

    def committed(self, offset: int) -> None:
        """Record that ``offset`` was committed."""
        self._committed = offset


class OffsetTracker:
    """A :class:`PartitionOffsets` per ``(topic, partition)``."""

    def __init__(self) -> None:
        self._parts: Dict[TopicPartition, PartitionOffsets] = {}

    def start(self, topic: str, partition: int, offset: int) -> None:
        self._parts.setdefault((topic, partition), PartitionOffsets()).start(offset)

    def finish(self, topic: str, partition: int, offset: int) -> bool:
        """Mark a record finished; False when its partition is no longer tracked (revoked)."""
        part = self._parts.get((topic, partition))
        if part is None:
            return False
        part.finish(offset)
        return True

    def in_flight(self) -> int:
        return sum(p.in_flight() for p in self._parts.values())

    def committable(self) -> List[Tuple[str, int, int]]:
        """``(topic, partition, offset)`` for every partition with something new to commit."""
        out = []
        for (topic, partition), part in self._parts.items():
            off = part.committable()
            if off is not None:
                out.append((topic, partition, off))
        return out

    def committed(self, topic: str, partition: int, offset: int) -> None:
        part = self._parts.get((topic, partition))
        if part is not None:
            part.committed(offset)

    def drop(self, topic: str, partition: int) -> None:
        """Forget a partition (it was revoked): later finishes of its records are ignored."""
        self._parts.pop((topic, partition), None)
