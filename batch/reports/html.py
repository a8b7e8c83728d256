"""The self-contained HTML page of ``liveness-audit summarize --html``.

The page is rendered from ``templates/summary.html.j2`` by Jinja2 with autoescaping, so
every value from a report (which may come from the input file, the service's answers or
any ``.parquet`` in a summarized folder) is escaped. Links to S3 objects are built only
for bucket names and keys that follow S3's rules, with URL quoting; anything else is
shown as text. A Content-Security-Policy forbids every script but the page's own: the
one inline script (``templates/tables.js``: sort a table by clicking a header, filter its
rows by typing) is allowed by its SHA-256, computed here when rendering, so even a value
that got through could not run; the script adds its handlers with ``addEventListener`` and
reads and writes values with ``textContent`` only.

A report of a run that reconciled the application's decisions gets, at the top, the table
of disagreements with the kept input columns and the evidence links; the "needs a look"
list includes those sessions and shows the kept columns and the decisions too.

Pending sessions (``CREATED``/``IN_PROGRESS``) are counted as their own group beside pass
and fail, and listed as needing a look: nothing is settled about them yet. A table splits
pass/fail by challenge type.
"""

from __future__ import annotations

import base64
import hashlib
import io
import ipaddress
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import jinja2
import pandas as pd
from markupsafe import Markup

from batch.reports.summary import PENDING, PENDING_LABEL, disagreements, kept_columns

if TYPE_CHECKING:
    from batch.reports.summary import Night

__all__ = ["S3Link", "render_html", "s3_link", "valid_bucket", "valid_key"]

CONSOLE = "https://s3.console.aws.amazon.com/s3/object/"

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_MAX_KEY_BYTES = 1024

_environment = jinja2.Environment(
    loader=jinja2.PackageLoader("batch.reports", "templates"),
    autoescape=True,  # every value, whatever the template's name
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


def valid_bucket(name: object) -> bool:
    """S3's bucket naming rules: 3-63 of ``[a-z0-9.-]``, no ``..``, not an IP address."""
    if not isinstance(name, str) or not _BUCKET.fullmatch(name) or ".." in name:
        return False
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return True
    return False


def valid_key(key: object) -> bool:
    """S3's key rules: 1-1024 bytes of UTF-8; no control characters (our rule for links)."""
    if not isinstance(key, str) or not key:
        return False
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates
        return False
    return size <= _MAX_KEY_BYTES and not any(unicodedata.category(c) == "Cc" for c in key)


@dataclass(frozen=True, slots=True)
class S3Link:
    """An S3 object as the page shows it: its ``s3://`` text, a console link if valid."""

    text: str
    href: str | None


def s3_link(bucket: object, key: object) -> S3Link | None:
    """The link to the object in the AWS console, or text only when a name is invalid."""
    if not _present(bucket) or not _present(key):
        return None
    text = f"s3://{bucket}/{key}"
    if not (valid_bucket(bucket) and valid_key(key)):
        return S3Link(text, None)
    return S3Link(text, f"{CONSOLE}{quote(str(bucket), safe='')}?prefix={quote(str(key), safe='')}")


def _present(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and pd.isna(value))


def _text(value: object) -> str:
    return str(value) if _present(value) else ""


def _figure_png(draw: Callable[[Any], None]) -> str:
    """A matplotlib drawing, as base64 PNG data for an embedded ``<img>``."""
    import matplotlib as mpl  # noqa: PLC0415  # only the HTML report needs matplotlib

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=100)
    draw(ax)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _script() -> tuple[str, str]:
    """The page's one script and its CSP source (``'sha256-...'`` of its exact text)."""
    loader = _environment.loader
    assert loader is not None
    text, _, _ = loader.get_source(_environment, "tables.js")
    if "</" in text:  # it would end the <script> element early
        raise AssertionError("tables.js must not contain '</'")
    digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
    return text, f"'sha256-{digest}'"


