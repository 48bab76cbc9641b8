#!/bin/sh
# Build the C epoll echo server the benchmarks use as their target.
# Usage: benchmarks/build_echo.sh [path/to/echo_server.c]
# The default source is ../shared/bench/echo_server.c relative to the repository root.
# The binary, benchmarks/echo_server, is git-ignored: never commit it.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
src=${1:-"$repo/../shared/bench/echo_server.c"}
if [ ! -f "$src" ]; then
    echo "build_echo.sh: no echo server source at $src; pass its path as the first argument" >&2
    exit 2
fi
cc -O2 -o "$here/echo_server" "$src"
echo "built $here/echo_server from $src"
