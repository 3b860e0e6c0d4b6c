"""Dataset builders: image archives in their published layouts -> train/val/test HDF5 + mean.json.

The seed's dataset_to_hdf5 workflow: list the images of a layout with their labels, split them
with a fixed seed, resize each (aspect-aware resize + center crop, the seed's preprocessor, or a
plain resize), and write `images` (uint8 N x H x W x 3, or x 1 for grayscale builds; chunked for
batch reads), `labels` and the class names per split, plus the training split's per-channel mean
(the seed's DATASET_MEAN).
A build writes into OUT/.building and moves its files into place once all are complete (Ctrl-C
and SIGTERM wait for the moves), so an interrupted build leaves nothing that looks valid or that a
rerun trips on (kill -9 could only land between two renames of a few microseconds). Unreadable images are skipped, counted and listed.
"""

import contextlib
import dataclasses
import glob
import json
import os
import shutil
import signal

import numpy as np

from cnnzoo import paths
from cnnzoo.data.images import ImageTooLarge, channel_stats, load_image, open_image, resize_image  # noqa: F401 -- the builders' API
from cnnzoo.errors import UserError
from cnnzoo import progress as progress_lib

FLOWERS17 = ("Daffodil", "Snowdrop", "LilyValley", "Bluebell", "Crocus", "Iris", "Tigerlily", "Tulip",
             "Fritillary", "Sunflower", "Daisy", "ColtsFoot", "Dandelion", "Cowslip", "Buttercup",
             "Windflower", "Pansy")  # Oxford 17 Category Flowers: 80 consecutive images per class


STAGING = ".building"  # build()'s folder inside --out while it writes


class LayoutError(UserError):
  """The source tree is not in the layout asked for; the message says what was expected."""


@dataclasses.dataclass
class Listing:
  """Image paths with integer labels per split, and the class names."""
  splits: dict  # split name -> list of (path, label)
  class_names: list


def _carve(items, counts_or_fractions, seed):
  """Splits (path, label) items into [rest, part1, part2...], stratified per class, seeded."""
  for amount in counts_or_fractions:
    if amount < 0 or (isinstance(amount, float) and amount >= 1):
      raise UserError(f"a split share of {amount} cannot work: use a fraction in [0, 1) or a count >= 0")
  fractions = [a for a in counts_or_fractions if isinstance(a, float)]
  if sum(fractions) >= 1:
    raise UserError(f"the split fractions {fractions} leave no training images: their sum must be below 1")
  rng = np.random.default_rng(seed)
  labels = np.array([l for _, l in items])
  counts = [int(a) for a in counts_or_fractions if not isinstance(a, float)]
  if counts:  # every check before the first file is written
    per_class = np.bincount(labels)
    short = int(np.argmin(per_class))
    if per_class[short] <= sum(counts):
      raise UserError(f"class {short} has {per_class[short]} images, not more than the {sum(counts)} per class "
                      "asked for the held-out splits (--val / --test); lower them")
  parts = [[] for _ in counts_or_fractions]
  rest = []
  for label in np.unique(labels):
    idx = rng.permutation(np.flatnonzero(labels == label))
    start = 0
    for p, amount in enumerate(counts_or_fractions):
      n = int(round(amount * len(idx))) if isinstance(amount, float) else int(amount)
      parts[p] += [items[i] for i in idx[start:start + n]]
      start += n
    rest += [items[i] for i in idx[start:]]
  return [sorted(rest)] + [sorted(p) for p in parts]


