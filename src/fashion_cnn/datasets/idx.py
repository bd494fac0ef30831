"""Fashion-MNIST's IDX files: reading the format, and a read-only Kedro dataset of the four official files. An
IDX file is two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, one big-endian uint32
per dimension, then the data in C order. Every check raises :class:`IDXError` naming the file and what to do."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import struct
import sys
import urllib.request
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from kedro.io import AbstractDataset, DatasetError

from fashion_cnn.datasets.whole_files import whole_save

GZIP_MAGIC = b"\x1f\x8b"
UBYTE = 0x08
# File name, size and SHA-256 of the decompressed official files (github.com/zalandoresearch/fashion-mnist).
FILES = {
    "train_images": ("train-images-idx3-ubyte", 47040016,
                     "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    "train_labels": ("train-labels-idx1-ubyte", 60008,
                     "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    "test_images": ("t10k-images-idx3-ubyte", 7840016,
                    "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    "test_labels": ("t10k-labels-idx1-ubyte", 10008,
                    "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
}


class IDXError(DatasetError):
    """An IDX file is missing, corrupt, or not the data it claims to be."""


def read_bytes(path: Path) -> bytes:
    """Return the file's content, decompressed when it is gzip (detected by magic bytes)."""
    raw = path.read_bytes()
    if not raw.startswith(GZIP_MAGIC):
        if path.suffix == ".gz":
            raise IDXError(f"{path}: the name ends in .gz but the file is not gzip data. "
                           "Replace it with an intact copy of the file.")
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, zlib.error, OSError) as exc:  # gzip.BadGzipFile is an OSError
        raise IDXError(f"{path}: truncated or corrupt gzip data ({exc}). Delete the file and fetch it again.") from exc


def parse_idx(content: bytes, source: Path | str, expected_ndim: int) -> np.ndarray:
    """Parse IDX ``content`` into a writable uint8 array with ``expected_ndim`` dimensions."""
    if len(content) < 4:
        raise IDXError(f"{source}: only {len(content)} bytes, too short for an IDX header.")
    zero, dtype_code, ndim = struct.unpack(">HBB", content[:4])
    magic = int.from_bytes(content[:4], "big")
    if zero != 0 or dtype_code != UBYTE:
        raise IDXError(f"{source}: bad IDX magic number 0x{magic:08x}; expected 0x{0x0800 + expected_ndim:08x} "
                       f"(unsigned bytes, {expected_ndim} dimension(s)). It is not an IDX file of unsigned bytes.")
    if ndim != expected_ndim:
        raise IDXError(f"{source}: IDX magic 0x{magic:08x} declares {ndim} dimension(s), expected "
                       f"{expected_ndim} ({'images' if expected_ndim == 3 else 'labels'}).")
    header_end = 4 + 4 * ndim
    if len(content) < header_end:
        raise IDXError(f"{source}: the IDX header is cut short ({len(content)} bytes).")
    shape = struct.unpack(f">{ndim}I", content[4:header_end])
    expected_bytes, actual_bytes = int(np.prod(shape, dtype=np.int64)), len(content) - header_end
    if actual_bytes != expected_bytes:
        raise IDXError(f"{source}: the header declares shape {shape} ({expected_bytes} data bytes) "
                       f"but the file holds {actual_bytes}; it is truncated or padded.")
    # bytearray makes the array writable without a second copy of the data.
    return np.frombuffer(bytearray(content[header_end:]), dtype=np.uint8).reshape(shape)


def check_sha256(content: bytes, source: Path | str, expected_size: int, expected_sha256: str) -> None:
    """Check the decompressed ``content`` against the published size and SHA-256."""
    digest = hashlib.sha256(content).hexdigest()
    if len(content) != expected_size or digest != expected_sha256:
        raise IDXError(f"{source}: content does not match the official Fashion-MNIST file (got {len(content)} bytes, "
                       f"SHA-256 {digest}; expected {expected_size} bytes, SHA-256 {expected_sha256}). Replace the "
                       "file with an intact copy, or set `verify_checksums: false` on this catalog entry if it is "
                       "other IDX data on purpose.")


