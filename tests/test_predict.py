"""Using a trained model: the score table at the end of a training run, your own images classified
(`predict`), the SavedModel export (`export`), and the models in MLflow, served over HTTP.

One small real training run (the CNN and the Dense baseline, 1 epoch on 2,000 images) is shared
by the tests of this module; each test then runs its own real Kedro sessions on it.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from support import PROJECT_ROOT, copy_project, run_session
from PIL import Image

from fashion_cnn.model.architecture import SpecError
from fashion_cnn.datasets.image_files import ImageFilesDataset
from fashion_cnn.pipelines.predict.preparation import NoItemFound, fashion_mnist_image
from fashion_cnn.runtime.lifecycle import RunLifecycle
from fashion_cnn.settings import HOOKS

sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
from novelty_flag import non_clothing_pictures, render_photo  # noqa: E402 - a script folder, not a package

TRAIN = {
    "data.train_limit": 2000,
    "data.test_limit": 500,
    **{f"{variant}.training.{key}": value for variant in ("cnn", "dense")
       for key, value in (("epochs", 1), ("verbose", 0))},
}
PHOTOS = 200  # test images rendered as photos
SERVER_START_SECONDS = 180
REQUEST_SECONDS = 60


@dataclass
class Trained:
    project: Path
    catalog: Any
    output: str  # what the run printed to stdout: Kedro's log, then the score table


@pytest.fixture(scope="module")
def trained(tmp_path_factory, real_data_dir) -> Trained:
    from kedro.framework.startup import bootstrap_project

    project = copy_project(tmp_path_factory.mktemp("trained") / "project")
    # The first bootstrap in a process applies the project's logging configuration, which empties
    # the handlers of the project's module loggers; the later ones leave them alone.
    bootstrap_project(project)
    output = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        catalog = run_session(project, ["cnn", "dense"], TRAIN, stdout=output)
    yield Trained(project, catalog, output.getvalue())


def latest(project: Path, pattern: str) -> Path:
    matches = sorted(project.glob(pattern))
    assert matches, f"nothing matches {pattern}"
    return matches[-1]


def test_a_training_run_ends_with_one_score_table(trained):
    lines = trained.output.rstrip("\n").splitlines()
    assert sum(line.startswith("Test scores") for line in lines) == 1, "printed once"
    assert lines[-4].startswith("Test scores (the notebook's model.evaluate), 2 variants:"), "the run's last lines"
    lines = lines[-4:]
    assert lines[1].split() == ["variant", "test", "accuracy", "test", "loss", "epochs", "training", "s"]
    assert max(map(len, lines)) <= 80, "whole in an 80-column terminal"
    assert len({len(line) for line in lines[1:]}) == 1, "every row as wide as the header: the columns align"

    hook = next(hook for hook in HOOKS if isinstance(hook, RunLifecycle))
    expected = []
    for variant in ("cnn", "dense"):
        metrics_file = latest(trained.project, f"data/08_reporting/{variant}/metrics.json/*/metrics.json")
        metrics = json.loads(metrics_file.read_text())
        expected.append((variant, f"{metrics['test_accuracy']:.4f}", f"{metrics['test_loss']:.4f}", "1/1",
                         f"{metrics['training_seconds']:.1f}"))
    assert hook.last_scores == expected
    assert [line.split() for line in lines[2:]] == [list(row) for row in expected]


# ---- predict ----

def write_unusable_files(folder: Path) -> dict[str, str]:
    """Files predict must list and skip, with a word of their expected reason."""
    (folder / "notes.txt").write_text("a shopping list, not a picture")
    (folder / "empty.png").write_bytes(b"")
    Image.new("1", (12000, 9000)).save(folder / "huge.png")  # 108 megapixels in a few kilobytes
    (folder / ".hidden.png").write_bytes(b"never listed")
    return {"notes.txt": "not an image", "empty.png": "empty", "huge.png": "too large"}


def test_own_images_are_classified_about_as_well_as_the_test_set(trained, tmp_path, monkeypatch):
    monkeypatch.chdir(trained.project)
    inputs = trained.catalog.load("model_inputs")
    images = np.rint(inputs["test_images"][:PHOTOS, :, :, 0] * 255).astype(np.uint8)
    labels = inputs["test_labels"][:PHOTOS]
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    names = []
    for index, image in enumerate(images):
        name = f"item_{index:03d}.{'jpg' if index % 2 else 'png'}"
        render_photo(image, rng).save(folder / name, quality=90)
        names.append(name)
    unusable = write_unusable_files(folder)

    run_session(trained.project, ["predict"], {"predict.images": str(folder)})

    table = pd.read_csv(trained.project / "data/08_reporting/predictions/predictions.csv", keep_default_na=False)
    assert list(table.columns) == ["file", "class_1", "probability_1", "class_2", "probability_2", "class_3",
                                   "probability_3", "novelty_score", "unfamiliar", "skipped_because"]
    assert sorted(table["file"]) == sorted([*names, *unusable]), "every file listed once, hidden ones left out"
    skipped = table[table["skipped_because"] != ""].set_index("file")["skipped_because"]
    assert sorted(skipped.index) == sorted(unusable)
    for file, word in unusable.items():
        assert word in skipped[file], (file, skipped[file])
    predicted = table[table["skipped_because"] == ""].set_index("file").loc[names]
    probabilities = predicted[["probability_1", "probability_2", "probability_3"]].astype(float).to_numpy()
    assert (np.diff(probabilities, axis=1) <= 0).all() and (probabilities.sum(axis=1) <= 1.0001).all()

    class_names = trained.catalog.load("params:data.class_names")
    model = trained.catalog.load("cnn.model")
    on_test_set = model.predict(inputs["test_images"][:PHOTOS], verbose=0).argmax(axis=1)
    test_accuracy = float((on_test_set == labels).mean())
    right = predicted["class_1"].to_numpy() == np.asarray(class_names)[labels]
    photo_accuracy = float(right.mean())
    agreement = float((predicted["class_1"].to_numpy() == np.asarray(class_names)[on_test_set]).mean())
    by_format = {"png": float(right[0::2].mean()), "jpg": float(right[1::2].mean())}
    print(f"\n{PHOTOS} test images: accuracy {test_accuracy:.3f} as 28x28 test images, {photo_accuracy:.3f} "
          f"rendered as photos (PNG {by_format['png']:.3f}, JPEG {by_format['jpg']:.3f}); "
          f"the same class for {agreement:.1%} of them")
    # 0.05 = 10 of 200 images: the preparation must not cost the model more than that.
    assert abs(photo_accuracy - test_accuracy) <= 0.05
    assert agreement >= 0.85

    sheet = Image.open(trained.project / "data/08_reporting/predictions/contact_sheet.png")
    assert sheet.format == "PNG" and sheet.width >= 8 * 100


def test_the_preparation_is_the_same_for_light_and_dark_backgrounds(real_data_dir):
    from fashion_cnn.datasets.idx import parse_idx, read_bytes

    image = parse_idx(read_bytes(real_data_dir / "t10k-images-idx3-ubyte.gz"), "test", 3)[0]
    dark_on_white = render_photo(image, np.random.default_rng(1))
    light_on_black = Image.fromarray(255 - np.asarray(dark_on_white))
    tinted = Image.fromarray((np.asarray(dark_on_white) * np.array([1.0, 0.9, 0.8])).astype(np.uint8))
    prepared = [fashion_mnist_image(picture) for picture in (dark_on_white, light_on_black, tinted.convert("RGBA"))]
    for result in prepared:
        assert result.shape == (28, 28) and result.dtype == np.float32
        assert result.min() >= 0 and result.max() == 1
    np.testing.assert_allclose(prepared[0], prepared[1], atol=1 / 255)
    assert np.abs(prepared[0] - prepared[2]).mean() < 0.02  # a colour cast changes the greys a little
    assert np.abs(prepared[0] - image / 255).mean() < 0.1  # near the original, which it was made from

    # A wide item keeps its aspect ratio: 28 wide, 7 high, centred.
    bar = Image.new("L", (400, 100), 255)
    bar.paste(0, (20, 5, 380, 95))  # 360x90: 4 to 1
    rows = np.flatnonzero(fashion_mnist_image(bar).max(axis=1) > 0.5)
    assert len(rows) == 7 and rows[0] == (28 - 7) // 2
    with pytest.raises(NoItemFound, match="no item found"):
        fashion_mnist_image(Image.new("RGB", (300, 200), (240, 240, 240)))


def test_images_by_folder_glob_or_file(tmp_path):
    for name in ("a.png", "b.jpg", "sub/c.png", ".hidden/d.png", "e.PNG"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (4, 4)).save(tmp_path / name, format="PNG")
    assert sorted(ImageFilesDataset(path=str(tmp_path)).load()) == ["a.png", "b.jpg", "e.PNG", "sub/c.png"]
    assert sorted(ImageFilesDataset(path=f"{tmp_path}/*.png").load()) == ["a.png"]
    assert sorted(ImageFilesDataset(path=f"{tmp_path}/**/*.png").load()) == ["a.png", "sub/c.png"]
    assert list(ImageFilesDataset(path=f"{tmp_path}/b.jpg").load()) == ["b.jpg"]
    assert not ImageFilesDataset(path=f"{tmp_path}/*.gif").exists()


def test_a_folder_without_one_usable_image_gives_a_table_of_reasons(tmp_path):
    """The nodes on their own: nothing to classify, so the model is never called."""
    from fashion_cnn.pipelines.predict.nodes import (
        plot_contact_sheet,
        predict_top_classes,
        prepare_images,
        tabulate_predictions,
    )

    (tmp_path / "a.txt").write_text("text")
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0 a JPEG cut short")
    Image.new("RGB", (50, 40), (200, 200, 200)).save(tmp_path / "c.png")
    prepared = prepare_images(ImageFilesDataset(path=str(tmp_path)).load(), [28, 28, 1])
    assert prepared["images"].shape == (0, 28, 28, 1)
    classes = [f"class {index}" for index in range(10)]
    table = tabulate_predictions(predict_top_classes(None, prepared, {}, classes, 3), prepared)
    assert list(table["file"]) == ["a.txt", "b.jpg", "c.png"]
    assert table[["class_1", "novelty_score", "unfamiliar"]].isna().all().all()
    reasons = list(table["skipped_because"])
    assert "not an image" in reasons[0] and "no item found" in reasons[2], reasons
    figure = plot_contact_sheet(prepared, table, {"variant": "cnn", "version": "v"}, {"max_images": 8, "columns": 4})
    assert any(text.get_text() == "No usable image." for text in figure.texts)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"predict.variant": "cnnn"}, r"Parameter `predict\.variant`: there is no variant 'cnnn'"),
        ({"predict.variant": "more_convs"}, r"Parameter `predict\.variant`: variant 'more_convs' has no trained model"),
        ({"predict.model_version": "2020-01-01T00.00.00.000Z"},
         r"Parameter `predict\.model_version`: variant 'cnn' has no model version '2020-01-01T00\.00\.00\.000Z'"),
        ({"predict.images": "no/such/folder/*.jpg"},
         r"Parameter `predict\.images`: no files match 'no/such/folder/\*\.jpg'"),
        ({"predict.top_k": 11}, r"Parameter `predict\.top_k` must be a whole number from 1 to 10"),
    ],
    ids=["unknown variant", "untrained variant", "missing version", "no images", "top_k"],
)
def test_bad_predict_parameters_fail_before_any_node(trained, tmp_path, monkeypatch, params, message):
    monkeypatch.chdir(trained.project)
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("L", (30, 30), 255).save(folder / "blank.png")
    before = written(trained.project)
    with pytest.raises(SpecError, match=message):
        run_session(trained.project, ["predict"], {"predict.images": str(folder), **params})
    assert written(trained.project) == before, "the run stopped at its checks: not even claimed, nothing written"


def test_a_bad_export_variant_fails_before_any_node(trained, monkeypatch):
    monkeypatch.chdir(trained.project)
    before = written(trained.project)
    with pytest.raises(SpecError, match=r"Parameter `export\.variant`: there is no variant 'cnnn'"):
        run_session(trained.project, ["export"], {"export.variant": "cnnn"})
    assert written(trained.project) == before


def test_predict_in_the_same_run_as_training_is_refused(trained, monkeypatch):
    monkeypatch.chdir(trained.project)
    before = written(trained.project)
    with pytest.raises(SpecError, match=r"This run trains models \(dense\.model\) and runs `predict`"):
        run_session(trained.project, ["dense", "predict"], TRAIN)
    assert written(trained.project) == before


def written(project: Path) -> dict[Path, int]:
    """Every file under data/ (runs that started are recorded in data/.runs/), with its mtime."""
    return {path: path.stat().st_mtime_ns for path in (project / "data").rglob("*") if path.is_file()}


def test_predict_and_export_are_not_in_the_default_pipeline(trained):
    from kedro.framework.project import pipelines

    default = pipelines["__default__"]
    assert not {"trained_models", "predict_images"} & default.inputs()
    assert pipelines["predict"].inputs() >= {"trained_models", "predict_images"}
    assert "trained_models" in pipelines["export"].inputs()


# ---- "not something I know": the novelty flag ----

def test_the_novelty_flag_separates_pictures_that_are_not_clothing_from_test_images(trained, real_data_dir,
                                                                                   monkeypatch):
    """The shared run's CNN (1 epoch on 2,000 images) and its novelty reference, calibrated on that run's 500
    test images: 1,000 other test images are flagged about as often as the stated share, and 100 generated
    pictures that are not clothing (faces, digits, text, noise, shapes), prepared as `predict` prepares
    pictures, far more often."""
    from fashion_cnn.datasets.idx import parse_idx, read_bytes
    from fashion_cnn.model.novelty import novelty_scores

    monkeypatch.chdir(trained.project)
    model, reference = trained.catalog.load("cnn.model"), trained.catalog.load("cnn.novelty_reference")
    assert (reference["test_share"], reference["test_images"], reference["fit_images"]) == (0.05, 500, 2000)
    raw = parse_idx(read_bytes(real_data_dir / "t10k-images-idx3-ubyte.gz"), "test", 3)[500:1500]
    held_out = (raw / np.float32(255))[..., np.newaxis]

    def flagged(images: np.ndarray) -> float:
        return float((novelty_scores(model, images, reference) > reference["threshold"]).mean())

    test_share = flagged(held_out)
    shares = {kind: flagged(np.stack([fashion_mnist_image(picture) for picture in pictures])[..., np.newaxis])
              for kind, pictures in non_clothing_pictures().items()}
    print(f"\nflagged: {test_share:.1%} of 1,000 unseen test images; of 20 pictures each: "
          + ", ".join(f"{kind} {share:.0%}" for kind, share in shares.items()))
    assert 0.02 <= test_share <= 0.10, "about the stated 5%"
    assert np.mean(list(shares.values())) >= 0.6, shares
    assert min(shares.values()) >= 0.25, shares


def test_predict_marks_unfamiliar_images_in_the_table_and_on_the_sheet(trained, tmp_path, monkeypatch):
    monkeypatch.chdir(trained.project)
    folder = tmp_path / "photos"
    folder.mkdir()
    inputs = trained.catalog.load("model_inputs")
    rng = np.random.default_rng(3)
    for index in range(6):
        image = np.rint(inputs["test_images"][index, :, :, 0] * 255).astype(np.uint8)
        render_photo(image, rng).save(folder / f"photo_{index}.png")
    for kind, pictures in non_clothing_pictures(per_kind=2, seed=1).items():
        for index, picture in enumerate(pictures):
            picture.save(folder / f"{kind}_{index}.png")
    (folder / "notes.txt").write_text("not a picture")

    catalog = run_session(trained.project, ["predict"], {"predict.images": str(folder)})

    table = pd.read_csv(trained.project / "data/08_reporting/predictions/predictions.csv", keep_default_na=False)
    assert list(table.columns)[-3:] == ["novelty_score", "unfamiliar", "skipped_because"]
    used = table[table["skipped_because"] == ""]
    assert set(used["unfamiliar"]) <= {"True", "False"}
    assert table.loc[table["file"] == "notes.txt", ["novelty_score", "unfamiliar"]].values.tolist() == [["", ""]]
    version = latest(trained.project, "data/06_models/cnn/model.keras/*").name
    reference = catalog.load("chosen_novelty_reference")
    assert reference == json.loads(
        (trained.project / f"data/06_models/cnn/novelty_reference.json/{version}/novelty_reference.json").read_text())
    scores, unfamiliar = used["novelty_score"].astype(float), used["unfamiliar"] == "True"
    clear = (scores - reference["threshold"]).abs() > 0.01  # the table's scores are rounded to 2 decimals
    assert (unfamiliar == (scores > reference["threshold"]))[clear].all()
    others = used[~used["file"].str.startswith("photo_")]
    assert unfamiliar[others.index].sum() >= 6, "most of the 10 pictures that are not clothing"

    sheet = np.asarray(Image.open(trained.project / "data/08_reporting/predictions/contact_sheet.png").convert("RGB"))
    red = (sheet[..., 0] > 200) & (sheet[..., 1] < 60) & (sheet[..., 2] < 60)
    # A flagged image's thick red frame and red label: about 2,300 pixels at this sheet's size; others none.
    assert 1500 * unfamiliar.sum() < red.sum() < 3000 * unfamiliar.sum()


def test_a_model_without_a_novelty_reference_still_predicts_and_says_so(trained, tmp_path, monkeypatch, caplog):
    """A model trained before novelty references existed: here the newest model's file copied to an
    older version, which has none."""
    monkeypatch.chdir(trained.project)
    old = trained.project / "data/06_models/cnn/model.keras/2020-01-01T00.00.00.000Z"
    old.mkdir()
    (old / "model.keras").write_bytes(latest(trained.project, "data/06_models/cnn/model.keras/*/model.keras")
                                      .read_bytes())
    folder = tmp_path / "photos"
    folder.mkdir()
    non_clothing_pictures(per_kind=1)["faces"][0].save(folder / "face.png")
    try:
        run_session(trained.project, ["predict"], {"predict.images": str(folder), "predict.model_version": old.name})
    finally:
        (old / "model.keras").unlink()
        old.rmdir()
    table = pd.read_csv(trained.project / "data/08_reporting/predictions/predictions.csv", keep_default_na=False)
    assert table["class_1"].item() != "" and table["novelty_score"].item() == table["unfamiliar"].item() == ""
    warnings = [record.getMessage() for record in caplog.records
                if "novelty reference" in record.getMessage() and record.levelname == "WARNING"]
    assert len(warnings) == 1, [record.getMessage() for record in caplog.records]
    assert f"Model version {old.name} of 'cnn' has no novelty reference" in warnings[0]
    assert warnings[0].endswith("train it again: kedro run --pipelines cnn")


def test_no_novelty_reference_at_all_is_no_partition(tmp_path):
    """A project whose models all predate novelty references: `novelty_references` loads as none."""
    from fashion_cnn.datasets import OptionalPartitionedDataset

    (tmp_path / "cnn/model.keras/v").mkdir(parents=True)
    settings = {"path": str(tmp_path), "dataset": "json.JSONDataset", "filename_suffix": ".json"}
    assert OptionalPartitionedDataset(**settings).load() == {}
    (tmp_path / "cnn/model.keras/v/reference.json").write_text("{}")
    assert list(OptionalPartitionedDataset(**settings).load()) == ["cnn/model.keras/v/reference"]


@pytest.mark.parametrize("share", [1.5, "5%"])
def test_a_bad_novelty_share_fails_before_any_training(trained, monkeypatch, share):
    monkeypatch.chdir(trained.project)
    before = written(trained.project)
    with pytest.raises(SpecError, match=r"Parameter `novelty\.test_share` must be a fraction between 0 and 1"):
        run_session(trained.project, ["dense"], {**TRAIN, "novelty.test_share": share})
    assert written(trained.project) == before


# ---- export ----

# A fresh process with TensorFlow and NumPy only: no project code, no Keras model classes. The
# model is TensorFlow's restored object, called through its serving signature, as TensorFlow
# Serving calls it.
SAVED_MODEL_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf

    folder, inputs = sys.argv[1], sys.argv[2]
    images = np.load(inputs)["test_images"][:100]
    served = tf.saved_model.load(folder)
    signature = served.signatures["serving_default"]
    (name,) = signature.structured_input_signature[1]
    (outputs,) = signature(**{name: tf.constant(images)}).values()
    print(json.dumps({"probabilities": outputs.numpy().tolist(), "type": type(served).__module__,
                      "fashion_cnn_imported": "fashion_cnn" in sys.modules}))
    """
)


