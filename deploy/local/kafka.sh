#!/usr/bin/env bash
# Local single-node Apache Kafka 4 broker (KRaft mode) for gpuvec's tests and demos.
#   kafka.sh start [--fresh] | stop [--hard] | restart | status | install
# Jars come from Maven Central through kafka/pom.xml (cached in kafka/libs); needs Java 17+
# and Maven (installed from Debian when missing). Env: GPUVEC_KAFKA_PORT (default 19092;
# the controller listens on port+1), GPUVEC_RUN_DIR (default /tmp/gpuvec-services).
# Data, pid and log: $GPUVEC_RUN_DIR/kafka-$PORT/ (log: kafka.log). `start` keeps data.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"
PORT=${GPUVEC_KAFKA_PORT:-19092}
CPORT=$((PORT + 1))
DIR="$RUN_DIR/kafka-$PORT"
PIDFILE="$DIR/kafka.pid"
LIBS="$HERE/kafka/libs"
JAVA_OPTS="-Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true -Dlog4j2.configurationFile=$HERE/kafka/log4j2.properties -Dkafka.logs.dir=$DIR/logs"

install() {
  command -v java >/dev/null || { log "installing Java 17 (Debian)"; apt_install openjdk-17-jre-headless; }
  if [ ! -f "$LIBS/.complete" ]; then
    command -v mvn >/dev/null || { log "installing maven (Debian)"; apt_install maven; }
    log "fetching Kafka jars from Maven Central"
    rm -rf "$LIBS"
    mvn -q -B -f "$HERE/kafka/pom.xml" dependency:copy-dependencies -DoutputDirectory="$LIBS" -DincludeScope=runtime
    touch "$LIBS/.complete"
  fi
}

healthy() { "$PYTHON" - "$PORT" <<'PY' 2>/dev/null
import sys
from confluent_kafka.admin import AdminClient
md = AdminClient({"bootstrap.servers": f"127.0.0.1:{sys.argv[1]}", "log_level": 0}).list_topics(timeout=2)
sys.exit(0 if md.brokers else 1)
PY
}

start() {
  install
  if pid_alive "$PIDFILE" && healthy; then log "kafka already up on 127.0.0.1:$PORT"; return 0; fi
  [ "${1:-}" = "--fresh" ] && rm -rf "$DIR"
  mkdir -p "$DIR/logs"
  sed -e "s|@PORT@|$PORT|g" -e "s|@CONTROLLER_PORT@|$CPORT|g" -e "s|@DATA@|$DIR/data|g" \
    "$HERE/kafka/server.properties.in" >"$DIR/server.properties"
  if [ ! -f "$DIR/data/meta.properties" ]; then
    CID=$(java $JAVA_OPTS -cp "$LIBS/*" kafka.tools.StorageTool random-uuid | tail -1)
    java $JAVA_OPTS -cp "$LIBS/*" kafka.tools.StorageTool format -t "$CID" -c "$DIR/server.properties" >>"$DIR/kafka.log" 2>&1
  fi
  nohup java $JAVA_OPTS -cp "$LIBS/*" kafka.Kafka "$DIR/server.properties" >>"$DIR/kafka.log" 2>&1 &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 120); do
    healthy && { log "kafka up on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"), log $DIR/kafka.log)"; return 0; }
    pid_alive "$PIDFILE" || break
    sleep 0.5
  done
  log "kafka failed to start; last log lines:"; tail -30 "$DIR/kafka.log" >&2
  stop_pid "$PIDFILE" hard; return 1
}

case "${1:-}" in
  install) install ;;
  start) start "${2:-}" ;;
  stop) stop_pid "$PIDFILE" "$([ "${2:-}" = --hard ] && echo hard || echo soft)"; log "kafka on :$PORT stopped" ;;
  restart) stop_pid "$PIDFILE"; start ;;
  status) if pid_alive "$PIDFILE" && healthy; then echo "kafka up on 127.0.0.1:$PORT"; else echo "kafka down"; exit 1; fi ;;
  *) echo "usage: $0 start [--fresh] | stop [--hard] | restart | status | install" >&2; exit 2 ;;
esac
