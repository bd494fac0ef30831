"""A record of every ``kedro run`` in ``data/.runs/``: who runs what, and one save version per run.

Kedro names a run's versions after the millisecond its session started, so two runs that start in
the same millisecond (two people, two Airflow tasks on shared storage) would write into the same
version folders. Each session therefore reserves its version as it starts, by creating
``data/.runs/<version>.json`` exclusively (``O_EXCL``, atomic on local disks and NFS), taking the
next millisecond while one is held (:func:`reserve`, called by
:class:`~fashion_cnn.runtime.session_store.RunVersionStore`). The run then claims its own
reservation (:func:`claim`); a version held by another run still stops it before anything runs,
with a message naming that run.
"""

from __future__ import annotations

import atexit
import getpass
import json
import os
import shlex
import socket
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from kedro.io.core import VERSION_FORMAT

from fashion_cnn.datasets.whole_files import commit, process_alive, temp_path_for

RUNS_FOLDER = Path("data") / ".runs"
# A run of another machine that never recorded its end is taken as gone after this long.
FOREIGN_RUN_MAX_AGE = 24 * 3600.0
# A session that finds this many consecutive milliseconds held gives up reserving (and its run's claim
# then names the run holding its version).
MAX_RESERVATION_TRIES = 10_000


class RunCollisionError(RuntimeError):
    """Another run holds this run's save version."""


def describe(record: dict[str, Any]) -> str:
    """``pid 123 on host by user, started 10:02:03: kedro run --pipelines cnn``."""
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.get("started", 0)))
    return (f"pid {record.get('pid')} on {record.get('host')} by {record.get('user')}, started {started}: "
            f"{record.get('command')}")


def _write_whole(path: Path, record: dict[str, Any]) -> None:
    temp = temp_path_for(path, path.parent)
    try:
        temp.write_text(json.dumps(record, indent=2))
        commit(temp, path, exclusive=False)
    finally:
        temp.unlink(missing_ok=True)


def next_version(version: str) -> str:
    """The save version one millisecond after ``version`` (Kedro's format: ``2026-11-28T10.57.08.123Z``)."""
    moment = datetime.strptime(version[:-1] + "000Z", VERSION_FORMAT).replace(tzinfo=timezone.utc)
    stamp = (moment + timedelta(milliseconds=1)).strftime(VERSION_FORMAT)
    return stamp[:-4] + stamp[-1:]


def reserve(project_path: Path, version: str) -> str:
    """Hold ``version``, or the first later millisecond that no other session holds, for this process's
    run; returns the version held. A reservation that no run claims is given back by :func:`release`, or
    when the process exits (a ``kedro viz`` or notebook session that never runs a pipeline)."""
    folder = project_path / RUNS_FOLDER
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for _ in range(MAX_RESERVATION_TRIES):
            if _create(folder / f"{version}.json", _record(version, reserved=True)):
                atexit.register(release, project_path, version)
                return version
            version = next_version(version)
    except OSError:  # a read-only project folder: nothing can be reserved, nor run
        pass
    return version


def claim(project_path: Path, version: str, pipelines: list[str] | None) -> Path:
    """Record this run under ``version``, reserved by this process or free; :class:`RunCollisionError`
    if another run holds it."""
    folder = project_path / RUNS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{version}.json"
    record = {**_record(version), "pipelines": pipelines or ["__default__"]}
    if _is_own_reservation(read(path)):
        _write_whole(path, record)
        return path
    if not _create(path, record):
        other = read(path)
        raise RunCollisionError(
            f"Another run holds this run's save version {version} ({describe(other) if other else path}). "
            f"Kedro names versions after the time a run starts, so start this run again: it gets a new "
            f"version. (The record is {path}.)"
        )
    return path


def _create(path: Path, record: dict[str, Any]) -> bool:
    """Write ``record`` to ``path`` unless a file is there (``O_EXCL``); False if one is."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w") as file:
        json.dump(record, file, indent=2)
    return True


def _record(version: str, reserved: bool = False) -> dict[str, Any]:
    record = {
        "version": version,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "user": _user(),
        "command": shlex.join(["kedro", *sys.argv[1:]]) if Path(sys.argv[0]).name == "kedro" else shlex.join(sys.argv),
        "started": time.time(),
    }
    return {**record, "reserved": True} if reserved else record


def _is_own_reservation(record: dict[str, Any] | None) -> bool:
    return bool(record and record.get("reserved") and record.get("pid") == os.getpid()
                and record.get("host") == socket.gethostname())


def release(project_path: Path, version: str) -> None:
    """Give back this process's reservation of ``version`` if no run claimed it."""
    path = project_path / RUNS_FOLDER / f"{version}.json"
    if _is_own_reservation(read(path)):
        path.unlink(missing_ok=True)


def finish(path: Path, outcome: str) -> None:
    """Record how the run ended (``succeeded``, ``failed``, ``interrupted``)."""
    record = read(path) or {}
    record.update(ended=time.time(), outcome=outcome)
    _write_whole(path, record)


def read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def active_runs(project_path: Path, besides: Path | None = None) -> list[dict[str, Any]]:
    """Runs of this project that have not ended and whose process still lives (on this host), or
    that started within a day (on another host, where a process cannot be asked)."""
    folder = project_path / RUNS_FOLDER
    now = time.time()
    active = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        if path == besides:
            continue
        record = read(path)
        if not record or "ended" in record or record.get("reserved"):
            continue
        if record.get("host") == socket.gethostname():
            if isinstance(record.get("pid"), int) and process_alive(record["pid"]):
                active.append(record)
        elif now - record.get("started", 0) < FOREIGN_RUN_MAX_AGE:
            active.append(record)
    return active


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
