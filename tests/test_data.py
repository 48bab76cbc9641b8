"""Feeders: ``data=``, ``data_mode=``, ``data_per=``, ``bot.data`` and ``it.data``."""

from __future__ import annotations

import functools
import json
import os
import random
from pathlib import Path
from typing import Any

import anyio
import pytest
import trio
import trio.testing
from test_cli import no_traceback, trio_bots_cmd

import trio_bots
from trio_bots import ConfigError, SwarmAborted
from trio_bots._core.data import STRIDE, Permutation, open_feeder, shard_indices

#: Upper bound for one swarm in these tests (they take milliseconds).
LIMIT = 10


def write_csv(path: Path, rows: int, columns: tuple[str, ...] = ("user", "password")) -> Path:
    lines = [",".join(columns)]
    lines += [",".join(f"{c}{i}" for c in columns) for i in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(worker: Any, size: int, **options: Any) -> trio_bots.SwarmResult:
    async def main() -> trio_bots.SwarmResult:
        with trio.fail_after(LIMIT):
            return await trio_bots.swarm(worker, size, **options)

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def records_seen(size: int, **options: Any) -> dict[int, Any]:
    seen: dict[int, Any] = {}

    async def worker(bot: trio_bots.Bot) -> None:
        seen[bot.id] = bot.data
        assert bot.data is seen[bot.id]  # the same record every time it is read

    run(worker, size, **options)
    return seen


def open_fds_to(path: Path) -> list[str]:
    fds = Path("/proc/self/fd")
    found = []
    for fd in fds.iterdir():
        try:
            if os.readlink(fd) == str(path.resolve()):
                found.append(fd.name)
        except OSError:
            pass
    return found


# -- sources and modes, per bot


def test_csv_rows_are_dicts_and_bot_i_gets_row_i(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "users.csv", 4)
    seen = records_seen(4, data=str(path))
    assert seen == {i: {"user": f"user{i}", "password": f"password{i}"} for i in range(4)}
    assert open_fds_to(path) == []


def test_jsonl_list_and_iterable_sources(tmp_path: Path) -> None:
    path = tmp_path / "users.jsonl"
    path.write_text('{"n": 0}\n\n{"n": 1}\n[2]\n', encoding="utf-8")  # blank lines skipped
    assert records_seen(3, data=path) == {0: {"n": 0}, 1: {"n": 1}, 2: [2]}
    assert records_seen(2, data=("a", "b")) == {0: "a", 1: "b"}
    assert records_seen(3, data=(n * n for n in range(3))) == {0: 0, 1: 1, 2: 4}


def test_no_data_is_none() -> None:
    assert records_seen(2) == {0: None, 1: None}


def test_cycle_wraps_round_by_bot_id(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "users.csv", 2, ("user",))
    seen = records_seen(5, data=f"{path}:cycle")
    assert [seen[i]["user"] for i in range(5)] == ["user0", "user1", "user0", "user1", "user0"]


def test_random_draws_with_bot_random() -> None:
    records = list(range(50))
    seen = records_seen(20, data=records, data_mode="random", seed=11)
    assert seen == {i: random.Random(f"11:{i}").randrange(50) for i in range(20)}
    assert len(set(seen.values())) > 1


def test_shuffle_is_one_seeded_permutation_without_repeats() -> None:
    records = list(range(40))
    first = records_seen(40, data=records, data_mode="shuffle", seed="s")
    again = records_seen(40, data=records, data_mode="shuffle", seed="s")
    other = records_seen(40, data=records, data_mode="shuffle", seed="t")
    assert sorted(first.values()) == records
    assert first == again
    assert first != other
    assert [first[i] for i in range(40)] != records


def test_shared_gives_every_bot_the_same_record() -> None:
    seen = records_seen(4, data=[{"token": "x"}, {"token": "y"}], data_mode="shared")
    assert all(record is seen[0] for record in seen.values())
    assert seen[0] == {"token": "x"}


def test_asyncio_backend() -> None:
    seen: dict[int, Any] = {}

    async def worker(bot: trio_bots.Bot) -> None:
        seen[bot.id] = bot.data

    anyio.run(functools.partial(trio_bots.swarm, worker, 2, data=["a", "b"]), backend="asyncio")
    assert seen == {0: "a", 1: "b"}


# -- running out


def test_sequential_too_few_records_is_a_config_error_before_the_start(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "users.csv", 2)
    started = []

    async def worker(bot: trio_bots.Bot) -> None:
        started.append(bot.id)

    with pytest.raises(ConfigError, match=r"users.csv has only 2 records, but sequential mode"):
        run(worker, 3, data=str(path))
    with pytest.raises(ConfigError, match="has only 3 records"):
        run(worker, 2, data=list("abc"), data_per="iteration", iterations=2)
    with pytest.raises(ConfigError, match="has only 1 records"):
        run(worker, 2, data=["a"], data_mode="shuffle")
    assert started == []
    assert open_fds_to(path) == []


def test_running_out_after_the_start_fails_that_bot() -> None:
    async def worker(bot: trio_bots.Bot) -> None:
        assert bot.data is not None

    # A lazy iterable: its count is unknown until it runs out.
    result = run(worker, 3, data=iter(["a", "b"]), max_failures=None)
    assert [f.bot_id for f in result.bot_failures] == [2]
    error = result.bot_failures[0].exception
    assert isinstance(error, ConfigError)
    assert str(error) == "data has only 2 records"


def test_running_out_per_iteration_in_the_open_model_fails_the_bot() -> None:
    taken: list[str] = []

    async def worker(bot: trio_bots.Bot) -> None:
        async for it in bot.iterations():
            taken.append(it.data)

    with pytest.raises(SwarmAborted) as info:
        run(worker, 1, data=list("abcd"), data_per="iteration", rate=2, duration=10)
    assert taken == list("abcd")
    assert str(info.value.__cause__) == "data has only 4 records"


# -- per iteration


def test_per_iteration_takes_the_next_record_of_one_global_sequence() -> None:
    seen: list[tuple[int, int, Any]] = []

    async def worker(bot: trio_bots.Bot) -> None:
        assert bot.data is None  # no step yet
        async for it in bot.iterations():
            assert bot.data is it.data
            seen.append((bot.id, it.index, it.data))
            await trio.sleep(1)

    run(worker, 2, data=list(range(6)), data_per="iteration", iterations=3)
    assert sorted(record for _, _, record in seen) == list(range(6))
    for bot_id in (0, 1):  # each bot's records come in the sequence's order
        mine = [record for b, _, record in seen if b == bot_id]
        assert mine == sorted(mine)


def test_per_iteration_cycle_random_and_shared() -> None:
    def steps(size: int, iterations: int, **options: Any) -> dict[int, list[Any]]:
        seen: dict[int, list[Any]] = {}

        async def worker(bot: trio_bots.Bot) -> None:
            async for it in bot.iterations():
                seen.setdefault(bot.id, []).append(it.data)
                await trio.sleep(1)

        run(worker, size, data_per="iteration", iterations=iterations, **options)
        return seen

    cycled = steps(1, 5, data=list("ab"), data_mode="cycle")
    assert cycled == {0: list("ababa")}
    shared = steps(3, 3, data=list("xyz"), data_mode="shared")
    assert shared == {0: list("xyz"), 1: list("xyz"), 2: list("xyz")}
    drawn = steps(1, 8, data=list(range(100)), data_mode="random", seed=3)
    rng = random.Random("3:0")
    assert drawn == {0: [rng.randrange(100) for _ in range(8)]}


# -- shards


@pytest.mark.parametrize("mode", ["sequential", "shuffle"])
def test_three_shards_split_the_records_without_overlap(tmp_path: Path, mode: str) -> None:
    path = write_csv(tmp_path / "users.csv", 20, ("user",))
    taken: list[str] = []
    for shard in range(3):
        feeder = open_feeder(
            str(path), mode=mode, per="iteration", seed=5, shard=shard, shards=3
        )
        try:
            with pytest.raises(ConfigError, match="has only 20 records"):
                for index in range(100):
                    taken.append(feeder.take(None, index=index)["user"])
        finally:
            feeder.close()
    assert sorted(taken) == sorted(f"user{i}" for i in range(20))  # the whole file, once
    assert [len(shard_indices(20, k, 3)) for k in range(3)] == [7, 7, 6]


def test_shards_of_bots_with_global_ids_do_not_overlap() -> None:
    # Three shards of 4, 3 and 3 bots, with global ids 0-3, 4-6 and 7-9.
    feeder = open_feeder(list(range(10)), mode="shuffle", seed=1)
    seen = [feeder.record_at(feeder.index_for_bot(bot_id, None)) for bot_id in range(10)]
    assert sorted(seen) == list(range(10))


# -- laziness


def test_a_big_file_is_indexed_sparsely_and_read_lazily(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "big.csv", 10 * STRIDE + 7, ("user",))
    feeder = open_feeder(str(path), mode="cycle")
    try:
        source: Any = feeder.source
        assert len(source.marks) == 11  # one offset per STRIDE records, not one per row
        assert source.file is None  # nothing opened after the scan
        for index in (5, 3 * STRIDE + 1, 10 * STRIDE + 6, 6, 7, 0):
            assert feeder.record_at(index) == {"user": f"user{index}"}
        assert open_fds_to(path) == [str(source.file.fileno())]  # one cursor, kept open
    finally:
        feeder.close()
    assert open_fds_to(path) == []


def test_records_in_use_are_let_go_when_bots_end() -> None:
    feeders: list[Any] = []

    async def worker(bot: trio_bots.Bot) -> None:
        assert bot.data == bot.id

    async def main() -> None:
        with trio.fail_after(LIMIT):
            async with trio_bots.open_swarm(worker, 5, data=list(range(5))) as swarm:
                feeders.append(swarm._runtime.data)  # the test looks inside, on purpose

    trio.run(main)
    assert feeders[0].current == {}


def test_permutation_covers_its_range() -> None:
    for n in (1, 2, 3, 17, 256, 1000):
        perm = Permutation(n, b"k")
        assert sorted(perm(i) for i in range(n)) == list(range(n))


def test_multiline_csv_records_keep_their_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_text('user,note\nann,"two\nlines"\nbob,fine\ncid\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        open_feeder(str(path))
    assert str(info.value) == f"{path}:5: 1 fields, but the header has 2 (user,note)"
    path.write_text('user,note\nann,"two\nlines"\nbob,fine\n', encoding="utf-8")
    feeder = open_feeder(str(path), mode="cycle")
    try:
        assert [feeder.record_at(i) for i in (1, 0)] == [
            {"user": "bob", "note": "fine"},
            {"user": "ann", "note": "two\nlines"},
        ]
    finally:
        feeder.close()


# -- bad sources


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("empty.csv", "", "{path}:1: no header; the first line of a CSV file names its columns"),
        ("blank.csv", "\nann\n", "{path}:1: no header; the first line of a CSV file names its"),
        ("cols.csv", "a,b\n1,2\n1,2,3\n", "{path}:3: 3 fields, but the header has 2 (a,b)"),
        ("dupe.csv", "a,a\n1,2\n", "{path}:1: the header names column 'a' twice"),
        ("quote.csv", 'a,b\n1,"2\n', "{path}:2: bad CSV: unexpected end of data"),
        ("norows.csv", "a,b\n", "data file {path} has no records"),
        ("bad.jsonl", '{"a": 1}\n{"a": \n', "{path}:2: bad JSON: Expecting value (column 7)"),
        ("users.txt", "a\n", "data file {path} must be a CSV file (.csv) or JSON lines"),
    ],
)
def test_a_bad_file_is_one_line_with_file_and_line(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        open_feeder(str(path))
    assert str(info.value).startswith(message.format(path=path))
    assert "\n" not in str(info.value)
    assert open_fds_to(path) == []


async def idle(bot: trio_bots.Bot) -> None:
    await trio.lowlevel.checkpoint()


def test_missing_file_not_utf8_and_mode_conflicts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data file .*missing.csv does not exist"):
        open_feeder(str(tmp_path / "missing.csv"))
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"name\nJos\xe9\n")
    with pytest.raises(ConfigError, match=r"latin.csv:2: not UTF-8 text"):
        open_feeder(str(latin))
    with pytest.raises(ConfigError, match="data names mode 'cycle' but data_mode='random'"):
        open_feeder("x.csv:cycle", mode="random")
    with pytest.raises(ConfigError, match="data_mode= says how to hand out data="):
        run(idle, 1, data_mode="cycle")


def test_cli_data_flag(tmp_path: Path) -> None:
    scenario = tmp_path / "feed.py"
    scenario.write_text(
        "async def worker(bot):\n    bot.count(bot.data['user'])\n", encoding="utf-8"
    )
    write_csv(tmp_path / "users.csv", 2, ("user",))
    report = tmp_path / "run.json"
    proc = trio_bots_cmd(
        "run", "feed.py", "--bots", "3", "--data", "users.csv:cycle", "--json", str(report),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    counters = json.loads(report.read_text())["metrics"]["counters"]
    assert counters == {"user0": 2, "user1": 1}
    (tmp_path / "bad.csv").write_text("user\nann\nbob,extra\n", encoding="utf-8")
    proc = trio_bots_cmd("run", "feed.py", "--data", "bad.csv", cwd=tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    expected = "trio-bots: error: bad.csv:3: 2 fields, but the header has 1 (user)"
    assert proc.stderr.strip() == expected
    no_traceback(proc)


def test_the_docs_page_runs() -> None:
    import doctest

    page = Path(__file__).parent.parent / "docs" / "data.md"
    failed, attempted = doctest.testfile(str(page), module_relative=False)
    assert attempted > 5
    assert failed == 0
