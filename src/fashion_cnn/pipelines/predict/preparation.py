"""An ordinary photo of a garment, made into the kind of image the model was trained on.

Fashion-MNIST's images were made from product photos on a white background (Xiao, Rasul and Vollgraf 2017,
"Fashion-MNIST", section 2): trimmed to the item, the longest edge resized to 28 pixels, the shorter edge padded
to 28 with the item in the centre, the intensities negated, and stored as 8-bit grey. Their brightest pixel is
(almost always) 255. :func:`fashion_mnist_image` does the same to any picture (the steps: docs/predict.md). The
background level is read from the picture's edges, so the item may be dark on light or light on dark: either way
its contrast with the background becomes the brightness, on black, as in Fashion-MNIST.

The paper's sharpening step is left out: it is tuned to its source photos, and the model has never needed it on
its own test images.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

# Larger pictures are first shrunk to this size (longest edge) to find the item: the box is still
# placed to a fraction of an output pixel, and a 50-megapixel photo takes milliseconds.
ANALYSIS_SIZE = 1024
# A pixel is part of the item when its contrast with the background is at least this fraction
# of the item's strongest: faint shadows and JPEG noise around the item are left out of the box.
ITEM_THRESHOLD = 0.1
# Below this contrast (of the full black-to-white range) nothing stands out from the background.
MIN_CONTRAST = 0.05
# The edge band read as background: this fraction of the shorter side, at least one pixel.
BORDER = 0.02


class NoItemFound(ValueError):
    """Nothing in the picture stands out from its background."""


def grey_pixels(image: Image.Image) -> np.ndarray:
    """The picture upright, on white where it is transparent, as grey values in [0, 1]."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):  # 16-bit and float greys
        pixels = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(pixels.max()), 1.0)
        image = Image.fromarray(np.clip(pixels / top * 255, 0, 255).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    grey = image.convert("L")
    if max(grey.size) > ANALYSIS_SIZE:
        grey.thumbnail((ANALYSIS_SIZE, ANALYSIS_SIZE), Image.Resampling.BOX)
    return np.asarray(grey, dtype=np.float32) / 255


def item_contrast(pixels: np.ndarray) -> np.ndarray:
    """How far each pixel is from the background (the median grey of the edge band), towards the item's
    side (dark on a light background, light on a dark one): 0 for the background, up to 1."""
    band = max(1, round(min(pixels.shape) * BORDER))
    background = float(np.median(np.concatenate([pixels[:band].ravel(), pixels[-band:].ravel(),
                                                 pixels[:, :band].ravel(), pixels[:, -band:].ravel()])))
    contrast = background - pixels if background >= 0.5 else pixels - background
    return np.clip(contrast, 0, None)


def fashion_mnist_image(image: Image.Image, size: tuple[int, int] = (28, 28)) -> np.ndarray:
    """The picture as a Fashion-MNIST image: ``size`` float32 values in [0, 1], the item light on
    black, fitted and centred; :class:`NoItemFound` for a picture of one flat colour."""
    contrast = item_contrast(grey_pixels(image))
    strongest = float(contrast.max())
    if strongest < MIN_CONTRAST:
        raise NoItemFound(f"no item found: nothing differs from the background by {MIN_CONTRAST:.0%} or more "
                          f"(strongest difference {strongest:.1%})")
    item = contrast >= ITEM_THRESHOLD * strongest
    rows, columns = np.flatnonzero(item.any(axis=1)), np.flatnonzero(item.any(axis=0))
    crop = contrast[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]
    height, width = crop.shape
    scale = min(size[0] / height, size[1] / width)
    new_height, new_width = max(1, round(height * scale)), max(1, round(width * scale))
    resized = np.asarray(Image.fromarray(crop).resize((new_width, new_height), Image.Resampling.LANCZOS))
    canvas = np.zeros(size, dtype=np.float32)
    top, left = (size[0] - new_height) // 2, (size[1] - new_width) // 2
    canvas[top : top + new_height, left : left + new_width] = np.clip(resized, 0, None)
    return canvas / max(float(canvas.max()), 1e-6)
