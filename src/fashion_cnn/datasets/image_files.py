"""Ordinary image files (PNG, JPEG, ...) as the ``predict`` pipeline reads them: one at a time,
lazily, so that a node can prepare one image after another and list the files it had to skip."""

from __future__ import annotations

import glob
import posixpath
import warnings
from typing import IO, Any

import fsspec
from kedro.io import DatasetError
from kedro.io.core import get_filepath_str
from kedro_datasets.partitions import PartitionedDataset
from kedro_datasets.pillow import ImageDataset
from PIL import Image, UnidentifiedImageError

# Above any phone or consumer camera (about 50 megapixels), below what decodes in a few seconds.
DEFAULT_MAX_PIXELS = 100_000_000
DEFAULT_MAX_BYTES = 50_000_000


class UnusableImageError(DatasetError):
    """A file that is not an image this project can use; ``reason`` says why, for a report."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source, self.reason = source, reason


def open_image(file: IO[bytes], source: str, size: int, max_pixels: int = DEFAULT_MAX_PIXELS,
               max_bytes: int = DEFAULT_MAX_BYTES) -> Image.Image:
    """Decode the image in ``file`` (``size`` bytes), or raise :class:`UnusableImageError`. The limits are
    checked first, from the size and the header, so an enormous image is refused without allocating it."""
    if size == 0:
        raise UnusableImageError(source, "empty file (0 bytes)")
    if size > max_bytes:
        raise UnusableImageError(source, f"file too large ({size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:g} MB)")
    with warnings.catch_warnings():
        # Pillow's own, looser bomb check warns from 89 megapixels; ours below is the one that counts.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(file)
        except UnidentifiedImageError:
            raise UnusableImageError(source, "not an image file (Pillow recognises no image format in it)") from None
        except Image.DecompressionBombError as exc:
            raise UnusableImageError(source, f"image too large ({exc})") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise UnusableImageError(source, f"unreadable image header ({exc})") from None
        width, height = image.size
        if width * height > max_pixels:
            raise UnusableImageError(source, f"image too large ({width}x{height} = {width * height / 1e6:.0f} "
                                             f"megapixels; the limit is {max_pixels / 1e6:g})")
        if not width or not height:
            raise UnusableImageError(source, f"image has no pixels ({width}x{height})")
        try:
            image.load()  # decode now, while the file is open
        except (OSError, SyntaxError, ValueError) as exc:
            raise UnusableImageError(source, f"damaged image data ({exc})") from None
    return image


class ImageFileDataset(ImageDataset):
    """``pillow.ImageDataset`` that refuses, with the reason, a file it should not decode
    (:func:`open_image`: empty, not an image, damaged or enormous). The project only reads through it."""

    def __init__(self, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._max_pixels, self._max_bytes = int(max_pixels), int(max_bytes)

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "max_pixels": self._max_pixels, "max_bytes": self._max_bytes}

    def load(self) -> Image.Image:
        path = get_filepath_str(self._get_load_path(), self._protocol)
        try:
            with self._fs.open(path, **self._fs_open_args_load) as file:
                return open_image(file, path, self._fs.size(path), self._max_pixels, self._max_bytes)
        except IsADirectoryError:
            raise UnusableImageError(path, "a folder, not a file") from None
        except FileNotFoundError:
            raise UnusableImageError(path, "file not found (deleted during the run?)") from None
        except PermissionError as exc:
            raise UnusableImageError(path, f"not readable ({exc.strerror})") from None


class ImageFilesDataset(PartitionedDataset):
    """``partitions.PartitionedDataset`` of :class:`ImageFileDataset`: the files under a folder, those
    a glob pattern (``photos/**/*.jpg``) matches, or one file, except hidden ones (``.DS_Store``,
    ``.thumbnails/``); keyed by their path below the folder (or the pattern's part before a wildcard)."""

    def __init__(self, *, path: str, dataset: Any = None, credentials: dict[str, Any] | None = None,
                 fs_args: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.requested_path = str(path)  # as configured, for messages
        parts = self.requested_path.split("/")
        wild = next((index for index, part in enumerate(parts) if any(c in part for c in "*?[")), len(parts))
        root, self._pattern = "/".join(parts[:wild]) or ".", "/".join(parts[wild:])
        filesystem, stripped = fsspec.core.url_to_fs(root, **(credentials or {}), **(fs_args or {}))
        if not self._pattern and filesystem.isfile(stripped):
            root, name = posixpath.split(root)
            self._pattern = glob.escape(name)
        super().__init__(path=root or ".", dataset=dataset or {"type": ImageFileDataset}, credentials=credentials,
                         fs_args=fs_args, **kwargs)

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "pattern": self._pattern}

    def _list_partitions(self) -> list[str]:
        if self._cached_partitions is None:
            fs, sep = self._filesystem, self._sep
            root = fs._strip_protocol(self._normalized_path).rstrip(sep)
            self._cached_partitions = sorted(path for path in fs.glob(f"{root}{sep}{self._pattern or '**'}")
                                             if path.endswith(self._filename_suffix) and fs.isfile(path)
                                             and not any(part.startswith(".") for part in path[len(root):].split(sep)))
        return self._cached_partitions

    def load(self) -> dict[str, Any]:
        if not self._list_partitions():
            raise DatasetError(f"No files match {self.requested_path!r}.")
        return super().load()
