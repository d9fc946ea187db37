#!/usr/bin/env bash
# Creates .venv (Python 3.11+) and installs linewatch with its test extras. Re-running is cheap:
# pip runs again only when pyproject.toml changed since the last install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
py=${PYTHON:-python3}
"$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || { echo "setup: Python 3.11 or newer is needed ($("$py" --version 2>&1) found)" >&2; exit 1; }
[[ -x .venv/bin/python ]] || "$py" -m venv .venv
stamp=.venv/.linewatch-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
  echo "setup: installing linewatch and its dependencies into .venv (torch is large: a few minutes the first time)"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[dev]"
  touch "$stamp"
fi
