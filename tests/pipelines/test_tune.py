"""The `tune` pipeline: real Optuna studies in the project's journal file, real trials on small subsets of
the real data, real `kedro run` processes side by side and real signals, and optuna-dashboard serving the
study on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from support import copy_project, run_session

from fashion_cnn.model.architecture import SpecError
from fashion_cnn.parameters import partition_variants
from fashion_cnn.pipelines.compare.nodes import compare_variants
from fashion_cnn.tuning import check_tuning, trial_spec
from fashion_cnn.variants import load_parameters

QUICK = {"data.train_limit": 800, "data.test_limit": 200, "training_defaults.epochs": 2, "tune.n_trials": 3}
JOURNAL = "data/07_model_output/tune/studies.journal"


def study(project: Path, name: str = "fashion_cnn"):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(project / JOURNAL))))


def states(project: Path) -> list[str]:
    return [trial.state.name for trial in study(project).trials]


def flat(params: dict) -> str:
    return ",".join(f"{key}={value}" for key, value in params.items())


def kedro_run(project: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kedro", "run", *args], cwd=project, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "COLUMNS": "250", "TF_CPP_MIN_LOG_LEVEL": "2"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def search_nodes(project: Path) -> list[str]:
    from kedro.framework.project import pipelines
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    return [node.name for node in pipelines["tune"].nodes if ".search_" in node.name]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, real_data_dir) -> Path:
    """A project after one search of 3 trials (the parameters' space, 2 epochs, 800 images)."""
    project = copy_project(tmp_path_factory.mktemp("tuned") / "project")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        run_session(project, ["tune"], QUICK)
    return project


# ---- the space, without training


def test_a_trial_keeps_drops_or_repeats_the_templates_blocks_and_sets_what_it_draws():
    parameters = load_parameters()
    cnn = partition_variants(parameters)[0]["cnn"]
    space = {"conv_blocks": None, "layers.Conv2D.padding": None, "layers.conv2d_3.filters": None, "dropout": None,
             "training.batch_size": None}
    drawn = {"conv_blocks": 3, "layers.Conv2D.padding": "same", "layers.conv2d_3.filters": 64, "dropout": 0.25,
             "training.batch_size": 128}
    spec = trial_spec(cnn, "cnn", space, drawn.__getitem__)
    kinds = [next(iter(layer)) for layer in spec["architecture"]]
    assert kinds == ["Conv2D", "MaxPooling2D"] * 3 + ["Flatten", "Dense", "Dropout", "Dense"]
    convs = [layer["Conv2D"] for layer in spec["architecture"] if "Conv2D" in layer]
    assert [conv["filters"] for conv in convs] == [32, 64, 64]  # the second block's, repeated
    assert all(conv["padding"] == "same" for conv in convs)
    assert spec["training"] == {"batch_size": 128}

    asked = []
    one = trial_spec(cnn, "cnn", space, lambda name: asked.append(name) or {"conv_blocks": 1}.get(name, 0))
    assert [next(iter(layer)) for layer in one["architecture"]] == ["Conv2D", "MaxPooling2D", "Flatten", "Dense",
                                                                    "Dense"]  # dropout 0: none
    assert "layers.conv2d_3.filters" not in asked  # its block is gone: not a parameter of this trial


@pytest.mark.parametrize("space, key", [
    ({"layers": {"Conv3D": {"filters": {"choices": [8]}}}}, "`tune.space.layers.Conv3D`: unknown"),
    ({"epochz": {"low": 1, "high": 5}}, "unknown key(s) ['epochz']"),
    ({"training": {"epochz": {"low": 1, "high": 5}}}, "`tune.space.training.epochz`: unknown"),
    ({"dropout": {"low": 0.5, "high": 0.1}}, "`tune.space.dropout`:"),
    ({"training": {"batch_size": {"choices": []}}}, "`tune.space.training.batch_size`:"),
    ({"conv_blocks": {"low": 1, "high": 4}}, "`tune.space.conv_blocks` = 4 does not make a model"),
    ({"layers": {"Conv2D": {"filterz": {"choices": [8, 16]}}}}, "`tune.space.layers.Conv2D.filterz` = 8"),
])
def test_a_bad_space_names_its_key(space, key):
    parameters = load_parameters()
    parameters["tune"] = {**parameters["tune"], "space": space}
    with pytest.raises(SpecError) as error:
        check_tuning(parameters)
    assert key in str(error.value)


def test_a_bad_space_stops_the_run_before_the_first_trial(project):
    started = time.monotonic()
    with pytest.raises(SpecError, match=r"`tune.space.conv_blocks` = 4 does not make a model that trains.*shrinks"):
        run_session(project, ["tune"], {**QUICK, "tune.space.conv_blocks": {"low": 1, "high": 4}})
    assert time.monotonic() - started < 60  # seconds, not a search: nothing trained
    assert not (project / "data/06_models/tuned").exists()
    journal = project / JOURNAL
    assert not journal.exists() or "fashion_cnn" not in journal.read_text()  # no study, no trial


def test_a_space_that_changes_a_studys_choices_needs_a_new_study(tuned):
    parameters = load_parameters()
    parameters["tune"]["space"]["training"]["batch_size"] = {"choices": [64, 256]}
    from fashion_cnn.datasets.tuning_study import OptunaStorageDataset

    storage = OptunaStorageDataset(filepath=str(tuned / JOURNAL)).load()
    with pytest.raises(SpecError, match=r"`tune.space.training.batch_size` differs from .*tune.study_name=<new name>"):
        check_tuning(parameters, storage=storage)


# ---- a search and what it writes


def test_a_search_writes_its_trials_best_block_model_and_figures(tuned):
    assert states(tuned) == ["COMPLETE"] * 3  # no pruning before 4 complete trials (pruner.n_startup_trials)
    trials = pd.read_csv(tuned / "data/08_reporting/tune/trials.csv")
    assert list(trials.columns[:6]) == ["number", "state", "validation_accuracy", "epochs_run", "epochs_planned",
                                        "seconds"]
    assert {"conv_blocks", "dropout", "training.learning_rate", "training.batch_size"} < set(trials.columns)
    assert (trials["epochs_run"] == 2).all() and trials["validation_accuracy"].between(0.3, 1).all()
    best = trials.loc[trials["validation_accuracy"].idxmax()]

    (name, spec), = yaml.safe_load((tuned / "data/08_reporting/tune/best_variant.yml").read_text()).items()
    assert name == f"tuned_trial_{best['number']}"
    assert partition_variants({name: spec})[0] == {name: spec}  # a valid variant block as it is
    assert spec["training"]["batch_size"] == best["training.batch_size"]

    (metrics_file,) = tuned.glob("data/08_reporting/tuned/metrics.json/*/metrics.json")
    metrics = json.loads(metrics_file.read_text())
    assert metrics["search"] == {"study": "fashion_cnn", "trial": int(best["number"]),
                                 "validation_accuracy": round(best["validation_accuracy"], 4), "block": name}
    assert metrics["test_images"] == 200 and metrics["epochs_run"] == 2
    assert len(list(tuned.glob("data/06_models/tuned/model.keras/*/model.keras"))) == 1
    for figure in ("optimization_history", "parameter_importances", "accuracy_by_parameter"):
        assert list(tuned.glob(f"data/08_reporting/tune/{figure}.png/*/{figure}.png")), figure


def test_the_best_block_trains_as_is_to_the_tuned_model(tuned):
    block = (tuned / "data/08_reporting/tune/best_variant.yml").read_text()
    (name,) = yaml.safe_load(block)
    (tuned / "conf/base/parameters_tuned_block.yml").write_text(block)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(tuned)
            run_session(tuned, [name], {key: value for key, value in QUICK.items() if not key.startswith("tune.")})
    finally:
        (tuned / "conf/base/parameters_tuned_block.yml").unlink()
    (ours,) = tuned.glob(f"data/08_reporting/{name}/metrics.json/*/metrics.json")
    (search,) = tuned.glob("data/08_reporting/tuned/metrics.json/*/metrics.json")
    ours, search = json.loads(ours.read_text()), json.loads(search.read_text())
    assert ours["test_accuracy"] == search["test_accuracy"] and ours["parameter_count"] == search["parameter_count"]


def test_compare_marks_the_tuned_model_and_has_none_before_a_search(tuned, tmp_path):
    from kedro.io import AbstractDataset

    def tuned_metrics(path: Path):  # the catalog's entry, in the project `path`
        config = yaml.safe_load((tuned / "conf/base/catalog.yml").read_text())["tuned.metrics"]
        config["filepath"] = str(path / config["filepath"])
        return AbstractDataset.from_config("tuned.metrics", config).load()

    assert tuned_metrics(tmp_path) is None  # a fresh checkout: compare runs without it
    loaded = tuned_metrics(tuned)
    cnn = {**loaded, "variant": "cnn"}
    cnn.pop("search")
    table = compare_variants("cnn", cnn=cnn, tuned=loaded).set_index("variant")
    assert table.loc["tuned", "source"].startswith("tuned (search") and table.loc["cnn", "source"] == "hand-written"
    assert list(compare_variants("cnn", cnn=cnn, tuned=None)["variant"]) == ["cnn"]


def test_predict_and_export_use_the_tuned_model(tuned, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(np.full((28, 28), 200, np.uint8)).save(folder / "grey.png")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tuned)
        run_session(tuned, ["predict"], {"predict.images": str(folder), "predict.variant": "tuned"})
        run_session(tuned, ["export"], {"export.variant": "tuned"})
    assert len(pd.read_csv(tuned / "data/08_reporting/predictions/predictions.csv")) == 1
    assert list(tuned.glob("data/06_models/tuned/saved_model/*/saved_model.pb"))


def test_a_teams_database_from_credentials_holds_the_study(project):
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project
    from optuna.storages import RDBStorage

    database = project / "optuna.db"
    (project / "conf/local/catalog.yml").write_text(
        "tune_storage:\n  type: fashion_cnn.datasets.tuning_study.OptunaStorageDataset\n  credentials: tune_db\n")
    (project / "conf/local/credentials.yml").write_text(f"tune_db:\n  url: sqlite:///{database}\n")
    bootstrap_project(project)
    with KedroSession.create(project_path=project) as session:
        catalog = session.load_context().catalog
        storage = catalog.load("tune_storage")
        assert isinstance(storage, RDBStorage) and storage.get_heartbeat_interval() == 60
        assert str(database) not in str(catalog.get("tune_storage"))  # the URL, which may hold a password, is not shown
        check_tuning(catalog.load("parameters"), storage=storage)
    import optuna

    optuna.create_study(storage=storage, study_name="fashion_cnn", direction="maximize").enqueue_trial({})
    assert [study.study_name for study in RDBStorage(f"sqlite:///{database}").get_all_studies()] == ["fashion_cnn"]


@pytest.mark.skipif(importlib.util.find_spec("kedro_mlflow") is None, reason="the `tracking` extra")
def test_with_tracking_each_trial_is_a_run_nested_in_the_studys(tuned):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tuned / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("fashion_cnn").experiment_id],
                              filter_string="tags.optuna_study = 'fashion_cnn'")
    trials = [run for run in runs if "trial" in run.data.tags]
    (parent,) = {run.info.run_id for run in runs if "trial" not in run.data.tags} & {
        run.data.tags["mlflow.parentRunId"] for run in trials}
    assert sorted(run.data.tags["trial"] for run in trials) == ["0", "1", "2"]
    assert all("validation_accuracy" in run.data.metrics and "training.batch_size" in run.data.params
               for run in trials), parent


