"""Backbone features -> HDF5, the first half of the journal's transfer learning (seed 000: VGG16's
block5_pool on Flowers-17 and ResNet50's pooled features on Dogs-vs-Cats, then a logistic
regression, see logreg.py).

Images are preprocessed the way the weights expect: Keras' `preprocess_input` modes
  caffe  RGB -> BGR, minus the ImageNet mean (103.939, 116.779, 123.68); VGG16/19, ResNet50/101/152
  tf     x / 127.5 - 1; ResNetV2, InceptionV3, Inception-ResNet-v2
  torch  x / 255, minus (0.485, 0.456, 0.406), over (0.229, 0.224, 0.225); the torchvision forms
or, for a cnnzoo run, the run's own evaluation preprocessing. Any named intermediate output can be
taken (`layer_names` lists them): a layer's module name (`block5_conv3`), a value the model sows
(`features`, the pooled features; `block5_pool`; `conv5`; `stage3`; `mixed7`), flattened per image.
"""

import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cnnzoo.errors import UserError
from cnnzoo import models
from cnnzoo.models.keras_weights import load_keras_weights
from cnnzoo.data.ops import make_preprocess
from cnnzoo.training.restore import restore_run
from cnnzoo import paths
from cnnzoo.data import sources
from cnnzoo.data.dataset import DATASETS
from cnnzoo import progress
from cnnzoo.kernels import dispatch

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCH_MEAN, TORCH_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
MODES = ("caffe", "tf", "torch", "scale")
# model.keras_weights of a features run that takes the base's random initialization (Keras' weights=None)
RANDOM_WEIGHTS = "random"


def preprocess_input(images, mode: str):
  """Keras' `preprocess_input(x, mode)` on uint8 (or float 0..255) RGB images, NHWC float32."""
  x = jnp.asarray(images, jnp.float32)
  if mode == "caffe":
    return x[..., ::-1] - jnp.asarray(CAFFE_MEAN_BGR, jnp.float32)
  if mode == "tf":
    return x / 127.5 - 1.0
  if mode == "torch":
    return (x / 255.0 - jnp.asarray(TORCH_MEAN, jnp.float32)) / jnp.asarray(TORCH_STD, jnp.float32)
  if mode == "scale":
    return x / 255.0
  raise UserError(f"--preprocess={mode}: choose one of {', '.join(MODES)}")


@dataclasses.dataclass
class Extractor:
  """A model, its variables and how images reach it: `images (uint8 NHWC) -> features (N, D)`."""
  model: object
  variables: dict
  preprocess: object  # uint8 NHWC (at image_size) -> float32 model input
  image_size: tuple  # (h, w) the model gets; other sizes are resized to it
  layer: str
  description: str
  model_name: str = ""  # the registry name: its entry says which kernels its forward-only programs take

  @functools.cached_property
  def jitted(self):
    """`apply` compiled once per extractor (every split and batch reuses it)."""
    preference = models.model_info(self.model_name).forward_kernels if self.model_name else ""
    return jax.jit(dispatch.bound(dispatch.active().for_forward(preference), self.apply))

  def apply(self, images):
    x = jnp.asarray(images)
    if tuple(x.shape[1:3]) != tuple(self.image_size):
      x = jax.image.resize(x.astype(jnp.float32), (x.shape[0], *self.image_size, x.shape[3]), "bilinear")
    out = _layer_output(self.model, self.variables, self.preprocess(x), self.layer)
    return out.reshape(out.shape[0], -1).astype(jnp.float32)


def _intermediates(model, variables, x):
  _, state = model.apply(variables, x, train=False, capture_intermediates=True, mutable=["intermediates"])
  named = {}
  for path, value in jax.tree_util.tree_flatten_with_path(state["intermediates"],
                                                          is_leaf=lambda v: isinstance(v, tuple))[0]:
    keys = [str(getattr(k, "key", k)) for k in path if str(getattr(k, "key", k)) != "__call__"]
    value = value[0] if isinstance(value, tuple) else value
    if keys and hasattr(value, "shape"):
      named["/".join(keys)] = value
  return named


def _aliases(name: str) -> list[str]:
  """Keras names for what a cnnzoo model sows: VGG's `block5_pool` is our `block5` (after the pool)."""
  out = [name]
  if name.endswith("_pool") and name.startswith("block"):
    out.append(name[:-len("_pool")])
  if name in ("avg_pool", "global_average_pooling2d", "pooled"):
    out.append("features")
  return out


