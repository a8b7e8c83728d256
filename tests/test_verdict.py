"""The verdict: one ladder gives both the exit code and the closing words of a run."""

from __future__ import annotations

from dataclasses import replace

import pytest

from batch.errors import (
    AccessError,
    CheckpointError,
    ConfigError,
    CredentialsError,
    InputError,
    OutputError,
    PublishError,
    ServerError,
    StorageError,
)
from batch.model import Reconciliation, RunSummary
from batch.store.manifest import Manifest
from batch.verdict import (
    EXIT_ACCESS,
    EXIT_DISAGREEMENT,
    EXIT_ERROR_RATE,
    EXIT_EVIDENCE,
    EXIT_OK,
    EXIT_UNRESOLVED,
    EXIT_USAGE,
    Verdict,
    exit_code_for,
    verdict,
)

CLEAN = RunSummary(
    run_id="run",
    report="r.parquet",
    sessions=10,
    unresolved=0,
    not_attempted=0,
    aborted=None,
    stop_reason=None,
    line="10 sessions",
    by_status={"SUCCEEDED": 10},
    by_error={},
    requests=10,
    throttled=0,
    wall=1.0,
    manifest=Manifest(rows=10, input_sha256="0" * 64, rows_sha256="1" * 64),
)
DENIED = AccessError("AccessDeniedException: no", code="AccessDeniedException")

ABORTED = replace(CLEAN, aborted=DENIED, not_attempted=4)
UPLOAD_DENIED = replace(CLEAN, publish_error=AccessError("upload refused", code="AccessDenied"))
UPLOAD_FAILED = replace(CLEAN, publish_error=PublishError("upload failed, kept locally"))
UNRESOLVED = replace(CLEAN, unresolved=2, by_error={"InternalServerError": 2})
STOPPED = replace(CLEAN, not_attempted=3, stop_reason="SIGTERM")
EVIDENCE = replace(CLEAN, by_error={"EvidenceMissing": 1, "EvidenceChanged": 1})
ERRORS = replace(CLEAN, by_error={"SessionNotFoundException": 3})
PENDING = replace(CLEAN, pending=2, settle=180.0, by_status={"IN_PROGRESS": 2})
NOT_WAITED = replace(CLEAN, pending=2, settle=0.0, by_status={"IN_PROGRESS": 2})


@pytest.mark.parametrize(
    ("summary", "code", "words"),
    [
        (CLEAN, EXIT_OK, None),
        (UNRESOLVED, EXIT_UNRESOLVED, "2 sessions unresolved"),
        (STOPPED, EXIT_UNRESOLVED, "run stopped (SIGTERM); 3 sessions unresolved"),
        (UPLOAD_FAILED, EXIT_UNRESOLVED, "upload failed, kept locally"),
        (ABORTED, EXIT_ACCESS, "AccessDeniedException"),
        (UPLOAD_DENIED, EXIT_ACCESS, "upload refused"),
        (EVIDENCE, EXIT_EVIDENCE, "missing or changed for 2 sessions"),
        (PENDING, EXIT_UNRESOLVED, "2 sessions still pending: a rerun asks again"),
        (NOT_WAITED, EXIT_OK, None),
    ],
)
def test_every_ending_of_a_run_has_its_code_and_its_words(
    summary: RunSummary, code: int, words: str | None
) -> None:
    ending = verdict(summary)
    assert ending.code == code
    assert exit_code_for(summary) == code
    said = ending.message if ending.error is None else str(ending.error)
    if words is None:
        assert said is None
    else:
        assert said is not None
        assert words in said


def test_too_many_errors_exit_4_only_past_the_max_error_rate() -> None:
    assert verdict(ERRORS, 0.5).code == EXIT_OK  # 3 of 10 <= 50%
    assert verdict(ERRORS).code == EXIT_OK  # no limit set
    ending = verdict(ERRORS, 0.2)
    assert ending.code == EXIT_ERROR_RATE
    assert ending.message == (
        "3 of 10 sessions ended in errors, more than --max-error-rate 0.2 allows"
    )


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ConfigError("invalid setting 'rate'"), EXIT_USAGE),
        (InputError("input not found"), EXIT_USAGE),
        (OutputError("output folder does not exist"), EXIT_USAGE),
        (CheckpointError("another input"), EXIT_USAGE),
        (DENIED, EXIT_ACCESS),
        (CredentialsError("no credentials", code="NoCredentials"), EXIT_ACCESS),
        (PublishError("kept locally"), EXIT_UNRESOLVED),
        (ServerError("InternalServerError", "boom"), EXIT_UNRESOLVED),
        (
            StorageError("cannot write the checkpoint /d/r.parquet.journal: ENOSPC", path="/d"),
            EXIT_UNRESOLVED,
        ),
    ],
)
def test_an_error_that_ended_the_command_maps_to_its_code(error: Exception, code: int) -> None:
    ending = verdict(error)
    assert ending.code == code
    assert ending.error is error
    assert exit_code_for(error) == code


def test_an_abort_outranks_unresolved_sessions_evidence_and_errors() -> None:
    everything = replace(
        CLEAN,
        aborted=DENIED,
        unresolved=1,
        by_error={"EvidenceMissing": 1, "SessionNotFoundException": 8},
    )
    ending = verdict(everything, 0.1)
    assert ending.code == EXIT_ACCESS
    assert ending.error is DENIED


def test_unresolved_sessions_outrank_evidence_and_errors() -> None:
    summary = replace(
        CLEAN, unresolved=1, by_error={"EvidenceMissing": 1, "SessionNotFoundException": 8}
    )
    ending = verdict(summary, 0.1)
    assert ending.code == EXIT_UNRESOLVED
    assert ending.message is not None
    assert "1 sessions unresolved" in ending.message


