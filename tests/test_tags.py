"""Tags on measurements: ``measure(name, tags=)``, ``bot.tagged``, ``stats.tagged``, selectors."""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing

import trio_bots
from trio_bots import ConfigError, SwarmAborted
from trio_bots.metrics import Recorder, check_thresholds, merge, stats_from_snapshot
from trio_bots.metrics._tags import MAX_TAG_SETS, split_key, tag_key

LIMIT = 10


def run(worker: Any, size: int, **options: Any) -> trio_bots.SwarmResult:
    async def main() -> trio_bots.SwarmResult:
        with trio.fail_after(LIMIT):
            return await trio_bots.swarm(worker, size, **options)

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


async def regional(bot: trio_bots.Bot) -> None:
    """Bots 0-1 in eu (10 ms), bots 2-3 in us (100 ms); bot 1 is gold tier."""
    region = "eu" if bot.id < 2 else "us"
    tags = {"region": region, "tier": "gold"} if bot.id == 1 else {"region": region}
    async with bot.measure("GET /item", tags=tags):
        await trio.sleep(0.010 if region == "eu" else 0.100)
    async with bot.measure("plain"):
        await trio.sleep(0.001)


def test_stats_aggregate_every_tag_set_and_give_each_one() -> None:
    stats = run(regional, 4).stats
    assert sorted(stats) == ["GET /item", "plain"]
    item = stats["GET /item"]
    assert (item.count, item.min, item.max) == (4, 0.010, 0.100)
    sets = stats.tagged("GET /item")
    assert {text: s.count for text, s in sets.items()} == {
        "region=eu": 1,
        "region=eu,tier=gold": 1,
        "region=us": 2,
    }
    assert sets["region=us"].max == 0.100
    # A selector takes every tag set that holds its pairs.
    assert stats["GET /item{region=eu}"].count == 2
    assert stats["GET /item{region=eu}"].max == 0.010
    assert stats["GET /item{tier=gold}"].count == 1
    assert stats["GET /item{region=mars}"].count == 0
    assert stats.total.count == 8  # each sample once
    assert stats.tagged("plain") == {}
    with pytest.raises(KeyError, match=re.escape("no stats recorded under 'nothing{a=b}'")):
        stats["nothing{a=b}"]


def test_thresholds_select_by_tag() -> None:
    stats = run(regional, 4).stats
    results = check_thresholds(
        stats,
        [
            "p99(GET /item{region=eu}) < 80ms",
            "p99(GET /item) < 80ms",
            "count(GET /item{region=us}) == 2",
        ],
    )
    assert [r.passed for r in results] == [True, False, True]
    assert results[0].measured == pytest.approx(0.010, rel=1e-3)


def test_tags_survive_merge() -> None:
    a, b = Recorder(0.0), Recorder(0.0)
    a.record(tag_key("get", {"region": "eu"}), 1000)
    b.record(tag_key("get", {"region": "eu"}), 3000)
    b.record(tag_key("get", {"region": "us"}), 5000)
    merged = merge(
        a.snapshot(1.0, bots_running=0, active_seconds=1.0),
        b.snapshot(1.0, bots_running=0, active_seconds=1.0),
    )
    stats = stats_from_snapshot(merged)
    assert stats["get"].count == 3
    assert {t: s.count for t, s in stats.tagged("get").items()} == {"region=eu": 2, "region=us": 1}
    assert stats["get{region=eu}"].max == 0.003


def test_tagged_blocks_nest_and_measure_tags_win() -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        with bot.tagged(region="eu", tier="free"):
            bot.record("r", 0.001)
            with bot.tagged(tier="gold"):
                async with bot.measure("m", tags={"region": "us"}):
                    await trio.sleep(0.002)
            bot.record("r", 0.003, failed=True)
        bot.record("r", 0.004)

    stats = run(worker, 1).stats
    assert {t: (s.count, s.failure_count) for t, s in stats.tagged("r").items()} == {
        "region=eu,tier=free": (1, 1),
        "": (1, 0),
    }
    assert list(stats.tagged("m")) == ["region=us,tier=gold"]


def test_bad_tags_fail_the_bot() -> None:
    async def bad_value(bot: trio_bots.Bot) -> None:
        async with bot.measure("x", tags={"region": "eu,us"}):
            pass

    async def bad_key(bot: trio_bots.Bot) -> None:
        with bot.tagged(**{"not an id": 1}):
            bot.record("x", 0.001)

    with pytest.raises(SwarmAborted) as info:
        run(bad_value, 1)
    assert isinstance(info.value.__cause__, ConfigError)
    assert "tag values may not contain any of ,{}=" in str(info.value.__cause__)
    with pytest.raises(SwarmAborted, match="tag key 'not an id' must be an identifier"):
        run(bad_key, 1)


def test_past_the_cap_tag_sets_fold_into_other_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    extra = 5

    async def worker(bot: trio_bots.Bot) -> None:
        for n in range(MAX_TAG_SETS + extra):
            bot.record("get", 0.001, tags={"user": n})
        bot.record("get", 0.001, tags={"user": 0})  # a known set stays itself

    with caplog.at_level(logging.WARNING, logger="trio_bots"):
        result = run(worker, 1)
    sets = result.stats.tagged("get")
    assert len(sets) == MAX_TAG_SETS + 1
    assert sets["other"].count == extra
    assert sets["user=0"].count == 2
    assert result.stats["get"].count == MAX_TAG_SETS + extra + 1
    warnings = [w for w in result.warnings if "tag sets" in w]
    assert warnings == [f"'get' has more than {MAX_TAG_SETS} tag sets: the others are "
                        "recorded as get{other}"]
    assert sum("tag sets" in r.getMessage() for r in caplog.records) == 1


