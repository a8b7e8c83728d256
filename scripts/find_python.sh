# Sourced by demo.sh and build-wheel.sh: find_python prints the first supported Python.
# $PYTHON when set; else the first of python3.13, python3.12, python3.11, python3 on PATH
# that is 3.11, 3.12 or 3.13. Exit 2 with a message when there is none.
find_python() {
    local candidate
    for candidate in ${PYTHON:-python3.13 python3.12 python3.11 python3}; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "no supported Python found (3.11, 3.12 or 3.13): install one, or set PYTHON" >&2
    return 2
}
