"""The reporters, read back: console text, JSON, CSV and HTML (in chromium)."""

from __future__ import annotations

import ast
import csv
import io
import json
import math
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from trio_bots._errors import ConfigError
from trio_bots.metrics import (
    Recorder,
    check_thresholds,
    format_value,
    stats_from_snapshot,
)
from trio_bots.metrics._hdr import nan_max, nan_min
from trio_bots.report import (
    format_duration,
    read_json,
    render_console,
    to_json_dict,
    write_csv,
    write_html,
    write_json,
)

START = 50.0  # the swarm clock at the run start
WALL = 1_700_000_000.0
SECONDS = 5


def make_run(
    *,
    open_model: bool = True,
    interrupted: bool = False,
    aborted: bool = False,
    with_thresholds: bool = True,
) -> dict[str, Any]:
    """A real run snapshot: a Recorder fed for SECONDS seconds, wrapped as the engine does."""
    rec = Recorder(start_time=START)
    for s in range(SECONDS):
        for i in range(100):
            rec.record("login", 500 + 10 * i + 100 * s)  # 0.5 .. 1.89 ms
            rec.add_bytes("login", 10, 100)
        for i in range(50):
            if open_model:
                # The server stalls: latency from the intended start is far larger.
                rec.record_corrected("search", 20_000 + 400 * i, 2_000 + 10 * i)
            else:
                rec.record("search", 2_000 + 10 * i)
        for i in range(20):
            rec.record_fanout("group:lobby", 40 + i)
        rec.record_failure("login", "ConnectionResetError", "peer reset", bot_id=s + 1)
        rec.tick(s, bots_running=2 + s)
    rec.record_failure("search", "ValueError", "bad [reply] <b>&", None)
    rec.count("logins", 7)
    rec.gauge("queue", 3.5)
    rec.tick(SECONDS, bots_running=0)  # the run's last, partial second
    metrics = rec.snapshot(START + SECONDS, bots_running=0, active_seconds=float(SECONDS))
    thresholds = [
        {"expression": "p99(login) < 50ms", "passed": True, "measured": 0.0123, "required": 0.05},
        {
            "expression": "failure_rate < 0.001",
            "passed": False,
            "measured": 0.0095,
            "required": 0.001,
        },
    ]
    return {
        "schema": "trio-bots/1",
        "time_unit": "s",
        "run": {
            "started_wall": WALL,
            "duration": float(SECONDS),
            "size": 6,
            "bots_started": 6,
            "bots_finished": 6,
            "interrupted": interrupted,
            "aborted": aborted,
            "dropped_messages": 3,
            "dropped_arrivals": 2,
            "options": {"duration": SECONDS, "max_failures": 0},
            "bot_failures": [{"bot_id": 4, "type": "KeyError", "message": "'seat'"}],
        },
        "metrics": metrics,
        "thresholds": thresholds if with_thresholds else [],
    }


def empty_run() -> dict[str, Any]:
    rec = Recorder(start_time=0.0)
    rec.record_failure("login", "OSError", "refused", 0)  # failures only: no latency at all
    metrics = rec.snapshot(0.5, bots_running=0, active_seconds=0.5)
    return {"schema": "trio-bots/1", "time_unit": "s", "run": {}, "metrics": metrics}


def plain_console(run: Any, width: int = 160) -> str:
    out = io.StringIO()
    render_console(run, Console(file=out, force_terminal=False, width=width))
    return out.getvalue()


def line_of(text: str, start: str) -> str:
    """The first line starting with *start* (the stats table comes first)."""
    return next(line for line in text.splitlines() if line.startswith(start))


