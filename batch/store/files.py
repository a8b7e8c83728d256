"""Writing files safely: one way to create, replace and lock what a run leaves behind.

Reports, journals, the run lock, spooled S3 copies, metrics and saved images hold
biometric metadata (or the images themselves), and they are written next to files other
users may control, on disks that fill up. Every file the tool writes goes through here:

- :class:`AtomicFile` / :func:`atomic_write`: a new temporary file beside the target
  (``O_CREAT | O_EXCL | O_NOFOLLOW``, so neither an existing file nor a planted symlink
  decides where the bytes go), flushed, fsync'd, renamed over the target, and the folder
  fsync'd; on failure the temporary file is removed and the target is left as it was.
- :func:`open_private`: a file that is opened in place (the journal, the lock), never
  through a symlink and only if it is a regular file.
- :func:`private_dir`: a folder the tool creates, owner-only.

A local write that fails mid-run (a full disk, an I/O error) becomes a
:class:`~batch.errors.StorageError` through :func:`storage_error`, once, where the
journal and the report write: the run stops in good order on it.

Files are owner-only (``0600``, folders ``0700``) unless the operator sets ``file_mode``
(e.g. ``"0640"`` for a group of analysts): the mode is applied with ``fchmod``, so the
umask does not narrow or widen what the operator asked for.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from batch.errors import OutputError, StorageError

__all__ = [
    "PRIVATE",
    "AtomicFile",
    "atomic_write",
    "check_target",
    "dir_mode",
    "open_private",
    "parse_mode",
    "private_dir",
    "remove_stale",
    "storage_error",
]

PRIVATE = 0o600


def parse_mode(text: str | None) -> int:
    """``"0640"`` -> ``0o640``; None -> :data:`PRIVATE`. ValueError for anything else.

    Only read and write bits: files the tool writes are never executable, setuid or
    sticky, and never writable by others.
    """
    if text is None:
        return PRIVATE
    try:
        mode = int(text, 8)
    except ValueError:
        raise ValueError("must be an octal mode such as '0600' or '0640'") from None
    if mode & ~0o666 or mode & 0o002 or (mode & 0o600) != 0o600:
        raise ValueError(
            "must give the owner read and write, and nobody execute or others write "
            "(e.g. '0600', '0640')"
        )
    return mode


_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO})


def storage_error(what: str, path: Path, error: OSError) -> StorageError:
    """The one-line error of a failed local write: the file, then ``ENOSPC: No space ...``."""
    name = errno.errorcode.get(error.errno or 0)
    reason = error.strerror or str(error)
    said = f"{name}: {reason}" if name else reason
    return StorageError(
        f"cannot write the {what} {path}: {said}; the run stopped, keeping what was "
        "journaled: free space (or fix the disk) and rerun the same command to resume",
        path=str(path),
    )


def dir_mode(mode: int) -> int:
    """The folder mode matching a file mode: search (x) wherever reading is allowed."""
    return mode | (mode & 0o444) >> 2


def private_dir(path: Path, *, mode: int = PRIVATE) -> Path:
    """``path``, created owner-only (or per ``mode``, see :func:`dir_mode`) if missing.

    Every folder created on the way gets that mode, whatever the umask; folders that
    exist already are left as they are.
    """
    missing = [folder for folder in (path, *path.parents) if not folder.exists()]
    try:
        for folder in reversed(missing):
            try:
                folder.mkdir(mode=dir_mode(mode))
            except FileExistsError:  # made meanwhile by someone else: theirs to keep
                continue
            folder.chmod(dir_mode(mode))
    except OSError as exc:
        raise OutputError(f"cannot create the folder {path}: {exc}") from None
    if not path.is_dir():
        raise OutputError(f"cannot create the folder {path}: a file is in the way")
    return path


def check_target(path: Path, what: str) -> None:
    """OutputError unless ``path`` is missing or a regular file (a symlink is refused)."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OutputError(f"cannot use the {what} {path}: {exc}") from None
    if stat.S_ISLNK(info.st_mode):
        raise OutputError(f"refusing the {what} {path}: it is a symbolic link; remove it")
    if not stat.S_ISREG(info.st_mode):
        raise OutputError(f"refusing the {what} {path}: it is not a regular file")


def open_private(path: Path, flags: int, *, what: str, mode: int = PRIVATE) -> int:
    """A descriptor of the regular file at ``path`` (never a symlink's target).

    ``flags`` are :func:`os.open` flags (``O_CREAT`` to create it). A file the caller owns
    is given ``mode``. OutputError, naming ``what``, if it cannot be used.
    """
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OutputError(
                f"refusing the {what} {path}: it is a symbolic link; remove it"
            ) from None
        if exc.errno in _FULL:  # a full disk (or inode table) is storage, not usage
            raise storage_error(what, path, exc) from None
        raise OutputError(f"cannot open the {what} {path}: {exc}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise OutputError(f"refusing the {what} {path}: it is not a regular file")
    try:
        os.set_blocking(fd, True)
        if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) != mode:
            os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicFile:
    """A new temporary file beside ``target``, moved over it by :meth:`commit`.

    ``file`` is open for binary writing (and reading, for writers that seek back).
    Exactly one of :meth:`commit` and :meth:`discard` ends it.
    """

    def __init__(self, target: Path, *, mode: int = PRIVATE, what: str = "file") -> None:
        self.target = target
        self.what = what
        self.tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL
        fd = open_private(self.tmp, flags, what=f"temporary {what}", mode=mode)
        self.file: BinaryIO = os.fdopen(fd, "w+b")

    def commit(self) -> None:
        """Flush and fsync the file, rename it over the target, fsync the folder."""
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            check_target(self.target, self.what)
            self.tmp.replace(self.target)
            _fsync_dir(self.target.parent)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Close and remove the temporary file; the target is left as it was."""
        with contextlib.suppress(OSError):
            self.file.close()
        self.tmp.unlink(missing_ok=True)


def remove_stale(target: Path) -> list[Path]:
    """Remove the temporary files an :class:`AtomicFile` of ``target`` left behind (a run
    killed while writing it); the paths removed. Call it holding the target's lock."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[0-9a-f]{{12}}\.tmp")
    removed = []
    for path in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        if pattern.fullmatch(path.name):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_write(target: Path, *, mode: int = PRIVATE, what: str = "file") -> Iterator[BinaryIO]:
    """Write ``target`` all at once: the block writes a temporary file, committed on exit.

    An exception in the block (or while committing) removes the temporary file and
    leaves ``target`` untouched.
    """
    atomic = AtomicFile(target, mode=mode, what=what)
    try:
        yield atomic.file
    except BaseException:
        atomic.discard()
        raise
    atomic.commit()