def layer_names(model, variables, image_shape) -> list[str]:
  """The names `--layer` accepts for `model` (from one traced call; nothing computed)."""
  x = jax.ShapeDtypeStruct((1, *image_shape), jnp.float32)
  shapes = jax.eval_shape(lambda v, x: _intermediates(model, v, x), variables, x)  # {name: shape}
  return sorted(shapes)


def _layer_output(model, variables, x, layer):
  named = _intermediates(model, variables, x)
  for candidate in _aliases(layer):
    if candidate in named:
      return named[candidate]
    tails = [k for k in named if k.split("/")[-1] == candidate]
    if len(tails) == 1:
      return named[tails[0]]
  raise UserError(f"--layer={layer}: no such layer or output; there are {', '.join(sorted(named)[:60])}"
                  + (" ..." if len(named) > 60 else ""))


def check_layer(extractor: Extractor, channels: int) -> int:
  """The feature width of `extractor`'s layer (a UserError listing the names if it has none)."""
  x = jax.ShapeDtypeStruct((1, *extractor.image_size, channels), jnp.uint8)
  return int(jax.eval_shape(extractor.apply, x).shape[1])


def check_fits(extractor: Extractor, image_shape) -> int:
  """`check_layer` on images of `image_shape`, a shape error as one UserError naming both."""
  try:
    return check_layer(extractor, int(image_shape[-1]))
  except UserError:
    raise
  except Exception as e:  # noqa: BLE001 -- a shape error: the images do not fit the model
    raise UserError(f"the data's {tuple(image_shape)} images do not fit {extractor.description}: "
                    f"{str(e).strip().splitlines()[-1][:200]}") from None


def from_keras_weights(path: str, model_name: str, layer: str, mode: str | None,
                       image_size: int = 0) -> Extractor:
  """A zoo model (convolutional base, no classifier) with the weights of a Keras .h5 file, fed
  image_size x image_size images (0: the model's default input, e.g. 224 for VGG16)."""
  model, variables = load_keras_weights(path, model_name, include_top=False)
  mode = mode or models.model_info(model_name).preprocess
  if mode not in MODES:
    raise UserError(f"--preprocess={mode}: choose one of {', '.join(MODES)}")
  size = (image_size, image_size) if image_size else tuple(models.model_info(model_name).input_shape[:2])
  return Extractor(model, variables, lambda x: preprocess_input(x, mode), size, layer,
                   f"{model_name} ({os.path.basename(path)}, preprocess {mode})", model_name)


def from_run(workdir: str, layer: str, checkpoint: str = "latest") -> Extractor:
  """The model of a cnnzoo run, its checkpoint and its own evaluation preprocessing."""
  config, run, state, epoch = restore_run(workdir, checkpoint)
  ds = run.dataset
  _, val_pre, _ = make_preprocess(config.data, ds.mean, ds.std, ds.image_shape, ds.mean_image)
  first_view = lambda x: val_pre(x)[0]  # (views, N, h, w, C): the center / whole-image view
  return Extractor(run.model, state.variables(), first_view, tuple(ds.image_shape[:2]), layer,
                   f"{config.model.name} ({workdir} epoch {epoch})", config.model.name)


def extract(extractor: Extractor, images, batch_size: int = 64, progress=None):
  """Yields (start, features) for consecutive batches of `images` (uint8 NHWC, array or h5py)."""
  fn = extractor.jitted
  n = len(images)
  for start in range(0, n, batch_size):
    batch = np.asarray(images[start:start + batch_size])
    real = len(batch)
    if real < batch_size:  # one compiled shape: pad the last batch, drop the padding after
      batch = np.concatenate([batch, np.zeros((batch_size - real, *batch.shape[1:]), batch.dtype)])
    out = np.asarray(fn(batch))[:real]
    if progress is not None:
      progress(real)
    yield start, out


def write_features(path: str, extractor: Extractor, images, labels, class_names, batch_size: int = 64,
                   progress=None, attrs=None) -> tuple[int, int]:
  """Writes `features` (N x D float32, batch by batch), `labels` and `class_names` to `path`
  through a temporary file renamed at the end: never a half-written features file."""
  import h5py
  dim = check_layer(extractor, int(images.shape[-1]))
  with paths.atomic(path) as tmp, h5py.File(tmp, "w") as f:
    feats = f.create_dataset("features", (len(images), dim), np.float32)
    f["labels"] = np.asarray(labels, np.int32)
    f.attrs["class_names"] = [str(c).encode() for c in class_names]
    for key, value in (attrs or {}).items():
      f.attrs[key] = value
    for start, out in extract(extractor, images, batch_size, progress):
      feats[start:start + len(out)] = out
  return len(images), dim