def test_keys() -> None:
    assert tag_key("a b", {}) == "a b"
    assert split_key("x{other}") == ("x", "other")
    assert split_key("odd{name}") == ("odd{name}", "")  # not a tag set: a plain name
    assert split_key("x{a=}") == ("x", "a=")


def test_untagged_measure_records_under_the_name_itself() -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        async with bot.measure("ping"):
            await trio.sleep(0.001)

    result = run(worker, 2)
    assert list(result.metrics["names"]) == ["ping"]
    assert result.stats.tagged("ping") == {}


def test_json_report_keeps_tagged_keys() -> None:
    from trio_bots.report import to_json_dict

    result = trio.run(functools.partial(trio_bots.swarm, regional, 4))
    names = to_json_dict(result)["metrics"]["names"]
    assert sorted(names) == [
        "GET /item{region=eu,tier=gold}",
        "GET /item{region=eu}",
        "GET /item{region=us}",
        "plain",
    ]


def test_the_docs_page_runs() -> None:
    import doctest
    from pathlib import Path

    page = Path(__file__).parent.parent / "docs" / "tags.md"
    failed, attempted = doctest.testfile(str(page), module_relative=False)
    assert attempted > 5
    assert failed == 0


# -- reports ---------------------------------------------------------------------------------


def test_console_breaks_names_down_by_a_tag_key_or_by_tag_set() -> None:
    import io

    from rich.console import Console

    from trio_bots.report import render_console

    data = run(regional, 4).to_dict()

    def text(**kwargs: Any) -> list[str]:
        out = io.StringIO()
        render_console(data, Console(file=out, width=140), **kwargs)
        return [line.rstrip() for line in out.getvalue().splitlines()]

    plain = text()
    assert not any(line.lstrip().startswith("region=") for line in plain)
    assert any(line.startswith("tags: region, tier; by_tag=KEY (trio-bots run") for line in plain)
    by_region = text(by_tag="region")
    names = [line.split()[0] for line in by_region if line and line[0] != " "][2:5]
    assert names == ["GET", "plain", "Aggregated"]
    rows = {line.split()[0]: line.split()[1] for line in by_region if line.startswith("  ")}
    assert rows == {"region=eu": "2", "region=us": "2"}
    index = next(i for i, line in enumerate(by_region) if line.startswith("GET /item"))
    assert by_region[index + 1].startswith("  region=eu ")
    assert by_region[index + 2].startswith("  region=us ")
    every = [line.split()[0] for line in text(by_tag="*") if line.startswith("  ")]
    assert every == ["region=eu", "region=eu,tier=gold", "region=us"]


def test_json_csv_and_html_carry_the_tags_as_columns(tmp_path: Any) -> None:
    import csv

    from trio_bots.report import read_json, to_json_dict, write_csv, write_html, write_json

    result = run(regional, 4)
    doc = to_json_dict(result)
    assert doc["schema"] == "trio-bots/1"
    assert sorted(doc["stats"]) == ["GET /item", "plain"]  # the name rows, as before
    assert doc["tag_keys"] == ["region", "tier"]
    rows = [(r["name"], r["tags"], r["count"], r["kind"]) for r in doc["tag_stats"]]
    assert rows == [
        ("GET /item", {"region": "eu"}, 1, "tag"),
        ("GET /item", {"region": "eu", "tier": "gold"}, 1, "tag"),
        ("GET /item", {"region": "us"}, 2, "tag"),
    ]
    assert doc["tag_stats"][2]["max"] == pytest.approx(0.1, rel=0.01)
    assert doc["tag_stats"][0]["hist"]  # each tag set's histogram, for merging later
    assert read_json(write_json(result, tmp_path / "run.json"))["tag_stats"] == doc["tag_stats"]

    paths = write_csv(result, tmp_path / "run")
    assert [p.name for p in paths] == [
        "run_stats.csv", "run_failures.csv", "run_history.csv", "run_tags.csv",
    ]  # fmt: skip
    tagged = list(csv.DictReader(paths[3].read_text().splitlines()))
    assert [(r["Type"], r["Name"], r["region"], r["tier"], r["Request Count"]) for r in tagged] == [
        ("tag", "GET /item", "eu", "", "1"),
        ("tag", "GET /item", "eu", "gold", "1"),
        ("tag", "GET /item", "us", "", "2"),
    ]
    stats_rows = list(csv.DictReader(paths[0].read_text().splitlines()))
    assert [r["Name"] for r in stats_rows] == ["GET /item", "plain", "Aggregated"]
    untagged = run(lambda bot: bot.step(), 1)
    assert len(write_csv(untagged, tmp_path / "plain")) == 3

    pytest.importorskip("plotly")
    page = write_html(result, tmp_path / "run.html").read_text()
    assert "<h2>Tags</h2>" in page
    assert page.count('<tr class="tag">') == 3


def test_the_by_tag_flag_is_checked() -> None:
    from trio_bots.cli._run import CliExit, check_tag_key

    assert check_tag_key("*") == "*"
    with pytest.raises(CliExit, match="a tag key is an identifier"):
        check_tag_key("a b")
