from __future__ import annotations

import ast
import json
import math
import pickle
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_bots._errors import ConfigError
from trio_bots.metrics import (
    FailureGroup,
    Recorder,
    Stats,
    failures_from_snapshot,
    merge,
    stats_from_snapshot,
    timeline_from_snapshot,
)


def snap(rec: Recorder, now: float = 1.0, bots: int = 0, active: float = 1.0) -> dict[str, Any]:
    """The snapshot at a run's end: the last (partial) second ticked, then read."""
    rec.tick(int(now - rec.start_time), bots)
    return rec.snapshot(now, bots_running=bots, active_seconds=active)


def test_empty_recorder_snapshot_is_plain_data() -> None:
    s = snap(Recorder(0.0), now=0.0, active=0.0)
    assert s["version"] == 1
    assert s["names"] == {} and s["failures"] == [] and s["counters"] == {}
    assert [b["t"] for b in s["timeline"]] == [0]
    assert s["timeline"][0]["count"] == 0 and math.isnan(s["timeline"][0]["p99"])
    assert pickle.loads(pickle.dumps(s))["version"] == 1
    json.dumps(s)
    stats = stats_from_snapshot(s)
    assert len(stats) == 0
    assert stats.total.count == 0 and stats.total.rps == 0.0
    assert math.isnan(stats.total.mean) and math.isnan(stats.total.percentile(99))


def test_counts_percentiles_and_rps() -> None:
    rec = Recorder(100.0)
    for us in range(1, 1001):  # 1 µs .. 1 ms, exact below 2048 µs
        rec.record("get", us)
    rec.record_failure("get", "OSError", "reset", 4)
    s = stats_from_snapshot(snap(rec, now=102.0, active=2.0))["get"]
    assert s.count == 1000 and s.failure_count == 1
    assert s.rps == pytest.approx(1001 / 2.0)
    assert s.min == pytest.approx(1e-6) and s.max == pytest.approx(1e-3)
    assert s.percentile(50) == pytest.approx(500e-6)
    assert s.percentile(99) == pytest.approx(990e-6)
    assert s.percentile(100) == s.max and s.percentile(0) == s.min
    assert s.mean == pytest.approx(500.5e-6, rel=1e-3)
    assert s.failure_rate == pytest.approx(1 / 1001)


def test_exact_min_max_and_identical_samples() -> None:
    rec = Recorder(0.0)
    for _ in range(10):
        rec.record("sleep", 1_000_000)  # one second: a 512 µs wide bucket
    s = stats_from_snapshot(snap(rec))["sleep"]
    assert (s.min, s.max, s.mean, s.percentile(50), s.percentile(99)) == (1.0,) * 5


def test_percentiles_match_hdrh() -> None:
    rng = random.Random(5)
    rec = Recorder(0.0)
    ref = HdrHistogram(1, 3_600_000_000, 3)
    for _ in range(2000):
        us = int(rng.lognormvariate(9, 2)) + 1
        rec.record("x", us)
        ref.record_value(us)
    s = stats_from_snapshot(snap(rec))["x"]
    for q in (1, 25, 50, 90, 99, 99.9):
        assert s.percentile(q) == ref.get_value_at_percentile(q) / 1e6
    assert s.mean == pytest.approx(ref.get_mean_value() / 1e6)
    assert s.max == ref.max_value / 1e6 and s.min == ref.min_value / 1e6


def test_clamping() -> None:
    rec = Recorder(0.0)
    rec.record("a", 0)
    rec.record("a", -5)
    rec.record("a", 10**13)
    rec.record_fanout("direct", 0)
    rec.record_corrected("b", 0, -1)
    stats = stats_from_snapshot(snap(rec))
    assert stats["a"].count == 3
    assert stats["a"].min == 1e-6 and stats["a"].max == 3600.0
    assert stats["direct"].min == 1e-6 and stats["b"].raw.max == 1e-6


@pytest.mark.parametrize("q", [-0.1, 100.5, math.nan, "50"])
def test_bad_percentile(q: Any) -> None:
    with pytest.raises(ConfigError, match="from 0 to 100"):
        Stats("x").percentile(q)


def test_rps_without_active_time() -> None:
    rec = Recorder(0.0)
    rec.record("a", 5)
    s = stats_from_snapshot(snap(rec, now=0.0, active=0.0))
    assert math.isnan(s["a"].rps)
    assert Stats("none").rps == 0.0


