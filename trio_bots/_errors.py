"""Every error trio_bots raises, under one base class.

This module is a leaf: it imports nothing of ours, so the protocol
building blocks and the reporters can depend on it alone.

Example:
    >>> import trio_bots
    >>> try:
    ...     raise trio_bots.ConfigError("size must be >= 0, got -1")
    ... except trio_bots.TrioBotsError as exc:
    ...     print(exc)
    size must be >= 0, got -1
"""

from __future__ import annotations

from typing import Any


class TrioBotsError(Exception):
    """Base class of every error that trio_bots raises on purpose.

    Example:
        >>> issubclass(ConnectError, TrioBotsError)
        True
    """


class ConfigError(TrioBotsError, ValueError):
    """A bad option, a bad value or a bad expression, found before running.

    It is also a `ValueError`, so code that validates arguments the usual
    way catches it.

    Example:
        >>> isinstance(ConfigError("x"), ValueError)
        True
    """


class SwarmAborted(TrioBotsError):
    """The failure policy stopped the swarm.

    Attributes:
        failures: the `BotFailure` records that triggered the abort.
        result: the partial `SwarmResult` of the run, or None.

    The first failing bot's exception is the ``__cause__``.

    Example:
        >>> err = SwarmAborted("bot 3 failed: ValueError: boom", failures=[])
        >>> str(err)
        'bot 3 failed: ValueError: boom'
    """

    def __init__(self, message: str, *, failures: list[Any], result: Any = None) -> None:
        super().__init__(message)
        self.failures = failures
        self.result = result


class ConnectError(TrioBotsError):
    """A connection (or its TLS handshake) could not be made.

    The message names host and port; the OS or TLS error is the
    ``__cause__``.

    Example:
        >>> str(ConnectError("cannot connect to 127.0.0.1:1: connection refused"))
        'cannot connect to 127.0.0.1:1: connection refused'
    """


class BotGone(TrioBotsError):
    """The bot a receive waits on has ended, so the message can never come.

    Example:
        >>> str(BotGone("bot 2 has ended and nothing from it is queued"))
        'bot 2 has ended and nothing from it is queued'
    """


class InboxFull(TrioBotsError):
    """A send under ``on_full="error"`` found a receiver's inbox full.

    Nothing was delivered to anyone.

    Example:
        >>> issubclass(InboxFull, TrioBotsError)
        True
    """


class RequestTimeout(TrioBotsError):
    """A measured request ran past ``request_timeout``; it counts as failed.

    Example:
        >>> str(RequestTimeout("'login' took longer than 0.5 s"))
        "'login' took longer than 0.5 s"
    """


class ProtocolError(TrioBotsError):
    """The peer broke the wire protocol: a malformed or truncated frame.

    Example:
        >>> str(ProtocolError("EOF with 3 bytes of a partial frame pending"))
        'EOF with 3 bytes of a partial frame pending'
    """


class ThresholdError(TrioBotsError, AssertionError):
    """One or more thresholds failed; the message lists each one.

    It is also an `AssertionError`, so pytest reports it as a failed test.

    Example:
        >>> isinstance(ThresholdError("p99(login) < 50ms: measured 80ms"), AssertionError)
        True
    """
