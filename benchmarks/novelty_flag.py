"""Benchmark: `predict`'s "not something I know" flag on the full data, and what it costs.

    python benchmarks/novelty_flag.py                   # trains the CNN (`kedro run --pipelines cnn`) first
    python benchmarks/novelty_flag.py --project DIR     # DIR's newest CNN (trained with its novelty reference)
    python benchmarks/novelty_flag.py --variant dense   # another variant

In a throwaway copy of the project (or DIR), with the CNN (or ``--variant``) that the real `kedro run
--pipelines cnn` trained (default parameters: 5 epochs on the 60,000 training images), it prints

* the share of test images flagged: on the whole test set (the calibration set: the share by
  construction), and on one half when the reference is calibrated on the other;
* the share of the first 1,000 test images flagged when rendered as photos (dark on white, enlarged,
  PNG) and put through `kedro run --pipelines predict`, as your own photos of clothes would be;
* how many of 100 generated pictures that are not clothing (20 each of faces, digits, text, noise and
  plain shapes: :func:`non_clothing_pictures`) and of matplotlib's portrait of Grace Hopper the same
  `predict` run flags, against the maximum-softmax-probability baseline (Hendrycks and Gimpel 2017)
  flagging the same share of the test set;
* the seconds of the node that fits the reference (`fit_novelty_reference`, run as in the pipeline,
  first call and repeats), beside one pass of the model over the test set (what `evaluate_model` does).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from compare import benchmark_env, clean_up, cpu_description, kedro_command, project_copy, run

WORDS = ["hello", "invoice", "total 42", "Kedro", "meeting at 10", "THE END", "see you soon", "pasta",
         "fashion", "Dear Ada,", "no entry", "1984", "open", "menu", "exit", "sale"]


def _canvas(rng: np.random.Generator, width: int | None = None, height: int | None = None) -> Image.Image:
    size = (width or int(rng.integers(120, 400)), height or int(rng.integers(120, 400)))
    return Image.new("RGB", size, tuple(int(v) for v in rng.integers(225, 256, 3)))  # near-white paper


def _ink(rng: np.random.Generator) -> tuple[int, ...]:
    return tuple(int(v) for v in rng.integers(0, 90, 3))


def face(rng: np.random.Generator) -> Image.Image:
    """A drawn face: head (outlined or filled), eyes, nose, smile, sometimes hair."""
    image = _canvas(rng)
    draw, (w, h) = ImageDraw.Draw(image), image.size
    cx, cy = w / 2 + rng.uniform(-0.1, 0.1) * w, h / 2 + rng.uniform(-0.1, 0.1) * h
    rx, ry = min(w, h) * rng.uniform(0.25, 0.38), min(w, h) * rng.uniform(0.32, 0.45)
    ink, line = _ink(rng), max(2, int(rx / 15))
    skin = tuple(int(v) for v in rng.integers(120, 220, 3)) if rng.random() < 0.5 else None
    draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=skin, outline=ink, width=line)
    for side in (-1, 1):
        ex, ey, er = cx + side * rx * 0.4, cy - ry * 0.2, rx * rng.uniform(0.08, 0.16)
        draw.ellipse((ex - er, ey - er, ex + er, ey + er), fill=ink)
    draw.line((cx, cy - ry * 0.05, cx - rx * 0.08, cy + ry * 0.2, cx + rx * 0.05, cy + ry * 0.22), fill=ink, width=line)
    draw.arc((cx - rx * 0.45, cy + ry * 0.1, cx + rx * 0.45, cy + ry * rng.uniform(0.6, 0.75)), 20, 160, fill=ink,
             width=line)
    if rng.random() < 0.5:
        draw.chord((cx - rx * 1.05, cy - ry * 1.1, cx + rx * 1.05, cy + ry * 0.2), 180, 360, fill=_ink(rng))
    return image


def digits(rng: np.random.Generator) -> Image.Image:
    """One or two digits, large, in Pillow's own scalable font."""
    image = _canvas(rng)
    w, h = image.size
    text = str(int(rng.integers(0, 10) if rng.random() < 0.6 else rng.integers(10, 100)))
    font = ImageFont.load_default(size=int(min(w, h) * rng.uniform(0.5, 0.8)))
    ImageDraw.Draw(image).text((w / 2, h / 2), text, fill=_ink(rng), font=font, anchor="mm")
    return image


