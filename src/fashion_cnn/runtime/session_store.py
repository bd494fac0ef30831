"""A Kedro session store whose session id, which Kedro uses as the run's save version, no other run holds."""

from __future__ import annotations

from pathlib import Path

from kedro.framework.session.store import BaseSessionStore

from fashion_cnn.runtime import runs


class RunVersionStore(BaseSessionStore):
    """Kedro's default store (nothing persisted), with the version :func:`runs.reserve` holds as the
    ``session_id``. Kedro's ``path``, ``<project>/sessions``, is the only way a store learns the project
    folder (Airflow tasks run with another working directory)."""

    def __init__(self, path: str, session_id: str) -> None:
        self._project = Path(path).parent
        self._version = runs.reserve(self._project, session_id)
        super().__init__(path, self._version)
        self.data["session_id"] = self._version

    def __setitem__(self, key: str, value: object) -> None:
        # KedroSession.create stores the time it took as the id after building the store: keep ours.
        super().__setitem__(key, self._version if key == "session_id" else value)

    def save(self) -> None:
        """The session closes: give back the version if no run claimed it (its checks failed, say)."""
        runs.release(self._project, self._version)
