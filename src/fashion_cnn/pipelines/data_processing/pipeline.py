"""Raw Fashion-MNIST -> checked, optionally subset, normalised model inputs."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import prepare_model_inputs, select_subset, tabulate_first_test_labels, validate_dataset


def create_pipeline(**kwargs) -> Pipeline:
    # One namespace, datasets unprefixed: `kedro run --namespaces data_processing` runs it, and `kedro airflow
    # create --group-by namespace` makes it one task (docs/scaling-out.md).
    return pipeline([
        node(validate_dataset, ["fashion_mnist", "params:data.class_names"],
             ["fashion_mnist_validated", "data_summary"], name="validate_dataset"),
        node(select_subset, ["fashion_mnist_validated", "params:data.train_limit", "params:data.test_limit"],
             "fashion_mnist_subset", name="select_subset"),
        node(prepare_model_inputs, ["fashion_mnist_subset", "params:data.pixel_dtype"], "model_inputs",
             name="prepare_model_inputs"),
        node(tabulate_first_test_labels, ["fashion_mnist_validated", "params:data.class_names",
             "params:test_labels_preview.count", "params:activation_grid.image_indices"],
             ["test_labels_preview", "test_labels_preview_text"], name="tabulate_first_test_labels"),
    ], tags="data", namespace="data_processing", prefix_datasets_with_namespace=False)
