"""The application's decisions against the service's record: :func:`reconcile`.

An application called ``GetFaceLivenessSessionResults`` when each check happened and
decided pass or fail; the input may carry that decision (``--app-decision-column``) and
the confidence it saw (``--app-confidence-column``). :func:`reconcile` compares them with
the report row of the service's answer, as a pure function:

- the service's decision is ``pass`` when the status is ``SUCCEEDED`` and the confidence
  is at or above ``threshold``, ``fail`` when the status is ``FAILED`` or the confidence
  is below; any other row (expired, not found, pending, unresolved) has no decision;
- ``agrees`` is true or false where both decisions are known, null otherwise
  ("unverifiable": counted as its own group, never as a disagreement);
- ``disagreement`` says why it does not agree: ``decision``, or ``confidence`` when the
  decisions match but both confidences are known and differ by more than ``tolerance``.

A decision the application wrote in a form not understood (see :data:`DECISIONS`) is
that row's ``app_decision_error``, never an exception. :class:`Annotator` applies this to
every report row as it is written, with the row's kept input columns, and counts.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from batch.model import Reconciliation, Status

__all__ = ["AGREED", "DECISIONS", "DISAGREED", "UNVERIFIABLE", "Annotator", "reconcile"]

DECISIONS = {
    **dict.fromkeys(("pass", "true", "1", "live"), "pass"),
    **dict.fromkeys(("fail", "false", "0", "spoof"), "fail"),
}
AGREED, DISAGREED, UNVERIFIABLE = "agreed", "disagreed", "unverifiable"
_SHOWN = 40  # characters of a bad value quoted in app_decision_error


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def parse_decision(value: object) -> tuple[str | None, str | None]:
    """``(decision, error)``: ``pass``/``fail``, or None and why not."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None, "no application decision (blank)"
    if isinstance(value, bool):
        return ("pass" if value else "fail"), None
    text = str(value).strip().lower()
    if isinstance(value, float) and value in (0.0, 1.0):
        text = str(int(value))
    if not text:
        return None, "no application decision (blank)"
    decision = DECISIONS.get(text)
    if decision is None:
        return None, (
            f"application decision {_shown(value)} is not one of pass/fail, true/false, "
            "1/0, live/spoof"
        )
    return decision, None


def parse_confidence(value: object) -> tuple[float | None, str | None]:
    """``(confidence, error)``: a number from 0 to 100, or None and why not."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, None
    try:
        number = float(value)  # type: ignore[arg-type]  # any cell; failures handled below
    except (TypeError, ValueError):
        return None, f"application confidence {_shown(value)} is not a number"
    if math.isnan(number):
        return None, None
    if not 0 <= number <= 100:
        return None, f"application confidence {_shown(value)} is not between 0 and 100"
    return number, None


def service_decision(row: Mapping[str, Any], threshold: float) -> str | None:
    """``pass``/``fail`` by the service's answer in ``row``; None when it has no result."""
    status, confidence = row.get("status"), row.get("confidence")
    if status == Status.FAILED:
        return "fail"
    if status != Status.SUCCEEDED:
        return None
    if confidence is not None and not math.isnan(confidence) and confidence < threshold:
        return "fail"
    return "pass"


def reconcile(
    row: Mapping[str, Any],
    app_decision: object,
    app_confidence: object = None,
    *,
    threshold: float,
    tolerance: float,
) -> dict[str, Any]:
    """The reconciliation columns of one report ``row`` (see the module docstring)."""
    decision, error = parse_decision(app_decision)
    confidence, confidence_error = parse_confidence(app_confidence)
    service = service_decision(row, threshold)
    agrees: bool | None = None
    disagreement: str | None = None
    if decision is not None and service is not None:
        theirs = row.get("confidence")
        known = confidence is not None and theirs is not None and not math.isnan(theirs)
        if decision != service:
            disagreement = "decision"
        elif known and abs(confidence - theirs) > tolerance:  # type: ignore[operator]  # known
            disagreement = "confidence"
        agrees = disagreement is None
    errors = [e for e in (error, confidence_error) if e]
    return {
        "app_decision": decision,
        "app_decision_error": "; ".join(errors) or None,
        "app_confidence": confidence,
        "service_decision": service,
        "agrees": agrees,
        "disagreement": disagreement,
    }


class Annotator:
    """Completes report rows: the kept input columns and, when asked, the reconciliation.

    ``kept`` maps each valid session ID to its values of ``columns`` (the plan's, in
    order); ``report`` names the columns the report carries (``--keep-columns``),
    ``decision``/``confidence`` the application's. A row of a session not in ``kept`` is
    left as it is. Outcomes are counted per session, so a row written twice counts once.
    """

    def __init__(  # the plan's columns and the reconciliation's settings, named
        self,
        kept: Mapping[str, tuple[Any, ...]],
        columns: Sequence[str],
        *,
        report: Sequence[str] = (),
        decision: str | None = None,
        confidence: str | None = None,
        threshold: float = 80.0,
        tolerance: float = 1.0,
    ) -> None:
        self._kept, self._report = kept, tuple(report)
        self._index = {name: i for i, name in enumerate(columns)}
        self._decision, self._confidence = decision, confidence
        self._threshold, self._tolerance = threshold, tolerance
        self._outcomes: dict[str, str] = {}
        self._bad = 0

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        values = self._kept.get(row["session_id"])
        if values is None:
            return row
        row.update({name: values[self._index[name]] for name in self._report})
        if self._decision is not None:
            app_confidence = values[self._index[self._confidence]] if self._confidence else None
            found = reconcile(
                row,
                values[self._index[self._decision]],
                app_confidence,
                threshold=self._threshold,
                tolerance=self._tolerance,
            )
            row.update(found)
            self._count(row["session_id"], found)
        return row

    def _count(self, session_id: str, found: Mapping[str, Any]) -> None:
        agrees = found["agrees"]
        outcome = UNVERIFIABLE if agrees is None else AGREED if agrees else DISAGREED
        if session_id not in self._outcomes and found["app_decision_error"]:
            self._bad += 1
        self._outcomes[session_id] = outcome

    def counts(self) -> Reconciliation | None:
        """The run's reconciliation counts; None when it reconciles nothing."""
        if self._decision is None:
            return None
        tally = Counter(self._outcomes.values())
        return Reconciliation(
            agreed=tally[AGREED],
            disagreed=tally[DISAGREED],
            unverifiable=tally[UNVERIFIABLE],
            bad_input=self._bad,
        )