# --- format_duration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.000001, "1.00 µs"),
        (0.000042, "42.0 µs"),
        (0.000999, "999 µs"),
        (0.0009996, "1.00 ms"),  # rounds up into the next unit, never "1000 µs"
        (0.0123, "12.3 ms"),
        (0.5, "500 ms"),
        (0.99999, "1.00 s"),
        (2.0, "2.00 s"),
        (125.0, "125 s"),
        (-0.002, "-2.00 ms"),
        (0.0, "0 s"),
        (math.nan, "-"),
        (math.inf, "inf s"),
    ],
)
def test_format_duration_picks_a_readable_unit(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_reporters_refuse_what_is_not_a_run_snapshot(tmp_path: Path) -> None:
    metrics_only = make_run()["metrics"]
    with pytest.raises(ConfigError, match=r"trio-bots/1.*to_dict"):
        render_console(metrics_only, Console(file=io.StringIO()))
    with pytest.raises(ConfigError, match="trio-bots/1"):
        to_json_dict({"schema": "trio-bots/2", "metrics": {}})
    with pytest.raises(ConfigError, match="trio-bots/1"):
        write_csv(42, tmp_path / "x")  # type: ignore[arg-type]


def test_reporters_take_an_object_with_to_dict() -> None:
    run = make_run()

    class Result:
        def to_dict(self) -> dict[str, Any]:
            return run

    assert plain_console(Result()) == plain_console(run)
    assert to_json_dict(Result()) == to_json_dict(run)


def _allowed(module: str) -> bool:
    """What report/ may import of ours: the errors, the package plumbing (a leaf) and the
    metrics (any of its modules)."""
    ours = ("trio_bots._errors", "trio_bots._util", "trio_bots.metrics")
    return module in ours or module.startswith("trio_bots.metrics.")


def test_report_is_a_leaf_that_never_imports_the_engine() -> None:
    folder = Path(__file__).parent.parent / "trio_bots" / "report"
    files = sorted(folder.glob("*.py"))
    assert len(files) >= 6
    for file in files:
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 2:
                assert _allowed(f"trio_bots.{node.module}"), (file.name, node.module)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                assert not node.module.startswith("trio_bots") or _allowed(node.module)
                # Histograms are the metrics' business: their layout is declared once, there.
                assert not node.module.startswith("hdrh"), (file.name, node.module)
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith(("trio_bots", "hdrh")) for a in node.names)
    assert not _allowed("trio_bots._core.swarm") and not _allowed("trio_bots.metricsx")


def _function_bodies(folder: Path) -> dict[str, list[str]]:
    """Function name(s) by body (docstring left out), for the functions of a folder."""
    bodies: dict[str, list[str]] = {}
    for file in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                body = node.body
                if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                    body = body[1:]
                key = ast.dump(node.args) + ast.dump(ast.Module(body=body, type_ignores=[]))
                bodies.setdefault(key, []).append(f"{folder.name}/{file.name}:{node.name}")
    return bodies


def test_no_function_of_the_metrics_or_the_reports_is_written_twice() -> None:
    package = Path(__file__).parent.parent / "trio_bots"
    bodies = {**_function_bodies(package / "metrics")}
    for key, names in _function_bodies(package / "report").items():
        bodies.setdefault(key, []).extend(names)
    assert len(bodies) > 50
    assert [names for names in bodies.values() if len(names) > 1] == []


# --- console ----------------------------------------------------------------------------------


def test_console_plain_output_has_every_figure_and_no_escape_codes() -> None:
    run = make_run(open_model=False)
    text = plain_console(run)
    assert "\x1b[" not in text
    assert not set(text) & set("─│━┃┏┓└┘├┤┼")  # no box drawing
    stats = stats_from_snapshot(run["metrics"])
    login = stats["login"]
    row = line_of(text, "login ").split()
    assert row[1:4] == [str(login.count + login.failure_count), str(login.failure_count), "101"]
    expected = [format_duration(login.percentile(q)) for q in (50, 90, 99, 99.9)]
    expected.append(format_duration(login.max))
    assert " ".join(row[4:]) == " ".join(expected)
    assert " ms" in " ".join(expected)
    total = line_of(text, "Aggregated").split()
    assert total[1] == str(stats.total.count + stats.total.failure_count)
    # One fan-out name: its own row, in µs (40 .. 59 µs), not a summary row.
    lobby = stats["group:lobby"]
    assert line_of(text, "group:lobby ").split()[1:3] == [str(lobby.count), "0"]
    assert line_of(text, "group:lobby ").endswith(format_duration(lobby.max))
    assert format_duration(lobby.max) == "59.0 µs" and "fan-out" not in text
    assert "(raw)" not in text and "(corrected)" not in text  # closed model: one figure
    assert "ConnectionResetError: peer reset" in text
    assert "ValueError: bad [reply] <b>&" in text  # markup-like text printed as is
    assert "KeyError: 'seat'" in text
    assert re.search(r"PASS\s+p99\(login\) < 50ms\s+12\.3 ms", text)
    assert re.search(r"FAIL\s+failure_rate < 0\.001\s+0\.95%", text)
    summary = text.strip().splitlines()[-1]
    assert summary.startswith("duration 5.00 s, bots 6 started / 6 finished (size 6)")
    assert "dropped 3 messages / 2 arrivals" in summary and summary.endswith("completed")


