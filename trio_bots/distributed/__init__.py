"""One swarm over several processes: shards, their driver, and the merged result.

``trio_bots.swarm(worker, size, processes=N)`` runs the swarm as N shards, one
child process each, and merges their results exactly; see docs/scale-out.md.

Example:
    >>> from trio_bots.distributed import HEARTBEAT
    >>> HEARTBEAT
    5.0
"""

from ._driver import HEARTBEAT as HEARTBEAT
from ._driver import ShardedSwarm as ShardedSwarm

__all__ = ["HEARTBEAT", "ShardedSwarm"]
