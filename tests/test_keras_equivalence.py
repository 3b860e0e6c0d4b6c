"""Keras 3 as an independent reference: build keras.applications models with random weights, save
them, import the file with cnnzoo.transfer.load_keras_weights, and require equal logits."""

import os
import re

import h5py
import jax
import numpy as np
import pytest

from conftest import fast_keras

keras = fast_keras()  # requirements-dev.txt; a missing keras is a failure, not a skip

from cnnzoo.transfer import KerasWeightsError, load_keras_weights, read_keras_file  # noqa: E402

# The default suite checks one model per code path: VGG16, ResNet50, ResNet50V2 (and below the
# Inceptions). VGG19 and ResNet101/152 (V1 and V2) run the same code with more convs / blocks per
# stage; their parameter counts are pinned to Keras' in test_models.py (a block too many or too few
# shows there). Their logits are checked too with CNNZOO_ALL_KERAS=1 (about 2 minutes more):
#   CNNZOO_ALL_KERAS=1 python -m pytest tests/test_keras_equivalence.py -q
CASES = [("VGG16", "vgg16", 224), ("ResNet50", "resnet50_keras", 112), ("ResNet50V2", "resnet50v2_keras", 112)]
DEEPER = [("VGG19", "vgg19", 224), ("ResNet101", "resnet101_keras", 112), ("ResNet152", "resnet152_keras", 112),
          ("ResNet101V2", "resnet101v2_keras", 112), ("ResNet152V2", "resnet152v2_keras", 112)]
if os.environ.get("CNNZOO_ALL_KERAS"):
  CASES += DEEPER
# VGG's classifier flattens 7x7x512: 224 only. The ResNets pool globally: every layer and weight is
# the same at 112 as at 224, at a quarter of the cost.


def random_like(rng, w, path):
  if "variance" in path:
    return rng.uniform(0.5, 1.5, w.shape)
  if w.ndim >= 2:  # kernels: variance-preserving scale keeps the logits O(1), so 1e-4 is meaningful
    return rng.normal(0, np.sqrt(1.0 / np.prod(w.shape[:-1])), w.shape)
  return rng.normal(0, 0.1, w.shape)  # biases, BN gamma / beta / moving mean


def randomize(model, seed=0):
  """Random weights everywhere, BatchNorm moving statistics included (variance > 0)."""
  rng = np.random.default_rng(seed)
  for layer in model.layers:
    weights = layer.get_weights()
    if weights:
      layer.set_weights([random_like(rng, w, v.path).astype(np.float32)
                         for w, v in zip(weights, layer.weights)])
  return model


def keras_logits(reference, x):
  """`reference(x)` in inference mode as one jitted program. Called eagerly, Keras' JAX backend
  compiles one small XLA program per op and shape: 6.7 s for ResNet50 on 2 cores, 1.9 s jitted
  (and the same logits to 6e-8)."""
  trainable = [v.value for v in reference.trainable_variables]
  frozen = [v.value for v in reference.non_trainable_variables]
  call = jax.jit(lambda t, f, x: reference.stateless_call(t, f, x, training=False)[0])
  return np.asarray(call(trainable, frozen, x))


def logits(model, variables, x):
  return np.asarray(jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, x))


def assert_logits_close(ours, expected):
  """Two float32 programs (Keras' and ours) agree to reassociation noise, which grows with the
  logits' scale: 1e-4 per unit of the largest logit (~1,000 ulps at 1.0: the networks are up to
  ~150 layers with reductions of up to 25,088 terms). A weight mapped to the wrong layer or
  transposed moves logits by a sizeable fraction of their scale, 100x more."""
  scale = max(1.0, float(np.abs(expected).max()))
  np.testing.assert_allclose(ours, expected, atol=1e-4 * scale, rtol=0)


@pytest.mark.parametrize("keras_name,ours,size", CASES)
def test_logits_equal_keras_after_import(keras_name, ours, size, tmp_path):
  reference = randomize(getattr(keras.applications, keras_name)(weights=None, classifier_activation=None,
                                                                input_shape=(size, size, 3)))
  path = str(tmp_path / f"{ours}.weights.h5")
  reference.save_weights(path)
  x = np.random.default_rng(1).uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
  expected = keras_logits(reference, x)
  del reference
  assert 0.05 < np.abs(expected).max() < 100  # a meaningful scale for the 1e-4 tolerance
  model, variables = load_keras_weights(path, ours)
  assert_logits_close(logits(model, variables, x), expected)


def keras2_names(model):
  """Keras 2 names of a fresh session: auto-named layers numbered from 1 in creation order
  (`conv2d_1`, `batch_normalization_1`, ...), as in the official weight files."""
  def split(name):
    m = re.fullmatch(r"(conv2d|batch_normalization|dense)(?:_(\d+))?", name)
    return (m.group(1), int(m.group(2) or 0)) if m else None
  auto = sorted((split(l.name), l.name) for l in model.layers if split(l.name))
  names, counters = {}, {}
  for (kind, _), name in auto:
    counters[kind] = counters.get(kind, 0) + 1
    names[name] = f"{kind}_{counters[kind]}"
  return names


def write_legacy(model, path, top=True):
  """Writes `model`'s weights in the Keras 2 layout (layer_names / weight_names attributes, layers in
  model.layers order, auto-named layers renamed as a fresh Keras 2 session names them)."""
  rename = keras2_names(model)
  with h5py.File(path, "w") as f:
    layers = [l for l in model.layers if top or not l.name.startswith(("fc", "predictions"))]
    f.attrs["layer_names"] = [rename.get(l.name, l.name).encode() for l in layers]
    f.attrs["backend"], f.attrs["keras_version"] = b"tensorflow", b"2.2.4"
    for layer in layers:
      lname = rename.get(layer.name, layer.name)
      g = f.create_group(lname)
      names = [f"{lname}/{v.name}:0".encode() for v in layer.weights]
      g.attrs["weight_names"] = names
      for name, w in zip(names, layer.get_weights()):
        g[name.decode()] = w


