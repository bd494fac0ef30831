"""Experiment tracking (the `tracking` extra, kedro-mlflow): one MLflow run per variant, read back
through the MLflow client, its files logged by conf/base/tracking_catalog.yml; and without the
extra, the project runs exactly as before."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml
from support import PROJECT_ROOT, QUICK, copy_project, nest, run_session
from kedro.framework.project import pipelines

from fashion_cnn.variants import load_variants


def require_tracking_extra():
    try:
        import kedro_mlflow  # noqa: F401
        import mlflow  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"{exc}: install the `tracking` extra, as the README's test command does: "
                    'pip install -e ".[test,tracking,airflow]"')


def quick_params(variants: list[str]) -> dict:
    params = dict(QUICK)
    for name in variants:
        params |= {f"{name}.training.epochs": 1, f"{name}.training.verbose": 0}
    return params


def mlflow_runs(project: Path) -> list:
    """Every run of the project's experiment, from the tracking store configured in mlflow.yml."""
    from mlflow.tracking import MlflowClient

    config = yaml.safe_load((project / "conf/base/mlflow.yml").read_text())
    assert config["server"]["mlflow_tracking_uri"].startswith("sqlite:///")
    assert (project / "mlflow.db").is_file(), "the default store is a SQLite file in the project"
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(config["tracking"]["experiment"]["name"])
    return client, (client.search_runs([experiment.experiment_id]) if experiment else [])


def latest_json(project: Path, pattern: str) -> dict:
    return json.loads(sorted(project.glob(pattern))[-1].read_text())


def test_a_two_variant_run_gives_one_mlflow_run_per_variant(project):
    require_tracking_extra()
    variants = load_variants()
    names = list(variants)[:2]
    assert len(names) == 2, "the parameters define fewer than two variants"
    catalog = run_session(project, names, quick_params(names))

    client, runs = mlflow_runs(project)
    parents = [run for run in runs if "variant" not in run.data.tags]
    children = {run.data.tags["variant"]: run for run in runs if "variant" in run.data.tags}
    assert len(parents) == 1, "one run for the `kedro run` (kedro-mlflow's)"
    assert sorted(children) == sorted(names) and len(runs) == 3, "and exactly one nested run per variant"

    for name, run in children.items():
        data, spec = run.data, variants[name]
        assert run.info.run_name == name and run.info.status == "FINISHED"
        assert data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert run.info.artifact_uri.startswith((project / "mlartifacts").as_uri())

        # Parameters: the architecture (layer types in order), the effective training settings,
        # and what kedro-mlflow itself logged for the variant's nodes (their `params:` inputs).
        layer_types = [entry if isinstance(entry, str) else next(iter(entry)) for entry in spec["architecture"]]
        assert [layer.split("(")[0] for layer in data.params["architecture"].split(" > ")] == layer_types
        assert data.params["description"] == spec["description"]
        settings = json.loads((project / f"data/05_model_input/{name}/training_settings.json").read_text())
        assert settings["epochs"] == 1
        assert data.params["training.epochs"] == "1"
        assert data.params["training.batch_size"] == str(settings["batch_size"])
        assert data.params["training.optimizer"] == settings["optimizer"]
        assert data.params[f"{name}.training.epochs"] == "1"  # kedro-mlflow's own, in the variant's run
        assert not any(key.startswith(f"{name}.") for key in parents[0].data.params)

        # Metrics: the reported test metrics, epochs, seconds, and the per-epoch history.
        metrics = latest_json(project, f"data/08_reporting/{name}/metrics.json/*/metrics.json")
        for key in ("test_loss", "test_accuracy", "epochs_run", "training_seconds", "parameter_count"):
            assert data.metrics[key] == pytest.approx(metrics[key]), key
        assert data.metrics["epochs_run"] == 1 and data.metrics["training_seconds"] > 0
        history = pd.read_csv(project / f"data/07_model_output/{name}/training_history.csv")
        logged = client.get_metric_history(run.info.run_id, "history/loss")
        assert [(m.step, round(m.value, 5)) for m in logged] == [
            (int(epoch), round(loss, 5)) for epoch, loss in zip(history["epoch"], history["loss"], strict=True)
        ]

        # Artifacts: the model summary as written to the catalog, and every figure of the variant.
        summary = client.download_artifacts(run.info.run_id, "model_summary.txt", str(project / "downloads" / name))
        assert Path(summary).read_text() == (project / f"data/08_reporting/{name}/model_summary.txt").read_text()
        # The files without versions are kedro-mlflow's MlflowArtifactDataset, which logged each file
        # as it saved it; the versioned ones (metrics.json, figures) the hook logged once saved. Each
        # artifact is the very file of this run.
        unversioned = {"training_settings": "data/05_model_input/{}/training_settings.json",
                       "model_summary": "data/08_reporting/{}/model_summary.txt",
                       "training_history": "data/07_model_output/{}/training_history.csv",
                       "per_class_accuracy": "data/08_reporting/{}/per_class_accuracy.csv",
                       "most_confused": "data/08_reporting/{}/most_confused.csv"}
        for dataset, path in unversioned.items():
            assert type(catalog[f"{name}.{dataset}"]).__name__.startswith("Mlflow"), dataset  # kedro-mlflow's wrapper
            logged = client.download_artifacts(run.info.run_id, Path(path).name, str(project / "downloads" / name))
            assert Path(logged).read_bytes() == (project / path.format(name)).read_bytes(), dataset
        (metrics_file,) = project.glob(f"data/08_reporting/{name}/metrics.json/*/metrics.json")
        (model_file,) = project.glob(f"data/06_models/{name}/model.keras/*/model.keras")
        assert metrics_file.parent.name == model_file.parent.name, "one save version for the run's files"
        logged = client.download_artifacts(run.info.run_id, "metrics.json", str(project / "downloads" / name))
        assert Path(logged).read_bytes() == metrics_file.read_bytes()
        assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"variant.json", "metrics.json", "figures"}
        # The trained model, as an MLflow model of the variant's run (read back in tests/test_predict.py).
        models = client.search_logged_models([run.info.experiment_id], f"source_run_id = '{run.info.run_id}'")
        assert [model.name for model in models] == ["model"]
        figures = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
        outputs = {output for node in pipelines[name].nodes if node.namespace == name for output in node.outputs}
        expected = {
            f"figures/{dataset[len(name) + 1:]}"
            for dataset in outputs
            if type(catalog[dataset]).__name__ == "MatplotlibDataset"
        }
        assert {path.removesuffix(".png") for path in figures} == expected
        # Each figure is the very PNG file the catalog saved (logged, not rendered a second time).
        grid = client.download_artifacts(run.info.run_id, "figures/confusion_matrix.png", str(project / "downloads" / name))
        saved = sorted((project / f"data/08_reporting/{name}/confusion_matrix.png").glob("*/confusion_matrix.png"))[-1]
        assert Path(grid).read_bytes() == saved.read_bytes()
    assert client.list_artifacts(parents[0].info.run_id) == [], "the variants' files are in their own runs"


