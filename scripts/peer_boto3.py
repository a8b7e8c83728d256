"""The way users would otherwise do it: boto3 in a thread pool, botocore's own retries.

Usage: python scripts/peer_boto3.py INPUT.csv OUTPUT.jsonl --mode adaptive|standard
           [--threads N] [--max-attempts N] [--endpoint-url URL]
Writes one JSON line per session: session_id, status, confidence, error_code.
"""

from __future__ import annotations

import argparse
import csv
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("input", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--mode", choices=["adaptive", "standard"], required=True)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--max-attempts", type=int, default=10)
    parser.add_argument("--endpoint-url")
    args = parser.parse_args()
    with args.input.open(newline="") as f:
        ids = [row["session_id"].strip().lower() for row in csv.DictReader(f)]
    client = boto3.client(
        "rekognition",
        endpoint_url=args.endpoint_url,
        config=Config(
            retries={"mode": args.mode, "max_attempts": args.max_attempts},
            max_pool_connections=args.threads,
        ),
    )

    def fetch(session_id: str) -> dict[str, Any]:
        try:
            r = client.get_face_liveness_session_results(SessionId=session_id)
        except ClientError as exc:
            return {"session_id": session_id, "error_code": exc.response["Error"]["Code"]}
        except BotoCoreError as exc:
            return {"session_id": session_id, "error_code": type(exc).__name__}
        return {
            "session_id": session_id,
            "status": r.get("Status"),
            "confidence": r.get("Confidence"),
        }

    with ThreadPoolExecutor(args.threads) as pool, args.output.open("w") as out:
        for result in pool.map(fetch, ids):
            out.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
