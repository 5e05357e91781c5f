#!/usr/bin/env bash
# Local single-member etcd for gpuvec's tests and demos, on loopback.
#   etcd.sh start [--fresh] | stop [--hard] | restart | status | install
# Env: GPUVEC_ETCD_PORT (client, default 23790), GPUVEC_ETCD_PEER_PORT (default port+10),
#      GPUVEC_RUN_DIR (default /tmp/gpuvec-services). Data, pid and log live in
#      $GPUVEC_RUN_DIR/etcd-$PORT/ (log: etcd.log). `start` keeps existing data unless --fresh.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"
PORT=${GPUVEC_ETCD_PORT:-23790}
PEER=${GPUVEC_ETCD_PEER_PORT:-$((PORT + 10))}
DIR="$RUN_DIR/etcd-$PORT"
PIDFILE="$DIR/etcd.pid"

install() { command -v etcd >/dev/null || { log "installing etcd-server (Debian)"; apt_install etcd-server; }; }

healthy() { "$PYTHON" - "$PORT" <<'PY' 2>/dev/null
import sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=1) as r:
    sys.exit(0 if b'"health":"true"' in r.read().replace(b" ", b"") else 1)
PY
}

start() {
  install
  if pid_alive "$PIDFILE" && healthy; then log "etcd already up on 127.0.0.1:$PORT"; return 0; fi
  [ "${1:-}" = "--fresh" ] && rm -rf "$DIR"
  mkdir -p "$DIR"
  # etcd may be enabled as a system service by the Debian package; ours is separate.
  ETCD_UNSUPPORTED_ARCH=${ETCD_UNSUPPORTED_ARCH:-} nohup etcd --name gpuvec-$PORT \
    --data-dir "$DIR/data" \
    --listen-client-urls "http://127.0.0.1:$PORT" --advertise-client-urls "http://127.0.0.1:$PORT" \
    --listen-peer-urls "http://127.0.0.1:$PEER" --initial-advertise-peer-urls "http://127.0.0.1:$PEER" \
    --initial-cluster "gpuvec-$PORT=http://127.0.0.1:$PEER" \
    --auto-compaction-retention 0 --quota-backend-bytes 2147483648 \
    >>"$DIR/etcd.log" 2>&1 &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 60); do
    healthy && { log "etcd up on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"), log $DIR/etcd.log)"; return 0; }
    pid_alive "$PIDFILE" || break
    sleep 0.5
  done
  log "etcd failed to start; last log lines:"; tail -20 "$DIR/etcd.log" >&2
  stop_pid "$PIDFILE" hard; return 1
}

case "${1:-}" in
  install) install ;;
  start) start "${2:-}" ;;
  stop) stop_pid "$PIDFILE" "$([ "${2:-}" = --hard ] && echo hard || echo soft)"; log "etcd on :$PORT stopped" ;;
  restart) stop_pid "$PIDFILE"; start ;;
  status) if pid_alive "$PIDFILE" && healthy; then echo "etcd up on 127.0.0.1:$PORT"; else echo "etcd down"; exit 1; fi ;;
  *) echo "usage: $0 start [--fresh] | stop [--hard] | restart | status | install" >&2; exit 2 ;;
esac
