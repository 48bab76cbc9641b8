"""Feeders: test data per bot (``data=``, ``data_mode=``, ``data_per=``), as Gatling has them.

A source is a CSV file (each row a dict, the header first), a JSON-lines
file, a list, or any iterable. Before the start, `open_feeder` reads a file
once, streaming: it checks every record (a bad one is a `ConfigError` naming
``FILE:LINE``, the header being line 1), counts them, and keeps the offset of
every `STRIDE`-th record. After that, records are read lazily: a million-row
file costs memory per record in use, not per row.

Bot i gets record i by its global id (``i mod n`` in ``cycle``); with
``data_per="iteration"`` each step of ``bot.iterations()`` takes the next
record of one global sequence instead. The modes:

- ``sequential``: each record once, in order; running out fails that bot
  with ``ConfigError("FILE has only N records")`` (a `ConfigError` before the
  start when the count is known and the run is sure to need more);
- ``cycle``: round and round;
- ``random``: drawn with ``bot.random``;
- ``shuffle``: each record once, in one permutation seeded from ``seed``;
- ``shared``: every bot sees the same record (the first; per iteration, the
  record of that iteration's index).

Records are split across shards without overlap in ``sequential`` and
``shuffle`` modes: a bot's record follows its global id, and the per-iteration
sequence of shard k of n takes every n-th record from k (`shard_indices`).

Example:
    >>> feeder = open_feeder([{"user": "ann"}, {"user": "bob"}], mode="cycle")
    >>> [feeder.record_at(feeder.index_for_bot(i, None)) for i in range(3)]
    [{'user': 'ann'}, {'user': 'bob'}, {'user': 'ann'}]
    >>> feeder.close()
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from .._errors import ConfigError
from .checks import Choice
from .options import option, peak_bots

_MODE_CHECK = option("data_mode").check
assert isinstance(_MODE_CHECK, Choice)
#: The modes of ``data_mode`` (declared there); None means ``sequential``.
MODES: tuple[str, ...] = _MODE_CHECK.choices
#: The file offset of every STRIDE-th record is kept, for random access.
STRIDE = 256

_CSV_SUFFIXES = (".csv",)
_JSON_SUFFIXES = (".jsonl", ".ndjson")


def split_source(source: Any) -> tuple[Any, str | None]:
    """A ``"FILE:MODE"`` string as (FILE, MODE); anything else as (source, None).

    Example:
        >>> split_source("users.csv:cycle"), split_source("users.csv")
        (('users.csv', 'cycle'), ('users.csv', None))
    """
    if isinstance(source, str):
        path, sep, mode = source.rpartition(":")
        if sep and mode in MODES:
            return path, mode
    return source, None


def shard_indices(count: int, shard: int, shards: int) -> range:
    """The records that shard `shard` of `shards` takes in a per-iteration sequence:
    every `shards`-th one from `shard`, so shards never overlap and together take all.

    Example:
        >>> [list(shard_indices(7, k, 3)) for k in range(3)]
        [[0, 3, 6], [1, 4], [2, 5]]
    """
    if not 0 <= shard < shards:
        raise ValueError(f"shard must be in 0..{shards - 1}, got {shard}")
    return range(shard, count, shards)


class Permutation:
    """A permutation of ``range(n)`` from a key, computed per index (nothing per record):
    a four-round Feistel network over the next power of four, cycle-walked into range.

    Example:
        >>> perm = Permutation(10, b"seed")
        >>> sorted(perm(i) for i in range(10)) == list(range(10))
        True
        >>> [perm(i) for i in range(10)] == [Permutation(10, b"seed")(i) for i in range(10)]
        True
    """

    __slots__ = ("_half", "_key", "_mask", "n")

    def __init__(self, n: int, key: bytes) -> None:
        self.n = n
        bits = max(2, (n - 1).bit_length())
        self._half = (bits + 1) // 2
        self._mask = (1 << self._half) - 1
        self._key = key

    def _round(self, r: int, value: int) -> int:
        digest = hashlib.blake2b(
            value.to_bytes(8, "little"), digest_size=8, key=self._key[:64], person=bytes([r])
        ).digest()
        return int.from_bytes(digest, "little") & self._mask

    def __call__(self, index: int) -> int:
        x = index
        half, mask = self._half, self._mask
        while True:
            left, right = x >> half, x & mask
            for r in range(4):
                left, right = right, left ^ self._round(r, right)
            x = (left << half) | right
            if x < self.n:
                return x


# -- sources --------------------------------------------------------------------------------


class _Source:
    """Records by index. ``count`` is None while unknown (a lazy iterable)."""

    name = "data"
    count: int | None = None

    def get(self, index: int) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        """Close any file it holds open."""


class _ListSource(_Source):
    def __init__(self, records: list[Any]) -> None:
        self.records = records
        self.count = len(records)

    def get(self, index: int) -> Any:
        return self.records[index]


class _IterableSource(_Source):
    """A lazy iterable, read as far as the highest index asked; records not yet
    claimed wait in a dict (each index is claimed once in ``sequential`` mode)."""

    def __init__(self, iterable: Iterable[Any]) -> None:
        self.iterator: Iterator[Any] | None = iter(iterable)
        self.read = 0
        self.waiting: dict[int, Any] = {}

    def get(self, index: int) -> Any:
        if index in self.waiting:
            return self.waiting.pop(index)
        while self.iterator is not None and self.read <= index:
            try:
                record = next(self.iterator)
            except StopIteration:
                self.iterator = None
                self.count = self.read
                break
            if self.read == index:
                self.read += 1
                return record
            self.waiting[self.read] = record
            self.read += 1
        raise IndexError(index)


class _FileSource(_Source):
    """A CSV or JSON-lines file: scanned once by `scan`, then read lazily through a
    cursor that stays open (sequential reads cost one record each) and a sparse
    index of record offsets (any other read seeks to the nearest and reads on)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)
        self.csv = path.suffix.lower() in _CSV_SUFFIXES
        self.header: list[str] | None = None
        self.body = (0, 1)  # (offset, line) where the records begin
        self.marks: list[tuple[int, int]] = []  # (offset, line) of records 0, STRIDE, ...
        self.file: IO[bytes] | None = None
        self.cursor: Iterator[tuple[int, int, Any]] | None = None
        self.next_index = 0

    def where(self, line: int) -> str:
        return f"{self.name}:{line}"

    def scan(self) -> None:
        try:
            file = self.path.open("rb")
        except FileNotFoundError:
            raise ConfigError(f"data file {self.name} does not exist") from None
        except OSError as exc:
            raise ConfigError(f"data file {self.name} cannot be read: {exc.strerror}") from None
        with file:
            if self.csv:
                self._read_header(file)
            count = 0
            for count, (offset, line, _) in enumerate(self._records(file, *self.body), 1):
                if (count - 1) % STRIDE == 0:
                    self.marks.append((offset, line))
        if not count:
            raise ConfigError(f"data file {self.name} has no records")
        self.count = count

    def _read_header(self, file: IO[bytes]) -> None:
        raw = file.readline()
        text = self._decode(raw, 1).strip("\r\n")
        if not text.strip():
            raise ConfigError(
                f"{self.where(1)}: no header; the first line of a CSV file names its columns"
            )
        try:
            header = next(csv.reader([text]))
        except csv.Error as exc:
            raise ConfigError(f"{self.where(1)}: bad CSV header: {exc}") from None
        names = [name.strip() for name in header]
        empty = [i + 1 for i, name in enumerate(names) if not name]
        if empty:
            raise ConfigError(f"{self.where(1)}: column {empty[0]} of the header has no name")
        dupes = sorted({name for name in names if names.count(name) > 1})
        if dupes:
            raise ConfigError(f"{self.where(1)}: the header names column {dupes[0]!r} twice")
        self.header = names
        self.body = (len(raw), 2)

    def _decode(self, raw: bytes, line: int) -> str:
        try:
            return raw.decode("utf-8-sig" if line == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{self.where(line)}: not UTF-8 text ({exc.reason})") from None

    def _records(self, file: IO[bytes], offset: int, line: int) -> Iterator[tuple[int, int, Any]]:
        """(offset, first line, record) of each record from (offset, line) on."""
        file.seek(offset)
        if not self.csv:
            for raw in iter(file.readline, b""):
                text = self._decode(raw, line)
                if text.strip():
                    try:
                        record = json.loads(text.rstrip("\r\n"))
                    except json.JSONDecodeError as exc:
                        raise ConfigError(
                            f"{self.where(line)}: bad JSON: {exc.msg} (column {exc.colno})"
                        ) from None
                    yield offset, line, record
                offset += len(raw)
                line += 1
            return
        end = [offset, line]  # just past what the CSV reader consumed

        def lines() -> Iterator[str]:
            for raw in iter(file.readline, b""):
                text = self._decode(raw, end[1])
                end[0] += len(raw)
                end[1] += 1
                yield text

        header = self.header
        assert header is not None
        reader = csv.reader(lines(), strict=True)
        start = (offset, line)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise ConfigError(f"{self.where(start[1])}: bad CSV: {exc}") from None
            if row:
                if len(row) != len(header):
                    raise ConfigError(
                        f"{self.where(start[1])}: {len(row)} fields, but the header has "
                        f"{len(header)} ({','.join(header)})"
                    )
                yield start[0], start[1], dict(zip(header, row, strict=True))
            start = (end[0], end[1])

    def get(self, index: int) -> Any:
        if self.count is None or not 0 <= index < self.count:
            raise IndexError(index)
        if self.cursor is None or index != self.next_index:
            if self.file is None:
                self.file = self.path.open("rb")
            offset, line = self.marks[index // STRIDE]
            self.cursor = self._records(self.file, offset, line)
            for _ in range(index % STRIDE):
                next(self.cursor)
        self.next_index = index + 1
        return next(self.cursor)[2]

    def close(self) -> None:
        self.cursor = None
        if self.file is not None:
            self.file.close()
            self.file = None


def _open_source(source: Any, mode: str) -> _Source:
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        suffix = path.suffix.lower()
        if suffix not in _CSV_SUFFIXES + _JSON_SUFFIXES:
            raise ConfigError(
                f"data file {path} must be a CSV file (.csv) or JSON lines (.jsonl, .ndjson), "
                f"got {suffix or 'no suffix'}"
            )
        file_source = _FileSource(path)
        file_source.scan()
        return file_source
    if isinstance(source, list | tuple):
        records = list(source)
    elif mode == "sequential":
        return _IterableSource(source)
    else:
        records = list(source)  # the other modes need the count
    if not records:
        raise ConfigError("data has no records")
    return _ListSource(records)


# -- the feeder -----------------------------------------------------------------------------


class Feeder:
    """A run's test data: which record each bot, or each iteration, gets.

    The swarm makes one with `open_feeder` before the start and closes it at the
    end. Records in use are kept by bot id, and let go when the bot ends.

    Attributes:
        name: the file name, or ``data``.
        mode: the mode (``sequential`` ...).
        per_iteration: True for ``data_per="iteration"``.
        count: the number of records, or None while unknown (a lazy iterable).

    Example:
        >>> feeder = open_feeder(["a", "b", "c"], per="iteration", shard=1, shards=2)
        >>> feeder.take(None, index=0)  # shard 1 of 2 takes every 2nd record from 1
        'b'
        >>> feeder.take(None, index=1)
        Traceback (most recent call last):
        ...
        trio_bots.ConfigError: data has only 3 records
    """

    def __init__(
        self, source: _Source, mode: str, *, per_iteration: bool, seed: Any, shard: int, shards: int
    ) -> None:
        self.source = source
        self.name = source.name
        self.mode = mode
        self.per_iteration = per_iteration
        self.shard = shard
        self.shards = shards
        self.taken = 0
        self.current: dict[int, Any] = {}
        self.shared: Any = _NOTHING
        self.permutation: Permutation | None = None
        if mode == "shuffle":
            assert source.count is not None
            key = random.SystemRandom().randbytes(16) if seed is None else f"{seed}".encode()
            self.permutation = Permutation(source.count, key)

    @property
    def count(self) -> int | None:
        return self.source.count

    def _run_out(self) -> ConfigError:
        return ConfigError(f"{self.name} has only {self.count} records")

    def record_at(self, position: int) -> Any:
        """The record at `position` of the mode's order (after the permutation)."""
        permutation = self.permutation
        index = position if permutation is None else permutation(position)
        try:
            return self.source.get(index)
        except IndexError:
            raise self._run_out() from None

    def index_for_bot(self, bot_id: int, rng: random.Random | None) -> int:
        """The position of bot `bot_id`'s record (per-bot mode), drawn from `rng` in
        ``random`` mode."""
        mode, count = self.mode, self.count
        if mode == "shared":
            return 0
        if mode in ("sequential", "shuffle"):
            if count is not None and bot_id >= count:
                raise self._run_out()
            return bot_id
        assert count is not None
        if mode == "cycle":
            return bot_id % count
        assert rng is not None
        return rng.randrange(count)

    def for_bot(self, bot: Any) -> Any:
        """`Bot.data`: the bot's record (per bot), or its current one (per iteration,
        None before its first step). ``bot.random`` is read in ``random`` mode only."""
        bot_id = bot.id
        current = self.current
        if bot_id in current:
            return current[bot_id]
        if self.per_iteration:
            return None
        if self.mode == "shared":
            if self.shared is _NOTHING:
                self.shared = self.record_at(0)
            return self.shared
        record = current[bot_id] = self.record_at(
            self.index_for_bot(bot_id, bot.random if self.mode == "random" else None)
        )
        return record

    def take(self, bot: Any, *, index: int) -> Any:
        """The record of the next step (per iteration): of one global sequence, or drawn
        from the bot's random in ``random`` mode, or the `index`-th for ``shared``;
        it becomes the bot's current record."""
        mode = self.mode
        if mode == "random":
            assert self.count is not None
            position = bot.random.randrange(self.count)
        elif mode == "shared":
            assert self.count is not None
            position = index % self.count
        else:
            position = self.shard + self.taken * self.shards
            if mode == "cycle":
                assert self.count is not None
                position %= self.count
            elif self.count is not None and position >= self.count:
                raise self._run_out()
            self.taken += 1
        record = self.record_at(position)
        if bot is not None:
            self.current[bot.id] = record
        return record

    def release(self, bot_id: int) -> None:
        """A bot ended: let its record go."""
        self.current.pop(bot_id, None)

    def close(self) -> None:
        """Close the file, if one is open."""
        self.source.close()


_NOTHING: Any = object()


def open_feeder(
    source: Any,
    *,
    mode: str | None = None,
    per: str = "bot",
    seed: Any = None,
    shard: int = 0,
    shards: int = 1,
) -> Feeder:
    """A `Feeder` over `source`: a file is read once here, to check and count it.

    Args:
        source: a ``.csv``/``.jsonl`` path (``"FILE:MODE"`` names the mode too),
            a list, or any iterable.
        mode: one of `MODES`; None: the mode of ``"FILE:MODE"``, else ``sequential``.
        per: ``"bot"`` or ``"iteration"``.
        seed: the run's seed, for ``shuffle``.
        shard, shards: this process's shard, for a split without overlap.

    Raises:
        ConfigError: a missing or bad file (``FILE:LINE`` and what is wrong), an empty
            source, or a mode given twice, differently.

    Example:
        >>> open_feeder([], mode="cycle")
        Traceback (most recent call last):
        ...
        trio_bots.ConfigError: data has no records
    """
    source, file_mode = split_source(source)
    if file_mode is not None and mode is not None and file_mode != mode:
        raise ConfigError(f"data names mode {file_mode!r} but data_mode={mode!r}; give one")
    mode = mode or file_mode or "sequential"
    if mode not in MODES:
        raise ConfigError(f"data_mode must be one of {', '.join(MODES)}, got {mode!r}")
    return Feeder(
        _open_source(source, mode),
        mode,
        per_iteration=per == "iteration",
        seed=seed,
        shard=shard,
        shards=shards,
    )


def needed_records(size: int, options: Mapping[str, Any]) -> int | None:
    """How many records a run is sure to need in ``sequential``/``shuffle`` mode, or None
    when that depends on how it goes (a duration, an open model, a ramp).

    Example:
        >>> from trio_bots._core.options import validate_options
        >>> needed_records(4, validate_options(4, {"data": ["x"], "iterations": 3,
        ...                                        "data_per": "iteration"}))
        12
    """
    if options["data_per"] == "iteration":
        if options["iterations"] is None or options["rate"] is not None:
            return None
        if options["stages"] is not None:
            return None
        return int(size * options["iterations"])
    return peak_bots(size, options)


def feeder_for_run(
    size: int, options: Mapping[str, Any], *, shard: int = 0, shards: int = 1
) -> Feeder | None:
    """The run's `Feeder`, or None without ``data=``; checked against what the run needs.

    Raises:
        ConfigError: see `open_feeder`; or a ``sequential``/``shuffle`` source with
            fewer records than the run is sure to need.
    """
    if options["data"] is None:
        return None
    feeder = open_feeder(
        options["data"],
        mode=options["data_mode"],
        per=options["data_per"],
        seed=options["seed"],
        shard=shard,
        shards=shards,
    )
    if shards > 1 and feeder.mode == "shuffle" and options["seed"] is None:
        feeder.close()
        raise ConfigError(
            "data_mode='shuffle' over several shards needs seed=, so that every shard draws "
            "the same permutation and no record is used twice; give seed=N"
        )
    needed = needed_records(size, options)
    if feeder.mode in ("sequential", "shuffle") and feeder.count is not None and needed:
        if needed > feeder.count:
            feeder.close()
            what = "iterations" if feeder.per_iteration else "bots"
            raise ConfigError(
                f"{feeder.name} has only {feeder.count} records, but {feeder.mode} mode uses "
                f"each once and this run needs {needed} ({needed} {what}); use "
                f"data_mode='cycle', or fewer {what}"
            )
    return feeder


__all__ = ["MODES", "Feeder", "Permutation", "feeder_for_run", "open_feeder", "shard_indices"]