def _needs_a_look(night: Night, threshold: float) -> pd.DataFrame:
    df = night.frame
    low = (df["status"] == "SUCCEEDED") & (df["confidence"] < threshold)
    odd = df["status"].isin(["FAILED", "EXPIRED", *PENDING]) | low | df["error_code"].notna()
    if night.reconciled:
        odd |= (df["agrees"] == False) | df["app_decision_error"].notna()  # noqa: E712  # nullable
    return df[odd]


def _links(row: dict[str, Any]) -> list[S3Link]:
    links = [s3_link(row["reference_s3_bucket"], row["reference_s3_name"])]
    images = row["audit_images"]
    links += [
        s3_link(i.get("s3_bucket"), i.get("s3_name")) for i in (() if images is None else images)
    ]
    return [link for link in links if link is not None]


def _flagged(rows: Iterable[dict[str, Any]], kept: list[str]) -> list[dict[str, Any]]:
    shown = []
    for row in rows:
        confidence = row["confidence"]
        shown.append(
            {
                "session_id": _text(row["session_id"]),
                "kept": [_text(row[name]) for name in kept],
                "status": _text(row["status"]),
                "confidence": "" if not _present(confidence) else f"{confidence:.2f}",
                "error": _text(row["error_code"]),
                "app": _text(row.get("app_decision")),
                "service": _text(row.get("service_decision")),
                "disagreement": _text(row.get("disagreement") or row.get("app_decision_error")),
                "links": _links(row),
            }
        )
    return shown


def _records(frame: pd.DataFrame) -> Iterable[dict[str, Any]]:
    return ({str(k): v for k, v in row.items()} for row in frame.to_dict("records"))


def _charts(nights: list[Night], threshold: float) -> list[str]:
    night = nights[-1]
    statuses = dict(night.by_status)

    def status_chart(ax: Any) -> None:
        ax.bar(list(statuses), list(statuses.values()), color="#4c72b0")
        ax.set_title("Sessions by status")

    def histogram(ax: Any) -> None:
        ax.hist(night.frame["confidence"].dropna(), bins=20, range=(0, 100), color="#55a868")
        ax.axvline(threshold, color="#c44e52", linestyle="--", label=f"threshold {threshold:g}")
        ax.set_title("Confidence")
        ax.legend()

    def trend(ax: Any) -> None:
        days = [n.when[:10] for n in nights]
        ax.plot(days, [n.passed for n in nights], marker="o", label="pass")
        ax.plot(days, [n.failed for n in nights], marker="o", label="fail")
        ax.plot(days, [n.pending for n in nights], marker="o", label="pending")
        ax.set_title("Trend by night")
        ax.legend()

    drawings = [status_chart, histogram, *([trend] if len(nights) > 1 else [])]
    return [_figure_png(draw) for draw in drawings]


def render_html(nights: list[Night], threshold: float) -> str:
    """One self-contained page: the same facts, charts embedded, no network, one script."""
    night = nights[-1]
    p = night.provenance
    kept = kept_columns(night.frame)
    script, script_source = _script()
    return _environment.get_template("summary.html.j2").render(
        night=night,
        when=night.when,
        input_path=str(p.get("input_path")),
        tool_version=str(p.get("tool_version")),
        throttled=p.get("throttled", 0),
        threshold=f"{threshold:g}",
        percentiles=" ".join(f"p{k} {v:.2f}" for k, v in night.confidence.items()),
        statuses=[(str(name), count) for name, count in night.by_status.items()],
        pending_label=PENDING_LABEL,
        challenges=[
            (c.challenge, c.passed, c.failed, f"{100 * c.share:.1f}%") for c in night.challenges
        ],
        errors=sorted(night.errors.items()),
        flagged=_flagged(_records(_needs_a_look(night, threshold)), kept),
        charts=_charts(nights, threshold),
        kept=kept,
        reconciled=night.reconciled,
        reconciliation=night.reconciliation() if night.reconciled else {},
        disagreements=_flagged(_records(disagreements(night.frame)), kept),
        script=Markup(script),  # noqa: S704  # our own file, checked to hold no '</'
        script_source=Markup(script_source),  # noqa: S704  # quotes and base64 only
    )
