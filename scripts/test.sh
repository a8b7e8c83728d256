#!/usr/bin/env bash
# Install liveness-audit with its test extras into a virtual environment and run the tests.
# Usage: ./scripts/test.sh [pytest args...]
#   PYTHON  the interpreter to build the venv with   [the first supported one found]
#   VENV    the venv's folder, kept between runs      [.venv]
# e.g. the newest supported Python: PYTHON=python3.13 VENV=.venv-3.13 ./scripts/test.sh -q
# The quick loop (unit tests, under a minute): ./scripts/test.sh -m "not e2e"
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
./scripts/install.sh
exec "$VENV/bin/python" -m pytest "$@"
