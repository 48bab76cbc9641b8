from __future__ import annotations

import dataclasses
import json
import math
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_bots._errors import ConfigError, ThresholdError
from trio_bots.metrics import Recorder, StatsMap, format_value, stats_from_snapshot
from trio_bots.metrics._thresholds import (
    Threshold,
    ThresholdResult,
    assert_thresholds,
    check_thresholds,
    parse_threshold,
)


@pytest.mark.parametrize(
    ("expr", "metric", "name", "op", "value"),
    [
        ("p99(login) < 50ms", "p99", "login", "<", 0.05),
        ("p99.9 < 1s", "p99.9", None, "<", 1.0),
        ("failure_rate < 1%", "failure_rate", None, "<", 0.01),
        ("failure_rate(login) == 0", "failure_rate", "login", "==", 0.0),
        ("rps(ping) > 1000", "rps", "ping", ">", 1000.0),
        ("count(join) >= 100", "count", "join", ">=", 100.0),
        ("max(login) <= 2s", "max", "login", "<=", 2.0),
        ("mean < 250us", "mean", None, "<", 250e-6),
        ("min(x) > 3µs", "min", "x", ">", 3e-6),
        ("p95(x) < 3μs", "p95", "x", "<", 3e-6),
        ("p50<0.5", "p50", None, "<", 0.5),
        ("p90 ( a.b:c/d ) <= .5 ms", "p90", "a.b:c/d", "<=", 0.0005),
        ('p99("GET /index") < 0.1ms', "p99", "GET /index", "<", 0.0001),
        ("p99('f(x)') < 1e-3", "p99", "f(x)", "<", 0.001),
        (r'p99("a\"b\\c") < 1', "p99", 'a"b\\c', "<", 1.0),
        ("P99.9(Login) >= 2MS", "p99.9", "Login", ">=", 0.002),
        ("p0(a) > 0", "p0", "a", ">", 0.0),
        ("p100(a) < 1", "p100", "a", "<", 1.0),
        ("failure_rate <= 0.05", "failure_rate", None, "<=", 0.05),
        ("group:table-1 == 3", None, None, None, None),
    ],
)
def test_parse(expr: str, metric: str | None, name: str | None, op: str, value: float) -> None:
    if metric is None:
        with pytest.raises(ConfigError):
            parse_threshold(expr)
        return
    t = parse_threshold(expr)
    assert (t.metric, t.name, t.op, t.value) == (metric, name, op, value)
    assert parse_threshold(str(t)) == t


def test_canonical_text_and_percentile() -> None:
    t = parse_threshold("  p99.9( GET/x )<=1.50 ms ")
    assert str(t) == t.expression == "p99.9(GET/x) <= 1.50ms"
    assert t.percentile == 99.9 and t.is_latency
    assert parse_threshold("median < 1").percentile == 50.0
    assert parse_threshold("count >= 1").percentile is None
    assert str(parse_threshold('p1("a b") < 1')) == 'p1("a b") < 1'
    assert parse_threshold("p1( GET /item{region=eu} ) < 1").name == "GET /item{region=eu}"
    assert str(parse_threshold("p1('\"x') < 1")) == r'p1("\"x") < 1'


@pytest.mark.parametrize(
    ("expr", "caret", "expected"),
    [
        ("p99(login) = 50ms", 11, "an operator"),
        ("p99(login) < 50 mss", 16, "a latency unit"),
        ("foo(x) < 1", 0, "a metric: count, rps"),
        ("p101 < 1", 0, "a percentile from p0 to p100"),
        ("p99() < 1", 4, "a request name"),
        ("p99(a < 1", 9, "')' after the name"),
        ('p99("a b) < 1', 4, 'a closing " for this name'),
        ("p99(a) <", 8, "a number"),
        ("p99(a) < 1s extra", 12, "the end of the threshold"),
        ("count(a) > 5ms", 12, "no unit: count is a plain number"),
        ("rps > 5%", 7, "no unit: rps"),
        ("failure_rate < 5", 15, "a fraction from 0 to 1 (write 5% for percent)"),
        ("failure_rate < 5ms", 16, "'%' or nothing"),
        ("p99 < -1", 6, "a metric, a name in parentheses"),
        ("p99 < 1e999", 6, "a number below 1e308"),
        ("", 0, "a metric"),
    ],
)
def test_errors_show_a_caret(expr: str, caret: int, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_threshold(expr)
    first, shown, marker = str(info.value).split("\n")
    assert f"bad threshold {expr!r}: expected {expected}" in first
    assert f"column {caret + 1}" in first
    assert shown == "    " + expr
    assert marker == "    " + " " * caret + "^"


def test_non_string_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="a threshold is a string"):
        parse_threshold(50)  # type: ignore[arg-type]


