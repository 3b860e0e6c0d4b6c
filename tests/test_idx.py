"""MNIST / Fashion-MNIST IDX files: the reader on files written in the real format (gzipped or not,
damaged in each way), where the source looks for them, and real Fashion-MNIST when Debian's
package is installed."""

import gzip
import json
import os
import struct
import zlib

import numpy as np
import pytest

from cnnzoo.data import idx, sources

DEBIAN = idx.DEBIAN_DIRS["fashion_mnist"]
HAVE_REAL = idx.find_files(DEBIAN) is not None
needs_real = pytest.mark.skipif(not HAVE_REAL, reason=f"Fashion-MNIST is not installed in {DEBIAN} "
                                "(apt-get install dataset-fashion-mnist)")


def idx_bytes(array: np.ndarray) -> bytes:
  """`array` (uint8) as an IDX file: magic 00 00 08 NDIM, big-endian uint32 sizes, the values."""
  return bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx(directory, name, array, gz=True):
  os.makedirs(directory, exist_ok=True)
  data = idx_bytes(np.asarray(array, np.uint8))
  path = os.path.join(directory, name + (".gz" if gz else ""))
  with open(path, "wb") as f:
    f.write(gzip.compress(data) if gz else data)
  return path


def write_dataset(directory, n_train=40, n_test=20, gz=True, size=6, images=None, labels=None):
  """Four IDX files of a 10-class dataset whose image i is filled with its label (i % 10) * 20."""
  rng = np.random.default_rng(0)
  out = {}
  for split, n in (("train", n_train), ("test", n_test)):
    n = n if labels is None else len(labels[split])
    y = np.arange(n) % 10 if labels is None else labels[split]
    x = np.repeat(y.astype(np.uint8) * 20, size * size).reshape(n, size, size) if images is None else images[split]
    rng.shuffle(y_order := np.arange(n))
    names = idx.FILES[split]
    out[split] = (write_idx(directory, names[0], x[y_order], gz), write_idx(directory, names[1], y[y_order], gz))
  return out


def test_reads_gzipped_and_raw_files_with_every_spelling(tmp_path):
  write_dataset(tmp_path / "gz")
  write_dataset(tmp_path / "raw", gz=False)
  for name in ("train-images.idx3-ubyte", "train-labels.idx1-ubyte", "t10k-images.idx3-ubyte",
               "t10k-labels.idx1-ubyte"):  # MNIST's archives, unpacked by some tools
    hyphen = name.replace(".idx", "-idx")
    os.rename(tmp_path / "raw" / hyphen, tmp_path / "raw" / name)
  a = sources.load_idx("fashion_mnist", str(tmp_path / "gz"))
  b = sources.load_idx("fashion_mnist", str(tmp_path / "raw"))
  for ds in (a, b):
    assert ds.image_shape == (6, 6, 1) and ds.train.images.dtype == np.uint8 and ds.train.labels.dtype == np.int32
    assert (len(ds.train), len(ds.val), len(ds.test)) == (40, 20, 20) and ds.val is ds.test
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"
    np.testing.assert_array_equal(ds.train.images[:, 0, 0, 0], ds.train.labels * 20)  # pairs kept
    assert ds.mean == (90.0,) and len(ds.std) == 1  # labels 0..9 evenly: mean of 0, 20, .. 180
  np.testing.assert_array_equal(a.train.images, b.train.images)
  assert sources.load_idx("mnist", str(tmp_path / "gz")).class_names == [str(d) for d in range(10)]


def test_validation_is_a_stratified_seeded_share_of_train(tmp_path):
  write_dataset(tmp_path, n_train=200)
  ds = sources.load_idx("mnist", str(tmp_path), val_fraction=0.1, split_seed=3)
  assert (len(ds.train), len(ds.val), len(ds.test)) == (180, 20, 20)
  assert np.bincount(ds.val.labels).tolist() == [2] * 10  # stratified: 2 of each class's 20
  again = sources.load_idx("mnist", str(tmp_path), val_fraction=0.1, split_seed=3)
  other = sources.load_idx("mnist", str(tmp_path), val_fraction=0.1, split_seed=4)
  np.testing.assert_array_equal(ds.val.images, again.val.images)
  assert not np.array_equal(ds.val.images, other.val.images)
  seen = np.concatenate([ds.train.images, ds.val.images]).reshape(200, -1)
  assert len(np.unique(seen, axis=0)) == 10 and len(seen) == 200  # every training image exactly once


def test_a_validation_share_below_one_image_a_class_is_one_line(tmp_path):
  write_dataset(tmp_path, n_train=200)
  with pytest.raises(sources.ConfigError, match=r"val_fraction=0.02 holds out 4 of 200 images, fewer than one per "
                                                r"class \(10\)"):
    sources.load_idx("mnist", str(tmp_path), val_fraction=0.02)


