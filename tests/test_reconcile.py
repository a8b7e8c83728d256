"""The reconciliation rule as a pure function: the application's decision vs the service's."""

from __future__ import annotations

from typing import Any

import pytest

from batch.reconcile import Annotator, parse_decision, reconcile
from batch.store.report import RECONCILED_FIELDS


def row(status: str | None, confidence: float | None = None) -> dict[str, Any]:
    return {"session_id": "s", "status": status, "confidence": confidence}


def check(
    status: str | None, confidence: float | None, app: object, app_conf: object = None
) -> dict[str, Any]:
    return reconcile(row(status, confidence), app, app_conf, threshold=80.0, tolerance=1.0)


@pytest.mark.parametrize(
    ("value", "decision"),
    [
        ("pass", "pass"),
        (" PASS ", "pass"),
        ("True", "pass"),
        ("1", "pass"),
        ("LIVE", "pass"),
        (True, "pass"),
        (1, "pass"),
        (1.0, "pass"),
        ("fail", "fail"),
        ("False", "fail"),
        ("0", "fail"),
        ("Spoof", "fail"),
        (False, "fail"),
        (0, "fail"),
    ],
)
def test_every_spelling_of_a_decision_in_any_case_is_understood(
    value: object, decision: str
) -> None:
    assert parse_decision(value) == (decision, None)


@pytest.mark.parametrize("value", ["maybe", "2", "passed", "✓", 7, "=cmd|' /C calc'!A0"])
def test_anything_else_is_a_per_row_error_not_an_exception(value: object) -> None:
    found = check("SUCCEEDED", 95.0, value)
    assert found["app_decision"] is None
    assert found["agrees"] is None
    assert found["disagreement"] is None
    assert "is not one of pass/fail" in found["app_decision_error"]


@pytest.mark.parametrize("value", [None, "", "   ", float("nan")])
def test_a_blank_decision_is_a_per_row_error(value: object) -> None:
    found = check("FAILED", 10.0, value)
    assert found["app_decision"] is None
    assert found["agrees"] is None
    assert found["app_decision_error"] == "no application decision (blank)"


@pytest.mark.parametrize(
    ("status", "confidence", "service"),
    [
        ("SUCCEEDED", 80.0, "pass"),  # at the threshold passes
        ("SUCCEEDED", 79.99, "fail"),  # below it fails
        ("FAILED", 99.0, "fail"),
        ("FAILED", None, "fail"),
    ],
)
def test_the_service_decides_pass_at_or_above_the_threshold(
    status: str, confidence: float | None, service: str
) -> None:
    assert check(status, confidence, service)["agrees"] is True
    other = "fail" if service == "pass" else "pass"
    found = check(status, confidence, other)
    assert found["service_decision"] == service
    assert found["agrees"] is False
    assert found["disagreement"] == "decision"


@pytest.mark.parametrize("status", ["EXPIRED", "CREATED", "IN_PROGRESS", None])
def test_sessions_without_a_result_are_unverifiable_not_disagreements(
    status: str | None,
) -> None:
    for app in ("pass", "fail"):
        found = check(status, None, app)
        assert found["service_decision"] is None
        assert found["agrees"] is None
        assert found["disagreement"] is None
        assert found["app_decision"] == app
        assert found["app_decision_error"] is None


def test_a_confidence_beyond_the_tolerance_is_a_disagreement_even_when_decisions_match() -> None:
    assert check("SUCCEEDED", 90.0, "pass", 91.0)["agrees"] is True  # exactly 1 point
    found = check("SUCCEEDED", 90.0, "pass", "91.5")
    assert found["app_confidence"] == 91.5
    assert found["agrees"] is False
    assert found["disagreement"] == "confidence"
    decided = check("SUCCEEDED", 90.0, "fail", 50.0)
    assert decided["disagreement"] == "decision"  # the decision is the first reason


@pytest.mark.parametrize(("value", "why"), [("high", "not a number"), (101, "between 0 and 100")])
def test_a_bad_confidence_is_a_per_row_error_and_the_decision_still_counts(
    value: object, why: str
) -> None:
    found = check("SUCCEEDED", 90.0, "pass", value)
    assert found["app_confidence"] is None
    assert why in found["app_decision_error"]
    assert found["agrees"] is True


def test_the_columns_reconcile_gives_are_the_report_columns() -> None:
    assert list(check("FAILED", 1.0, "fail")) == [f.name for f in RECONCILED_FIELDS]


def test_the_annotator_adds_kept_values_and_counts_each_session_once() -> None:
    kept = {"a": ("C-1", "pass"), "b": ("C-2", "maybe"), "c": ("C-3", "fail")}
    annotate = Annotator(
        kept, ["customer_ref", "decision"], report=["customer_ref"], decision="decision"
    )
    rows = [
        {"session_id": "a", "status": "SUCCEEDED", "confidence": 99.0},
        {"session_id": "b", "status": "SUCCEEDED", "confidence": 99.0},
        {"session_id": "c", "status": "SUCCEEDED", "confidence": 99.0},
        {"session_id": "other", "status": "FAILED", "confidence": 1.0},
    ]
    done = [annotate(dict(r)) for r in rows + rows[:1]]  # "a" written twice
    assert done[0]["customer_ref"] == "C-1"
    assert "decision" not in done[0]  # the decision column is read, not kept
    assert done[3] == rows[3]  # not in this input: left as it is
    counts = annotate.counts()
    assert counts is not None
    assert (counts.agreed, counts.disagreed, counts.unverifiable, counts.bad_input) == (1, 1, 1, 1)


def test_without_a_decision_column_nothing_is_reconciled() -> None:
    annotate = Annotator({"a": ("C-1",)}, ["ref"], report=["ref"])
    assert annotate({"session_id": "a", "status": "FAILED"}) == {
        "session_id": "a",
        "status": "FAILED",
        "ref": "C-1",
    }
    assert annotate.counts() is None
