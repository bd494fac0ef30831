"""Saves that leave a whole file (or folder) under its final name, or nothing (docs/reliability.md): written
beside the target under a temporary name, flushed, then renamed (for a version ``os.link``, which refuses to
overwrite another run's file). Object stores show an upload whole or not at all: saves there go straight through."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import socket
import time
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import DatasetError, VersionNotFoundError

TEMP_PREFIX = ".tmp."
FOREIGN_TEMP_MAX_AGE = 24 * 3600.0  # another machine's temporary file (shared storage): removed this old
LOCAL_PROTOCOLS = ("file", "local")
_HOST = socket.gethostname().replace(".", "-")
_FULL = (errno.ENOSPC, errno.EDQUOT)


def temp_path_for(final: Path, folder: Path) -> Path:
    """A unique name in ``folder`` that ends like ``final`` (writers check the extension)."""
    return folder / f"{TEMP_PREFIX}{_HOST}.{os.getpid()}.{secrets.token_hex(4)}.{final.name}"


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host still runs (another user's counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def sweep_stale_temps(folder: Path) -> None:
    """Remove the temporary files in ``folder`` whose writer is gone: on this host, its process has
    ended; on another, which cannot be asked, after ``FOREIGN_TEMP_MAX_AGE``."""
    for path in folder.glob(f"{TEMP_PREFIX}*") if folder.is_dir() else ():
        try:
            host, pid = path.name[len(TEMP_PREFIX):].split(".")[:2]
            alive = process_alive(int(pid)) if host == _HOST else (
                time.time() - path.lstat().st_mtime <= FOREIGN_TEMP_MAX_AGE)
        except (ValueError, FileNotFoundError):  # not one of ours, or removed meanwhile
            continue
        if not alive:
            _remove(path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):  # not unlink regardless: on a read-only disk it raises even for nothing
        path.unlink(missing_ok=True)


def _fsync(*paths: Path) -> None:
    for path in paths:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def commit(temp: Path, final: Path, exclusive: bool) -> None:
    """Flush ``temp`` (a file, or a folder and all in it) and give it the name ``final`` (the caller removes
    ``temp`` after); with ``exclusive``, never replace anything. A folder replaces an earlier one by two
    renames: for an instant there is none under that name, never a partial one."""
    _fsync(*(temp.rglob("*") if temp.is_dir() else ()), temp)
    final.parent.mkdir(parents=True, exist_ok=True)
    old = temp_path_for(final, final.parent)  # where an earlier folder waits while the new one moves in
    try:
        if not exclusive:
            if temp.is_dir() and final.exists():  # os.replace cannot replace a folder with files in it
                os.rename(final, old)
            os.replace(temp, final)
        else:
            try:
                os.link(temp, final)  # fails where a file is, as O_EXCL does
            except OSError as exc:
                if isinstance(exc, FileExistsError) or final.exists():
                    raise DatasetError(f"{final} already exists: another run saved this version at the same time. "
                                       "Nothing was overwritten; run again to get a new version.") from None
                os.rename(temp, final)  # a file system without hard links
    finally:
        if os.path.lexists(old) and not os.path.lexists(final):
            os.rename(old, final)  # the earlier folder goes back in place
        _remove(old)
    with contextlib.suppress(OSError):  # some file systems cannot sync a folder; the rename is done
        _fsync(final.parent)


def _disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc``, or an error it came from, is a full disk: Python's OSError(ENOSPC, EDQUOT), or the
    ResourceExhaustedError of TensorFlow's C++ writers (out of memory is one too) with the C library's text."""
    return exc is not None and (
        isinstance(exc, OSError) and exc.errno in _FULL
        or type(exc).__module__.startswith("tensorflow") and any(os.strerror(code) in str(exc) for code in _FULL)
        or _disk_full(exc.__cause__ or exc.__context__))


