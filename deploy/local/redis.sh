#!/usr/bin/env bash
# Real Redis on loopback, no Docker: use one already answering on the port, else Debian's
# redis-server (installed with apt-get if missing) started by this script.
#
#   deploy/local/redis.sh start | stop | status
#
# Environment: LW_REDIS_PORT (6379), LW_RUN_DIR (<repo>/.run: pid, log).
#
# A second Redis beside this one (deploy/local/redis-secure.sh uses these; plain use needs none):
# LW_REDIS_NAME (redis: the folder under LW_RUN_DIR and the name in messages),
# LW_REDIS_CONF (a redis.conf read first, e.g. TLS files and an ACL file; the options here follow),
# LW_REDIS_TLS_CA (the port speaks TLS only: tls-port, no plaintext port; probed over TLS trusting this CA).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
port=${LW_REDIS_PORT:-6379}
name=${LW_REDIS_NAME:-redis}
run_dir=${LW_RUN_DIR:-$repo/.run}/$name
pidfile=$run_dir/redis.pid
conf=${LW_REDIS_CONF:-}
tls_ca=${LW_REDIS_TLS_CA:-}

die() { echo "$name: $*" >&2; exit 1; }

# PING over the Redis protocol: an open port that is not Redis does not count. NOAUTH counts
# (a Redis that wants a password answers it).
answers() {
  python3 - "$port" "$tls_ca" <<'PY' 2>/dev/null
import contextlib, socket, ssl, sys
with contextlib.ExitStack() as stack:
    s = stack.enter_context(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2))
    if sys.argv[2]:
        s = stack.enter_context(ssl.create_default_context(cafile=sys.argv[2]).wrap_socket(s, server_hostname="127.0.0.1"))
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
  echo "$name: installing Debian's redis-server"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server) \
    >"$run_dir/install.log" 2>&1 || { tail -20 "$run_dir/install.log" >&2; die "apt-get install redis-server failed"; }
}

start() {
  mkdir -p "$run_dir"
  if answers; then echo "$name: already answering on 127.0.0.1:$port; using it"; return 0; fi
  port_taken "$port" && die "port $port is taken by something that is not Redis (set LW_REDIS_PORT)"
  install
  local listen=(--port "$port")
  [[ -z $tls_ca ]] || listen=(--port 0 --tls-port "$port")
  # No persistence: linewatch keeps results with TTLs and history capped by MAXLEN.
  redis-server ${conf:+"$conf"} "${listen[@]}" --bind 127.0.0.1 --daemonize yes --pidfile "$pidfile" \
    --dir "$run_dir" --logfile "$run_dir/redis.log" --save '' --appendonly no \
    || die "redis-server failed to start (log: $run_dir/redis.log)"
  for _ in $(seq 1 50); do answers && { echo "$name: ready on 127.0.0.1:$port (pid $(cat "$pidfile"))"; return 0; }; sleep 0.1; done
  die "redis-server did not answer within 5s (log: $run_dir/redis.log)"
}

stop() {
  local pid
  if [[ -f $pidfile ]] && pid=$(cat "$pidfile") && kill -0 "$pid" 2>/dev/null; then
    # SIGTERM is a clean shutdown too; redis-cli cannot speak TLS or log in here.
    if [[ -n $tls_ca ]] || ! redis-cli -p "$port" shutdown nosave >/dev/null 2>&1; then kill -TERM "$pid"; fi
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$pidfile"; echo "$name: stopped"
  else
    echo "$name: not stopped (not started by this script)"
  fi
}

status() {
  if answers; then echo "$name: running on 127.0.0.1:$port"; return 0; fi
  echo "$name: not running on 127.0.0.1:$port"; return 3
}

case "${1:-}" in
  start) start ;; stop) stop ;; status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
