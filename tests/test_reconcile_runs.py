"""Reconciliation end to end: the real CLI against the emulator's planted disagreements."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from batch.emulator import EmulatorThread, write_input
from batch.emulator.population import planted_disagreements
from batch.reports.terminal import short_id
from tests.helpers import read_report, run_cli

UNKNOWN = "00000000-0000-4000-8000-000000000000"
RESULT = ("SUCCEEDED", "FAILED")
RECONCILE = ("--keep-columns", "customer_ref", "--app-decision-column", "app_decision")


def reconciled_input(
    emulator: EmulatorThread, tmp_path: Path, count: int
) -> tuple[Path, list[str]]:
    ids = list(emulator.population.ids()[:count])
    source = tmp_path / "in.csv"
    write_input(source, ids, reconcile_with=emulator.population)
    return source, ids


def test_every_planted_disagreement_is_found_and_nothing_else_is_flagged(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    source, ids = reconciled_input(emulator, tmp_path, 700)
    planted = planted_disagreements(emulator.population, ids)
    assert len(planted) >= 3  # the test means something
    report = tmp_path / "report.parquet"

    ran = run_cli("run", source, "-o", report, *RECONCILE, "--log-format", "json")

    assert ran.code == 0, ran.stderr
    rows = read_report(report)
    assert set(rows.index[rows["agrees"] == False]) == planted  # noqa: E712  # a nullable column
    assert (rows.loc[sorted(planted), "disagreement"] == "decision").all()
    has_result = rows["status"].isin(RESULT)
    assert (rows.loc[has_result & ~rows.index.isin(planted), "agrees"] == True).all()  # noqa: E712  # a nullable column
    assert rows["app_decision_error"].isna().all()
    given = pd.read_csv(source, dtype=str).set_index("session_id")
    assert (rows.loc[ids, "customer_ref"] == given.loc[ids, "customer_ref"]).all()
    assert (rows.loc[ids, "app_decision"] == given.loc[ids, "app_decision"]).all()

    agreed = int(has_result.sum()) - len(planted)
    unverifiable = len(ids) - int(has_result.sum())
    assert f"reconciled: {agreed} agree, {len(planted)} disagree, {unverifiable} unverifiable" in (
        ran.stdout
    )
    end = json.loads(ran.stderr.splitlines()[-1])
    assert end["event"] == "end"
    assert (end["agreed"], end["disagreed"], end["unverifiable"]) == (
        agreed,
        len(planted),
        unverifiable,
    )


def test_sessions_without_a_result_are_unverifiable_not_disagreements(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    ids = list(emulator.population.ids()[:200])
    source = tmp_path / "in.csv"
    with source.open("w", newline="") as f:  # the application said "pass" to every session
        out = csv.writer(f)
        out.writerow(["session_id", "app_decision"])
        out.writerows([sid, "pass"] for sid in [*ids, UNKNOWN])
    report = tmp_path / "report.parquet"

    ran = run_cli("run", source, "-o", report, "--app-decision-column", "app_decision")

    assert ran.code == 0, ran.stderr
    rows = read_report(report)
    no_result = rows[~rows["status"].isin(RESULT)]
    assert {"EXPIRED", "CREATED", "IN_PROGRESS"} <= set(no_result["status"].dropna())
    assert UNKNOWN in no_result.index  # not found
    assert no_result["agrees"].isna().all()
    assert no_result["disagreement"].isna().all()
    assert no_result["service_decision"].isna().all()
    assert (no_result["app_decision"] == "pass").all()
    assert f"{len(no_result)} unverifiable" in ran.stdout


def test_bad_decision_values_are_per_row_errors_and_the_run_goes_on(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    ids = [
        sid for sid in emulator.population.ids()[:100] if emulator.population.status(sid) in RESULT
    ]
    values = ["maybe", "", "PASSED", "=1+1", "LIVE", "0"]
    source = tmp_path / "in.csv"
    with source.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["session_id", "decision", "confidence"])
        out.writerows(
            [sid, value, "abc" if i == 5 else ""]
            for i, (sid, value) in enumerate(zip(ids, values, strict=False))
        )
    report = tmp_path / "report.parquet"

    ran = run_cli(
        "run", source, "-o", report,
        "--app-decision-column", "decision", "--app-confidence-column", "confidence",
    )  # fmt: skip

    assert ran.code == 0, ran.stderr
    rows = read_report(report).loc[ids[: len(values)]]
    bad = rows.iloc[:4]
    assert bad["app_decision"].isna().all()
    assert bad["agrees"].isna().all()
    assert "'maybe' is not one of pass/fail" in bad.iloc[0]["app_decision_error"]
    assert bad.iloc[1]["app_decision_error"] == "no application decision (blank)"
    assert rows.iloc[4]["app_decision"] == "pass"
    assert pd.isna(rows.iloc[4]["app_decision_error"])
    assert rows.iloc[5]["app_decision"] == "fail"
    assert "'abc' is not a number" in rows.iloc[5]["app_decision_error"]
    assert "4 unverifiable; 5 with a bad decision or confidence" in ran.stdout


@pytest.mark.parametrize(("flag", "code"), [((), 0), (("--fail-on-disagreement",), 6)])
def test_fail_on_disagreement_exits_6_and_the_metrics_carry_the_counts(
    emulator: EmulatorThread, tmp_path: Path, flag: tuple[str, ...], code: int
) -> None:
    source, ids = reconciled_input(emulator, tmp_path, 200)
    planted = planted_disagreements(emulator.population, ids)
    assert planted
    metrics = tmp_path / "audit.prom"

    ran = run_cli(
        "run", source, "-o", tmp_path / "r.parquet", *RECONCILE, *flag, "--metrics-file", metrics
    )

    assert ran.code == code, ran.stderr
    if code:
        assert f"contradicts the application's decision for {len(planted)} sessions" in ran.stderr
    text = metrics.read_text()
    assert f'liveness_audit_reconciled{{outcome="disagreed"}} {len(planted)}' in text
    assert f"liveness_audit_exit_code {code}" in text


def test_an_unresolved_session_outranks_a_disagreement(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    source, ids = reconciled_input(emulator, tmp_path, 200)
    planted = planted_disagreements(emulator.population, ids)
    assert planted
    emulator.script(ids[0], ["server_error"] * 3)  # this one stays unresolved

    ran = run_cli(
        "run", source, "-o", tmp_path / "r.parquet", *RECONCILE,
        "--fail-on-disagreement", "--max-attempts", "2",
    )  # fmt: skip

    assert ran.code == 1, ran.stderr
    assert f"{len(planted)} disagree" in ran.stdout  # there were disagreements: 1 still wins
    assert "1 sessions unresolved" in ran.stderr


def test_summarize_lists_the_disagreements_first_and_exports_the_new_columns(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    source, ids = reconciled_input(emulator, tmp_path, 300)
    planted = planted_disagreements(emulator.population, ids)
    report = tmp_path / "report.parquet"
    assert run_cli("run", source, "-o", report, *RECONCILE).code == 0
    table = tmp_path / "flat.csv"

    ran = run_cli("summarize", report, "--csv", table)

    assert ran.code == 0, ran.stderr
    head = ran.stdout.split("Sessions by status")[0]
    assert "app passed, service failed" in head or "app failed, service passed" in head
    given = pd.read_csv(source, dtype=str).set_index("session_id")
    for sid in planted:
        assert short_id(sid) in head  # shortened: the terminal fits 80 columns
        assert str(given.loc[sid, "customer_ref"]) in head
    assert f"{len(planted)} disagree" in " ".join(head.split())  # wrapped at 80 columns
    flat = pd.read_csv(table)
    for column in ("customer_ref", "app_decision", "service_decision", "agrees", "disagreement"):
        assert column in flat.columns
    assert set(flat.loc[flat["disagreement"] == "decision", "session_id"]) == planted


def test_summarize_counts_what_the_run_counted_when_some_rows_were_never_compared(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    source, _ = reconciled_input(emulator, tmp_path, 120)
    report = tmp_path / "report.parquet"
    earlier = tmp_path / "earlier.csv"  # sessions of an input without decisions
    write_input(earlier, list(emulator.population.ids()[200:210]))
    assert run_cli("run", earlier, "-o", report).code == 0
    with source.open("a", encoding="utf-8") as f:
        f.write("not-a-session-id,CUST-X,pass\n")  # an invalid cell: never compared

    ran = run_cli("run", source, "-o", report, *RECONCILE, "--log-format", "json")

    assert ran.code == 0, ran.stderr
    end = json.loads(ran.stderr.splitlines()[-1])
    summary = run_cli("summarize", report)
    assert summary.code == 0, summary.stderr
    counted = (
        f"{end['agreed']} agree, {end['disagreed']} disagree, {end['unverifiable']} unverifiable"
    )
    assert counted in " ".join(summary.stdout.split()), summary.stdout