def test_legacy_notop_vgg16_file_like_the_seeds_use(tmp_path):
  """vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5: the seeds' transfer-learning backbone."""
  reference = randomize(keras.applications.VGG16(weights=None, include_top=False, pooling="avg"))
  path = str(tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
  write_legacy(reference, path)
  layers, named = read_keras_file(path)
  assert named and [l.name for l in layers][:2] == ["block1_conv1", "block1_conv2"] and len(layers) == 13
  x = np.random.default_rng(2).uniform(-1, 1, (2, 224, 224, 3)).astype(np.float32)
  model, variables = load_keras_weights(path, "vgg16", include_top=False)
  assert_logits_close(logits(model, variables, x), keras_logits(reference, x))
  assert sum(v.size for v in jax.tree.leaves(variables)) == 14_714_688


def test_legacy_resnet50_with_top_and_batchnorm(tmp_path):
  reference = randomize(keras.applications.ResNet50(weights=None, classifier_activation=None), seed=3)
  path = str(tmp_path / "resnet50_legacy.h5")
  write_legacy(reference, path)
  x = np.random.default_rng(4).uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)
  model, variables = load_keras_weights(path, "resnet50_keras")
  assert_logits_close(logits(model, variables, x), keras_logits(reference, x))


def test_mismatched_file_names_the_first_layer_that_does_not_fit(tmp_path):
  reference = keras.applications.VGG16(weights=None, include_top=False)
  path = str(tmp_path / "vgg16.weights.h5")
  reference.save_weights(path)
  with pytest.raises(KerasWeightsError, match="13 conv layers, vgg19 has 16"):
    load_keras_weights(path, "vgg19", include_top=False)
  write_legacy(reference, str(tmp_path / "legacy.h5"))
  with pytest.raises(KerasWeightsError, match="no layer named 'block3_conv4'"):
    load_keras_weights(str(tmp_path / "legacy.h5"), "vgg19", include_top=False)
  with pytest.raises(KerasWeightsError, match="no layer named 'block1_bn1'"):
    load_keras_weights(str(tmp_path / "legacy.h5"), "vgg16_bn", include_top=False)
  with h5py.File(tmp_path / "legacy.h5", "a") as f:  # a 1-channel first layer
    del f["block2_conv1/block2_conv1/kernel:0"]
    f["block2_conv1/block2_conv1/kernel:0"] = np.zeros((3, 3, 32, 128), np.float32)
  with pytest.raises(KerasWeightsError, match=r"'block2_conv1' does not fit cnnzoo's 'block2_conv1': "
                                              r"kernel \(3, 3, 32, 128\) in the file, \(3, 3, 64, 128\)"):
    load_keras_weights(str(tmp_path / "legacy.h5"), "vgg16", include_top=False)


def test_keras3_file_of_a_model_with_unknown_layer_order_is_refused(tmp_path):
  reference = keras.applications.ResNet50(weights=None)
  path = str(tmp_path / "r50.weights.h5")
  reference.save_weights(path)
  with pytest.raises(KerasWeightsError, match="not yet for ResNet: use the legacy .h5"):
    load_keras_weights(path, "resnet50")  # torchvision form: no Keras order (and no Keras names)


def test_not_a_keras_file(tmp_path):
  path = tmp_path / "x.h5"
  with h5py.File(path, "w") as f:
    f["images"] = np.zeros(3)
  with pytest.raises(KerasWeightsError, match="not a Keras weight file"):
    read_keras_file(str(path))
  (tmp_path / "y.h5").write_text("hello")
  with pytest.raises(KerasWeightsError, match="cannot read"):
    read_keras_file(str(tmp_path / "y.h5"))


@pytest.mark.parametrize("keras_name,ours", [("InceptionV3", "inception_v3"),
                                             ("InceptionResNetV2", "inception_resnet_v2")])
def test_inception_files_logits_equal_keras(keras_name, ours, tmp_path):
  """Names as in the official inception_v3_weights_tf_dim_ordering_tf_kernels.h5 (conv2d_1 ...)."""
  # 139x139 (any size from 75 works with the global-pool head): every layer and weight is the
  # same as at 299, at a quarter of the cost
  reference = randomize(getattr(keras.applications, keras_name)(
      weights=None, classifier_activation=None, input_shape=(139, 139, 3)), seed=5)
  path = str(tmp_path / f"{ours}_weights_tf_dim_ordering_tf_kernels.h5")
  write_legacy(reference, path)
  x = np.random.default_rng(6).uniform(-1, 1, (2, 139, 139, 3)).astype(np.float32)
  expected = np.asarray(reference.predict(x, verbose=0))  # one jitted program
  keras_path = str(tmp_path / f"{ours}.weights.h5")
  reference.save_weights(keras_path)
  del reference
  assert 0.05 < np.abs(expected).max() < 100
  (model, legacy), (_, keras3) = (load_keras_weights(w, ours) for w in (path, keras_path))
  forward = jax.jit(lambda v: model.apply(v, x, train=False))  # one compilation for both files
  for variables in (legacy, keras3):  # legacy names, then Keras 3's graph order
    assert_logits_close(np.asarray(forward(variables)), expected)
