"""Benchmark: what the interpretation outputs (issue 23) cost a variant on the full data: the top-loss
figure, the most-confused table and the Grad-CAM figure, each node and the save of its file.

    kedro run --pipelines cnn                                  # once, in the project: a trained model
    python benchmarks/interpretation_cost.py                   # in the project folder; 5 rounds
    python benchmarks/interpretation_cost.py --variant more_convs --rounds 3 --project path/to/project

It loads the variant's latest model, the saved model inputs, its history and settings through the
project's catalog, predicts the test set once as the run does (``evaluate_model``: the predictions
with each image's loss), then times each node and the save of its output by the dataset its entry
in conf/base/catalog.yml configures (into a temporary folder), round after round in this one
process. The first round is what a run pays (TensorFlow's first gradient, matplotlib's first
figures); the later ones, the median. The target is under 2 s per variant in all. For scale, in the
same rounds: the variant's four figures from before (confusion matrix, activation grid, kernels,
learning curves) with their saves; and the load average, as other work on the machine slows all alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import yaml
from compare import cpu_description


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="cnn")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--project", type=Path, default=Path.cwd())
    args = parser.parse_args()

    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project
    from kedro.io import DataCatalog

    from fashion_cnn.parameters import ActivationGrid, Interpretation
    from fashion_cnn.pipelines.variants.figures import (
        plot_confusion_matrix,
        plot_first_layer_kernels,
        plot_learning_curves,
        render_test_activation_grid,
    )
    from fashion_cnn.pipelines.variants.interpretation import (
        plot_top_losses,
        render_grad_cam,
        tabulate_most_confused,
    )
    from fashion_cnn.pipelines.variants.nodes import evaluate_model

    bootstrap_project(args.project)
    with KedroSession.create(project_path=args.project) as session:
        catalog = session.load_context().catalog
        variant = args.variant
        model, inputs = catalog.load(f"{variant}.model"), catalog.load("model_inputs")
        history, settings = catalog.load(f"{variant}.training_history"), catalog.load(f"{variant}.training_settings")
        params = catalog.load("parameters")
    entries = yaml.safe_load((args.project / "conf/base/catalog.yml").read_text())
    classes = params["data"]["class_names"]
    grid, interpretation = ActivationGrid.of(params["activation_grid"]), Interpretation.of(params["interpretation"])

    started = time.perf_counter()
    _, predictions = evaluate_model(model, history, inputs, settings, classes)
    print(f"evaluate_model (the run's one pass over {len(predictions)} test images, for reference): "
          f"{time.perf_counter() - started:.2f} s")
    # name: (the node(s), the catalog entries their outputs are saved to); the last, for reference:
    # the variant's four figures from before, in the same rounds.
    jobs = {
        "top_losses": (lambda: [plot_top_losses(predictions, inputs, interpretation, classes)], ["top_losses"]),
        "most_confused": (lambda: [tabulate_most_confused(predictions, classes)], ["most_confused"]),
        "grad_cam": (lambda: [render_grad_cam(model, inputs, predictions, grid, interpretation, classes)],
                     ["grad_cam"]),
        "earlier 4 figures": (lambda: [plot_confusion_matrix(predictions, classes),
                                       render_test_activation_grid(model, inputs, grid, classes),
                                       plot_first_layer_kernels(model), plot_learning_curves(history)],
                              ["confusion_matrix", "activation_grid", "first_layer_kernels", "learning_curves"]),
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in jobs}
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.rounds):
            for name, (job, outputs) in jobs.items():
                started = time.perf_counter()
                made = job()
                done = time.perf_counter()
                for output, data in zip(outputs, made, strict=True):
                    entry = entries["{variant}." + output]
                    file = Path(folder, str(round_), Path(entry["filepath"]).name)
                    DataCatalog.from_config({output: {**entry, "filepath": str(file)}}).save(output, data)
                times[name].append((done - started, time.perf_counter() - done))

    print(f"\n{variant}, {len(predictions)} test images, top {interpretation.top_losses} losses, "
          f"{len(grid.image_indices)} grid images; {cpu_description()}; load average "
          f"{' '.join(f'{load:.1f}' for load in os.getloadavg())}")
    print(f"{'output':<20}{'first round: node + save = s':>32}{f'median of rounds 2-{args.rounds}: s':>30}")
    new = [0.0, 0.0]
    for name, rounds in times.items():
        node, save = rounds[0]
        later = statistics.median(sum(r) for r in rounds[1:]) if len(rounds) > 1 else float("nan")
        if name == "earlier 4 figures":
            print(f"{'the three new ones':<20}{new[0]:>32.2f}{new[1]:>30.2f}")
        else:
            new = [new[0] + node + save, new[1] + later]
        print(f"{name:<20}{f'{node:.2f} + {save:.2f} = {node + save:.2f}':>32}{later:>30.2f}")


if __name__ == "__main__":
    main()