def test_total_leaves_out_fanout_names() -> None:
    rec = Recorder(0.0)
    rec.record("a", 1000)
    rec.record_failure("b", "E", "m", None)
    rec.record_fanout("group:x", 9_000)
    rec.record_fanout("group:x", 9_000)
    stats = stats_from_snapshot(snap(rec, active=2.0))
    assert stats["group:x"].kind == "fanout" and stats["group:x"].count == 2
    total = stats.total
    assert (total.count, total.failure_count, total.max) == (1, 1, 0.001)
    assert total.rps == 1.0
    with pytest.raises(KeyError, match="known names: 'a', 'b', 'group:x'"):
        stats["nope"]


def test_combine_sums_the_histograms_of_several_names_exactly() -> None:
    rec, one = Recorder(0.0), Recorder(0.0)
    for g in range(40):
        for us in (100 + g, 5_000 + 37 * g, 250_000 + 1_001 * g):
            rec.record_fanout(f"group:room-{g}", us)
            one.record_fanout("fanout", us)
    stats = stats_from_snapshot(snap(rec))
    expected = stats_from_snapshot(snap(one))["fanout"]
    merged = stats.combine("fan-out", sorted(stats), kind="fanout")
    assert (merged.name, merged.kind, merged.count) == ("fan-out", "fanout", 120)
    figures = [
        (s.min, s.mean, s.max, *(s.percentile(q) for q in (50, 90, 99))) for s in (merged, expected)
    ]
    assert figures[0] == figures[1]
    assert stats.combine("none", []).count == 0 and math.isnan(stats.combine("none", []).max)
    with pytest.raises(KeyError, match="no stats recorded under 'nope'"):
        stats.combine("x", ["nope"])


def test_bytes_counters_gauges() -> None:
    rec = Recorder(0.0)
    rec.add_bytes("a", 10, 20)
    rec.add_bytes("a", 1, 2)
    rec.count("hits")
    rec.count("hits", 4)
    rec.gauge("queue", 3.0)
    rec.gauge("queue", 2.0)
    s = snap(rec)
    a = stats_from_snapshot(s)["a"]
    assert (a.bytes_sent, a.bytes_received, a.count) == (11, 22, 0)
    assert s["counters"] == {"hits": 5} and s["gauges"] == {"queue": 2.0}


def test_raw_histogram() -> None:
    rec = Recorder(0.0)
    rec.record("a", 1000)  # before any corrected sample: raw == corrected
    rec.tick(0, 1)
    rec.record("a", 2000)
    rec.record_corrected("a", 50_000, 3000)
    rec.record("a", 4000)
    s = snap(rec)
    assert s["names"]["a"]["raw_hist"] is not None
    a = stats_from_snapshot(s)["a"]
    assert a.count == 4 and a.raw.count == 4
    assert a.max == 0.05 and a.raw.max == pytest.approx(0.004, rel=1e-3)
    assert a.raw.min == 0.001
    assert stats_from_snapshot(s).total.raw.max == a.raw.max


def test_failures_grouped_most_frequent_first() -> None:
    rec = Recorder(0.0)
    rec.record_failure("a", "OSError", "reset", 3)
    rec.tick(1, 1)
    rec.record_failure("a", "ValueError", "boom", 5)
    rec.record_failure("a", "ValueError", "boom", 1)
    rec.record_failure("a", "OSError", "reset", 9)
    rec.record_failure("a", "ValueError", "boom", 2)
    groups = failures_from_snapshot(snap(rec, now=2.0))
    assert groups == [
        FailureGroup("a", "ValueError", "boom", 3, first_bot=5, first_t=2),
        FailureGroup("a", "OSError", "reset", 2, first_bot=3, first_t=1),
    ]
    assert stats_from_snapshot(snap(rec, now=2.0))["a"].failure_count == 5


def test_timeline_buckets() -> None:
    rec = Recorder(10.0)
    rec.record("a", 1000)
    rec.tick(0, 2)
    rec.record("a", 3000)
    rec.record_failure("a", "E", "m", 0)
    rec.tick(0, 3)  # same second: merged, bots = latest
    rec.tick(2, 4)  # idle tick still makes a bucket
    rec.record_fanout("direct", 7)
    rec.tick(1, 5)  # the ticker never goes back: lands in second 2
    timeline = timeline_from_snapshot(snap(rec, now=13.0, bots=1))
    assert [(b.t, b.bots, b.count, b.failures) for b in timeline] == [
        (0, 3, 2, 1),
        (2, 5, 0, 0),
        (3, 1, 0, 0),
    ]
    first = timeline[0]
    assert (first.p50, first.p99) == (0.001, 0.003)
    assert first.names["a"].count == 2 and first.names["a"].failures == 1
    assert timeline[1].names["direct"].count == 1 and math.isnan(timeline[1].p99)