def test_the_config_source_names_the_idx_datasets(tmp_path):
  from configs import fashion_mnist
  write_dataset(tmp_path)
  c = fashion_mnist.get_config("lenet")
  c.data.dir = str(tmp_path)
  ds = sources.load_dataset(c)
  assert ds.name == "fashion_mnist" and ds.num_classes == 10 and len(ds.train) == 40


@pytest.mark.parametrize("damage, message", [
    ("magic", r"train-images-idx3-ubyte.gz is not an IDX file \(magic 00000703"),
    ("truncated", r"train-images-idx3-ubyte.gz is truncated: its header says 40x6x6 values \(1440 bytes\), "
                  r"it holds 1000; download the file again"),
    ("longer", r"t10k-labels-idx1-ubyte.gz is longer than its header says"),
    ("gzip", r"train-labels-idx1-ubyte.gz: damaged gzip"),
    ("label", r"t10k-labels-idx1-ubyte.gz: labels run from 0 to 12, expected 0 .. 9"),
    ("count", r"train-labels-idx1-ubyte.gz holds 39 labels for the 40 images of .*train-images-idx3-ubyte.gz; "
              r"the two files come from different downloads"),
    ("images_1d", r"train-images-idx3-ubyte.gz: expected uint8 images N x H x W, found uint8 1440"),
    ("empty", r"train-images-idx3-ubyte.gz is not an IDX file \(magic missing"),
])
def test_a_damaged_file_is_one_line_naming_it(tmp_path, damage, message):
  files = write_dataset(tmp_path)
  train_images, train_labels = files["train"]
  test_labels = files["test"][1]
  raw = gzip.decompress(open(train_images, "rb").read())
  if damage == "magic":
    open(train_images, "wb").write(gzip.compress(b"\0\0\x07\x03" + raw[4:]))
  elif damage == "truncated":
    open(train_images, "wb").write(gzip.compress(raw[:16 + 1000]))
  elif damage == "longer":
    data = gzip.decompress(open(test_labels, "rb").read())
    open(test_labels, "wb").write(gzip.compress(data + b"\0"))
  elif damage == "gzip":
    data = open(train_labels, "rb").read()
    open(train_labels, "wb").write(data[:len(data) // 2])
  elif damage == "label":
    write_idx(tmp_path, idx.FILES["test"][1], np.full(20, 12, np.uint8) * (np.arange(20) > 0))
  elif damage == "count":
    write_idx(tmp_path, idx.FILES["train"][1], np.arange(39) % 10)
  elif damage == "images_1d":
    write_idx(tmp_path, idx.FILES["train"][0], np.zeros(40 * 36, np.uint8))
  elif damage == "empty":
    open(train_images, "wb").write(b"")
  with pytest.raises(idx.IdxError, match=message) as e:
    sources.load_idx("fashion_mnist", str(tmp_path))
  assert "\n" not in str(e.value)


def test_a_missing_dataset_names_every_way_to_get_it(tmp_path, monkeypatch):
  monkeypatch.setitem(idx.DEBIAN_DIRS, "fashion_mnist", str(tmp_path / "not_installed"))
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "no_tfds"))
  with pytest.raises(sources.DatasetNotFoundError) as e:
    sources.load_idx("fashion_mnist", "")
  text = str(e.value)
  assert text.startswith("fashion_mnist is not on this machine: `sudo apt-get install dataset-fashion-mnist`")
  for part in ("train-images-idx3-ubyte[.gz]", "t10k-labels-idx1-ubyte[.gz]", "--config.data.dir=FOLDER",
               "tfds build fashion_mnist"):
    assert part in text
  with pytest.raises(sources.DatasetNotFoundError, match=r"empty holds no mnist IDX files: put train-images"):
    sources.load_idx("mnist", str((tmp_path / "empty").mkdir() or tmp_path / "empty"))
  write_idx(tmp_path / "half", idx.FILES["train"][0], np.zeros((2, 4, 4), np.uint8))
  with pytest.raises(sources.DatasetNotFoundError, match=r"half holds 1 of the 4 mnist IDX files \(not "
                                                         r"train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                                                         r"t10k-labels-idx1-ubyte\): put train-images"):
    sources.load_idx("mnist", str(tmp_path / "half"))


def test_without_idx_files_tfds_serves_a_prepared_dataset(tmp_path, monkeypatch):
  import tensorflow_datasets as tfds
  monkeypatch.setitem(idx.DEBIAN_DIRS, "fashion_mnist", str(tmp_path / "not_installed"))
  with tfds.testing.mock_data(num_examples=20, policy=tfds.testing.MockPolicy.USE_CODE):
    ds = sources.load_idx("fashion_mnist")
  assert ds.name == "fashion_mnist" and ds.image_shape == (28, 28, 1) and len(ds.train) == 20 and ds.val is ds.test
  assert ds.class_names[0] == "T-shirt/top"