def test_without_the_extra_the_project_runs_as_before(project):
    """kedro-mlflow and mlflow made unimportable and their entry points invisible, as if not
    installed: a variant run succeeds, prints no warning, and never imports MLflow."""
    name = next(iter(load_variants()))
    params = nest(quick_params([name]))
    script = textwrap.dedent(
        f"""
        import importlib.abc, importlib.metadata, json, sys

        HIDDEN = {{"kedro_mlflow", "mlflow"}}

        class NotInstalled(importlib.abc.MetaPathFinder):
            def find_spec(self, fullname, path=None, target=None):
                if fullname.split(".")[0] in HIDDEN:
                    raise ModuleNotFoundError(f"No module named {{fullname!r}}", name=fullname)
                return None

        sys.meta_path.insert(0, NotInstalled())
        _distributions = importlib.metadata.distributions
        importlib.metadata.distributions = lambda **kwargs: [
            d for d in _distributions(**kwargs)
            if d.metadata["Name"].lower().replace("_", "-") not in {{"kedro-mlflow", "mlflow", "mlflow-skinny"}}
        ]

        from kedro.framework.session import KedroSession
        from kedro.framework.startup import bootstrap_project

        bootstrap_project({str(project)!r})
        with KedroSession.create(project_path={str(project)!r}, runtime_params={params!r}) as session:
            session.run(pipeline_names=[{name!r}])
        print("RESULT", json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in HIDDEN)))
        """
    )
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-c", script], cwd=project, env=env, capture_output=True, text=True,
                          timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "RESULT []" in done.stdout, "mlflow or kedro_mlflow was imported"
    assert "No module named" not in output
    # Not about tracking, and there with or without the extra: kedro-viz's run hook warns on every
    # programmatic (not `kedro run`) session; TensorFlow's C++ start-up lines (absl) are
    # fashion_cnn.runtime.quiet's business.
    known = ("Workflow tracking is", "absl::InitializeLog")
    warnings = [line for line in output.splitlines()
                if "warning" in line.lower() and not any(text in line for text in known)]
    assert warnings == [], "\n".join(warnings)
    assert not (project / "mlflow.db").exists() and not (project / "mlruns").exists()
    assert sorted(project.glob(f"data/08_reporting/{name}/metrics.json/*/metrics.json"))



