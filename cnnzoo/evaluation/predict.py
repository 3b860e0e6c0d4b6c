"""Classify image files with a trained run or a Keras weight file: the top-5 classes and their
probabilities per image, with the preprocessing the model was trained with.

A run's class names come from its dataset (WORKDIR/dataset.json). An ImageNet-1000 head is named by
the synset ids tensorflow-datasets ships for imagenet2012 (`n01440764`, ...), which a
`--class_names` file turns into words: Tiny-ImageNet's words.txt (`n01443537<TAB>goldfish, ...`)
or a plain list with one name per line.
"""

import dataclasses
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from cnnzoo.errors import UserError
from cnnzoo import models
from cnnzoo.data.ops import make_preprocess, model_image_shape
from cnnzoo.training.restore import choose_epoch
from cnnzoo.training import workdir as workdir_lib
from cnnzoo.training.checkpoint import Checkpointer
from cnnzoo.transfer.features import MODES, preprocess_input
from cnnzoo.models.keras_weights import load_keras_weights
from cnnzoo.data.images import ImageTooLarge, NotAFile, open_image, resize_image
from cnnzoo.kernels import dispatch


@dataclasses.dataclass
class Predictor:
  apply: object  # uint8 (N, h, w, C) -> probabilities (N, classes)
  image_shape: tuple  # (h, w, C) the files are resized to
  class_names: list
  resize_mode: str  # data.images.resize_image mode: aspect (shorter side, center crop) | plain
  description: str


def imagenet_synsets() -> list[str]:
  """The 1,000 ImageNet synset ids in class order, from tensorflow-datasets' imagenet2012 labels."""
  import tensorflow_datasets
  path = os.path.join(os.path.dirname(tensorflow_datasets.__file__), "datasets", "imagenet2012", "labels.txt")
  with open(path) as f:
    return [line.strip() for line in f if line.strip()]


def read_class_names(path: str, class_names: list) -> list:
  """Names from `path`: `ID<TAB>NAME` lines (words.txt) rename the matching ids; plain lines
  replace the names in order (there must be one per class)."""
  try:
    with open(path) as f:
      lines = [line.rstrip("\n") for line in f if line.strip()]
  except OSError as e:
    raise UserError(f"--class_names={path}: cannot read it ({e.strerror})") from None
  if lines and all("\t" in line for line in lines):
    words = dict(line.split("\t", 1) for line in lines)
    return [words.get(c, c) for c in class_names]
  if len(lines) != len(class_names):
    raise UserError(f"--class_names={path} has {len(lines)} names; the model has {len(class_names)} classes")
  return lines


def from_run(workdir: str, checkpoint: str = "best") -> Predictor:
  """The model of a cnnzoo run at `checkpoint`, with the run's evaluation views and normalization."""
  config = workdir_lib.read_config(workdir)
  info_path = os.path.join(workdir, "dataset.json")
  if not os.path.isfile(info_path):
    raise UserError(f"{workdir} has no dataset.json (a run of an older cnnzoo): evaluate it with experiments.evaluate")
  try:
    with open(info_path, encoding="utf-8") as f:
      info = json.load(f)
    shape = tuple(int(d) for d in info["image_shape"])
    names = [str(n) for n in info["class_names"]]
    if len(shape) != 3 or not names or "mean" not in info or "std" not in info:
      raise ValueError("image_shape (H, W, C), class_names, mean and std")
  except (ValueError, KeyError, TypeError) as e:  # a truncated or hand-edited file: JSON, keys, types
    raise UserError(f"{info_path} is damaged ({type(e).__name__}: {' '.join(str(e).split())[:120]}); "
                    "train the run again, or evaluate it with experiments.evaluate") from None
  model = models.create_model(config.model.name, num_classes=len(names),
                              dtype=jnp.dtype(config.model.dtype), **config.model.kwargs.to_dict())
  seen = model_image_shape(config.data, shape)
  abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, *seen)), train=False))
  ck = config.checkpoint
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), read_only=True, best_metric=ck.best_metric or None,
                      best_mode=ck.best_mode)
  try:
    epoch = choose_epoch(ckpt, checkpoint, workdir)
    target = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                          {"params": abstract["params"], "batch_stats": abstract.get("batch_stats", {})})
    variables = ckpt.restore_weights(epoch, target)
  finally:
    ckpt.close()
  mean_image = None
  if config.data.normalize == "pixel_mean":
    import numpy as np
    path = os.path.join(workdir, workdir_lib.MEAN_IMAGE)
    if not os.path.isfile(path):
      raise UserError(f"{workdir} normalizes by the training mean image but has no mean_image.npy")
    mean_image = np.load(path)
  _, val_pre, _ = make_preprocess(config.data, info["mean"], info["std"], shape, mean_image)

  def apply(images):
    views = val_pre(images)  # (V, N, h, w, C): the run's validation views
    v, n = views.shape[:2]
    logits = model.apply(variables, views.reshape(v * n, *views.shape[2:]), train=False)
    return jnp.mean(jax.nn.softmax(logits.astype(jnp.float32).reshape(v, n, -1), axis=-1), axis=0)

  forward = dispatch.bound(dispatch.active().for_forward(models.model_info(config.model.name).forward_kernels), apply)
  return Predictor(jax.jit(forward), shape, names, "aspect", f"{config.model.name} ({workdir} epoch {epoch})")


