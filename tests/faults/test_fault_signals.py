"""Signals at every phase of ``trio-bots run``: while the scenario imports, during the
ramp-up, inside the stop grace, and while the reports are written. Each gives the
documented exit code, with the reports intact and every request accounted for."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from _faults import PYTHON, check_reports, check_run_file_accounting, child_env
from test_cli import finish, read_until

SCENARIOS = Path(__file__).parent / "scenarios"
OLD_SCENARIOS = Path(__file__).parents[1] / "scenarios"
TIMEOUT = 60


def start(phase: str, tmp_path: Path, *extra: str, cwd: Path = SCENARIOS) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, "-m", "trio_bots.cli", "run", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=child_env(FAULT_PHASE=phase),
    )


def run_args(tmp_path: Path) -> list[str]:
    return ["phases.py", "--no-live", "--json", str(tmp_path / "run.json"), "--csv",
            str(tmp_path / "run")]  # fmt: skip


def check_run(tmp_path: Path) -> dict[str, object]:
    doc = check_reports(tmp_path / "run.json", tmp_path / "run")
    counters = doc["counters"]
    check_run_file_accounting(doc, {"tick": counters["entered:tick"]})
    return doc


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_scenario_imports(signum: int) -> None:
    proc = start("-", Path(), "slow_import.py", cwd=OLD_SCENARIOS)
    read_until(proc, "importing")
    proc.send_signal(signum)
    out, err = finish(proc)
    assert proc.returncode == 128 + signum, err  # SIGTERM: 143, no longer -15
    assert "Traceback" not in out + err and "interrupted" in err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_the_ramp_up(tmp_path: Path, signum: int) -> None:
    proc = start("ramp", tmp_path, *run_args(tmp_path))
    read_until(proc, "ready")
    time.sleep(0.5)  # some bots run, most have not arrived yet
    start_stop = time.monotonic()
    proc.send_signal(signum)
    _, err = finish(proc)
    assert proc.returncode == 128 + signum, err
    assert time.monotonic() - start_stop < 15  # the 20 s ramp did not run out
    doc = check_run(tmp_path)
    run = doc["run"]
    assert isinstance(run, dict) and run["interrupted"] is True
    assert 0 < run["bots_started"] < 40


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_second_signal_inside_the_stop_grace(tmp_path: Path, signum: int) -> None:
    proc = start("grace", tmp_path, *run_args(tmp_path))
    read_until(proc, "ready")
    proc.send_signal(signum)
    read_until(proc, "stopping")
    time.sleep(0.2)
    sent = time.monotonic()
    proc.send_signal(signum)
    _, err = finish(proc)
    assert proc.returncode == 128 + signum, err
    assert time.monotonic() - sent < 15  # far less than the 60 s grace
    doc = check_run(tmp_path)
    tick = doc["stats"]["tick"]  # type: ignore[index]
    assert tick["cancelled"] == 4  # each bot was cut off inside measure()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_reports_are_written_lets_them_finish(
    tmp_path: Path, signum: int
) -> None:
    proc = start("reports", tmp_path, *run_args(tmp_path))
    read_until(proc, "writing")
    proc.send_signal(signum)
    _, err = finish(proc)
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err and "reports were written first" in err
    doc = check_run(tmp_path)
    assert doc["run"]["interrupted"] is False  # type: ignore[index]  # the run itself ended


def test_a_second_signal_while_the_reports_are_written_exits_at_once(tmp_path: Path) -> None:
    previous = '{"schema": "trio-bots/1", "previous": true}\n'
    (tmp_path / "run.json").write_text(previous)
    proc = start("reports", tmp_path, *run_args(tmp_path))
    read_until(proc, "writing")
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = finish(proc)
    assert time.monotonic() - sent < 1.2  # before the 1.5 s write would have ended
    assert proc.returncode == 130, err  # the signal that ended it
    assert "Traceback" not in err
    # the JSON report was not written: the previous file stands, whole
    assert json.loads((tmp_path / "run.json").read_text()) == json.loads(previous)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
