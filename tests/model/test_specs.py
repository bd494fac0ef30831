"""Architecture and training specs: valid variants build, every mistake gets a clear message."""

from __future__ import annotations

import os

import pytest

from fashion_cnn.model.architecture import SpecError, build_model, compiled_model, model_summary
from fashion_cnn.parameters import (
    check_broken_variants,
    merge_training_settings,
    partition_variants,
    runtime_environment,
)
from fashion_cnn.variants import is_convolutional, load_parameters

PARAMETERS = None


def find_variants(parameters: dict) -> dict:
    """The variant blocks, checked as a run of every pipeline checks them: SpecError for a broken one."""
    variants, broken = partition_variants(parameters)
    check_broken_variants(broken, parameters, None)
    return variants


def parameters() -> dict:
    global PARAMETERS
    if PARAMETERS is None:
        PARAMETERS = load_parameters()
    return PARAMETERS


def build(architecture, variant="test"):
    return build_model(variant, architecture, (28, 28, 1), 10)


CNN = [
    {"Conv2D": {"filters": 32, "kernel_size": 3, "activation": "relu"}},
    {"MaxPooling2D": {"pool_size": 2}},
    {"Conv2D": {"filters": 32, "kernel_size": 3, "activation": "relu"}},
    {"MaxPooling2D": {"pool_size": 2}},
    "Flatten",
    {"Dense": {"units": 128, "activation": "relu"}},
    {"Dense": {"units": 10, "activation": "softmax"}},
]


def test_configured_baselines_are_the_notebooks_models():
    variants = find_variants(parameters())
    dense = build(variants["dense"]["architecture"], "dense")
    cnn = build(variants["cnn"]["architecture"], "cnn")
    # Flatten -> Dense 128 -> Dense 10, and the notebook's CNN (model.summary() totals).
    assert dense.count_params() == 784 * 128 + 128 + 128 * 10 + 10 == 101_770
    assert cnn.count_params() == 320 + 9_248 + 800 * 128 + 128 + 1_290 == 113_386
    assert [layer.name for layer in cnn.layers[1:]] == [
        "conv2d_1", "max_pooling2d_2", "conv2d_3", "max_pooling2d_4", "flatten_5", "dense_6", "dense_7",
    ]
    assert is_convolutional(variants["cnn"]) and not is_convolutional(variants["dense"])
    assert "Total params: 113,386" in model_summary(cnn)


def test_the_summary_holds_the_whole_table_on_a_narrow_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # what a pipe or a Kedro log console gives Keras
    cnn = build(find_variants(parameters())["cnn"]["architecture"], "cnn")
    summary = model_summary(cnn)
    assert "Param #" in summary.splitlines()[2]
    for layer, count in (("conv2d_1 (Conv2D)", "320"), ("conv2d_3 (Conv2D)", "9,248"), ("dense_6 (Dense)", "102,528"),
                         ("dense_7 (Dense)", "1,290")):
        (row,) = [line for line in summary.splitlines() if layer in line]
        assert row.rstrip(" │").endswith(count), row
    assert os.environ["COLUMNS"] == "80"  # left as it was


def test_unknown_layer_type_lists_the_valid_ones():
    with pytest.raises(SpecError) as error:
        build([*CNN[:2], {"Conv2d": {"filters": 8, "kernel_size": 3}}, *CNN[4:]], "cnn_typo")
    message = str(error.value)
    assert message.startswith("Variant 'cnn_typo', layer 3: unknown layer type 'Conv2d'. Did you mean Conv2D")
    assert "Valid types are the classes of keras.layers:" in message
    assert "MaxPooling2D" in message and "Dense" in message


def test_bad_layer_arguments_name_the_layer():
    with pytest.raises(SpecError, match=r"Variant 'x', layer 1 \(Conv2D\): bad arguments .*filterz"):
        build([{"Conv2D": {"filterz": 32, "kernel_size": 3}}, *CNN[1:]], "x")


def test_layer_entry_must_be_a_one_key_mapping():
    with pytest.raises(SpecError, match=r"Variant 'x', layer 2: expected a one-key mapping"):
        build([CNN[0], {"MaxPooling2D": {}, "Flatten": {}}], "x")


def test_feature_map_shrinking_below_one_pixel():
    # 28 -> 26 -> 13 -> 11 -> 5 -> 3 -> 1: a fourth convolution has nothing left to convolve.
    too_deep = [*CNN[:4], CNN[2], CNN[3], CNN[2], *CNN[4:]]
    with pytest.raises(SpecError, match=r"Variant 'deep', layer 7 \(Conv2D\): the feature map shrinks below 1x1 "
                                        r"\(input shape \(None, 1, 1, 32\) is too small.*padding: same"):
        build(too_deep, "deep")


def test_output_must_be_ten_classes():
    with pytest.raises(SpecError, match=r"Variant 'x': the last layer outputs shape \(None, 5\)"):
        build(["Flatten", {"Dense": {"units": 5, "activation": "softmax"}}], "x")