def from_keras(model_name: str, path: str, preprocess: str | None = None) -> Predictor:
  """A zoo model with its classifier, weights from a Keras .h5 file, Keras' preprocess_input."""
  model, variables = load_keras_weights(path, model_name)
  mode = preprocess or models.model_info(model_name).preprocess
  if mode not in MODES:
    raise UserError(f"--preprocess={mode}: choose one of {', '.join(MODES)}")
  shape = tuple(models.model_info(model_name).input_shape)
  classes = int(jax.eval_shape(lambda: model.apply(variables, jnp.zeros((1, *shape)), train=False)).shape[-1])
  names = imagenet_synsets() if classes == 1000 else [str(i) for i in range(classes)]
  apply = lambda images: jax.nn.softmax(
      model.apply(variables, preprocess_input(images, mode), train=False).astype(jnp.float32), axis=-1)
  forward = dispatch.bound(dispatch.active().for_forward(models.model_info(model_name).forward_kernels), apply)
  return Predictor(jax.jit(forward), shape, names, "plain", f"{model_name} ({os.path.basename(path)})")


def load_images(paths, shape, mode, warn=None):
  """(uint8 array of the files that decode, their paths); each one that does not: one warning line."""
  from PIL import Image
  warn = warn or (lambda m: print(f"warning: {m}", file=sys.stderr, flush=True))
  images, kept = [], []
  for p in paths:
    try:
      im = open_image(p, shape[2])
      array = resize_image(im, shape[0], mode) if shape[0] == shape[1] else \
          np.asarray(im.resize((shape[1], shape[0]), Image.BILINEAR), np.uint8)
    except (ImageTooLarge, NotAFile) as e:
      warn(f"{p}: skipped, {e}")
      continue
    except (OSError, ValueError, SyntaxError) as e:  # PIL's errors for unreadable / truncated files
      warn(f"{p}: skipped, it does not decode as an image ({e.__class__.__name__})")
      continue
    images.append(array.reshape(shape))
    kept.append(p)
  return (np.stack(images) if images else np.zeros((0, *shape), np.uint8)), kept


def predict_files(predictor: Predictor, paths, top: int = 5, batch_size: int = 32, echo=print, warn=None) -> list:
  """Prints and returns [(path, [(class name, probability), ...top])] for every file that decodes."""
  images, kept = load_images(paths, predictor.image_shape, predictor.resize_mode, warn)
  results = []
  for start in range(0, len(kept), batch_size):
    batch = images[start:start + batch_size]
    real = len(batch)
    if real < batch_size and len(kept) > batch_size:  # one compiled shape once batches are full
      batch = np.concatenate([batch, np.zeros((batch_size - real, *batch.shape[1:]), batch.dtype)])
    probs = np.asarray(predictor.apply(batch))[:real]
    for path, p in zip(kept[start:start + real], probs):
      order = np.argsort(-p, kind="stable")[:top]
      best = [(predictor.class_names[i], float(p[i])) for i in order]
      results.append((path, best))
      echo(path)
      for rank, (name, prob) in enumerate(best, 1):
        echo(f"  {rank}. {name:40s} {prob:.4f}")
  if not kept:
    raise UserError("none of the images could be read")
  return results