def test_console_shows_corrected_and_raw_latency_when_they_differ() -> None:
    run = make_run(open_model=True)
    text = plain_console(run)
    stats = stats_from_snapshot(run["metrics"])["search"]
    corrected = line_of(text, "search (corrected)")
    raw = line_of(text, "search (raw)")
    assert format_duration(stats.percentile(99)) in corrected
    assert format_duration(stats.raw.percentile(99)) in raw
    assert stats.percentile(99) > 5 * stats.raw.percentile(99)
    total = stats_from_snapshot(run["metrics"]).total
    assert line_of(text, "Aggregated (corrected)").endswith(format_duration(total.max))
    assert line_of(text, "Aggregated (raw)").endswith(format_duration(total.raw.max))
    assert total.max > total.raw.max
    assert "coordinated omission" in text
    assert "login (" not in text  # closed-model names keep one row


def test_console_on_a_terminal_colours_the_verdicts() -> None:
    out = io.StringIO()
    render_console(make_run(), Console(file=out, force_terminal=True, width=160))
    text = out.getvalue()
    assert re.search(r"\x1b\[[0-9;]*32m[^\x1b]*PASS", text)  # green
    assert re.search(r"\x1b\[[0-9;]*31m[^\x1b]*FAIL", text)  # red


@pytest.mark.parametrize(
    ("flags", "word"), [({"interrupted": True}, "interrupted"), ({"aborted": True}, "ABORTED")]
)
def test_console_summary_says_how_the_run_ended(flags: dict[str, bool], word: str) -> None:
    assert plain_console(make_run(**flags)).strip().endswith(word)


def test_every_reporter_copes_with_a_run_without_latency(tmp_path: Path) -> None:
    run = empty_run()
    text = plain_console(run)
    assert re.search(r"login\s+1\s+1\s+2\.00\s+-\s+-\s+-\s+-\s+-", text)
    doc = json.loads(write_json(run, tmp_path / "r.json").read_text())
    assert doc["stats"]["login"]["p99"] is None and doc["stats"]["login"]["failure_count"] == 1
    stats_csv = write_csv(run, tmp_path / "r")[0]
    [login, total] = list(csv.DictReader(stats_csv.read_text().splitlines()))
    assert login["99%"] == "N/A" and login["Median Response Time"] == "0"
    assert total["Name"] == "Aggregated" and total["Failure Count"] == "1"
    assert "chart-bots" in write_html(run, tmp_path / "r.html").read_text()


# --- JSON -------------------------------------------------------------------------------------


def _reject_nan(token: str) -> float:
    raise AssertionError(f"invalid JSON constant {token}")


def test_json_report_carries_the_documented_schema(tmp_path: Path) -> None:
    run = make_run()
    path = write_json(run, tmp_path / "run.json")
    doc = json.loads(path.read_text(), parse_constant=_reject_nan)
    assert doc["schema"] == "trio-bots/1" and doc["time_unit"] == "s"
    assert doc["run"]["started_wall"] == WALL
    assert doc["run"]["started_iso"] == "2023-11-14T22:13:20+00:00"
    assert doc["run"]["options"] == {"duration": SECONDS, "max_failures": 0}
    assert doc["run"]["interrupted"] is False
    stats = stats_from_snapshot(run["metrics"])
    for name in ("login", "search", "group:lobby"):
        entry, s = doc["stats"][name], stats[name]
        assert entry["count"] == s.count and entry["failure_count"] == s.failure_count
        assert entry["rps"] == pytest.approx(s.rps)
        for key, q in (("p50", 50), ("p75", 75), ("p90", 90), ("p95", 95), ("p99", 99)):
            assert entry[key] == s.percentile(q)
        assert entry["p99.9"] == s.percentile(99.9) and entry["p99.99"] == s.percentile(99.99)
        assert (entry["min"], entry["mean"], entry["max"]) == (s.min, s.mean, s.max)
        assert entry["raw"]["p99"] == s.raw.percentile(99)
        assert isinstance(entry["hist"], str)
    assert doc["stats"]["login"]["bytes_received"] == 100 * 100 * SECONDS
    assert doc["stats"]["group:lobby"]["kind"] == "fanout"
    search = doc["stats"]["search"]
    assert search["corrected"] is True and search["raw_hist"] is not None
    assert search["p99"] > search["raw"]["p99"]
    assert doc["stats"]["login"]["corrected"] is False
    assert doc["stats"]["login"]["raw"]["p99"] == doc["stats"]["login"]["p99"]
    assert doc["total"]["count"] == stats.total.count
    assert doc["total"]["p99"] == stats.total.percentile(99)
    assert doc["total"]["raw"]["p99"] == stats.total.raw.percentile(99)
    assert [f["message"] for f in doc["failures"]] == ["peer reset", "bad [reply] <b>&"]
    assert doc["failures"][0]["count"] == SECONDS and doc["failures"][0]["first_bot"] == 1
    assert [b["t"] for b in doc["timeline"]][:SECONDS] == list(range(SECONDS))
    first = doc["timeline"][0]
    assert first["time"] == WALL and first["bots"] == 2
    assert first["count"] == 150 and first["failures"] == 1 and first["rps"] == 151
    assert (first["min"], first["max"]) == (
        0.0005,
        0.0396,
    )  # exact: login's 500 µs, search's 39.6 ms
    assert "hist" not in first["names"]["login"]
    assert doc["thresholds"][1]["passed"] is False
    assert doc["counters"] == {"logins": 7} and doc["gauges"] == {"queue": 3.5}
    assert doc["metrics"]["names"]["login"]["hist"] == run["metrics"]["names"]["login"]["hist"]