def text(rng: np.random.Generator) -> Image.Image:
    """A few lines of words, as on a note or a receipt."""
    image = _canvas(rng, int(rng.integers(300, 600)), int(rng.integers(150, 400)))
    lines = [" ".join(rng.choice(WORDS, int(rng.integers(1, 3)))) for _ in range(int(rng.integers(1, 5)))]
    font = ImageFont.load_default(size=int(rng.integers(18, 36)))
    ImageDraw.Draw(image).multiline_text((image.width * 0.08, image.height * 0.1), "\n".join(lines),
                                         fill=_ink(rng), font=font, spacing=6)
    return image


def noise(rng: np.random.Generator) -> Image.Image:
    """Uniform noise, grey or colour, 60 to 300 pixels a side."""
    w, h = (int(v) for v in rng.integers(60, 300, 2))
    return Image.fromarray(rng.integers(0, 256, (h, w, 3) if rng.random() < 0.5 else (h, w), dtype=np.uint8))


def shape(rng: np.random.Generator) -> Image.Image:
    """A circle, rectangle, triangle or star, outlined or filled."""
    image = _canvas(rng)
    draw, (w, h) = ImageDraw.Draw(image), image.size
    s, cx, cy = min(w, h) * rng.uniform(0.25, 0.42), w / 2, h / 2
    style = {"fill": _ink(rng) if rng.random() < 0.5 else None, "outline": _ink(rng), "width": max(2, int(s / 10))}
    kind = int(rng.integers(0, 4))
    if kind == 0:
        draw.ellipse((cx - s, cy - s, cx + s, cy + s), **style)
    elif kind == 1:
        draw.rectangle((cx - s, cy - s * 0.6, cx + s, cy + s * 0.6), **style)
    else:
        points = 3 if kind == 2 else 10
        angles = np.linspace(-np.pi / 2, 3 * np.pi / 2, points + 1)[:-1]
        radii = np.where(np.arange(points) % 2 == 0, s, s * (1 if kind == 2 else 0.45))
        draw.polygon([(cx + r * np.cos(a), cy + r * np.sin(a)) for r, a in zip(radii, angles)], **style)
    return image


KINDS: dict[str, Callable[[np.random.Generator], Image.Image]] = {
    "faces": face, "digits": digits, "text": text, "noise": noise, "shapes": shape}


def non_clothing_pictures(per_kind: int = 20, seed: int = 0) -> dict[str, list[Image.Image]]:
    """``per_kind`` generated pictures of each kind that is not clothing (faces, digits, text, noise,
    plain shapes), dark on near-white as photos of them would be (noise aside), 60 to 600 pixels."""
    rng = np.random.default_rng(seed)
    return {kind: [make(rng) for _ in range(per_kind)] for kind, make in KINDS.items()}


