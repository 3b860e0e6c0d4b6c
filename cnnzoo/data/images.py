"""Image files and image statistics, shared by the dataset builders, the sources and predict: an
image file opened as Keras' `load_img` would (16-bit scaled, decompression bombs refused), resized
as the seed's AspectAwarePreprocessor, and per-channel / per-pixel means over uint8 arrays."""

import os
import re
import stat

import numpy as np


class NotAFile(ValueError):
  """A path that names a FIFO, a device, a socket or a folder: refused before it is opened (a FIFO
  would block the read forever)."""


class ImageTooLarge(ValueError):
  """An image over PIL's decompression-bomb limit: skipped, as an unreadable file is."""


def open_image(path, channels=3):
  """The image file at `path` as a PIL image in "RGB", or "L" (ITU-R 601 luma) when `channels` is
  1, converted as Keras' `load_img` does (palette, CMYK, gray, alpha dropped; EXIF orientation is
  not applied) except that 16-bit images are scaled to 8 bits (value / 257) instead of clipped to
  white. An image over PIL's decompression-bomb limit raises ImageTooLarge; a file that does not
  decode raises PIL's OSError / ValueError."""
  from PIL import Image
  kind = os.stat(path).st_mode  # a FIFO or a device would block the open: refused before it
  if not stat.S_ISREG(kind):
    raise NotAFile("not a regular file (a FIFO, a device, a socket or a folder): nothing to decode")
  try:
    with Image.open(path) as im:
      im.load()
  except Image.DecompressionBombError as e:
    pixels = re.search(r"\((\d+) pixels\)", str(e))
    size = f"{int(pixels.group(1)):,} pixels" if pixels else "its size"
    raise ImageTooLarge(f"too large to decode safely ({size}, over PIL's decompression-bomb limit of "
                        f"{2 * Image.MAX_IMAGE_PIXELS:,}); resize it first") from None
  if im.mode.startswith("I;16") or im.mode == "I":  # 16-bit PNG / TIFF: full range -> 0..255
    scaled = np.clip(np.rint(np.asarray(im, np.float64) / 257.0), 0, 255).astype(np.uint8)
    im = Image.fromarray(scaled, "L")
  elif im.mode == "P" and "transparency" in im.info:
    im = im.convert("RGBA")  # PIL's route for a palette with a transparent colour
  return im.convert("L" if channels == 1 else "RGB")


def load_image(path, size, mode="aspect", channels=3):
  """The image file at `path` (`open_image`) as uint8 (size, size, channels), resized by
  `resize_image`."""
  return resize_image(open_image(path, channels), size, mode).reshape(size, size, channels)


def resize_image(im, size, mode="aspect"):
  """A PIL image -> uint8 (size, size, C): "aspect" resizes the shorter side to `size` and
  center-crops (the seed's AspectAwarePreprocessor); "plain" resizes both sides."""
  from PIL import Image
  if mode == "plain":
    im = im.resize((size, size), Image.BILINEAR)
  else:
    w, h = im.size
    scale = size / min(w, h)
    im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
    w, h = im.size
    left, top = (w - size) // 2, (h - size) // 2
    im = im.crop((left, top, left + size, top + size))
  return np.asarray(im, np.uint8)


def channel_stats(images: np.ndarray, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """Per-channel (mean, std) over all pixels, 0..255 units (the mean is the seed's DATASET_MEAN),
  accumulated in float64 over chunks so HDF5 datasets larger than memory work too."""
  total = np.zeros(images.shape[-1], np.float64)
  squares = np.zeros(images.shape[-1], np.float64)
  for i in range(0, len(images), chunk):
    x = np.asarray(images[i:i + chunk], np.float64)
    total += x.sum(axis=(0, 1, 2))
    squares += np.square(x).sum(axis=(0, 1, 2))
  n = len(images) * images.shape[1] * images.shape[2]
  mean = total / n
  std = np.sqrt(np.maximum(squares / n - np.square(mean), 0.0))
  return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def mean_image(images: np.ndarray, chunk: int = 4096) -> np.ndarray:
  """The per-pixel mean image (H, W, C float32, [0, 1] units) of uint8 `images`, accumulated in
  float64 over chunks (HDF5 datasets larger than memory work too)."""
  total = np.zeros(images.shape[1:], np.float64)
  for i in range(0, len(images), chunk):
    total += np.asarray(images[i:i + chunk], np.float64).sum(axis=0)
  return (total / (255.0 * max(len(images), 1))).astype(np.float32)
