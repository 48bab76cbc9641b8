#!/bin/sh
# Run every benchmark with moderate sizes (about 4 minutes on 2 cores) and print the figures.
# Usage: benchmarks/run_all.sh [JSON_DIR]   (JSON_DIR: also write one JSON file per benchmark)
# Benchmarks are not tests: they print ratios and never fail on speed. A benchmark that
# crashes does not stop the others; the exit status is 1 if any crashed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
python=${PYTHON:-"$repo/.venv/bin/python"}
[ -x "$python" ] || python=python3
[ -x "$here/echo_server" ] || "$here/build_echo.sh" || exit 1
out=${1:-}
failed=""
run() {
    name=$1
    shift
    echo "### bench_$name"
    if [ -n "$out" ]; then
        mkdir -p "$out" && set -- "$@" --json "$out/$name.json"
    fi
    "$python" "$here/bench_$name.py" "$@" || failed="$failed $name"
    echo
}
cd "$repo"
run fanout --bots 1000 --group 10 --rounds 20 --runs 5
run pingpong --bots 100 --count 200 --runs 7
run idle --sizes 9000 5000 --runs 3
run anyio --tasks 10000 --runs 5
if [ -n "$failed" ]; then
    echo "crashed:$failed" >&2
    exit 1
fi
