"""How one shard of a run over several processes sees the whole run.

A run over K shards runs K swarms, one event loop each. Each is told its
place by a `Shard`: which global bot ids are its own, its share of the load
(bots, ``max_bots``, ``max_queue``, stage targets, arrivals), the common start
instant, and a `ShardLink` to whoever coordinates the shards (global barriers,
group reports). The engine asks the `Shard`; it never knows what is on the
other side of the link (``trio_bots.distributed`` provides it).

The split is exact: shard k of K gets ``n // K + (k < n % K)`` of each
count n, its up-front bots are a contiguous range of ids, and the bots it
starts later get the ids ``size + j*K + k``.

Example:
    >>> shards = [Shard(index=k, count=3, size=10) for k in range(3)]
    >>> [(s.first_bot, s.local_size) for s in shards]
    [(0, 4), (4, 3), (7, 3)]
    >>> [s.bot_id(s.local_size) for s in shards]  # the first bot each starts later
    [10, 11, 12]
    >>> Shard().bot_id(5)  # a run in one process: ids in start order
    5
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Protocol


class ShardLink(Protocol):
    """What a shard's engine tells the coordinator of the shards, and how it is told back.

    All four are called in the shard's event loop.
    """

    def attach(self, release_barrier: Callable[[Hashable], None]) -> None:
        """Take the function that releases a global barrier (``step()``) in this shard."""

    def barrier_complete(self, name: Hashable) -> None:
        """Every live bot of this shard waits at the global barrier `name`."""

    def new_group(self, group: Hashable) -> None:
        """A bot of this shard joined `group`, which had no member here before."""

    def bot_failed(self, bot_id: int, exc: BaseException) -> None:
        """Bot `bot_id` of this shard failed with `exc`: the coordinator applies
        ``max_failures`` over every shard (each shard runs without a limit of its own)."""


def split(total: int, index: int, count: int) -> int:
    """Shard `index`'s share of `total` over `count` shards: the first ``total % count``
    shards get one more.

    Example:
        >>> [split(10, k, 3) for k in range(3)], sum(split(7, k, 4) for k in range(4))
        ([4, 3, 3], 7)
    """
    return total // count + (index < total % count)


@dataclass(frozen=True)
class Shard:
    """One shard's place in a run; the default is the whole run in one process.

    Attributes:
        index: this shard's number k, from 0.
        count: the number of shards K.
        size: the whole run's ``size`` (the bots started up front, over all shards).
        align: shard boundaries are multiples of this (the ``shard_align`` option), so
            that groups made of `align` consecutive ids stay in one shard.
        start_wall: the common start instant (``time.time()``), or None to start at once.
        link: the coordinator of the shards, or None.
        raw_intervals: each second's raw (uncorrected) histograms of the open model go
            into its `Tick` (``tick.raw``), for the driver to merge (the live view's
            raw percentiles over every shard).

    Example:
        >>> [Shard(index=k, count=2, size=25, align=10).local_size for k in range(2)]
        [20, 5]
    """

    index: int = 0
    count: int = 1
    size: int = 0
    align: int = 1
    start_wall: float | None = None
    link: ShardLink | None = None
    raw_intervals: bool = False

    @property
    def distributed(self) -> bool:
        """True when the run has more than one shard."""
        return self.count > 1

    def _bounds(self) -> tuple[int, int]:
        units = -(-self.size // self.align)
        first_unit = self.index * (units // self.count) + min(self.index, units % self.count)
        end_unit = first_unit + split(units, self.index, self.count)
        return min(self.size, first_unit * self.align), min(self.size, end_unit * self.align)

    @property
    def first_bot(self) -> int:
        """The global id of this shard's first up-front bot."""
        return self._bounds()[0]

    @property
    def local_size(self) -> int:
        """How many of the up-front bots are this shard's."""
        first, end = self._bounds()
        return end - first

    def split(self, total: int) -> int:
        """This shard's share of a count (``max_bots``, ``max_queue``, a stage target).

        Example:
            >>> Shard(index=2, count=3, size=0).split(10)
            3
        """
        return split(total, self.index, self.count)

    def bot_id(self, started: int) -> int:
        """The global id of the bot that this shard starts after `started` others."""
        local = self.local_size
        if started < local:
            return self.first_bot + started
        return self.size + (started - local) * self.count + self.index

    def owns(self, bot_id: int) -> bool:
        """Whether the bot `bot_id` would run in this shard.

        Example:
            >>> [Shard(index=1, count=3, size=10).owns(i) for i in (3, 4, 11, 12)]
            [False, True, True, False]
        """
        first = self.first_bot
        if bot_id < self.size:
            return first <= bot_id < first + self.local_size
        return (bot_id - self.size) % self.count == self.index

    def takes_arrival(self, arrival: int) -> bool:
        """Whether the open model's arrival number `arrival` (one count across every rate
        stage) is this shard's: k ≡ index (mod count)."""
        return arrival % self.count == self.index


#: The shard of a run in one process.
WHOLE_RUN = Shard()
