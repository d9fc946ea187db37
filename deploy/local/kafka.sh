#!/usr/bin/env bash
# Real Apache Kafka 4.x, single-node KRaft (broker + controller in one JVM) on loopback, no Docker.
#
#   deploy/local/kafka.sh fetch    resolve the broker jars from Maven Central into .cache/kafka/libs
#   deploy/local/kafka.sh start    fetch if needed, write config, format storage, start, wait until ready
#   deploy/local/kafka.sh stop     stop the broker this script started (clean shutdown, then kill)
#   deploy/local/kafka.sh status   say whether it runs; exit 0 if it answers, 3 if not
#
# Environment: LW_KAFKA_PORT (9092), LW_KAFKA_CONTROLLER_PORT (9093), LW_KAFKA_HEAP (512m),
# LW_RUN_DIR (<repo>/.run: data, config, log, pid), LW_CACHE_DIR (<repo>/.cache: jars),
# LW_KAFKA_START_TIMEOUT (90 seconds).
#
# A second broker beside this one (deploy/local/kafka-secure.sh uses these; plain use needs none):
# LW_KAFKA_NAME (kafka: the folder under LW_RUN_DIR and the name in messages),
# LW_KAFKA_CONFIG_EXTRA (a properties file appended to the generated config; its keys win),
# LW_KAFKA_FORMAT_ARGS_FILE (extra storage-format arguments, one a line, e.g. --add-scram; read by
# the java launcher from a file, so a password in them never shows in `ps`),
# LW_KAFKA_PROBE_CAFILE (the port speaks TLS: probe it over TLS, trusting this CA).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
port=${LW_KAFKA_PORT:-9092}
cport=${LW_KAFKA_CONTROLLER_PORT:-9093}
heap=${LW_KAFKA_HEAP:-512m}
name=${LW_KAFKA_NAME:-kafka}
run_dir=${LW_RUN_DIR:-$repo/.run}/$name
libs=${LW_CACHE_DIR:-$repo/.cache}/kafka/libs
timeout=${LW_KAFKA_START_TIMEOUT:-90}
pidfile=$run_dir/kafka.pid
logfile=$run_dir/kafka.log
config_extra=${LW_KAFKA_CONFIG_EXTRA:-}
format_args=${LW_KAFKA_FORMAT_ARGS_FILE:-}
probe_ca=${LW_KAFKA_PROBE_CAFILE:-}

die() { echo "$name: $*" >&2; exit 1; }

# A real Kafka ApiVersions round trip, not just an open port: the broker answers only once serving.
# ApiVersions needs no authentication, so a SASL_SSL listener answers it too (over TLS).
answers() {
  python3 - "$port" "$probe_ca" <<'EOF' 2>/dev/null
import contextlib, socket, ssl, struct, sys
port, cafile = int(sys.argv[1]), sys.argv[2]
client = b"lw-probe"
body = struct.pack(">hhih", 18, 0, 1, len(client)) + client
with contextlib.ExitStack() as stack:
    s = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=2))
    if cafile:
        s = stack.enter_context(ssl.create_default_context(cafile=cafile).wrap_socket(s, server_hostname="127.0.0.1"))
    s.settimeout(3)
    s.sendall(struct.pack(">i", len(body)) + body)
    size = struct.unpack(">i", s.recv(4))[0]
    data = b""
    while len(data) < size:
        chunk = s.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    corr, err = struct.unpack(">ih", data[:6])
    sys.exit(0 if corr == 1 and err == 0 else 1)
EOF
}

port_taken() { python3 -c "import socket,sys; s=socket.socket(); sys.exit(0 if s.connect_ex(('127.0.0.1', $1))==0 else 1)"; }