def test_sessions_still_pending_after_settling_outrank_evidence_and_join_unresolved() -> None:
    summary = replace(PENDING, unresolved=1, by_error={"EvidenceMissing": 1})
    ending = verdict(summary)
    assert ending.code == EXIT_UNRESOLVED
    assert ending.message is not None
    assert "1 sessions unresolved" in ending.message
    assert "2 sessions still pending" in ending.message


def test_missing_evidence_outranks_the_error_rate() -> None:
    summary = replace(CLEAN, by_error={"EvidenceMissing": 1, "SessionNotFoundException": 8})
    ending = verdict(summary, 0.1)
    assert ending.code == EXIT_EVIDENCE
    assert ending.message is not None
    assert "evidence" in ending.message


def test_a_refused_upload_outranks_unresolved_sessions() -> None:
    ending = verdict(replace(UPLOAD_DENIED, unresolved=3))
    assert ending.code == EXIT_ACCESS
    assert ending.error is UPLOAD_DENIED.publish_error


@pytest.mark.parametrize(
    "summary",
    [
        CLEAN,
        ABORTED,
        UPLOAD_DENIED,
        UPLOAD_FAILED,
        UNRESOLVED,
        STOPPED,
        EVIDENCE,
        ERRORS,
        PENDING,
        NOT_WAITED,
    ],
)
def test_the_words_agree_with_the_code(summary: RunSummary) -> None:
    ending = verdict(summary, 0.2)
    if ending.code == EXIT_OK:
        assert ending.message is None
        assert ending.error is None
    elif ending.error is not None:
        assert ending.message is None
        assert exit_code_for(ending.error) == ending.code  # the error's own code agrees
    else:
        assert ending.message is not None


DISAGREED = replace(
    CLEAN, reconciliation=Reconciliation(agreed=7, disagreed=2, unverifiable=1, bad_input=0)
)


def test_disagreements_exit_6_only_with_fail_on_disagreement() -> None:
    assert verdict(DISAGREED).code == EXIT_OK
    ending = verdict(DISAGREED, fail_on_disagreement=True)
    assert ending.code == EXIT_DISAGREEMENT == 6
    assert ending.message is not None
    assert "contradicts the application's decision for 2 sessions" in ending.message
    agreeing = replace(DISAGREED, reconciliation=Reconciliation(9, 0, 1, 0))
    assert verdict(agreeing, fail_on_disagreement=True).code == EXIT_OK


@pytest.mark.parametrize(
    ("worse", "code"),
    [
        ({"aborted": DENIED}, EXIT_ACCESS),
        ({"unresolved": 1}, EXIT_UNRESOLVED),
        ({"by_error": {"EvidenceChanged": 1}}, EXIT_EVIDENCE),
    ],
)
def test_an_abort_unresolved_sessions_and_evidence_outrank_disagreements(
    worse: dict[str, object], code: int
) -> None:
    summary = replace(DISAGREED, **worse)  # type: ignore[arg-type]  # fields of RunSummary
    assert verdict(summary, fail_on_disagreement=True).code == code


def test_disagreements_outrank_the_error_rate() -> None:
    summary = replace(DISAGREED, by_error={"SessionNotFoundException": 8})
    assert verdict(summary, 0.1).code == EXIT_ERROR_RATE
    assert verdict(summary, 0.1, fail_on_disagreement=True).code == EXIT_DISAGREEMENT


def test_an_error_that_is_not_the_tools_own_exits_1_with_nothing_to_show() -> None:
    # A bug (a traceback is logged where it is caught): exit 1, resumable, no error line.
    assert verdict(RuntimeError("bug")) == Verdict(EXIT_UNRESOLVED)


def test_any_settle_duration_makes_sessions_still_pending_exit_1() -> None:
    ending = verdict(replace(PENDING, settle=0.5))
    assert ending == Verdict(EXIT_UNRESOLVED, "2 sessions still pending: a rerun asks again")


def test_the_closing_line_of_an_unfinished_run_names_each_reason_once() -> None:
    assert verdict(UNRESOLVED).message == (
        "2 sessions unresolved (see error_code in the report); "
        "a rerun of the same command retries them and keeps the rest"
    )
    both = verdict(replace(STOPPED, pending=1, settle=60.0))
    assert both.message == (
        "run stopped (SIGTERM); 3 sessions unresolved (see error_code in the report); "
        "a rerun of the same command retries them and keeps the rest; "
        "1 sessions still pending: a rerun asks again"
    )


def test_the_closing_lines_of_evidence_and_disagreements_say_where_to_look() -> None:
    assert verdict(EVIDENCE).message == (
        "stored evidence is missing or changed for 2 sessions "
        "(error_code EvidenceMissing / EvidenceChanged in the report)"
    )
    disagreed = replace(CLEAN, reconciliation=Reconciliation(7, 3, 0, 0))
    assert verdict(disagreed, fail_on_disagreement=True).message == (
        "the service's answer contradicts the application's decision for 3 sessions "
        "(agrees = false in the report; liveness-audit summarize lists them first)"
    )


def test_errors_exactly_at_the_max_error_rate_are_allowed() -> None:
    half = replace(CLEAN, sessions=4, by_error={"SessionNotFoundException": 2})
    assert verdict(half, 0.5).code == EXIT_OK
    assert verdict(half, 0.49).code == EXIT_ERROR_RATE


def test_a_single_session_that_ended_in_an_error_is_over_any_rate_below_1() -> None:
    one = replace(CLEAN, sessions=1, by_error={"SessionNotFoundException": 1})
    assert verdict(one, 0.6).code == EXIT_ERROR_RATE
    assert exit_code_for(one, 0.6) == EXIT_ERROR_RATE
    assert exit_code_for(one) == EXIT_OK