garbage = st.text(
    st.sampled_from(list("p9.()[]<>=!%\"'\\ msuµ_failurecountrpsmax0e+-²\t")), max_size=30
)


@settings(max_examples=500, deadline=None)
@given(st.one_of(garbage, st.text(max_size=30)))
def test_garbage_raises_only_config_error(text: str) -> None:
    try:
        t = parse_threshold(text)
    except ConfigError:
        return
    assert parse_threshold(str(t)) == t
    assert math.isfinite(t.value)


LATENCY_UNITS = ["", "us", "µs", "μs", "ms", "s"]


@st.composite
def thresholds(draw: st.DrawFn) -> tuple[str, Threshold]:
    """A valid expression, with random spacing and quoting, and what it must parse to."""
    metric = draw(
        st.one_of(
            st.sampled_from(["count", "rps", "failure_rate", "mean", "avg", "min", "max", "med"]),
            st.integers(0, 100).map(lambda q: f"p{q}"),
            st.tuples(st.integers(0, 99), st.integers(0, 999)).map(lambda p: f"p{p[0]}.{p[1]}"),
        )
    )
    if metric in ("count", "rps"):
        units = [""]
    elif metric == "failure_rate":
        units = ["%"]
    else:
        units = LATENCY_UNITS
    unit = draw(st.sampled_from(units))
    number = draw(st.decimals(0, 10**6, places=draw(st.integers(0, 4))).map(str))
    name = draw(st.none() | st.text(min_size=0, max_size=12))
    op = draw(st.sampled_from(["<", "<=", ">", ">=", "=="]))
    ws = st.sampled_from(["", " ", "  ", "\t"])
    text = draw(ws) + metric
    if name is not None:
        if name and name[0] not in "\"'" and not re.search(r"[()\s]", name) and draw(st.booleans()):
            quoted = name
        else:
            quote = draw(st.sampled_from(["'", '"']))
            quoted = quote + name.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote
        text += draw(ws) + "(" + draw(ws) + quoted + draw(ws) + ")"
    text += draw(ws) + op + draw(ws) + number + draw(ws) + unit + draw(ws)
    return text, Threshold(metric, name, op, number, unit)


@settings(max_examples=300, deadline=None)
@given(thresholds())
def test_round_trip(case: tuple[str, Threshold]) -> None:
    text, expected = case
    t = parse_threshold(text)
    assert t == expected
    assert parse_threshold(str(t)) == t
    # Metric words and units are case-insensitive (a name is not: keep it as it is).
    shouted = str(t).upper() if t.name is None else t.metric.upper() + str(t)[len(t.metric) :]
    assert shouted != str(t)  # every metric word has a letter
    again = parse_threshold(shouted)
    assert (again.metric, again.name, again.op, again.value) == (t.metric, t.name, t.op, t.value)


# --- evaluation --------------------------------------------------------------------------------


def make_stats(active: float = 2.0) -> StatsMap:
    rec = Recorder(0.0)
    for us in range(1_000, 101_000, 1_000):  # login: 1 ms .. 100 ms, 100 samples
        rec.record("login", us)
    rec.record_failure("login", "OSError", "reset", 1)
    for _ in range(300):
        rec.record("ping", 500)
    rec.record_failure("idle", "E", "m", 2)  # a name with failures only
    rec.add_bytes("quiet", 1, 1)  # a name with no requests at all
    rec.record_fanout("direct", 10_000_000)  # left out of the total
    return stats_from_snapshot(rec.snapshot(active, bots_running=0, active_seconds=active))


def results(*exprs: str, stats: StatsMap | None = None) -> list[tuple[bool, Any]]:
    return [(r.passed, r.measured) for r in check_thresholds(stats or make_stats(), exprs)]


def test_latency_thresholds() -> None:
    # 99 ms reads 99.007 ms, the top of its histogram bucket: equal to 99 ms for thresholds
    p99 = pytest.approx(0.099007)
    assert results("p99(login) < 100ms", "p99(login) <= 99ms", "p99(login) < 99ms") == [
        (True, p99),
        (True, p99),
        (False, p99),
    ]
    assert results("p50(login) == 50ms", "p50(login) > 50ms", "p50(login) >= 50.1ms") == [
        (True, pytest.approx(0.050015)),
        (False, pytest.approx(0.050015)),
        (False, pytest.approx(0.050015)),
    ]
    assert results("max(login) < 100ms", "max(login) <= 0.1", "min(ping) >= 500us") == [
        (False, 0.1),
        (True, 0.1),
        (True, 0.0005),
    ]
    [(passed, mean)] = results("mean(ping) == 0.5ms")
    assert passed and mean == 0.0005
    assert results("p100 == 100ms", "p99.9(login) > 99.9ms") == [(True, 0.1), (True, 0.1)]


