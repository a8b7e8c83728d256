#!/usr/bin/env bash
# The main job, end to end, on a fresh machine and without an AWS account:
# install liveness-audit into .venv, start the built-in Rekognition emulator (with a
# quota, latency and a few percent of server errors), audit a few thousand sessions
# through it, reconcile the decisions the application made (a few planted disagreements),
# and show the summary, the disagreements and where the report is.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
SESSIONS=${SESSIONS:-3000}
QUOTA=${QUOTA:-100}
VENV=${VENV:-.venv}
out=demo-output
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
echo "== installing liveness-audit into $VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e .
rm -rf "$out" && mkdir -p "$out"

echo "== starting the emulator: $SESSIONS sessions, quota $QUOTA req/s, 20 ms latency, 2% server errors"
"$VENV"/bin/liveness-audit emulator --sessions "$SESSIONS" --seed 1 --tps "$QUOTA" \
    --latency 0.02 --error-rate 0.02 --write-input "$out/sessions.csv" --reconcile-columns \
    --url-file "$out/emulator.url" > "$out/emulator.log" 2>&1 &
emulator_pid=$!
trap 'kill "$emulator_pid" 2>/dev/null || true' EXIT
for _ in $(seq 300); do
    [ -s "$out/emulator.url" ] && break
    kill -0 "$emulator_pid" 2>/dev/null || { cat "$out/emulator.log"; exit 1; }
    sleep 0.1
done
url=$(cat "$out/emulator.url")
echo "   listening on $url"

# What real exports contain: a duplicate (upper-case), an unknown ID, a cell that is no ID.
# (Columns: session_id,customer_ref,app_decision.)
{ sed -n 2p "$out/sessions.csv" | tr 'a-f' 'A-F'
  echo "00000000-0000-4000-8000-000000000000,CUST-000000,pass"
  echo "not-a-session-id,CUST-000001,fail"; } >> "$out/sessions.csv"

# Marker credentials: the emulator needs a SigV4 signature, not a real account.
export AWS_ACCESS_KEY_ID=AKIDDEMO AWS_SECRET_ACCESS_KEY=demo-secret AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true

echo "== dry run"
"$VENV"/bin/liveness-audit run "$out/sessions.csv" --output "$out/report.parquet" --rate "$QUOTA" --dry-run
echo "== audit"
set +e
"$VENV"/bin/liveness-audit run "$out/sessions.csv" --output "$out/report.parquet" \
    --endpoint-url "$url" --rate "$QUOTA" \
    --keep-columns customer_ref --app-decision-column app_decision
code=$?
set -e
echo "== exit code $code; first rows of $out/report.parquet:"
"$VENV"/bin/python - "$out/report.parquet" <<'PY'
import sys
import pandas as pd
df = pd.read_parquet(sys.argv[1])
cols = ["session_id", "status", "confidence", "error_code", "attempts", "audit_image_count"]
print(df[cols].head(8).to_string(index=False))
print(f"... {len(df)} rows")
PY
echo "== the application's decisions the service contradicts (summarize; page: $out/summary.html)"
"$VENV"/bin/liveness-audit summarize "$out/report.parquet" --html "$out/summary.html" \
    | sed -n '1,/^Sessions by status/p' | sed '$d'
exit "$code"
