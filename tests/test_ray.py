"""Ray smoke tests: shards as Ray actors on a local Ray that listens on 127.0.0.1 only.

One Ray for the session (it takes ~3 s to start): ``address="local"`` (never a cluster
found through RAY_ADDRESS or /tmp/ray), its files under the test's tmp dir, token
authentication off (it would log a warning), and RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0,
which makes Ray bind and connect on 127.0.0.1 alone (see ../shared/notes/scale-out.md).
Skipped when ray is not installed (``pip install 'trio-bots[ray]'``)."""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

import trio_bots
from trio_bots import ConfigError, SwarmAborted

SCENARIOS = Path(__file__).parent / "scenarios"
sys.path.insert(0, str(SCENARIOS))
import shards  # noqa: E402  (module level: the actors import them)

_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def _ray_pids(temp_dir: str) -> set[int]:
    """Every process of this test's Ray: our descendants, and any naming its temp dir."""
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if int(entry) == os.getpid():
            continue
        if temp_dir in cmdline or ("ray" in cmdline and _descends(int(entry))):
            pids.add(int(entry))
    return pids


def _descends(pid: int) -> bool:
    me = os.getpid()
    while pid > 1:
        if pid == me:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return False


@pytest.fixture(scope="session")
def ray_module() -> Iterator[Any]:
    """``ray``, imported with the loopback settings in the environment (it reads them then)."""
    saved = {key: os.environ.get(key) for key in _ENV}
    os.environ.update(_ENV)
    try:
        missing = "ray is not installed: pip install 'trio-bots[ray]'"
        ray = pytest.importorskip("ray", reason=missing)
        from ray._private import ray_constants

        assert not ray_constants.ENABLE_RAY_CLUSTER, (
            "ray was imported before RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 was set, so it would "
            "listen on every interface: import it only through this fixture"
        )
        yield ray
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def local_ray(ray_module: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    temp_dir = str(tmp_path_factory.mktemp("ray"))
    ray_module.init(address="local", num_cpus=2, include_dashboard=False, _temp_dir=temp_dir)
    try:
        yield temp_dir
    finally:
        ray_module.shutdown()
    deadline = time.monotonic() + 10
    while _ray_pids(temp_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _ray_pids(temp_dir), "Ray processes outlived ray.shutdown()"


def run(worker: Any, size: int, **options: Any) -> trio_bots.SwarmResult:
    async def main() -> trio_bots.SwarmResult:
        with trio.fail_after(60):
            return await trio_bots.swarm(worker, size, **options)

    return trio.run(main)


def _listening(pids: set[int]) -> list[tuple[str, int]]:
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        owners = {int(pid) for pid in re.findall(r"pid=(\d+)", line)}
        if owners & pids:
            found.append((line.split()[3], min(owners & pids)))
    return found


def _loopback(address: str) -> bool:
    """``127.0.0.1:PORT`` or gRPC's IPv4-mapped ``[::ffff:127.0.0.1]:PORT``."""
    ip = ipaddress.ip_address(address.rsplit(":", 1)[0].strip("[]"))
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def test_an_unreachable_ray_address_is_a_config_error(ray_module: Any) -> None:
    if ray_module.is_initialized():
        pytest.skip("a Ray is initialized in this process already: the address is not used")
    with pytest.raises(ConfigError) as caught:
        run(shards.idle, 2, ray="127.0.0.1:1")  # loopback, nothing listens on port 1
    assert str(caught.value).startswith(
        "ray: cannot reach the Ray cluster at 127.0.0.1:1: Connection refused"
    )
    with pytest.raises(ConfigError, match="expected auto, HOST:PORT"):
        run(shards.idle, 2, ray="nowhere")


def test_a_swarm_over_ray_actors_merges_exactly_on_loopback(local_ray: str) -> None:
    result = run(shards.worker, 6, ray="auto", duration=2, stop_grace=1)
    # one shard per cluster CPU, in actor processes of their own
    assert [(row["first_bot"], row["last_bot"]) for row in result.shards] == [(0, 2), (3, 5)]
    assert all(row["pid"] != os.getpid() and row["lost"] is None for row in result.shards)
    assert result.bots_started == result.bots_finished == 6 and not result.aborted
    assert result.stats["known"].count == 30
    assert result.stats["known"].max == pytest.approx(0.030, rel=0.01)
    assert result.stats["after-step"].count == 6  # the global step() released everyone
    # every socket our Ray listens on is on loopback
    sockets = _listening(_ray_pids(local_ray))
    assert sockets, "found no listening socket of the Ray processes"
    assert all(_loopback(address) for address, _ in sockets), sockets


def test_a_dead_actor_is_a_lost_shard(local_ray: str, monkeypatch: pytest.MonkeyPatch) -> None:
    started = time.monotonic()
    with pytest.raises(SwarmAborted) as caught:
        run(shards.die_in_shard_1, 6, ray="auto", processes=2, duration=20, stop_grace=1)
    assert time.monotonic() - started < 20  # nothing hangs
    result = caught.value.result
    pid = result.shards[1]["pid"]
    assert str(caught.value) == f"shard 1 (pid {pid}) died: ActorDiedError (Ray actor)"
    assert result.shards[1]["lost"] == "died: ActorDiedError (Ray actor)"
    assert result.shards[0]["lost"] is None
    assert result.bots_finished == result.bots_started == 6 and result.bot_failures == []
    assert result.stats["before"].count == 6  # what shard 1 sent before it died
    # more shards than CPUs: the actors cannot be placed, and that is said, not hung on
    monkeypatch.setattr("trio_bots.distributed._ray.PLACE_TIMEOUT", 1.0)
    with pytest.raises(ConfigError, match=r"3 shard actors .* not all placed within 1 s"):
        run(shards.idle, 3, ray="auto", processes=3, duration=1)
