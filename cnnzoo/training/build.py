"""`build(config)`: a `Run` -- the dataset, model, optimizer, initial state and the jitted steps of
a config -- checked and built before the first step (training.loop runs it)."""

import dataclasses
import functools
from typing import Callable

import flax.linen as nn
import jax
import numpy as np
import optax
from jax.sharding import Mesh

from cnnzoo import models, parallel
from cnnzoo.data import Dataset, Loader, load_dataset, sources
from cnnzoo.data.loader import fits_on_device, materialize
from cnnzoo.data.ops import check_augmentation, make_preprocess, model_image_shape
from cnnzoo.errors import ConfigError
from cnnzoo.kernels import dispatch
from cnnzoo.kernels.dispatch import XLA
from cnnzoo.models.heads import create_transfer_model
from cnnzoo.models.keras_weights import load_into_state
from cnnzoo.training import stages, steps, validate
from cnnzoo.training.description import Description, describe
from cnnzoo.training.measures import Measures
from cnnzoo.training.stages import Stage
from cnnzoo.training import state as state_lib
from cnnzoo.training import trainable as trainable_lib


@dataclasses.dataclass
class Step:
  """A jitted `fn(state, batch, source)` with the device-resident split (`Loader.source`, or None)
  its batches index bound: `step(state, batch)`."""
  jitted: object
  source: tuple | None = None

  def __call__(self, state, batch):
    return self.jitted(state, batch, self.source)


def _from_source(step):
  """`step(state, batch)` -> `fn(state, batch, source)` that first materializes index batches."""
  return lambda state, batch, source: step(state, materialize(batch, source))


@dataclasses.dataclass
class Chunk:
  """A jitted `fn(state, sums, batches, count, source)`: up to `size` train steps over stacked index
  batches of the device-resident split `source` in one call (steps.train_steps), `size` = the
  config's steps_per_dispatch: `chunk(state, sums, batches, count)`."""
  jitted: object
  source: tuple
  size: int

  def __call__(self, state, sums, batches, count: int):
    return self.jitted(state, sums, batches, np.int32(count), self.source)


STREAMED_CHUNK_BYTES = 256 << 20  # auto: the images of one chunk of streamed host batches, at most