def read_features(path: str):
  """(features, labels, class_names, attrs) of a features file written by write_features."""
  import h5py
  try:
    f = h5py.File(path, "r")
  except OSError as e:
    raise UserError(f"cannot read {path} as HDF5 ({e})") from None
  with f:
    missing = [k for k in ("features", "labels") if k not in f] + [a for a in ("class_names",) if a not in f.attrs]
    if missing:
      raise UserError(f"{path} is not a features file of experiments.extract_features (no {', '.join(missing)})")
    names = [c.decode() if isinstance(c, bytes) else str(c) for c in np.atleast_1d(f.attrs["class_names"])]
    attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items() if k != "class_names"}
    try:
      features, labels = np.asarray(f["features"]), np.asarray(f["labels"])
    except (OSError, ValueError) as e:  # a damaged chunk: h5py opens the file, the read fails
      raise UserError(f"cannot read {path}: it is damaged ({e}); extract the features again") from None
  problem = features_problem(features, labels, len(names))
  if problem:
    raise UserError(f"{path}: {problem}; extract the features again with experiments.extract_features")
  return features, labels, names, attrs


def features_problem(features, labels, num_classes: int) -> str | None:
  """Why a features file's arrays cannot be fitted or scored, or None."""
  if features.ndim != 2 or not np.issubdtype(features.dtype, np.number):
    return f"features must be numbers shaped (images, features), found {features.dtype} {features.shape}"
  if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
    return f"labels must be one integer per image, found {labels.dtype} {labels.shape}"
  if len(labels) != len(features):
    return f"{len(features)} feature rows but {len(labels)} labels"
  if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
    return f"labels run {labels.min()}..{labels.max()}, outside the {num_classes} classes"
  bad = int(np.count_nonzero(~np.isfinite(features).all(axis=1)))
  if bad:
    return f"{bad} of {len(features)} images have NaN or infinite features (a diverged or damaged model)"
  return None


SPLITS = ("train", "val", "test")


def open_dataset(data: str):
  """--data: a builder HDF5 folder, or a registered dataset's name (digits, fashion_mnist, mnist,
  one's own) or a tensorflow-datasets name, loaded as config.data.name loads it, with its settings'
  defaults and its own validation split where it has one (val_fraction 0 where the dataset takes 0)."""
  if os.path.isdir(data):
    name, given = "hdf5", {"dir": data}
  elif os.sep in data or data.startswith("."):
    raise UserError(f"--data={data}: no such folder (a builder output folder, a dataset name or a tfds name)")
  else:
    name, given = data, {}
  entry = DATASETS.get(name)
  settings = entry.defaults()
  if "val_fraction" in settings and entry.settings["val_fraction"].problem(0.0) is None:
    settings["val_fraction"] = 0.0
  config = ml_collections.ConfigDict({"data": {"name": name, "augment": "none", "how_to_get": "", "classes": (),
                                               **settings, **given},
                                      "model": {"input_shape": (), "num_classes": 0}})
  return sources.load_dataset(config)


def output_path(out: str, split: str) -> str:
  return os.path.join(out, f"{split}_features.h5")


def run(*, model=None, keras_weights=None, workdir=None, checkpoint="latest", data, layer="features",
        preprocess=None, image_size=0, out, batch_size=64, splits=SPLITS, list_layers=False,
        overwrite=False, echo=print) -> dict:
  """experiments.extract_features: checks everything, then writes OUT/SPLIT_features.h5 per split."""
  paths.check_writable(out, "--out")
  taken = [output_path(out, s) for s in splits if os.path.exists(output_path(out, s))]
  if taken and not overwrite and not list_layers:
    raise UserError(f"--out={out} already holds {os.path.basename(taken[0])}; pass --overwrite or choose another --out")
  if keras_weights:
    extractor = from_keras_weights(keras_weights, model, layer, preprocess, image_size)
  else:
    extractor = from_run(workdir, layer, checkpoint)
  ds = open_dataset(data)
  channels = int(ds.image_shape[-1])
  if list_layers:
    shape = (*extractor.image_size, channels)
    for name in layer_names(extractor.model, extractor.variables, shape):
      echo(name)
    return {}
  check_fits(extractor, ds.image_shape)
  os.makedirs(out, exist_ok=True)
  written = {}
  for split in splits:
    part = getattr(ds, split)
    with progress.progress(len(part), f"{split} features", "img", final=False) as bar:
      n, dim = write_features(output_path(out, split), extractor, part.images, part.labels, ds.class_names,
                              batch_size, bar.update,
                              {"model": extractor.description, "layer": layer, "dataset": ds.name})
    written[split] = (n, dim)
    echo(f"{split}: {n} images -> {dim} features each: {output_path(out, split)}")
  return written