def test_json_report_reads_back_into_every_reporter(tmp_path: Path) -> None:
    run = make_run()
    back = read_json(write_json(run, tmp_path / "run.json"))
    assert plain_console(back) == plain_console(run)
    # The last timeline second has no samples: its NaN went through null and back.
    assert math.isnan(back["metrics"]["timeline"][-1]["p99"])
    original = write_csv(run, tmp_path / "a")
    again = write_csv(back, tmp_path / "b")
    assert [p.read_text() for p in again] == [p.read_text() for p in original]
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "locust"}')
    with pytest.raises(ConfigError, match="not a trio-bots JSON report"):
        read_json(bad)


# --- CSV --------------------------------------------------------------------------------------

LOCUST_PERCENTILES = ["50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%"]
LOCUST_STATS = [
    "Type", "Name", "Request Count", "Failure Count", "Median Response Time",
    "Average Response Time", "Min Response Time", "Max Response Time", "Average Content Size",
    "Requests/s", "Failures/s", *LOCUST_PERCENTILES, "100%", "Cancelled Count",
]  # fmt: skip
LOCUST_HISTORY = [
    "Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s",
    *LOCUST_PERCENTILES, "100%", "Total Request Count", "Total Failure Count",
    "Total Median Response Time", "Total Average Response Time", "Total Min Response Time",
    "Total Max Response Time", "Total Average Content Size",
]  # fmt: skip


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
        return list(reader.fieldnames or ()), rows


def ms(seconds: float) -> float:
    return seconds * 1000.0


def test_csv_stats_use_locust_columns_in_milliseconds(tmp_path: Path) -> None:
    run = make_run()
    paths = write_csv(run, tmp_path / "run")
    assert [p.name for p in paths] == ["run_stats.csv", "run_failures.csv", "run_history.csv"]
    columns, rows = read_csv(paths[0])
    assert columns == LOCUST_STATS
    # Locust's order: the names, then "Aggregated" last (it leaves fan-out names out).
    assert [r["Name"] for r in rows] == ["login", "search", "group:lobby", "Aggregated"]
    assert [r["Type"] for r in rows] == ["request", "request", "fanout", ""]
    stats = stats_from_snapshot(run["metrics"])
    by_name = {r["Name"]: r for r in rows}
    for name, s in [*stats.items(), ("Aggregated", stats.total)]:
        row = by_name[name]
        assert int(row["Request Count"]) == s.count + s.failure_count
        assert int(row["Failure Count"]) == s.failure_count
        assert float(row["99%"]) == pytest.approx(ms(s.percentile(99)), abs=1e-9)
        assert float(row["50%"]) == pytest.approx(ms(s.percentile(50)), abs=1e-9)
        assert float(row["Median Response Time"]) == float(row["50%"])
        assert float(row["Average Response Time"]) == pytest.approx(ms(s.mean), abs=1e-3)
        assert float(row["Min Response Time"]) == pytest.approx(ms(s.min), abs=1e-9)
        assert float(row["Max Response Time"]) == float(row["100%"]) == pytest.approx(ms(s.max))
        assert float(row["Requests/s"]) == pytest.approx(s.rps)
    login = by_name["login"]
    assert float(login["Failures/s"]) == pytest.approx(1.0)  # one failure a second
    assert float(login["Average Content Size"]) == pytest.approx(100 * 500 / 505)
    # Corrected figures (the raw ones are in the JSON report).
    assert float(by_name["search"]["99%"]) == pytest.approx(ms(stats["search"].percentile(99)))
    assert int(by_name["Aggregated"]["Request Count"]) == (100 + 50) * SECONDS + SECONDS + 1


