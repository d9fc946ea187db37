#!/usr/bin/env bash
# The whole test suite on the real services: installs what is missing (venv, chromium), starts Kafka and Redis,
# runs pytest, stops the services it started. Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh || exit 1
bash scripts/browser.sh || exit 1  # Debian's chromium for the view's browser tests
bash scripts/cameras.sh || exit 1  # Debian's GStreamer RTSP server and Aravis for the camera tests
bash scripts/mosquitto.sh install || exit 1  # Debian's mosquitto for the bridge's MQTT tests (tests/bridge)
kafka_was_up=0; redis_was_up=0
bash deploy/local/kafka.sh status >/dev/null 2>&1 && kafka_was_up=1
bash deploy/local/redis.sh status >/dev/null 2>&1 && redis_was_up=1
cleanup() {
  [[ $kafka_was_up == 1 ]] || bash deploy/local/kafka.sh stop
  [[ $redis_was_up == 1 ]] || bash deploy/local/redis.sh stop
}
trap cleanup EXIT
bash deploy/local/services.sh start || exit 1
# tests/security starts its own secured Kafka and Redis (deploy/local/secure.sh, private ports and
# folder) unless this checkout's are running, and stops them at the end.
# The tests reach the services the scripts started, wherever their ports were moved.
export LW_KAFKA_BOOTSTRAP=${LW_KAFKA_BOOTSTRAP:-127.0.0.1:${LW_KAFKA_PORT:-9092}}
export LW_REDIS_URL=${LW_REDIS_URL:-redis://127.0.0.1:${LW_REDIS_PORT:-6379}/0}
.venv/bin/python -m pytest "$@"
