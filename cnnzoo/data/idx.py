"""IDX files, the format of MNIST and Fashion-MNIST: reading, validating, finding them on disk.

An IDX file is a 4-byte magic (two zero bytes, a type code, the number of dimensions), one
big-endian uint32 per dimension, then the values in C order. MNIST and Fashion-MNIST ship four of
them, gzipped or not: `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
`t10k-labels-idx1-ubyte` (MNIST's unpacked archives also spell them `train-images.idx3-ubyte`).
Debian's `dataset-fashion-mnist` package installs Fashion-MNIST's four under
/usr/share/datasets/fashion-mnist.
"""

import math
import os
import zlib

import numpy as np

from cnnzoo.errors import UserError

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")  # Zalando's README, label 0 .. 9
MNIST_CLASSES = tuple(str(d) for d in range(10))
CLASS_NAMES = {"fashion_mnist": FASHION_MNIST_CLASSES, "mnist": MNIST_CLASSES}
DEBIAN_DIRS = {"fashion_mnist": "/usr/share/datasets/fashion-mnist"}  # apt-get install dataset-fashion-mnist
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"),
          0x0E: np.dtype(">f8")}


class IdxError(UserError):
  """An IDX file that is damaged, truncated or not IDX at all; the message names the file."""


# The most an IDX file may hold once inflated: MNIST's largest is 47 MB; a header promising more is a
# damaged or hostile file, refused from the header before anything is inflated or allocated.
MAX_IDX_BYTES = 4 << 30


def read_idx(path: str) -> np.ndarray:
  """The array stored in the IDX file at `path` (gzipped or not, told by its first bytes). A gzipped
  file is inflated no further than its header's size (a small file that inflates to gigabytes is
  refused, not decompressed until memory runs out)."""
  try:
    with open(path, "rb") as f:
      raw = f.read()
  except OSError as e:
    raise IdxError(f"{path}: cannot be read ({e.strerror or e})") from None
  if raw[:2] == b"\x1f\x8b":
    raw = _inflate(path, raw)
  if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _TYPES or not 1 <= raw[3] <= 4:
    raise IdxError(f"{path} is not an IDX file (magic {raw[:4].hex() or 'missing'}, expected 0000 08 01..04); "
                   "give the original MNIST / Fashion-MNIST files")
  ndim, dtype = raw[3], np.dtype(_TYPES[raw[2]])
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise IdxError(f"{path} is truncated: its header is cut short; download the file again")
  shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
  expected = math.prod(shape) * dtype.itemsize  # exact: 2^31 x 2^31 x 4 overflows int64
  _check_budget(path, shape, expected)
  if len(raw) - header != expected:
    state = "truncated" if len(raw) - header < expected else "longer than its header says"
    raise IdxError(f"{path} is {state}: its header says {'x'.join(map(str, shape))} values "
                   f"({expected} bytes), it holds {len(raw) - header}; download the file again")
  return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _check_budget(path: str, shape, expected: int) -> None:
  if expected > MAX_IDX_BYTES:
    raise IdxError(f"{path}: its header says {'x'.join(map(str, shape))} values ({expected:,} bytes), more than "
                   f"an IDX dataset holds (at most {MAX_IDX_BYTES:,}); the file is damaged: download it again")


def _inflate(path: str, raw: bytes) -> bytes:
  """The gzipped IDX file's content, inflated no further than the size its header gives plus one
  byte (enough to tell a file longer than its header); a stream that ends early is damaged."""
  d = zlib.decompressobj(16 + zlib.MAX_WBITS)
  try:
    out = d.decompress(raw, 4 + 4 * 4)  # the magic number and at most four dimensions
    limit = 1 << 20  # not IDX (read_idx names its magic number): a little is enough to tell
    if len(out) >= 4 and out[:2] == b"\0\0" and out[2] in _TYPES and 1 <= out[3] <= 4 and len(out) >= 4 + 4 * out[3]:
      header = 4 + 4 * out[3]
      shape = tuple(int(x) for x in np.frombuffer(out[:header], ">u4", out[3], 4))
      size = math.prod(shape) * np.dtype(_TYPES[out[2]]).itemsize
      _check_budget(path, shape, size)
      limit = header + size + 1
    out += d.decompress(d.unconsumed_tail, max(1, limit - len(out)))
    if not d.eof and len(out) < limit:
      raise EOFError("Compressed file ended before the end-of-stream marker was reached")
    return out
  except (OSError, EOFError, zlib.error) as e:
    raise IdxError(f"{path}: damaged gzip ({e}); download or reinstall the file") from None


def find_file(directory: str, name: str) -> str | None:
  """The path of IDX file `name` in `directory`: NAME, NAME.gz or MNIST's NAME with its last
  hyphen as a dot (train-images.idx3-ubyte), whichever exists first."""
  stem, _, kind = name.rpartition("-idx")
  for candidate in (name, f"{stem}.idx{kind}"):
    for suffix in ("", ".gz"):
      path = os.path.join(directory, candidate + suffix)
      if os.path.isfile(path):
        return path
  return None


def find_files(directory: str) -> dict | None:
  """{"train": (images, labels), "test": (images, labels)} paths in `directory`, or None when any
  of the four is missing."""
  found = {split: tuple(find_file(directory, n) for n in names) for split, names in FILES.items()}
  if any(p is None for pair in found.values() for p in pair):
    return None
  return found


def read_split(images_path: str, labels_path: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
  """uint8 (N, H, W, 1) images and int32 labels of one split, checked against each other."""
  images, labels = read_idx(images_path), read_idx(labels_path)
  if images.ndim != 3 or images.dtype != np.uint8:
    raise IdxError(f"{images_path}: expected uint8 images N x H x W, found {images.dtype} "
                   f"{'x'.join(map(str, images.shape))}")
  if labels.ndim != 1:
    raise IdxError(f"{labels_path}: expected one label per image (1 dimension), found {labels.ndim}")
  if len(labels) != len(images):
    raise IdxError(f"{labels_path} holds {len(labels)} labels for the {len(images)} images of {images_path}; "
                   "the two files come from different downloads")
  labels = labels.astype(np.int64)
  if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
    raise IdxError(f"{labels_path}: labels run from {labels.min()} to {labels.max()}, expected 0 .. {num_classes - 1}")
  return images[..., None], labels.astype(np.int32)


def how_to_get(name: str) -> str:
  """Every way to get dataset `name` (fashion_mnist or mnist) onto this machine, in one sentence."""
  files = ", ".join(n + "[.gz]" for pair in FILES.values() for n in pair)
  ways = [f"put {files} in a folder and set --config.data.dir=FOLDER"]
  if name in DEBIAN_DIRS:
    ways.insert(0, f"`sudo apt-get install dataset-{name.replace('_', '-')}` (Debian/Ubuntu; installs them in "
                   f"{DEBIAN_DIRS[name]})")
  ways.append(f"prepare it with tensorflow-datasets (`pip install tensorflow && tfds build {name}`)")
  return "; or ".join(ways)
