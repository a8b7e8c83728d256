"""Reports as one SQL table, out of core: DuckDB over the Parquet files as they are.

Summaries, exports and ``liveness-audit sql`` read any number of nights through here, in
bounded memory: DuckDB streams the files' row groups (spilling to ``spill`` past
``memory_limit``), nothing is loaded whole. Each report file is one :class:`ReportFile`
(its night, threshold and run facts from the footer); the connection gets

- ``liveness_audit``: every row of every file, the report's columns in one order
  (a column a file lacks reads as null; kept input columns of differing types as text),
  plus ``date`` (the night), ``threshold`` and ``report`` (where the row came from);
- the statements of ``queries.sql`` (``audit``: outcome, direction, reason), the file
  analysts run on Athena too.

A night is the report's ``date=YYYY-MM-DD`` partition (as ``run --output
.../date={date}/...`` and ``follow`` write them), else the date its run started (UTC).
The threshold is the one given (``--threshold``), else the one the report's run used (its
provenance), else the default.

DuckDB was measured against pyarrow datasets on the same nights (docs/BENCHMARKS.md):
both stream, DuckDB does the grouping, top-N and export in one engine with a memory cap
and spills, and the same SQL is what analysts run on Athena.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from batch.errors import InputError
from batch.store.manifest import read_manifest
from batch.store.report import RECONCILED_FIELDS, REGION_FIELD, SCHEMA, read_provenance

__all__ = [
    "QUERIES",
    "REPORT_FIELDS",
    "UNDATED",
    "Pin",
    "ReportFile",
    "Reports",
    "named_queries",
    "night_of",
    "read_report_file",
    "sql_type",
]

QUERIES = Path(__file__).with_name("queries.sql")
_FD_PATHS = Path("/proc/self/fd")
UNDATED = "(undated)"  # a report with neither a date= partition nor a run date
_PARTITION = re.compile(r"(?:^|/)date=(\d{4}-\d{2}-\d{2})(?=/|$)")
_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
_SQL_TYPES = {
    pa.string(): "VARCHAR",
    pa.float64(): "DOUBLE",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.bool_(): "BOOLEAN",
    pa.timestamp("us", tz="UTC"): "TIMESTAMP WITH TIME ZONE",
}
REPORT_FIELDS: tuple[pa.Field, ...] = (*SCHEMA, REGION_FIELD, *RECONCILED_FIELDS)
_KNOWN = frozenset(f.name for f in REPORT_FIELDS)


@dataclass(frozen=True, slots=True)
class ReportFile:
    """One report file and the facts of its run (from its Parquet footer)."""

    path: Path  # readable here (a staged copy of an S3 object)
    source: str  # as the user named it: a path or s3:// URL
    night: str
    threshold: float
    threshold_source: str
    run_id: str
    started_at: str
    finished_at: str
    input_path: str
    input_sha256: str
    rows: int
    rows_sha256: str
    tool_version: str


def night_of(source: str, provenance: dict[str, Any]) -> str:
    """The ``date=`` partition in ``source``, else the run's start date, else UNDATED."""
    found = _PARTITION.findall(source.replace("\\", "/"))
    if found:
        return str(found[-1])
    started = str(provenance.get("started_at") or "")
    return started[:10] if re.match(r"\d{4}-\d{2}-\d{2}", started) else UNDATED


def read_report_file(
    path: Path, *, source: str | None = None, threshold: float | None, default: float
) -> ReportFile:
    """The facts of the report at ``path``; InputError if it is not a liveness-audit report.

    ``threshold`` is the one given (it wins), ``default`` the one used when the report's
    provenance records none.
    """
    source = source or str(path)
    try:
        provenance = read_provenance(path)
        manifest = read_manifest(path)
    except InputError as exc:
        raise InputError(f"{source} is not a liveness-audit report: {exc}") from None
    settings = provenance.get("settings")
    recorded = settings.get("threshold") if isinstance(settings, dict) else None
    if threshold is not None:
        value, said = threshold, "given (--threshold)"
    elif isinstance(recorded, int | float) and not isinstance(recorded, bool):
        value, said = float(recorded), "the report's run (provenance)"
    else:
        value, said = default, "the default (the report records none)"
    return ReportFile(
        path=path,
        source=source,
        night=night_of(source, provenance),
        threshold=value,
        threshold_source=said,
        run_id=str(provenance.get("run_id") or ""),
        started_at=_utc(provenance.get("started_at")),
        finished_at=_utc(provenance.get("finished_at")),
        input_path=str(provenance.get("input_path") or ""),
        input_sha256=manifest.input_sha256,
        rows=manifest.rows,
        rows_sha256=manifest.rows_sha256,
        tool_version=str(provenance.get("tool_version") or ""),
    )


def sql_type(kind: pa.DataType) -> str:
    """The DuckDB type of a simple Arrow type of the report (VARCHAR for others)."""
    return _SQL_TYPES.get(kind, "VARCHAR")


def _utc(value: object) -> str:
    """A provenance time as ISO 8601 with ``Z`` (its ``+00:00`` spelled so); "" if none."""
    text = str(value or "")
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


def named_queries(text: str | None = None) -> dict[str, str]:
    """The statements of ``queries.sql`` (or ``text``) by their ``-- name:``."""
    text = QUERIES.read_text(encoding="utf-8") if text is None else text
    parts = _NAME.split(text)
    return {
        name: body.strip().rstrip(";") for name, body in zip(parts[1::2], parts[2::2], strict=True)
    }