# ---- resume, workers, faults


def test_a_rerun_runs_only_what_the_study_lacks(tuned):
    before = [trial.value for trial in study(tuned).trials]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tuned)
        run_session(tuned, ["tune"], QUICK, node_names=search_nodes(tuned))  # done: nothing to search
        assert [trial.value for trial in study(tuned).trials] == before
        run_session(tuned, ["tune"], {**QUICK, "tune.n_trials": 4}, node_names=search_nodes(tuned))
    assert [trial.value for trial in study(tuned).trials][:3] == before and len(study(tuned).trials) == 4


def test_a_trial_that_fails_is_recorded_with_its_reason_and_the_search_goes_on(project):
    # Trial n draws with seed 1 + n: 1e9 (a NaN loss), 0.002, 1e9, 0.002. The space replaces the file's
    # (--params would merge into it).
    conf = project / "conf/base/parameters_tune.yml"
    parameters = yaml.safe_load(conf.read_text())
    parameters["tune"]["space"] = {"training": {"learning_rate": {"choices": [0.002, 1.0e+9]}}}
    conf.write_text(yaml.safe_dump(parameters))
    run_session(project, ["tune"], {**QUICK, "tune.n_trials": 2, "tune.sampler.seed": 1})
    trials = study(project).trials
    assert [trial.state.name for trial in trials] == ["FAIL", "COMPLETE", "FAIL", "COMPLETE"]
    assert "FloatingPointError: the training loss is nan after epoch 1" in trials[0].user_attrs["fail_reason"]
    table = pd.read_csv(project / "data/08_reporting/tune/trials.csv")
    assert table["fail_reason"].fillna("").str.contains("nan").tolist() == [True, False, True, False]


