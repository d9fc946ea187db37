#!/usr/bin/env bash
# Real Redis on loopback, no Docker: use one already answering on the port, else Debian's
# redis-server (installed with apt-get if missing) started by this script.
#
#   deploy/local/redis.sh start | stop | status
#
# Environment: LW_REDIS_PORT (6379), LW_RUN_DIR (<repo>/.run: pid, log).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
port=${LW_REDIS_PORT:-6379}
run_dir=${LW_RUN_DIR:-$repo/.run}/redis
pidfile=$run_dir/redis.pid

die() { echo "redis: $*" >&2; exit 1; }

# PING over the Redis protocol: an open port that is not Redis does not count.
answers() {
  python3 - "$port" <<'PY' 2>/dev/null
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2) as s:
    s.settimeout(2)
    s.sendall(b"*1\r\n$4\r\nPING\r\n")
    reply = s.recv(64)
sys.exit(0 if reply.startswith((b"+PONG", b"-NOAUTH")) else 1)
PY
}

port_taken() { python3 -c "import socket,sys; s=socket.socket(); sys.exit(0 if s.connect_ex(('127.0.0.1', $1))==0 else 1)"; }

install() {
  command -v redis-server >/dev/null && return 0
  [[ $(id -u) -eq 0 ]] || die "redis-server is not installed and this is not root: sudo apt-get install redis-server"
  echo "redis: installing Debian's redis-server"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server) \
    >"$run_dir/install.log" 2>&1 || { tail -20 "$run_dir/install.log" >&2; die "apt-get install redis-server failed"; }
}

start() {
  mkdir -p "$run_dir"
  if answers; then echo "redis: already answering on 127.0.0.1:$port; using it"; return 0; fi
  port_taken "$port" && die "port $port is taken by something that is not Redis (set LW_REDIS_PORT)"
  install
  # No persistence: linewatch keeps results with TTLs and history capped by MAXLEN.
  redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --pidfile "$pidfile" \
    --dir "$run_dir" --logfile "$run_dir/redis.log" --save '' --appendonly no \
    || die "redis-server failed to start (log: $run_dir/redis.log)"
  for _ in $(seq 1 50); do answers && { echo "redis: ready on 127.0.0.1:$port (pid $(cat "$pidfile"))"; return 0; }; sleep 0.1; done
  die "redis-server did not answer within 5s (log: $run_dir/redis.log)"
}

stop() {
  local pid
  if [[ -f $pidfile ]] && pid=$(cat "$pidfile") && kill -0 "$pid" 2>/dev/null; then
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || kill -TERM "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$pidfile"; echo "redis: stopped"
  else
    echo "redis: not stopped (not started by this script)"
  fi
}

status() {
  if answers; then echo "redis: running on 127.0.0.1:$port"; return 0; fi
  echo "redis: not running on 127.0.0.1:$port"; return 3
}

case "${1:-}" in
  start) start ;; stop) stop ;; status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
