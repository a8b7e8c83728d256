#!/usr/bin/env bash
# Mutation scores of the ledger's rule (batch/store/ledger.py) and the columnar merge
# (batch/store/merge.py) against their unit tests only (tests/test_ledger.py,
# tests/test_merge_unit.py: no emulator, no moto); configured in pyproject's [tool.mutmut].
# A clean run each time (mutants/ removed first). Prints, per module, the mutants killed
# out of all made ("no tests" and "survived" count as not killed). About 3 minutes.
#   ./scripts/mutate.sh            # both modules
#   ./scripts/mutate.sh --survivors  # and the diff of every mutant that survived
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
rm -rf mutants
"$VENV/bin/mutmut" run >mutants.log 2>&1 || { tail -20 mutants.log; exit 1; }
"$VENV/bin/mutmut" results --all true 2>/dev/null | "$VENV/bin/python" -c '
import collections, re, sys
counts = collections.defaultdict(collections.Counter)
for line in sys.stdin:
    found = re.match(r"\s*batch\.store\.(\w+)\..*__mutmut_\d+: (.+)$", line)
    if found:
        counts[found[1]][found[2].strip()] += 1
for module, c in sorted(counts.items()):
    total = sum(c.values())
    killed = c["killed"]
    rest = ", ".join(f"{n} {k}" for k, n in sorted(c.items()) if k != "killed")
    print(f"batch/store/{module}.py: {killed}/{total} killed ({100 * killed / total:.1f}%); {rest}")
'
if [[ "${1:-}" == "--survivors" ]]; then
    for m in $("$VENV/bin/mutmut" results 2>/dev/null | awk -F: '{print $1}'); do
        "$VENV/bin/mutmut" show "$m" 2>/dev/null | grep '^[-+] ' || true
        echo "--- $m"
    done
fi
