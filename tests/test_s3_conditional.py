"""Conditional S3 writes against moto's server: a writer that lost a race is told so."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch.aws.s3 import connect_s3
from batch.config import Settings
from batch.errors import ConflictError
from batch.store.locations import S3Url
from tests.s3server import MotoServer

BUCKET = "audit-reports"
REPORT = S3Url(BUCKET, "liveness/part.parquet")


@pytest.fixture
def settings(s3: MotoServer) -> Settings:
    s3.client().create_bucket(Bucket=BUCKET)
    return Settings(backoff_initial=0)


async def test_a_new_key_written_with_if_none_match_refuses_a_second_writer(
    settings: Settings, tmp_path: Path
) -> None:
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    first.write_bytes(b"first")
    second.write_bytes(b"second")
    async with connect_s3(settings) as store:
        etag = await store.upload(first, REPORT, if_none_match=True)
        assert etag
        with pytest.raises(ConflictError):
            await store.upload(second, REPORT, if_none_match=True)
        assert (await store.head(REPORT)).etag == etag


async def test_an_update_with_a_stale_etag_is_refused_and_with_the_current_one_goes_through(
    settings: Settings, tmp_path: Path, s3: MotoServer
) -> None:
    mine = tmp_path / "mine.parquet"
    mine.write_bytes(b"mine")
    async with connect_s3(settings) as store:
        read = await store.upload(mine, REPORT, if_none_match=True)
        assert read is not None
        s3.client().put_object(Bucket=BUCKET, Key=REPORT.key, Body=b"another writer")
        with pytest.raises(ConflictError):
            await store.upload(mine, REPORT, if_match=read)
        current = (await store.head(REPORT)).etag
        assert await store.upload(mine, REPORT, if_match=current)
    body = s3.client().get_object(Bucket=BUCKET, Key=REPORT.key)["Body"].read()
    assert body == b"mine"
