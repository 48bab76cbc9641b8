"""trio_bots: swarms of bots against stateful servers, on trio and anyio.

Example:
    >>> import trio, trio_bots
    >>> async def worker(bot):
    ...     bot.join("lobby")
    ...     await bot.step()
    >>> trio.run(trio_bots.swarm, worker, 10).bots_finished
    10
"""

from ._core.bot import Bot as Bot
from ._core.bot import Measure as Measure
from ._core.bot import current_bot as current_bot
from ._core.load import Iteration as Iteration
from ._core.load import Iterations as Iterations
from ._core.messaging import Message as Message
from ._core.messaging import RecvFilter as RecvFilter
from ._core.messaging import SendFilter as SendFilter
from ._core.messaging import recv_all as recv_all
from ._core.messaging import recv_from as recv_from
from ._core.messaging import recv_group as recv_group
from ._core.messaging import send_all as send_all
from ._core.messaging import send_bots as send_bots
from ._core.messaging import send_group as send_group
from ._core.result import BotFailure as BotFailure
from ._core.result import SwarmResult as SwarmResult
from ._core.result import SwarmStatistics as SwarmStatistics
from ._core.runtime import Tick as Tick
from ._core.swarm import Swarm as Swarm
from ._core.trace import TracedStream as TracedStream
from ._core.trace import TraceEvent as TraceEvent
from ._core.trace import read_trace as read_trace
from ._core.transport import UDPConnection as UDPConnection
from ._errors import BotGone as BotGone
from ._errors import ConfigError as ConfigError
from ._errors import ConnectError as ConnectError
from ._errors import InboxFull as InboxFull
from ._errors import ProtocolError as ProtocolError
from ._errors import RequestTimeout as RequestTimeout
from ._errors import SwarmAborted as SwarmAborted
from ._errors import ThresholdError as ThresholdError
from ._errors import TrioBotsError as TrioBotsError
from ._seed import create as create
from ._seed import run_tasks as run_tasks
from ._seed import start as start
from ._util import fixup_module_metadata
from .distributed._front import open_swarm as open_swarm
from .distributed._front import swarm as swarm
from .metrics import FailureGroup as FailureGroup
from .metrics import Stats as Stats
from .metrics import StatsMap as StatsMap
from .metrics import Threshold as Threshold
from .metrics import ThresholdResult as ThresholdResult
from .metrics import TimelineBucket as TimelineBucket
from .metrics import TimelineName as TimelineName
from .metrics import assert_thresholds as assert_thresholds
from .metrics import check_thresholds as check_thresholds
from .metrics import failures_from_snapshot as failures_from_snapshot
from .metrics import merge as merge
from .metrics import parse_threshold as parse_threshold
from .metrics import stats_from_snapshot as stats_from_snapshot
from .metrics import timeline_from_snapshot as timeline_from_snapshot

__version__ = "0.1.0"

__all__ = [
    "Bot",
    "BotFailure",
    "BotGone",
    "ConfigError",
    "ConnectError",
    "FailureGroup",
    "InboxFull",
    "Iteration",
    "Iterations",
    "Measure",
    "Message",
    "ProtocolError",
    "RecvFilter",
    "RequestTimeout",
    "SendFilter",
    "Stats",
    "StatsMap",
    "Swarm",
    "SwarmAborted",
    "SwarmResult",
    "SwarmStatistics",
    "Threshold",
    "ThresholdError",
    "ThresholdResult",
    "Tick",
    "TimelineBucket",
    "TimelineName",
    "TraceEvent",
    "TracedStream",
    "TrioBotsError",
    "UDPConnection",
    "assert_thresholds",
    "check_thresholds",
    "create",
    "current_bot",
    "failures_from_snapshot",
    "merge",
    "open_swarm",
    "parse_threshold",
    "read_trace",
    "recv_all",
    "recv_from",
    "recv_group",
    "run_tasks",
    "send_all",
    "send_bots",
    "send_group",
    "start",
    "stats_from_snapshot",
    "swarm",
    "timeline_from_snapshot",
]

# Public names say where users find them: `trio_bots.SwarmAborted` in a traceback, not
# `trio_bots._errors.SwarmAborted` (what trio's fixup_module_metadata does).
fixup_module_metadata(__name__, {name: globals()[name] for name in __all__})
del fixup_module_metadata
