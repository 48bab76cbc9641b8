"""Pass/fail thresholds over a run's stats: ``"p99(login) < 50ms"``.

A threshold names a metric, optionally the request name it reads (no
name means ``stats.total``), a comparison and a value. The grammar, in
EBNF (whitespace may separate any two tokens)::

    threshold  = metric, [ window ], [ "(", name, ")" ], operator, number, [ unit ] ;
    metric     = "count" | "rps" | "failure_rate"
               | "mean" | "avg" | "min" | "max" | "median" | "med" | percentile
               | "counter" | "gauge" | "dropped_arrivals" | "dropped_messages" ;
    window     = "[", digits, [ "s" | "m" ], "]" ;           (* 1 s to 10 min *)
    percentile = "p", digits, [ ".", digits ] ;          (* 0 to 100 *)
    name       = bare | quoted ;
    bare       = char - ( ")" | '"' | "'" | space ), { char - ")" } ;  (* trailing spaces dropped *)
    quoted     = '"', { char - ( '"' | "\\" ) | "\\", char }, '"'
               | "'", { char - ( "'" | "\\" ) | "\\", char }, "'" ;
    operator   = "<" | "<=" | ">" | ">=" | "==" ;
    number     = digits, [ ".", [ digits ] ], [ exponent ] | ".", digits, [ exponent ] ;
    exponent   = ( "e" | "E" ), [ "+" | "-" ], digits ;
    unit       = "us" | "µs" | "μs" | "ms" | "s" | "%" ;
    digits     = digit, { digit } ;

An unquoted name runs to its closing ``)``, so it may hold spaces; a
trailing ``{key=value,...}`` selects every tag set of the name that holds
those pairs (``p99(GET /item{region=eu}) < 80ms``, see `StatsMap.select`).
Metric words and units are case-insensitive. Latency metrics (mean,
min, max, percentiles) take ``us``/``µs``/``ms``/``s``, and a bare
number means seconds. ``failure_rate`` takes ``%`` or a bare fraction
from 0 to 1. ``count`` (successful requests) and ``rps`` take a bare
number.

The run's own figures are metrics too: ``counter(name)`` reads the custom
counter of ``bot.count(name)``, ``gauge(name)`` the last value of
``bot.gauge(name)``, and ``dropped_arrivals`` and ``dropped_messages`` (no
name) the run's counts of them; each takes a bare number. A counter that
was never counted reads 0; a gauge never set has no value.

A *window* ``[W]`` after a request metric reads only the last W complete
seconds of the run instead of all of it: ``p95[10s](login) < 100ms``. W is
a whole number of seconds from 1 s to 10 minutes (``[90]``, ``[90s]`` or
``[2m]``), and needs the run's timeline (`check_thresholds`' ``timeline=``).

``<=``, ``>=`` and ``==`` allow a relative error of 1e-9, and
latencies that fall in one histogram bucket (3 significant digits)
compare equal: ``p99 <= 99ms`` passes when p99 reads 99.007 ms, the top
of the bucket that holds 99 ms, and ``p99 < 99ms`` fails.

Example:
    >>> from trio_bots.metrics import Recorder, stats_from_snapshot
    >>> rec = Recorder(0.0)
    >>> for us in (20_000, 30_000, 80_000):
    ...     rec.record("login", us)
    >>> stats = stats_from_snapshot(rec.snapshot(1.0, bots_running=0, active_seconds=1.0))
    >>> for result in check_thresholds(stats, ["p99(login) < 50ms", "failure_rate == 0"]):
    ...     print(result)
    p99(login) < 50ms failed: measured 80.0 ms, required < 50ms
    failure_rate == 0 passed: measured 0%
    >>> parse_threshold("p99.9 <1s").percentile
    99.9
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, NamedTuple

from .._errors import ConfigError, ThresholdError
from ._format import COUNT, PER_SECOND, RATIO, SECONDS, UNITS, VALUE, format_value
from ._hdr import EMPTY_HIST, NAN, nan_max, nan_min, same_bucket
from ._stats import Stats, StatsMap
from ._tags import contains, parse_tags, split_key

__all__ = [
    "RunFigures",
    "Threshold",
    "ThresholdResult",
    "assert_thresholds",
    "check_thresholds",
    "parse_threshold",
]

_LATENCY_WORDS: Final = {"mean": "mean", "avg": "mean", "min": "min", "max": "max"}
_MEDIAN_WORDS: Final = frozenset({"median", "med"})
#: The run-level metrics: not read from a request name's `Stats`.
_RUN_WORDS: Final = frozenset({"counter", "gauge", "dropped_arrivals", "dropped_messages"})
#: The metrics that read a name, and those that take none.
_NAMED_WORDS: Final = frozenset({"counter", "gauge"})
_UNNAMED_WORDS: Final = frozenset({"dropped_arrivals", "dropped_messages"})
#: The metrics that count up during a run: with ``>``, ``>=`` or ``==`` they are judged
#: at its end only (see `trio_bots.metrics.LiveThresholds`).
COUNT_WORDS: Final = frozenset({"count", "counter", "dropped_arrivals", "dropped_messages"})
#: The unit of each plain metric's value; every other metric is a latency, in seconds.
_PLAIN_UNITS: Final = {
    "count": COUNT,
    "rps": PER_SECOND,
    "failure_rate": RATIO,
    "counter": COUNT,
    "gauge": VALUE,
    "dropped_arrivals": COUNT,
    "dropped_messages": COUNT,
}
_PLAIN_WORDS: Final = frozenset(_PLAIN_UNITS)
_METRICS_HELP: Final = (
    "a metric: count, rps, failure_rate, mean, min, max or a percentile such as p99 or p99.9 "
    "(or counter, gauge, dropped_arrivals, dropped_messages)"
)
#: The longest window: what the in-memory timeline keeps in 1 s buckets.
MAX_WINDOW: Final = 600
_OPERATORS: Final = ("<=", ">=", "==", "<", ">")
_SCALE: Final = {
    "us": Decimal(10) ** -6,
    "µs": Decimal(10) ** -6,
    "μs": Decimal(10) ** -6,
    "ms": Decimal(10) ** -3,
    "s": Decimal(1),
    "%": Decimal(10) ** -2,
    "": Decimal(1),
}
_LATENCY_UNITS: Final = frozenset({"", "us", "µs", "μs", "ms", "s"})
_QUOTES: Final = "\"'"
_DIGITS: Final = "0123456789"
_REL_TOL: Final = 1e-9


class _Token(NamedTuple):
    kind: str  # "word", "window", "(", ")", "name", "op", "number", "%", "end"
    text: str  # as written ("name": the unquoted, unescaped name)
    pos: int


def _fail(expr: str, pos: int, expected: str, found: str | None = None) -> ConfigError:
    if found is None:
        found = f"{expr[pos]!r}" if pos < len(expr) else "the end"
    return ConfigError(
        f"bad threshold {expr!r}: expected {expected} at column {pos + 1}, found {found}"
        f"\n    {expr}\n    {' ' * pos}^"
    )


def _is_word_char(c: str) -> bool:
    return c.isalnum() or c in "_.µμ"


def _tokenize(expr: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(expr)
    while True:
        while i < n and expr[i].isspace():
            i += 1
        if i == n:
            tokens.append(_Token("end", "", i))
            return tokens
        c, start = expr[i], i
        if c == "(":
            tokens.append(_Token("(", c, i))
            i += 1
            while i < n and expr[i].isspace():
                i += 1
            if i < n and expr[i] != ")":
                i = _name(expr, i, tokens)
        elif c == ")":
            tokens.append(_Token(")", c, i))
            i += 1
        elif c == "[":
            end = expr.find("]", i)
            if end < 0:
                raise _fail(expr, i, "a closing ] for this window", "the end")
            tokens.append(_Token("window", expr[i + 1 : end], i))
            i = end + 1
        elif c in "<>=":
            op = expr[i : i + 2] if expr[i : i + 2] in _OPERATORS else c
            if op not in _OPERATORS:
                raise _fail(expr, i, "an operator: <, <=, >, >= or ==")
            tokens.append(_Token("op", op, i))
            i += len(op)
        elif _isdigits(c) or (c == "." and _isdigits(expr[i + 1 : i + 2])):
            i = _number(expr, i)
            tokens.append(_Token("number", expr[start:i], start))
        elif c == "%":
            tokens.append(_Token("%", c, i))
            i += 1
        elif _is_word_char(c):
            while i < n and _is_word_char(expr[i]):
                i += 1
            tokens.append(_Token("word", expr[start:i], start))
        else:
            raise _fail(expr, i, "a metric, a name in parentheses, an operator or a number")


def _window(expr: str, token: _Token) -> int:
    """The seconds of a ``[W]`` window: ``[10s]``, ``[2m]`` or ``[90]``."""
    text = token.text.strip().lower()
    digits = text.rstrip("sm")
    unit = text[len(digits) :]
    expected = "a window of whole seconds from 1s to 10m, such as [10s] or [2m]"
    if not _isdigits(digits) or unit not in ("", "s", "m"):
        raise _fail(expr, token.pos, expected, repr(f"[{token.text}]"))
    seconds = int(digits) * (60 if unit == "m" else 1)
    if not 1 <= seconds <= MAX_WINDOW:
        raise _fail(expr, token.pos, expected, repr(f"[{token.text}]"))
    return seconds


def _isdigits(text: str) -> bool:
    return bool(text) and all(c in _DIGITS for c in text)


def _digits(expr: str, i: int) -> int:
    while i < len(expr) and expr[i] in _DIGITS:
        i += 1
    return i


def _number(expr: str, i: int) -> int:
    i = _digits(expr, i)
    if expr[i : i + 1] == ".":
        i = _digits(expr, i + 1)
    if expr[i : i + 1] in ("e", "E"):
        j = i + 1 + (expr[i + 1 : i + 2] in ("+", "-"))
        if _isdigits(expr[j : j + 1]):  # else the "e" is left for the unit check to reject
            i = _digits(expr, j)
    return i


def _name(expr: str, i: int, tokens: list[_Token]) -> int:
    """Lex the name after "(": quoted with backslash escapes, or a bare run."""
    start, n = i, len(expr)
    if expr[i] in _QUOTES:
        quote, chars = expr[i], []
        i += 1
        while i < n and expr[i] != quote:
            if expr[i] == "\\":
                i += 1
                if i == n:
                    break
            chars.append(expr[i])
            i += 1
        if i == n:
            raise _fail(expr, start, f"a closing {quote} for this name", "the end")
        tokens.append(_Token("name", "".join(chars), start))
        return i + 1
    while i < n and expr[i] != ")":  # a bare name runs to its closing ")": spaces allowed
        i += 1
    tokens.append(_Token("name", expr[start:i].rstrip(), start))
    return i


@dataclass(frozen=True)
class Threshold:
    """A parsed threshold expression; `parse_threshold` makes one.

    Attributes:
        metric: the metric word, lower-cased (``"p99.9"``, ``"failure_rate"``).
        name: the request name (or counter or gauge), or None for ``stats.total``.
        op: one of ``<``, ``<=``, ``>``, ``>=``, ``==``.
        number: the number as written.
        unit: ``""``, ``us``, ``µs``, ``μs``, ``ms``, ``s`` or ``%``.
        window: the seconds of a ``[W]`` window, or None for the whole run.

    Example:
        >>> t = parse_threshold('p99("GET /") <= 0.25 s')
        >>> t.name, t.value, str(t)
        ('GET /', 0.25, 'p99("GET /") <= 0.25s')
        >>> str(parse_threshold("p95 [1m] (login) < 100ms"))
        'p95[60s](login) < 100ms'
    """

    metric: str
    name: str | None
    op: str
    number: str
    unit: str
    window: int | None = None

    def __str__(self) -> str:
        window = "" if self.window is None else f"[{self.window}s]"
        name = _name_repr(self.name)
        return f"{self.metric}{window}{name} {self.op} {self.number}{self.unit}"

    @property
    def expression(self) -> str:
        """The canonical text; parsing it gives an equal `Threshold`."""
        return str(self)

    @property
    def value(self) -> float:
        """The required value in base units: seconds, a 0..1 fraction or a plain number."""
        return float(Decimal(self.number) * _SCALE[self.unit])

    @property
    def percentile(self) -> float | None:
        """The percentile a ``pNN`` or median metric reads, else None."""
        if self.metric in _MEDIAN_WORDS:
            return 50.0
        return float(self.metric[1:]) if self.metric.startswith("p") else None

    @property
    def is_latency(self) -> bool:
        """Whether the metric is a latency (in seconds)."""
        return self.metric not in _PLAIN_WORDS

    @property
    def reads_run(self) -> bool:
        """Whether the metric reads the run (a counter, a gauge, the dropped counts), not
        a request name's `Stats`."""
        return self.metric in _RUN_WORDS

    @property
    def counts_up(self) -> bool:
        """Whether the measured value can only grow during the run and the comparison
        wants it to reach a value (``count(x) >= 100``): then only the end can judge it.

        Example:
            >>> [parse_threshold(e).counts_up for e in ("count > 5", "count < 5", "p99 > 1")]
            [True, False, False]
        """
        return self.metric in COUNT_WORDS and self.op in (">", ">=", "==")

    @property
    def base_unit(self) -> str:
        """The unit of `value` and of what the metric measures, whatever unit was written.

        ``"s"`` for latencies, ``"ratio"`` (0..1) for ``failure_rate``,
        ``"1/s"`` for ``rps``, ``"count"`` for ``count``, ``counter`` and the dropped
        counts, and ``"value"`` for ``gauge``.

        Example:
            >>> [parse_threshold(e).base_unit for e in ("p99 < 50ms", "failure_rate < 1%")]
            ['s', 'ratio']
        """
        return _PLAIN_UNITS.get(self.metric, SECONDS)


