#!/usr/bin/env bash
# Create the virtual environment and install liveness-audit with its test extras, plus
# Debian's chromium for the HTML report tests. test.sh and .ci/run call it; idempotent.
#   PYTHON  the interpreter to build the venv with   [the first supported one found]
#   VENV    the venv's folder, kept between runs      [.venv]
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
    echo "install.sh: installing Debian's chromium for the HTML report test" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