def steps_per_dispatch(config, loader: Loader, mesh, kernels: dispatch.Kernels) -> int:
  """How many train steps one call runs (config.steps_per_dispatch; 0 = auto).

  auto: the steps between two progress-bar updates (monitor.log_every_steps), or the whole epoch
  without a bar, as one compiled loop -- over index batches of a device-resident split, or over
  host batches stacked STREAMED_CHUNK_BYTES at most at a time (Loader.chunks); one step a call
  over several CPU devices (XLA:CPU's collectives inside a loop body have hung there) and on the
  CPU without cnnzoo's convolution backward pass (kernels without `xla`, e.g.
  CNNZOO_CONV_KERNEL_GRAD=xla: XLA's own inside a loop body took MiniVGGNet's step from 0.3 to 17 s). On one CPU device every setting trains bitwise the same at XLA's default flags, with
  oneDNN's convolutions (the default) and with XLA's (tests/test_training.py); any N > 1 shares one
  compilation. (With oneDNN's, LLVM -O0 together with XLA's elemental emitters -- the suite's
  flags -- round Keras' Adam differently for N = 1 than N > 1.)"""
  k = config.get("steps_per_dispatch", 0)
  if k:
    return min(k, loader.steps_per_epoch)
  if jax.default_backend() == "cpu" and (mesh.devices.size > 1 or XLA not in kernels.backends):
    return 1
  every = config.monitor.log_every_steps if config.monitor.progress else loader.steps_per_epoch
  if not loader.on_device:  # K host batches are on the host and the device at once (twice, prefetched)
    image_bytes = int(np.prod(loader.split.images.shape[1:])) * loader.split.images.dtype.itemsize
    every = min(every, max(1, STREAMED_CHUNK_BYTES // (image_bytes * loader.batch_size)))
  return min(every, loader.steps_per_epoch)


@dataclasses.dataclass(frozen=True)
class StageSteps:
  """The train programs of one stage of the recipe (a stage may freeze other BatchNorm layers)."""
  train_step: Step
  train_chunk: Chunk | None = None  # several steps a call (steps_per_dispatch > 1), else None


@dataclasses.dataclass(frozen=True)
class Run:
  """Everything built from the config before the first step; the loop reads `about`, never the
  config. `state` is the initial state (the loop carries its own); `steps_of(stage)` gives the
  train programs of each stage of the recipe."""
  model_name: str
  identity: dict  # what a checkpoint must match to be resumed by this config
  dataset: Dataset
  state: state_lib.TrainState  # the initial one: random, or with the config's Keras weights
  schedule: optax.Schedule
  train_loader: Loader
  val_loader: Loader
  test_loader: Loader
  train_step: Step
  eval_step: Step  # validation views (data.eval_crop)
  test_step: Step  # test views (data.test_crop)
  mesh: Mesh
  model: nn.Module | None = None  # the flax module (feature extraction, surgery)
  stages: list[Stage] | None = None  # one per stage of the recipe (one for most configs)
  train_step_for: Callable[[Stage], Step] | None = None  # a stage may freeze other BatchNorm layers
  train_chunk: Chunk | None = None  # several steps a call (steps_per_dispatch > 1), else None
  train_chunk_for: Callable[[Stage], Chunk] | None = None
  kernels: dispatch.Kernels | None = None  # the convolution backends its programs were traced with
  measures: Measures | None = None  # what it measures (config.metrics): sums, history keys, monitored names
  about: Description | None = None  # what the loop reads of the config

  def steps_of(self, stage: Stage) -> StageSteps:
    """The train step (and K-step chunk) of `stage`."""
    if self.train_step_for is None:
      return StageSteps(self.train_step, self.train_chunk)
    return StageSteps(self.train_step_for(stage), self.train_chunk_for(stage) if self.train_chunk_for else None)


def build(config, abstract: bool = False, keras_weights: bool = False) -> Run:
  """Builds the dataset, model, optimizer, initial state and jitted steps of `config`.
  `abstract`: the state as shapes only (jax.eval_shape), for checks that trace and compile nothing.
  `keras_weights`: the initial state holds the Keras file of model.keras_weights, when it names one
  (a fresh run; a resumed one restores its checkpoint instead)."""
  validate.check(config)
  kernels = dispatch.active()  # resolved once per process (or a test's dispatch.use); results.json records it
  mesh = parallel.make_mesh()
  info = models.model_info(config.model.name)
  ds = dataset_of(config)
  num_classes = _check_data(config, ds)
  image_shape = model_image_shape(config.data, ds.image_shape)
  _check_batch_bytes(config.data, ds.image_shape)
  model = _create_model(config, num_classes, image_shape)
  train_loader, val_loader, test_loader = _loaders(config.data, ds, mesh, config.seed)
  resolve = trainable_lib.resolver(model, image_shape, transfer=bool(config.model.get("head")))
  plan = stages.plan(config, train_loader.steps_per_epoch, resolve)  # one stage unless config.stages lists them
  for stage in plan[1:]:
    validate.check(stage.config)
  schedule, tx = plan[0].schedule, plan[0].tx
  repl, batch = parallel.replicated(mesh), parallel.batch_sharding(mesh)
  bound = functools.partial(dispatch.bound, kernels)  # every program traces with the run's kernels
  state = state_lib.create(model, tx, image_shape, config.seed, sharding=repl,
                           kernel_init=config.model.get("kernel_init", "flax"), abstract=abstract)
  if keras_weights and config.model.get("keras_weights"):
    state = load_into_state(state, config, num_classes, repl)
  if config.data.normalize == "pixel_mean" and ds.mean_image is None:
    ds.mean_image = sources.mean_image(ds.train.images)
  train_pre, val_pre, test_pre = make_preprocess(config.data, ds.mean, ds.std, ds.image_shape, ds.mean_image)
  check_augmentation(config.data, (config.data.batch_size, *image_shape))  # a batch op of one's own: one line
  measured = Measures.of(config, num_classes)
  common = dict(num_classes=num_classes, measures=measured, l2=config.optim.l2,
                l2_conv_only=config.optim.get("l2_conv_only", False))

  step_for = lambda inference_modules: functools.partial(
      steps.train_step, preprocess=train_pre, label_smoothing=config.optim.label_smoothing,
      aux_weight=config.optim.aux_loss_weight, inference_modules=inference_modules, **common)

  @functools.lru_cache(maxsize=None)
  def train_jit_for(inference_modules: tuple):  # one jitted step per set of frozen BatchNorm layers
    return jax.jit(bound(_from_source(step_for(inference_modules))),
                   in_shardings=(repl, batch, repl), out_shardings=(repl, repl), donate_argnums=0)

  @functools.lru_cache(maxsize=None)
  def chunk_jit_for(inference_modules: tuple):
    step = _from_source(step_for(inference_modules))
    return jax.jit(bound(lambda state, sums, batches, count, source: steps.train_steps(
        state, sums, batches, count, step=lambda state, batch: step(state, batch, source))),
                   in_shardings=(repl, repl, parallel.stacked_batch_sharding(mesh), repl, repl),
                   out_shardings=(repl, repl), donate_argnums=(0, 1))

  train_jit = train_jit_for(plan[0].inference_modules)
  forward = functools.partial(dispatch.bound, kernels.for_forward(info.forward_kernels))
  eval_jit = lambda pre: jax.jit(forward(_from_source(functools.partial(steps.eval_step, preprocess=pre, **common))),
                                 in_shardings=(repl, batch, repl), out_shardings=(repl, batch))
  val_jit = eval_jit(val_pre)
  test_jit = val_jit if test_pre is val_pre else eval_jit(test_pre)
  train_step = Step(train_jit, train_loader.source)
  eval_step, test_step = Step(val_jit, val_loader.source), Step(test_jit, test_loader.source)
  identity = _identity(config, ds, num_classes, image_shape)
  per_call = steps_per_dispatch(config, train_loader, mesh, kernels)
  chunk_for = None
  if per_call > 1:
    chunk_for = lambda stage: Chunk(chunk_jit_for(stage.inference_modules), train_loader.source, per_call)
  return Run(config.model.name, identity, ds, state, schedule, train_loader, val_loader, test_loader, train_step,
             eval_step, test_step, mesh, model, plan,
             train_step_for=lambda stage: Step(train_jit_for(stage.inference_modules), train_loader.source),
             train_chunk=chunk_for(plan[0]) if chunk_for else None, train_chunk_for=chunk_for, kernels=kernels, measures=measured,
             about=describe(config))


def dataset_of(config) -> Dataset:
  """The dataset of `config`, loaded with model.input_shape and model.num_classes taken from the
  model's registry entry where the config leaves them unset (what data.name=synthetic makes)."""
  info = models.model_info(config.model.name)
  view = config.copy_and_resolve_references()
  with view.unlocked():
    view.model.input_shape = tuple(config.model.input_shape or info.input_shape)
    view.model.num_classes = config.model.num_classes or info.num_classes
  return load_dataset(view)


def _check_batch_bytes(data, image_shape) -> None:
  """A ConfigError when one batch of the training or evaluation batch size, as float32 images,
  would take more than half this machine's memory: said at once, before anything is allocated
  (a padded evaluation batch of 10^8 images would otherwise be assembled until memory runs out)."""
  import os
  try:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  except (ValueError, OSError, AttributeError):  # not a POSIX machine: nothing to measure against
    return
  per_image = int(np.prod(image_shape)) * 4
  for flag, batch in (("batch_size", data.batch_size), ("eval_batch_size", data.eval_batch_size or data.batch_size)):
    if batch * per_image > memory / 2:
      raise ConfigError(f"--config.data.{flag}={batch}: one batch of {tuple(image_shape)} images takes "
                        f"{batch * per_image / 2**30:.1f} GiB as float32, more than half of this machine's "
                        f"{memory / 2**30:.0f} GiB; lower it")


def _loaders(data, ds, mesh, seed: int) -> tuple[Loader, Loader, Loader]:
  """The train (shuffled from `seed`), val and test Loaders of `ds`, each split on the device where
  it fits (data.on_device, data.max_on_device_gb)."""
  eval_batch = data.eval_batch_size or data.batch_size
  common = lambda split: dict(on_device=fits_on_device(split, data.on_device, data.max_on_device_gb),
                              prefetch=data.prefetch)
  return (Loader(ds.train, data.batch_size, mesh, train=True, seed=seed, **common(ds.train)),
          Loader(ds.val, eval_batch, mesh, train=False, **common(ds.val)),
          Loader(ds.test, eval_batch, mesh, train=False, **common(ds.test)))


def _check_data(config, ds) -> int:
  """The number of classes, once the dataset `ds` is checked against `config` (non-empty splits of
  one image size, the model's input_shape and num_classes)."""
  for split_name, split in (("train", ds.train), ("val", ds.val), ("test", ds.test)):
    if len(split) == 0:
      raise ConfigError(f"dataset {ds.name!r}: the {split_name} split has no images")
    if tuple(split.images.shape[1:]) != tuple(ds.image_shape):
      raise ConfigError(f"dataset {ds.name!r}: {split_name} images are {tuple(split.images.shape[1:])}, "
                        f"train images {tuple(ds.image_shape)}; every split must have one size")
  seen = tuple(model_image_shape(config.data, ds.image_shape))
  if config.model.input_shape and tuple(config.model.input_shape) not in (tuple(ds.image_shape), seen):
    raise ConfigError(f"--config.model.input_shape={tuple(config.model.input_shape)} but the data's images are "
                      f"{tuple(ds.image_shape)}" + (f" (the model sees {seen} crops)" if seen != tuple(ds.image_shape)
                                                   else "") + "; leave it () (the data decides) or resize the data")
  num_classes = config.model.num_classes or ds.num_classes
  if num_classes != ds.num_classes:
    raise ConfigError(f"model.num_classes={num_classes} but dataset {ds.name!r} has {ds.num_classes} classes")
  return num_classes


def _identity(config, ds, num_classes: int, image_shape) -> dict:
  """What a checkpoint must match to be resumed by this config: the model and what the run learns
  from (a resume on other data or other splits -- another split seed, validation share, source or
  files -- would mix them; the same data moved to another folder is the same)."""
  identity = {"model": config.model.name, "num_classes": num_classes,
              "kwargs": config.model.kwargs.to_dict(), "image_shape": list(image_shape)}
  if config.model.get("head"):
    identity["head"] = [config.model.head, config.model.head_hidden, config.model.head_dropout]
  identity["data"] = {"class_names": list(ds.class_names), "sizes": [len(ds.train), len(ds.val), len(ds.test)],
                      "content": sources.fingerprint(ds)}
  return identity


def _create_model(config, num_classes: int, image_shape):
  """The config's model, checked against the images it will see (shapes only, nothing computed):
  a model that cannot take them is a ConfigError naming both sizes, not an XLA traceback."""
  kwargs = config.model.kwargs.to_dict()
  try:
    if config.model.get("head"):
      model = create_transfer_model(config.model.name, num_classes=num_classes, head=config.model.head,
                                    hidden=config.model.head_hidden, dropout=config.model.head_dropout,
                                    dtype=jax.numpy.dtype(config.model.dtype), **kwargs)
    else:
      model = models.create_model(config.model.name, num_classes=num_classes,
                                  dtype=jax.numpy.dtype(config.model.dtype), **kwargs)
  except TypeError as e:  # a kwargs field the model does not have
    raise ConfigError(f"--config.model.kwargs={kwargs} does not fit {config.model.name!r}: {e}") from None
  problem = models.input_problem(model, image_shape)
  if problem:
    need = models.model_info(config.model.name).input_shape
    h, w, ch = image_shape
    raise ConfigError(f"model {config.model.name!r} cannot take the data's {h}x{w}x{ch} images (it is built "
                      f"for {need[0]}x{need[1]}x{need[2]}; {problem}); choose a model for this input size, "
                      "resize the data (--config.data.image_size / resize / crop_size) or check model.kwargs")
  return model
