"""The search (Optuna trials against a study in the catalog's storage), its table and figures, and the
best trial as a variant block. Trials train with the variants' own ``train_model``."""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import logging
import math
import os
import socket
import sys
import tempfile
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import yaml

from fashion_cnn.datasets.whole_files import process_alive
from fashion_cnn.parameters import merge_training_settings, partition_variants
from fashion_cnn.pipelines import DataFrame, Figure
from fashion_cnn.pipelines.variants.nodes import build_model, evaluate_model, train_model
from fashion_cnn.tuning import TUNED, import_optuna, space_distributions, trial_spec

logger = logging.getLogger(__name__)

SIGNIFICANT_DIGITS = 3  # the best trial's real numbers as its block gives them (and its model is trained)
ABANDONED_SECONDS = 60  # a running trial without a process this long after it started was never run


def _study(storage: Any, tune: Mapping[str, Any], create: bool = False) -> Any:
    optuna = import_optuna()
    if not create:
        return optuna.load_study(study_name=tune["study_name"], storage=storage)
    return optuna.create_study(storage=storage, study_name=tune["study_name"], direction="maximize",
                               pruner=optuna.pruners.MedianPruner(**(tune["pruner"] or {})), load_if_exists=True)


def _space(parameters: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    tune = parameters["tune"]
    template = partition_variants(parameters)[0][tune["template"]]
    return template, space_distributions(tune, template, parameters["training_defaults"])


def _fail_abandoned_trials(study: Any) -> None:
    """A trial still running whose process on this machine has gone (a kill -9, a crash), or that never got
    to its first line in a minute (interrupted right after Optuna created it), will never finish: failed, so
    that it does not hold a place in ``tune.n_trials``. Databases do this by heartbeat."""
    optuna = import_optuna()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        pid = trial.user_attrs.get("pid")
        if (trial.user_attrs.get("host") == socket.gethostname() and not process_alive(pid)) if pid else (
                datetime.datetime.now() - trial.datetime_start).total_seconds() > ABANDONED_SECONDS:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            logger.warning("Trial %d: its process (pid %s) ended without finishing it; marked failed.",
                           trial.number, trial.user_attrs.get("pid"))


def _epoch_reporter(trial: Any) -> Any:
    """A Keras callback: the validation accuracy after each epoch to Optuna, which may prune the trial; a
    loss that is no longer a number fails it."""
    import keras

    optuna = import_optuna()

    class ReportEpochs(keras.callbacks.Callback):
        epochs = 0

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs, self.epochs = logs or {}, epoch + 1
            if not math.isfinite(logs.get("loss", 0.0)):
                raise FloatingPointError(f"the training loss is {logs['loss']} after epoch {epoch + 1} (try a "
                                         "lower learning rate)")
            trial.report(float(logs["val_accuracy"]), step=epoch + 1)
            if trial.should_prune():
                raise optuna.TrialPruned(f"validation accuracy {logs['val_accuracy']:.4f} after epoch {epoch + 1}, "
                                         "below the median of earlier trials there")

    return ReportEpochs()


def _mlflow_trial_runs(study: Any) -> list[Any]:
    """With kedro-mlflow's run under way (the ``tracking`` extra): the run is the study's, and each trial
    of this process a run nested in it. Nothing without it."""
    mlflow = sys.modules.get("mlflow")
    if mlflow is None or mlflow.active_run() is None:
        return []
    mlflow.set_tags({"optuna_study": study.study_name})
    statuses = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}

    def log(study: Any, trial: Any) -> None:
        mlflow.start_run(run_name=f"trial {trial.number}", nested=True,
                         tags={"optuna_study": study.study_name, "trial": str(trial.number), "state": trial.state.name,
                               **{key: str(value) for key, value in trial.user_attrs.items()}})
        mlflow.log_params(trial.params)
        for step, accuracy in trial.intermediate_values.items():
            mlflow.log_metric("val_accuracy", accuracy, step=step)
        if trial.value is not None:
            mlflow.log_metric("validation_accuracy", trial.value)
        if trial.duration is not None:
            mlflow.log_metric("seconds", trial.duration.total_seconds())
        mlflow.end_run(statuses.get(trial.state.name, "FAILED"))

    return [log]


