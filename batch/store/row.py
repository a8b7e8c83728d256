"""One report row, declared once: :class:`Row` (and :class:`ImageColumns` per image).

Each column is a field of these frozen records with its Arrow type (:func:`column`);
everything else is derived from that one declaration:

- :data:`SCHEMA`, the report's base columns (the spill's and the journal's too), in
  declaration order; a row's images are ``reference_*`` columns and ``audit_images``
  (a list of structs), with ``audit_image_count`` beside it;
- :meth:`Row.of`, the one constructor from an :class:`~batch.model.Outcome`, and
  :meth:`Row.result`, :meth:`Row.evidence`, :meth:`Row.paths`, what a local redo
  rebuilds from a kept row (nothing is lost: they read the same declaration);
- :meth:`Row.flat` and :meth:`Row.from_flat`, the only conversions, used at the file
  edges: Arrow (the report, the spill) and JSON (the journal). Values are parsed by their
  declared type (a timestamp from ISO 8601 in JSON); anything else raises ``TypeError`` or
  ``ValueError`` naming the column.

Columns that are not the service's (kept input columns, the reconciliation, ``region``)
travel in :attr:`Row.extras`, by name: a run that does not make them keeps them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, field, fields, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any, Self

import pyarrow as pa

from batch.model import (
    BoundingBox,
    Challenge,
    Evidence,
    Image,
    Outcome,
    SessionResult,
    Status,
    image_names,
    named_images,
)

__all__ = ["IMAGE_FIELDS", "SCHEMA", "ImageColumns", "Row", "column"]

TIMESTAMP = pa.timestamp("us", tz="UTC")
_ARROW = "arrow"  # field metadata: the column's Arrow type
_NULLABLE = "nullable"


def column(  # a dataclass field stands for its value's type
    kind: pa.DataType, *, default: object = None, nullable: bool = True, required: bool = False
) -> Any:
    """A report column: a dataclass field of Arrow type ``kind`` (null unless given;
    ``required``: no default, given to every constructor)."""
    metadata = {_ARROW: kind, _NULLABLE: nullable}
    return field(metadata=metadata) if required else field(default=default, metadata=metadata)


@functools.cache
def _columns(cls: type) -> tuple[Field[Any], ...]:
    return tuple(f for f in fields(cls) if _ARROW in f.metadata)


Parse = Callable[[object], object]


def _timestamp(value: object) -> object:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _float(value: object) -> object:
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _parser(kind: pa.DataType) -> tuple[Parse, tuple[type, ...]]:
    """How a value of Arrow type ``kind`` is read (JSON or Arrow's Python value), and the
    Python types it must have then."""
    t = pa.types
    if t.is_timestamp(kind):
        return _timestamp, (datetime,)
    if t.is_floating(kind):
        return _float, (float,)
    if t.is_integer(kind):
        return _same, (int,)
    if t.is_boolean(kind):
        return _same, (bool,)
    return _same, (str,)


def _same(value: object) -> object:
    return value


@functools.cache
def _readers(cls: type, prefix: str) -> tuple[tuple[str, str, Parse, tuple[type, ...]], ...]:
    """Per declared column of ``cls``: its field, its key (under ``prefix``), its parser."""
    return tuple((f.name, prefix + f.name, *_parser(f.metadata[_ARROW])) for f in _columns(cls))


def _values(cls: type, values: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """The declared columns of ``cls`` in ``values`` (under ``prefix``), parsed by their
    declared type; TypeError naming the column when a value does not fit it."""
    parsed: dict[str, object] = {}
    for name, key, parse, kinds in _readers(cls, prefix):
        value = values.get(key)
        if value is not None:
            value = parse(value)
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                shown = f"{type(value).__name__} {str(value)[:40]!r}"
                raise TypeError(f"column {key!r} cannot hold {shown}")
        parsed[name] = value
    return parsed


@dataclass(frozen=True, slots=True)
class ImageColumns:
    """The columns of one image: where it is (or its bytes' size and hash), where it was
    saved, what S3 said of it (``--verify-evidence``)."""

    bbox_left: float | None = column(pa.float64())
    bbox_top: float | None = column(pa.float64())
    bbox_width: float | None = column(pa.float64())
    bbox_height: float | None = column(pa.float64())
    s3_bucket: str | None = column(pa.string())
    s3_name: str | None = column(pa.string())
    s3_version: str | None = column(pa.string())
    bytes_size: int | None = column(pa.int64())
    bytes_sha256: str | None = column(pa.string())
    image_path: str | None = column(pa.string())
    evidence: str | None = column(pa.string())
    evidence_size: int | None = column(pa.int64())
    evidence_etag: str | None = column(pa.string())
    evidence_version_id: str | None = column(pa.string())
    evidence_last_modified: datetime | None = column(TIMESTAMP)

    @classmethod
    def of(cls, image: Image, path: str | None, found: Evidence | None) -> ImageColumns:
        box = image.bounding_box
        return cls(
            bbox_left=box.left if box else None,
            bbox_top=box.top if box else None,
            bbox_width=box.width if box else None,
            bbox_height=box.height if box else None,
            s3_bucket=image.s3_bucket,
            s3_name=image.s3_name,
            s3_version=image.s3_version,
            bytes_size=image.size,
            bytes_sha256=image.sha256,
            image_path=path,
            evidence=found.status if found else None,
            evidence_size=found.size if found else None,
            evidence_etag=found.etag if found else None,
            evidence_version_id=found.version_id if found else None,
            evidence_last_modified=found.last_modified if found else None,
        )

    @classmethod
    def from_flat(cls, values: Mapping[str, object], prefix: str = "") -> ImageColumns:
        return cls(**_values(cls, values, prefix))  # type: ignore[arg-type]  # parsed by declared type

    def flat(self, prefix: str = "") -> dict[str, object]:
        return {prefix + f.name: getattr(self, f.name) for f in _columns(ImageColumns)}

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in _columns(ImageColumns))

    def image(self) -> Image:
        """The image as the service described it (no bytes)."""
        sides = (self.bbox_left, self.bbox_top, self.bbox_width, self.bbox_height)
        box = BoundingBox(*sides) if any(side is not None for side in sides) else None
        return Image(
            bounding_box=box,
            s3_bucket=self.s3_bucket,
            s3_name=self.s3_name,
            s3_version=self.s3_version,
            size=self.bytes_size,
            sha256=self.bytes_sha256,
        )

    def found(self) -> Evidence | None:
        """What S3 said of the image; None when it was not checked."""
        if self.evidence is None:
            return None
        return Evidence(
            self.evidence,
            size=self.evidence_size,
            etag=self.evidence_etag,
            version_id=self.evidence_version_id,
            last_modified=self.evidence_last_modified,
        )


IMAGE_FIELDS = tuple(f.name for f in _columns(ImageColumns))
_IMAGE_STRUCT = pa.struct([(f.name, f.metadata[_ARROW]) for f in _columns(ImageColumns)])
_NO_EXTRAS: Mapping[str, object] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Row:
    """One session's row of the report (see :mod:`batch.store.report` for the columns).

    ``reference`` is None when the answer had no reference image; ``extras`` holds the
    columns that are not the service's, by name (read-only).
    """

    session_id: str = column(pa.string(), nullable=False, required=True)
    status: Status | None = column(pa.string())
    confidence: float | None = column(pa.float64())
    challenge_type: str | None = column(pa.string())
    challenge_version: str | None = column(pa.string())
    error_code: str | None = column(pa.string())
    error_message: str | None = column(pa.string())
    attempts: int = column(pa.int32(), default=0, nullable=False)
    fetched_at: datetime | None = column(TIMESTAMP)
    checked_at: datetime | None = column(TIMESTAMP)
    checks: int | None = column(pa.int32())
    reference: ImageColumns | None = None  # the reference_* columns
    audit_images: tuple[ImageColumns, ...] = ()  # audit_image_count, audit_images
    extras: Mapping[str, object] = field(default_factory=lambda: _NO_EXTRAS, compare=False)

    # --- from and to the model ------------------------------------------------------

    @classmethod
    def of(cls, outcome: Outcome, paths: Mapping[str, str] | None = None) -> Row:
        """The row of ``outcome``; ``paths`` maps ``reference`` / ``audit-N`` to where
        ``--save-images`` wrote them."""
        paths = paths or {}
        evidence = outcome.evidence or {}
        result = outcome.result
        challenge = result.challenge if result else None
        images = {
            name: ImageColumns.of(image, paths.get(name), evidence.get(name))
            for name, image in (image_names(result) if result else [])
        }
        reference = images.pop("reference", None)
        return cls(
            session_id=outcome.session_id,
            status=result.status if result else None,
            confidence=result.confidence if result else None,
            challenge_type=challenge.type if challenge else None,
            challenge_version=challenge.version if challenge else None,
            error_code=outcome.error_code,
            error_message=outcome.error_message,
            attempts=outcome.attempts,
            fetched_at=outcome.fetched_at,
            checked_at=outcome.fetched_at,
            checks=outcome.attempts,
            reference=reference,
            audit_images=tuple(images.values()),
        )

    def _named(self) -> list[tuple[str, ImageColumns]]:
        """The row's images as ``(name, columns)``, named as :meth:`of` names them."""
        return named_images(self.reference, self.audit_images)

    def result(self) -> SessionResult | None:
        """The :class:`SessionResult` the row was made from (no image bytes); None
        without one."""
        if self.status is None:
            return None
        kind = self.challenge_type
        return SessionResult(
            session_id=self.session_id,
            status=self.status,
            confidence=self.confidence,
            reference_image=self.reference.image() if self.reference else None,
            audit_images=tuple(image.image() for image in self.audit_images),
            challenge=Challenge(kind, self.challenge_version) if kind else None,
        )

    def evidence(self) -> dict[str, Evidence]:
        """The evidence findings the row records, by image name (empty: none made)."""
        found = ((name, image.found()) for name, image in self._named())
        return {name: evidence for name, evidence in found if evidence is not None}

    def paths(self) -> dict[str, str]:
        """Where the row says its images were saved, by image name."""
        return {
            name: image.image_path for name, image in self._named() if image.image_path is not None
        }

    def with_local_steps(self, made: Row) -> Row:
        """This row with what the local steps made in ``made`` (a redo of them): the error,
        and each image's saved path and evidence; every other column stays as kept."""
        if len(made.audit_images) != len(self.audit_images):
            raise ValueError("a redo of the local steps must keep the row's images")
        return replace(
            self,
            error_code=made.error_code,
            error_message=made.error_message,
            reference=(
                _local(self.reference, made.reference or ImageColumns())
                if self.reference is not None
                else None
            ),
            audit_images=tuple(map(_local, self.audit_images, made.audit_images)),
        )

    def with_extras(self, extras: Mapping[str, object]) -> Row:
        """The row with the columns of ``extras`` it does not carry itself."""
        missing = {k: v for k, v in extras.items() if k not in self.extras and k not in _BASE}
        if not missing:
            return self
        return replace(self, extras=MappingProxyType({**self.extras, **missing}))

    # --- the file edges ---------------------------------------------------------------

    def flat(self, *, extras: bool = True) -> dict[str, object]:
        """The row as columns (Python values): what Arrow writes, and the journal's JSON
        (``extras`` False: the base columns only)."""
        values: dict[str, object] = {f.name: getattr(self, f.name) for f in _columns(Row)}
        if self.status is not None:
            values["status"] = self.status.value
        reference = self.reference or ImageColumns()
        values.update(reference.flat("reference_"))
        values["audit_image_count"] = len(self.audit_images)
        values["audit_images"] = [image.flat() for image in self.audit_images]
        if extras:
            values.update(self.extras)
        return values

    @classmethod
    def from_flat(cls, values: Mapping[str, object]) -> Self:
        """A row from its columns (a report's, the spill's, the journal's JSON); a column
        the values lack is null (a report written before it existed). Columns that are not
        the report's base ones go to :attr:`extras`.

        TypeError or ValueError when a value does not fit its column.
        """
        parsed = _values(cls, values)
        if parsed["session_id"] is None:
            raise TypeError("a row needs a session_id")
        status, attempts = parsed.pop("status"), parsed.pop("attempts")
        reference = ImageColumns.from_flat(values, "reference_")
        images = values.get("audit_images") or []
        if not isinstance(images, list | tuple):
            raise TypeError(f"column 'audit_images' cannot hold {type(images).__name__}")
        extras = {k: v for k, v in values.items() if k not in _BASE}
        return cls(
            **parsed,  # type: ignore[arg-type]  # parsed by declared type
            status=Status(str(status)) if status is not None else None,
            attempts=attempts if isinstance(attempts, int) else 0,
            reference=None if reference.empty else reference,
            audit_images=tuple(_image_of(image) for image in images),
            extras=MappingProxyType(extras) if extras else _NO_EXTRAS,
        )

    @classmethod
    def invalid(cls, value: str, reason: str) -> Row:
        """The row of a cell that is not a session ID: never sent, so ``attempts`` 0."""
        return cls(value, error_code="InvalidSessionId", error_message=reason, checks=0)


_LOCAL_STEPS = (
    "image_path",
    "evidence",
    "evidence_size",
    "evidence_etag",
    "evidence_version_id",
    "evidence_last_modified",
)


def _local(kept: ImageColumns, made: ImageColumns) -> ImageColumns:
    """``kept`` with the local steps' columns of ``made``."""
    return replace(kept, **{name: getattr(made, name) for name in _LOCAL_STEPS})


def _image_of(values: object) -> ImageColumns:
    if not isinstance(values, Mapping):
        raise TypeError(f"an audit image must be an object, got {type(values).__name__}")
    return ImageColumns.from_flat(values)


def _schema(cls: type) -> pa.Schema:
    columns = [
        pa.field(f.name, f.metadata[_ARROW], nullable=f.metadata[_NULLABLE]) for f in _columns(cls)
    ]
    reference = [
        pa.field(f"reference_{f.name}", f.metadata[_ARROW]) for f in _columns(ImageColumns)
    ]
    images = [
        pa.field("audit_image_count", pa.int32(), nullable=False),
        pa.field("audit_images", pa.list_(_IMAGE_STRUCT), nullable=False),
    ]
    return pa.schema([*columns, *reference, *images])


SCHEMA = _schema(Row)
_BASE = frozenset(SCHEMA.names)
