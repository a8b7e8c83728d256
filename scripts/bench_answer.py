"""CPU of two pieces of per-answer work, before and after issue 24's round-4 changes.

- SigV4: botocore's :class:`~botocore.auth.SigV4Auth` against
  :class:`batch.aws.signing.LeanSigV4Auth` signing the same ``GetFaceLivenessSessionResults``
  request (a new signer per request, as botocore makes them);
- the journal's line: ``json.dumps`` of a row's columns (with ``json_default``, compact)
  against orjson's (:func:`batch.store.checkpoint._line`), over the rows of
  ``tests/data/journal-main.jsonl``, checking both give the same text.

Process CPU (``time.process_time``) per call, the best of ``--rounds``: the machine is
shared, so the lowest is the least disturbed.

Usage: .venv/bin/python scripts/bench_answer.py [--calls 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from batch.aws.signing import LeanSigV4Auth
from batch.store.checkpoint import _line, read_journal
from batch.store.encoding import json_default

ROOT = Path(__file__).resolve().parent.parent
CREDENTIALS = Credentials("AKIDBENCH", "bench").get_frozen_credentials()


def request() -> AWSRequest:
    """A request as the Rekognition client makes it before signing."""
    return AWSRequest(
        method="POST",
        url="http://127.0.0.1:4566/",
        data=b'{"SessionId": "0f3c1b9e-8a2d-4c5e-9f00-123456789abc"}',
        headers={
            "X-Amz-Target": "RekognitionService.GetFaceLivenessSessionResults",
            "Content-Type": "application/x-amz-json-1.1",
            "User-Agent": "liveness-audit",
            "amz-sdk-invocation-id": "5f0e7a52-7c1e-4f4e-9d7e-1b2c3d4e5f60",
            "amz-sdk-request": "attempt=1",
        },
    )


def per_call(work: Callable[[], object], calls: int, rounds: int) -> float:
    """Microseconds of CPU per call of ``work``, the best of ``rounds``."""
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(calls):
            work()
        best = min(best, time.process_time() - start)
    return 1e6 * best / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for cls in (SigV4Auth, LeanSigV4Auth):
        us = per_call(
            lambda cls=cls: cls(CREDENTIALS, "rekognition", "us-east-1").add_auth(request()),
            args.calls,
            args.rounds,
        )
        print(f"SigV4, {cls.__name__:14} {us:6.1f} us a request (a new request made each time)")
    print(f"  (making the request alone: {per_call(request, args.calls, args.rounds):.1f} us)")
    rows = [row.flat(extras=False) for row in read_journal(ROOT / "tests/data/journal-main.jsonl")]

    def dumps() -> None:
        for values in rows:
            json.dumps(values, default=json_default, separators=(",", ":"))

    def orjson_line() -> None:
        for values in rows:
            _line(values)

    same = all(
        json.dumps(v, default=json_default, separators=(",", ":")) + "\n" == _line(v) for v in rows
    )
    for name, work in (("json.dumps", dumps), ("orjson", orjson_line)):
        us = per_call(work, args.calls // 10, args.rounds) / len(rows)
        print(f"journal line, {name:10} {us:6.1f} us a row")
    print(f"  the same text for all {len(rows)} rows of journal-main.jsonl: {same}")


if __name__ == "__main__":
    main()