def _name_repr(name: str | None) -> str:
    if name is None:
        return ""
    bare = name and name[0] not in _QUOTES and not any(c in "()" or c.isspace() for c in name)
    if bare:
        return f"({name})"
    return '("' + name.replace("\\", "\\\\").replace('"', '\\"') + '")'


def parse_threshold(expr: str) -> Threshold:
    """Parse one threshold expression (grammar in the module docstring).

    Raises:
        ConfigError: showing the expression, a caret under the offending
            character, and what was expected there.

    Example:
        >>> from trio_bots import ConfigError
        >>> parse_threshold("failure_rate(login) < 1%").value
        0.01
        >>> try:
        ...     parse_threshold("p99(login) = 50ms")
        ... except ConfigError as exc:
        ...     print(exc)  # doctest: +ELLIPSIS
        bad threshold 'p99(login) = 50ms': expected an operator: <, <=, >, >= or == ...
            p99(login) = 50ms
                       ^
    """
    if not isinstance(expr, str):
        raise ConfigError(f"a threshold is a string such as 'p99(login) < 50ms', got {expr!r}")
    expr = expr.strip()
    tokens = _tokenize(expr)
    pos = 0

    def take(kind: str, expected: str) -> _Token:
        nonlocal pos
        token = tokens[pos]
        if token.kind != kind:
            raise _fail(expr, token.pos, expected, repr(token.text) if token.text else None)
        pos += 1
        return token

    word = take("word", _METRICS_HELP)
    metric = word.text.lower()
    _check_metric(expr, word.pos, metric)
    window = None
    if tokens[pos].kind == "window":
        if metric in _RUN_WORDS:
            raise _fail(
                expr, tokens[pos].pos, f"'(' or an operator: a window applies to request "
                f"metrics, not {metric}", repr(f"[{tokens[pos].text}]")
            )
        window = _window(expr, tokens[pos])
        pos += 1
    name = None
    if tokens[pos].kind == "(":
        if metric in _UNNAMED_WORDS:
            raise _fail(expr, tokens[pos].pos, f"an operator: {metric} takes no name", "'('")
        pos += 1
        name = take("name", "a request name (quote it if it has spaces or parentheses)").text
        take(")", "')' after the name")
    elif metric in _NAMED_WORDS:
        raise _fail(expr, tokens[pos].pos, f"'(' and the name of the {metric}")
    op = take("op", "an operator: <, <=, >, >= or ==" if name else "'(' or an operator").text
    number = take("number", "a number")
    unit, unit_pos = "", tokens[pos].pos
    if tokens[pos].kind in ("word", "%"):
        unit = tokens[pos].text.lower()
        pos += 1
    take("end", "the end of the threshold")
    _check_value(expr, metric, number, unit, unit_pos)
    return Threshold(metric, name, op, number.text, unit, window)


