"""Ordinary image files (PNG, JPEG, ...) as the ``predict`` pipeline reads them.

:class:`ImageFileDataset` is kedro-datasets' ``pillow.ImageDataset`` that refuses, with the reason,
a file it should not decode: empty, not an image, damaged, or enormous (checked from the file size
and the image header, before the pixels are decoded). :class:`ImageFilesDataset` is kedro-datasets'
``partitions.PartitionedDataset`` over a folder, a glob pattern (``photos/**/*.jpg``) or one file;
its partitions load lazily, so a node can prepare one image after another and list the files it
had to skip.
"""

from __future__ import annotations

import posixpath
import warnings
from typing import IO, Any

import fsspec
from kedro.io import DatasetError
from kedro.io.core import get_filepath_str
from kedro_datasets.partitions import PartitionedDataset
from kedro_datasets.pillow import ImageDataset
from PIL import Image, UnidentifiedImageError

from fashion_cnn.datasets.whole_files import WholeFileMixin

# Above any phone or consumer camera (about 50 megapixels), below what decodes in a few seconds.
DEFAULT_MAX_PIXELS = 100_000_000
DEFAULT_MAX_BYTES = 50_000_000
GLOB_CHARACTERS = "*?["


class UnusableImageError(DatasetError):
    """A file that is not an image this project can use; ``reason`` says why, for a report."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source, self.reason = source, reason


def open_image(file: IO[bytes], source: str, size: int, max_pixels: int = DEFAULT_MAX_PIXELS,
               max_bytes: int = DEFAULT_MAX_BYTES) -> Image.Image:
    """Decode the image in ``file`` (``size`` bytes), or raise :class:`UnusableImageError`.

    The byte and pixel limits are checked before decoding: Pillow reads the width and height
    from the header, so an enormous image is refused without allocating its pixels.
    """
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
            raise UnusableImageError(
                source, f"image too large ({width}x{height} = {width * height / 1e6:.0f} megapixels; the limit is "
                        f"{max_pixels / 1e6:g})")
        if not width or not height:
            raise UnusableImageError(source, f"image has no pixels ({width}x{height})")
        try:
            image.load()  # decode now, while the file is open
        except (OSError, SyntaxError, ValueError) as exc:
            raise UnusableImageError(source, f"damaged image data ({exc})") from None
    return image


class ImageFileDataset(WholeFileMixin, ImageDataset):
    """``pillow.ImageDataset`` whose load raises :class:`UnusableImageError` for a file it should
    not decode (see :func:`open_image`), and whose saves are whole or nothing.

    Example (as a partition of :class:`ImageFilesDataset`, or on its own)::

        photo:
          type: fashion_cnn.datasets.image_files.ImageFileDataset
          filepath: data/01_raw/photo.jpg
          max_pixels: 100000000
          max_bytes: 50000000
    """

    def __init__(self, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._max_pixels, self._max_bytes = int(max_pixels), int(max_bytes)

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "max_pixels": self._max_pixels, "max_bytes": self._max_bytes}

    def load(self) -> Image.Image:
        path = get_filepath_str(self._get_load_path(), self._protocol)
        try:
            size = self._fs.size(path)
            with self._fs.open(path, **self._fs_open_args_load) as file:
                return open_image(file, path, size, self._max_pixels, self._max_bytes)
        except IsADirectoryError:
            raise UnusableImageError(path, "a folder, not a file") from None
        except FileNotFoundError:
            raise UnusableImageError(path, "file not found (deleted during the run?)") from None
        except PermissionError as exc:
            raise UnusableImageError(path, f"not readable ({exc.strerror})") from None


def split_glob(path: str) -> tuple[str, str]:
    """``photos/**/*.jpg`` -> (``photos``, ``**/*.jpg``); a path without wildcards -> (path, "")."""
    parts = path.split("/")
    for index, part in enumerate(parts):
        if any(character in part for character in GLOB_CHARACTERS):
            return "/".join(parts[:index]) or ".", "/".join(parts[index:])
    return path, ""


class ImageFilesDataset(PartitionedDataset):
    """``partitions.PartitionedDataset`` of images: every file under a folder, the files a glob
    pattern matches, or a single file. Hidden files and folders (``.DS_Store``, ``.thumbnails/``)
    are left out. Each partition is an :class:`ImageFileDataset` (unless ``dataset`` says
    otherwise), keyed by its path relative to the folder (or to the part of the pattern before
    its first wildcard).

    Example catalog entry (the path from ``kedro run --params predict.images=...``)::

        predict_images:
          type: fashion_cnn.datasets.image_files.ImageFilesDataset
          path: ${runtime_params:predict.images, data/01_raw/images_to_classify}
    """

    def __init__(self, *, path: str, dataset: Any = None, credentials: dict[str, Any] | None = None,
                 fs_args: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self._requested = str(path)
        root, pattern = split_glob(self._requested)
        if not pattern and _is_file(root, credentials, fs_args):
            root, name = posixpath.split(root)
            pattern = glob_escape(name)
        super().__init__(path=root or ".", dataset=dataset or {"type": ImageFileDataset}, credentials=credentials,
                         fs_args=fs_args, **kwargs)
        self._pattern = pattern

    @property
    def requested_path(self) -> str:
        """The path or pattern as configured."""
        return self._requested

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "pattern": self._pattern}

    def _list_partitions(self) -> list[str]:
        if self._cached_partitions is not None:
            return self._cached_partitions
        filesystem = self._filesystem
        root = filesystem._strip_protocol(self._normalized_path).rstrip(self._sep)
        if self._pattern:
            found = [path for path in filesystem.glob(f"{root}{self._sep}{self._pattern}")
                     if filesystem.isfile(path)]
        else:
            found = filesystem.find(self._normalized_path, **self._load_args) if filesystem.isdir(root) else []
        self._cached_partitions = sorted(
            path for path in found
            if path.endswith(self._filename_suffix)
            and not any(part.startswith(".") for part in path[len(root):].split(self._sep))
        )
        return self._cached_partitions

    def load(self) -> dict[str, Any]:
        if not self._list_partitions():
            raise DatasetError(f"No files match {self._requested!r}.")
        return super().load()


def _is_file(path: str, credentials: dict[str, Any] | None, fs_args: dict[str, Any] | None) -> bool:
    filesystem, stripped = fsspec.core.url_to_fs(path, **(credentials or {}), **(fs_args or {}))
    return filesystem.isfile(stripped)


def glob_escape(name: str) -> str:
    """``name`` as a glob pattern that matches only itself."""
    return "".join(f"[{character}]" if character in GLOB_CHARACTERS else character for character in name)