def render_photo(image: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A Fashion-MNIST image (uint8, light on black) as a photo would show it: dark on white, enlarged
    5 to 12 times, white margins (as tests/test_predict.py renders them)."""
    scale = int(rng.integers(5, 13))
    item = Image.fromarray(255 - image).resize((28 * scale, 28 * scale), Image.Resampling.BICUBIC).convert("RGB")
    left, top, right, bottom = (int(margin) for margin in rng.integers(10, 81, 4))
    photo = Image.new("RGB", (item.width + left + right, item.height + top + bottom), "white")
    photo.paste(item, (left, top))
    return photo


def newest(folder: Path) -> Path:
    return max(path for path in folder.iterdir() if not path.name.startswith("."))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, help="a project with a trained CNN (default: train one)")
    parser.add_argument("--variant", default="cnn", help="the variant to train (or read) and measure")
    parser.add_argument("--photos", type=int, default=1000, help="test images rendered as photos")
    parser.add_argument("--keep", action="store_true", help="keep the work folder with the logs")
    args = parser.parse_args()

    import json

    import pandas as pd
    from matplotlib import cbook

    root = Path(tempfile.mkdtemp(prefix="fashion_cnn_novelty_"))
    env = benchmark_env()
    project = args.project.resolve() if args.project else project_copy(root)
    if not args.project:
        wall, _ = run([*kedro_command(), "run", "--pipelines", args.variant], project, env, root / "train.log")
        print(f"kedro run --pipelines {args.variant}: {wall:.0f} s", flush=True)
    models = project / "data/06_models" / args.variant
    version = newest(models / "model.keras").name
    reference_file = models / f"novelty_reference.json/{version}/novelty_reference.json"
    reference = json.loads(reference_file.read_text())

    # Your own pictures, through the real `predict` pipeline.
    folder = root / "pictures"
    folder.mkdir()
    for kind, pictures in non_clothing_pictures().items():
        for index, picture in enumerate(pictures):
            picture.save(folder / f"{kind}_{index:02d}.png")
    with cbook.get_sample_data("grace_hopper.jpg") as file:
        Image.open(file).save(folder / "portrait_0.jpg")  # matplotlib's sample photo of Grace Hopper
    with np.load(project / "data/05_model_input/model_inputs.npz") as npz:
        inputs = {key: npz[key] for key in npz.files}
    rng = np.random.default_rng(0)
    for index in range(args.photos):
        image = np.rint(inputs["test_images"][index, :, :, 0] * 255).astype(np.uint8)
        render_photo(image, rng).save(folder / f"photo_{index:04d}.png")
    wall, _ = run([*kedro_command(), "run", "--pipelines", "predict", "--params",
                   f"predict.images={folder},predict.variant={args.variant},predict.model_version={version}"],
                  project, env, root / "predict.log")
    table = pd.read_csv(project / "data/08_reporting/predictions/predictions.csv")
    table["kind"] = table["file"].str.rsplit("_", n=1).str[0]

    # In this process: the node's cost, the held-out share, and the softmax baseline.
    from fashion_cnn.model.novelty import fit_reference, novelty_scores
    from fashion_cnn.model.quiet_import import import_tensorflow
    from fashion_cnn.pipelines.variants.nodes import fit_novelty_reference

    import_tensorflow()
    import keras

    model = keras.saving.load_model(models / f"model.keras/{version}/model.keras")
    settings = json.loads((project / f"data/05_model_input/{args.variant}/training_settings.json").read_text())
    test = inputs["test_images"]
    model.predict(test[:1000], verbose=0)  # TensorFlow warmed up, as training leaves it in a run
    fit_seconds, pass_seconds = [], []
    for _ in range(3):  # interleaved: other work on this machine slows both alike
        start = time.perf_counter()
        fit_novelty_reference(model, inputs, settings, reference["test_share"])
        fit_seconds.append(time.perf_counter() - start)
        start = time.perf_counter()
        probabilities = model.predict(test, batch_size=1000, verbose=0)
        pass_seconds.append(time.perf_counter() - start)
    halves = np.array_split(np.random.default_rng(1).permutation(len(test)), 2)
    held_out = []
    for calibrate, measure in (halves, halves[::-1]):
        half = fit_reference(model, inputs["train_images"], inputs["train_labels"], test[calibrate],
                             reference["test_share"], settings["seed"])
        held_out.append(float((novelty_scores(model, test[measure], half) > half["threshold"]).mean()))
    whole = float((novelty_scores(model, test, reference) > reference["threshold"]).mean())
    softmax_threshold = np.quantile(probabilities.max(axis=1), reference["test_share"])

    share = reference["test_share"]
    print(f"\n{args.variant}, model version {version}; {cpu_description()}")
    print(f"Method: {reference['method']}; layers: {len(reference['layers'])}; fitted on {reference['fit_images']} "
          f"training images, calibrated on {reference['test_images']} test images ({share:.0%} flagged); reference "
          f"file {reference_file.stat().st_size / 1e3:.0f} kB")
    print(f"Test images flagged: {whole:.1%} of the whole test set (the calibration set; softmax baseline "
          f"{(probabilities.max(axis=1) < softmax_threshold).mean():.1%}); calibrated on one half, on the other: "
          f"{held_out[0]:.1%} and {held_out[1]:.1%}")
    photos = table[table["kind"] == "photo"]
    print(f"Test images rendered as photos, through predict: {photos['unfamiliar'].mean():.1%} of {len(photos)} "
          f"flagged (softmax baseline: {(photos['probability_1'] < softmax_threshold).mean():.1%})")
    print(f"{'pictures':<10} {'flagged':>8} {'softmax baseline':>17}   classes given")
    for kind in [*KINDS, "portrait"]:
        rows = table[table["kind"] == kind]
        classes = ", ".join(f"{name} {count}" for name, count in rows["class_1"].value_counts().head(3).items())
        print(f"{kind:<10} {int(rows['unfamiliar'].sum()):>4}/{len(rows):<3} "
              f"{int((rows['probability_1'] < softmax_threshold).sum()):>9}/{len(rows):<3}       {classes}")
    others = table[table["kind"].isin(KINDS)]
    print(f"{'all 100':<10} {int(others['unfamiliar'].sum()):>4}/{len(others):<3} "
          f"{int((others['probability_1'] < softmax_threshold).sum()):>9}/{len(others):<3}")
    print(f"Cost: fit_novelty_reference {fit_seconds[0]:.2f} s first call (as in a run), then "
          f"{statistics.median(fit_seconds[1:]):.2f} s; one model pass over the test set (batch 1000) "
          f"{statistics.median(pass_seconds):.2f} s; the predict run {wall:.0f} s for {len(table)} files")
    clean_up(root, args.keep)


if __name__ == "__main__":
    main()
