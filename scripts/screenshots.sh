#!/usr/bin/env bash
# Screenshots of the live view (docs/view-*.png) from a real pipeline: installs what is missing
# (venv, Debian's chromium), starts Kafka and Redis, then runs scripts/screenshots.py (about a
# minute, plus the demo model's training the first time).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
bash scripts/browser.sh
bash deploy/local/services.sh start
exec .venv/bin/python scripts/screenshots.py "$@"