def literal(text: str) -> str:
    """``text`` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def quoted(name: str) -> str:
    """``name`` as a SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


class Reports:
    """A DuckDB connection with ``liveness_audit`` and ``audit`` over report files.

    Files are ordered by night, then by source; ``nights`` lists the nights in order.
    """

    def __init__(
        self,
        files: Sequence[ReportFile],
        *,
        spill: Path,
        memory_limit: str = "512MB",
        threads: int = 2,
        pins: Sequence[Pin] = (),
    ) -> None:
        """``pins``: the files held open for this engine, closed with it."""
        self._pins = list(pins)
        if not files:
            raise InputError("no reports to read")
        self.files = sorted(files, key=lambda f: (f.night == UNDATED, f.night, f.source))
        self.nights = list(dict.fromkeys(f.night for f in self.files))
        config: dict[str, str | bool | int | float | list[str]] = {
            "memory_limit": memory_limit,
            "threads": threads,
        }
        self.db = duckdb.connect(":memory:", config=config)
        self.db.execute(f"SET temp_directory = {literal(str(spill))}")
        self.db.execute("SET TimeZone = 'UTC'")
        columns = [self._columns(f) for f in self.files]
        self.kept = _kept(columns)
        selects = [self._select(f, c) for f, c in zip(self.files, columns, strict=True)]
        self.db.execute("CREATE VIEW liveness_audit AS " + "\nUNION ALL ".join(selects))
        self.db.execute(named_queries()["audit"])

    def _columns(self, file: ReportFile) -> dict[str, str]:
        """The file's columns and their DuckDB types, read from its footer."""
        try:
            found = self.db.execute(f"DESCRIBE SELECT * FROM {_scan(file)}").fetchall()  # noqa: S608  # a quoted literal
        except duckdb.Error as exc:
            raise InputError(f"{file.source} is not a liveness-audit report: {exc}") from None
        return {str(row[0]): str(row[1]) for row in found}

    def _select(self, file: ReportFile, columns: dict[str, str]) -> str:
        picked = []
        for field in REPORT_FIELDS:
            if field.name in columns:
                picked.append(quoted(field.name))
            else:
                kind = sql_type(field.type)
                picked.append(f"CAST(NULL AS {kind}) AS {quoted(field.name)}")
        for name, kind in self.kept:
            if name not in columns:
                picked.append(f"CAST(NULL AS {kind}) AS {quoted(name)}")
            elif columns[name] != kind:
                picked.append(f"CAST({quoted(name)} AS {kind}) AS {quoted(name)}")
            else:
                picked.append(quoted(name))
        picked += [
            f"{literal(file.night)} AS {quoted('date')}",
            f"CAST({file.threshold!r} AS DOUBLE) AS threshold",
            f"{literal(file.source)} AS report",
        ]
        return f"SELECT {', '.join(picked)} FROM {_scan(file)}"  # noqa: S608  # quoted names

    def rows(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """All rows of a query (meant for aggregates and LIMITed lists)."""
        try:
            return self.db.execute(sql, list(params)).fetchall()
        except duckdb.Error as exc:
            raise InputError(f"cannot read the reports: {exc}") from None

    def result(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Column names and rows of a user's query; InputError (one line) if it fails."""
        try:
            cursor = self.db.execute(sql)
            names = [str(d[0]) for d in cursor.description or ()]
            return names, cursor.fetchall()
        except duckdb.Error as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(f"the query failed: {first}") from None

    def batches(
        self, sql: str, params: Sequence[object] = (), *, size: int = 50_000
    ) -> Iterator[pa.RecordBatch]:
        """The rows of a query as Arrow record batches, streamed."""
        try:
            relation = self.db.sql(sql, params=list(params))
            # DuckDB 1.x names it fetch_arrow_reader, 2.x to_arrow_reader
            read = getattr(relation, "to_arrow_reader", None) or relation.fetch_arrow_reader
            yield from read(size)
        except duckdb.Error as exc:
            raise InputError(f"cannot read the reports: {exc}") from None

    def close(self) -> None:
        self.db.close()
        for pin in self._pins:
            pin.close()


class Pin:
    """A local report held open, read through ``/proc/self/fd/N``: one version of it.

    ``follow`` replaces its report (a new file renamed over the old) as answers come;
    summaries read a file many times (footer, schema, every query), and a path read twice
    may give two versions. Through the open descriptor every read is of the file as it
    was when pinned. Where ``/proc/self/fd`` does not exist the path itself is read.
    """

    def __init__(self, path: Path) -> None:
        self._fd: int | None = None
        self.path = path
        if _FD_PATHS.is_dir():
            try:
                self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE):  # thousands of reports: by path
                    return
                raise InputError(f"cannot read the report {path}: {exc}") from None
            self.path = _FD_PATHS / str(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _scan(file: ReportFile) -> str:
    """The file's rows (its ``date=`` folder is not a column: ``date`` is set per file)."""
    return f"read_parquet({literal(str(file.path))}, hive_partitioning = false)"


def _kept(columns: list[dict[str, str]]) -> list[tuple[str, str]]:
    """Input columns the runs kept, first seen first; text where files' types differ."""
    kinds: dict[str, str] = {}
    for found in columns:
        for name, kind in found.items():
            if name in _KNOWN:
                continue
            if name not in kinds:
                kinds[name] = kind
            elif kinds[name] != kind:
                kinds[name] = "VARCHAR"
    return list(kinds.items())
