# Shared helpers for the local service scripts (sourced, not run).
# GPUVEC_RUN_DIR holds every service's data, pid file and log (default /tmp/gpuvec-services).
RUN_DIR=${GPUVEC_RUN_DIR:-/tmp/gpuvec-services}
PYTHON=${PYTHON:-python3}

log() { echo "[$(basename "$0")] $*" >&2; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop_pid PIDFILE [hard]: SIGTERM (or SIGKILL when hard), wait up to 30 s, then SIGKILL.
stop_pid() {
  local pidfile=$1 mode=${2:-soft} pid
  pid_alive "$pidfile" || { rm -f "$pidfile"; return 0; }
  pid=$(cat "$pidfile")
  if [ "$mode" = hard ]; then kill -9 "$pid" 2>/dev/null || true; else kill "$pid" 2>/dev/null || true; fi
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

apt_install() {  # apt_install PACKAGE...: install Debian packages when missing
  local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}