def test_snapshots_are_frozen() -> None:
    rec = Recorder(0.0)
    rec.record("a", 1000)
    first = snap(rec, now=0.2)
    copy = pickle.loads(pickle.dumps(first))
    rec.record("a", 2000)
    rec.record_failure("a", "E", "m", 1)
    snap(rec, now=0.4)
    assert first["names"] == copy["names"] and first["failures"] == copy["failures"]
    assert first["timeline"][0]["count"] == 1


def test_merge_basic_and_inputs_untouched() -> None:
    a, b = Recorder(0.0), Recorder(0.5)
    a.record("x", 1000)
    a.count("c", 2)
    a.gauge("g", 4.0)
    b.record("x", 3000)
    b.record("y", 10)
    b.count("c", 3)
    b.gauge("g", 1.0)
    sa, sb = snap(a, now=1.2, bots=2, active=1.0), snap(b, now=1.4, bots=3, active=0.9)
    ca = pickle.dumps(sa)
    m = merge(sa, sb)
    assert pickle.dumps(sa) == ca
    assert (m["start_time"], m["now"], m["active_seconds"], m["bots_running"]) == (0.0, 1.4, 1.0, 5)
    assert m["counters"] == {"c": 5} and m["gauges"] == {"g": 4.0}
    stats = stats_from_snapshot(m)
    assert stats["x"].count == 2 and stats["x"].max == 0.003 and stats["y"].count == 1
    assert [(b["t"], b["bots"], b["count"]) for b in m["timeline"]] == [(0, 3, 2), (1, 2, 1)]


def test_reads_run_snapshot_and_rejects_other_versions() -> None:
    rec = Recorder(0.0)
    rec.record("a", 1)
    run = {"schema": "trio-bots/1", "metrics": snap(rec)}
    assert stats_from_snapshot(run)["a"].count == 1
    assert timeline_from_snapshot(run)[0].count == 1
    with pytest.raises(ConfigError, match="version 2"):
        stats_from_snapshot({**snap(rec), "version": 2})


# --- merge == one recorder fed everything (hypothesis) ---------------------------------------


NAMES = ["a", "b", "GET /x"]
latencies = st.one_of(
    st.integers(0, 2_000),
    st.integers(2_000, 10_000_000),
    st.sampled_from([-1, 0, 1, 3_600_000_000, 10**12]),
)
events = st.lists(
    st.tuples(
        st.sampled_from(["ok", "fail", "fanout", "corrected", "bytes", "count"]),
        st.sampled_from(NAMES),
        latencies,
        latencies,
        st.floats(0, 4.99, allow_nan=False),
        st.integers(0, 2),  # which shard
    ),
    max_size=60,
)


def feed(rec: Recorder, op: str, name: str, us: int, raw: int, bot: int) -> None:
    if op == "ok":
        rec.record(name, us)
    elif op == "fail":
        rec.record_failure(name, "Err", f"m{us % 2}", bot)
    elif op == "fanout":
        rec.record_fanout(f"group:{name}", us)
    elif op == "corrected":
        rec.record_corrected(name, us, raw)
    elif op == "bytes":
        rec.add_bytes(name, us, raw)
    else:
        rec.count(name, us)


def hist_counts(encoded: str | None) -> Any:
    if encoded is None:
        return None
    h = HdrHistogram.decode(encoded)
    return tuple((i, c) for i, c in enumerate(h.counts[: h.counts_len]) if c)


def norm(x: Any) -> Any:
    """Snapshot data with histograms as their counts and NaN comparable."""
    if isinstance(x, dict):
        return {k: hist_counts(v) if k.endswith("hist") else norm(v) for k, v in x.items()}
    if isinstance(x, list):
        return [norm(v) for v in x]
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    return x


