#!/usr/bin/env bash
# One command from a fresh clone: install, start Kafka and Redis, prepare a default model, and run
# synthetic cameras -> Kafka -> worker -> Redis + alerts with a live summary. Services keep running
# afterwards (stop them with: make stop). Extra arguments go to `linewatch-demo` (see --help).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
bash deploy/local/services.sh start
for arg in "$@"; do [[ $arg == --bridge ]] && bash scripts/mosquitto.sh start; done  # MQTT broker for the bridge
exec .venv/bin/linewatch-demo "$@"
