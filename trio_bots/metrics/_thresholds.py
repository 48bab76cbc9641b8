"""Pass/fail thresholds over a run's stats: ``"p99(login) < 50ms"``.

A threshold names a metric, optionally the request name it reads (no
name means ``stats.total``), a comparison and a value. The grammar, in
EBNF (whitespace may separate any two tokens)::

    threshold  = metric, [ "(", name, ")" ], operator, number, [ unit ] ;
    metric     = "count" | "rps" | "failure_rate"
               | "mean" | "avg" | "min" | "max" | "median" | "med" | percentile ;
    percentile = "p", digits, [ ".", digits ] ;          (* 0 to 100 *)
    name       = bare | quoted ;
    bare       = char - ( "(" | ")" | '"' | "'" | space ), { char - ( "(" | ")" | space ) } ;
    quoted     = '"', { char - ( '"' | "\\" ) | "\\", char }, '"'
               | "'", { char - ( "'" | "\\" ) | "\\", char }, "'" ;
    operator   = "<" | "<=" | ">" | ">=" | "==" ;
    number     = digits, [ ".", [ digits ] ], [ exponent ] | ".", digits, [ exponent ] ;
    exponent   = ( "e" | "E" ), [ "+" | "-" ], digits ;
    unit       = "us" | "µs" | "μs" | "ms" | "s" | "%" ;
    digits     = digit, { digit } ;

Metric words and units are case-insensitive. Latency metrics (mean,
min, max, percentiles) take ``us``/``µs``/``ms``/``s``, and a bare
number means seconds. ``failure_rate`` takes ``%`` or a bare fraction
from 0 to 1. ``count`` (successful requests) and ``rps`` take a bare
number. ``<=``, ``>=`` and ``==`` allow a relative error of 1e-9, and
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
    p99(login) < 50ms failed: measured 80ms, required < 50ms
    failure_rate == 0 passed: measured 0%
    >>> parse_threshold("p99.9 <1s").percentile
    99.9
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final, NamedTuple

from .._errors import ConfigError, ThresholdError
from ._hdr import same_bucket
from ._stats import Stats, StatsMap

__all__ = [
    "Threshold",
    "ThresholdResult",
    "assert_thresholds",
    "check_thresholds",
    "parse_threshold",
]

_LATENCY_WORDS: Final = {"mean": "mean", "avg": "mean", "min": "min", "max": "max"}
_MEDIAN_WORDS: Final = frozenset({"median", "med"})
_PLAIN_WORDS: Final = frozenset({"count", "rps", "failure_rate"})
_METRICS_HELP: Final = (
    "a metric: count, rps, failure_rate, mean, min, max or a percentile such as p99 or p99.9"
)
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
    kind: str  # "word", "(", ")", "name", "op", "number", "%", "end"
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
    while i < n and expr[i] not in "()" and not expr[i].isspace():
        i += 1
    tokens.append(_Token("name", expr[start:i], start))
    return i


@dataclass(frozen=True)
class Threshold:
    """A parsed threshold expression; `parse_threshold` makes one.

    Attributes:
        metric: the metric word, lower-cased (``"p99.9"``, ``"failure_rate"``).
        name: the request name, or None for ``stats.total``.
        op: one of ``<``, ``<=``, ``>``, ``>=``, ``==``.
        number: the number as written.
        unit: ``""``, ``us``, ``µs``, ``μs``, ``ms``, ``s`` or ``%``.

    Example:
        >>> t = parse_threshold('p99("GET /") <= 0.25 s')
        >>> t.name, t.value, str(t)
        ('GET /', 0.25, 'p99("GET /") <= 0.25s')
    """

    metric: str
    name: str | None
    op: str
    number: str
    unit: str

    def __str__(self) -> str:
        return f"{self.metric}{_name_repr(self.name)} {self.op} {self.number}{self.unit}"

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
    name = None
    if tokens[pos].kind == "(":
        pos += 1
        name = take("name", "a request name (quote it if it has spaces or parentheses)").text
        take(")", "')' after the name")
    op = take("op", "an operator: <, <=, >, >= or ==" if name else "'(' or an operator").text
    number = take("number", "a number")
    unit, unit_pos = "", tokens[pos].pos
    if tokens[pos].kind in ("word", "%"):
        unit = tokens[pos].text.lower()
        pos += 1
    take("end", "the end of the threshold")
    _check_value(expr, metric, number, unit, unit_pos)
    return Threshold(metric, name, op, number.text, unit)


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
    ``measured`` and ``required`` are in base units: seconds for
    latencies, a 0..1 fraction for ``failure_rate``, plain numbers for
    ``count`` and ``rps``. ``str()`` gives a readable line.

    Example:
        >>> r = ThresholdResult("p99(login) < 50ms", False, 0.0802, 0.05)
        >>> str(r)
        'p99(login) < 50ms failed: measured 80.2ms, required < 50ms'
    """

    expression: str
    passed: bool
    measured: float | None
    required: float
    reason: str = field(default="", compare=False)

    def __str__(self) -> str:
        verdict = "passed" if self.passed else "failed"
        if self.measured is None:
            return f"{self.expression} {verdict}: {self.reason or 'no samples'}"
        try:
            t = parse_threshold(self.expression)
        except ConfigError:  # built by hand from something else: plain figures
            return f"{self.expression} {verdict}: measured {self.measured:.6g}"
        measured = _format(t, self.measured)
        if self.passed:
            return f"{self.expression} {verdict}: measured {measured}"
        return f"{self.expression} {verdict}: measured {measured}, required {t.op} {_required(t)}"