class FashionMNISTDataset(AbstractDataset[None, dict[str, np.ndarray]]):
    """``{"train_images", "train_labels", "test_images", "test_labels"}``: uint8 images (n, 28, 28)
    and labels (n,), from the files (plain or gzip) in ``path``, else in the first of
    ``fallback_paths`` that has all four, else downloaded from ``download_url`` into ``path``."""

    def __init__(self, *, path: str, fallback_paths: list[str] | None = None, download_url: str | None = None,
                 verify_checksums: bool = True, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self._candidates = [self._path, *(Path(p) for p in fallback_paths or [])]
        self._download_url, self._verify_checksums = download_url, verify_checksums
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path), "fallback_paths": [str(p) for p in self._candidates[1:]],
                "download_url": self._download_url, "verify_checksums": self._verify_checksums}

    def _exists(self) -> bool:
        return self.folder() is not None

    def save(self, data: None) -> None:
        raise DatasetError("FashionMNISTDataset is read-only: the raw data is never overwritten.")

    def load(self) -> dict[str, np.ndarray]:
        folder = self.folder() or self._download()
        arrays = {key: _read(folder, key, self._verify_checksums) for key in FILES}
        for split in ("train", "test"):
            images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
            if images.shape[1:] != (28, 28):
                raise IDXError(f"{folder}: {split} images are {images.shape[1]}x{images.shape[2]} pixels, "
                               "expected 28x28.")
            if len(images) != len(labels):
                raise IDXError(f"{folder}: {len(images)} {split} images but {len(labels)} {split} labels; "
                               "the image and label files do not belong together.")
        return arrays

    def folder(self) -> Path | None:
        """The first folder that holds all four files, or None (they are still to be downloaded)."""
        return next((folder for folder in self._candidates if all(_locate(folder, key) for key in FILES)), None)

    def label_arrays(self) -> tuple[Path, dict[str, np.ndarray]] | None:
        """The folder in use and its train and test labels (kilobytes, not checksummed: ``load``
        does that), for checks before a run; None while the files are still to be downloaded."""
        folder = self.folder()
        return None if folder is None else (folder, {split: _read(folder, f"{split}_labels", verify=False)
                                                     for split in ("train", "test")})

    def _download(self) -> Path:
        reason = "no download_url is configured"
        if self._download_url:
            try:
                for key, (name, *_) in FILES.items():
                    if _locate(self._path, key) is None:
                        url = self._download_url.rstrip("/") + f"/{name}.gz"
                        _fetch(url, self._path / f"{name}.gz", key if self._verify_checksums else None)
                return self._path
            except (OSError, IDXError, http.client.HTTPException) as exc:  # URLError, HTTPError: OSErrors
                reason = f"downloading from {self._download_url} failed: {exc}"
        names = ", ".join(f"{name}[.gz]" for name, *_ in FILES.values())
        raise DatasetError(
            f"Fashion-MNIST not found: no folder among {', '.join(map(str, self._candidates))} holds all of "
            f"{names}, and {reason}. Get the data in one of three ways:\n"
            f"  1. put the four files in {self._path}/;\n"
            "  2. install the Debian package: apt-get install dataset-fashion-mnist "
            "(it puts them in /usr/share/datasets/fashion-mnist/);\n"
            "  3. allow network access to the official mirror "
            f"({self._download_url or 'set download_url in the catalog'}) so the download can run."
        )


def _locate(folder: Path, key: str) -> Path | None:
    name = FILES[key][0]
    return next((path for path in (folder / name, folder / f"{name}.gz") if path.is_file()), None)


def _read(folder: Path, key: str, verify: bool) -> np.ndarray:
    path = _locate(folder, key)
    content = read_bytes(path)
    if verify:
        check_sha256(content, path, *FILES[key][1:])
    return parse_idx(content, path, 3 if key.endswith("images") else 1)


def _fetch(url: str, target: Path, verify_as: str | None) -> None:
    """Download ``url`` to ``target`` with a progress bar, whole (as long as the server said) and, with
    ``verify_as``, checked, or not at all."""
    with whole_save(target, target.parent) as partial, urllib.request.urlopen(url, timeout=30) as response:
        total, done = int(response.headers.get("Content-Length") or 0), 0
        with partial.open("wb") as out:
            while chunk := response.read(1 << 16):
                done += out.write(chunk)
                bar = f"[{'#' * int(30 * done / total):-<30}] {done / 1e6:6.1f}/{total / 1e6:.1f}" if total else \
                    f"{done / 1e6:6.1f}"
                print(f"\r{target.name} {bar} MB", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        if total and done != total:
            raise IDXError(f"{url}: the download stopped after {done} of {total} bytes; nothing was kept.")
        if verify_as is not None:
            check_sha256(read_bytes(partial), url, *FILES[verify_as][1:])
