#!/usr/bin/env bash
# The nightly audit, as cron should run it: a dated report in a Hive-style partition
# ($REPORTS/date=YYYY-MM-DD/liveness.parquet, so Athena, Spark or DuckDB read all nights
# as one table), a time budget that ends the run before the next one, JSON logs,
# Prometheus metrics and the settings of configs/nightly.toml. INPUT and REPORTS may be
# local or s3:// (an S3 run keeps its checkpoint in $WORK_DIR). The tool itself locks the
# report (a second run exits 2) and resumes from its checkpoint after a crash.
#
#   15 2 * * *  REPORTS=s3://audit/liveness /opt/liveness-audit/scripts/nightly.sh s3://audit/in/today.csv
#
# Exit code: the tool's (0 all answered, 1 unresolved left, 2 bad input or settings,
# 3 access or credentials, 4 error rate above max_error_rate, 5 evidence missing).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
input=${1:?usage: nightly.sh INPUT [extra liveness-audit run options]}
shift
reports=${REPORTS:-/var/lib/liveness-audit/reports}
logs=${LOGS:-/var/log/liveness-audit}
metrics=${METRICS:-/var/lib/node_exporter/textfile_collector/liveness_audit.prom}
budget=${BUDGET:-5h}
config=${CONFIG:-$here/configs/nightly.toml}
work=${WORK_DIR:-/var/lib/liveness-audit/work}
case $reports in s3://*) ;; *) mkdir -p "$reports" ;; esac
mkdir -p "$logs" "$(dirname "$metrics")"
day=$(date -u +%Y-%m-%d)
exec "$here/.venv/bin/liveness-audit" run "$input" \
    --output "$reports/date={date}/liveness.parquet" --work-dir "$work" \
    --config "$config" --time-budget "$budget" \
    --log-format json --no-progress --metrics-file "$metrics" "$@" \
    >> "$logs/$day.summary.log" 2>> "$logs/$day.jsonl"
