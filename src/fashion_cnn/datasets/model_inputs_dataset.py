"""The model inputs of a run: in memory, read-only arrays that Kedro passes between nodes by reference; on
disk, one NumPy ``.npz`` file: no pickle, one consistent set, checked on load."""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
from kedro.io.core import DatasetError
from numpy.lib import format as npy

from fashion_cnn.datasets.fsspec_file import FsspecFileDataset, KeepSavedMixin
from fashion_cnn.datasets.whole_files import WholeFileMixin

SPLITS = ("train", "test")
KEYS = tuple(f"{split}_{kind}" for split in SPLITS for kind in ("images", "labels"))
REWRITE_HINT = "run `kedro run --namespaces data_processing` to write the model inputs again"
PICKLED = "holds Python objects (pickled data), which are never loaded: reading them could run code"


class ModelInputsError(DatasetError):
    """A model-inputs file is not a set of images and labels this project would have written."""

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(f"{problem}; {fix}{REWRITE_HINT}.")


def _check_names(names: Iterable[str], source: str) -> None:
    if set(names) != set(KEYS):
        raise ModelInputsError(f"{source}: holds {sorted(names)}, expected exactly {list(KEYS)}")


def check_model_inputs(arrays: Mapping[str, Any], source: str) -> None:
    """Raise :class:`ModelInputsError` unless ``arrays`` holds the train and test images (floats in
    [0, 1]) and labels (whole numbers from 0), with as many labels as images in each split."""

    def fail(problem: str) -> None:
        raise ModelInputsError(f"{source}: {problem}")

    _check_names(arrays, source)
    for split in SPLITS:
        images, labels = np.asarray(arrays[f"{split}_images"]), np.asarray(arrays[f"{split}_labels"])
        if images.dtype not in (np.float32, np.float64) or images.ndim < 3:
            fail(f"{split}_images must be float32 or float64 images (n, height, width[, channels]), "
                 f"got {images.dtype} {images.shape}")
        if not np.issubdtype(labels.dtype, np.integer) or labels.ndim != 1:
            fail(f"{split}_labels must be a 1-d array of whole numbers, got {labels.dtype} {labels.shape}")
        if len(images) != len(labels):
            fail(f"{len(images)} {split} images but {len(labels)} {split} labels: they do not belong together")
        if images.size and not (images.min() >= 0 and images.max() <= 1):  # also false for NaN
            fail(f"{split}_images has values outside [0, 1] (min {images.min()}, max {images.max()})")
        if labels.size and labels.min() < 0:
            fail(f"{split}_labels has negative labels")
    if (train := arrays["train_images"].shape[1:]) != (test := arrays["test_images"].shape[1:]):
        fail(f"train images are {train} but test images {test}")


class ReadOnlyArrays(Mapping[str, np.ndarray]):
    """A read-only mapping of read-only arrays (``arrays["train_images"]``, ...). Kedro's ``MemoryDataset``
    deep-copies a dict of arrays on every save and load (0.7 s for the raw data on 2 cores); a copy of
    this is the same object. Pickling (ParallelRunner) still sends the data, read-only on arrival."""

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        self._arrays = {name: np.asarray(array).view() for name, array in arrays.items()}  # the callers' stay writable
        for array in self._arrays.values():
            array.flags.writeable = False

    def __getitem__(self, name: str) -> np.ndarray:
        return self._arrays[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{name}: {array.dtype}{list(array.shape)}" for name, array in self._arrays.items())
        return f"ReadOnlyArrays({shapes})"

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> ReadOnlyArrays:
        return self

    __copy__ = __deepcopy__

    def __reduce__(self) -> tuple[type, tuple[dict[str, np.ndarray]]]:
        return ReadOnlyArrays, (self._arrays,)


class NpzModelInputsDataset(FsspecFileDataset):
    """The four arrays (``KEYS``) in one ``.npz`` file, so that a run never reads one run's images beside another's
    labels; read with ``allow_pickle=False`` (nothing in it can run code) and checked on every load."""

    def load(self) -> ReadOnlyArrays:
        path = self._load_path()
        arrays = self._read(path, KEYS)[1]
        check_model_inputs(arrays, path)
        return ReadOnlyArrays(arrays)

    def label_arrays(self) -> dict[str, np.ndarray]:
        """Only the labels (kilobytes), after checking every array's header (names, dtypes, counts)
        without reading the images; for the checks before a run: ``{"train": ..., "test": ...}``."""
        path = self._load_path()
        shapes, arrays = self._read(path, ("train_labels", "test_labels"))
        for split in SPLITS:
            (count, *_), (labels, *_) = shapes[f"{split}_images"], shapes[f"{split}_labels"]
            if count != labels:
                raise ModelInputsError(f"{path}: {count} {split} images but {labels} {split} labels: "
                                       "they do not belong together")
        return {split: arrays[f"{split}_labels"] for split in SPLITS}

    def _read(self, path: str, keys: tuple[str, ...]) -> tuple[dict[str, tuple[int, ...]], dict[str, np.ndarray]]:
        """Every array's shape, and the arrays ``keys``, once the headers show the expected names and no
        Python objects."""
        shapes = {}
        try:
            with self._fs.open(path, mode="rb") as file, zipfile.ZipFile(file) as archive:
                for info in archive.infolist():
                    with archive.open(info) as member:
                        version = npy.read_magic(member)
                        read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
                        shape, _, dtype = read(member)
                    if dtype.hasobject:
                        raise ModelInputsError(f"{path} {PICKLED}", "delete it and ")
                    shapes[info.filename.removesuffix(".npy")] = shape
                _check_names(shapes, path)
                file.seek(0)
                with np.load(file, allow_pickle=False) as npz:
                    return shapes, {key: npz[key] for key in keys}
        except FileNotFoundError:
            raise
        except (zipfile.BadZipFile, ValueError, EOFError, OSError) as exc:
            raise ModelInputsError(f"{path} is damaged or not a NumPy .npz file ({exc})") from exc

    def save(self, data: Mapping[str, Any]) -> None:
        check_model_inputs(data, "The model inputs to save")
        with self._fs.open(self._save_path(), mode="wb") as file:
            np.savez(file, **{key: np.asarray(data[key]) for key in KEYS})
        self._invalidate_cache()


class ModelInputsDataset(KeepSavedMixin, WholeFileMixin, NpzModelInputsDataset):
    """:class:`NpzModelInputsDataset` whose saves are whole or nothing, and whose saved arrays go to
    the same run's later nodes (read-only) instead of being read back."""

    _handover = ReadOnlyArrays  # read-only views of the saved arrays, not copies
