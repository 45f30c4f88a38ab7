#!/usr/bin/env bash
# Start Redis like any bench target (CONTRACT.md's flags), durable the way walkv is:
#   harness/bench/redis/run.sh --port 6379 --working-dir ./data
# The append-only file is fsync'd before every write is answered (appendfsync always),
# RDB snapshots are off, and every file goes under the working directory, so Redis
# writes to the same disk as walkv. exec: the server leads the process group the bench
# started, and is stopped by that group's PID.
set -euo pipefail
port="" dir=""
while [ $# -gt 0 ]; do
    case "$1" in
        --port=*) port="${1#--port=}" ;;
        --port) port="$2"; shift ;;
        --working-dir=*) dir="${1#--working-dir=}" ;;
        --working-dir) dir="$2"; shift ;;
        *) echo "redis target: unknown flag $1" >&2; exit 2 ;;
    esac
    shift
done
if [ -z "$port" ] || [ -z "$dir" ]; then
    echo "redis target: --port and --working-dir are required" >&2
    exit 2
fi
mkdir -p "$dir"
exec redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --appendonly yes \
    --appendfsync always --save "" --daemonize no --logfile ""
