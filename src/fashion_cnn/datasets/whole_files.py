"""Saves that leave a whole file under its final name, or nothing.

A kedro-datasets file dataset writes straight to its final path, so a save cut short (Ctrl-C, a
kill, a full disk) leaves a truncated file there, which a versioned dataset then calls its latest
version. :class:`WholeFileMixin` makes such a dataset write to a temporary file beside the target,
flush it to disk, and only then give it its final name (``os.replace``; for a versioned dataset
``os.link``, which also refuses to overwrite another run's file of the same version). A failed or
interrupted save removes its temporary file; one left by a killed process is removed by the next
save into the same folder once that process is gone. Object stores (``s3://``, ...) make a
single upload visible whole or not at all, so saves there go straight through.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import socket
import time
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io import DatasetError

TEMP_PREFIX = ".tmp."
# A temporary file of another machine (shared storage) is removed once it is this old.
FOREIGN_TEMP_MAX_AGE = 24 * 3600.0
LOCAL_PROTOCOLS = ("file", "local")


def temp_path_for(final: Path, folder: Path) -> Path:
    """A unique name in ``folder`` that ends like ``final`` (writers check the extension)."""
    host = socket.gethostname().replace(".", "-")
    return folder / f"{TEMP_PREFIX}{host}.{os.getpid()}.{secrets.token_hex(4)}.{final.name}"


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host still runs (another user's counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _writer_is_gone(name: str, now: float, path: Path) -> bool:
    try:
        host, pid = name[len(TEMP_PREFIX):].split(".")[:2]
        pid_number = int(pid)
    except ValueError:
        return False
    if host != socket.gethostname().replace(".", "-"):
        try:
            return now - path.lstat().st_mtime > FOREIGN_TEMP_MAX_AGE
        except FileNotFoundError:
            return False
    return not process_alive(pid_number)


def sweep_stale_temps(folder: Path) -> list[Path]:
    """Remove the temporary files in ``folder`` whose writer was killed; return them."""
    removed = []
    now = time.time()
    for path in folder.glob(f"{TEMP_PREFIX}*") if folder.is_dir() else ():
        if _writer_is_gone(path.name, now, path):
            _remove(path)
            removed.append(path)
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def commit(temp: Path, final: Path, exclusive: bool) -> None:
    """Give the flushed ``temp`` the name ``final``; with ``exclusive``, never replace a file."""
    _fsync(temp)
    final.parent.mkdir(parents=True, exist_ok=True)
    if exclusive:
        try:
            os.link(temp, final)
        except FileExistsError:
            raise DatasetError(
                f"{final} already exists: another run saved this version at the same time. "
                "Nothing was overwritten; run again to get a new version."
            ) from None
        except OSError:  # a file system without hard links
            if final.exists():
                raise DatasetError(f"{final} already exists: another run saved this version.") from None
            os.rename(temp, final)
        else:
            temp.unlink()
    else:
        os.replace(temp, final)
    try:
        _fsync(final.parent)
    except OSError:  # some file systems cannot sync a directory; the rename itself is done
        pass


def disk_full_error(final: Path) -> DatasetError:
    free = shutil.disk_usage(final.parent if final.parent.exists() else Path.cwd()).free
    return DatasetError(
        f"No space left on the disk while saving {final} ({free / 1e6:.1f} MB free). Nothing was written "
        "under that name: the previous version, if any, is intact. Free some space there and run again."
    )


class WholeFileMixin:
    """Mixin for a kedro-datasets file dataset (versioned or not): every save appears whole under
    its final name or not at all, and a load that fails names the file or version folder at fault.

    The dataset's own save runs unchanged, but its ``_get_save_path()`` answers with a temporary
    path beside the target for the length of the save.
    """

    _temp_path: Path | None = None

    def _is_local(self) -> bool:
        return getattr(self, "_protocol", "file") in LOCAL_PROTOCOLS

    def save(self, data: Any) -> None:
        if not self._is_local():
            return super().save(data)  # type: ignore[misc]
        final = Path(str(super()._get_save_path()))  # type: ignore[misc]  # for a version: checks it is new
        versioned = bool(getattr(self, "_version", None))
        folder = Path(str(self._filepath)) if versioned else final.parent  # type: ignore[attr-defined]
        folder.mkdir(parents=True, exist_ok=True)
        sweep_stale_temps(folder)
        self._temp_path = temp_path_for(final, folder)
        try:
            self._write(data)
            commit(self._temp_path, final, exclusive=versioned)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise disk_full_error(final) from exc
            raise
        finally:
            temp, self._temp_path = self._temp_path, None
            _remove(temp)
        return None

    def _write(self, data: Any) -> None:
        """Write ``data`` to ``self._temp_path``: the dataset's own save, redirected, without
        Kedro's version wrapper around it (the wrapper around this class's save does that job)."""
        parent_save = super().save  # type: ignore[misc]
        write = getattr(parent_save, "__wrapped__", None)
        if write is None:
            parent_save(data)
        else:
            write(self, data)

    def _get_save_path(self) -> PurePosixPath:
        if self._temp_path is not None:
            return PurePosixPath(self._temp_path.as_posix())
        return super()._get_save_path()  # type: ignore[misc]

    def load(self) -> Any:
        try:
            return super().load()  # type: ignore[misc]
        except DatasetError as exc:
            named = self._load_error(exc)
            if named is exc:
                raise
            raise named from exc

    def _load_error(self, exc: DatasetError) -> DatasetError:
        if not getattr(self, "_version", None):
            return exc  # the message names the file already
        try:
            version = self.resolve_load_version()  # type: ignore[attr-defined]
        except DatasetError:
            return exc  # no version at all: Kedro's own message says so
        folder = Path(str(self._filepath)) / str(version)  # type: ignore[attr-defined]
        return DatasetError(
            f"Cannot read version {version} of {self._filepath} (folder {folder}): {exc}\n"  # type: ignore[attr-defined]
            f"Delete that folder to fall back to the previous version, or choose another one with "
            f"`kedro run --load-versions <dataset>:<version>`."
        )
