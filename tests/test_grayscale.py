"""1-channel images through every entry point: the builders (write_arrays, build_dataset
--grayscale) and mean.json, every normalization and augmentation, then a run trained on a gray
HDF5 dataset evaluated, asked to predict gray PNG / JPEG and colour files, and used for features."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from conftest import aug_cfg, data_cfg
from cnnzoo.data import builders, ops, sources
from cnnzoo.errors import ConfigError

CLASSES = ("dark", "light")




def test_write_arrays_writes_a_one_channel_mean_json_the_source_reads(tmp_path):
  rng = np.random.default_rng(0)
  splits = {s: (rng.integers(0, 256, (n, 5, 5, 1), dtype=np.uint8), np.arange(n) % 2)
            for s, n in (("train", 12), ("val", 4), ("test", 4))}
  builders.write_arrays(str(tmp_path), splits, list(CLASSES))
  stats = json.loads((tmp_path / "mean.json").read_text())
  x = splits["train"][0].astype(np.float64)
  assert sorted(stats) == ["mean", "std"]  # no R, G, B keys for one channel
  np.testing.assert_allclose(stats["mean"], [x.mean()], rtol=1e-12)
  np.testing.assert_allclose(stats["std"], [x.std()], rtol=1e-9)
  ds = sources.load_hdf5(str(tmp_path))
  assert ds.image_shape == (5, 5, 1) and ds.mean == tuple(stats["mean"]) and ds.std == tuple(stats["std"])
  (tmp_path / "mean.json").write_text('{"R": 1, "G": 2, "B": 3, "std": [1, 1, 1]}')  # another dataset's
  with pytest.raises(ConfigError, match=r"mean.json holds 3 channel mean\(s\) for images of 1 channel\(s\); it "
                                        "belongs to another dataset"):
    sources.load_hdf5(str(tmp_path))


def test_every_normalization_on_one_channel():
  x = jnp.full((1, 2, 2, 1), 100, jnp.uint8)
  expected = {"scale": 100 / 255, "mean": 100 - 40.0, "standardize": (100 - 40.0) / 20.0,
              "pixel_mean": 100 / 255 - 0.25}
  for mode, value in expected.items():
    _, val, _ = ops.make_preprocess(data_cfg(normalize=mode), (40.0,), (20.0,), (2, 2, 1),
                                    mean_image=np.full((2, 2, 1), 0.25, np.float32))
    out = val(x)
    assert out.shape == (1, 1, 2, 2, 1)
    np.testing.assert_allclose(out, value, rtol=1e-6)
  with pytest.raises(ConfigError, match=r"the dataset's channel mean has 3 values but the images have 1 channel"):
    ops.make_preprocess(data_cfg(normalize="mean"), (1.0, 2.0, 3.0), None, (2, 2, 1))


@pytest.mark.parametrize("augment", ops.AUGMENTATIONS)
def test_every_augmentation_keeps_one_channel(augment):
  images = jnp.asarray(np.random.default_rng(1).integers(0, 256, (6, 8, 8, 1), dtype=np.uint8))
  cfg = aug_cfg(augment, rotation=20.0, shift=0.1, zoom=0.1, shear=5.0, crop_padding=2)
  train, _, _ = ops.make_preprocess(cfg, (100.0,), (50.0,), (8, 8, 1))
  out = np.asarray(jax.jit(train)(jax.random.key(0), images)) * 255.0
  assert out.shape == (6, 8, 8, 1) and out.dtype == np.float32
  x = np.asarray(images, np.float32)
  if augment == "none":
    np.testing.assert_allclose(out, x, rtol=1e-6)
  if augment == "flip":  # each image as it was or mirrored, both seen in six
    mirrored = [np.allclose(o, xi[:, ::-1], rtol=1e-6) and not np.allclose(o, xi, rtol=1e-6) for o, xi in zip(out, x)]
    kept = [np.allclose(o, xi, rtol=1e-6) for o, xi in zip(out, x)]
    assert all(m or k for m, k in zip(mirrored, kept)) and any(mirrored) and any(kept)
  if augment != "none":
    assert not np.allclose(out, x)
  erase = aug_cfg(augment, erase_prob=1.0, crop_padding=2)
  train, _, _ = ops.make_preprocess(erase, (100.0,), (50.0,), (8, 8, 1))
  erased = np.asarray(jax.jit(train)(jax.random.key(0), images)) * 255.0
  assert erased.shape == (6, 8, 8, 1)
  assert all((~np.isclose(e, o)).sum() >= 1 for e, o in zip(erased, out if augment in ("none", "flip") else erased + 1))


def gray_png(path, value, rng, mode="L", fmt="PNG"):
  """A noisy image around `value`: gray ("L") or colour with R = G = B, PNG or JPEG."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  array = np.clip(value + rng.integers(-20, 21, (20, 20)), 0, 255).astype(np.uint8)
  image = Image.fromarray(array)
  (image.convert(mode) if mode != "L" else image).save(path, fmt)
  return array


