"""Scale-out: the Airflow DAG from `kedro airflow create --group-by namespace` (parsed here; Airflow
itself runs it in test_airflow_runs.py), the persisted hand-offs between its tasks, and its tasks
run one by one."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import yaml
from support import QUICK, run_session
from kedro.framework.project import pipelines
from kedro.io import MemoryDataset

from fashion_cnn.variants import load_variants


def generate_dag(project: Path, target: Path, env: str | None = None) -> Path:
    """`kedro airflow create --group-by namespace [--env ENV]` (in this process, for speed)."""
    from click.testing import CliRunner
    from kedro.framework.startup import bootstrap_project

    try:
        from kedro_airflow.plugin import commands
    except ImportError as exc:
        pytest.fail(f"{exc}: install the `airflow` extra, as the README's test command does: "
                    'pip install -e ".[test,tracking,airflow]"')

    metadata = bootstrap_project(project)
    result = CliRunner().invoke(
        commands,
        ["airflow", "create", "--group-by", "namespace", "--target-dir", str(target), *(["--env", env] if env else [])],
        obj=metadata,
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    (dag_file,) = target.glob("*.py")
    return dag_file


def parse_dag(dag_file: Path) -> tuple[dict[str, str], dict[str, dict], set[tuple[str, str]]]:
    """Module-level string settings, the tasks ({task_id: {"namespaces"|"node_names": [...]}}) and
    the dependencies ({(upstream, downstream)}) of a generated DAG file."""
    tree = ast.parse(dag_file.read_text())
    settings = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    tasks, edges = {}, set()
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef):
            continue
        for decorator in function.decorator_list:
            if isinstance(decorator, ast.Call) and getattr(decorator.func, "id", None) == "task":
                (task_id,) = [ast.literal_eval(k.value) for k in decorator.keywords if k.arg == "task_id"]
                (call,) = [c for c in ast.walk(function) if isinstance(c, ast.Call)
                           and getattr(c.func, "id", None) == "_run_kedro_node"]
                assert task_id not in tasks, f"task {task_id} twice"
                tasks[task_id] = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.RShift):
            edges.add((ast.literal_eval(node.left.slice), ast.literal_eval(node.right.slice)))
    return settings, tasks, edges


def upstream_of(task: str, edges: set[tuple[str, str]]) -> set[str]:
    found, todo = set(), [task]
    while todo:
        current = todo.pop()
        for before, after in edges:
            if after == current and before not in found:
                found.add(before)
                todo.append(before)
    return found


def test_the_dag_has_one_task_per_variant_and_the_shared_steps(project, tmp_path):
    dag_file = generate_dag(project, tmp_path / "dags")
    compile(dag_file.read_text(), str(dag_file), "exec")
    settings, tasks, edges = parse_dag(dag_file)
    assert settings["env"] == "local" and settings["pipeline_name"] == "__default__"

    variants = list(load_variants())
    by_namespace = {spec["namespaces"][0]: task for task, spec in tasks.items() if "namespaces" in spec}
    assert all(len(spec.get("namespaces", [None])) == 1 for spec in tasks.values())
    for variant in variants:
        assert variant in by_namespace, f"no task runs the namespace of variant {variant!r}"
    assert "data_processing" in by_namespace, "the shared data processing is one task"
    data_task = by_namespace.pop("data_processing")
    assert sorted(by_namespace) == sorted(variants), "one task per variant, nothing else namespaced"
    for variant in variants:
        assert upstream_of(by_namespace[variant], edges) == {data_task}

    # Every node of the pipeline runs in exactly one task.
    default = pipelines["__default__"]
    covered = []
    for spec in tasks.values():
        if "namespaces" in spec:
            covered += [n.name for n in default.nodes if n.namespace and n.namespace.split(".")[0] in spec["namespaces"]]
        else:
            covered += spec["node_names"]
    assert sorted(covered) == sorted(n.name for n in default.nodes)

    # The comparison (if the project has one) runs after every variant.
    if "compare" in pipelines:
        others = {n.name for n in pipelines["compare"].nodes} - {n.name for n in pipelines["data_processing"].nodes}
        compare_nodes = {n for n in others if not any(n.startswith(f"{v}.") for v in variants)}
        compare_tasks = [task for task, spec in tasks.items() if set(spec.get("node_names", [])) & compare_nodes]
        assert compare_tasks
        for task in compare_tasks:
            assert set(by_namespace.values()) <= upstream_of(task, edges), f"{task} can start before a variant"


def test_what_crosses_a_task_boundary_is_persisted(project):
    """Each task is its own `kedro run` (often its own container): a MemoryDataset between two
    tasks would be empty in the second, so every such dataset must be a file in the catalog."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    default = pipelines["__default__"]
    group_of = {name: group.name for group in default.group_nodes_by("namespace") for name in group.nodes}
    producer = {output: group_of[n.name] for n in default.nodes for output in n.outputs}
    handoffs = {name for n in default.nodes for name in n.inputs
                if name in producer and producer[name] != group_of[n.name]}
    assert "model_inputs" in handoffs

    with KedroSession.create(project_path=project) as session:
        catalog = session.load_context().catalog
        for name in sorted(handoffs):
            dataset = catalog[name]
            assert not isinstance(dataset, MemoryDataset), f"{name} would not reach the next task"
            assert getattr(dataset, "_filepath", None), f"{name} has no file path"


def test_the_dags_tasks_run_one_after_the_other(project):
    """What the DAG does, without Airflow: the data task, then a variant's task, each its own
    session (here with tracking disabled: the hook then stays out of the way)."""
    mlflow_yml = project / "conf/base/mlflow.yml"
    config = yaml.safe_load(mlflow_yml.read_text())
    config["tracking"]["disable_tracking"]["pipelines"] = ["__default__"]
    mlflow_yml.write_text(yaml.safe_dump(config))

    variant = next(iter(load_variants()))
    params = {**QUICK, f"{variant}.training.epochs": 1, f"{variant}.training.verbose": 0}
    run_session(project, ["__default__"], params, namespaces=["data_processing"])
    assert [p.name for p in (project / "data/05_model_input").iterdir() if p.is_file()] == ["model_inputs.npz"]
    assert not (project / f"data/06_models/{variant}").exists()

    run_session(project, ["__default__"], params, namespaces=[variant])
    (metrics_file,) = project.glob(f"data/08_reporting/{variant}/metrics.json/*/metrics.json")
    metrics = json.loads(metrics_file.read_text())
    assert metrics["test_images"] == QUICK["data.test_limit"] and metrics["epochs_run"] == 1

    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        return
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(config["tracking"]["experiment"]["name"])
    assert experiment is None or client.search_runs([experiment.experiment_id]) == []

