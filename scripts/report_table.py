"""The README's table of report columns, generated from the report's schema.

Columns and types come from :data:`batch.store.report.SCHEMA` (and the ``region``
column); what each means is written here, once per row of the table. A column of the
schema without a meaning, or a meaning for a column the schema lacks, is an error, so the
table cannot drift from the schema (``tests/test_operator.py`` runs ``--check``).

    python scripts/report_table.py           # print the table
    python scripts/report_table.py --write   # put it into README.md between the markers
    python scripts/report_table.py --check   # exit 1 when README.md's table differs
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pyarrow as pa

from batch.store.report import REGION_FIELD, SCHEMA

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- report-table: start -->", "<!-- report-table: end -->"

_IMAGE = "reference_"
# (columns of one table row, meaning (null when)); in the schema's order.
MEANINGS: list[tuple[tuple[str, ...], str]] = [
    (
        ("session_id",),
        "the normalised ID; for `InvalidSessionId` rows the rejected cell, escaped and cut "
        "to 64 characters",
    ),
    (
        ("status",),
        "`CREATED`, `IN_PROGRESS`, `SUCCEEDED`, `FAILED`, `EXPIRED` (null: no answer)",
    ),
    (
        ("confidence",),
        "0-100 (null: the service returned none, e.g. not yet finished or expired)",
    ),
    (
        ("challenge_type", "challenge_version"),
        "the challenge the user was given, e.g. `FaceMovementAndLightChallenge`, and its "
        "version (null: the service named none)",
    ),
    (
        ("error_code",),
        "e.g. `SessionNotFoundException`, `InvalidSessionId`, `ThrottlingException` (last "
        "error of an unresolved session), `NotAttempted` (null: answered)",
    ),
    (("error_message",), "the service's or the tool's message"),
    (("attempts",), "calls made for this session (0: never sent)"),
    (("fetched_at",), "when the kept answer arrived (null: never sent)"),
    (("checked_at",), "when the session was last asked, by any run (null: never sent)"),
    (("checks",), "calls made for the session over all runs"),
    (
        tuple(f"{_IMAGE}bbox_{side}" for side in ("left", "top", "width", "height")),
        "face bounding box of the reference image",
    ),
    (
        tuple(f"{_IMAGE}s3_{part}" for part in ("bucket", "name", "version")),
        "where the service stored the image (sessions created with an `OutputConfig`)",
    ),
    (
        (f"{_IMAGE}bytes_size", f"{_IMAGE}bytes_sha256"),
        "size and SHA-256 of inline image bytes; the bytes themselves are not stored",
    ),
    ((f"{_IMAGE}image_path",), "the file or `s3://` object written by `--save-images`"),
    (
        (f"{_IMAGE}evidence",),
        "`--verify-evidence`: `present`, `changed`, `missing`, `forbidden` or `error` "
        "(null: not checked, or not stored in S3)",
    ),
    (
        tuple(
            f"{_IMAGE}evidence_{part}" for part in ("size", "etag", "version_id", "last_modified")
        ),
        "what S3's HEAD said about the stored object",
    ),
    (("audit_image_count",), "number of audit images"),
    (
        ("audit_images",),
        "per audit image the same fields: `bbox_*`, `s3_*`, `bytes_size`, `bytes_sha256`, "
        "`image_path`, `evidence*`",
    ),
    (
        ("region",),
        "the region the session was asked in, with `--region-column` (null without it, and "
        "for `InvalidRegion` rows); an input column named `region` kept without that option "
        "takes its place",
    ),
]


def _type(kind: pa.DataType) -> str:
    if pa.types.is_timestamp(kind):
        return "timestamp (UTC)"
    if pa.types.is_list(kind):
        return f"list<{_type(kind.value_type)}>"
    if pa.types.is_struct(kind):
        return "struct"
    return {"float64": "double"}.get(str(kind), str(kind))


def _label(names: tuple[str, ...]) -> str:
    """``a_b_left``, ``a_b_top`` -> ```a_b_left/top```: the stem said once."""
    if len(names) == 1:
        return f"`{names[0]}`"
    stem = os.path.commonprefix(list(names))  # noqa: RUF071  # of names, not of paths
    stem = stem[: stem.rfind("_") + 1]
    return "`" + "/".join([names[0], *(name.removeprefix(stem) for name in names[1:])]) + "`"


def table() -> str:
    """The markdown table; ValueError when it and the schema do not cover each other."""
    fields = {field.name: field.type for field in [*SCHEMA, REGION_FIELD]}
    described = [name for names, _ in MEANINGS for name in names]
    if sorted(described) != sorted(fields):
        missing = sorted(set(fields) - set(described))
        extra = sorted(set(described) - set(fields))
        raise ValueError(f"columns without a meaning: {missing}; meanings of no column: {extra}")
    lines = ["| column | type | meaning (null when) |", "|---|---|---|"]
    for names, meaning in MEANINGS:
        kinds = [_type(fields[name]) for name in names]
        shown = kinds[0] if len(set(kinds)) == 1 else ", ".join(kinds)
        lines.append(f"| {_label(names)} | {shown} | {meaning} |")
    return "\n".join(lines)


def _replaced(text: str, block: str) -> str:
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{block}\n{END}{tail}"


def main(argv: list[str]) -> int:
    block = table()
    text = README.read_text()
    if START not in text or END not in text:
        print(f"report_table: no {START} ... {END} in {README}", file=sys.stderr)
        return 2
    if "--write" in argv:
        README.write_text(_replaced(text, block))
    elif "--check" in argv:
        if _replaced(text, block) != text:
            print(
                "report_table: README.md's report table differs from the schema; run "
                "python scripts/report_table.py --write",
                file=sys.stderr,
            )
            return 1
    else:
        print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