def _check_metric(expr: str, pos: int, metric: str) -> None:
    if metric in _LATENCY_WORDS or metric in _MEDIAN_WORDS or metric in _PLAIN_WORDS:
        return
    whole, _, fraction = metric[1:].partition(".")
    if metric.startswith("p") and _isdigits(whole):
        if (_isdigits(fraction) or "." not in metric) and float(metric[1:]) <= 100:
            return
        raise _fail(expr, pos, "a percentile from p0 to p100, such as p99 or p99.9", repr(metric))
    raise _fail(expr, pos, _METRICS_HELP, repr(metric))


def _check_value(expr: str, metric: str, number: _Token, unit: str, unit_pos: int) -> None:
    if not math.isfinite(float(number.text)):
        raise _fail(expr, number.pos, "a number below 1e308", repr(number.text))
    if metric in _PLAIN_WORDS:
        if metric == "failure_rate":
            if unit not in ("", "%"):
                raise _fail(expr, unit_pos, "'%' or nothing (a fraction from 0 to 1)")
            if not unit and Decimal(number.text) > 1:
                raise _fail(
                    expr, number.pos, f"a fraction from 0 to 1 (write {number.text}% for percent)"
                )
        elif unit:
            raise _fail(expr, unit_pos, f"no unit: {metric} is a plain number")
    elif unit not in _LATENCY_UNITS:
        raise _fail(expr, unit_pos, "a latency unit (us, µs, ms, s) or nothing for seconds")


