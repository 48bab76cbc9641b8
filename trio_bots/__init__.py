"""trio_bots: swarms of bots against stateful servers, on trio and anyio."""

from ._errors import BotGone as BotGone
from ._errors import ConfigError as ConfigError
from ._errors import ConnectError as ConnectError
from ._errors import InboxFull as InboxFull
from ._errors import ProtocolError as ProtocolError
from ._errors import RequestTimeout as RequestTimeout
from ._errors import SwarmAborted as SwarmAborted
from ._errors import ThresholdError as ThresholdError
from ._errors import TrioBotsError as TrioBotsError

__version__ = "0.1.0"
