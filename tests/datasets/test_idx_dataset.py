"""The Fashion-MNIST IDX dataset: reading, and a clear error for every kind of bad file."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from support import IDX_NAMES, make_arrays, write_idx, write_idx_folder
from kedro.io import DatasetError

from fashion_cnn.datasets import FashionMNISTDataset


def dataset(path: Path, **kwargs) -> FashionMNISTDataset:
    kwargs.setdefault("verify_checksums", False)
    return FashionMNISTDataset(path=str(path), **kwargs)


def gz_path(folder: Path, key: str) -> Path:
    return folder / f"{IDX_NAMES[key]}.gz"


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "uncompressed"])
def test_reads_generated_files_exactly(tmp_path, idx_arrays, gz):
    folder = write_idx_folder(tmp_path / "idx", idx_arrays, gz=gz)
    loaded = dataset(folder).load()
    assert set(loaded) == set(idx_arrays)
    for key, array in idx_arrays.items():
        assert loaded[key].dtype == np.uint8
        np.testing.assert_array_equal(loaded[key], array)
    assert loaded["train_images"].flags.writeable


def test_reads_the_real_data_with_checksums(real_data_dir):
    loaded = FashionMNISTDataset(path=str(real_data_dir)).load()
    assert loaded["train_images"].shape == (60000, 28, 28)
    assert loaded["test_images"].shape == (10000, 28, 28)
    assert loaded["train_labels"].shape == (60000,)
    # The notebook's cell: test images 0, 23 and 28 are all ankle boots (9).
    assert loaded["test_labels"][[0, 23, 28]].tolist() == [9, 9, 9]
    assert np.bincount(loaded["train_labels"]).tolist() == [6000] * 10


def test_falls_back_to_the_next_folder(tmp_path, idx_folder):
    ds = dataset(tmp_path / "empty", fallback_paths=[str(idx_folder)])
    assert ds.exists()
    assert ds.load()["train_images"].shape == (30, 28, 28)


def test_is_read_only(idx_folder):
    with pytest.raises(DatasetError, match="read-only"):
        dataset(idx_folder).save({})


def test_wrong_checksum_names_the_file_and_the_switch(idx_folder):
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte\.gz.*does not match the official.*verify_checksums: false"):
        dataset(idx_folder, verify_checksums=True).load()


def test_bad_magic_number(idx_folder):
    path = gz_path(idx_folder, "train_labels")
    content = bytearray(gzip.decompress(path.read_bytes()))
    content[2] = 0x0D  # float type code instead of unsigned byte
    path.write_bytes(gzip.compress(bytes(content)))
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte\.gz: bad IDX magic number 0x00000d01; expected 0x00000801"):
        dataset(idx_folder).load()


def test_images_file_with_labels_header(idx_folder, idx_arrays):
    write_idx(gz_path(idx_folder, "test_images"), idx_arrays["test_labels"])
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte\.gz: IDX magic 0x00000801 declares 1 dimension"):
        dataset(idx_folder).load()


def test_images_not_28_by_28(idx_folder):
    write_idx(gz_path(idx_folder, "train_images"), np.zeros((30, 32, 32), np.uint8))
    with pytest.raises(DatasetError, match=r"train images are 32x32 pixels, expected 28x28"):
        dataset(idx_folder).load()


def test_image_and_label_counts_differ(idx_folder, idx_arrays):
    write_idx(gz_path(idx_folder, "test_labels"), idx_arrays["test_labels"][:7])
    with pytest.raises(DatasetError, match=r"10 test images but 7 test labels"):
        dataset(idx_folder).load()


def test_data_shorter_than_the_header_says(idx_folder):
    path = gz_path(idx_folder, "train_images")
    content = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(content[:-100]))
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte\.gz: the header declares shape \(30, 28, 28\).*truncated"):
        dataset(idx_folder).load()


def test_truncated_gzip(idx_folder):
    path = gz_path(idx_folder, "train_images")
    path.write_bytes(path.read_bytes()[:-2000])
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte\.gz: truncated or corrupt gzip.*fetch it again"):
        dataset(idx_folder).load()


def test_corrupt_gzip(idx_folder):
    path = gz_path(idx_folder, "train_images")
    raw = bytearray(path.read_bytes())
    raw[-6] ^= 0xFF  # inside the CRC-32 trailer
    path.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte\.gz: truncated or corrupt gzip"):
        dataset(idx_folder).load()


def test_gz_name_without_gzip_content(idx_folder, idx_arrays):
    write_idx(gz_path(idx_folder, "test_labels"), idx_arrays["test_labels"], compress=False)
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte\.gz: the name ends in \.gz but the file is not gzip"):
        dataset(idx_folder).load()


def test_missing_data_names_the_three_ways(tmp_path):
    empty = tmp_path / "raw"
    ds = dataset(empty, fallback_paths=[str(tmp_path / "debian")],
                 download_url=(tmp_path / "no-mirror").as_uri())
    assert not ds.exists()
    with pytest.raises(DatasetError) as error:
        ds.load()
    message = str(error.value)
    assert "Fashion-MNIST not found" in message
    assert f"put the four files in {empty}/" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "allow network access to the official mirror" in message
    assert "downloading from" in message
    assert list(empty.iterdir()) == [], "a failed download must not leave partial files"


def test_download_fills_the_raw_folder(tmp_path):
    mirror = write_idx_folder(tmp_path / "mirror", make_arrays(n_train=20, n_test=10))
    raw = tmp_path / "raw"
    loaded = dataset(raw, download_url=mirror.as_uri() + "/").load()
    assert loaded["train_images"].shape == (20, 28, 28)
    assert sorted(p.name for p in raw.iterdir()) == sorted(f"{name}.gz" for name in IDX_NAMES.values())
