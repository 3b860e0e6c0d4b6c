"""The journal's feature-extraction runs as one command (seed 000: VGG16's block5_pool features of
Flowers-17 -> logistic regression 0.89; ResNet50's pooled features of Dogs-vs-Cats -> 0.99).

A config with `features.use=True` is not trained: `python -m experiments.main --config=...` runs
what experiments.extract_features and experiments.train_logreg do, into the workdir:
  WORKDIR/features/{train,val,test}_features.h5   the base's features of every split
  WORKDIR/logreg.h5, logreg_evaluation.json, logreg_report.txt
  WORKDIR/results.json                             test_accuracy (rank-1), as a trained run's
The same command again reuses the features files that came from the same model, layer and data,
and fits the regression again.
"""

import os
import time

import numpy as np

from cnnzoo.errors import ConfigError, UserError
from cnnzoo import models
from cnnzoo import paths, progress, runtime
from cnnzoo.kernels import dispatch
from cnnzoo.training import components
from cnnzoo.training.build import dataset_of
from cnnzoo.training import workdir as workdir_lib
from cnnzoo.transfer import features, logreg

FEATURES_DIR = "features"


def _extractor(config, channels: int):
  """The Extractor of the config: model.keras_weights, a Keras .h5 file, or the word `random` (Keras'
  `weights=None`): the base's own random initialization from config.seed -- a random-features
  baseline for what the pretrained weights add, and what the smoke runs use (no weight file)."""
  f = config.features
  size = int(config.model.input_shape[0]) if config.model.input_shape else 0
  if config.model.keras_weights and config.model.keras_weights != features.RANDOM_WEIGHTS:
    if not os.path.isfile(config.model.keras_weights):
      raise UserError(f"model.keras_weights={config.model.keras_weights}: no such file; this config needs the "
                      f"ImageNet weights of {config.model.name} ({config.data.how_to_get or 'see its docstring'})")
    return features.from_keras_weights(config.model.keras_weights, config.model.name, f.layer,
                                       f.preprocess or None, size)
  if not config.model.keras_weights:
    raise ConfigError(f"features.use needs model.keras_weights: a Keras .h5 file of {config.model.name}, or "
                      f"`{features.RANDOM_WEIGHTS}` for its random initialization")
  import jax
  import jax.numpy as jnp
  info = models.model_info(config.model.name)
  shape = tuple(config.model.input_shape or info.input_shape)
  model = models.create_model(config.model.name, num_classes=1, include_top=False, **config.model.kwargs.to_dict())
  variables = jax.jit(lambda: model.init(jax.random.key(config.seed), jnp.zeros((1, *shape[:2], channels))))()
  mode = f.preprocess or info.preprocess
  return features.Extractor(model, variables, lambda x: features.preprocess_input(x, mode), shape[:2], f.layer,
                            f"{config.model.name} (random initialization, seed {config.seed}, preprocess {mode})",
                            config.model.name)


def _reusable(path: str, attrs: dict, count: int) -> bool:
  """Whether the features file at `path` was written from the same extraction (and is whole)."""
  if not os.path.isfile(path):
    return False
  try:
    x, _, _, saved = features.read_features(path)
  except UserError:
    return False
  return len(x) == count and all(saved.get(k) == v for k, v in attrs.items())


def run(config, workdir: str, command: dict | None = None, echo=print) -> dict:
  """Features of every split, the seed's logistic regression on them, results.json; returns it."""
  f = config.features
  cs = [float(c) for c in f.C]
  if not cs or any(not np.isfinite(c) or c <= 0 for c in cs):
    raise ConfigError(f"features.C={tuple(f.C)}: every C must be a positive number")
  if f.max_iter < 1 or f.jobs == 0 or f.jobs < -1:
    raise ConfigError("features.max_iter must be >= 1 and features.jobs positive or -1 (every core)")
  paths.check_writable(workdir, "--workdir")
  models.model_info(config.model.name)  # an unknown model: one line, before the data loads
  components.resolve(config)  # the dataset's settings, as config.json records them
  ds = dataset_of(config)
  extractor = _extractor(config, int(ds.image_shape[-1]))
  dim = features.check_fits(extractor, ds.image_shape)
  began = time.perf_counter()
  out = os.path.join(workdir, FEATURES_DIR)
  attrs = {"model": extractor.description, "layer": f.layer, "dataset": ds.name}
  with workdir_lib.lock(workdir):
    status = workdir_lib.Status(workdir, command)
    status.write("running")
    workdir_lib.write_config(workdir_lib.config_json(config), workdir, 0)
    os.makedirs(out, exist_ok=True)
    echo(f"features of {config.model.name} at {f.layer!r}: {dim} per image; {ds.name}: "
         f"{len(ds.train)} train / {len(ds.val)} val / {len(ds.test)} test images")
    for split in ("train", "val", "test"):
      part, path = getattr(ds, split), features.output_path(out, split)
      if not len(part):
        continue
      if _reusable(path, attrs, len(part)):
        echo(f"{split}: {path} is already there (same model, layer and data): reused")
        continue
      with progress.progress(len(part), f"{split} features", "img", final=False) as bar:
        features.write_features(path, extractor, part.images, part.labels, ds.class_names, f.batch_size,
                                bar.update, attrs)
      echo(f"{split}: {len(part)} images -> {path}")
    result = logreg.train(out, cs, f.jobs, f.max_iter, workdir, echo=echo)
    results = {"kind": "features_logreg", "test_accuracy": result["rank1"], "test_top5": result["rank5"],
               "test_count": result["count"], "C": result["C"], "cv_accuracy": result["cv_accuracy"],
               "features": dim, "seconds": time.perf_counter() - began,
               "hardware": runtime.hardware(dispatch.active().note()), "kernels": dispatch.active().name}
    paths.write_json(os.path.join(workdir, "results.json"), results)
    status.write("finished")
  return results