def run_split(evs: list[Any], ticks: list[float]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    single, shards = Recorder(0.0), [Recorder(0.0) for _ in range(3)]
    flushes = sorted({*ticks, 1.0, 2.0, 3.0, 4.0})
    order = sorted(evs, key=lambda e: e[4])
    i = 0
    for bot, (op, name, us, raw, t, shard) in enumerate(order):
        while i < len(flushes) and flushes[i] <= t:
            single.tick(int(flushes[i]), 6)
            for s in shards:
                s.tick(int(flushes[i]), 2)
            i += 1
        # bot ids grow with time: the "first bot" of a group is then well defined across shards
        feed(single, op, name, us, raw, bot)
        feed(shards[shard], op, name, us, raw, bot)
    end = snap(single, now=5.0, bots=3, active=5.0)
    parts = [snap(s, now=5.0, bots=1, active=5.0) for s in shards]
    return end, parts


@settings(max_examples=60, deadline=None)
@given(events, st.lists(st.floats(0, 4.99, allow_nan=False), max_size=4))
def test_merge_equals_one_recorder(evs: list[Any], ticks: list[float]) -> None:
    single, (a, b, c) = run_split(evs, ticks)
    merged = merge(merge(a, b), c)
    assert norm(merged) == norm(single)
    assert norm(merge(a, merge(b, c))) == norm(merged)  # associative
    assert norm(merge(b, a)) == norm(merge(a, b))  # commutative
    one, many = stats_from_snapshot(single), stats_from_snapshot(merged)
    assert one.keys() == many.keys()
    for name in [*one, None]:
        x, y = (one.total, many.total) if name is None else (one[name], many[name])
        assert (x.count, x.failure_count, x.rps) == (y.count, y.failure_count, y.rps)
        figures = [x.min, x.max, x.mean] + [x.percentile(q) for q in (50, 90, 99)]
        assert norm(figures) == norm(
            [y.min, y.max, y.mean] + [y.percentile(q) for q in (50, 90, 99)]
        )
        assert norm([x.raw.max, x.raw.percentile(99)]) == norm([y.raw.max, y.raw.percentile(99)])
    assert failures_from_snapshot(single) == failures_from_snapshot(merged)
    timelines = [[asdict(b) for b in timeline_from_snapshot(s)] for s in (single, merged)]
    assert norm(timelines[0]) == norm(timelines[1])


def test_json_round_trip_then_merge() -> None:
    a, b = Recorder(0.0), Recorder(0.0)
    a.record("x", 1500)
    a.record_failure("x", "E", "m", 1)
    b.record_corrected("x", 9000, 2500)
    b.record_fanout("direct", 40)
    sa, sb = snap(a), snap(b)
    loaded = [json.loads(json.dumps(s)) for s in (sa, sb)]
    assert norm(merge(*loaded)) == norm(merge(sa, sb))
    stats = stats_from_snapshot(merge(*loaded))
    assert (stats["x"].count, stats["x"].min, stats["x"].max) == (2, 0.0015, 0.009)
    assert stats["x"].raw.max == pytest.approx(0.0025, rel=1e-3)
    assert stats_from_snapshot(loaded[1])["direct"].mean == 40e-6


def test_same_bucket() -> None:
    from trio_bots.metrics import same_bucket

    assert same_bucket(0.001, 0.001) and not same_bucket(0.001, 0.001001)
    assert same_bucket(0.099, 0.099007) and not same_bucket(0.099, 0.09901)
    assert same_bucket(0.0, 1e-6)  # both clamp to 1 µs


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2 * 3_600_000_000), max_size=200))
def test_fast_record_equals_hdrh_record_value(values: list[int]) -> None:
    from trio_bots.metrics._hdr import HIGHEST_US, fast_record, new_hist

    ours, theirs = new_hist(), new_hist()
    record = fast_record(ours)
    for value in values:
        if value > HIGHEST_US:
            assert not record(value)  # refused: the recorder clamps it to the hour
        else:
            assert record(value) == theirs.record_value(value)
    assert list(ours.counts) == list(theirs.counts)
    assert ours.get_total_count() == theirs.get_total_count()
    assert (ours.min_value, ours.max_value) == (theirs.min_value, theirs.max_value)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=-5, max_value=2 * 3_600_000_000), max_size=200))
def test_record_counts_equals_hdrh_record_value(values: list[int]) -> None:
    from collections import Counter

    from trio_bots.metrics._hdr import HIGHEST_US, new_hist, record_counts

    ours, theirs = new_hist(), new_hist()
    ours.record_value(700)  # min and max already set
    theirs.record_value(700)
    out = record_counts(ours, Counter(values))
    assert sorted(out) == sorted(Counter(v for v in values if not 1 <= v <= HIGHEST_US).items())
    for value in values:
        if 1 <= value <= HIGHEST_US:
            theirs.record_value(value)
    assert list(ours.counts) == list(theirs.counts)
    assert ours.get_total_count() == theirs.get_total_count()
    assert (ours.min_value, ours.max_value) == (theirs.min_value, theirs.max_value)


