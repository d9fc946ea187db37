#!/usr/bin/env bash
# Debian's mosquitto for linewatch-bridge's MQTT sink: its tests start private brokers, the demo one here.
#   bash scripts/mosquitto.sh install   apt-get install mosquitto when missing (needs root, as CI has)
#   bash scripts/mosquitto.sh start     a broker on 127.0.0.1:$LW_MQTT_PORT (18830) with a password file
#                                       made under .run/mosquitto/ (user linewatch, password in .run/mosquitto/password)
#   bash scripts/mosquitto.sh stop|status
set -euo pipefail
cd "$(dirname "$0")/.."
bin=/usr/sbin/mosquitto
run=${LW_RUN_DIR:-.run}/mosquitto
port=${LW_MQTT_PORT:-18830}

install() {
  [[ -x $bin && -x /usr/bin/mosquitto_passwd && -x /usr/bin/mosquitto_sub ]] && return 0
  if [[ $(id -u) != 0 ]]; then
    echo "mosquitto: $bin is missing and this is not root: run  sudo apt-get install -y mosquitto mosquitto-clients" >&2
    return 1
  fi
  echo "mosquitto: installing Debian's mosquitto and mosquitto-clients (apt-get, once)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends mosquitto mosquitto-clients >/dev/null  # clients: mosquitto_sub to watch
  # the package enables a system broker on 1883; linewatch starts its own on a private port
  (command -v systemctl >/dev/null && systemctl disable --now mosquitto >/dev/null 2>&1) || true
}

running() { [[ -f $run/pid ]] && kill -0 "$(cat "$run/pid")" 2>/dev/null; }

start() {
  install
  if running; then echo "mosquitto: running on 127.0.0.1:$port (pid $(cat "$run/pid"))"; return 0; fi
  mkdir -p "$run"
  chmod 700 "$run"
  [[ -s $run/password ]] || head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$run/password"
  rm -f "$run/passwd"
  mosquitto_passwd -b -c "$run/passwd" linewatch "$(cat "$run/password")" 2>/dev/null
  chmod 600 "$run/passwd" "$run/password"
  # user: as root, mosquitto would switch to user mosquitto, who cannot read $run (mode 700)
  cat > "$run/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous false
password_file $PWD/$run/passwd
persistence false
log_dest file $PWD/$run/mosquitto.log
user $(id -un)
CONF
  "$bin" -c "$run/mosquitto.conf" -d 2>>"$run/mosquitto.log" || { tail -5 "$run/mosquitto.log" >&2; return 1; }
  for _ in $(seq 50); do
    pid=$(pgrep -n -f "$bin -c $run/mosquitto.conf" || true)
    [[ -n $pid ]] && (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && { echo "$pid" > "$run/pid"; break; }
    sleep 0.1
  done
  running || { echo "mosquitto: did not start; log: $run/mosquitto.log" >&2; tail -5 "$run/mosquitto.log" >&2; return 1; }
  echo "mosquitto: 127.0.0.1:$port, user linewatch, password in $run/password"
}

stop() {
  if running; then kill "$(cat "$run/pid")"; echo "mosquitto: stopped"; fi
  rm -f "$run/pid"
}

status() { if running; then echo "mosquitto: running on 127.0.0.1:$port"; else echo "mosquitto: not running"; return 1; fi; }

case ${1:-} in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