def test_plain_thresholds() -> None:
    stats = make_stats(active=2.0)
    assert results("count(login) >= 100", "count(ping) > 300", stats=stats) == [
        (True, 100.0),
        (False, 300.0),
    ]
    assert results("rps(ping) == 150", "rps > 200", stats=stats) == [
        (True, 150.0),
        (True, (100 + 1 + 300 + 1) / 2.0),
    ]
    assert results("failure_rate(login) < 1%", "failure_rate(ping) == 0", stats=stats) == [
        (True, 1 / 101),
        (True, 0.0),
    ]
    assert results("failure_rate(idle) <= 100%", "failure_rate < 0.004", stats=stats) == [
        (True, 1.0),
        (False, 2 / 402),
    ]


def test_no_samples_fails_with_no_measurement() -> None:
    [p99, rate, count] = check_thresholds(
        make_stats(), ["p99(idle) < 1s", "failure_rate(quiet) == 0", "count(quiet) == 0"]
    )
    assert (p99.passed, p99.measured, p99.required) == (False, None, 1.0)
    assert str(p99) == "p99(idle) < 1s failed: no samples (successful requests under 'idle': 0)"
    assert (rate.passed, rate.measured) == (False, None)
    assert (count.passed, count.measured) == (True, 0.0)


def test_rps_without_active_time() -> None:
    [r] = check_thresholds(make_stats(active=0.0), ["rps(ping) > 1"])
    assert (r.passed, r.measured) == (False, None)
    assert "no active time" in str(r)


def test_unknown_name_is_a_config_error() -> None:
    with pytest.raises(
        ConfigError, match="'nope', which was never recorded; known names: 'direct'"
    ):
        check_thresholds(make_stats(), ["p99(login) < 1s", "p99(nope) < 1s"])


def test_threshold_objects_and_empty_list() -> None:
    t = parse_threshold("count(ping) >= 1")
    assert results() == []
    assert [r.expression for r in check_thresholds(make_stats(), [t])] == ["count(ping) >= 1"]


def test_assert_thresholds_lists_every_failure() -> None:
    stats = make_stats()
    ok = assert_thresholds(stats, ["count(ping) >= 1"])
    assert ok == [ThresholdResult("count(ping) >= 1", True, 300.0, 1.0)]
    exprs = ["p99(login) < 50ms", "count(ping) >= 1", "failure_rate < 0.1%", "p99(idle) < 1"]
    with pytest.raises(ThresholdError) as info:
        assert_thresholds(stats, exprs)
    assert isinstance(info.value, AssertionError)
    assert str(info.value).splitlines() == [
        "3 of 4 thresholds failed:",
        "  p99(login) < 50ms failed: measured 99.0 ms, required < 50ms",
        "  failure_rate < 0.1% failed: measured 0.498%, required < 0.1%",
        "  p99(idle) < 1 failed: no samples (successful requests under 'idle': 0)",
    ]


@pytest.mark.parametrize(
    ("expression", "measured", "shown"),
    [
        ("p99 < 1", 2.5, "measured 2.50 s, required < 1s"),
        ("p99 < 10us", 0.0000125, "measured 12.5 µs, required < 10us"),
        ("mean < 1ms", 0.0802, "measured 80.2 ms, required < 1ms"),
        ("count(a) > 5", 3.0, "measured 3, required > 5"),
        ("rps > 1000", 812.25, "measured 812, required > 1000"),
        ("failure_rate == 0", 0.025, "measured 2.5%, required == 0"),
    ],
)
def test_readable_failure_lines(expression: str, measured: float, shown: str) -> None:
    t = parse_threshold(expression)
    result = ThresholdResult(str(t), False, measured, t.value)
    assert str(result) == f"{t} failed: {shown}"
    # The line's figure is the one every report shows for the result.
    assert f"measured {format_value(measured, result.unit)}," in str(result)


