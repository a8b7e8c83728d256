"""Every report carries a manifest; ``liveness-audit verify`` catches edits."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from batch.emulator import EmulatorThread, write_input
from batch.store.manifest import RowDigest, read_manifest, verify_report
from tests.helpers import run_cli
from tests.s3server import MotoServer


@pytest.fixture
def made(emulator: EmulatorThread, tmp_path: Path) -> tuple[Path, Path, str]:
    """A report of 60 sessions (and 2 invalid cells), its input and printed digest."""
    source = tmp_path / "in.csv"
    write_input(source, [*emulator.population.ids()[:60], "nonsense", "also bad"])
    output = tmp_path / "report.parquet"
    ran = run_cli("run", source, "--output", output)
    assert ran.code == 0, ran.stderr
    digest = ran.stdout.split("rows_sha256 ")[1].split(")")[0]
    return output, source, digest


def test_manifest_counts_rows_and_hashes_input_and_rows(made: tuple[Path, Path, str]) -> None:
    output, source, digest = made
    manifest = read_manifest(output)
    assert manifest.rows == 62
    assert manifest.input_sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert manifest.rows_sha256 == digest
    # independent of batching: hashing the whole table at once gives the same digest
    whole = RowDigest()
    whole.update(pq.read_table(output))
    assert whole.hexdigest() == digest


def test_verify_says_intact(made: tuple[Path, Path, str]) -> None:
    output, source, digest = made
    ran = run_cli("verify", output, "--input", source, "--sha256", digest)
    assert ran.code == 0, ran.stderr
    assert ran.stdout.strip() == (
        f"{output}: intact: 62 rows match the manifest and the input (rows_sha256 {digest})"
    )


def rewrite(path: Path, table: pa.Table) -> None:
    """Write ``table`` over ``path`` keeping the original key-value metadata (a forgery)."""
    metadata = pq.read_metadata(path).metadata
    pq.write_table(table.replace_schema_metadata(metadata), path)


def edit_confidence(table: pa.Table) -> pa.Table:
    column = table.column("confidence")
    edited = pc.if_else(pc.equal(table.column("status"), "FAILED"), 99.0, column)
    return table.set_column(table.schema.get_field_index("confidence"), "confidence", edited)


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        (edit_confidence, "rows were edited"),
        (lambda t: t.slice(1), "the manifest says 62 rows, the file holds 61"),
        (lambda t: pa.concat_tables([t.slice(1), t.slice(0, 1)]), "rows were edited"),
    ],
    ids=["value-edited", "row-deleted", "rows-reordered"],
)
def test_verify_catches_tampering(
    made: tuple[Path, Path, str], tamper: object, problem: str
) -> None:
    output, _, _ = made
    assert callable(tamper)
    rewrite(output, tamper(pq.read_table(output)))
    assert not verify_report(output).ok
    ran = run_cli("verify", output)
    assert ran.code == 1
    assert problem in ran.stderr
    assert ran.stderr.strip().endswith(f"{output}: NOT intact")


def test_verify_catches_a_recomputed_manifest_with_the_recorded_digest(
    made: tuple[Path, Path, str],
) -> None:
    """A forger who also rewrites the manifest is caught by the digest kept in the logs."""
    output, _, digest = made
    table = edit_confidence(pq.read_table(output))
    forged = RowDigest()
    forged.update(table)
    metadata = dict(pq.read_metadata(output).metadata)
    metadata[b"liveness_audit_manifest"] = metadata[b"liveness_audit_manifest"].replace(
        digest.encode(), forged.hexdigest().encode()
    )
    pq.write_table(table.replace_schema_metadata(metadata), output)
    assert run_cli("verify", output).code == 0  # self-consistent on its own
    ran = run_cli("verify", output, "--sha256", digest)
    assert ran.code == 1
    assert "is not the recorded one" in ran.stderr


def test_verify_catches_another_input(made: tuple[Path, Path, str], tmp_path: Path) -> None:
    output, source, _ = made
    other = tmp_path / "other.csv"
    other.write_bytes(source.read_bytes() + b"\n")
    ran = run_cli("verify", output, "--input", other)
    assert ran.code == 1
    assert "the input hashes to" in ran.stderr


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        (lambda p: pq.write_table(pq.read_table(p).replace_schema_metadata(None), p),
         "carries no liveness-audit manifest"),
        (lambda p: p.write_bytes(b"not parquet"), "cannot read"),
        (lambda p: p.unlink(), "cannot read"),
    ],
    ids=["metadata-stripped", "not-parquet", "missing"],
)  # fmt: skip
def test_verify_unreadable_reports_exit_2(
    made: tuple[Path, Path, str], prepare: object, message: str
) -> None:
    output, _, _ = made
    assert callable(prepare)
    prepare(output)
    ran = run_cli("verify", output)
    assert ran.code == 2
    assert message in ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1


def test_verify_bad_digest_is_a_usage_error(made: tuple[Path, Path, str]) -> None:
    ran = run_cli("verify", made[0], "--sha256", "abc")
    assert ran.code == 2
    assert "invalid --sha256 'abc'" in ran.stderr


def test_verify_a_report_and_input_in_s3(made: tuple[Path, Path, str], s3: MotoServer) -> None:
    output, source, digest = made
    client = s3.client()
    client.create_bucket(Bucket="evidence-vault")
    client.put_object(Bucket="evidence-vault", Key="r/report.parquet", Body=output.read_bytes())
    client.put_object(Bucket="evidence-vault", Key="in/in.csv", Body=source.read_bytes())
    ran = run_cli(
        "verify", "s3://evidence-vault/r/report.parquet", "--input", "s3://evidence-vault/in/in.csv"
    )
    assert ran.code == 0, ran.stderr
    assert digest in ran.stdout
    missing = run_cli("verify", "s3://evidence-vault/r/nope.parquet")
    assert missing.code == 2
    assert "report not found: s3://evidence-vault/r/nope.parquet" in missing.stderr
