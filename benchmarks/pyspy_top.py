"""Summarise a py-spy ``--format raw`` profile: the top functions by own and total samples.

Run:
    .venv/bin/py-spy record -r 500 -f raw -o /tmp/fanout.raw -- \\
        .venv/bin/python benchmarks/bench_fanout.py --only bots-group
    .venv/bin/python benchmarks/pyspy_top.py /tmp/fanout.raw [--top 25] [--match trio_bots]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r":\d+\)$")


def _function(frame: str) -> str:
    """'send (trio_bots/_core/messaging.py:412)' -> 'send (trio_bots/_core/messaging.py)'."""
    frame = _LINE.sub(")", frame.strip())
    return re.sub(r"\(.*/(site-packages|lib/python3\.\d+|main)/", "(", frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path, help="a py-spy raw (collapsed stacks) file")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", default="", help="only list functions whose text has this")
    args = parser.parse_args()

    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in args.profile.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [_function(f) for f in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    print(f"{samples} samples")
    for title, counter in (("own", own), ("total (inclusive)", total)):
        print(f"\n== top {args.top} by {title} samples")
        shown = 0
        for frame, count in counter.most_common():
            if args.match not in frame:
                continue
            print(f"  {100 * count / samples:5.1f}%  {frame}")
            shown += 1
            if shown >= args.top:
                break


if __name__ == "__main__":
    main()
