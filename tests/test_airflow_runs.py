"""The generated DAG run by Airflow itself (apache-airflow comes with the `airflow` extra), on the
`quick` environment (conf/quick/: every variant on a small subset for one epoch):

* `airflow dags test`: every task in one process, one after the other, as a developer checks a
  DAG before deploying it;
* Airflow's own services on 127.0.0.1 (scheduler, DAG processor, API server), the DAG triggered
  through the REST API and its tasks run by the LocalExecutor two at a time: the variants' tasks
  share `data/` (and the MLflow store), as workers on shared storage do.

Airflow's home, its SQLite metadata database and its logs live in pytest's tmp_path."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from support import copy_project, run_session
from kedro.io.core import VERSION_FORMAT
from test_airflow import generate_dag, parse_dag

from fashion_cnn.variants import load_variants

DAG_ID = "fashion-cnn"
ENV = "quick"
VARIANTS = sorted(load_variants())  # conf/base defines them; the `quick` environment only shrinks the work


def airflow_executable() -> Path:
    """The `airflow` command of the Python environment running the tests."""
    path = Path(sys.executable).with_name("airflow")
    if not path.is_file():
        pytest.fail(f"no Airflow next to {sys.executable}: install the `airflow` extra (it brings "
                    'apache-airflow), as the README\'s test command does: pip install -e ".[test,tracking,airflow]"')
    return path


def airflow_environment(home: Path, dags: Path, **settings: str) -> dict[str, str]:
    """This test's own Airflow: its home (airflow.cfg, the SQLite metadata database, the logs) and
    DAGs folder, no example DAGs, plus ``settings`` (``AIRFLOW__SECTION__KEY``)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    return env | {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        **settings,
    }


def tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def stop_processes(processes: list[subprocess.Popen], grace: float = 60.0) -> list[int]:
    """SIGTERM to each process (Airflow's services then stop their tasks themselves), then to any
    descendant still there after ``grace`` seconds (Airflow puts each task's process in a group of
    its own, so no group signal reaches them all), then SIGKILL; the pids still alive after that."""
    import psutil  # an Airflow dependency

    roots: list[psutil.Process] = []
    tree: list[psutil.Process] = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(process.pid)
            roots.append(root)
            tree += [root, *root.children(recursive=True)]  # all of them, before any parent exits
    for root in roots:
        with contextlib.suppress(psutil.NoSuchProcess):
            root.send_signal(signal.SIGTERM)
    psutil.wait_procs(roots, timeout=grace)
    alive = [member for member in tree if member.is_running()]
    for signum, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        for member in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.send_signal(signum)
        _, alive = psutil.wait_procs(alive, timeout=wait)
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)
    return [member.pid for member in alive]


def end_with_this_process() -> None:
    """In a child, before it runs Airflow: SIGTERM when the test's process ends, however it ends
    (Linux's parent-death signal), so that no Airflow outlives a killed test run."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_airflow(args: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen:
    """`airflow ARGS` in a session of its own, output to ``log``, ended with the test's process."""
    with log.open("wb") as output:
        return subprocess.Popen([airflow_executable(), *args], cwd=cwd, env=env, stdout=output,
                                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=end_with_this_process)


