"""Reading and writing IDX files, the format Fashion-MNIST (and MNIST) ships in.

The IDX header is two zero bytes, a type code (0x08 = unsigned byte), the number of
dimensions, then one big-endian uint32 per dimension; the data follows in C order.
Every check here raises :class:`IDXError` with the file name and what to do about it.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import zlib
from pathlib import Path

import numpy as np
from kedro.io import DatasetError

GZIP_MAGIC = b"\x1f\x8b"
UBYTE = 0x08


class IDXError(DatasetError):
    """An IDX file is missing, corrupt, or not the data it claims to be."""


def read_bytes(path: Path) -> bytes:
    """Return the file's content, decompressed when it is gzip (detected by magic bytes)."""
    raw = path.read_bytes()
    if not raw.startswith(GZIP_MAGIC):
        if path.suffix == ".gz":
            raise IDXError(
                f"{path}: the name ends in .gz but the file is not gzip data. "
                "Replace it with an intact copy of the file."
            )
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise IDXError(
            f"{path}: truncated or corrupt gzip data ({exc}). "
            "Delete the file and fetch it again."
        ) from exc


def parse_idx(content: bytes, source: Path | str, expected_ndim: int) -> np.ndarray:
    """Parse IDX ``content`` into a writable uint8 array with ``expected_ndim`` dimensions."""
    if len(content) < 4:
        raise IDXError(f"{source}: only {len(content)} bytes, too short for an IDX header.")
    zero, dtype_code, ndim = struct.unpack(">HBB", content[:4])
    magic = int.from_bytes(content[:4], "big")
    if zero != 0 or dtype_code != UBYTE:
        raise IDXError(
            f"{source}: bad IDX magic number 0x{magic:08x}; expected "
            f"0x{0x0800 + expected_ndim:08x} (unsigned bytes, {expected_ndim} dimension(s)). "
            "The file is not an IDX file of unsigned bytes."
        )
    if ndim != expected_ndim:
        raise IDXError(
            f"{source}: IDX magic 0x{magic:08x} declares {ndim} dimension(s), expected "
            f"{expected_ndim} ({'images' if expected_ndim == 3 else 'labels'})."
        )
    header_end = 4 + 4 * ndim
    if len(content) < header_end:
        raise IDXError(f"{source}: the IDX header is cut short ({len(content)} bytes).")
    shape = struct.unpack(f">{ndim}I", content[4:header_end])
    expected_bytes = int(np.prod(shape, dtype=np.int64))
    actual_bytes = len(content) - header_end
    if actual_bytes != expected_bytes:
        raise IDXError(
            f"{source}: the header declares shape {shape} ({expected_bytes} data bytes) "
            f"but the file holds {actual_bytes}; it is truncated or padded."
        )
    # bytearray makes the array writable without a second copy of the data.
    return np.frombuffer(bytearray(content[header_end:]), dtype=np.uint8).reshape(shape)


def check_sha256(content: bytes, source: Path | str, expected_size: int, expected_sha256: str) -> None:
    """Check the decompressed ``content`` against the published size and SHA-256."""
    digest = hashlib.sha256(content).hexdigest()
    if len(content) != expected_size or digest != expected_sha256:
        raise IDXError(
            f"{source}: content does not match the official Fashion-MNIST file "
            f"(got {len(content)} bytes, SHA-256 {digest}; expected {expected_size} bytes, "
            f"SHA-256 {expected_sha256}). Replace the file with an intact copy, or set "
            "`verify_checksums: false` on this catalog entry if it is other IDX data on purpose."
        )


def write_idx(path: Path, array: np.ndarray, compress: bool | None = None) -> None:
    """Write a uint8 ``array`` as an IDX file; gzip it when ``compress`` (default: name ends in .gz)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, UBYTE, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    content = header + array.tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        content = gzip.compress(content, compresslevel=6)
    path.write_bytes(content)
