#!/usr/bin/env bash
# Makes sure Debian's chromium is installed for the view's browser tests (Playwright drives it via
# executable_path; no browser is downloaded). Installs it with apt-get when missing (about 1.5 min
# and ~120 MB of downloads on a fresh Debian 12). Needs root, as CI has; otherwise says what to run.
set -euo pipefail
browser=/usr/bin/chromium  # where tests/view/conftest.py and the benchmark look for it
[[ -x $browser ]] && exit 0
if [[ $(id -u) != 0 ]]; then
  echo "browser: $browser is missing and this is not root: run  sudo apt-get install -y chromium" >&2
  exit 1
fi
echo "browser: installing Debian's chromium for the view's browser tests (apt-get, once)"
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
echo "browser: chromium $("$browser" --version 2>/dev/null | awk '{print $2}') installed in $(( $(date +%s) - start )) s"