running_pid() {
  [[ -f $pidfile ]] || return 1
  local pid; pid=$(cat "$pidfile")
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

fetch() {
  if compgen -G "$libs/kafka_2.13-*.jar" >/dev/null; then return 0; fi
  command -v mvn >/dev/null || die "Maven (mvn) is not installed: it is needed once to fetch the broker jars"
  echo "kafka: fetching broker jars from Maven Central into $libs (about 43 MB, once)"
  mkdir -p "$libs.tmp"
  if ! mvn -q -B -f "$here/kafka-pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$libs.tmp" -DincludeScope=runtime >"$run_dir/fetch.log" 2>&1; then
    tail -20 "$run_dir/fetch.log" >&2
    rm -rf "$libs.tmp"
    die "download failed (see $run_dir/fetch.log): is Maven Central reachable?"
  fi
  rm -rf "$libs" && mv "$libs.tmp" "$libs"
}

write_config() {
  cat >"$run_dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$run_dir/data
num.partitions=4
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Frames are large records: allow up to 16 MiB (clients default to 1 MiB and are raised to match).
message.max.bytes=16777216
replica.fetch.max.bytes=16777216
socket.request.max.bytes=104857600
log.retention.hours=24
log.segment.bytes=268435456
EOF
  # Later keys win when Java reads properties: the extra file may redefine listeners and so on.
  if [[ -n $config_extra ]]; then
    { echo "# from $config_extra"; cat "$config_extra"; } >>"$run_dir/server.properties"
    chmod 600 "$run_dir/server.properties"  # it may hold a password (a JAAS line)
  fi
  cat >"$run_dir/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $run_dir/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
EOF
}

start() {
  command -v java >/dev/null || die "Java is not installed (Kafka 4 needs Java 17+): apt-get install openjdk-17-jre-headless"
  local jv; jv=$(java -version 2>&1 | awk -F'"' '/version/ {print $2}' | cut -d. -f1)
  [[ ${jv:-0} -ge 17 ]] || die "Java $jv found, Kafka 4 needs 17 or newer"
  mkdir -p "$run_dir"
  if pid=$(running_pid) && answers; then echo "$name: already running (pid $pid) on 127.0.0.1:$port"; return 0; fi
  if port_taken "$port"; then
    if answers; then echo "$name: a broker not started by this script already answers on 127.0.0.1:$port; using it"; return 0; fi
    die "port $port is taken by something that is not a Kafka broker (set LW_KAFKA_PORT)"
  fi
  port_taken "$cport" && die "controller port $cport is taken (set LW_KAFKA_CONTROLLER_PORT)"
  fetch
  write_config
  local cp="$libs/*"
  if [[ ! -f $run_dir/data/meta.properties ]]; then
    local cluster_id
    # A base64 id may start with '-': pass it as --cluster-id=<id> so it is never read as an option.
    cluster_id=$(python3 -c "import base64,uuid;print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip('='))")
    # The main class and its arguments go to the java launcher as an @file: format arguments
    # from LW_KAFKA_FORMAT_ARGS_FILE may hold passwords, and a file keeps them out of `ps`.
    local argfile=$run_dir/format.args
    (umask 077
     printf '%s\n' kafka.tools.StorageTool format --standalone "--cluster-id=$cluster_id" \
       "\"--config=$run_dir/server.properties\"" >"$argfile"
     [[ -z $format_args ]] || cat "$format_args" >>"$argfile")
    java -Xmx256m -cp "$cp" -Dlog4j2.configurationFile="$run_dir/log4j2.properties" @"$argfile" \
      >"$run_dir/format.log" 2>&1 \
      || { rm -f "$argfile"; cat "$run_dir/format.log" >&2; die "formatting storage failed"; }
    rm -f "$argfile"
  fi
  local t0; t0=$(date +%s.%N)
  nohup java -Xms"$heap" -Xmx"$heap" -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$run_dir/log4j2.properties" -cp "$cp" kafka.Kafka "$run_dir/server.properties" \
    >"$logfile" 2>&1 </dev/null &
  echo $! >"$pidfile"
  local deadline=$(( $(date +%s) + timeout ))
  until answers; do
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      tail -30 "$logfile" "$run_dir/server.log" 2>/dev/null >&2
      die "broker exited during start-up (logs: $logfile, $run_dir/server.log)"
    fi
    if (( $(date +%s) > deadline )); then
      stop >/dev/null 2>&1 || true
      die "broker did not answer within ${timeout}s (logs: $run_dir/server.log)"
    fi
    sleep 0.3
  done
  printf '%s: ready on 127.0.0.1:%s (pid %s) after %.1fs; data in %s\n' \
    "$name" "$port" "$(cat "$pidfile")" "$(python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$t0" "$(date +%s.%N)")" "$run_dir/data"
}

stop() {
  local pid
  if ! pid=$(running_pid); then echo "$name: not running (no broker started by this script)"; rm -f "$pidfile"; return 0; fi
  kill -TERM "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then echo "$name: no clean stop after 20s, killing"; kill -KILL "$pid"; fi
  rm -f "$pidfile"
  echo "$name: stopped"
}

status() {
  if answers; then
    echo "$name: running on 127.0.0.1:$port${pid:+ (pid $pid)}"; return 0
  fi
  echo "$name: not running on 127.0.0.1:$port"; return 3
}

case "${1:-}" in
  fetch) mkdir -p "$run_dir"; fetch ;;
  start) start ;;
  stop) stop ;;
  status) pid=$(running_pid || true); status ;;
  *) echo "usage: $0 fetch|start|stop|status" >&2; exit 2 ;;
esac
