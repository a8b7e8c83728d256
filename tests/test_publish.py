"""The one publish loop (:mod:`batch.engine.publish`) against moto's server.

Another writer puts its report at the key between our read and our upload (over HTTP,
as another host would): the conditional upload is refused, the other report is merged
into ours and the upload tried again; a writer that always gets there first makes the
publish give up after ``tries``, the complete report kept locally.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch.aws.s3 import S3Store, connect_s3
from batch.config import load_settings
from batch.engine.destination import Destination
from batch.engine.publish import publish
from batch.errors import PublishError
from batch.store.locations import S3Url
from batch.store.manifest import Manifest
from batch.store.merge import Base
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


class Rival:
    """The real store; another writer puts its report at the key before our first
    ``wins`` uploads (each time with one more session of its own)."""

    def __init__(self, store: S3Store, s3: MotoServer, wins: int) -> None:
        self.store, self.s3, self.wins = store, s3, wins
        self.uploads = 0

    async def head(self, url: S3Url) -> Any:
        return await self.store.head(url)

    async def download(self, url: S3Url, target: Path, *, what: str = "input") -> None:
        await self.store.download(url, target, what=what)

    async def upload(self, path: Path, url: S3Url, **kw: Any) -> str | None:
        self.uploads += 1
        if self.uploads <= self.wins:
            theirs = parquet([f"theirs-{n}" for n in range(self.uploads)])
            self.s3.client().put_object(Bucket=url.bucket, Key=url.key, Body=theirs)
        return await self.store.upload(path, url, **kw)


def merging(local: Path, ours: list[str], bases: list[Base]) -> Any:
    """A merge that writes our sessions and the base's into ``local``."""

    def merge(base: Base) -> Manifest:
        bases.append(base)
        theirs = [] if base.path is None else pq.read_table(base.path)["session_id"].to_pylist()
        local.write_bytes(parquet(sorted({*theirs, *ours})))
        return Manifest(len({*theirs, *ours}), "0" * 64, "1" * 64)

    return merge


async def test_a_lost_race_merges_the_other_writers_report_and_uploads_again(
    s3: MotoServer, tmp_path: Path
) -> None:
    s3.client().create_bucket(Bucket=BUCKET)
    local = tmp_path / "report.parquet"
    bases: list[Base] = []
    async with connect_s3(load_settings(env={})) as store:
        rival = Rival(store, s3, wins=1)
        manifest = await publish(
            rival,  # type: ignore[arg-type]  # the real store, another writer racing it
            Destination(local, REPORT),
            merging(local, ["ours"], bases),
            tries=3,
        )
    assert rival.uploads == 2  # the first, If-None-Match on a key that was absent, lost
    assert [base.rows for base in bases] == [0, 1]  # merged again with the rival's report
    assert ids_at(s3) == ["ours", "theirs-0"]
    assert manifest.rows == 2
    head = s3.client().head_object(Bucket=BUCKET, Key=REPORT.key)
    assert head["Metadata"]["rows"] == "2"
    assert not local.exists()  # the S3 object is the report now


async def test_a_writer_that_always_gets_there_first_makes_the_publish_give_up_keeping_ours(
    s3: MotoServer, tmp_path: Path
) -> None:
    s3.client().create_bucket(Bucket=BUCKET)
    local = tmp_path / "report.parquet"
    bases: list[Base] = []
    async with connect_s3(load_settings(env={})) as store:
        rival = Rival(store, s3, wins=99)
        with pytest.raises(PublishError, match="3 conditional uploads in a row"):
            await publish(
                rival,  # type: ignore[arg-type]  # the real store, another writer racing it
                Destination(local, REPORT),
                merging(local, ["ours"], bases),
                tries=3,
            )
    assert rival.uploads == 3
    assert len(bases) == 3  # each lost race merged the rival's newer report
    assert ids_at(s3) == ["theirs-0", "theirs-1", "theirs-2"]  # never overwritten
    assert pq.read_table(local)["session_id"].to_pylist() == ["ours", "theirs-0", "theirs-1"]
