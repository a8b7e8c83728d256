"""The one publish loop (:mod:`batch.engine.publish`) against moto's server.

Another writer puts its report at the key between our read and our upload (over HTTP,
as another host would): the conditional upload is refused, the other report is merged
into ours and the upload tried again; a writer that always gets there first makes the
publish give up after ``tries``, the complete report kept locally.
"""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from batch.aws.s3 import connect_s3
from batch.config import load_settings
from batch.engine.destination import Destination
from batch.engine.publish import Merge, publish
from batch.errors import PublishError
from batch.store.locations import S3Url
from batch.store.manifest import Manifest
from batch.store.merge import Base
from tests.helpers import Raced
from tests.s3server import MotoServer

BUCKET = "audits"
REPORT = S3Url(BUCKET, "liveness/report.parquet")


def parquet(ids: list[str]) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"session_id": ids}), sink)
    return sink.getvalue()


def ids_at(s3: MotoServer) -> list[str]:
    body = s3.client().get_object(Bucket=BUCKET, Key=REPORT.key)["Body"].read()
    return sorted(pq.read_table(io.BytesIO(body)).column("session_id").to_pylist())


def merging(local: Path, ours: list[str], bases: list[Base]) -> Merge:
    """A merge that writes our sessions and the base's into ``local``."""

    def merge(base: Base) -> Manifest:
        bases.append(base)
        theirs = [] if base.path is None else pq.read_table(base.path)["session_id"].to_pylist()
        local.write_bytes(parquet(sorted({*theirs, *ours})))
        return Manifest(len({*theirs, *ours}), "0" * 64, "1" * 64)

    return merge


async def race(
    s3: MotoServer, local: Path, *, wins: int, tries: int
) -> tuple[Raced, list[Base], PublishError | None]:
    """Publish ``ours`` at REPORT while another writer puts its report there before each
    of our first ``wins`` uploads (one more session of its own each time): the store (its
    uploads counted), the bases merged into, the error that gave up."""
    s3.client().create_bucket(Bucket=BUCKET)
    bases: list[Base] = []

    async def rival(upload: int) -> None:
        theirs = parquet([f"theirs-{n}" for n in range(upload)])
        s3.client().put_object(Bucket=BUCKET, Key=REPORT.key, Body=theirs)

    async with connect_s3(load_settings(env={})) as store:
        raced = Raced(store, rival, wins)
        merge = merging(local, ["ours"], bases)
        try:
            await publish(raced, Destination(local, REPORT), merge, tries=tries)  # type: ignore[arg-type]  # the real store, raced
        except PublishError as exc:
            return raced, bases, exc
    return raced, bases, None


async def test_a_lost_race_merges_the_other_writers_report_and_uploads_again(
    s3: MotoServer, tmp_path: Path
) -> None:
    local = tmp_path / "report.parquet"
    raced, bases, error = await race(s3, local, wins=1, tries=3)
    assert error is None
    assert raced.uploads == 2  # the first, If-None-Match on a key that was absent, lost
    assert [base.rows for base in bases] == [0, 1]  # merged again with the rival's report
    assert ids_at(s3) == ["ours", "theirs-0"]
    head = s3.client().head_object(Bucket=BUCKET, Key=REPORT.key)
    assert head["Metadata"]["rows"] == "2"
    assert not local.exists()  # the S3 object is the report now


async def test_a_writer_that_always_gets_there_first_makes_the_publish_give_up_keeping_ours(
    s3: MotoServer, tmp_path: Path
) -> None:
    local = tmp_path / "report.parquet"
    raced, bases, error = await race(s3, local, wins=99, tries=3)
    assert error is not None
    assert "3 conditional uploads in a row" in str(error)
    assert raced.uploads == 3
    assert len(bases) == 3  # each lost race merged the rival's newer report
    assert ids_at(s3) == ["theirs-0", "theirs-1", "theirs-2"]  # ours never overwrote theirs
    assert pq.read_table(local)["session_id"].to_pylist() == ["ours", "theirs-0", "theirs-1"]
