"""Data sources, the loader (order, padding, sharding) and on-device augmentation."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import aug_cfg, data_cfg
from cnnzoo import parallel
from cnnzoo.data import Loader, Split, sources
from cnnzoo.data import ops
from cnnzoo.data.loader import materialize


def test_digits_split_is_stratified_fixed_and_complete():
  ds = sources.load_digits(image_size=32)
  assert (len(ds.train), len(ds.val), len(ds.test)) == (1257, 180, 360)
  assert ds.image_shape == (32, 32, 1) and ds.train.images.dtype == np.uint8
  assert ds.train.images.max() == 255 and ds.num_classes == 10
  assert np.bincount(ds.test.labels).min() >= 35  # ~36 per class in a stratified 20 %
  again = sources.load_digits(image_size=32)
  np.testing.assert_array_equal(ds.test.labels, again.test.labels)


def test_synthetic_shapes():
  ds = sources.load_synthetic((64, 64, 3), 200, sizes=(16, 8, 8))
  assert ds.train.images.shape == (16, 64, 64, 3) and ds.num_classes == 200


def test_missing_hdf5_dataset_says_how_to_get_it(tmp_path):
  with pytest.raises(sources.DatasetNotFoundError, match="no HDF5 dataset at .*train.h5; run the builder"):
    sources.load_hdf5(str(tmp_path), "run the builder")


def test_hdf5_source_reads_builder_files(tmp_path):
  import h5py
  rng = np.random.default_rng(0)
  for split, n in (("train", 6), ("val", 3), ("test", 3)):
    with h5py.File(tmp_path / f"{split}.h5", "w") as f:
      f["images"] = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
      f["labels"] = np.arange(n) % 2
      f.attrs["class_names"] = ["cat", "dog"]
  (tmp_path / "mean.json").write_text('{"R": 1.0, "G": 2.0, "B": 3.0}')
  ds = sources.load_hdf5(str(tmp_path))
  assert ds.class_names == ["cat", "dog"] and ds.mean == (1.0, 2.0, 3.0) and len(ds.train) == 6
  mesh = parallel.make_mesh()
  batch = next(Loader(ds.train, 4, mesh, train=True).epoch(0))
  assert batch["image"].shape == (4, 8, 8, 3)


def make_split(n=10):
  return Split(np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1) * np.ones((1, 2, 2, 1), np.uint8),
               np.arange(n, dtype=np.int32))


def test_train_order_depends_on_seed_and_epoch_only():
  mesh = parallel.make_mesh()
  a = Loader(make_split(), 4, mesh, train=True, seed=3)
  b = Loader(make_split(), 4, mesh, train=True, seed=3)
  np.testing.assert_array_equal(a.order(5), b.order(5))
  assert not np.array_equal(a.order(5), a.order(6))
  assert a.steps_per_epoch == 2  # the partial batch is dropped


def test_loader_resumes_at_any_step():
  loader = Loader(make_split(), 2, parallel.make_mesh(), train=True, seed=1)
  full = [np.asarray(b["label"]) for b in loader.epoch(2)]
  tail = [np.asarray(b["label"]) for b in loader.epoch(2, start_step=3)]
  np.testing.assert_array_equal(np.stack(full[3:]), np.stack(tail))


def test_eval_batches_cover_every_example_once_with_a_padded_last_batch():
  loader = Loader(make_split(10), 4, parallel.make_mesh(), train=False)
  batches = list(loader.epoch(0))
  assert len(batches) == 3 and all(b["image"].shape == (4, 2, 2, 1) for b in batches)
  labels = np.concatenate([np.asarray(b["label"])[np.asarray(b["mask"])] for b in batches])
  np.testing.assert_array_equal(labels, np.arange(10))


def test_batch_must_split_over_devices():
  from cnnzoo.errors import ConfigError
  mesh = parallel.make_mesh()
  fake = type("M", (), {"devices": np.empty(8)})()
  with pytest.raises(ConfigError, match="does not split over 8 devices"):
    parallel.check_batch_size(12, fake)
  parallel.check_batch_size(16, mesh)




@pytest.mark.parametrize("name", ["crop_flip", "affine_flip"])
def test_flip_twice_is_identity_and_same_key_same_output(name):
  x = jax.random.randint(jax.random.key(0), (8, 6, 6, 3), 0, 256).astype(jnp.uint8)
  key = jax.random.key(1)
  once = ops.random_flip(key, x)
  np.testing.assert_array_equal(ops.random_flip(key, once), x)
  cfg = aug_cfg(name, rotation=30.0, shift=0.1, zoom=0.2, shear=0.2, erase_prob=0.5)
  a, b = ops.augment(key, x, cfg), ops.augment(key, x, cfg)
  np.testing.assert_array_equal(a, b)
  assert a.shape == x.shape and not np.array_equal(a, ops.augment(jax.random.key(2), x, cfg))


def test_affine_with_zero_ranges_is_the_identity_and_shift_moves_pixels():
  x = jax.random.uniform(jax.random.key(0), (4, 9, 9, 3), maxval=255.0)
  np.testing.assert_allclose(ops.random_affine(jax.random.key(1), x), x, atol=1e-4)
  moved = ops.random_affine(jax.random.key(1), x, shift=0.3)
  assert moved.shape == x.shape and float(jnp.abs(moved - x).max()) > 1.0


def test_random_erasing_area_within_its_range():
  x = jnp.full((64, 32, 32, 1), 7.0)
  y = np.asarray(ops.random_erasing(jax.random.key(3), x, prob=1.0, area=(0.05, 0.3), ratio=0.5))
  fractions = (y != 7.0).mean(axis=(1, 2, 3))
  assert fractions.min() >= 0.04 and fractions.max() <= 0.33
  untouched = ops.random_erasing(jax.random.key(3), x, prob=0.0)
  np.testing.assert_array_equal(untouched, x)


def test_crop_keeps_shape_and_pixels_come_from_the_image_or_padding():
  x = jnp.full((4, 8, 8, 1), 7, jnp.uint8)
  y = ops.random_crop(jax.random.key(0), x, 2)
  assert y.shape == x.shape and set(np.unique(np.asarray(y))) <= {0, 7}


def test_normalize_modes():
  x = jnp.full((1, 1, 1, 3), 255, jnp.uint8)
  np.testing.assert_allclose(ops.normalize(x, "scale"), 1.0)
  np.testing.assert_allclose(ops.normalize(x, "mean", mean=(5.0, 55.0, 255.0))[0, 0, 0], [250.0, 200.0, 0.0])
  with pytest.raises(ValueError, match="unknown normalization"):
    ops.normalize(x, "zca")
  with pytest.raises(ValueError, match="--config.data.augment='mixup': no such augmentation; registered: affine"):
    ops.augment(jax.random.key(0), x, data_cfg(augment="mixup"))


def test_tfds_sources_through_mock_data():
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=20, policy=tfds.testing.MockPolicy.USE_CODE):
    mnist = sources.load_tfds("mnist", None, validation_split=0.1, split_seed=0)
    cifar = sources.load_tfds("cifar10", None, validation_split=0.0, split_seed=0)
  assert (len(mnist.train), len(mnist.val), len(mnist.test)) == (18, 2, 20)
  assert mnist.image_shape == (28, 28, 1) and mnist.class_names[:2] == ["0", "1"]
  assert cifar.image_shape == (32, 32, 3) and cifar.num_classes == 10
  assert cifar.val is cifar.test  # the seed validated CIFAR on its test split


def cats_vs_dogs_source(self, split, **kwargs):
  """Like tfds' cats_vs_dogs: a train split only, JPEG-decoded images of varying sizes."""
  if split != "train":
    raise ValueError(f"Unknown split {split!r}. Should be one of ['train'].")
  rng = np.random.default_rng(0)
  return [{"image": rng.integers(0, 256, (30 + 3 * i, 40 - i, 3), dtype=np.uint8), "label": i % 2,
           "image/filename": f"{i}.jpg"} for i in range(20)]


