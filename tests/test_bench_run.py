"""benchmarks/run.py: its search, its verdicts, and one small workload end to end.

Benchmarks are not tests: nothing here asserts on speed, only that the command
runs, decides and reports as its docstring says.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import _workers  # noqa: E402  (benchmarks/ is on sys.path only now)


def _load_run():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_run", BENCHMARKS / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


run = _load_run()


def _search(limit: float, **options: float) -> tuple[float | None, list[float]]:
    probed: list[float] = []

    def probe(rate: float) -> bool:
        probed.append(rate)
        return rate <= limit

    settings = {"start": 1000, "cap": 1e6, "max_probes": 20, "budget_s": 60, **options}
    return _workers.highest_stable(probe, **settings), probed  # type: ignore[arg-type]


def test_search_doubles_then_bisects() -> None:
    best, probed = _search(5000)
    assert best == 5000
    assert probed[:4] == [1000, 2000, 4000, 8000]
    assert all(4000 <= rate <= 8000 for rate in probed[4:])


def test_search_halves_down_to_an_eighth_then_gives_up() -> None:
    assert _search(300) == (296, [1000, 500, 250, 375, 312, 281, 296])
    assert _search(10) == (None, [1000, 500, 250, 125])


def test_search_is_bounded_by_probes_and_cap() -> None:
    assert _search(1e9, max_probes=3) == (4000, [1000, 2000, 4000])
    best, probed = _search(1e9, cap=3000)
    assert (best, probed) == (3000, [1000, 2000, 3000])


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert _workers.percentile(values, 0.99) == 99.0
    assert _workers.percentile([5.0], 0.99) == 5.0


def _row(comparison, results, skipped=None, errors=None):  # type: ignore[no-untyped-def]
    return run.compare(comparison, results, skipped or {}, errors or {})


def test_compare_verdicts() -> None:
    higher = run.Comparison("x", "ours", "anchor", "rate", "req/s", 0.8)
    lower = run.Comparison("m", "ours", "anchor", "kib", "KiB", 1.15, lower_is_better=True)
    results = {
        "ours": [{"rate": 90.0, "kib": 12.0}, {"rate": 70.0, "kib": 12.0}, {"rate": 80, "kib": 12}],
        "anchor": [{"rate": 100.0, "kib": 10.0}] * 3,
    }
    row = _row(higher, results)
    assert (row["ratio"], row["paired_ratio"], row["verdict"]) == (0.8, 0.8, "OK")
    assert _row(lower, results)["verdict"] == "MISSED"  # 1.2 > 1.15
    assert _row(higher, results, skipped={"anchor": "no wrk"})["verdict"] == "SKIPPED"
    assert _row(higher, results, errors={"ours": "boom"})["verdict"] == "FAILED"


@pytest.mark.slow
def test_smoke_of_one_workload_writes_its_table_and_json(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    cmd = [sys.executable, str(BENCHMARKS / "run.py"), "--smoke", "--only", "fanout"]
    proc = subprocess.run(
        [*cmd, "--no-locust", "--json", str(out)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "groups of 10 vs send_nowait" in proc.stdout
    report = json.loads(out.read_text())
    assert report["mode"] == "smoke"
    (row,) = report["rows"]
    assert row["workload"] == "fanout" and row["verdict"] in ("OK", "MISSED")
    assert row["value"] > 0 and row["anchor_value"] > 0


def test_a_failing_side_is_dropped_and_the_others_go_on() -> None:
    calls: list[str] = []

    def ok() -> dict[str, float]:
        calls.append("ok")
        return {"rate": 1.0}

    def boom() -> dict[str, float]:
        calls.append("boom")
        raise RuntimeError("the child exited with 1")

    results, errors = run.alternate("w", {"ok": ok, "boom": boom}, 3)
    assert calls == ["ok", "boom", "ok", "ok"]  # boom runs once, then is left out
    assert results == {"ok": [{"rate": 1.0}] * 3, "boom": []}
    assert errors == {"boom": "RuntimeError: the child exited with 1"}
