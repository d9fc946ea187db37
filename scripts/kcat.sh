#!/usr/bin/env bash
# Makes sure Debian's kcat is installed: tests/security/test_clients.py checks it against the
# secured broker (deploy/local/kcat.sh runs it there). Installs it with apt-get when missing (a few
# seconds, about 2 MB on Debian 12: kcat and the librdkafka it links). Needs root, as CI has;
# otherwise says what to run.
set -euo pipefail
command -v kcat >/dev/null && exit 0
if [[ $(id -u) != 0 ]]; then
  echo "kcat: kcat is missing and this is not root: run  sudo apt-get install -y kcat" >&2
  exit 1
fi
echo "kcat: installing Debian's kcat for the secured-broker client tests (apt-get, once)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends kcat >/dev/null
echo "kcat: $(kcat -V 2>/dev/null | sed -n 's/^Version \([^ ]*\).*librdkafka \([0-9.]*\).*/\1 (librdkafka \2)/p') installed"