def test_no_module_imports_another_modules_underscore_names() -> None:
    """A module may import a private module, never another module's underscore name."""
    package = Path(__file__).parent.parent / "trio_bots"
    files = sorted([*(package / "metrics").glob("*.py"), *(package / "report").glob("*.py")])
    assert len(files) >= 10
    for file in files:
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, (file.name, node.module, private)


# --- the tiered timeline ------------------------------------------------------------------


def tick_through(rec: Recorder, seconds: range, names: int = 3) -> None:
    for second in seconds:
        for i in range(names):
            rec.record(f"n{i}", 1000 + 100 * i + second % 7)
        if second % 5 == 0:
            rec.record_failure("n0", "E", "m", 1)
        rec.tick(second, second % 4)


def test_timeline_tiers_spans_and_boundaries() -> None:
    rec = Recorder(0.0)
    end = 6 * 3600 + 1500  # 6 h 25 min of virtual seconds
    tick_through(rec, range(end), names=1)
    timeline = rec.snapshot(end, bots_running=0, active_seconds=end)["timeline"]
    spans = [(b["t"], b["span"]) for b in timeline]
    # 60 s buckets more than 6 h old, 10 s ones up to 10 min old, then 1 s ones
    for t, span in spans:
        assert t % span == 0
        age = end - (t + span)
        assert span == (60 if age >= 6 * 3600 else 10 if age >= 600 else 1), (t, span, age)
    covered = [s for t, span in spans for s in range(t, t + span)]
    assert covered == list(range(end))  # no gap, no overlap
    # every request and failure is still counted, and the cumulative figures stay exact
    assert sum(b["count"] for b in timeline) == end
    assert sum(b["failures"] for b in timeline) == len(range(0, end, 5))
    assert stats_from_snapshot(rec.snapshot(end, bots_running=0, active_seconds=end))["n0"].max == (
        0.001006
    )
    old = timeline[0]
    assert old["hist"] is None and old["names"]["n0"]["hist"] is None  # summaries only
    assert old["bots"] == 59 % 4  # the last value within it
    assert old["names"]["n0"]["p99.9"] == old["max"] == 0.001006
    assert timeline[-1]["hist"] is not None


def test_summary_percentiles_come_from_the_whole_span() -> None:
    rec = Recorder(0.0)
    for second in range(700):
        rec.record("x", 1000 if second % 10 else 9000)  # one slow request in each 10 s
        rec.tick(second, 1)
    [first] = [
        b
        for b in timeline_from_snapshot(rec.snapshot(700.0, bots_running=1, active_seconds=700.0))
        if b.t == 0
    ]
    assert (first.span, first.count, first.rps) == (10, 10, 1.0)
    assert first.p50 == 0.001 and first.p99 == 0.009 and first.names["x"].p50 == 0.001


def test_merge_of_shards_with_different_tiers() -> None:
    long, short = Recorder(0.0), Recorder(0.0)
    tick_through(long, range(700), names=1)
    tick_through(short, range(20), names=1)
    m = merge(
        long.snapshot(700.0, bots_running=1, active_seconds=700.0),
        short.snapshot(20.0, bots_running=1, active_seconds=20.0),
    )
    first, second = m["timeline"][:2]
    # the short shard's 1 s buckets 0..9 fall within the long shard's 10 s bucket 0
    assert (first["t"], first["span"], first["count"]) == (0, 10, 20)
    assert (second["t"], second["span"], second["count"]) == (10, 10, 20)
    assert first["bots"] == 9 % 4 + 9 % 4
    assert sum(b["count"] for b in m["timeline"]) == 720


@pytest.mark.slow
def test_timeline_heap_is_bounded_in_virtual_time() -> None:
    """The second hour of a 10-name run grows the heap by less than the 50 MB a day
    budget allows a 10 s bucket (its tier holds 2,160 of them, the 60 s tier 1,080)."""
    import gc
    import tracemalloc

    budget_per_second = 50e6 / (6 * 360 + 18 * 60) / 10  # bytes per virtual second
    rec = Recorder(0.0)
    # Tracing slows the recorder down, so it starts 10 minutes before the first mark:
    # what the second hour frees (the 1 s buckets it ages, and what they age into) was
    # then allocated while tracing, and the blocks allocated before stay alive.
    tick_through(rec, range(2990), names=10)
    tracemalloc.start()
    try:
        tick_through(rec, range(2990, 3600), names=10)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        tick_through(rec, range(3600, 7200), names=10)
        gc.collect()
        growth = (tracemalloc.get_traced_memory()[0] - before) / 3600
    finally:
        tracemalloc.stop()
    assert 0 < growth < budget_per_second, growth