class _TrialSlots:
    """Counting the study's trials and starting the next one, under one lock (a file, for the workers on this
    machine): two workers that finished trials at the same moment both saw a slot left and started one each,
    one trial more than ``tune.n_trials`` (seen in CI). Also the callback after each trial."""

    def __init__(self, study: Any, name: str, total: int, counted: tuple[Any, ...]) -> None:
        self._study, self._total, self._counted = study, total, counted
        key = hashlib.sha256(name.encode()).hexdigest()[:16]
        self._lock = open(os.path.join(tempfile.gettempdir(), f"fashion_cnn_tune_{key}.lock"), "w")  # noqa: SIM115

    def take(self) -> int:
        """The trials still missing; while there are some, the lock is kept until the next trial exists."""
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        missing = self._total - len(self._study.get_trials(deepcopy=False, states=self._counted))
        if missing <= 0:
            self.release()
        return missing

    def release(self) -> None:
        fcntl.flock(self._lock, fcntl.LOCK_UN)  # a no-op when this process does not hold it

    def close(self) -> None:
        self._lock.close()  # which releases the lock

    def __call__(self, study: Any, trial: Any) -> None:
        if self.take() <= 0:
            study.stop()


def search(storage: Any, model_inputs: Mapping[str, np.ndarray], parameters: dict[str, Any],
           precision: str) -> list[int]:
    """Run trials of the study ``tune.study_name`` until it holds ``tune.n_trials`` complete or pruned ones
    (counting those that other workers are running), at most twice the number missing in this call; return
    the numbers of the trials run here. A trial that fails is recorded with its reason and the search goes
    on; an interruption fails the trial under way and stops."""
    optuna = import_optuna()
    tune, defaults = parameters["tune"], parameters["training_defaults"]
    template, distributions = _space(parameters)
    study = _study(storage, tune, create=True)
    _fail_abandoned_trials(study)
    counted = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.RUNNING)
    slots = _TrialSlots(study, tune["study_name"], tune["n_trials"], counted)
    missing = slots.take()
    if missing <= 0:
        slots.close()
        logger.info("Study '%s' holds its %d trials (tune.n_trials): nothing to search.", tune["study_name"],
                    tune["n_trials"])
        return []
    sampler = dict(tune["sampler"] or {})
    ran: list[int] = []

    def objective(trial: Any) -> float:
        slots.release()  # this trial is in the study now: it counts
        ran.append(trial.number)
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        reporter = None
        try:
            # Each trial's draws seeded by its number: workers never repeat each other's, and one worker's
            # search is reproducible.
            seed = sampler.get("seed")
            study.sampler = optuna.samplers.TPESampler(**{**sampler, "seed": None if seed is None else seed + trial.number})
            spec = trial_spec(template, tune["template"], distributions,
                              lambda name: _suggest(trial, name, distributions[name]))
            settings = merge_training_settings(TUNED, defaults, {**spec["training"], "verbose": 0,
                                                                 "validation_split": tune["validation_split"]}, precision)
            trial.set_user_attr("epochs_planned", settings["epochs"])
            logger.info("Trial %d of study '%s': %s", trial.number, tune["study_name"], trial.params)
            reporter = _epoch_reporter(trial)
            _, history = train_model(f"trial_{trial.number}", spec["architecture"], settings, parameters["data"],
                                     model_inputs, callbacks=[reporter])
            return float(history["val_accuracy"].iloc[-1])
        except optuna.TrialPruned:
            raise
        except (Exception, KeyboardInterrupt) as error:
            trial.set_user_attr("fail_reason", f"{type(error).__name__}: {error}")
            raise
        finally:
            trial.set_user_attr("epochs_run", reporter.epochs if reporter else 0)

    try:
        study.optimize(objective, n_trials=2 * missing, catch=(Exception,),
                       callbacks=[slots, *_mlflow_trial_runs(study)])
    finally:
        slots.close()
    return ran


def _suggest(trial: Any, name: str, distribution: Any) -> Any:
    if hasattr(distribution, "choices"):
        return trial.suggest_categorical(name, distribution.choices)
    suggest = trial.suggest_int if type(distribution).__name__ == "IntDistribution" else trial.suggest_float
    return suggest(name, distribution.low, distribution.high, step=distribution.step, log=distribution.log)