def test_csv_failures_use_locust_columns(tmp_path: Path) -> None:
    columns, rows = read_csv(write_csv(make_run(), tmp_path / "run")[1])
    assert columns == ["Method", "Name", "Error", "Occurrences"]
    assert rows == [
        {"Method": "request", "Name": "login", "Error": "ConnectionResetError: peer reset",
         "Occurrences": str(SECONDS)},
        {"Method": "request", "Name": "search", "Error": "ValueError: bad [reply] <b>&",
         "Occurrences": "1"},
    ]  # fmt: skip


def test_csv_history_has_an_aggregated_row_per_second(tmp_path: Path) -> None:
    run = make_run()
    columns, rows = read_csv(write_csv(run, tmp_path / "run")[2])
    assert columns == LOCUST_HISTORY
    assert [r["Name"] for r in rows] == ["Aggregated"] * len(run["metrics"]["timeline"])
    assert [int(r["Timestamp"]) for r in rows] == [int(WALL) + t for t in range(SECONDS + 1)]
    assert [r["User Count"] for r in rows] == ["2", "3", "4", "5", "6", "0"]
    _, full = read_csv(write_csv(run, tmp_path / "full", full_history=True)[2])
    assert [r for r in full if r["Name"] == "Aggregated"] == rows


def test_csv_full_history_has_a_row_per_name_and_second(tmp_path: Path) -> None:
    run = make_run()
    columns, rows = read_csv(write_csv(run, tmp_path / "run", full_history=True)[2])
    assert columns == LOCUST_HISTORY
    total_rows = [r for r in rows if r["Name"] == "Aggregated"]
    assert len(total_rows) == len(run["metrics"]["timeline"])
    first = [r for r in rows if r["Timestamp"] == str(int(WALL))]
    assert [r["Name"] for r in first] == ["group:lobby", "login", "search", "Aggregated"]
    login0 = first[1]
    assert login0["User Count"] == "2" and login0["Type"] == "request"
    assert float(login0["Requests/s"]) == 101 and float(login0["Failures/s"]) == 1
    # Second 0 of login: 100 samples 0.50 .. 1.49 ms, exact below 2048 µs.
    assert float(login0["50%"]) == 0.99 and float(login0["100%"]) == 1.49
    login1 = [r for r in rows if r["Name"] == "login"][1]
    assert login1["Timestamp"] == str(int(WALL) + 1)
    assert float(login1["50%"]) == 1.09  # that second alone
    assert float(login1["Total Median Response Time"]) == 1.04  # both seconds
    assert login1["Total Request Count"] == "202" and login1["Total Failure Count"] == "2"
    stats = stats_from_snapshot(run["metrics"])
    last = total_rows[-1]
    assert int(last["Total Request Count"]) == stats.total.count + stats.total.failure_count
    assert int(last["Total Failure Count"]) == stats.total.failure_count
    assert float(last["Total Max Response Time"]) == pytest.approx(ms(stats.total.max))
    assert float(last["Total Median Response Time"]) == pytest.approx(
        ms(stats.total.percentile(50))
    )
    assert last["50%"] == "N/A"  # the last second had no requests
    seconds = sum(float(r["Requests/s"]) for r in total_rows)  # buckets are one second wide
    assert seconds == stats.total.count + stats.total.failure_count


# --- HTML -------------------------------------------------------------------------------------