@dataclass(frozen=True)
class ThresholdResult:
    """The outcome of one threshold.

    ``measured`` is None when there was nothing to measure (no samples);
    ``measured`` and ``required`` are in base units, which ``unit`` names:
    ``"s"`` (seconds) for latencies, ``"ratio"`` (a 0..1 fraction) for
    ``failure_rate``, ``"1/s"`` for ``rps``, ``"count"`` for ``count``,
    ``counter`` and the dropped counts, and ``"value"`` for ``gauge``.
    Left out, ``unit`` is the parsed expression's `Threshold.base_unit`.
    ``str()`` gives a readable line, its figures written by `format_value`,
    as every report writes them.

    Raises:
        ConfigError: ``unit`` is not one of those, or is left out while
            ``expression`` is not a threshold expression to take it from.

    Example:
        >>> r = ThresholdResult("p99(login) < 50ms", False, 0.0802, 0.05)
        >>> r.unit, str(r)
        ('s', 'p99(login) < 50ms failed: measured 80.2 ms, required < 50ms')
    """

    expression: str
    passed: bool
    measured: float | None
    required: float
    reason: str = field(default="", compare=False)
    unit: str = ""

    def __post_init__(self) -> None:
        if self.unit in UNITS:
            return
        units = ", ".join(map(repr, UNITS))
        if self.unit:
            raise ConfigError(f"a threshold result's unit is one of {units}, got {self.unit!r}")
        try:
            unit = parse_threshold(self.expression).base_unit
        except ConfigError:
            raise ConfigError(
                f"ThresholdResult({self.expression!r}, ...) needs unit= (one of {units}): "
                "it is taken from the expression only when that is a threshold such as "
                "'p99(login) < 50ms'"
            ) from None
        object.__setattr__(self, "unit", unit)  # frozen: set once, here

    def __str__(self) -> str:
        verdict = "passed" if self.passed else "failed"
        if self.measured is None:
            return f"{self.expression} {verdict}: {self.reason or 'no samples'}"
        measured = format_value(self.measured, self.unit)
        try:
            t = parse_threshold(self.expression)
        except ConfigError:  # built by hand from something else: no operator to show
            return f"{self.expression} {verdict}: measured {measured}"
        if self.passed:
            return f"{self.expression} {verdict}: measured {measured}"
        return f"{self.expression} {verdict}: measured {measured}, required {t.op} {_required(t)}"


