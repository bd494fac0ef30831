"""`tune` (not part of `__default__`): the search, its table, figures and best block, and the best trial's
model trained on all training images and evaluated once on the test set, as the variant `tuned`.

    kedro run --pipelines tune --params tune.n_trials=4,data.train_limit=3000,data.test_limit=500

One search node per core: under SweepRunner (several trainings, no MLflow tracking) they run side by side,
one worker process each, all on the same study; one after the other, the first runs the whole search and
the others find it done.
"""

from __future__ import annotations

import os

from kedro.pipeline import Pipeline, node, pipeline

from fashion_cnn.pipelines.variants.pipeline import SHARED_PARAMETERS, reporting
from fashion_cnn.tuning import TUNED
from fashion_cnn.variants import SEARCH_NODE, TRAINING_NODE

from .nodes import (
    best_settings,
    best_variant,
    evaluate_best,
    plot_accuracy_by_parameter,
    plot_optimization_history,
    plot_parameter_importances,
    search,
    summarise_best,
    tabulate_trials,
    train_best,
)

STUDY = ["tune_storage", "parameters"]
OUTPUTS = {"tune_trials", "tune_best_variant", "tune_optimization_history", "tune_parameter_importances",
           "tune_accuracy_by_parameter"}  # outside the namespace `tuned`: the search's, not its model's


def create_pipeline(**kwargs) -> Pipeline:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    searches = [f"{SEARCH_NODE}_{worker}" for worker in range(1, cores + 1)]
    nodes = [node(search, ["tune_storage", "model_inputs", "parameters", "params:runtime.precision"], f"{name}_trials",
                  name=name) for name in searches]
    nodes += [
        node(tabulate_trials, [*STUDY, *(f"{name}_trials" for name in searches)], "tune_trials", name="tabulate_trials"),
        node(best_variant, [*STUDY, "tune_trials"], ["best_spec", "tune_best_variant"], name="best_variant"),
        node(plot_optimization_history, "tune_trials", "tune_optimization_history", name="plot_optimization_history"),
        node(plot_parameter_importances, [*STUDY, "tune_trials"], "tune_parameter_importances",
             name="plot_parameter_importances"),
        node(plot_accuracy_by_parameter, ["tune_trials", "parameters"], "tune_accuracy_by_parameter",
             name="plot_accuracy_by_parameter"),
        node(best_settings, ["params:training_defaults", "best_spec", "params:runtime.precision"], "training_settings",
             name="resolve_training_settings"),
        node(summarise_best, ["best_spec", "training_settings", "params:data"], "model_summary", name="build_model"),
        node(train_best, ["best_spec", "training_settings", "params:data", "model_inputs"], ["model", "training_history"],
             name=TRAINING_NODE),
        node(evaluate_best, ["model", "training_history", "model_inputs", "training_settings", "params:data.class_names",
                             "best_spec"], ["metrics", "test_predictions"], name="evaluate_model"),
    ]
    template = Pipeline(nodes) + reporting()
    return pipeline(template, namespace=TUNED, inputs={"tune_storage", "model_inputs"}, outputs=OUTPUTS,
                    parameters=(SHARED_PARAMETERS | {"params:runtime.precision"}) & template.inputs(),
                    tags=["tune", TUNED])