def tabulate_trials(storage: Any, parameters: dict[str, Any], *searches: list[int]) -> DataFrame:
    """One row per trial of the study: number, state, validation accuracy (a pruned trial's at its last
    epoch), epochs run of planned, seconds, every parameter, and why it failed."""
    import pandas as pd

    def accuracy(trial: Any) -> float | None:
        last = trial.intermediate_values.get(max(trial.intermediate_values, default=0))
        return trial.value if trial.value is not None else last if trial.state.name == "PRUNED" else None

    study = _study(storage, parameters["tune"])
    trials = study.get_trials(deepcopy=False)
    names = list(dict.fromkeys([*_space(parameters)[1], *(name for trial in trials for name in trial.params)]))
    return pd.DataFrame(
        [{"number": trial.number, "state": trial.state.name, "validation_accuracy": accuracy(trial),
          "epochs_run": trial.user_attrs.get("epochs_run"), "epochs_planned": trial.user_attrs.get("epochs_planned"),
          "seconds": round(trial.duration.total_seconds(), 1) if trial.duration else None,
          **{name: trial.params.get(name) for name in names}, "fail_reason": trial.user_attrs.get("fail_reason", "")}
         for trial in trials],
        columns=["number", "state", "validation_accuracy", "epochs_run", "epochs_planned", "seconds", *names,
                 "fail_reason"])


def _rounded(value: Any) -> Any:
    if isinstance(value, float) and value:
        return round(value, SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(abs(value))))
    return value


def best_variant(storage: Any, parameters: dict[str, Any], trials: DataFrame) -> tuple[dict[str, Any], str]:
    """The best complete trial as a variant spec (its real numbers to 3 significant digits), and as a block
    to paste into the parameters, named ``tuned_trial_<number>``."""
    tune = parameters["tune"]
    study = _study(storage, tune)
    finished = trials.groupby("state").size().to_dict() if len(trials) else {}
    if not finished.get("COMPLETE"):
        reasons = sorted(set(trials.get("fail_reason", [])) - {""})[:3]
        raise ValueError(f"Study '{tune['study_name']}' has no complete trial yet ({finished or 'no trials'}); "
                         f"reasons trials failed: {reasons or 'none'}. See data/08_reporting/tune/trials.csv, "
                         "fix the space (conf/base/parameters_tune.yml) and run again.")
    best = study.best_trial
    template, distributions = _space(parameters)
    spec = trial_spec(template, tune["template"], distributions, lambda name: _rounded(best.params[name]))
    name = f"{TUNED}_trial_{best.number}"
    description = (f"Tuned: trial {best.number} of study {tune['study_name']}, validation accuracy {best.value:.4f} "
                   f"on {tune['validation_split']:.0%} of the training images")
    layers = "\n".join(f"    - {kind}: {yaml.safe_dump(kwargs, default_flow_style=True, sort_keys=False).strip()}"
                       for entry in spec["architecture"] for kind, kwargs in entry.items())
    training = yaml.safe_dump(spec["training"], default_flow_style=True, sort_keys=False).strip()
    block = (f"# The best trial of study '{tune['study_name']}' (`kedro run --pipelines tune`), from "
             f"template '{tune['template']}'.\n# Paste it into conf/base/parameters_exercises.yml and train it "
             f"on all training images: kedro run --pipelines {name}\n"
             f"{name}:\n  description: \"{description}\"\n  tags: [tuned]\n  architecture:\n{layers}\n"
             f"  training: {training}\n")
    search = {"study": tune["study_name"], "trial": best.number, "validation_accuracy": round(best.value, 4),
              "block": name}
    return {**spec, "search": search}, block


def best_settings(defaults: dict[str, Any], spec: dict[str, Any], precision: str) -> dict[str, Any]:
    """The best trial's training settings, for all training images (no validation split)."""
    return merge_training_settings(TUNED, defaults, spec["training"], precision)


def summarise_best(spec: dict[str, Any], settings: dict[str, Any], data: dict[str, Any]) -> str:
    """The best model's ``model.summary()``."""
    return build_model(TUNED, spec["architecture"], settings, data)


def train_best(spec: dict[str, Any], settings: dict[str, Any], data: dict[str, Any],
               model_inputs: Mapping[str, np.ndarray]) -> tuple[Any, DataFrame]:
    """The best trial's model trained on all training images, as its block trains in a variant's run."""
    return train_model(TUNED, spec["architecture"], settings, data, model_inputs)