def test_export_writes_a_saved_model_that_loads_without_keras(trained, monkeypatch):
    monkeypatch.chdir(trained.project)
    run_session(trained.project, ["export"], {"export.variant": "cnn"})

    version = latest(trained.project, "data/06_models/cnn/model.keras/*").name
    from fashion_cnn.pipelines.export.nodes import serving_version

    folders = list((trained.project / "data/06_models/cnn/saved_model").iterdir())
    assert [folder.name for folder in folders] == [str(serving_version(version))], "one folder, no temporary ones"
    assert (folders[0] / "saved_model.pb").is_file()

    done = subprocess.run(
        [sys.executable, "-c", SAVED_MODEL_SCRIPT, str(folders[0]),
         str(trained.project / "data/05_model_input/model_inputs.npz")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])
    assert served["type"].startswith("tensorflow.") and not served["fashion_cnn_imported"]
    expected = trained.catalog.load("cnn.model").predict(trained.catalog.load("model_inputs")["test_images"][:100],
                                                        verbose=0)
    np.testing.assert_allclose(np.array(served["probabilities"]), expected, atol=1e-5)


def test_a_saved_model_is_replaced_whole(tmp_path):
    import keras

    from fashion_cnn.datasets.keras_model_dataset import SavedModelDataset

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    dataset = SavedModelDataset(filepath=str(tmp_path / "m" / "1"))
    dataset.save(model)
    first = (tmp_path / "m/1/saved_model.pb").stat().st_ino
    dataset.save(model)
    assert (tmp_path / "m/1/saved_model.pb").stat().st_ino != first
    assert [path.name for path in (tmp_path / "m").iterdir()] == ["1"], "no temporary folder left"
    served = dataset.load()
    assert served.serve(np.ones((1, 4), np.float32)).shape == (1, 2)