def test_tfds_variable_size_images_fine_labels_and_a_carved_test_split():
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(as_data_source_fn=cats_vs_dogs_source):
    with pytest.raises(ValueError, match="different sizes .*set --config.data.resize=SIZE"):
      sources.load_tfds("cats_vs_dogs", None, validation_split=0.1, split_seed=0)
    dogs = sources.load_tfds("cats_vs_dogs", None, validation_split=0.1, split_seed=0, resize=24,
                             test_fraction=0.25)
  with tfds.testing.mock_data(num_examples=20, policy=tfds.testing.MockPolicy.USE_CODE):
    cifar100 = sources.load_tfds("cifar100", None, validation_split=0.0, split_seed=0)
  # cats_vs_dogs has only a train split: test (25 %) and validation (10 % of the rest) are carved
  assert (len(dogs.train), len(dogs.val), len(dogs.test)) == (13, 2, 5)
  assert sorted(np.concatenate([dogs.train.labels, dogs.val.labels, dogs.test.labels])) == [0] * 10 + [1] * 10
  assert dogs.image_shape == (24, 24, 3) and dogs.class_names == ["cat", "dog"] and len(dogs.std) == 3
  assert cifar100.num_classes == 100  # the fine "label", not the 20 "coarse_label"s


def test_unprepared_tfds_dataset_says_how_to_get_it(tmp_path):
  with pytest.raises(sources.DatasetNotFoundError, match="tfds build cifar10"):
    sources.load_tfds("cifar10", str(tmp_path), 0.0, 0)


