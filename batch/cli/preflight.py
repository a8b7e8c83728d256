"""What a run checks before it sends anything, written once for ``run``, ``--dry-run``,
``follow`` and ``doctor``.

- the region: the one given (``--region``, ``AWS_REGION``, the profile) must be a region
  botocore lists Rekognition in, else exit 2 at once with the nearest ("did you mean");
- the output: a local report's missing folders are made (a ``{date}`` folder of
  ``follow`` on its day), their nearest existing folder must be writable, the report a
  ``.parquet`` file and not the input itself;
- the credentials: the AWS chain must find some;
- access (``--check-access``, ``doctor``): one ``GetFaceLivenessSessionResults`` for a
  random UUID must answer ``SessionNotFoundException``, which proves the credentials,
  the permission, the region and the endpoint with one request.

Each check gives a :class:`Check`: what was checked, whether it passed, and the fix.
"""

from __future__ import annotations

import difflib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from batch.aws.rekognition import open_client
from batch.aws.session import open_session
from batch.cli.common import ACCESS_HINTS
from batch.config import Settings
from batch.engine.regions import known_regions
from batch.errors import AccessError, AuditError, ConfigError, OutputError, SessionError
from batch.store.files import private_dir
from batch.store.locations import Location, S3Url
from batch.store.report import check_output
from batch.verdict import EXIT_ACCESS, exit_code_for

__all__ = [
    "Check",
    "access_check",
    "check_output_location",
    "check_region",
    "fixed_folder",
    "make_output_folder",
    "probe_access",
]

_NOT_FOUND = "SessionNotFoundException"


@dataclass(frozen=True, slots=True)
class Check:
    """One check's outcome: ``name`` (what), ``detail`` (what was found), ``fix`` if failed."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    exit_code: int = 0  # of the run this failure would stop (2 usage, 3 access)

    def line(self) -> str:
        mark = "✓" if self.ok else "✗"
        fix = f"\n    fix: {self.fix}" if self.fix and not self.ok else ""
        return f"{mark} {self.name}: {self.detail}{fix}"


def check_region(region: str | None, where: str = "--region") -> None:
    """ConfigError unless ``region`` (if given) is one Rekognition is offered in."""
    if region is None or region in known_regions():
        return
    close = difflib.get_close_matches(region.strip().lower(), sorted(known_regions()), n=2)
    hint = f"; did you mean {' or '.join(close)}?" if close else " (e.g. eu-west-1, us-east-1)"
    raise ConfigError(
        f"invalid setting 'region' (from {where}): {region!r} is not a region "
        f"Rekognition is offered in{hint}"
    )


def region_source(settings: Settings) -> str:
    """Where the region came from, for messages."""
    if settings.region is not None:
        return "--region or the settings"
    return "AWS_REGION" if os.environ.get("AWS_REGION") else "the AWS profile"


def fixed_folder(template: str) -> Path:
    """The folder of an ``--output`` template before its first placeholder folder."""
    fixed: list[str] = []
    for part in Path(template).parent.parts:
        if "{" in part:
            break
        fixed.append(part)
    return Path(*fixed)


def _nearest_existing(folder: Path) -> Path:
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return candidate
    return Path()


def _creatable(folder: Path) -> None:
    """OutputError naming the folder in the way unless ``folder`` exists or can be made."""
    base = _nearest_existing(folder)
    if base == folder and folder.is_dir():
        return
    if not base.is_dir():
        raise OutputError(f"cannot create the output folder {folder}: {base} is not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise OutputError(f"cannot create the output folder {folder}: {base} is not writable")


def make_output_folder(folder: Path, *, mode: int) -> None:
    """Create ``folder`` and any missing parent (``mode``); OutputError naming the culprit."""
    _creatable(folder)
    private_dir(folder, mode=mode)


def check_output_location(
    source: Location | None, target: Location, *, create: bool, mode: int
) -> None:
    """Fail as a run would on its output: the folder (made when ``create``), the kind of
    file, the input itself."""
    if source is not None and str(source) == str(target):
        raise ConfigError(f"invalid --output {target}: it is the input; give another file")
    if isinstance(target, S3Url):
        return
    if isinstance(source, Path) and source.exists() and target.exists() and source.samefile(target):
        raise ConfigError(f"invalid --output {target}: it is the input; give another file")
    if create:
        make_output_folder(target.parent, mode=mode)
    elif not target.parent.is_dir():
        _creatable(target.parent)
        if target.suffix.lower() not in (".parquet", ".pq"):
            raise OutputError(f"output must be a .parquet file, got {target.name!r}")
        return
    check_output(target)


async def probe_access(settings: Settings) -> str:
    """One call for a random session ID; what it proved, or the AuditError that stops a run.

    ``SessionNotFoundException`` is the one right answer: the request was signed with
    valid credentials, allowed by the policy and served by Rekognition in the region.
    """
    probe = str(uuid.uuid4())
    session = await open_session(settings)
    try:
        async with open_client(settings, session) as client:
            await client.get(probe)
    except SessionError as error:
        if error.code == _NOT_FOUND:
            return f"a random session ID was answered {_NOT_FOUND} (region {session.region_name})"
        raise ConfigError(
            f"the access check was answered {error.code}, not {_NOT_FOUND}: is --endpoint-url "
            "a Rekognition endpoint?"
        ) from None
    raise ConfigError(
        "the access check found a random session ID: is --endpoint-url a Rekognition endpoint?"
    )


async def access_check(settings: Settings) -> Check:
    """:func:`probe_access` as a :class:`Check` with its fix."""
    name = "access to rekognition:GetFaceLivenessSessionResults"
    try:
        return Check(name, True, await probe_access(settings))
    except AccessError as error:
        return Check(name, False, f"refused: {error}", access_fix(error.code), EXIT_ACCESS)
    except AuditError as error:
        fix = "check --endpoint-url, the region and the network (a proxy, a firewall)"
        return Check(name, False, str(error), fix, exit_code_for(error))


def access_fix(code: str) -> str:
    """The fix of an access refusal, by its error code."""
    return ACCESS_HINTS.get(code, "check the credentials and the IAM policy")
