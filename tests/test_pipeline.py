"""Channel statistics, training patches and evaluation crops (center, resize, 10-crop), background
prefetch, and the loader's batch sharding over 8 fake CPU devices."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import ROOT, data_cfg, devices_env, quiet
from cnnzoo import parallel
from cnnzoo.data import Loader, Split, ops, sources
from cnnzoo.errors import ConfigError




def test_channel_stats_match_numpy_in_chunks():
  images = np.random.default_rng(0).integers(0, 256, (37, 5, 4, 3), dtype=np.uint8)
  mean, std = sources.channel_stats(images, chunk=8)
  x = images.astype(np.float64)
  np.testing.assert_allclose(mean, x.mean(axis=(0, 1, 2)), rtol=1e-12)
  np.testing.assert_allclose(std, x.std(axis=(0, 1, 2)), rtol=1e-9)


def test_standardize_uses_the_datasets_std_unless_the_config_gives_one():
  x = jnp.full((1, 2, 2, 3), 100, jnp.uint8)
  _, val, _ = ops.make_preprocess(data_cfg(normalize="standardize"), (50.0, 100.0, 150.0), (25.0, 5.0, 10.0))
  np.testing.assert_allclose(val(x)[0, 0, 0, 0], [2.0, 0.0, -5.0])
  _, val, _ = ops.make_preprocess(data_cfg(normalize="standardize", std=(0.5, 0.5, 0.5)), (50.0, 100.0, 150.0))
  np.testing.assert_allclose(val(x)[0, 0, 0, 0], np.array([50.0, 0.0, -50.0]) / 127.5, rtol=1e-6)
  with pytest.raises(ConfigError, match="needs the channel std"):
    ops.make_preprocess(data_cfg(normalize="standardize"), (1.0, 1.0, 1.0), None)


def window_origin(crop, image):
  """(row, col) where `crop` occurs in `image`, or None."""
  s = crop.shape[0]
  for r in range(image.shape[0] - s + 1):
    for c in range(image.shape[1] - s + 1):
      if np.array_equal(image[r:r + s, c:c + s], crop):
        return r, c
  return None


def test_random_patch_takes_windows_of_the_image_at_random_places():
  images = np.random.default_rng(1).integers(0, 256, (16, 9, 9, 3), dtype=np.uint8)
  patches = np.asarray(ops.random_patch(jax.random.key(0), jnp.asarray(images), 6))
  assert patches.shape == (16, 6, 6, 3)
  origins = [window_origin(p, im) for p, im in zip(patches, images)]
  assert None not in origins and len(set(origins)) > 4
  np.testing.assert_array_equal(ops.random_patch(jax.random.key(0), jnp.asarray(images), 6), patches)


def test_ten_crops_are_corners_center_and_their_mirrors():
  images = np.random.default_rng(2).integers(0, 256, (2, 8, 10, 1), dtype=np.uint8)
  views = np.asarray(ops.ten_crops(jnp.asarray(images), 5))
  assert views.shape == (10, 2, 5, 5, 1)
  origins = [window_origin(v[0], images[0]) for v in views[:5]]
  assert origins == [(0, 0), (0, 5), (3, 0), (3, 5), (1, 2)]
  np.testing.assert_array_equal(views[5:], views[:5, :, :, ::-1])
  np.testing.assert_array_equal(ops.eval_views(jnp.asarray(images), 5, "center")[0], views[4])
  assert ops.eval_views(jnp.asarray(images), 0, "ten").shape == (1, 2, 8, 10, 1)  # no crop size: as is


def test_resize_view_keeps_a_constant_image_and_bad_choices_fail():
  images = jnp.full((3, 12, 12, 3), 77, jnp.uint8)
  np.testing.assert_allclose(ops.eval_views(images, 8, "resize"), 77.0, rtol=1e-6)
  assert ops.eval_views(images, 8, "resize").shape == (1, 3, 8, 8, 3)
  with pytest.raises(ConfigError, match="unknown evaluation crop 'five'"):
    ops.make_preprocess(data_cfg(crop_size=8, test_crop="five"), None)
  with pytest.raises(ConfigError, match="data.crop_size=40 must be between 1 and the images' 32x32"):
    ops.model_image_shape(data_cfg(crop_size=40), (32, 32, 3))
  assert ops.model_image_shape(data_cfg(crop_size=28), (32, 32, 1)) == (28, 28, 1)


def test_ten_crop_evaluation_averages_the_views_probabilities(tiny_digits):
  """A run with 28x28 patches of 32x32 digits: validation on the center crop, test on 10 crops;
  the jitted test step equals the average of softmax probabilities computed view by view."""
  from cnnzoo.training import loop
  c = tiny_digits
  c.data.crop_size, c.data.eval_crop, c.data.test_crop = 28, "center", "ten"
  c.model.input_shape = (28, 28, 1)
  run = loop.build(c)
  assert run.identity["image_shape"] == [28, 28, 1] and run.test_step is not run.eval_step
  state = run.state
  for _, batch in zip(range(20), run.train_loader.epoch(0)):
    state, _ = run.train_step(state, batch)
  got = loop.evaluate(run, state, run.test_loader, run.test_step)
  images, labels = run.dataset.test.images, run.dataset.test.labels
  views = ops.ten_crops(jnp.asarray(images), 28).astype(jnp.float32) / 255.0
  # one jitted forward for every view (eagerly, each op of the model would compile on its own)
  softmax = jax.jit(lambda v: jax.nn.softmax(state.apply_fn(state.variables(), v, train=False)))
  probs = np.mean([np.asarray(softmax(v)) for v in views], 0)
  assert got["count"] == len(labels) == 360
  assert got["accuracy"] == pytest.approx(np.mean(probs.argmax(-1) == labels), abs=1e-9)
  assert got["loss"] == pytest.approx(-np.mean(np.log(probs[np.arange(len(labels)), labels])), rel=1e-4)
  center = loop.evaluate(run, state, run.test_loader)  # the validation step: one center view
  center_probs = np.asarray(softmax(views[4]))
  assert center["accuracy"] == pytest.approx(np.mean(center_probs.argmax(-1) == labels), abs=1e-9)


def hdf5_split(path, n=23):
  import h5py
  rng = np.random.default_rng(3)
  with h5py.File(path, "w") as f:
    f.create_dataset("images", data=rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8), chunks=(4, 4, 4, 3))
    f["labels"] = np.arange(n) % 5
  f = h5py.File(path, "r")
  return Split(f["images"], np.asarray(f["labels"], np.int32))


@pytest.mark.parametrize("train", [True, False])
def test_prefetched_hdf5_batches_equal_unprefetched_ones(tmp_path, train):
  split = hdf5_split(tmp_path / "x.h5")
  mesh = parallel.make_mesh()
  plain = Loader(split, 4, mesh, train=train, seed=2, prefetch=0)
  ahead = Loader(split, 4, mesh, train=train, seed=2, prefetch=3)
  a, b = list(plain.epoch(1, start_step=1)), list(ahead.epoch(1, start_step=1))
  assert len(a) == len(b) == (4 if train else 5)
  for x, y in zip(a, b):
    for key in ("image", "label", "mask"):
      np.testing.assert_array_equal(np.asarray(x[key]), np.asarray(y[key]))
  first = next(ahead.epoch(0))  # stopping early leaves no thread behind
  assert first["image"].shape == (4, 4, 4, 3)


class FailingImages:
  """An on-disk images dataset whose third read fails, as a vanishing disk would."""

  def __init__(self, images):
    self.images, self.reads, self.shape, self.dtype = images, 0, images.shape, images.dtype

  def __getitem__(self, idx):
    self.reads += 1
    if self.reads == 3:
      raise OSError("disk gone")
    return self.images[idx]


def test_a_failing_read_surfaces_in_the_consumer_after_the_good_batches():
  images = np.zeros((20, 2, 2, 1), np.uint8)
  split = Split(FailingImages(images), np.zeros(20, np.int32))
  got = []
  with pytest.raises(OSError, match="disk gone"):
    for batch in Loader(split, 4, parallel.make_mesh(), train=True, prefetch=2).epoch(0):
      got.append(batch)
  assert len(got) == 2


SHARDING = """
import json
import jax, numpy as np
from cnnzoo import parallel
from cnnzoo.data import Loader, Split
images = np.arange(40 * 2 * 2 * 1, dtype=np.uint32).reshape(40, 2, 2, 1).astype(np.uint8)
split = Split(images, np.arange(40, dtype=np.int32))
mesh = parallel.make_mesh()
out = {"devices": jax.device_count()}
for name, kw in (("host", dict(on_device=False, prefetch=2)), ("device", dict(on_device=True))):
  for train in (True, False):
    loader = Loader(split, 16, mesh, train=train, seed=5, **kw)
    order = loader.order(3)
    rows = []
    for step, batch in enumerate(loader.epoch(3)):
      idx = order[step * 16:(step + 1) * 16]
      for key in batch:  # host: image, label, mask; device-resident: index, mask
        arr = batch[key]
        assert arr.sharding.spec == jax.sharding.PartitionSpec("data"), arr.sharding
        shards = sorted(arr.addressable_shards, key=lambda s: s.index[0].start)
        assert len(shards) == 8 and len({s.device for s in shards}) == 8
        for s in shards:  # device d holds global rows 2d, 2d + 1
          assert s.data.shape[0] == 2
          want = np.asarray(arr)[s.index]
          np.testing.assert_array_equal(np.asarray(s.data), want)
      labels = np.asarray(batch["label"] if "label" in batch else batch["index"])  # label i = index i
      mask = np.asarray(batch["mask"])
      np.testing.assert_array_equal(labels[:len(idx)], idx)
      assert mask.sum() == len(idx)
      rows.append(int(mask.sum()))
    out[f"{name}_{'train' if train else 'eval'}"] = rows
    out[f"{name}_keys"] = sorted(batch)
