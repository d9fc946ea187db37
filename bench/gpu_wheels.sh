#!/usr/bin/env bash
# Fetches, on a machine with a package index, the wheels bench/gpu_check.sh needs on a GPU machine
# that has torch, numpy, OpenCV and the like but not linewatch's other dependencies, for CPython
# 3.12 on x86-64 Linux, into .whl/ (ignored by git). Carry .whl/ to the GPU machine with the tree.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p .whl
py=${PYTHON:-.venv/bin/python}
# The versions this checkout's own venv runs (tested together), not whatever is newest.
names='^(kafka-python|crc32c|redis|hiredis|structlog|pydantic|pydantic[-_]core|pydantic[-_]settings|python-dotenv|typing[-_]inspection|annotated[-_]types|prometheus[-_]client)=='
for req in $("$py" -m pip freeze | grep -iE "$names"); do
  "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d .whl "$req"
done
ls -1 .whl
