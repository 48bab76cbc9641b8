#!/bin/sh
# Run every benchmark with moderate sizes (about 3-4 minutes on 2 cores) and print the figures.
# Usage: benchmarks/run_all.sh [JSON_DIR]   (JSON_DIR: also write one JSON file per benchmark)
# Benchmarks are not tests: they print ratios and never fail on speed.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
python=${PYTHON:-"$repo/.venv/bin/python"}
[ -x "$python" ] || python=python3
[ -x "$here/echo_server" ] || "$here/build_echo.sh"
json() {
    if [ $# -gt 0 ] && [ -n "$1" ]; then mkdir -p "$1" && echo "--json $1/$2.json"; fi
}
out=${1:-}
cd "$repo"
echo "### bench_fanout"
"$python" "$here/bench_fanout.py" --bots 1000 --group 10 --rounds 20 --runs 5 $(json "$out" fanout)
echo; echo "### bench_pingpong"
"$python" "$here/bench_pingpong.py" --bots 100 --count 200 --runs 7 $(json "$out" pingpong)
echo; echo "### bench_idle"
"$python" "$here/bench_idle.py" --sizes 9000 5000 --runs 3 $(json "$out" idle)
echo; echo "### bench_anyio"
"$python" "$here/bench_anyio.py" --tasks 10000 --runs 5 $(json "$out" anyio)
