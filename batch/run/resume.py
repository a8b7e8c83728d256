"""What a run starts from: the settings that shape its rows, and the work left to do.

* :func:`row_header`: the journal's header, what shaped the rows (the input's identity,
  ``verify_evidence``, ``save_images``, the service actually used: the Rekognition
  endpoint (the setting, else ``AWS_ENDPOINT_URL_REKOGNITION``) normalised and without
  credentials, and the region as the client resolves it, a profile's config included).
  A resume under another endpoint or region (:data:`MUST_MATCH`) is refused: its answers
  came from another service (``--merge-journal`` merges them on purpose).
* :func:`plan_work`: given the ledger of kept answers, which sessions of the input are
  asked (pending, unanswered, absent; every one with ``--fresh``), which only get a local
  step redone (:class:`~batch.engine.local.LocalSteps`), and which are left as they are
  (settled).
* :class:`OutputRecord`: the report path an unfinished run of an ``--output`` template
  (``{time}``, ``{date}``) rendered, kept in the work directory per template and input,
  so the same command resumes that report instead of starting a new one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt

from batch.aws.session import resolved_region
from batch.config import Settings, public_url
from batch.engine.local import LocalSteps
from batch.engine.progress import Tally
from batch.logs import LOGGER
from batch.store.files import atomic_write, private_dir
from batch.store.inputs import Plan
from batch.store.ledger import Brief
from batch.store.locations import Location, parse_s3_url
from batch.store.row import Row

__all__ = ["MUST_MATCH", "OutputRecord", "Work", "identity", "plan_work", "row_header"]

log = logging.getLogger(LOGGER)

MUST_MATCH = ("endpoint_url", "region")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def identity(plan: Plan) -> dict[str, str]:
    """The input, as read: its SHA-256, column and format."""
    return {"input_sha256": plan.sha256, "input_column": plan.column, "input_format": plan.format}


def service_endpoint(settings: Settings) -> str | None:
    """The Rekognition endpoint in use, normalised (scheme and host lower-case, no default
    port, no trailing slash, no credentials): one service, one spelling."""
    endpoint = settings.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_REKOGNITION")
    endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        return None
    parts = urlsplit(public_url(endpoint.strip()))
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    port = parts.port if parts.port not in (None, _DEFAULT_PORTS.get(scheme)) else None
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))


def row_header(plan: Plan, settings: Settings) -> dict[str, Any]:
    """What shapes the rows of a run of ``plan`` under ``settings`` (the journal header)."""
    shown = service_endpoint(settings)
    region = resolved_region(settings)
    return {
        **identity(plan),
        "verify_evidence": settings.verify_evidence,
        "save_images": settings.save_images,
        "endpoint_url": shown,
        "region": region,
    }


@dataclass
class Work:
    """The sessions a run asks and those it only redoes locally (``redo``). The asked
    ones are marked by their place in the plan's IDs (``ids``; a byte each, none while
    they are the first ``asks`` places; a ``str`` made as each is taken:
    :meth:`sessions`)."""

    ids: Sequence[str] = ()
    asked: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, bool))
    redo: dict[str, Row] = field(default_factory=dict)
    asks: int = 0  # how many are marked

    def ask(self, place: int) -> None:
        """Ask the session at ``place`` (ascending: every one so far, no mask made)."""
        if not len(self.asked):
            if place == self.asks:
                self.asks += 1
                return
            self.asked = np.zeros(len(self.ids), bool)
            self.asked[: self.asks] = True
        self.asked[place] = True
        self.asks += 1

    def __len__(self) -> int:
        return self.asks + len(self.redo)

    def sessions(self, unless: npt.NDArray[np.bool_] | None = None) -> Iterator[str]:
        """The sessions to redo, then those to ask, in the plan's order; ``unless``: the
        places of the asked ones to leave out (the finished ones, at the run's end)."""
        yield from list(self.redo)
        if self.asks == len(self.ids) and unless is None:  # every one: taken in batches
            yield from self.ids
            return
        for start in range(0, len(self.ids), _BATCH):
            end = min(start + _BATCH, len(self.ids))
            chosen = self.asked[start:end] if len(self.asked) else _first(self.asks, start, end)
            if unless is not None:
                chosen = chosen & ~unless[start:end]
            rows = np.flatnonzero(chosen) + start
            yield from (self.ids[row] for row in rows.tolist())


_BATCH = 4096


def _first(count: int, start: int, end: int) -> npt.NDArray[np.bool_]:
    """Places ``start`` to ``end`` of a mask of the first ``count`` places."""
    return np.arange(start, end) < count


class Wanted(Collection[str]):
    """The sessions whose rows a run reads from the report: the plan's IDs (in columns,
    not copied into a set) and a few others (invalid cells, the journal's)."""

    def __init__(self, planned: Sequence[str], others: set[str]) -> None:
        self._planned = planned
        self._others = {value for value in others if value not in planned}

    def __contains__(self, value: object) -> bool:
        return value in self._others or value in self._planned

    def __iter__(self) -> Iterator[str]:
        yield from self._planned
        yield from self._others

    def __len__(self) -> int:
        return len(self._planned) + len(self._others)


def _upgraded(previous: Mapping[str, Any] | None, header: Mapping[str, Any]) -> list[str]:
    """The row-shaping steps on now that were off when the journal's rows were made."""
    if previous is None:
        return []
    names = {"verify_evidence": "--verify-evidence", "save_images": "--save-images"}
    return [flag for key, flag in names.items() if header.get(key) and not previous.get(key)]


class Known(Protocol):
    """The kept answers a run starts from (:class:`~batch.engine.record.Recorder`)."""

    def brief(self, session_id: str) -> Brief | None: ...

    def rows(self, session_ids: Sequence[str]) -> list[Row]: ...


def plan_work(  # the run's inputs, named
    plan: Plan,
    ledger: Known,
    local: LocalSteps,
    tally: Tally,
    *,
    fresh: bool,
    resumed: Sequence[str],
    previous: Mapping[str, Any] | None,
    header: Mapping[str, Any],
    journaled: Collection[str] = (),
) -> Work:
    """Who is asked, who only gets a local step, who is left as kept (counted: kept
    from the report, or resumed from the checkpoint when ``journaled`` holds it).

    ``resumed``: the sessions of an unfinished run whose journal ``previous`` heads; with
    a row-shaping step on now that was off then, their rows get that step.
    """
    upgraded = _upgraded(previous, header)
    upgrade = set(resumed) if upgraded else set()
    work = Work(plan.valid)
    steps = local.evidence_store is not None or local.saver is not None
    for place, session_id in enumerate(plan.valid):
        row = ledger.brief(session_id)  # not get(): no moments read back from the spill
        again = session_id in upgrade
        if row is not None and steps and (again or row.steps_due):
            whole = ledger.rows([session_id])[0]  # the whole row: images, evidence
            if local.due(whole, upgrade=again):
                work.redo[session_id] = whole
                continue
        if row is None or fresh or not row.settled:
            work.ask(place)
        else:
            from_report = session_id not in journaled
            tally.replayed(row.status, row.error_code, from_report=from_report)
    if upgraded:
        log.warning(
            "the unfinished run's answers were made without %s: bringing them up to date "
            "locally (%d sessions; image bytes only from the spool)",
            " and ".join(upgraded),
            sum(1 for sid in work.redo if sid in upgrade),
        )
    return work


class OutputRecord:
    """The report path an unfinished run rendered from an ``--output`` template."""

    def __init__(self, work_dir: Path, template: str, plan: Plan, *, mode: int) -> None:
        key = json.dumps([template, identity(plan)], sort_keys=True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:24]
        self.path = work_dir / "outputs" / f"{digest}.json"
        self.template = template
        self._mode = mode

    def recorded(self) -> Location | None:
        """The path the unfinished run wrote, if one was recorded."""
        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))["output"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        text = str(saved)
        return parse_s3_url(text, "--output") if text.startswith("s3://") else Path(text)

    def remember(self, target: Location) -> None:
        private_dir(self.path.parent, mode=self._mode)
        with atomic_write(self.path, mode=self._mode, what="output record") as f:
            f.write(json.dumps({"template": self.template, "output": str(target)}).encode())

    def forget(self) -> None:
        self.path.unlink(missing_ok=True)
