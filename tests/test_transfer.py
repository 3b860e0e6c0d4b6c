"""Transfer learning, first half: features equal Keras' own, logistic regression on features, and
the seed's commands end to end on a dataset built by experiments.build_dataset."""

import json
import os

import h5py
import jax
import numpy as np
import pytest
from PIL import Image

from conftest import fast_keras
from cnnzoo import models
from cnnzoo.errors import UserError
from cnnzoo.transfer import features, logreg

keras = fast_keras()

from test_keras_equivalence import randomize  # noqa: E402


@pytest.mark.parametrize("keras_name,ours,layer,pooling,mode", [
    ("VGG16", "vgg16", "block5_pool", None, "caffe"),  # the seed's 7 x 7 x 512 = 25,088 features
    ("ResNet50", "resnet50_keras", "features", "avg", "caffe"),  # the seed's pooled 2,048
])
def test_features_equal_keras_predict(keras_name, ours, layer, pooling, mode, tmp_path):
  reference = randomize(getattr(keras.applications, keras_name)(weights=None, include_top=False, pooling=pooling))
  path = str(tmp_path / f"{ours}_notop.weights.h5")
  reference.save_weights(path)
  images = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3)).astype(np.uint8)
  module = getattr(keras.applications, "vgg16" if ours == "vgg16" else "resnet50")
  expected = np.asarray(reference.predict(module.preprocess_input(images.astype(np.float32)), verbose=0))
  expected = expected.reshape(len(images), -1)
  del reference
  extractor = features.from_keras_weights(path, ours, layer, None)
  assert models.model_info(ours).preprocess == mode
  got = np.asarray(jax.jit(extractor.apply)(images))
  assert got.shape == expected.shape == (2, 25_088 if ours == "vgg16" else 2048)
  scale = max(1.0, float(np.abs(expected).max()))  # reassociation noise grows with the scale
  np.testing.assert_allclose(got, expected, atol=1e-4 * scale, rtol=0)


def test_preprocess_modes_are_keras():
  from keras.applications import imagenet_utils
  x = np.random.default_rng(0).integers(0, 256, (2, 5, 5, 3)).astype(np.uint8)
  for mode in ("caffe", "tf", "torch"):
    expected = imagenet_utils.preprocess_input(x.astype(np.float32), mode=mode)
    # float32 arithmetic in another order: a few ulps of values up to ~150 (caffe) or ~2.6 (torch)
    np.testing.assert_allclose(features.preprocess_input(x, mode), expected, rtol=1e-6, atol=1e-5)


def write_features(path, x, y, names, **attrs):
  with h5py.File(path, "w") as f:
    f["features"], f["labels"] = x.astype(np.float32), y.astype(np.int32)
    f.attrs["class_names"] = [n.encode() for n in names]
    for k, v in attrs.items():
      f.attrs[k] = v


def test_logistic_regression_learns_separable_features_and_reloads(tmp_path):
  from sklearn.datasets import make_classification
  x, y = make_classification(n_samples=600, n_features=40, n_informative=10, n_classes=3, class_sep=2.0,
                             random_state=0)
  names = ["a", "b", "c"]
  attrs = {"model": "vgg16 (w.h5, preprocess caffe)", "layer": "block5_pool", "dataset": "toy"}
  write_features(tmp_path / "train_features.h5", x[:450], y[:450], names, **attrs)
  write_features(tmp_path / "test_features.h5", x[450:], y[450:], names, **attrs)
  result = logreg.train(str(tmp_path), Cs=(0.1, 1, 10), echo=lambda s: None)
  assert result["rank1"] >= 0.9 and result["count"] == 150 and result["C"] in (0.1, 1, 10)
  assert set(result["grid"]) == {"0.1", "1", "10"}
  model, saved = logreg.load(str(tmp_path / "logreg.h5"))
  assert saved["layer"] == "block5_pool" and saved["class_names"] == names
  refit = logreg.fit(x[:450], y[:450], Cs=(result["C"],)).best_estimator_
  np.testing.assert_array_equal(model.predict(x[450:]), refit.predict(x[450:]))
  again = logreg.evaluate_saved(str(tmp_path / "logreg.h5"), str(tmp_path), echo=lambda s: None)
  assert again["rank1"] == result["rank1"]
  other = tmp_path / "other"
  other.mkdir()
  write_features(other / "test_features.h5", x[450:, :20], y[450:], names, **attrs)
  with pytest.raises(UserError, match="20 features per image, the regression expects 40"):
    logreg.evaluate_saved(str(tmp_path / "logreg.h5"), str(other))
  write_features(other / "test_features.h5", x[450:], y[450:], names, **{**attrs, "model": "resnet50_keras"})
  with pytest.raises(UserError, match="holds features of model 'resnet50_keras'"):
    logreg.evaluate_saved(str(tmp_path / "logreg.h5"), str(other))


def image(path, rgb, rng):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  noise = rng.integers(-40, 40, (32, 32, 3))
  Image.fromarray(np.clip(np.array(rgb) + noise, 0, 255).astype(np.uint8)).save(path)


def test_build_extract_and_logreg_commands_end_to_end(tmp_path, forkserver):
  """A folder of red and blue images -> experiments.build_dataset -> extract_features with a Keras
  ResNet50 file (random weights, 32x32 inputs) -> train_logreg, as the README lists them. (Forks
  of the preloaded fork server: real processes of the real entry points, without ~4 s of imports each.)"""

  def cli(module, *args):
    proc = forkserver.run(list(args), module=module)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc

  rng = np.random.default_rng(0)
  for label, rgb in (("blue", (40, 60, 200)), ("red", (200, 50, 40))):
    for i in range(30):
      image(str(tmp_path / "src" / label / f"{i}.png"), rgb, rng)
  weights = str(tmp_path / "resnet50_notop.weights.h5")
  randomize(keras.applications.ResNet50(weights=None, include_top=False, pooling="avg")).save_weights(weights)
  data, out = str(tmp_path / "hdf5"), str(tmp_path / "features")
  cli("experiments.build_dataset", "--layout=folder", f"--src={tmp_path / 'src'}", f"--out={data}", "--size=32",
      "--val=0.2", "--test=0.3")
  proc = cli("experiments.extract_features", "--model=resnet50_keras", f"--keras_weights={weights}",
             f"--data={data}", "--image_size=32", f"--out={out}", "--batch_size=8")
  assert "train: " in proc.stdout and "-> 2048 features each" in proc.stdout
  x, y, names, attrs = features.read_features(os.path.join(out, "test_features.h5"))
  assert x.shape == (len(y), 2048) and names == ["blue", "red"] and attrs["layer"] == "features"
  proc = cli("experiments.train_logreg", f"--features={out}", "--C=0.1,1,10")
  assert "best C = " in proc.stdout and "precision" in proc.stdout
  result = json.loads(open(os.path.join(out, "logreg_evaluation.json")).read())
  assert result["rank1"] >= 0.9 and result["count"] == len(y)
  again = forkserver.run(["--model=resnet50_keras", f"--keras_weights={weights}", f"--data={data}", f"--out={out}"],
                         module="experiments.extract_features")
  assert again.returncode == 2 and again.stderr.strip().splitlines() == [
      f"error: --out={out} already holds train_features.h5; pass --overwrite or choose another --out"]