def _required(t: Threshold) -> str:
    if t.is_latency and not t.unit:
        return f"{t.number}s"
    return f"{t.number}{t.unit}"


def measure(t: Threshold, s: Stats) -> tuple[float | None, str]:
    """What a request threshold measures in `s`, and why nothing when it is None."""
    where = "in total" if t.name is None else f"under {t.name!r}"
    if t.window is not None:
        where += f" in the last {t.window} s"
    if t.metric == "count":
        return float(s.count), ""
    if t.metric == "rps":
        value = s.rps
        return (None, "no active time to divide by") if math.isnan(value) else (value, "")
    if t.metric == "failure_rate":
        value = s.failure_rate
    elif (q := t.percentile) is not None:
        value = s.percentile(q)
    else:
        value = getattr(s, _LATENCY_WORDS[t.metric])
    kind = "requests" if t.metric == "failure_rate" else "successful requests"
    return (None, f"no samples ({kind} {where}: 0)") if math.isnan(value) else (value, "")


def _compare(measured: float, op: str, required: float, latency: bool) -> bool:
    close = math.isclose(measured, required, rel_tol=_REL_TOL, abs_tol=1e-12)
    # latencies the histogram cannot tell apart (3 significant digits) count as equal
    close = close or (latency and same_bucket(measured, required))
    if op == "==":
        return close
    if op == "<":
        return measured < required and not close
    if op == ">":
        return measured > required and not close
    if op == "<=":
        return measured <= required or close
    return measured >= required or close


