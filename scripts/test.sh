#!/usr/bin/env bash
# Install liveness-audit with its test extras into a virtual environment and run the tests.
# Usage: ./scripts/test.sh [pytest args...]
#   PYTHON  the interpreter to build the venv with   [the first supported one found]
#   VENV    the venv's folder, kept between runs      [.venv]
# e.g. the newest supported Python: PYTHON=python3.13 VENV=.venv-3.13 ./scripts/test.sh -q
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/find_python.sh
. scripts/find_python.sh
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    python=$(find_python) || exit 2
    "$python" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e '.[test]'
# The HTML summary is tested in a real headless browser: Debian's chromium.
if ! command -v chromium >/dev/null 2>&1; then
    echo "test.sh: installing Debian's chromium for the HTML report test" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
exec "$VENV/bin/python" -m pytest "$@"
