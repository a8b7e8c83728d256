#!/usr/bin/env bash
# Mutation score of one module against the tests that should pin it down (mutmut 3).
#
#   ./scripts/mutate.sh batch/pacing/limiter.py tests/test_limiter.py tests/test_answered.py
#
# Runs in a scratch copy of the tracked files (so the work tree, and anyone else's mutmut
# run, is left alone), with a [tool.mutmut] section naming only MODULE and only TESTS,
# then prints the mutants that survived and the score: killed / (all - skipped), a mutant
# that makes the tests time out counting as killed (the tests caught it, by their timeout).
# KEEP=1 keeps the copy (its path is printed) to look at a survivor with `mutmut show`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
    echo "usage: $0 MODULE.py TEST_FILE..." >&2
    exit 2
fi
module=$1
shift
root=$PWD
mkdir -p .mutate  # in the work tree (git-ignored): no one else's clean-up of /tmp reaches it
work=$(mktemp -d "$root/.mutate/run.XXXXXX")
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT
git ls-files -z | xargs -0 cp --parents -t "$work"
rm -rf "$work/.mutate"
cd "$work"
{
    echo
    echo "[tool.mutmut]"
    echo "source_paths = [\"batch\"]"
    echo "only_mutate = [\"$module\"]"
    printf 'pytest_add_cli_args_test_selection = ['
    printf '"%s", ' "$@"
    echo ']'
    echo 'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]'
} >>pyproject.toml
"$root/.venv/bin/mutmut" run >mutmut.log 2>&1 || { tail -30 mutmut.log; exit 1; }
"$root/.venv/bin/mutmut" results --all true >results.txt 2>&1 || true
grep -vE ': (killed|timeout)$' results.txt | grep ':' || true
# results lists one "name: status" line per mutant
total=$(grep -c ': ' results.txt || true)
killed=$(grep -cE ': (killed|timeout)$' results.txt || true)
skipped=$(grep -cE ': (skipped|not checked)$' results.txt || true)
echo "$module: killed $killed of $((total - skipped)) mutants" \
    "($(python3 -c "print(f'{100 * $killed / max(1, $total - $skipped):.1f}')")%)"
[ "${KEEP:-0}" = 1 ] && echo "copy kept in $work"
exit 0