def evaluate_best(model: Any, history: DataFrame, model_inputs: Mapping[str, np.ndarray], settings: dict[str, Any],
                  class_names: list[str], spec: dict[str, Any]) -> tuple[dict[str, Any], DataFrame]:
    """The test set, used once in the search: the best model's metrics, with where it comes from."""
    metrics, predictions = evaluate_model(model, history, model_inputs, settings, class_names)
    return {**metrics, "search": spec["search"]}, predictions


# ---- figures, from the trials table


def plot_optimization_history(trials: DataFrame) -> Figure:
    """Validation accuracy of each trial by number (pruned: at their last epoch), and the best so far."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(8, 4.5), layout="constrained")
    ax = figure.subplots()
    complete = trials[trials["state"] == "COMPLETE"] if len(trials) else trials
    ax.plot(complete["number"], complete["validation_accuracy"], "o", label="complete")
    if len(complete):
        ax.step(complete["number"], complete["validation_accuracy"].cummax(), where="post", color="tab:red",
                label="best so far")
    pruned = trials[trials["state"] == "PRUNED"] if len(trials) else trials
    if len(pruned):
        ax.plot(pruned["number"], pruned["validation_accuracy"], "x", color="grey", label="pruned (its last epoch)")
    failed = int((trials["state"] == "FAIL").sum()) if len(trials) else 0
    ax.set(xlabel="trial", ylabel="validation accuracy",
           title="Optimization history" + (f" ({failed} failed trial(s) not shown)" if failed else ""))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="best")
    return figure


def plot_parameter_importances(storage: Any, parameters: dict[str, Any], trials: DataFrame) -> Figure:
    """Optuna's PED-ANOVA importance of each parameter for validation accuracy (complete trials)."""
    from matplotlib.figure import Figure

    optuna = import_optuna()
    figure = Figure(figsize=(8, 4.5), layout="constrained")
    ax = figure.subplots()
    title = "Parameter importances (PED-ANOVA)"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            importances = optuna.importance.get_param_importances(
                _study(storage, parameters["tune"]), evaluator=optuna.importance.PedAnovaImportanceEvaluator())
        if caught:
            title += f"\n{caught[0].message}"
    except (ValueError, RuntimeError) as exc:  # no complete trial, or a space without variation
        importances, title = {}, f"{title}\n{exc}"
    names = list(importances)[::-1]
    ax.barh(names, [importances[name] for name in names], color="tab:blue")
    ax.set(xlabel="importance", title=title)
    return figure


def plot_accuracy_by_parameter(trials: DataFrame, parameters: dict[str, Any]) -> Figure:
    """Validation accuracy of the complete trials against each parameter (log axes where the space is)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator, NullFormatter

    _, distributions = _space(parameters)
    names = [name for name in distributions if name in trials]
    columns = min(3, max(1, len(names)))
    rows = max(1, -(-len(names) // columns))
    figure = Figure(figsize=(4 * columns, 3.2 * rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    complete = trials[trials["state"] == "COMPLETE"] if len(trials) else trials
    for ax, name in zip(axes, names, strict=False):
        values = complete[name]
        if hasattr(distributions[name], "choices"):  # categorical: one column per choice, in the space's order
            choices = distributions[name].choices
            ax.set_xticks(range(len(choices)), [str(choice) for choice in choices])
            # A None choice reads back from the CSV as NaN (as a parameter a trial did not use: shown there too).
            values = values.map(lambda v: next((i for i, choice in enumerate(choices)
                                                if v == choice or (v != v and choice is None)), None))
        elif distributions[name].log:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # labels at every minor tick overlap
        used = values.notna()  # a trial that did not use the parameter (a dropped block's layer) has none
        ax.plot(values[used], complete["validation_accuracy"][used], "o", alpha=0.7)
        if hasattr(distributions[name], "choices"):
            ax.set_xlim(-0.5, len(distributions[name].choices) - 0.5)
        elif type(distributions[name]).__name__ == "IntDistribution" and not distributions[name].log:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(xlabel=name, ylabel="validation accuracy")
    for ax in axes[len(names):]:
        ax.set_visible(False)
    figure.suptitle("Validation accuracy by parameter (complete trials)")
    return figure
