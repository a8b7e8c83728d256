#!/usr/bin/env bash
# Build the liveness-audit wheel for production with `python -m build` (PEP 517; the
# backend, hatchling, is fetched into an isolated build environment by the package index).
# Usage: ./scripts/build-wheel.sh [OUTDIR]       (default: dist/)
#   PYTHON  the interpreter [the first of python3.13, 3.12, 3.11, python3 that is supported]
# The wheel installs anywhere with pip or pipx; see "Install for production" in the README.
# Prints the wheel's path on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/find_python.sh
. scripts/find_python.sh
python=$(find_python) || exit 2
outdir=${1:-dist}
if ! "$python" -m build --version >/dev/null 2>&1; then
    tools=$(mktemp -d)
    trap 'rm -rf "$tools"' EXIT
    "$python" -m venv "$tools"
    "$tools/bin/python" -m pip install --quiet "build>=1.2"
    python=$tools/bin/python
fi
"$python" -m build --wheel --outdir "$outdir" . >&2
version=$("$python" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
ls "$outdir"/liveness_audit-"$version"-*.whl
