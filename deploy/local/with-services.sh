#!/usr/bin/env bash
# Run a command with local etcd and Kafka up, then stop the ones this script started —
# also when the command fails or is interrupted. Services already running are reused and
# left running. Exit status: the command's.
#   with-services.sh CMD [ARGS...]
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
export PYTHON=${PYTHON:-python3}
started=()
stop_started() {
  for svc in "${started[@]}"; do "$HERE/$svc.sh" stop || true; done
}
trap stop_started EXIT
trap 'exit 130' INT TERM
for svc in etcd kafka; do
  if "$HERE/$svc.sh" status >/dev/null 2>&1; then
    echo "[with-services] reusing the running $svc" >&2
  else
    started+=("$svc")
    "$HERE/$svc.sh" start --fresh || exit 1
  fi
done
"$@"
