"""Tags on measurements: how a tag set is written into a recorder key, and read back.

A measurement tagged ``{"region": "eu"}`` under ``GET /item`` is recorded
under the key ``GET /item{region=eu}``: the tags sorted by key, so one tag
set is one key, and the key survives snapshots and `merge` as any name does.
Tag keys are identifiers and values contain none of ``,{}=``. Past
`MAX_TAG_SETS` distinct tag sets on one name, the others fold into
``name{other}``, with one warning.

Example:
    >>> key = tag_key("GET /item", {"region": "eu", "tier": "gold"})
    >>> key
    'GET /item{region=eu,tier=gold}'
    >>> split_key(key), split_key("GET /item")
    (('GET /item', 'region=eu,tier=gold'), ('GET /item', ''))
    >>> parse_tags("region=eu,tier=gold")
    {'region': 'eu', 'tier': 'gold'}
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from .._errors import ConfigError

#: Distinct tag sets kept per name; the others fold into ``name{other}``.
MAX_TAG_SETS = 100
#: The tag text of the fold.
OTHER = "other"

_VALUE = r"[^,{}=]*"
_PAIR = rf"[A-Za-z_][A-Za-z0-9_]*={_VALUE}"
_TAGS = re.compile(rf"\{{((?:{_PAIR})(?:,{_PAIR})*|{OTHER})\}}\Z")
_FORBIDDEN = re.compile(r"[,{}=]")


def tag_text(tags: Mapping[str, Any]) -> str:
    """``k=v,...`` sorted by key, after checking keys and values.

    Raises:
        ConfigError: a key that is not an identifier, or a value with ``,{}=``.

    Example:
        >>> tag_text({"b": 2, "a": "x"})
        'a=x,b=2'
        >>> tag_text({"region": "eu,us"})
        Traceback (most recent call last):
        ...
        trio_bots.ConfigError: tag region='eu,us': tag values may not contain any of ,{}=
    """
    pairs = []
    for key in sorted(tags):
        value = tags[key]
        if not isinstance(key, str) or not key.isidentifier():
            raise ConfigError(f"tag key {key!r} must be an identifier, such as region")
        text = value if isinstance(value, str) else str(value)
        if _FORBIDDEN.search(text):
            raise ConfigError(f"tag {key}={text!r}: tag values may not contain any of ,{{}}=")
        pairs.append(f"{key}={text}")
    return ",".join(pairs)


def tag_key(name: str, tags: Mapping[str, Any]) -> str:
    """The recorder key of `name` with `tags` (`name` itself without tags)."""
    text = tag_text(tags)
    return f"{name}{{{text}}}" if text else name


def split_key(key: str) -> tuple[str, str]:
    """(name, tag text) of a recorder key; the tag text is ``""`` for an untagged key."""
    if key.endswith("}"):
        match = _TAGS.search(key)
        if match is not None:
            return key[: match.start()], match.group(1)
    return key, ""


def parse_tags(text: str) -> dict[str, str]:
    """The pairs of a tag text (``{}`` for ``""`` and for ``other``)."""
    if not text or text == OTHER:
        return {}
    return dict(pair.split("=", 1) for pair in text.split(","))


def contains(text: str, wanted: Mapping[str, str]) -> bool:
    """Whether the tag set `text` holds every pair of `wanted`.

    Example:
        >>> contains("region=eu,tier=gold", {"region": "eu"}), contains("", {"region": "eu"})
        (True, False)
    """
    have = parse_tags(text)
    return all(have.get(k) == v for k, v in wanted.items())


class TagKeys:
    """Recorder keys of tagged measurements, cached, with the cardinality cap.

    Args:
        warn: called once per name whose tag sets pass `MAX_TAG_SETS`.

    Example:
        >>> keys = TagKeys(print, limit=2)
        >>> [keys.key("get", {"id": n}) for n in range(3)]  # doctest: +ELLIPSIS
        'get' has more than 2 tag sets: ...
        ['get{id=0}', 'get{id=1}', 'get{other}']
    """

    def __init__(self, warn: Callable[[str], Any], *, limit: int = MAX_TAG_SETS) -> None:
        self._warn = warn
        self._limit = limit
        self._keys: dict[tuple[str, frozenset[tuple[str, Any]]], str] = {}
        self._per_name: dict[str, int] = {}

    def key(self, name: str, tags: Mapping[str, Any]) -> str:
        """The key to record `name` with `tags` under."""
        cache_key = (name, frozenset(tags.items()))
        key = self._keys.get(cache_key)
        if key is not None:
            return key
        key = tag_key(name, tags)
        if key != name:
            count = self._per_name.get(name, 0)
            if count >= self._limit:
                if count == self._limit:
                    self._per_name[name] = count + 1
                    self._warn(
                        f"{name!r} has more than {self._limit} tag sets: the others are "
                        f"recorded as {name}{{{OTHER}}}"
                    )
                return f"{name}{{{OTHER}}}"
            self._per_name[name] = count + 1
        self._keys[cache_key] = key
        return key
