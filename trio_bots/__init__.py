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
from ._core.swarm import BotFailure as BotFailure
from ._core.swarm import Swarm as Swarm
from ._core.swarm import SwarmResult as SwarmResult
from ._core.swarm import SwarmStatistics as SwarmStatistics
from ._core.swarm import open_swarm as open_swarm
from ._core.swarm import swarm as swarm
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
from ._seed import start as start
from .metrics import FailureGroup as FailureGroup
from .metrics import Stats as Stats
from .metrics import StatsMap as StatsMap
from .metrics import TimelineBucket as TimelineBucket
from .metrics import TimelineName as TimelineName
from .metrics import failures_from_snapshot as failures_from_snapshot
from .metrics import merge as merge
from .metrics import stats_from_snapshot as stats_from_snapshot
from .metrics import timeline_from_snapshot as timeline_from_snapshot
from .metrics._thresholds import Threshold as Threshold
from .metrics._thresholds import ThresholdResult as ThresholdResult
from .metrics._thresholds import assert_thresholds as assert_thresholds
from .metrics._thresholds import check_thresholds as check_thresholds
from .metrics._thresholds import parse_threshold as parse_threshold

__version__ = "0.1.0"