def test_device_resident_batches_equal_host_batches():
  split = sources.load_digits(image_size=16).train
  mesh = parallel.make_mesh()
  host = Loader(split, 32, mesh, train=True, seed=4)
  device = Loader(split, 32, mesh, train=True, seed=4, on_device=True)
  take = jax.jit(materialize, out_shardings=host.sharding)
  for a, b in zip(host.epoch(3, start_step=5), device.epoch(3, start_step=5)):
    assert set(b) == {"index", "mask"} and b["index"].sharding == host.sharding
    b = take(b, device.source)
    for key in ("image", "label", "mask"):
      np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]))
  val = sources.load_digits(image_size=16).val  # 180 images: a padded last batch
  batches = list(Loader(val, 64, mesh, train=False, on_device=True).epoch(0))
  assert sum(int(np.asarray(b["mask"]).sum()) for b in batches) == 180


def test_on_device_choice():
  from cnnzoo.data.loader import fits_on_device
  split = make_split(10)
  assert fits_on_device(split, "auto", 1.0) and not fits_on_device(split, "auto", 1e-9)
  assert fits_on_device(split, "yes", 0.0) and not fits_on_device(split, "no", 1.0)
  with pytest.raises(ValueError, match="auto, yes or no"):
    fits_on_device(split, "maybe", 1.0)


def write_h5_split(path, images, labels, class_names):
  import h5py
  with h5py.File(path, "w") as f:
    f["images"] = images
    f["labels"] = labels
    f.attrs["class_names"] = class_names


@pytest.mark.parametrize("damage, message", [
    ("labels_column", r"train.h5: labels must be one integer per image \(found int64 \(6, 1\)\)"),
    ("float_labels", r"train.h5: labels must be one integer per image \(found float64 \(6,\)\)"),
    ("scalar_names", r"train.h5: the class_names attribute must be a list of names, one per class \(found str"),
    ("one_class", r"train.h5: 1 class\(es\): classification needs at least two"),
    ("names_differ", r"test.h5: its class names \(cat, mouse, \.\.\.\) differ from train.h5's \(cat, dog, \.\.\.\)"),
    ("empty_class", r"train.h5: class 'dog' has no training image \(1 of 2 classes have none\)"),
])
def test_hdf5_data_that_would_train_to_a_meaningless_number_is_refused(tmp_path, damage, message):
  """Data validated, not only present: each of these once trained and reported a number."""
  images = np.zeros((6, 4, 4, 1), np.uint8)
  labels, names = np.arange(6) % 2, ["cat", "dog"]
  for split in ("train", "val", "test"):
    write_h5_split(tmp_path / f"{split}.h5", images, labels, names)
  train = tmp_path / "train.h5"
  if damage == "labels_column":
    write_h5_split(train, images, labels[:, None], names)
  elif damage == "float_labels":
    write_h5_split(train, images, labels.astype(np.float64), names)
  elif damage == "scalar_names":
    write_h5_split(train, images, labels, "catdog")
  elif damage == "one_class":
    write_h5_split(train, images, labels * 0, ["cat"])
  elif damage == "names_differ":
    write_h5_split(tmp_path / "test.h5", images, labels, ["cat", "mouse"])
  elif damage == "empty_class":
    write_h5_split(train, images, labels * 0, names)
  with pytest.raises(sources.ConfigError, match=message) as e:
    sources.load_hdf5(str(tmp_path))
  assert "\n" not in str(e.value)


def test_a_class_folder_without_images_or_a_single_class_is_refused(tmp_path):
  from PIL import Image
  from cnnzoo.data import builders
  for c in ("a", "b"):
    (tmp_path / "src" / c).mkdir(parents=True)
  Image.new("L", (4, 4)).save(tmp_path / "src" / "a" / "0.png")
  (tmp_path / "src" / "b" / "notes.txt").write_text("not an image")
  with pytest.raises(builders.LayoutError, match=r"src/b holds no image \(\.jpg, .*add images or remove the folder"):
    builders.list_folder(str(tmp_path / "src"))
  os.remove(tmp_path / "src" / "b" / "notes.txt")
  os.rmdir(tmp_path / "src" / "b")
  with pytest.raises(builders.LayoutError, match=r"has one class folder \(a\): classification needs at least two"):
    builders.list_folder(str(tmp_path / "src"))
