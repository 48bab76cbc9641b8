"""trio_bots: swarms of bots against stateful servers, on trio and anyio.

Example:
    >>> import trio, trio_bots
    >>> async def worker(bot):
    ...     bot.join("lobby")
    ...     await bot.step()
    >>> trio.run(trio_bots.swarm, worker, 10).bots_finished
    10
"""

from ._bot import Bot as Bot
from ._bot import Measure as Measure
from ._bot import current_bot as current_bot
from ._errors import BotGone as BotGone
from ._errors import ConfigError as ConfigError
from ._errors import ConnectError as ConnectError
from ._errors import InboxFull as InboxFull
from ._errors import ProtocolError as ProtocolError
from ._errors import RequestTimeout as RequestTimeout
from ._errors import SwarmAborted as SwarmAborted
from ._errors import ThresholdError as ThresholdError
from ._errors import TrioBotsError as TrioBotsError
from ._groups import Message as Message
from ._groups import RecvFilter as RecvFilter
from ._groups import SendFilter as SendFilter
from ._groups import recv_all as recv_all
from ._groups import recv_from as recv_from
from ._groups import recv_group as recv_group
from ._groups import send_all as send_all
from ._groups import send_bots as send_bots
from ._groups import send_group as send_group
from ._load import Iteration as Iteration
from ._load import Iterations as Iterations
from ._metrics import FailureGroup as FailureGroup
from ._metrics import Stats as Stats
from ._metrics import StatsMap as StatsMap
from ._metrics import TimelineBucket as TimelineBucket
from ._metrics import TimelineName as TimelineName
from ._metrics import failures_from_snapshot as failures_from_snapshot
from ._metrics import merge as merge
from ._metrics import stats_from_snapshot as stats_from_snapshot
from ._metrics import timeline_from_snapshot as timeline_from_snapshot
from ._seed import create as create
from ._seed import start as start
from ._swarm import BotFailure as BotFailure
from ._swarm import Swarm as Swarm
from ._swarm import SwarmResult as SwarmResult
from ._swarm import SwarmStatistics as SwarmStatistics
from ._swarm import open_swarm as open_swarm
from ._swarm import swarm as swarm
from ._thresholds import Threshold as Threshold
from ._thresholds import ThresholdResult as ThresholdResult
from ._thresholds import assert_thresholds as assert_thresholds
from ._thresholds import check_thresholds as check_thresholds
from ._thresholds import parse_threshold as parse_threshold
from ._transport import UDPConnection as UDPConnection

__version__ = "0.1.0"
