"""A record of every ``kedro run`` in ``data/.runs/``: who runs what, and one save version per run.

Kedro names a run's versions after the millisecond it started, so two runs that start in the same
millisecond (two people, two Airflow tasks on shared storage) would write into the same version
folders. Each run claims its version by creating ``data/.runs/<version>.json`` exclusively
(``O_EXCL``, atomic on local disks and NFS); a second claim fails before anything runs, with a
message naming the run that holds it.
"""

from __future__ import annotations

import getpass
import json
import os
import shlex
import socket
import sys
import time
from pathlib import Path
from typing import Any

from fashion_cnn.datasets.whole_files import commit, process_alive, temp_path_for

RUNS_FOLDER = Path("data") / ".runs"
# A run of another machine that never recorded its end is taken as gone after this long.
FOREIGN_RUN_MAX_AGE = 24 * 3600.0


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


def claim(project_path: Path, version: str, pipelines: list[str] | None) -> Path:
    """Record this run under ``version``; :class:`RunCollisionError` if another run holds it."""
    folder = project_path / RUNS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{version}.json"
    record = {
        "version": version,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "user": _user(),
        "command": shlex.join(["kedro", *sys.argv[1:]]) if Path(sys.argv[0]).name == "kedro" else shlex.join(sys.argv),
        "pipelines": pipelines or ["__default__"],
        "started": time.time(),
    }
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        other = read(path)
        raise RunCollisionError(
            f"Another run started in the same millisecond and holds the save version {version} "
            f"({describe(other) if other else path}). Kedro names versions after the time a run starts, so "
            f"start this run again: it gets a new version. (The record is {path}.)"
        ) from None
    with os.fdopen(descriptor, "w") as file:
        json.dump(record, file, indent=2)
    return path


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
        if not record or "ended" in record:
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
