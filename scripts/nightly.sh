#!/usr/bin/env bash
# The nightly audit, as cron should run it: a dated report, a time budget that ends the
# run before the next one, JSON logs, Prometheus metrics and the settings of
# configs/nightly.toml. The tool itself locks the report (a second run exits 2) and
# resumes from its checkpoint after a crash.
#
#   15 2 * * *  /opt/liveness-audit/scripts/nightly.sh /data/liveness/sessions.csv
#
# Exit code: the tool's (0 all answered, 1 unresolved left, 2 bad input or settings,
# 3 access or credentials, 4 error rate above max_error_rate).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
input=${1:?usage: nightly.sh INPUT [extra liveness-audit run options]}
shift
reports=${REPORTS:-/var/lib/liveness-audit/reports}
logs=${LOGS:-/var/log/liveness-audit}
metrics=${METRICS:-/var/lib/node_exporter/textfile_collector/liveness_audit.prom}
budget=${BUDGET:-5h}
config=${CONFIG:-$here/configs/nightly.toml}
mkdir -p "$reports" "$logs" "$(dirname "$metrics")"
day=$(date -u +%Y-%m-%d)
exec "$here/.venv/bin/liveness-audit" run "$input" \
    --output "$reports/{date}/liveness.parquet" \
    --config "$config" --time-budget "$budget" \
    --log-format json --no-progress --metrics-file "$metrics" "$@" \
    >> "$logs/$day.summary.log" 2>> "$logs/$day.jsonl"