def judge(t: Threshold, measured: float | None, reason: str = "") -> ThresholdResult:
    """The result of `t` for a measured value (None: nothing to measure, a failure).

    Example:
        >>> str(judge(parse_threshold("counter(retries) < 5"), 7.0))
        'counter(retries) < 5 failed: measured 7, required < 5'
    """
    passed = measured is not None and _compare(measured, t.op, t.value, t.is_latency)
    return ThresholdResult(str(t), passed, measured, t.value, reason, t.base_unit)


@dataclass(frozen=True)
class RunFigures:
    """The figures of a run that are not a request name's `Stats`: what ``counter``,
    ``gauge``, ``dropped_arrivals`` and ``dropped_messages`` read.

    Example:
        >>> figures = RunFigures(counters={"retries": 3})
        >>> figures.measure(parse_threshold("counter(retries) < 5"))
        (3.0, '')
        >>> figures.measure(parse_threshold("counter(other) < 5"))  # never counted: 0
        (0.0, '')
        >>> figures.measure(parse_threshold("gauge(queue) < 5"))
        (None, "gauge 'queue' was never set")
    """

    counters: Mapping[str, float] = field(default_factory=dict)
    gauges: Mapping[str, float] = field(default_factory=dict)
    dropped_arrivals: int = 0
    dropped_messages: int = 0

    def measure(self, t: Threshold) -> tuple[float | None, str]:
        """What `t` (a `Threshold.reads_run` metric) measures, and why nothing if None."""
        if t.metric == "counter":
            return float(self.counters.get(t.name or "", 0)), ""
        if t.metric == "gauge":
            value = self.gauges.get(t.name or "")
            if value is None:
                return None, f"gauge {t.name!r} was never set"
            return float(value), ""
        return float(getattr(self, t.metric)), ""