def test_two_runs_at_once_share_one_study_and_its_total(project):
    params = flat({**QUICK, "tune.n_trials": 5, "data.train_limit": 1500})
    runs = [kedro_run(project, "--pipelines", "tune", "--runner", "SequentialRunner", "--params", params)
            for _ in range(2)]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], "\n".join(output[-3000:] for output in outputs)
    trials = study(project).trials
    assert sorted(trial.state.name for trial in trials) in (["COMPLETE"] * 5, ["COMPLETE"] * 4 + ["PRUNED"])
    assert [trial.number for trial in trials] == list(range(5))
    assert len({trial.user_attrs["pid"] for trial in trials}) >= 2, "one process ran every trial"
    assert len(list(project.glob("data/06_models/tuned/model.keras/*/model.keras"))) == 2  # each its own version


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_trial_is_failed_and_a_rerun_carries_on(project, signum, code):
    params = {**QUICK, "data.train_limit": 1500}
    run = kedro_run(project, "--pipelines", "tune", "--runner", "SequentialRunner", "--params", flat(params))
    seen = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and "Trial 1 of study" not in (line := run.stdout.readline()):
        assert line, "the run ended before trial 1:\n" + "".join(seen[-40:])
        seen.append(line)
    run.send_signal(signum)
    rest = run.communicate(timeout=120)[0]
    assert run.returncode == code, rest[-3000:]
    assert rest.strip().splitlines()[-1].startswith("Interrupted; finished and saved: none; not finished: tuned.")
    trials = study(project).trials  # readable
    assert [trial.state.name for trial in trials] == ["COMPLETE", "FAIL"]
    assert trials[1].user_attrs["fail_reason"] == f"KeyboardInterrupt: {signal.Signals(signum).name}"
    if signum == signal.SIGINT:  # a rerun carries on: the failed trial keeps no place in the total
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(project)
            run_session(project, ["tune"], params, node_names=search_nodes(project))
        assert states(project) == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]


# ---- the page


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_optuna_dashboard_serves_the_study_on_localhost(tuned):
    port = free_port()
    # The docs' command, with a free port.
    server = subprocess.Popen(["optuna-dashboard", JOURNAL, "--host", "127.0.0.1", "--port", str(port)], cwd=tuned,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline, studies = time.monotonic() + 60, None
        while studies is None and time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as response:
                    studies = json.load(response)["study_summaries"]
            except OSError:
                time.sleep(0.3)
        assert studies is not None, server.stderr.read() if server.poll() is not None else "no answer"
        (entry,) = [entry for entry in studies if entry["study_name"] == "fashion_cnn"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{entry['study_id']}", timeout=10) as response:
            detail = json.load(response)
        assert len(detail["trials"]) >= 3 and {trial["state"] for trial in detail["trials"]} == {"Complete"}
    finally:
        server.terminate()
        server.wait(30)