print(json.dumps(out))
"""


def test_loader_shards_each_batch_over_eight_devices():
  env = devices_env(8)
  proc = subprocess.run([sys.executable, "-c", SHARDING], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  assert out["devices"] == 8
  assert out["host_keys"] == ["image", "label", "mask"] and out["device_keys"] == ["index", "mask"]
  for name in ("host", "device"):
    assert out[f"{name}_train"] == [16, 16]  # 40 images: the partial training batch is dropped
    assert out[f"{name}_eval"] == [16, 16, 8]  # every image once, the last batch padded


def test_the_cifar_config_trains_on_its_tfds_source(tmp_path):
  """configs/minivggnet_cifar10.py unchanged but for size, on tfds' cifar10 (mocked: 20 random
  images per split): the test split doubles as validation, as in the seed."""
  import tensorflow_datasets as tfds
  from configs import minivggnet_cifar10
  from cnnzoo.training import loop
  config = quiet(minivggnet_cifar10.get_config())
  config.data.batch_size, config.num_epochs = 8, 1
  with tfds.testing.mock_data(num_examples=20, policy=tfds.testing.MockPolicy.USE_CODE):
    results = loop.train_and_evaluate(config, str(tmp_path))
  assert results["dataset"] == "cifar10" and results["test_count"] == 20 and results["epochs"] == 1
  history = json.loads((tmp_path / "history.json").read_text())
  assert history[0]["val_loss"] == pytest.approx(results["test_loss"], rel=1e-6)


def test_a_damaged_chunk_of_a_streamed_hdf5_split_is_one_user_error(tmp_path):
  """h5py opens a file whose compressed chunks are damaged; the read of a batch fails: one line
  naming the file and the images, not an h5py traceback mid-epoch."""
  import h5py
  from cnnzoo.errors import UserError
  path = str(tmp_path / "train.h5")
  with h5py.File(path, "w") as f:
    f.create_dataset("images", data=np.random.default_rng(0).integers(0, 256, (32, 2, 2, 1), np.uint8),
                     chunks=(8, 2, 2, 1), compression="gzip")
    start = f["images"].id.get_chunk_info(2).byte_offset
  with open(path, "r+b") as f:
    f.seek(start)
    f.write(b"\xff" * 16)
  with h5py.File(path, "r") as f:
    split = Split(f["images"], np.zeros(32, np.int32))
    got = []
    with pytest.raises(UserError, match=r"cannot read images 16\.\.23 of .*train\.h5: it is damaged"):
      for batch in Loader(split, 8, parallel.make_mesh(), train=False, on_device=False, prefetch=0).epoch(0):
        got.append(batch)
    assert len(got) == 2
