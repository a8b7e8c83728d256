#!/usr/bin/env bash
# The main job, end to end, on a fresh machine and without an AWS account:
# install liveness-audit into .venv, start the built-in Rekognition emulator (with a
# quota, latency and a few percent of server errors), audit a few thousand sessions
# through it, reconcile the decisions the application made (a few planted disagreements),
# settle a few sessions that are still running when the audit starts (the emulator
# creates them just before; they finish seconds later) into the same report, and show the
# summary, the disagreements, the settled sessions and where the report is.
# PYTHON: the interpreter for a new venv [the first of python3.13, python3.12, python3.11,
# python3 that is supported]; VENV: the venv's folder [.venv].
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/find_python.sh
. scripts/find_python.sh
SESSIONS=${SESSIONS:-3000}
QUOTA=${QUOTA:-100}
VENV=${VENV:-.venv}
out=demo-output
if [ ! -x "$VENV/bin/python" ]; then
    python=$(find_python) || exit 2
    "$python" -m venv "$VENV"
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

# Sessions still running when the audit starts, as in production: the emulator creates
# them now (3 started, 2 starting 3 s later); they finish 10-12 s from now.
"$VENV"/bin/python - "$url" "$out/settling.csv" "$out/settling.txt" <<'PY'
import json, sys, urllib.request
url, csv, listed = sys.argv[1:]
ids = []
for count, start, finish in ((3, 0, 10), (2, 3, 12)):
    body = json.dumps({"count": count, "start_after": start, "finish_after": finish}).encode()
    request = urllib.request.Request(f"{url}/_emulator/sessions", body, method="POST")
    with urllib.request.urlopen(request) as answer:
        ids += json.load(answer)["ids"]
open(csv, "w").write("session_id\n" + "\n".join(ids) + "\n")
open(listed, "w").write("\n".join(ids) + "\n")
PY
echo "== $(wc -l < "$out/settling.txt" | tr -d ' ') sessions start now and end 10-12 s later: audited at once," \
    "each pending one asked again every 3 s for at most 15 s"
"$VENV"/bin/liveness-audit run "$out/settling.csv" --output "$out/report.parquet" \
    --endpoint-url "$url" --rate "$QUOTA" --settle 15s --settle-interval 3s

# The main audit into the same report: the report is a ledger, the settled sessions stay.
# The emulator's fixed population has sessions that never finish (CREATED/IN_PROGRESS for
# ever): --settle 0 counts them as pending without waiting for them.
echo "== audit of $out/sessions.csv into the same report (reconciling the application's decisions)"
set +e
"$VENV"/bin/liveness-audit run "$out/sessions.csv" --output "$out/report.parquet" \
    --endpoint-url "$url" --rate "$QUOTA" --settle 0 \
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
echo "== the sessions that were running when the audit started: first and last answers"
"$VENV"/bin/python - "$out/report.parquet" "$out/settling.txt" "$url" <<'PY'
import json, sys, urllib.request
import pandas as pd
report, listed, url = sys.argv[1:]
df = pd.read_parquet(report).set_index("session_id")
ids = open(listed).read().split()
with urllib.request.urlopen(f"{url}/_emulator/stats") as answer:
    answers = json.load(answer)["ok_by_session"]  # answers the emulator gave each session
rows = df.loc[ids, ["status", "confidence", "challenge_type"]].rename(columns={"status": "last"})
# A result (or EXPIRED) is final and never asked again: each answer before the last was
# CREATED or IN_PROGRESS.
rows.insert(0, "answers", [answers.get(sid, 0) for sid in ids])
rows.insert(1, "first", rows["last"].where(rows["answers"] <= 1, "CREATED/IN_PROGRESS"))
print(rows.to_string())
settled = ((rows["answers"] > 1) & rows["last"].isin(["SUCCEEDED", "FAILED"])).sum()
print(f"{settled} of {len(ids)} answered CREATED/IN_PROGRESS at first and SUCCEEDED/FAILED at last")
PY
COLUMNS=${COLUMNS:-120} "$VENV"/bin/liveness-audit summarize "$out/report.parquet" --html "$out/summary.html" \
    > "$out/summary.txt"
echo "== the application's decisions the service contradicts (summarize; page: $out/summary.html)"
sed -n '1,/^Sessions by status/p' "$out/summary.txt" | sed '$d'
echo "== sessions by status; pass/fail by challenge type (the whole summary: $out/summary.txt)"
sed -n '/^Sessions by status/,/^Confidence, night/p' "$out/summary.txt" | sed '$d'
exit "$code"