# ---- MLflow ----

def require_tracking_extra():
    try:
        import kedro_mlflow  # noqa: F401
        import mlflow  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"{exc}: install the `tracking` extra, as the README's test command does: "
                    'pip install -e ".[test,tracking,airflow]"')


def tracking_uri(project: Path) -> str:
    return f"sqlite:///{project.resolve().as_posix()}/mlflow.db"


def test_each_variant_run_keeps_its_trained_model_in_mlflow(trained):
    require_tracking_extra()
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri(trained.project))
    experiment = client.get_experiment_by_name("fashion_cnn")
    runs = {run.data.tags["variant"]: run for run in client.search_runs([experiment.experiment_id])
            if "variant" in run.data.tags}
    assert sorted(runs) == ["cnn", "dense"]

    inputs = trained.catalog.load("model_inputs")
    images, labels = inputs["test_images"][:200], inputs["test_labels"][:200]
    mlflow.set_tracking_uri(tracking_uri(trained.project))
    try:
        for variant, run in runs.items():
            logged = mlflow.keras.load_model(f"runs:/{run.info.run_id}/model")
            predicted = logged.predict(images, verbose=0).argmax(axis=1)
            accuracy = float((predicted == labels).mean())
            saved = trained.catalog.load(f"{variant}.model").predict(images, verbose=0).argmax(axis=1)
            assert accuracy == float((saved == labels).mean()) and (predicted == saved).all()
            assert accuracy > 0.5, f"{variant}: {accuracy}"  # one epoch on 2,000 images beats chance (0.1)
    finally:
        mlflow.set_tracking_uri(None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def post_json(url: str, body: dict) -> Any:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=REQUEST_SECONDS) as response:
        return json.loads(response.read())


