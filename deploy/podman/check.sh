#!/usr/bin/env bash
# `make containers-check`: build every image with podman, run the compose stack end to end, print
# a summary (docs/deploy.md, "The container check with podman"). Installs what is missing on a fresh Debian 12
# (podman, runc, podman-compose, debootstrap; the venv; chromium), needs root and about 15 GB of disk
# (PyPI's torch is the CUDA build). Nothing here touches Kafka/Redis on 9092/6379: the stack's own
# broker and Redis stay inside its network.
#
#   deploy/podman/check.sh              build (cached after the first time) + the compose check
#   LW_CHECK_SKIP_BUILD=1 deploy/podman/check.sh   the check on the images already built
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bash scripts/setup.sh                 # the venv: the check drives chromium through Playwright
bash scripts/browser.sh               # Debian's chromium (the view's screenshot)
if [[ -z ${LW_CHECK_SKIP_BUILD:-} ]]; then
  bash deploy/podman/build.sh
fi
nice -n 5 .venv/bin/python deploy/podman/check.py "$@"
