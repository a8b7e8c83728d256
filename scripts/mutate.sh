#!/usr/bin/env bash
# Mutation score of one module against the unit tests given (mutmut).
#
#   scripts/mutate.sh MODULE TEST_FILE...
#   scripts/mutate.sh batch/pacing/retry.py tests/test_retry.py
#
# mutmut mutates MODULE only and runs only the TEST_FILEs (the fast unit tests of that
# module), in a copy of the project in a temporary folder, so several modules can run at
# once and the worktree is left alone. Prints the counts, the score (killed / all, where a
# timeout counts as killed and "no tests" as survived) and the names of the survivors;
# `KEEP=1` keeps the folder (then `mutmut show NAME` there shows a mutant's diff).
# JOBS (default 2) is mutmut's --max-children; VENV the virtual environment (default .venv,
# with the test extra installed). SKIP, a regular expression: lines matching it are not
# mutated (mutmut's do_not_mutate_patterns), for arguments that change speed and never a
# result (use_threads=False): their mutants cannot be killed by a test of behaviour.
# MUTANTS, space-separated mutmut names or patterns, runs only those (one function's, e.g.
# MUTANTS='batch.pacing.limiter.xǁLimiterǁ_grow__mutmut_*'): a change is scored in
# minutes where the whole module takes an hour; the counts are then of those mutants only.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$root/.venv}
if [ $# -lt 2 ]; then
    echo "usage: scripts/mutate.sh MODULE TEST_FILE..." >&2
    exit 2
fi
module=$1
shift
for path in "$module" "$@"; do
    if [ ! -f "$root/$path" ]; then
        echo "mutate.sh: no such file: $path (give paths from the project's root)" >&2
        exit 2
    fi
done
if [ ! -x "$venv/bin/mutmut" ]; then
    echo "mutate.sh: no mutmut in $venv: pip install -e '.[test]'" >&2
    exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/mutate.XXXXXX")
if [ -z "${KEEP:-}" ]; then
    trap 'rm -rf "$work"' EXIT
fi
# The project as committed plus the worktree's changes, without caches or venvs.
(cd "$root" && tar -c --exclude=__pycache__ --exclude=.venv\* --exclude=mutants \
    batch tests pyproject.toml) | tar -x -C "$work"
# This run's configuration replaces any [tool.mutmut] of pyproject.toml (mutmut reads it
# there first, then setup.cfg), in the copy only.
"$venv/bin/python" - "$work/pyproject.toml" "${SKIP:-}" "$module" "$@" <<'EOF'
import json
import re
import sys
from pathlib import Path

path, skip, module, tests = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
text = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", "", path.read_text())
text += f"""
[tool.mutmut]
source_paths = ["batch/"]
only_mutate = [{json.dumps(module)}]
also_copy = ["tests", "pyproject.toml"]
pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]
pytest_add_cli_args_test_selection = {json.dumps(tests)}
do_not_mutate_patterns = {json.dumps([skip] if skip else [])}
"""
path.write_text(text)
EOF

cd "$work"
read -r -a only <<<"${MUTANTS:-}" # word-split, never globbed here: mutmut matches them
"$venv/bin/mutmut" run --max-children "${JOBS:-2}" ${only[@]+"${only[@]}"} >"$work/run.log" 2>&1 || {
    echo "mutate.sh: mutmut failed; its log:" >&2
    tail -40 "$work/run.log" >&2
    exit 1
}
"$venv/bin/mutmut" export-cicd-stats >/dev/null
"$venv/bin/python" - "$module" <<'EOF'
import json
import sys

stats = json.load(open("mutants/mutmut-cicd-stats.json"))
killed = stats["killed"] + stats["timeout"]
total = killed + stats["survived"] + stats["no_tests"] + stats.get("suspicious", 0)
print(f"{sys.argv[1]}: {killed}/{total} killed ({100 * killed / max(total, 1):.1f}%)", end="")
print(f"  [killed {stats['killed']}, timeout {stats['timeout']}, survived {stats['survived']},"
      f" no tests {stats['no_tests']}, suspicious {stats.get('suspicious', 0)}]")
EOF
"$venv/bin/mutmut" results 2>/dev/null | grep -v -e ": killed" -e ": not checked" || true