@contextlib.contextmanager
def whole_save(final: Path, folder: Path, exclusive: bool = False) -> Iterator[Path]:
    """A temporary path in ``folder`` to write ``final`` to, then committed; removed whatever happens.
    A full disk, whichever layer finds it, ends in the one message, with the free space of that disk."""
    temp = temp_path_for(final, folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)  # in the try: it can be what finds the disk full
        sweep_stale_temps(folder)
        yield temp
        commit(temp, final, exclusive)
    except BaseException as exc:
        if _disk_full(exc):
            free = shutil.disk_usage(existing_ancestor(final.parent)).free  # that disk's, not the cwd's
            raise DatasetError(f"No space left on the disk while saving {final} ({free / 1e6:.1f} MB free). Nothing "
                               "was written under that name: the previous version, if any, is intact. Free some "
                               "space there and run again.") from exc
        raise
    finally:
        _remove(temp)


def existing_ancestor(path: Path) -> Path:
    """``path`` itself if it exists, else its nearest existing ancestor (where it would be created)."""
    return next((each for each in (path, *path.parents) if each.exists()), path)


def unwritable_folders(folders: Iterable[Path]) -> list[str]:
    """One line per folder in which a run cannot save (read-only mount, no permission), naming the run's
    folders it blocks (one still to be created counts as its nearest existing ancestor). Each is tried
    for real, once, by creating a file: permission bits say nothing for root, nor on some network disks."""
    wanted: dict[Path, set[str]] = {}
    for folder in (Path(folder).absolute() for folder in folders):
        wanted.setdefault(existing_ancestor(folder), set()).add(str(folder))
    problems = []
    for existing, those in wanted.items():
        if (reason := _cannot_create_in(existing)) is not None:
            below = sorted(those - {str(existing)})
            more = f" and {len(below) - 3} more" if len(below) > 3 else ""
            saves = f" (the run saves into {', '.join(below[:3])}{more})" if below else ""
            problems.append(f"Cannot write to {existing}{saves}: {reason}. Nothing has been trained or written; "
                            "run again once it is writable.")
    return problems


def _cannot_create_in(folder: Path) -> str | None:
    """Why no file can be created in ``folder`` (with what to do), or None if one can."""
    probe = temp_path_for(Path("write-check"), folder)  # a name the next save's sweep would remove
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError as exc:
        if exc.errno == errno.EROFS:
            return "it is on a read-only file system (remount it read-write, or save elsewhere)"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return f"this user (uid {os.geteuid()}) may not create files there (give it write permission)"
        return (exc.strerror or str(exc)).lower()
    probe.unlink()
    return None


class WholeFileMixin:
    """Mixin for a kedro-datasets file dataset (versioned or not): its own save runs unchanged, but for its
    length ``_get_save_path()`` answers with a temporary path beside the target, committed after. A load
    that fails names the version folder at fault."""

    _temp_path: PurePosixPath | None = None
    _filepath: PurePosixPath

    def save(self, data: Any) -> None:
        if getattr(self, "_protocol", "file") not in LOCAL_PROTOCOLS:
            return super().save(data)  # type: ignore[misc]
        final = Path(str(super()._get_save_path()))  # type: ignore[misc]  # for a version: checks it is new
        versioned = bool(getattr(self, "_version", None))
        with whole_save(final, Path(str(self._filepath)) if versioned else final.parent, versioned) as temp:
            self._temp_path = PurePosixPath(temp.as_posix())
            try:  # the dataset's own save, without Kedro's version wrapper (the one around this save does that)
                super().save.__wrapped__(self, data)  # type: ignore[misc]
            finally:
                self._temp_path = None

    def _get_save_path(self) -> PurePosixPath:
        return self._temp_path or super()._get_save_path()  # type: ignore[misc]

    def load(self) -> Any:
        try:
            return super().load()  # type: ignore[misc]
        except DatasetError as exc:
            if isinstance(exc, VersionNotFoundError) or not getattr(self, "_version", None):
                raise  # no version at all: Kedro's own message says so; unversioned: it names the file already
            version = self.resolve_load_version()  # type: ignore[attr-defined]
            raise DatasetError(
                f"Cannot read version {version} of {self._filepath} (folder {Path(str(self._filepath), version)}): "
                f"{exc}\nDelete that folder to fall back to the previous version, or choose another one with "
                "`kedro run --load-versions <dataset>:<version>`.") from exc