def test_sessions_of_two_projects_in_one_process_keep_apart(tmp_path, monkeypatch):
    """Two projects in one process (a notebook, the tests): each session's MLflow store is the
    SQLite file of its own project, whatever the working directory; and a session with tracking
    disabled after a tracked one opens no run, nor resumes the previous one, though the tracking
    catalog's files are saved as usual."""
    require_tracking_extra()
    import mlflow

    monkeypatch.chdir(tmp_path)
    first, second = copy_project(tmp_path / "first"), copy_project(tmp_path / "second")
    name = next(iter(load_variants()))
    mlflow_yml = second / "conf/base/mlflow.yml"
    config = yaml.safe_load(mlflow_yml.read_text())
    config["tracking"]["disable_tracking"]["pipelines"] = [name]
    mlflow_yml.write_text(yaml.safe_dump(config))

    for path, pipeline, params in ((first, "data_processing", QUICK), (second, name, quick_params([name]))):
        run_session(path, [pipeline], params)
        assert mlflow.get_tracking_uri() == f"sqlite:///{path.resolve().as_posix()}/mlflow.db"
        assert mlflow.active_run() is None
    assert not (tmp_path / "mlflow.db").exists()
    _, first_runs = mlflow_runs(first)
    _, second_runs = mlflow_runs(second)
    assert [run.info.status for run in first_runs] == ["FINISHED"] and second_runs == []
    assert (second / f"data/07_model_output/{name}/training_history.csv").is_file()
    assert list(second.glob(f"data/08_reporting/{name}/metrics.json/*/metrics.json"))


def test_the_tracking_catalog_holds_the_catalogs_own_datasets():
    """conf/base/tracking_catalog.yml changes no file of catalog.yml: each entry is the same dataset,
    wrapped in kedro-mlflow's MlflowArtifactDataset (files without versions) or marked for the hook."""
    conf = PROJECT_ROOT / "conf/base"
    base = yaml.safe_load((conf / "catalog.yml").read_text())
    tracked = yaml.safe_load((conf / "tracking_catalog.yml").read_text())
    assert {"{variant}.metrics", "{variant}.confusion_matrix", "comparison_chart"} < set(tracked)
    for name, entry in tracked.items():
        if entry["type"] == "kedro_mlflow.io.artifacts.MlflowArtifactDataset":
            dataset = {**entry["dataset"], "metadata": entry["metadata"]}
            assert not dataset.get("versioned"), f"{name}: kedro-mlflow cannot keep the run's save version"
        else:
            dataset = {**entry, "metadata": {key: value for key, value in entry["metadata"].items() if key != "mlflow"}}
            assert dataset["versioned"] and "mlflow" in entry["metadata"], name
        assert dataset == base[name], name


def test_with_tracking_a_sweep_stays_in_one_process_and_says_so(project):
    """`kedro run` picks SweepRunner for several variants, except with kedro-mlflow active: every
    variant keeps its own MLflow run, and the log says why; SweepRunner asked for by name stays in one
    process too (kedro-mlflow's hooks run in every worker, without the parent's MLflow run)."""
    require_tracking_extra()
    names = list(load_variants())[:2]
    params = ",".join(f"{key}={value}" for key, value in quick_params(names).items())
    done = subprocess.run([sys.executable, "-m", "kedro", "run", "--pipelines", ",".join(names), "--params", params],
                          cwd=project, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "COLUMNS": "250"})
    output = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 0, output[-3000:]
    # Rich wraps the line and puts the logger's file name in between: its parts, then.
    assert ("2 variants to train one after the other, because MLflow tracking (kedro-mlflow) is installed and every "
            "variant keeps its own MLflow run only in one process. Side by side: without the `tracking` extra") in output
    assert "Training side by side" not in output
    _, runs = mlflow_runs(project)
    assert sorted(run.data.tags["variant"] for run in runs if "variant" in run.data.tags) == sorted(names)
    assert all(run.info.status == "FINISHED" for run in runs)
