"""parse_result on hostile 200 answers: nothing malformed reaches the report or journal."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from batch.aws.rekognition import parse_result
from batch.aws.s3 import S3Store
from batch.errors import ServerError
from batch.evidence import _check
from batch.model import Image

GOOD_BOX = {"Left": 0.1, "Top": 0.2, "Width": 0.3, "Height": 0.4}


def answer(**image: Any) -> dict[str, Any]:
    return {"SessionId": "s1", "Status": "SUCCEEDED", "Confidence": 99.0, "ReferenceImage": image}


def test_a_well_formed_answer_is_parsed_with_its_box_and_s3_object() -> None:
    result = parse_result(
        "s1", answer(BoundingBox=GOOD_BOX, S3Object={"Bucket": "b", "Name": "k", "Version": "v"})
    )
    image = result.reference_image
    assert image is not None
    assert image.bounding_box is not None
    assert image.bounding_box.width == 0.3
    assert (image.s3_bucket, image.s3_name, image.s3_version) == ("b", "k", "v")


@pytest.mark.parametrize(
    "body",
    [
        answer(BoundingBox={**GOOD_BOX, "Left": "0.1"}),
        answer(BoundingBox={**GOOD_BOX, "Top": float("nan")}),
        answer(BoundingBox={**GOOD_BOX, "Width": float("inf")}),
        answer(BoundingBox={**GOOD_BOX, "Height": True}),
        answer(BoundingBox={**GOOD_BOX, "Height": [1]}),
        answer(BoundingBox="everywhere"),
        answer(S3Object={"Bucket": "b"}),
        answer(S3Object={"Name": "k"}),
        answer(S3Object={"Bucket": "", "Name": "k"}),
        answer(S3Object={"Bucket": "b", "Name": 7}),
        answer(S3Object={"Bucket": "b", "Name": "k", "Version": 3}),
        answer(S3Object="s3://b/k"),
        answer(Bytes="not binary"),
        {"SessionId": "s1", "Status": "SUCCEEDED", "ReferenceImage": "x"},
        {"SessionId": "s1", "Status": "SUCCEEDED", "AuditImages": {"0": {}}},
        {"SessionId": "s1", "Status": "SUCCEEDED", "AuditImages": [{"S3Object": {}}]},
        {"SessionId": "s1", "Status": "SUCCEEDED", "Confidence": "high"},
        {"SessionId": "s1", "Status": "SUCCEEDED", "Confidence": float("nan")},
        {"SessionId": "s1", "Status": "DONE"},
        {"SessionId": "s2", "Status": "SUCCEEDED"},
    ],
)
def test_a_malformed_answer_is_a_retryable_malformed_response(body: dict[str, Any]) -> None:
    with pytest.raises(ServerError) as caught:
        parse_result("s1", body)
    assert caught.value.code == "MalformedResponse"


def test_absent_optional_parts_are_no_error() -> None:
    result = parse_result("s1", {"Status": "CREATED"})
    assert result.confidence is None
    assert result.reference_image is None
    assert result.audit_images == ()


def test_the_message_names_the_bad_field_without_echoing_image_bytes() -> None:
    with pytest.raises(ServerError, match=r"AuditImages\[1\]\.BoundingBox\.Left"):
        parse_result(
            "s1",
            {
                "Status": "SUCCEEDED",
                "AuditImages": [{"Bytes": b"\xff" * 10}, {"BoundingBox": {"Left": "x" * 500}}],
            },
        )


def test_an_image_without_an_s3_key_is_an_evidence_error_not_an_assert() -> None:
    class NoCalls:
        async def head(self, *_: object) -> None:
            raise AssertionError("no S3 call for an image without a key")

    evidence = asyncio.run(_check(cast(S3Store, NoCalls()), Image(s3_bucket="b")))

    assert evidence.status == "error"
    assert evidence.message is not None


def test_the_challenge_is_parsed_and_a_newer_type_is_kept_as_named() -> None:
    body = {"SessionId": "s1", "Status": "SUCCEEDED", "Confidence": 91.0}
    light = {"Type": "FaceMovementAndLightChallenge", "Version": "2.0.0"}
    result = parse_result("s1", {**body, "Challenge": light})
    assert result.challenge is not None
    assert (result.challenge.type, result.challenge.version) == (
        "FaceMovementAndLightChallenge",
        "2.0.0",
    )
    newer = parse_result("s1", {**body, "Challenge": {"Type": "SomeFutureChallenge"}})
    assert newer.challenge is not None
    assert newer.challenge.type == "SomeFutureChallenge"
    assert parse_result("s1", body).challenge is None
    with pytest.raises(ServerError):
        parse_result("s1", {**body, "Challenge": "FaceMovementChallenge"})