def list_tiny_imagenet(src, val_per_class=50, seed=0) -> Listing:
  """CS231n's tiny-imagenet-200: the seed's split is train minus `val_per_class` per class -> train,
  those -> val, the official val -> test."""
  wnids_path = os.path.join(src, "wnids.txt")
  annotations = os.path.join(src, "val", "val_annotations.txt")
  if not (os.path.exists(wnids_path) and os.path.isdir(os.path.join(src, "train")) and os.path.exists(annotations)):
    raise LayoutError(f"{src} is not tiny-imagenet-200: expected wnids.txt, train/<wnid>/images/*.JPEG and "
                      "val/val_annotations.txt (unzip tiny-imagenet-200.zip and pass its folder)")
  wnids = [w.strip() for w in open(wnids_path) if w.strip()]
  words = {}
  if os.path.exists(os.path.join(src, "words.txt")):
    for line in open(os.path.join(src, "words.txt")):
      wnid, _, name = line.rstrip("\n").partition("\t")
      words[wnid] = name
  index = {w: i for i, w in enumerate(wnids)}
  train = [(p, index[w]) for w in wnids
           for p in sorted(glob.glob(os.path.join(src, "train", w, "images", "*.JPEG")))]
  test = []
  for line in open(annotations):
    fields = line.split("\t")
    if len(fields) >= 2 and fields[1] in index:
      test.append((os.path.join(src, "val", "images", fields[0]), index[fields[1]]))
  train, val = _carve(train, [val_per_class], seed)
  return Listing({"train": train, "val": val, "test": sorted(test)}, [words.get(w, w) for w in wnids])