def run_airflow(args: list[str], env: dict[str, str], cwd: Path, log: Path, timeout: float) -> str:
    """`airflow ARGS` to the end (stopped with its children after ``timeout`` s); its output."""
    command = f"airflow {' '.join(args)}"
    process = start_airflow(args, env, cwd, log)
    try:
        code = process.wait(timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{command}` still running after {timeout:.0f} s, stopped; its output ({log}):\n{tail(log)}")
    finally:
        if process.poll() is None:
            stop_processes([process])
    if code != 0:
        pytest.fail(f"`{command}` exited with {code}; its output ({log}):\n{tail(log)}")
    return log.read_text(errors="replace")


def json_output(args: list[str], env: dict[str, str], cwd: Path, log: Path) -> Any:
    """The JSON that `airflow ... -o json` prints as its last line (warnings may come before it)."""
    output = run_airflow([*args, "-o", "json"], env, cwd, log, timeout=120)
    return json.loads(output.strip().splitlines()[-1])


def saved_after(folder: Path, moment: datetime) -> list[str]:
    """The Kedro save versions in a versioned dataset's folder that are later than ``moment``."""
    versions = [path.name for path in folder.iterdir()] if folder.is_dir() else []
    return [v for v in versions if datetime.strptime(v, VERSION_FORMAT).replace(tzinfo=timezone.utc) > moment]


def assert_every_output_written_since(project: Path, started: datetime) -> None:
    """Every variant's metrics and the comparison (table, Markdown, chart) are from this run."""
    reporting = project / "data/08_reporting"
    for variant in VARIANTS:
        assert saved_after(reporting / variant / "metrics.json", started), f"no metrics of {variant} from this run"
    for table in ("comparison.csv", "comparison.md"):
        assert (reporting / table).is_file(), f"no {table}"
        assert (reporting / table).stat().st_mtime > started.timestamp(), f"{table} is older than this run"
    assert saved_after(reporting / "comparison.png", started), "no comparison chart from this run"

    comparison = pd.read_csv(reporting / "comparison.csv").set_index("variant")
    assert sorted(comparison.index) == VARIANTS
    for variant in VARIANTS:  # the table was made from the metrics of this run
        (latest,) = sorted((reporting / variant / "metrics.json").glob("*/metrics.json"))[-1:]
        metrics = json.loads(latest.read_text())
        assert comparison.loc[variant, "test_accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-3)
        assert comparison.loc[variant, "epochs_run"] == metrics["epochs_run"] == 1


# ---- MLflow (the `tracking` extra) ----

def mlflow_client(project: Path) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")


def project_runs(client: Any) -> list:
    experiment = client.get_experiment_by_name("fashion_cnn")
    assert experiment is not None, "no MLflow experiment: is the `tracking` extra installed?"
    return client.search_runs([experiment.experiment_id], max_results=1000)


def artifact_paths(client: Any, run_id: str, folder: str | None = None) -> set[str]:
    paths = set()
    for item in client.list_artifacts(run_id, folder):
        paths |= artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return paths


def variant_run_layout(client: Any, run: Any) -> dict[str, Any]:
    """What a variant's MLflow run holds: its name, status, tags (less the parent's id and the program
    that started the process, `airflow` or `pytest`), parameters, the names of its metrics and its
    artifact files."""
    return {
        "name": run.info.run_name,
        "status": run.info.status,
        "tags": {key: value for key, value in run.data.tags.items()
                 if key not in ("mlflow.parentRunId", "mlflow.source.name")},
        "params": run.data.params,
        "metrics": sorted(run.data.metrics),
        "artifacts": sorted(artifact_paths(client, run.info.run_id)),
    }


def variant_runs_by_task(client: Any, dag_run_id: str) -> dict[str, list]:
    """{variant: [its MLflow runs]} of one Airflow DAG run."""
    found: dict[str, list] = {}
    for run in project_runs(client):
        if run.data.tags.get("airflow_dag_run_id") == dag_run_id and "variant" in run.data.tags:
            found.setdefault(run.data.tags["variant"], []).append(run)
    return found


@pytest.fixture(scope="module")
def dags_test_run(tmp_path_factory: pytest.TempPathFactory, real_data_dir: Path) -> Iterator[SimpleNamespace]:
    """`airflow dags test fashion-cnn` of the DAG generated with `--env quick`, in a project copy;
    the DAG's tasks, its one DAG run and Airflow's task states."""
    tmp_path = tmp_path_factory.mktemp("dags_test")
    project = copy_project(tmp_path / "project")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(project)
        started = datetime.now(timezone.utc)
        dag_file = generate_dag(project, tmp_path / "dags", env=ENV)
        _, tasks, _ = parse_dag(dag_file)
        env = airflow_environment(tmp_path / "airflow", dag_file.parent)
        logs = tmp_path / "logs"
        logs.mkdir()

        run_airflow(["db", "migrate"], env, project, logs / "db-migrate.log", timeout=180)
        # The DAG's tasks use the working directory as the project (`project_path = Path.cwd()`).
        run_airflow(["dags", "test", DAG_ID], env, project, logs / "dags-test.log", timeout=900)
        (dag_run,) = json_output(["dags", "list-runs", DAG_ID], env, project, logs / "list-runs.log")
        states = json_output(["tasks", "states-for-dag-run", DAG_ID, dag_run["run_id"]], env, project,
                             logs / "states.log")
        yield SimpleNamespace(project=project, started=started, tasks=tasks, dag_run=dag_run, states=states,
                              task_of={spec["namespaces"][0]: task for task, spec in tasks.items() if "namespaces" in spec})


def test_airflow_dags_test_runs_every_task_of_the_generated_dag(dags_test_run):
    run = dags_test_run
    assert run.dag_run["state"] == "success"
    assert {task["task_id"]: task["state"] for task in run.states} == dict.fromkeys(run.tasks, "success")
    assert_every_output_written_since(run.project, run.started)


def test_on_airflow_every_task_is_an_mlflow_run_tagged_with_its_task(dags_test_run):
    """kedro-mlflow's run of each task, tagged with the DAG run and task; a variant's run nested in
    its task's run; the comparison chart (the parent's under `kedro run`) in its task's run."""
    run = dags_test_run
    client = mlflow_client(run.project)
    task_runs = [mlflow_run for mlflow_run in project_runs(client) if "variant" not in mlflow_run.data.tags]
    assert sorted(mlflow_run.data.tags.get("airflow_task_id") for mlflow_run in task_runs) == sorted(run.tasks)
    assert {mlflow_run.data.tags.get("airflow_dag_run_id") for mlflow_run in task_runs} == {run.dag_run["run_id"]}
    task_run_ids = {mlflow_run.data.tags["airflow_task_id"]: mlflow_run.info.run_id for mlflow_run in task_runs}

    by_variant = variant_runs_by_task(client, run.dag_run["run_id"])
    assert sorted(by_variant) == VARIANTS and all(len(runs) == 1 for runs in by_variant.values())
    for variant, (variant_run,) in by_variant.items():
        assert variant_run.data.tags["mlflow.parentRunId"] == task_run_ids[run.task_of[variant]]
        assert variant_run.data.tags["airflow_task_id"] == run.task_of[variant]

    (chart_task,) = [task for task, spec in run.tasks.items() if "plot_comparison" in spec.get("node_names", [])]
    assert artifact_paths(client, task_run_ids[chart_task]) == {"figures/comparison.png"}


def test_a_variant_tasks_mlflow_run_is_laid_out_as_under_kedro_run(dags_test_run, tmp_path, monkeypatch):
    """The `cnn` task's variant run against the one of `kedro run --pipelines cnn --env quick`:
    the same name, tags, parameters, metric names and artifacts, plus the Airflow tags."""
    variant = "cnn"
    client = mlflow_client(dags_test_run.project)
    (on_airflow,) = variant_runs_by_task(client, dags_test_run.dag_run["run_id"])[variant]

    plain = copy_project(tmp_path / "plain")
    monkeypatch.chdir(plain)
    run_session(plain, [variant], env=ENV)
    plain_client = mlflow_client(plain)
    (under_kedro_run,) = [run for run in project_runs(plain_client) if run.data.tags.get("variant") == variant]

    layout = variant_run_layout(client, on_airflow)
    airflow_tags = {key: layout["tags"].pop(key) for key in list(layout["tags"]) if key.startswith("airflow_")}
    assert airflow_tags == {"airflow_dag_id": DAG_ID, "airflow_dag_run_id": dags_test_run.dag_run["run_id"],
                            "airflow_task_id": dags_test_run.task_of[variant], "airflow_try_number": "1"}
    assert layout == variant_run_layout(plain_client, under_kedro_run)


# ---- Airflow's services ----

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Services:
    """Airflow's scheduler, DAG processor and API server, each a process with its own log file."""

    def __init__(self, env: dict[str, str], cwd: Path, logs: Path, port: int) -> None:
        self.env, self.cwd, self.logs, self.port = env, cwd, logs, port
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self) -> None:
        commands = {
            "dag-processor": ["dag-processor"],
            # The LocalExecutor's tasks write their logs where the API server reads them: no log
            # server (it would listen on every interface).
            "scheduler": ["scheduler", "--skip-serve-logs"],
            "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(self.port)],
        }
        for name, args in commands.items():
            self.processes[name] = start_airflow(args, self.env, self.cwd, self.logs / f"{name}.log")

    def check_running(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                pytest.fail(f"Airflow's {name} exited with {process.returncode}:\n{tail(self.logs / f'{name}.log')}")

    def stop(self) -> list[int]:
        return stop_processes(list(self.processes.values()))


@contextlib.contextmanager
def airflow_services(env: dict[str, str], cwd: Path, logs: Path, port: int) -> Iterator[Services]:
    services = Services(env, cwd, logs, port)
    try:
        services.start()
        yield services
    finally:
        left = services.stop()
        assert not left, f"Airflow processes still alive after SIGKILL: {left}"


class RestApi:
    """Airflow's REST API (v2) on 127.0.0.1, with a token from the simple auth manager."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.token: str | None = None

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        request = urllib.request.Request(self.base + path, method=method,
                                         data=None if body is None else json.dumps(body).encode())
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            return 0, str(error)

    def log_in(self, username: str, password: str) -> None:
        status, body = self.call("POST", "/auth/token", {"username": username, "password": password})
        assert status == 201, (status, body)
        self.token = body["access_token"]


def wait_for(what: str, check: Callable[[], Any], timeout: float, services: Services, every: float = 2.0) -> Any:
    """``check()``'s first truthy result, polled while every service runs; fails after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        services.check_running()
        if result := check():
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {timeout:.0f} s (logs in {services.logs})")
        time.sleep(every)


def overlapping(intervals: dict[str, tuple[datetime, datetime]]) -> tuple[list[tuple[str, str]], int]:
    """The pairs of tasks whose runs overlapped in time, and the most that ran at once."""
    names = sorted(intervals)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]
             if intervals[a][0] < intervals[b][1] and intervals[b][0] < intervals[a][1]]
    events = sorted([(start, 1) for start, _ in intervals.values()] + [(end, -1) for _, end in intervals.values()])
    running = most = 0
    for _, step in events:  # at equal times, -1 sorts first: one ending as another starts is no overlap
        running += step
        most = max(most, running)
    return pairs, most


def test_airflows_scheduler_runs_the_variants_side_by_side(project, tmp_path):
    started = datetime.now(timezone.utc)
    dag_file = generate_dag(project, tmp_path / "dags", env=ENV)
    _, tasks, _ = parse_dag(dag_file)
    variant_tasks = {task for task, spec in tasks.items() if spec.get("namespaces", [None])[0] in VARIANTS}
    assert len(variant_tasks) == len(VARIANTS) >= 2

    home, logs, port = tmp_path / "airflow", tmp_path / "logs", free_port()
    home.mkdir()
    logs.mkdir()
    password = secrets.token_urlsafe(16)
    (home / "passwords.json").write_text(json.dumps({"tester": password}))
    env = airflow_environment(
        home, dag_file.parent,
        AIRFLOW__CORE__EXECUTOR="LocalExecutor",
        AIRFLOW__CORE__PARALLELISM="2",  # two tasks at a time, one per core
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__PORT=str(port),
        AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{port}",  # where the tasks report to (/execution/)
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="tester:admin",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(home / "passwords.json"),
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        # Only runs triggered through the API: the DAG's own schedule (`@once`) would add a second run.
        AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",
    )
    run_airflow(["db", "migrate"], env, project, logs / "db-migrate.log", timeout=180)

    api = RestApi(port)
    with airflow_services(env, project, logs, port) as services:
        wait_for("the API server", lambda: api.call("GET", "/api/v2/monitor/health")[0] == 200, 180, services)
        api.log_in("tester", password)
        wait_for(f"the DAG {DAG_ID} parsed", lambda: api.call("GET", f"/api/v2/dags/{DAG_ID}")[0] == 200,
                 180, services)
        status, dag_run = api.call("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None})
        assert status == 200, (status, dag_run)
        run_path = f"/api/v2/dags/{DAG_ID}/dagRuns/{dag_run['dag_run_id']}"

        def finished() -> dict | None:
            status, instances = api.call("GET", f"{run_path}/taskInstances")
            assert status == 200, (status, instances)
            failed = [ti["task_id"] for ti in instances["task_instances"]
                      if ti["state"] in ("failed", "up_for_retry", "upstream_failed")]
            assert not failed, f"tasks failed: {failed}; logs under {home / 'logs'}"
            status, run = api.call("GET", run_path)
            assert status == 200, (status, run)
            return run if run["state"] in ("success", "failed") else None

        run = wait_for("the DAG run to finish", finished, 900, services, every=5)
        status, instances = api.call("GET", f"{run_path}/taskInstances")

    assert run["state"] == "success"
    records = {ti["task_id"]: ti for ti in instances["task_instances"]}
    assert {task: ti["state"] for task, ti in records.items()} == dict.fromkeys(tasks, "success")
    times = {task: (datetime.fromisoformat(records[task]["start_date"]), datetime.fromisoformat(records[task]["end_date"]))
             for task in variant_tasks}
    pairs, most = overlapping(times)
    assert pairs, f"no two variant tasks ran at the same time: {times}"
    assert most <= 2, "more tasks at once than the executor's parallelism"
    assert_every_output_written_since(project, started)

    # Two tasks at a time on one MLflow store: still one finished run per variant, in its task's run.
    by_variant = variant_runs_by_task(mlflow_client(project), dag_run["dag_run_id"])
    assert sorted(by_variant) == VARIANTS
    assert all(len(runs) == 1 and runs[0].info.status == "FINISHED" for runs in by_variant.values())