def test_a_gray_dataset_through_every_entry_point(tmp_path, forkserver):
  """build_dataset --grayscale -> train -> evaluate -> predict -> extract_features -> train_logreg."""

  def cli(module, *args):
    proc = forkserver.run(list(args), module=module)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc

  rng = np.random.default_rng(0)
  src, data = tmp_path / "src", tmp_path / "h5"
  for label, value in zip(CLASSES, (50, 200)):
    for i in range(24):  # a few colour files among the gray ones: --grayscale converts them
      gray_png(str(src / label / f"{i}.png"), value, rng, mode="RGB" if i % 6 == 0 else "L")
  proc = cli("experiments.build_dataset", "--layout=folder", f"--src={src}", f"--out={data}", "--size=28",
             "--grayscale", "--val=0.25", "--test=0.25")
  assert "mean gray (" in proc.stdout
  ds = sources.load_hdf5(str(data))
  assert ds.image_shape == (28, 28, 1) and ds.class_names == list(CLASSES) and len(ds.mean) == 1
  assert len(ds.train) == 24 and len(ds.val) == 12 and len(ds.test) == 12
  light = ds.train.images[ds.train.labels == 1]
  assert 170 < light.mean() < 230 and ds.train.images[ds.train.labels == 0].mean() < 80

  run = tmp_path / "run"
  cli("experiments.main", "--config=configs/fashion_mnist.py:lenet", f"--workdir={run}",
      "--config.data.name=hdf5", f"--config.data.dir={data}", "--config.data.batch_size=8",
      "--config.data.normalize=standardize", "--config.data.augment=flip", "--config.num_epochs=3",
      "--config.monitor.progress=False", "--config.monitor.plot=False", "--config.monitor.tensorboard=False")
  results = json.loads((run / "results.json").read_text())
  assert results["test_count"] == 12

  cli("experiments.evaluate", f"--workdir={run}", "--checkpoint=latest")
  report = (run / "eval_test" / "classification_report.txt").read_text()
  assert "dark" in report and "light" in report
  assert (run / "eval_test" / "confusion_matrix.png").stat().st_size > 5000
  evaluation = json.loads((run / "eval_test" / "evaluation.json").read_text())
  assert evaluation["rank1"] == pytest.approx(results["test_accuracy"])

  # predict: gray PNG, gray JPEG, and a colour PNG of the same pixels (R = G = B) to the gray model
  files = tmp_path / "files"
  gray = gray_png(str(files / "gray.png"), 200, np.random.default_rng(5))
  gray_png(str(files / "gray.jpg"), 200, np.random.default_rng(5), fmt="JPEG")
  gray_png(str(files / "colour.png"), 200, np.random.default_rng(5), mode="RGB")
  assert np.array_equal(np.asarray(Image.open(files / "colour.png").convert("L")), gray)
  proc = cli("experiments.predict", f"--workdir={run}", "--top=2", str(files / "gray.png"), str(files / "gray.jpg"),
             str(files / "colour.png"))
  lines = proc.stdout.splitlines()
  assert lines[0] == str(files / "gray.png") and len(lines) == 9
  assert lines[1] == lines[7]  # the colour file is read as its luma: the same top-1 and probability
  assert lines[1].split()[1] in CLASSES and lines[4].split()[1] in CLASSES

  out = tmp_path / "features"
  proc = cli("experiments.extract_features", f"--workdir={run}", f"--data={data}", f"--out={out}", "--list_layers")
  assert proc.stdout.split() == ["conv1", "conv2", "fc1", "fc2", "features", "head"]
  proc = cli("experiments.extract_features", f"--workdir={run}", f"--data={data}", f"--out={out}", "--layer=fc2")
  assert "train: 24 images -> 84 features each" in proc.stdout
  proc = cli("experiments.train_logreg", f"--features={out}", "--C=1")
  assert "dark" in proc.stdout and "precision" in proc.stdout