def test_a_bad_data_dir_is_one_line_and_nothing_is_written(tmp_path, forkserver):
  files = write_dataset(tmp_path / "data")
  open(files["train"][0], "wb").write(b"\0\0\x08\x03\0\0")  # cut inside the header
  cases = [(tmp_path / "data", f"error: {files['train'][0]} is truncated: its header is cut short; "
                               "download the file again"),
           (tmp_path / "nothing", f"error: {tmp_path / 'nothing'} holds no fashion_mnist IDX files: ")]
  for data_dir, expected in cases:
    workdir = tmp_path / "run"
    proc = forkserver.run(["--config=configs/fashion_mnist.py:lenet", f"--workdir={workdir}",
                           f"--config.data.dir={data_dir}"])
    assert proc.returncode == 2
    assert [l for l in proc.stderr.splitlines() if l.strip()] == [proc.stderr.strip()]
    assert proc.stderr.strip().startswith(expected), proc.stderr
    assert not workdir.exists()


@needs_real
def test_the_real_fashion_mnist_files(tmp_path):
  ds = sources.load_idx("fashion_mnist")
  assert (len(ds.train), len(ds.test)) == (60000, 10000) and ds.image_shape == (28, 28, 1)
  assert np.bincount(ds.train.labels).tolist() == [6000] * 10 and np.bincount(ds.test.labels).tolist() == [1000] * 10
  assert ds.mean[0] == pytest.approx(72.94, abs=0.01) and ds.std[0] == pytest.approx(90.02, abs=0.05)


@needs_real
def test_lenet_learns_real_fashion_mnist_in_one_short_epoch(tmp_path, forkserver):
  """6,000 real training images (600 a class), one epoch of the `lenet` variant through the CLI:
  the 2,000 test images' accuracy is far above chance (0.1)."""
  ds = sources.load_idx("fashion_mnist")
  take = lambda split, n: np.sort(np.concatenate([np.flatnonzero(split.labels == k)[:n // 10] for k in range(10)]))
  train, test = take(ds.train, 6000), take(ds.test, 2000)
  images = {"train": ds.train.images[train, ..., 0], "test": ds.test.images[test, ..., 0]}
  labels = {"train": ds.train.labels[train], "test": ds.test.labels[test]}
  write_dataset(tmp_path / "subset", images=images, labels=labels)
  workdir = tmp_path / "run"
  proc = forkserver.run(["--config=configs/fashion_mnist.py:lenet", f"--workdir={workdir}",
                         f"--config.data.dir={tmp_path / 'subset'}", "--config.num_epochs=1",
                         "--config.monitor.plot=False", "--config.monitor.progress=False",
                         "--config.monitor.tensorboard=False"])
  assert proc.returncode == 0, proc.stderr[-2000:]
  results = json.loads((workdir / "results.json").read_text())
  print(f"LeNet, one epoch on 6,000 real images: test accuracy {results['test_accuracy']:.4f}")
  assert results["test_count"] == 2000 and results["test_accuracy"] > 0.6
  assert "T-shirt/top" in (workdir / "results.json").read_text()


def test_headers_that_lie_are_refused_before_anything_is_inflated_or_allocated(tmp_path):
  """A header whose sizes overflow 64 bits (2^31 x 2^31 x 4), and a gzip "bomb" (a small file that
  inflates far past its header's size): one line each, and the bomb is inflated no further than
  its header's size plus a byte (its 256 MiB never are)."""
  import time
  huge = tmp_path / "huge-idx3-ubyte"
  huge.write_bytes(b"\0\0\x08\x03" + struct.pack(">III", 2**31, 2**31, 4))
  with pytest.raises(idx.IdxError, match=r"huge-idx3-ubyte: its header says 2147483648x2147483648x4 values "
                                         r"\(18,446,744,073,709,551,616 bytes\), more than an IDX dataset holds"):
    idx.read_idx(str(huge))
  bomb = tmp_path / "bomb-idx3-ubyte.gz"
  header = b"\0\0\x08\x03" + struct.pack(">III", 10, 28, 28)
  compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
  chunk = bytes(1 << 20)
  body = compressor.compress(header) + b"".join(compressor.compress(chunk) for _ in range(256)) + compressor.flush()
  bomb.write_bytes(body)
  assert len(body) < 1 << 20  # under a megabyte on disk
  start = time.perf_counter()
  with pytest.raises(idx.IdxError, match=r"bomb-idx3-ubyte.gz is longer than its header says"):
    idx.read_idx(str(bomb))
  assert time.perf_counter() - start < 5
