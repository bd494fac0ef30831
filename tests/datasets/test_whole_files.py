"""`unwritable_folders`, the check that a run can save where it will: a real read-only mount (tmpfs;
root needed, as CI has) and real missing permission (a forked process of user nobody), tried for
real, with nothing left behind."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from support import tmpfs

from fashion_cnn.datasets.whole_files import unwritable_folders

NOBODY = 65534


def read_only_disk(mount_point: Path):
    return tmpfs(mount_point, "ro,size=1m")


def test_a_read_only_folder_is_reported_in_one_line_naming_it(tmp_path):
    with read_only_disk(tmp_path / "models") as models:
        (problem,) = unwritable_folders([models])
    assert problem.startswith(f"Cannot write to {models}: it is on a read-only file system")
    assert "\n" not in problem


def test_folders_still_to_be_created_on_a_read_only_disk_are_reported_once_by_their_existing_folder(tmp_path):
    with read_only_disk(tmp_path / "models") as models:
        (problem,) = unwritable_folders([models / "cnn", models / "dense/model.keras", models / "cnn"])
    assert problem.startswith(f"Cannot write to {models} (the run saves into {models}/cnn, {models}/dense/model.keras)")
    assert "read-only file system" in problem


def test_writable_folders_give_nothing_and_are_left_as_they_were(tmp_path):
    (tmp_path / "reporting").mkdir()
    assert unwritable_folders([tmp_path / "reporting", tmp_path / "models/cnn", tmp_path]) == []
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["reporting"]  # no probe file, no folder made


def as_nobody(folders: list[Path]) -> list[str]:
    """``unwritable_folders`` as user nobody, in a forked copy of this process: root's writes ignore
    permission bits, so only another user shows them."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop root, check, report, and leave without pytest's teardown
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.write(write, json.dumps(unwritable_folders(folders)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        found = answer.read()
    os.waitpid(pid, 0)
    return json.loads(found)


def test_a_folder_without_write_permission_is_reported_for_a_user_without_it():
    with tempfile.TemporaryDirectory(dir="/tmp") as top:  # pytest's tmp_path is root's alone
        shared = Path(top)
        shared.chmod(0o755)
        (shared / "theirs").mkdir(mode=0o755)
        (shared / "open").mkdir()
        (shared / "open").chmod(0o777)
        problems = as_nobody([shared / "theirs/cnn", shared / "open"])
        assert len(problems) == 1, problems
        assert problems[0].startswith(f"Cannot write to {shared}/theirs (the run saves into {shared}/theirs/cnn): "
                                      f"this user (uid {NOBODY}) may not create files there")
        assert sorted(p.name for p in shared.rglob("*")) == ["open", "theirs"]