def request_stats(stats: StatsMap, t: Threshold, figures: RunFigures | None = None) -> Stats:
    """The `Stats` that `t` reads: ``stats.total``, or its name's.

    Raises:
        ConfigError: the name was never recorded (naming the known ones), or it is a
            custom counter read with ``count`` (suggesting ``counter``).
    """
    if t.name is None:
        return stats.total
    if t.name in stats:  # a name{k=v} selector too (see `StatsMap.select`)
        return stats[t.name]
    if t.metric == "count" and figures is not None and t.name in figures.counters:
        raise ConfigError(f"threshold {str(t)!r}: {counter_hint(t)}")
    known = ", ".join(map(repr, sorted(stats))) or "none"
    raise ConfigError(
        f"threshold {str(t)!r} reads {t.name!r}, which was never recorded; known names: {known}"
    )


def counter_hint(t: Threshold) -> str:
    """Why ``count(x)`` of a custom counter ``x`` is a mistake, and what to write.

    Example:
        >>> counter_hint(parse_threshold("count(retries) < 5"))
        "'retries' is a custom counter (bot.count), not a request name: write counter(retries) < 5"
    """
    return (
        f"{t.name!r} is a custom counter (bot.count), not a request name: "
        f"write counter{_name_repr(t.name)} {t.op} {t.number}"
    )


def entry_matches(key: str, name: str) -> bool:
    """Whether the recorder key `key` (``name{tags}``) is part of what the threshold name
    `name` reads: the name itself, any tag set of it, or the tag sets that a
    ``name{k=v}`` selector holds (as `StatsMap` reads them).

    Example:
        >>> [entry_matches(k, "get") for k in ("get", "get{region=eu}", "getter")]
        [True, True, False]
        >>> [entry_matches(k, "get{region=eu}") for k in ("get", "get{region=eu,tier=1}")]
        [False, True]
    """
    if key == name:
        return True
    base, text = split_key(key)
    wanted_base, wanted = split_key(name)
    if base != wanted_base:
        return False
    return not wanted or contains(text, parse_tags(wanted))


def window_stats(buckets: Sequence[Mapping[str, Any]], t: Threshold) -> Stats:
    """The `Stats` of `t`'s name (or of the total) over one-second timeline buckets.

    Example:
        >>> from trio_bots.metrics import Recorder
        >>> rec = Recorder(0.0)
        >>> rec.record("a", 1000)
        >>> first = rec.tick(0, bots_running=1)
        >>> rec.record("a", 9000)
        >>> second = rec.tick(1, bots_running=1)
        >>> s = window_stats([second], parse_threshold("max[1s](a) < 1"))
        >>> s.count, s.max, s.rps
        (1, 0.009, 1.0)
    """
    if t.name is None:
        entries: list[Mapping[str, Any]] = list(buckets)
        kind = "request"
    else:
        name = t.name
        entries = [e for b in buckets for k, e in b["names"].items() if entry_matches(k, name)]
        kind = next((e.get("kind", "request") for e in entries), "request")
    low = high = NAN
    for e in entries:
        low, high = nan_min(low, e.get("min", NAN)), nan_max(high, e.get("max", NAN))
    return Stats(
        t.name or "total",
        kind=kind,
        count=sum(e["count"] for e in entries),
        failure_count=sum(e["failures"] for e in entries),
        active_seconds=float(len(buckets)),
        hists=[e["hist"] for e in entries if e["hist"] and e["hist"] != EMPTY_HIST],
        low=low,
        high=high,
    )