class _Page(HTMLParser):
    """Collects the tables' cell texts, the script tags and the element ids."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.scripts: list[dict[str, str | None]] = []
        self.links: list[dict[str, str | None]] = []
        self.urls: list[str] = []  # every src= and href= outside the scripts' text
        self.ids: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.urls += [str(value) for key, value in attrs if key in ("src", "href")]
        if attributes.get("id"):
            self.ids.append(str(attributes["id"]))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "script":
            self.scripts.append(attributes)
        elif tag == "link":
            self.links.append(attributes)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse_page(path: Path) -> tuple[str, _Page]:
    text = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    return text, page


def test_html_report_is_self_contained_with_tables_and_charts(tmp_path: Path) -> None:
    run = make_run()
    text, page = parse_page(write_html(run, tmp_path / "report.html"))
    assert all("src" not in script for script in page.scripts) and not page.links
    assert page.urls == []
    assert not re.search(r"@import|@font-face", text)
    assert len(text) > 1_000_000  # plotly.js itself is inline
    for chart in ("chart-rps", "chart-latency", "chart-distribution", "chart-bots"):
        assert page.ids.count(chart) == 1
    stats_table = next(t for t in page.tables if t[0][:2] == ["Name", "Requests"])
    rows = {row[0]: row for row in stats_table[1:]}
    s = stats_from_snapshot(run["metrics"])
    assert rows["login"][7] == format_duration(s["login"].percentile(99))
    assert rows["search (corrected)"][7] == format_duration(s["search"].percentile(99))
    assert rows["search (raw)"][7] == format_duration(s["search"].raw.percentile(99))
    assert rows["Aggregated (corrected)"][1] == str(s.total.count + s.total.failure_count)
    failures = next(t for t in page.tables if t[0][:2] == ["Name", "Error"])
    assert failures[2] == ["search", "ValueError: bad [reply] <b>&", "1", "-"]
    thresholds = next(t for t in page.tables if t[0][0] == "Result")
    assert thresholds[1] == ["PASS", "p99(login) < 50ms", "12.3 ms"]
    assert thresholds[2] == ["FAIL", "failure_rate < 0.001", "0.95%"]


def test_html_report_without_plotly_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "plotly", None)
    monkeypatch.setitem(sys.modules, "plotly.graph_objects", None)
    with pytest.raises(ConfigError, match=re.escape("pip install 'trio-bots[html]'")):
        write_html(make_run(), tmp_path / "report.html")
    assert not (tmp_path / "report.html").exists()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def run_chromium(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--disable-dev-shm-usage",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # offline: no host name resolves
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        *extra,
        page.as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


@pytest.mark.skipif(CHROMIUM is None, reason="needs a headless chromium (apt-get install chromium)")
def test_html_report_renders_every_chart_in_a_real_browser(tmp_path: Path) -> None:
    page = write_html(make_run(), tmp_path / "report.html")
    dom = run_chromium(page, tmp_path / "profile", "--dump-dom").stdout
    assert 'data-report-status="ok"' in dom
    for chart in ("chart-rps", "chart-latency", "chart-distribution", "chart-bots"):
        # plotly has replaced each empty div with its rendered plot
        match = re.search(rf'<div id="{chart}"[^>]*>(.*?)</div>', dom, re.S)
        assert match and 'class="plot-container plotly"' in match.group(1), chart
    assert dom.count('class="plot-container plotly"') == 4
    assert dom.count("main-svg") >= 4
    assert ">99%</text>" in dom  # the percentile axis of the HDR plot is labelled


@pytest.mark.skipif(CHROMIUM is None, reason="needs a headless chromium (apt-get install chromium)")
def test_html_report_status_catches_script_errors(tmp_path: Path) -> None:
    # The check the previous test relies on must be able to fail.
    page = write_html(make_run(), tmp_path / "report.html")
    text = page.read_text(encoding="utf-8")
    page.write_text(text.replace("</body>", "<script>undefinedFunction()</script></body>"))
    dom = run_chromium(page, tmp_path / "profile", "--dump-dom").stdout
    assert re.search(r'data-report-status="error: [^"]*undefinedFunction', dom)


# --- threshold units ---------------------------------------------------------------------------


def run_with_thresholds(*expressions: str, with_unit: bool) -> tuple[dict[str, Any], list[Any]]:
    """One request name, so the total and the name read alike; results as to_dict() writes them."""
    rec = Recorder(start_time=0.0)
    for _ in range(10):
        rec.record("login", 81_700)
    rec.record_failure("login", "OSError", "reset", 1)
    metrics = rec.snapshot(1.0, bots_running=0, active_seconds=1.0)
    results = check_thresholds(stats_from_snapshot(metrics), expressions)
    keys = ["expression", "passed", "measured", "required", *(["unit"] if with_unit else [])]
    rows = [{key: getattr(r, key) for key in keys} for r in results]
    run = {"schema": "trio-bots/1", "time_unit": "s", "run": {}, "metrics": metrics}
    return {**run, "thresholds": rows}, results


@pytest.mark.parametrize("with_unit", [True, False])
def test_every_report_shows_a_threshold_in_its_results_unit(
    tmp_path: Path, with_unit: bool
) -> None:
    expressions = ["p99 < 50ms", "p99(login) < 50ms", "failure_rate < 1%", "rps(login) > 20"]
    run, results = run_with_thresholds(*expressions, with_unit=with_unit)
    shown = [format_value(r.measured, r.unit) for r in results]
    assert shown == ["81.7 ms", "81.7 ms", "9.09%", "11.0"]
    for r, text in zip(results, shown, strict=True):
        assert f"measured {text}," in str(r)  # the result's own line: the same figure
    console = plain_console(run)
    for expression, text in zip(expressions, shown, strict=True):
        assert re.search(rf"FAIL\s+{re.escape(expression)}\s+{re.escape(text)}\n", console)
    _, page = parse_page(write_html(run, tmp_path / "report.html"))
    table = next(t for t in page.tables if t[0][0] == "Result")
    assert [row[2] for row in table[1:]] == shown
    doc = to_json_dict(run)
    assert [t["unit"] for t in doc["thresholds"]] == ["s", "s", "ratio", "1/s"]


def test_json_thresholds_keep_the_results_unit_and_every_other_field() -> None:
    run = make_run()
    run["thresholds"][0]["unit"] = "s"
    run["thresholds"].append({"expression": "custom", "passed": True, "measured": 2.5})
    doc = to_json_dict(run)
    assert doc["thresholds"][0] == {**run["thresholds"][0], "unit": "s"}
    assert doc["thresholds"][1]["unit"] == "ratio"  # written without one: from its expression
    assert doc["thresholds"][2]["unit"] is None  # not a threshold expression: no unit to give
    assert re.search(r"PASS\s+custom\s+2\.5\n", plain_console(run))


# --- fan-out rows ------------------------------------------------------------------------------

ROOMS = 40


def chat_run() -> tuple[dict[str, Any], Any]:
    """A run with one request name and 40 group fan-out names plus ``direct``, as the chat
    example makes; and the stats of all the fan-out samples recorded under one name."""
    rec, one = Recorder(start_time=0.0), Recorder(start_time=0.0)
    rec.record("say", 2_000)
    for room in range(ROOMS):
        for us in (50 + room, 900 + 13 * room, 40_000 + 997 * room):
            rec.record_fanout(f"group:room-{room}", us)
            one.record_fanout("fanout", us)
    rec.record_fanout("direct", 77)
    one.record_fanout("fanout", 77)
    metrics = rec.snapshot(1.0, bots_running=0, active_seconds=1.0)
    expected = stats_from_snapshot(one.snapshot(1.0, bots_running=0, active_seconds=1.0))
    return {"schema": "trio-bots/1", "time_unit": "s", "run": {}, "metrics": metrics}, expected[
        "fanout"
    ]


def test_console_sums_the_fanout_names_in_one_row_unless_asked_for_detail() -> None:
    run, expected = chat_run()
    text = plain_console(run)
    assert "group:room-" not in text and "direct " not in text
    row = line_of(text, "fan-out (40 groups, direct) ").split()[4:]
    assert row[:2] == [str(ROOMS * 3 + 1), "0"]  # requests, failures
    figures = [expected.percentile(q) for q in (50, 90, 99, 99.9)] + [expected.max]
    assert " ".join(row[3:]) == " ".join(format_duration(x) for x in figures)
    assert "fanout_detail=True" in text
    detail = plain_console_with(run, fanout_detail=True)
    assert len([line for line in detail.splitlines() if line.startswith("group:room-")]) == ROOMS
    assert line_of(detail, "direct ").split()[1:3] == ["1", "0"] and "fan-out (" not in detail
    assert "fanout_detail=True" not in detail


def plain_console_with(run: Any, **options: Any) -> str:
    out = io.StringIO()
    render_console(run, Console(file=out, force_terminal=False, width=160), **options)
    return out.getvalue()


def test_html_sums_the_fanout_names_in_one_row_and_json_and_csv_keep_every_name(
    tmp_path: Path,
) -> None:
    run, expected = chat_run()
    _, page = parse_page(write_html(run, tmp_path / "report.html"))
    table = next(t for t in page.tables if t[0][:2] == ["Name", "Requests"])
    assert [row[0] for row in table[1:]] == ["say", "Aggregated", "fan-out (40 groups, direct)"]
    assert table[3][1:3] == [str(ROOMS * 3 + 1), "0"]
    assert table[3][7] == format_duration(expected.percentile(99))
    _, page = parse_page(write_html(run, tmp_path / "detail.html", fanout_detail=True))
    table = next(t for t in page.tables if t[0][:2] == ["Name", "Requests"])
    assert len(table) == 1 + 2 + ROOMS + 1  # header, say and Aggregated, the groups, direct
    doc = to_json_dict(run)
    assert len([name for name in doc["stats"] if doc["stats"][name]["kind"] == "fanout"]) == 41
    _, rows = read_csv(write_csv(run, tmp_path / "run")[0])
    assert len([r for r in rows if r["Type"] == "fanout"]) == 41


def test_one_fanout_name_keeps_its_own_row() -> None:
    rec = Recorder(start_time=0.0)
    rec.record_fanout("fanout", 70)
    metrics = rec.snapshot(1.0, bots_running=0, active_seconds=1.0)
    run = {"schema": "trio-bots/1", "run": {}, "metrics": metrics}
    assert line_of(plain_console(run), "fanout ").split()[1] == "1"


# --- the reports' histograms are the metrics' -------------------------------------------------


def test_running_totals_read_nan_bounds_as_the_metrics_do() -> None:
    from trio_bots.report._hist import RunningHist, hist_stats

    rec = Recorder(start_time=0.0)
    for name, us in (("a", 100_003), ("b", 150_001), ("c", 120_005), ("d", 90_000)):
        rec.record(name, us)
    metrics = rec.snapshot(1.0, bots_running=0, active_seconds=1.0)
    # "b" and "c" without exact bounds, as a snapshot may carry them: NaN, which the
    # metrics read as "no samples" (nan_min / nan_max) when they add bounds up.
    for name in ("b", "c"):
        metrics["names"][name]["min"] = metrics["names"][name]["max"] = math.nan
    names = metrics["names"]
    running = RunningHist()
    for entry in names.values():
        running.add(entry["hist"], entry["min"], entry["max"])
    low = high = math.nan
    for entry in names.values():
        low, high = nan_min(low, entry["min"]), nan_max(high, entry["max"])
    assert (running.count, running.low, running.high) == (4, low, high) == (4, 0.09, 0.100003)
    together = stats_from_snapshot(metrics).combine("all", sorted(names))
    summed = hist_stats(running.encoded(), running.count, running.low, running.high)
    assert [summed.min, summed.max, summed.percentile(50), summed.percentile(75)] == [
        together.min,
        together.max,
        together.percentile(50),
        together.percentile(75),
    ]


# --- long runs: buckets wider than a second ---------------------------------------------------


def long_run(seconds: int = 700) -> dict[str, Any]:
    """A run of `seconds`, long enough that its oldest seconds are 10 s summaries."""
    rec = Recorder(start_time=START)
    for s in range(seconds):
        rec.record("login", 1000 if s % 10 else 5000)
        if s % 10 == 3:
            rec.record_failure("login", "OSError", "reset", bot_id=1)
        rec.tick(s, bots_running=s % 3)
    run = make_run(with_thresholds=False)
    run["metrics"] = rec.snapshot(START + seconds, bots_running=0, active_seconds=float(seconds))
    return run


def test_json_timeline_shows_each_buckets_span_and_rate(tmp_path: Path) -> None:
    run = long_run()
    data = json.loads(write_json(run, tmp_path / "run.json").read_text())
    first, last = data["timeline"][0], data["timeline"][-1]
    assert (first["t"], first["span"], first["count"], first["failures"]) == (0, 10, 10, 1)
    assert first["rps"] == pytest.approx(1.1) and first["bots"] == 9 % 3
    assert (last["t"], last["span"], last["rps"]) == (699, 1, 1.0)
    covered = sum(b["span"] for b in data["timeline"])
    assert covered == 700


def test_csv_history_reads_summarised_buckets(tmp_path: Path) -> None:
    run = long_run()
    _, rows = read_csv(write_csv(run, tmp_path / "run")[2])
    first = rows[0]
    assert first["Requests/s"] == "1.1" and first["50%"] == "1.0" and first["99%"] == "5.0"
    assert first["66%"] == "N/A"  # a summary keeps p50, p90, p99, p99.9 and max
    assert first["Total Request Count"] == "11" and first["Total Median Response Time"] == "N/A"
    assert rows[-1]["Total Request Count"] == str(700 + 70)
