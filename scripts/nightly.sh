#!/usr/bin/env bash
# The nightly audit, as cron should run it: a dated report in a Hive-style partition
# ($REPORTS/date=YYYY-MM-DD/liveness.parquet, so Athena, Spark or DuckDB read all nights
# as one table), a time budget that ends the run before the next one, JSON logs,
# Prometheus metrics and the settings of configs/nightly.toml. INPUT and REPORTS may be
# local or s3:// (an S3 run keeps its checkpoint in $WORK_DIR). The tool itself locks the
# report (a second run exits 2) and resumes from its checkpoint after a crash.
#
#   15 2 * * *  REPORTS=s3://audit/liveness /opt/liveness-audit/.venv/share/liveness-audit/scripts/nightly.sh s3://audit/in/today.csv
#
# The tool: $LIVENESS_AUDIT if set, else `liveness-audit` on PATH, else the one installed
# with this script (the wheel puts it in <venv>/share/liveness-audit/scripts/). Cron's PATH
# is short: set LIVENESS_AUDIT=/opt/liveness-audit/.venv/bin/liveness-audit when in doubt.
# Settings: $CONFIG (default: configs/nightly.toml beside this script, else
# /etc/liveness-audit/nightly.toml). Other variables: REPORTS, LOGS, METRICS, BUDGET,
# WORK_DIR (defaults below).
#
# Exit code: the tool's
#   0  every session answered
#   1  unresolved sessions left (a rerun resumes), or a local write failed
#   2  bad input or settings; also this script's own usage and setup errors (no INPUT, no
#      tool, a folder it cannot make), reported on stderr (cron mails it) and in the log
#   3  access or credentials refused
#   4  error rate above max_error_rate
#   5  stored evidence missing or changed (--verify-evidence)
#   6  the service contradicts the application's decision (--fail-on-disagreement)
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
logs=${LOGS:-/var/log/liveness-audit}
day=$(date -u +%Y-%m-%d)

# A setup error: one line on stderr (cron mails stderr) and, when the log folder can be
# written, one JSON event in the night's log beside the tool's; exit 2 (not the tool's 1).
die() {
    echo "nightly.sh: error: $*" >&2
    if mkdir -p "$logs" 2>/dev/null; then
        printf '{"ts": "%s", "level": "error", "event": "error", "message": "nightly.sh: %s", "exit_code": 2}\n' \
            "$(date -u +%Y-%m-%dT%H:%M:%S.000+00:00)" "${*//\"/\\\"}" >> "$logs/$day.jsonl" 2>/dev/null
    fi
    exit 2
}

[ $# -ge 1 ] || die "usage: nightly.sh INPUT [extra liveness-audit run options]"
input=$1
shift
reports=${REPORTS:-/var/lib/liveness-audit/reports}
metrics=${METRICS:-/var/lib/node_exporter/textfile/liveness_audit.prom}
budget=${BUDGET:-5h}
work=${WORK_DIR:-/var/lib/liveness-audit/work}
if [ -n "${CONFIG:-}" ]; then
    config=$CONFIG
elif [ -f "$here/configs/nightly.toml" ]; then
    config=$here/configs/nightly.toml
else
    config=/etc/liveness-audit/nightly.toml
fi
[ -r "$config" ] || die "settings file not readable: $config (set CONFIG)"
tool=${LIVENESS_AUDIT:-$(command -v liveness-audit || true)}
installed=$here/../../bin/liveness-audit  # the venv this script came with (the wheel's share/)
[ -n "$tool" ] || [ ! -x "$installed" ] || tool=$(cd "$(dirname "$installed")" && pwd)/liveness-audit
[ -n "$tool" ] || die "liveness-audit not found on PATH ($PATH); set LIVENESS_AUDIT to its path"
[ -x "$tool" ] || die "LIVENESS_AUDIT=$tool is not an executable file"
mkdir -p "$logs" 2>/dev/null || die "cannot create the log folder $logs (set LOGS)"
case $reports in s3://*) ;; *) mkdir -p "$reports" 2>/dev/null || die "cannot create $reports (set REPORTS)" ;; esac
mkdir -p "$(dirname "$metrics")" 2>/dev/null || die "cannot create the folder of $metrics (set METRICS)"

exec "$tool" run "$input" \
    --output "$reports/date={date}/liveness.parquet" --work-dir "$work" \
    --config "$config" --time-budget "$budget" \
    --log-format json --no-progress --metrics-file "$metrics" "$@" \
    >> "$logs/$day.summary.log" 2>> "$logs/$day.jsonl"