@pytest.mark.parametrize(
    ("expression", "unit"),
    [
        ("p99 < 50ms", "s"),  # the total: no name in parentheses
        ("p99(login) < 50ms", "s"),
        ("P99.9 <= 0.05", "s"),
        ("median(login) < 1", "s"),
        ("mean < 250us", "s"),
        ("max(login) < 2s", "s"),
        ("failure_rate < 1%", "ratio"),
        ("failure_rate(login) == 0", "ratio"),
        ("rps(login) > 5", "1/s"),
        ("count >= 1", "count"),
    ],
)
def test_result_unit_is_decided_once_from_the_parsed_threshold(expression: str, unit: str) -> None:
    stats = make_stats()
    t = parse_threshold(expression)
    assert t.base_unit == unit
    [checked] = check_thresholds(stats, [expression])
    assert checked.unit == unit
    # Built by hand (as the CLI does for a name never recorded), it takes the same unit.
    assert ThresholdResult(expression, False, None, t.value).unit == unit
    # And the text shows the figure in that unit, with or without a name in parentheses.
    if checked.measured is not None:
        assert f"measured {format_value(checked.measured, unit)}" in str(checked)


def test_total_and_named_latency_thresholds_read_alike() -> None:
    rec = Recorder(0.0)
    rec.record("login", 81_700)
    stats = stats_from_snapshot(rec.snapshot(1.0, bots_running=0, active_seconds=1.0))
    total, named = check_thresholds(stats, ["p99 < 50ms", "p99(login) < 50ms"])
    assert (total.unit, named.unit) == ("s", "s")
    assert str(total) == "p99 < 50ms failed: measured 81.7 ms, required < 50ms"
    assert str(named) == "p99(login) < 50ms failed: measured 81.7 ms, required < 50ms"


def test_result_unit_must_be_known() -> None:
    expected = "unit is one of 's', 'ratio', '1/s', 'count', 'value', got 'ms'"
    with pytest.raises(ConfigError, match=expected):
        ThresholdResult("p99 < 1", True, 0.5, 1.0, unit="ms")


def test_result_str_of_a_foreign_expression() -> None:
    r = ThresholdResult("custom", False, 2.5, 1.0, unit="1/s")
    assert str(r) == "custom failed: measured 2.50"
    with pytest.raises(ConfigError, match=r"ThresholdResult\('custom', \.\.\.\) needs unit="):
        ThresholdResult("custom", False, 2.5, 1.0)


def test_result_is_plain_data() -> None:
    [r] = check_thresholds(make_stats(), ["p50(ping) < 1ms"])
    data = dataclasses.asdict(r)
    assert data == {
        "expression": "p50(ping) < 1ms",
        "passed": True,
        "measured": 0.0005,
        "required": 0.001,
        "reason": "",
        "unit": "s",
    }
    assert ThresholdResult(**json.loads(json.dumps(data))) == r


# --- windows and the run's own figures ---------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "window", "canonical"),
    [
        ("p95[10s](login) < 100ms", 10, "p95[10s](login) < 100ms"),
        ("p95 [ 2m ] (login) < 100ms", 120, "p95[120s](login) < 100ms"),
        ("rps[90](x) > 5", 90, "rps[90s](x) > 5"),
        ("failure_rate[10M] < 1%", 600, "failure_rate[600s] < 1%"),
        ("count[1s](x) >= 3", 1, "count[1s](x) >= 3"),
    ],
)
def test_windows(expr: str, window: int, canonical: str) -> None:
    t = parse_threshold(expr)
    assert t.window == window and str(t) == canonical
    assert parse_threshold(str(t)) == t


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("p95[0s](x) < 1", "a window of whole seconds from 1s to 10m"),
        ("p95[11m](x) < 1", "a window of whole seconds from 1s to 10m"),
        ("p95[1.5s](x) < 1", "a window of whole seconds from 1s to 10m"),
        ("p95[10ms](x) < 1", "a window of whole seconds from 1s to 10m"),
        ("p95[10s(x) < 1", "a closing ] for this window"),
        ("counter[10s](x) < 1", "a window applies to request metrics, not counter"),
        ("counter < 1", "'(' and the name of the counter"),
        ("gauge < 1", "'(' and the name of the gauge"),
        ("dropped_arrivals(x) < 1", "an operator: dropped_arrivals takes no name"),
        ("counter(x) < 1ms", "no unit: counter is a plain number"),
    ],
)
def test_window_and_run_metric_errors(expr: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)):
        parse_threshold(expr)


def test_run_metrics_parse_and_say_their_unit() -> None:
    assert parse_threshold("counter(retries) <= 3").base_unit == "count"
    assert parse_threshold("gauge('queue depth') < 5").base_unit == "value"
    assert parse_threshold("dropped_messages == 0").name is None
    assert parse_threshold("dropped_arrivals == 0").reads_run
    assert parse_threshold("count(x) >= 1").counts_up
    assert not parse_threshold("counter(x) < 1").counts_up
    assert not parse_threshold("p99[5s](x) < 1").reads_run