def _last_seconds(timeline: Sequence[Mapping[str, Any]], seconds: int) -> list[Mapping[str, Any]]:
    """The one-second buckets of the last `seconds` seconds of a timeline."""
    ones = [b for b in timeline if b.get("span", 1) == 1]
    if not ones:
        return []
    last = max(b["t"] for b in ones)
    return [b for b in ones if b["t"] > last - seconds]


def check_thresholds(
    stats: StatsMap,
    thresholds: Iterable[str | Threshold],
    *,
    timeline: Sequence[Mapping[str, Any]] | None = None,
    figures: RunFigures | None = None,
) -> list[ThresholdResult]:
    """Evaluate thresholds against a run's stats, one result each, in order.

    Args:
        stats: the run's `StatsMap`.
        thresholds: expressions, or parsed `Threshold` objects.
        timeline: the run's timeline buckets (a snapshot's ``"timeline"``), which a
            windowed threshold (``p95[10s](x)``) reads its last seconds from.
        figures: the counters, gauges and dropped counts, for the thresholds on them.

    Raises:
        ConfigError: for a malformed expression, a name never recorded, ``count`` of a
            custom counter, or a threshold that needs `timeline` or `figures` without them.

    Example:
        >>> from trio_bots.metrics import Recorder
        >>> rec = Recorder(0.0)
        >>> rec.record("ping", 900)
        >>> stats = stats_from_snapshot(rec.snapshot(1.0, bots_running=0, active_seconds=1.0))
        >>> [r.passed for r in check_thresholds(stats, ["count(ping) >= 1", "p50 < 1ms"])]
        [True, True]
    """
    results = []
    for item in thresholds:
        t = item if isinstance(item, Threshold) else parse_threshold(item)
        if t.reads_run:
            if figures is None:
                raise ConfigError(
                    f"threshold {str(t)!r} reads the run's {t.metric}: check it on the run's "
                    "result (SwarmResult.check), which has them"
                )
            results.append(judge(t, *figures.measure(t)))
            continue
        s = request_stats(stats, t, figures)  # a name never recorded: ConfigError
        if t.window is not None:
            if timeline is None:
                raise ConfigError(
                    f"threshold {str(t)!r} reads the last {t.window} s: check it on the run's "
                    "result (SwarmResult.check), which has the timeline"
                )
            s = window_stats(_last_seconds(timeline, t.window), t)
        results.append(judge(t, *measure(t, s)))
    return results


def assert_thresholds(
    stats: StatsMap,
    thresholds: Iterable[str | Threshold],
    *,
    timeline: Sequence[Mapping[str, Any]] | None = None,
    figures: RunFigures | None = None,
) -> list[ThresholdResult]:
    """Like `check_thresholds`, but raise `ThresholdError` if any failed.

    Raises:
        ThresholdError: listing every failed threshold with measured and
            required values.
        ConfigError: for a malformed expression, or a name never recorded.

    Example:
        >>> from trio_bots import ThresholdError
        >>> from trio_bots.metrics import Recorder, stats_from_snapshot
        >>> rec = Recorder(0.0)
        >>> rec.record("login", 80_200)
        >>> stats = stats_from_snapshot(rec.snapshot(1.0, bots_running=0, active_seconds=1.0))
        >>> try:
        ...     assert_thresholds(stats, ["p99(login) < 50ms", "count(login) >= 1"])
        ... except ThresholdError as exc:
        ...     print(exc)
        1 of 2 thresholds failed:
          p99(login) < 50ms failed: measured 80.2 ms, required < 50ms
    """
    results = check_thresholds(stats, thresholds, timeline=timeline, figures=figures)
    raise_failed(results)
    return results


def raise_failed(results: Sequence[ThresholdResult]) -> None:
    """Raise `ThresholdError` listing the failed results, if any failed.

    Example:
        >>> raise_failed([ThresholdResult("p99 < 1s", True, 0.5, 1.0)])
    """
    failed = [r for r in results if not r.passed]
    if failed:
        lines = "\n".join(f"  {r}" for r in failed)
        raise ThresholdError(f"{len(failed)} of {len(results)} thresholds failed:\n{lines}")