def list_flowers17(src, test_fraction=0.25, val_fraction=0.0, seed=0) -> Listing:
  """Oxford 17 flowers: jpg/image_0001.jpg ... image_1360.jpg, 80 per class in FLOWERS17 order;
  the seed's split is 75 % / 25 % stratified."""
  files = sorted(glob.glob(os.path.join(src, "jpg", "image_*.jpg")))
  if not files:
    raise LayoutError(f"{src} is not Oxford 17 flowers: expected jpg/image_0001.jpg ... (unpack 17flowers.tgz)")
  items = []
  for path in files:
    number = int(os.path.basename(path)[6:10])
    items.append((path, min((number - 1) // 80, 16)))
  train, test, val = _carve(items, [test_fraction, val_fraction], seed)
  return Listing({"train": train, "val": val, "test": test}, list(FLOWERS17))


def list_dogs_vs_cats(src, val_count=2500, test_count=2500, seed=0) -> Listing:
  """Kaggle dogs-vs-cats train/cat.N.jpg, dog.N.jpg; the seed carves val and test from train."""
  folder = os.path.join(src, "train") if os.path.isdir(os.path.join(src, "train")) else src
  items = [(p, 0) for p in sorted(glob.glob(os.path.join(folder, "cat.*.jpg")))]
  items += [(p, 1) for p in sorted(glob.glob(os.path.join(folder, "dog.*.jpg")))]
  if not items:
    raise LayoutError(f"{src} is not Kaggle dogs-vs-cats: expected train/cat.<k>.jpg and train/dog.<k>.jpg")
  train, val, test = _carve(items, [val_count // 2, test_count // 2], seed)
  return Listing({"train": train, "val": val, "test": test}, ["cat", "dog"])


def list_folder(src, val_fraction=0.1, test_fraction=0.2, seed=0) -> Listing:
  """One sub-folder of images per class (class names sorted, as Keras' flow_from_directory)."""
  classes = sorted(d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d))) if os.path.isdir(src) else []
  if not classes:
    raise LayoutError(f"{src} has no class sub-folders: expected {src}/<class>/<image>")
  exts = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")  # what PIL decodes
  items = [(os.path.join(src, c, f), i) for i, c in enumerate(classes)
           for f in sorted(os.listdir(os.path.join(src, c))) if f.lower().endswith(exts)]
  counts = np.bincount([label for _, label in items], minlength=len(classes))
  if len(classes) < 2:
    raise LayoutError(f"{src} has one class folder ({classes[0]}): classification needs at least two")
  if counts.min() == 0:
    raise LayoutError(f"{os.path.join(src, classes[int(np.argmin(counts))])} holds no image ({', '.join(exts)}); "
                      "add images or remove the folder")
  train, val, test = _carve(items, [val_fraction, test_fraction], seed)
  return Listing({"train": train, "val": val, "test": test}, classes)


LAYOUTS = {"tiny_imagenet_200": list_tiny_imagenet, "flowers17": list_flowers17,
           "dogs_vs_cats": list_dogs_vs_cats, "folder": list_folder}


MAX_SIZE = 8192  # --size: a side beyond this is a typo, not a dataset (8192^2 x 3 = 192 MiB an image)


def write_split(path, items, class_names, size, mode="aspect", progress=True, channels=3):
  """Writes one split to `path` atomically (images size x size x `channels`); returns (written
  count, skipped paths)."""
  import h5py
  skipped, n = [], 0
  with paths.atomic(path, ".partial") as tmp:
    with h5py.File(tmp, "w") as f:
      chunk = (max(1, min(64, len(items))), size, size, channels)
      images = f.create_dataset("images", (len(items), size, size, channels), np.uint8, chunks=chunk,
                                maxshape=(None, size, size, channels))
      labels = np.zeros(len(items), np.int32)
      bar = progress_lib.progress(len(items), os.path.basename(path), "img", leave=True) if progress else None
      for path_i, label in items:
        if bar is not None:
          bar.update(1)
        try:
          images[n] = load_image(path_i, size, mode, channels)
        except (OSError, ValueError, SyntaxError):  # PIL's errors for unreadable / truncated files
          skipped.append(path_i)
          continue
        labels[n] = label
        n += 1
      if bar is not None:
        bar.close()
      if n != len(items):
        images.resize((n, size, size, channels))
      f["labels"] = labels[:n]
      f.attrs["class_names"] = [c.encode() for c in class_names]
  return n, skipped


def stats_json(mean, std) -> dict:
  """mean.json's content: "mean" and "std" per channel (0..255 units), plus the seed's "R", "G",
  "B" keys (its DATASET_MEAN) when there are three channels."""
  rgb = dict(zip("RGB", mean)) if len(mean) == 3 else {}
  return {**rgb, "mean": list(mean), "std": list(std)}


def write_stats(out) -> tuple:
  """Writes `out/mean.json` (`stats_json`) from `out/train.h5`."""
  import h5py
  with h5py.File(os.path.join(out, "train.h5"), "r") as f:
    mean, std = channel_stats(f["images"])
  tmp = os.path.join(out, "mean.json.partial")
  with open(tmp, "w") as f:
    json.dump(stats_json(mean, std), f)
  os.replace(tmp, os.path.join(out, "mean.json"))
  return mean, std


def write_arrays(out, splits: dict, class_names) -> None:
  """Writes in-memory splits {name: (uint8 images, labels)} in the builders' format (benchmarks,
  tests, or datasets you already hold as arrays), then mean.json."""
  import h5py
  os.makedirs(out, exist_ok=True)
  for name, (images, labels) in splits.items():
    path = os.path.join(out, f"{name}.h5")
    with h5py.File(path + ".partial", "w") as f:
      f.create_dataset("images", data=images, chunks=(max(1, min(64, len(images))), *images.shape[1:]))
      f["labels"] = np.asarray(labels, np.int32)
      f.attrs["class_names"] = [c.encode() for c in class_names]
    os.replace(path + ".partial", path)
  write_stats(out)


@contextlib.contextmanager
def _signals_deferred():
  """Ctrl-C and SIGTERM that arrive inside the block take effect when it ends (their handlers run
  in the main thread, whichever thread the kernel gave the signal to)."""
  caught = []
  record = lambda signum, frame: caught.append(signum)
  previous = {s: signal.signal(s, record) for s in (signal.SIGINT, signal.SIGTERM)}
  try:
    yield
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
    if caught:
      signal.raise_signal(caught[0])  # now, with the handlers the command had


def _check_no_class_vanished(items, skipped, class_names) -> None:
  """A LayoutError naming the first class whose every training image is unreadable: a dataset that
  lists a class it cannot teach is refused, not built without a word."""
  unreadable = set(skipped)
  listed = {label for _, label in items}
  kept = {label for path, label in items if path not in unreadable}
  lost = sorted(listed - kept)
  if lost:
    example = next(path for path, label in items if label == lost[0])
    count = sum(1 for _, label in items if label == lost[0])
    raise LayoutError(f"class {class_names[lost[0]]!r} lost all its {count} training image(s): none could be read "
                      f"(e.g. {example}); fix them, or move the class's images away to build without it; "
                      "nothing was written")


def build(layout, src, out, size, mode="aspect", progress=True, overwrite=False, channels=3, **split_args) -> dict:
  """Builds `out/{train,val,test}.h5` and `out/mean.json` from `src` in `layout` (RGB images, or
  grayscale with `channels` 1); returns a report. An `out` that already holds any of those files
  is refused unless `overwrite`."""
  if layout not in LAYOUTS:
    raise LayoutError(f"unknown layout {layout!r}; choose {', '.join(sorted(LAYOUTS))}")
  if channels not in (1, 3):
    raise UserError(f"channels={channels}: images are built as RGB (3) or grayscale (1)")
  if size < 1:
    raise UserError(f"--size={size}: the image side must be a positive number of pixels")
  if size > MAX_SIZE:
    raise UserError(f"--size={size}: at most {MAX_SIZE} pixels a side (each stored image takes SIZE x SIZE x "
                    f"channels bytes: {size * size * channels / 2**30:.1f} GiB here); the journal's datasets use 32-256")
  paths.check_writable(out, "--out")
  if not os.path.isdir(src):
    raise LayoutError(f"--src={src} is not a folder; pass the folder the archive was unpacked into")
  existing = [f for f in ("train.h5", "val.h5", "test.h5", "mean.json") if os.path.exists(os.path.join(out, f))]
  if existing and not overwrite:
    raise UserError(f"{out} already holds {existing[0]}; pass --overwrite to replace it or choose another --out")
  listing = LAYOUTS[layout](src, **split_args)
  if not listing.splits["train"]:
    raise LayoutError(f"{src} holds no images for the training split in the {layout} layout")
  made_out = not os.path.exists(out)
  staging = os.path.join(out, STAGING)  # the whole build lands here, then moves into place
  os.makedirs(out, exist_ok=True)
  if os.path.isdir(staging):  # left by a build killed with -9: never a dataset
    shutil.rmtree(staging)
  os.makedirs(staging)
  report = {"counts": {}, "skipped": []}
  try:
    for split, items in listing.splits.items():
      if not items:
        continue
      n, skipped = write_split(os.path.join(staging, f"{split}.h5"), items, listing.class_names, size, mode, progress,
                               channels)
      report["counts"][split] = n
      report["skipped"] += skipped
      if n == 0:  # every image unreadable: no dataset rather than an empty one
        raise LayoutError(f"none of the {len(items)} {split} images in {src} could be read "
                          f"(e.g. {skipped[0]}); nothing was written")
      if split == "train":
        _check_no_class_vanished(items, skipped, listing.class_names)
    report["mean"], report["std"] = write_stats(staging)
    with _signals_deferred():  # every file moves, or none (short of kill -9 between two renames)
      for name in ("train.h5", "val.h5", "test.h5", "mean.json"):  # an --overwrite build without a split
        if not os.path.exists(os.path.join(staging, name)) and os.path.exists(os.path.join(out, name)):
          os.remove(os.path.join(out, name))  # drops the old one, or it would be read
      for name in os.listdir(staging):
        os.replace(os.path.join(staging, name), os.path.join(out, name))
  finally:  # Ctrl-C, SIGTERM, an error: nothing half-built is left for a rerun to trip on
    shutil.rmtree(staging, ignore_errors=True)
    if made_out and not os.listdir(out):
      os.rmdir(out)
  return report