def test_the_served_prediction_pipeline_answers_raw_images(trained, tmp_path, monkeypatch):
    require_tracking_extra()
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(trained.project)
    folder = tmp_path / "photos"
    folder.mkdir()
    inputs = trained.catalog.load("model_inputs")
    rng = np.random.default_rng(2)
    for index in range(4):
        image = np.rint(inputs["test_images"][index, :, :, 0] * 255).astype(np.uint8)
        render_photo(image, rng).save(folder / f"photo_{index}.{'jpg' if index % 2 else 'png'}", quality=90)
    (folder / "notes.txt").write_text("not a picture")
    run_session(trained.project, ["predict"], {"predict.images": str(folder)})
    expected = pd.read_csv(trained.project / "data/08_reporting/predictions/predictions.csv", keep_default_na=False)

    client = MlflowClient(tracking_uri=tracking_uri(trained.project))
    experiment = client.get_experiment_by_name("fashion_cnn")
    predict_run = client.search_runs([experiment.experiment_id], "attributes.run_name = 'predict'",
                                     order_by=["attributes.start_time DESC"], max_results=1)[0]
    import mlflow

    models = mlflow.search_logged_models(experiment_ids=[experiment.experiment_id], output_format="list",
                                         filter_string=f"source_run_id = '{predict_run.info.run_id}'")
    assert [model.name for model in models] == ["image_classifier"]

    port = free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{models[0].model_id}",
         "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri(trained.project)}, cwd=tmp_path,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            assert server.poll() is None, "the server stopped:\n" + (tmp_path / "server.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, f"no answer on port {port} within {SERVER_START_SECONDS} s"
            time.sleep(1)

        files = sorted(path.name for path in folder.iterdir())
        rows = [[base64.b64encode((folder / name).read_bytes()).decode("ascii"), name] for name in files]
        answer = post_json(f"http://127.0.0.1:{port}/invocations",
                           {"dataframe_split": {"columns": ["image", "file"], "data": rows}})["predictions"]
        assert [row["file"] for row in answer] == files
        by_file = {row["file"]: row for row in answer}
        for row in expected.itertuples():
            served = by_file[row.file]
            assert served["class_1"] == (row.class_1 or None) and served["skipped_because"] == row.skipped_because
            if row.class_1:
                assert served["probability_1"] == pytest.approx(float(row.probability_1), abs=1e-4)
                # The same novelty flag: the served model carries the chosen model's novelty reference.
                assert served["unfamiliar"] == (row.unfamiliar == "True") and row.unfamiliar in ("True", "False")
                assert served["novelty_score"] == pytest.approx(float(row.novelty_score), abs=0.011)
        assert by_file["notes.txt"]["class_1"] is None and "not an image" in by_file["notes.txt"]["skipped_because"]

        # The example request MLflow keeps with the model is a body ready to post.
        example_path = mlflow.artifacts.download_artifacts(f"{models[0].artifact_location}/serving_input_example.json",
                                                           dst_path=str(tmp_path / "example"))
        answer = post_json(f"http://127.0.0.1:{port}/invocations", json.loads(Path(example_path).read_text()))
        assert [row["file"] for row in answer["predictions"]] == ["trousers.png"]
        assert answer["predictions"][0]["class_1"] in trained.catalog.load("params:data.class_names")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=20)
        log.close()
