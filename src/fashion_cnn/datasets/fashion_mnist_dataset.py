"""A read-only Kedro dataset for the four Fashion-MNIST IDX files."""

from __future__ import annotations

import http.client
import os
import sys
import urllib.request
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from kedro.io import AbstractDataset, DatasetError

from fashion_cnn.datasets.idx import IDXError, check_sha256, parse_idx, read_bytes


class IDXFile(NamedTuple):
    key: str
    name: str
    ndim: int
    size: int
    sha256: str


# Sizes and SHA-256 of the decompressed official files (github.com/zalandoresearch/fashion-mnist).
FILES = (
    IDXFile("train_images", "train-images-idx3-ubyte", 3, 47040016,
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    IDXFile("train_labels", "train-labels-idx1-ubyte", 1, 60008,
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    IDXFile("test_images", "t10k-images-idx3-ubyte", 3, 7840016,
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    IDXFile("test_labels", "t10k-labels-idx1-ubyte", 1, 10008,
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
)
IMAGE_SIZE = (28, 28)
DEBIAN_PACKAGE = "dataset-fashion-mnist"


class FashionMNISTDataset(AbstractDataset[None, dict[str, np.ndarray]]):
    """Loads Fashion-MNIST as ``{"train_images", "train_labels", "test_images", "test_labels"}``.

    Images are uint8 arrays of shape (n, 28, 28), labels uint8 arrays of shape (n,).
    The files are looked for, plain or gzip, in ``path``, then in each of ``fallback_paths``;
    if no folder has all four, they are downloaded from ``download_url`` into ``path``.

    Example catalog entry::

        fashion_mnist:
          type: fashion_cnn.datasets.FashionMNISTDataset
          path: data/01_raw/fashion-mnist
          fallback_paths: [/usr/share/datasets/fashion-mnist]
          download_url: http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/
          verify_checksums: true
    """

    def __init__(
        self,
        path: str,
        fallback_paths: list[str] | None = None,
        download_url: str | None = None,
        verify_checksums: bool = True,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._path = Path(path)
        self._fallback_paths = [Path(p) for p in fallback_paths or []]
        self._download_url = download_url
        self._verify_checksums = verify_checksums
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {
            "path": str(self._path),
            "fallback_paths": [str(p) for p in self._fallback_paths],
            "download_url": self._download_url,
            "verify_checksums": self._verify_checksums,
        }

    def _exists(self) -> bool:
        return self._find_folder() is not None

    def save(self, data: None) -> None:
        raise DatasetError("FashionMNISTDataset is read-only: the raw data is never overwritten.")

    def load(self) -> dict[str, np.ndarray]:
        folder = self._find_folder()
        if folder is None:
            folder = self._download()
        arrays = {file.key: self._read(folder, file) for file in FILES}
        for split in ("train", "test"):
            images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
            if images.shape[1:] != IMAGE_SIZE:
                raise IDXError(
                    f"{folder}: {split} images are {images.shape[1]}x{images.shape[2]} pixels, "
                    f"expected {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}."
                )
            if len(images) != len(labels):
                raise IDXError(
                    f"{folder}: {len(images)} {split} images but {len(labels)} {split} labels; "
                    "the image and label files do not belong together."
                )
        return arrays

    def folder(self) -> Path | None:
        """The first folder that holds all four files, or None (they are still to be downloaded)."""
        return self._find_folder()

    def label_arrays(self) -> tuple[Path, dict[str, np.ndarray]] | None:
        """The folder in use and its train and test labels (kilobytes, not checksummed: ``load``
        does that), for checks before a run; None while the files are still to be downloaded."""
        folder = self._find_folder()
        if folder is None:
            return None
        labels = {}
        for file in FILES:
            if file.key.endswith("_labels"):
                path = _locate(folder, file.name)
                labels[file.key.removesuffix("_labels")] = parse_idx(read_bytes(path), path, file.ndim)
        return folder, labels

    def _read(self, folder: Path, file: IDXFile) -> np.ndarray:
        path = _locate(folder, file.name)
        content = read_bytes(path)
        if self._verify_checksums:
            check_sha256(content, path, file.size, file.sha256)
        return parse_idx(content, path, file.ndim)

    def _candidates(self) -> list[Path]:
        return [self._path, *self._fallback_paths]

    def _find_folder(self) -> Path | None:
        for folder in self._candidates():
            if all(_locate(folder, file.name) is not None for file in FILES):
                return folder
        return None

    def _download(self) -> Path:
        reason = "no download_url is configured"
        if self._download_url:
            try:
                self._path.mkdir(parents=True, exist_ok=True)
                for file in FILES:
                    if _locate(self._path, file.name) is None:
                        url = self._download_url.rstrip("/") + f"/{file.name}.gz"
                        _fetch(url, self._path / f"{file.name}.gz", file if self._verify_checksums else None)
                return self._path
            except (OSError, IDXError, http.client.HTTPException) as exc:  # URLError, HTTPError: OSErrors
                reason = f"downloading from {self._download_url} failed: {exc}"
        names = ", ".join(f"{file.name}[.gz]" for file in FILES)
        looked_in = ", ".join(str(p) for p in self._candidates())
        raise DatasetError(
            f"Fashion-MNIST not found: no folder among {looked_in} holds all of {names}, "
            f"and {reason}. Get the data in one of three ways:\n"
            f"  1. put the four files in {self._path}/;\n"
            f"  2. install the Debian package: apt-get install {DEBIAN_PACKAGE} "
            "(it puts them in /usr/share/datasets/fashion-mnist/);\n"
            "  3. allow network access to the official mirror "
            f"({self._download_url or 'set download_url in the catalog'}) so the download can run."
        )


def _locate(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _fetch(url: str, target: Path, expected: IDXFile | None) -> None:
    """Download ``url`` to ``target`` with a progress bar. The file takes its name only once it is
    complete (as long as the server said) and, with ``expected``, decompresses to the official
    size and SHA-256; a partial or wrong download is deleted."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        with urllib.request.urlopen(url, timeout=30) as response, partial.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while chunk := response.read(1 << 16):
                out.write(chunk)
                done += len(chunk)
                _progress(target.name, done, total)
            out.flush()
            os.fsync(out.fileno())
        sys.stderr.write("\n")
        if total and done != total:
            raise IDXError(f"{url}: the download stopped after {done} of {total} bytes; nothing was kept.")
        if expected is not None:
            check_sha256(read_bytes(partial), url, expected.size, expected.sha256)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _progress(name: str, done: int, total: int) -> None:
    if total:
        filled = int(30 * done / total)
        bar = "#" * filled + "-" * (30 - filled)
        sys.stderr.write(f"\r{name} [{bar}] {done / 1e6:6.1f}/{total / 1e6:.1f} MB")
    else:
        sys.stderr.write(f"\r{name} {done / 1e6:6.1f} MB")
    sys.stderr.flush()