def test_empty_architecture():
    with pytest.raises(SpecError, match=r"Variant 'x': `architecture` must be a non-empty list"):
        build([], "x")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"epochs": 0}, r"`cnn\.training\.epochs` must be a positive whole number, got 0"),
        ({"epochs": 2.5}, r"`cnn\.training\.epochs` must be a positive whole number, got 2\.5"),
        ({"batch_size": -32}, r"`cnn\.training\.batch_size` must be a positive whole number, got -32"),
        ({"validation_split": 1.0}, r"`cnn\.training\.validation_split` must be a fraction in \[0, 1\)"),
        ({"learning_rate": 0}, r"`cnn\.training\.learning_rate` must be a positive number"),
        ({"epoch": 3}, r"unknown training setting\(s\) \['epoch'\] in `cnn\.training`"),
        ({"stop_at_threshold": {"monitor": "loss", "threshold": 0.4, "mode": "under"}},
         r"`cnn\.training\.stop_at_threshold` needs a numeric threshold and a mode in \('below', 'above'\)"),
        ({"early_stopping": {"monitor": "val_loss"}},
         r"`cnn\.training\.validation_split` must be above 0 to monitor 'val_loss'"),
    ],
)
def test_bad_training_settings(override, message):
    with pytest.raises(SpecError, match=r"Variant 'cnn': " + message):
        merge_training_settings("cnn", parameters()["training_defaults"], override)


def test_unknown_optimizer_is_named():
    settings = merge_training_settings("cnn", parameters()["training_defaults"], {"optimizer": "adamm"})
    with pytest.raises(SpecError, match=r"Variant 'cnn': `cnn\.training\.optimizer` 'adamm' is not a Keras optimizer"):
        compiled_model("cnn", CNN, settings, parameters()["data"])


def test_variant_blocks_are_checked():
    with pytest.raises(SpecError, match=r"Variant 'v': no `training:` block; write `training: \{\}`"):
        find_variants({"v": {"architecture": CNN}})
    with pytest.raises(SpecError, match=r"Variant 'v': unknown key\(s\) \['layers'\]"):
        find_variants({"v": {"architecture": CNN, "training": {}, "layers": []}})
    assert list(find_variants({"data": {}, "v": {"architecture": CNN, "training": {}}})) == ["v"]


def test_reading_the_variants_keeps_the_sessions_resolvers(tmp_path):
    """The registry's config read must not replace the running session's process-wide resolvers: the
    catalog's `${runtime_params:...}` must still give the session's --params."""
    from kedro.config import OmegaConfigLoader
    from omegaconf import OmegaConf

    from fashion_cnn.variants import load_variants

    (tmp_path / "base").mkdir()
    (tmp_path / "base/parameters.yml").write_text("marker: ${runtime_params:marker}\n")
    session = OmegaConfigLoader(str(tmp_path), runtime_params={"marker": "the session's"})
    assert session["parameters"]["marker"] == "the session's"  # the session's loader registers its resolvers
    assert "cnn" in load_variants()
    assert OmegaConf.create({"value": "${runtime_params:marker}"}).value == "the session's"


def test_runtime_parameters_map_to_tensorflows_environment():
    assert runtime_environment({"onednn": True, "intra_op_threads": 2, "inter_op_threads": None}) == {
        "TF_ENABLE_ONEDNN_OPTS": "1",
        "TF_NUM_INTRAOP_THREADS": "2",
    }
    assert runtime_environment({"onednn": False}) == {"TF_ENABLE_ONEDNN_OPTS": "0"}
    assert runtime_environment(None) == {}


@pytest.mark.parametrize(
    ("runtime", "message"),
    [
        ({"intra_op_threads": 0}, r"`runtime\.intra_op_threads` must be a positive whole number"),
        ({"inter_op_threads": "two"}, r"`runtime\.inter_op_threads` must be a positive whole number"),
        ({"onednn": "yes"}, r"`runtime\.onednn` must be true, false or null"),
        ({"one_dnn": True}, r"Unknown `runtime` setting\(s\) \['one_dnn'\]"),
    ],
)
def test_bad_runtime_parameters_are_named(runtime, message):
    with pytest.raises(SpecError, match=message):
        runtime_environment(runtime)


def test_mixed_bfloat16_computes_in_bf16_with_float32_weights_and_output():
    spec = [{"Conv2D": {"filters": 4, "kernel_size": 3}}, {"Dense": {"units": 3, "dtype": "float32"}},
            "Flatten", {"Dense": {"units": 10, "activation": "softmax"}}]
    model = build_model("bf16", spec, [28, 28, 1], 10, precision="mixed_bfloat16")
    policies = [layer.dtype_policy.name for layer in model.layers[1:]]
    assert policies == ["mixed_bfloat16", "float32", "mixed_bfloat16", "float32"]  # the spec's own dtype kept
    assert all(weight.dtype == "float32" for weight in model.weights)
    assert model.output.dtype == "float32"
    assert all(layer.dtype_policy.name == "float32" for layer in build_model("f32", spec, [28, 28, 1], 10).layers)


def test_precision_settings_and_cpu_support():
    from fashion_cnn.parameters import check_precision, cpu_has_bf16, resolve_precision

    assert cpu_has_bf16("processor : 0\nflags : fpu avx2 avx512f avx512_bf16 amx_tile\n")
    assert not cpu_has_bf16("processor : 0\nflags : fpu sse2 avx2 fma\n")
    assert resolve_precision("auto", True) == "mixed_bfloat16" and resolve_precision("auto", False) == "float32"
    assert resolve_precision("float32", True) == "float32"
    check_precision("mixed_bfloat16", True, 0)
    check_precision("mixed_bfloat16", False, 1)  # a GPU: TensorFlow's business
    with pytest.raises(SpecError, match=r"mixed_bfloat16` needs a CPU with bfloat16 units .*`auto`"):
        check_precision("mixed_bfloat16", False, 0)
    with pytest.raises(SpecError, match=r"`runtime.precision` must be one of"):
        runtime_environment({"precision": "float16"})
