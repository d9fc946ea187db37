#!/usr/bin/env bash
# `make containers-check`: build every image with podman, run the compose stack, the Kubernetes
# manifests (podman kube play) and the secured stack end to end, one after the other, and print a
# summary (docs/deploy.md, "The container check with podman"). Installs what is missing on a fresh
# Debian 12 (podman, runc, podman-compose, debootstrap; the venv; chromium; kustomize, built with
# Go), needs root and about 15 GB of disk (PyPI's torch is the CUDA build). Nothing here touches
# Kafka/Redis on 9092/6379: each stack's broker and Redis stay inside its network.
#
#   deploy/podman/check.sh                         build (cached after the first time) + all three
#   deploy/podman/check.sh --stacks kube           one stack (compose, kube, secure)
#   LW_CHECK_SKIP_BUILD=1 deploy/podman/check.sh   the checks on the images already built
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bash scripts/setup.sh                 # the venv: the check drives chromium through Playwright
bash scripts/browser.sh               # Debian's chromium (the view's screenshot)
bash scripts/kustomize.sh version >/dev/null   # renders the Kubernetes manifests (built once)
if [[ -z ${LW_CHECK_SKIP_BUILD:-} ]]; then
  bash deploy/podman/build.sh
fi
nice -n 5 .venv/bin/python deploy/podman/check.py "$@"
