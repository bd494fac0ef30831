"""A record of every ``kedro run`` in ``data/.runs/``, and one save version per run (docs/reliability.md): Kedro names
a run's versions after the millisecond its session started, and two runs can start in the same one. So each session
(:class:`RunVersionStore`) reserves its version, or the next free millisecond, by creating ``data/.runs/<version>.json``
exclusively (:func:`reserve`); the run then claims it (:func:`claim`), or stops naming the run that holds it."""

from __future__ import annotations

import atexit
import contextlib
import getpass
import json
import os
import shlex
import socket
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from kedro.framework.session.store import BaseSessionStore
from kedro.io import DatasetError
from kedro.io.core import VERSION_FORMAT

from fashion_cnn.datasets.whole_files import commit, process_alive, temp_path_for

RUNS_FOLDER = Path("data") / ".runs"
FOREIGN_RUN_MAX_AGE = 24 * 3600.0  # a run of another host that never recorded its end is gone after this
MAX_RESERVATION_TRIES = 10_000  # milliseconds held in a row before a session gives up (its claim then fails)


class RunCollisionError(RuntimeError):
    """Another run holds this run's save version."""


def describe(record: dict[str, Any]) -> str:
    """``pid 123 on host by user, started 2026-11-28 10:02:03: kedro run --pipelines cnn``."""
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.get("started", 0)))
    return (f"pid {record.get('pid')} on {record.get('host')} by {record.get('user')}, started {started}: "
            f"{record.get('command')}")


def next_version(version: str) -> str:
    """The save version one millisecond after ``version`` (Kedro's format: ``2026-11-28T10.57.08.123Z``)."""
    stamp = (datetime.strptime(version, VERSION_FORMAT) + timedelta(milliseconds=1)).strftime(VERSION_FORMAT)
    return stamp[:-4] + stamp[-1:]


def reserve(project_path: Path, version: str) -> str:
    """Hold ``version``, or the first later millisecond no other session holds, and return it. Unless a
    run claims it, it is given back by :func:`release` or at exit (a session that runs nothing)."""
    with contextlib.suppress(OSError):  # a read-only project folder: nothing can be reserved, nor run
        for _ in range(MAX_RESERVATION_TRIES):
            if _write(project_path / RUNS_FOLDER / f"{version}.json", _record(version, reserved=True), exclusive=True):
                atexit.register(release, project_path, version)
                return version
            version = next_version(version)
    return version


def claim(project_path: Path, version: str, pipelines: list[str] | None) -> Path:
    """Record this run under ``version``, reserved by this process or free, else RunCollisionError."""
    path = project_path / RUNS_FOLDER / f"{version}.json"
    if not _write(path, _record(version, pipelines=pipelines or ["__default__"]), exclusive=not _own_reservation(path)):
        holder = describe(other) if (other := read(path)) else path
        raise RunCollisionError(f"Another run holds this run's save version {version} ({holder}). Kedro names "
                                "versions after the time a run starts, so start this run again: it gets a new "
                                f"version. (The record is {path}.)")
    return path


def release(project_path: Path, version: str) -> None:
    """Give back this process's reservation of ``version`` if no run claimed it."""
    path = project_path / RUNS_FOLDER / f"{version}.json"
    if _own_reservation(path):
        path.unlink(missing_ok=True)


def finish(path: Path, outcome: str) -> None:
    """Record how the run ended (``succeeded``, ``failed``, ``interrupted``)."""
    _write(path, {**(read(path) or {}), "ended": time.time(), "outcome": outcome})


def read(path: Path) -> dict[str, Any] | None:
    with contextlib.suppress(OSError, ValueError):
        return json.loads(path.read_text())
    return None


def active_runs(project_path: Path, besides: Path | None = None) -> list[dict[str, Any]]:
    """Runs of this project not ended whose process still lives (on this host), or that started
    within a day (on another host, where a process cannot be asked)."""
    here, now = socket.gethostname(), time.time()
    paths = sorted((project_path / RUNS_FOLDER).glob("[!.]*.json"))  # not the temporary files
    records = [read(path) for path in paths if path != besides]
    return [record for record in records if record and "ended" not in record and not record.get("reserved") and (
        now - record.get("started", 0) < FOREIGN_RUN_MAX_AGE if record.get("host") != here
        else isinstance(record.get("pid"), int) and process_alive(record["pid"]))]


def _write(path: Path, record: dict[str, Any], exclusive: bool = False) -> bool:
    """Write ``record`` whole: a temporary file renamed into place, or with ``exclusive`` hard-linked,
    which fails where a file is, as ``O_EXCL`` does (False). See whole_files.commit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_path_for(path, path.parent)
    try:
        temp.write_text(json.dumps(record, indent=2))
        commit(temp, path, exclusive)
        return True
    except DatasetError:  # exclusive, and a file is there
        return False
    finally:
        temp.unlink(missing_ok=True)


def _record(version: str, **extra: Any) -> dict[str, Any]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    argv = ["kedro", *sys.argv[1:]] if Path(sys.argv[0]).name == "kedro" else sys.argv
    return {"version": version, "pid": os.getpid(), "host": socket.gethostname(), "user": user,
            "command": shlex.join(argv), "started": time.time(), **extra}


def _own_reservation(path: Path) -> bool:
    record = read(path) or {}
    return (record.get("reserved"), record.get("pid"), record.get("host")) == (True, os.getpid(), socket.gethostname())


class RunVersionStore(BaseSessionStore):
    """Kedro's default store (nothing persisted), with the version :func:`reserve` holds as the ``session_id``.
    Kedro's ``path``, ``<project>/sessions``, is the only way a store learns the project folder (Airflow tasks
    run with another working directory)."""

    def __init__(self, path: str, session_id: str) -> None:
        self._project = Path(path).parent
        self._version = reserve(self._project, session_id)
        super().__init__(path, self._version)
        self.data["session_id"] = self._version

    def __setitem__(self, key: str, value: object) -> None:
        # KedroSession.create stores the time it took as the id after building the store: keep ours.
        super().__setitem__(key, self._version if key == "session_id" else value)

    def save(self) -> None:
        """The session closes: give back the version if no run claimed it (its checks failed, say)."""
        release(self._project, self._version)