def _format(t: Threshold, value: float) -> str:
    if t.metric == "failure_rate":
        return f"{value * 100:.3g}%"
    if t.metric == "count":
        return f"{value:.0f}"
    if t.metric == "rps":
        return f"{value:.6g}"
    if value < 1e-3:
        return f"{value * 1e6:.3g}µs"
    if value < 1:
        return f"{value * 1e3:.3g}ms"
    return f"{value:.4g}s"


def _required(t: Threshold) -> str:
    if t.is_latency and not t.unit:
        return f"{t.number}s"
    return f"{t.number}{t.unit}"


def _measure(t: Threshold, s: Stats) -> tuple[float | None, str]:
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
    where = "in total" if t.name is None else f"under {t.name!r}"
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


def check_thresholds(
    stats: StatsMap, thresholds: Iterable[str | Threshold]
) -> list[ThresholdResult]:
    """Evaluate thresholds against a run's stats, one result each, in order.

    Raises:
        ConfigError: for a malformed expression, or a name never recorded.

    Example:
        >>> from trio_bots.metrics import Recorder, stats_from_snapshot
        >>> rec = Recorder(0.0)
        >>> rec.record("ping", 900)
        >>> stats = stats_from_snapshot(rec.snapshot(1.0, bots_running=0, active_seconds=1.0))
        >>> [r.passed for r in check_thresholds(stats, ["count(ping) >= 1", "p50 < 1ms"])]
        [True, True]
    """
    results = []
    for item in thresholds:
        t = item if isinstance(item, Threshold) else parse_threshold(item)
        if t.name is None:
            s = stats.total
        elif t.name in stats:
            s = stats[t.name]
        else:
            known = ", ".join(map(repr, sorted(stats))) or "none"
            raise ConfigError(
                f"threshold {str(t)!r} reads {t.name!r}, which was never recorded; "
                f"known names: {known}"
            )
        measured, reason = _measure(t, s)
        passed = measured is not None and _compare(measured, t.op, t.value, t.is_latency)
        results.append(ThresholdResult(str(t), passed, measured, t.value, reason))
    return results


def assert_thresholds(
    stats: StatsMap, thresholds: Iterable[str | Threshold]
) -> list[ThresholdResult]:
    """Like `check_thresholds`, but raise `ThresholdError` if any failed.

    Raises:
        ThresholdError: listing every failed threshold with measured and
            required values.
        ConfigError: for a malformed expression, or a name never recorded.

    Example:
        >>> from trio_bots.metrics import Recorder, stats_from_snapshot
        >>> rec = Recorder(0.0)
        >>> rec.record("login", 80_200)
        >>> stats = stats_from_snapshot(rec.snapshot(1.0, bots_running=0, active_seconds=1.0))
        >>> assert_thresholds(stats, ["p99(login) < 50ms", "count(login) >= 1"])
        Traceback (most recent call last):
        ...
        trio_bots._errors.ThresholdError: 1 of 2 thresholds failed:
          p99(login) < 50ms failed: measured 80.2ms, required < 50ms
    """
    results = check_thresholds(stats, thresholds)
    failed = [r for r in results if not r.passed]
    if failed:
        lines = "\n".join(f"  {r}" for r in failed)
        raise ThresholdError(f"{len(failed)} of {len(results)} thresholds failed:\n{lines}")
    return results
