#!/usr/bin/env bash
# Start or stop nginx and redis-server on 127.0.0.1 for CI, in a folder of their own:
#
#   eval "$(bash examples/services.sh start DIR)"   # exports TRIO_BOTS_NGINX and TRIO_BOTS_REDIS
#   bash examples/services.sh stop DIR
#
# Either command takes service names after DIR (redis, nginx); both by default.
# It runs examples/services.py (standard library only) with $PYTHON, else python3.
set -euo pipefail
exec "${PYTHON:-$(command -v python || command -v python3)}" "$(dirname "$0")/services.py" "$@"
