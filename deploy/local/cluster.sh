#!/usr/bin/env bash
# A local gpuvec cluster (every role as its own process) — thin wrapper over
# `python -m gpuvec cluster`:
#   cluster.sh up [--dir D] [--query-nodes N] [--streaming-nodes M] [--data-nodes K]
#                 [--coordinators C] [--port P] [--engine KEY=VALUE]...
#   cluster.sh down [--dir D] | status [--dir D] [--json]
# `up` reuses the etcd/Kafka of etcd.sh/kafka.sh when they run and starts them otherwise
# (`down` stops only the ones it started). Env: PYTHON (default: the repo's .venv/bin/python
# when present, else python3), GPUVEC_RUN_DIR, GPUVEC_ETCD_PORT, GPUVEC_KAFKA_PORT.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
if [ -z "${PYTHON:-}" ] && [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; fi
. "$HERE/common.sh"
export PYTHON
# the checkout's gpuvec, also for the role processes when it is not installed
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
case "${1:-}" in
  up|down|status) exec "$PYTHON" -m gpuvec cluster "$@" ;;
  *) echo "usage: $0 up|down|status [--dir DIR] [options] (see: $0 up --help)" >&2; exit 2 ;;
esac
