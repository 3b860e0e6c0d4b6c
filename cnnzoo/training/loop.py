"""`train_and_evaluate(config, workdir)`: the epoch loop tying data, model, steps, checkpoints and
the monitor together. Resumes from the workdir's latest checkpoint automatically (see resume.py)."""

import dataclasses
import functools
import hashlib
import os
import sys
import time

import jax
import numpy as np
from absl import logging

from cnnzoo import models, parallel, paths
from cnnzoo.data import Loader, load_dataset
from cnnzoo.data.loader import fits_on_device, materialize
from cnnzoo.data.ops import make_preprocess, model_image_shape
from cnnzoo.errors import ConfigError, RunStopped, UserError
from cnnzoo.evaluation import metrics
from cnnzoo.training import monitor, steps
from cnnzoo.training import state as state_lib
from cnnzoo.training import callbacks, resume, stages, validate
from cnnzoo.training import trainable as trainable_lib
from cnnzoo.training import workdir as workdir_lib
from cnnzoo.training.checkpoint import Checkpointer

# summed step metrics, one dispatch per step (eager `a + b` per metric cost ~2 s of the README's
# first command: four op dispatches per step); the same float32 adds, so the same sums
add_metrics = jax.jit(lambda a, b: jax.tree.map(jax.numpy.add, a, b))

MEAN_IMAGE = "mean_image.npy"  # normalize="pixel_mean": the training split's mean image, for predict


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


def steps_per_dispatch(config, loader: Loader, mesh) -> int:
  """How many train steps one call runs (config.steps_per_dispatch; 0 = auto).

  auto: on a device-resident split, the steps between two progress-bar updates
  (monitor.log_every_steps), or the whole epoch without a bar, as one compiled loop; one step a
  call when the batches come from the host, over several CPU devices (XLA:CPU's collectives
  inside a loop body have hung there), and on the CPU without cnnzoo's convolution backward pass
  (CNNZOO_CONV_KERNEL_GRAD=xla: XLA's own inside a loop body took MiniVGGNet's step from 0.3 to
  17 s). On one CPU device every setting trains bitwise the same (tests/test_training.py); any
  N > 1 shares one compilation, so N does not change the results anywhere."""
  from cnnzoo.models import conv
  k = config.get("steps_per_dispatch", 0)
  if k > 1 and not loader.on_device:
    raise ConfigError(f"--config.steps_per_dispatch={k} needs a training split kept on the device; it is "
                      "streamed from the host (data.on_device / data.max_on_device_gb): set it to 0 or 1")
  if k:
    return min(k, loader.steps_per_epoch)
  if not loader.on_device or (jax.default_backend() == "cpu" and (mesh.devices.size > 1 or not conv.own_backward())):
    return 1
  every = config.monitor.log_every_steps if config.monitor.progress else loader.steps_per_epoch
  return min(every, loader.steps_per_epoch)


@dataclasses.dataclass
class Run:
  """Everything built from the config before the first step."""
  model_name: str
  identity: dict  # what a checkpoint must match to be resumed by this config
  dataset: object
  state: state_lib.TrainState
  schedule: object
  train_loader: Loader
  val_loader: Loader
  test_loader: Loader
  train_step: Step
  eval_step: Step  # validation views (data.eval_crop)
  test_step: Step  # test views (data.test_crop)
  mesh: object
  model: object = None  # the flax module (feature extraction, surgery)
  stages: list = None  # stages.Stage, one per stage of the recipe (one for most configs)
  train_step_for: object = None  # stage -> its Step (a stage may freeze other BatchNorm layers)
  train_chunk: Chunk | None = None  # several steps a call (steps_per_dispatch > 1), else None
  train_chunk_for: object = None  # stage -> its Chunk


def build(config, abstract: bool = False) -> Run:
  """Builds the dataset, model, optimizer, initial state and jitted steps of `config`.
  `abstract`: the state as shapes only (jax.eval_shape), for checks that trace and compile nothing."""
  validate.check(config)
  mesh = parallel.make_mesh()
  info = models.model_info(config.model.name)
  ds = load_dataset(config.data, image_shape=tuple(config.model.input_shape or info.input_shape),
                    num_classes=config.model.num_classes or info.num_classes)
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
  model = _create_model(config, num_classes, model_image_shape(config.data, ds.image_shape))
  resident = lambda split: fits_on_device(split, config.data.on_device, config.data.max_on_device_gb)
  prefetch = config.data.prefetch
  train_loader = Loader(ds.train, config.data.batch_size, mesh, train=True, seed=config.seed,
                        on_device=resident(ds.train), prefetch=prefetch)
  eval_batch = config.data.eval_batch_size or config.data.batch_size
  val_loader = Loader(ds.val, eval_batch, mesh, train=False, on_device=resident(ds.val), prefetch=prefetch)
  test_loader = Loader(ds.test, eval_batch, mesh, train=False, on_device=resident(ds.test),
                       prefetch=prefetch)
  image_shape = model_image_shape(config.data, ds.image_shape)
  resolve = trainable_lib.resolver(model, image_shape, transfer=bool(config.model.get("head")))
  plan = stages.plan(config, train_loader.steps_per_epoch, resolve)  # one stage unless config.stages lists them
  for stage in plan[1:]:
    validate.check(stage.config)
  schedule, tx = plan[0].schedule, plan[0].tx
  repl, batch = parallel.replicated(mesh), parallel.batch_sharding(mesh)
  state = state_lib.create(model, tx, image_shape, config.seed, sharding=repl,
                           kernel_init=config.model.get("kernel_init", "flax"), abstract=abstract)
  if config.data.normalize == "pixel_mean" and ds.mean_image is None:
    from cnnzoo.data import sources
    ds.mean_image = sources.mean_image(ds.train.images)
  train_pre, val_pre, test_pre = make_preprocess(config.data, ds.mean, ds.std, ds.image_shape, ds.mean_image)
  common = dict(num_classes=num_classes, l2=config.optim.l2, l2_conv_only=config.optim.get("l2_conv_only", False))

  step_for = lambda frozen_batchnorm: functools.partial(
      steps.train_step, preprocess=train_pre, label_smoothing=config.optim.label_smoothing,
      aux_weight=config.optim.aux_loss_weight, frozen_batchnorm=frozen_batchnorm, **common)

  @functools.lru_cache(maxsize=None)
  def train_jit_for(frozen_batchnorm: tuple):  # one jitted step per set of frozen BatchNorm layers
    return jax.jit(_from_source(step_for(frozen_batchnorm)),
                   in_shardings=(repl, batch, repl), out_shardings=(repl, repl), donate_argnums=0)

  @functools.lru_cache(maxsize=None)
  def chunk_jit_for(frozen_batchnorm: tuple):
    step = _from_source(step_for(frozen_batchnorm))
    return jax.jit(lambda state, sums, batches, count, source: steps.train_steps(
        state, sums, batches, count, step=lambda state, batch: step(state, batch, source)),
                   in_shardings=(repl, repl, parallel.stacked_batch_sharding(mesh), repl, repl),
                   out_shardings=(repl, repl), donate_argnums=(0, 1))

  train_jit = train_jit_for(plan[0].frozen_batchnorm)
  eval_jit = lambda pre: jax.jit(_from_source(functools.partial(steps.eval_step, preprocess=pre, **common)),
                                 in_shardings=(repl, batch, repl), out_shardings=(repl, batch))
  val_jit = eval_jit(val_pre)
  test_jit = val_jit if test_pre is val_pre else eval_jit(test_pre)
  train_step = Step(train_jit, train_loader.source)
  eval_step, test_step = Step(val_jit, val_loader.source), Step(test_jit, test_loader.source)
  identity = {"model": config.model.name, "num_classes": num_classes,
              "kwargs": config.model.kwargs.to_dict(), "image_shape": list(image_shape)}
  if config.model.get("head"):
    identity["head"] = [config.model.head, config.model.head_hidden, config.model.head_dropout]
  run = Run(config.model.name, identity, ds, state, schedule, train_loader, val_loader,
            test_loader, train_step, eval_step, test_step, mesh, model, plan)
  run.train_step_for = lambda stage: Step(train_jit_for(stage.frozen_batchnorm), train_loader.source)
  per_call = steps_per_dispatch(config, train_loader, mesh)
  if per_call > 1:
    run.train_chunk_for = lambda stage: Chunk(chunk_jit_for(stage.frozen_batchnorm), train_loader.source, per_call)
    run.train_chunk = run.train_chunk_for(plan[0])
  return run


def _create_model(config, num_classes: int, image_shape):
  """The config's model, checked against the images it will see (shapes only, nothing computed):
  a model that cannot take them is a ConfigError naming both sizes, not an XLA traceback."""
  kwargs = config.model.kwargs.to_dict()
  try:
    if config.model.get("head"):
      from cnnzoo.models.transfer import create_transfer_model
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


def evaluate(run: Run, state, loader: Loader, step: Step | None = None, *,
             probabilities: bool = False) -> dict:
  """Loss, accuracy and top-5 accuracy over every example of `loader`'s split (each once: the
  last batch is padded and masked), with the views of `step` (default: the validation step's).

  probabilities: also return `probs`, the (examples, classes) float32 NumPy array of class
  probabilities in the split's order (gathered from every process).
  """
  totals, jitted, probs = None, (step or run.eval_step).jitted, []
  for batch in loader.epoch(0):
    m, p = jitted(state, batch, loader.source)
    totals = m if totals is None else add_metrics(totals, m)
    if probabilities:
      probs.append(parallel.gather_batch(p))
  totals = jax.device_get(totals)
  n = int(totals["count"])
  out = {"loss": float(totals["loss"]) / n, "accuracy": float(totals["correct"]) / n,
         "top5_accuracy": float(totals["correct_top5"]) / n, "count": n}
  if probabilities:
    out["probs"] = np.concatenate(probs)[:n]  # padding is at the end of the last batch only
  return out


def params_fingerprint(params) -> str:
  """SHA-256 over the parameter bytes: equal fingerprints mean bitwise-equal parameters."""
  h = hashlib.sha256()
  for leaf in jax.tree.leaves(jax.device_get(params)):
    h.update(np.ascontiguousarray(leaf).tobytes())
  return h.hexdigest()


def _print_header(run: Run, config, start_epoch: int) -> None:
  if jax.process_index() != 0:
    return
  s = run.state
  devices = jax.devices()
  print(f"model {run.model_name}: {state_lib.count_params(s.params):,} trainable params, "
        f"{state_lib.count_params(s.batch_stats):,} non-trainable")
  print(f"devices: {len(devices)} x {devices[0].device_kind} ({jax.process_count()} process(es)); "
        f"global batch {config.data.batch_size}, {run.train_loader.steps_per_epoch} steps/epoch")
  ds = run.dataset
  crop = config.data.crop_size
  views = (f"; the model sees {crop}x{crop} crops (train random, val {config.data.eval_crop}, "
           f"test {config.data.test_crop or config.data.eval_crop})" if crop else "")
  print(f"data {ds.name}: {len(ds.train)} train / {len(ds.val)} val / {len(ds.test)} test, "
        f"images {ds.image_shape}, {ds.num_classes} classes{views}")
  if start_epoch:
    print(f"resuming after epoch {start_epoch} of {config.num_epochs}")


def train_epoch(run: Run, state, epoch: int, bar: monitor.ProgressBar, log_every: int):
  """One pass over the training split; returns the new state, summed metrics and data seconds."""
  if run.train_chunk is not None:
    return _train_epoch_in_chunks(run, state, epoch, bar)
  sums, data_seconds, done = None, 0.0, 0
  t0 = time.perf_counter()
  batches = run.train_loader.epoch(epoch)
  for i in range(run.train_loader.steps_per_epoch):
    t = time.perf_counter()
    batch = next(batches)
    data_seconds += time.perf_counter() - t
    state, m = run.train_step(state, batch)
    sums = m if sums is None else add_metrics(sums, m)
    if bar.enabled and ((i + 1) % log_every == 0 or i + 1 == run.train_loader.steps_per_epoch):
      _show(bar, i + 1 - done, sums, t0)
      done = i + 1
  return state, jax.device_get(sums), data_seconds


def _train_epoch_in_chunks(run: Run, state, epoch: int, bar: monitor.ProgressBar):
  """train_epoch with `run.train_chunk.size` steps a call (the progress bar moves once a call)."""
  sums, data_seconds = jax.device_put(steps.zero_metrics(), parallel.replicated(run.mesh)), 0.0
  t0 = time.perf_counter()
  chunks = run.train_loader.index_chunks(epoch, run.train_chunk.size)
  for _ in range(-(-run.train_loader.steps_per_epoch // run.train_chunk.size)):
    t = time.perf_counter()
    batches, count = next(chunks)
    data_seconds += time.perf_counter() - t
    state, sums = run.train_chunk(state, sums, batches, count)
    if bar.enabled:
      _show(bar, count, sums, t0)
  return state, jax.device_get(sums), data_seconds


def _show(bar: monitor.ProgressBar, steps_done: int, sums, t0: float) -> None:
  """Moves the progress bar by `steps_done` steps, with the epoch's running loss, accuracy, img/s."""
  host = jax.device_get(sums)
  n = int(host["count"])
  bar.update(steps_done, loss=float(host["loss"]) / n, acc=float(host["correct"]) / n,
             img_s=n / (time.perf_counter() - t0))


def train_and_evaluate(config, workdir: str, *, resume_epoch: int | None = None,
                       init_from: str | None = None, command: dict | None = None) -> dict:
  """Trains `config` in `workdir` (resuming its latest checkpoint), tests, and returns the results.

  Args:
    resume_epoch: restore this epoch's checkpoint instead of the latest; later checkpoints are
      deleted only when the first new one is written.
    init_from: "OTHER_WORKDIR[:EPOCH]": start a new run from another run's weights.
    command: {"config": the config file spec, "command": the command line that resumes the run},
      kept in status.json for `experiments.runs`.

  Raises:
    UserError: a config, flag or workdir that cannot work; nothing was written.
    RunStopped: the loss became NaN / Inf, or the disk filled; the last good checkpoint is kept.
  """
  workdir_lib.check_writable(workdir)
  directory = os.path.join(workdir, "checkpoints")
  if resume_epoch is not None and resume_epoch not in resume.finished_epochs(directory):
    raise UserError(f"--resume_epoch={resume_epoch}: no such checkpoint in {directory} "
                    f"(epochs on disk: {resume.finished_epochs(directory) or 'none'})")
  if init_from is not None and resume.finished_epochs(directory):
    raise UserError(f"--init_from starts a new run but {workdir} already has checkpoints; "
                    "use a new --workdir")
  if init_from is None and config.model.get("init_from") and not resume.finished_epochs(directory):
    init_from = config.model.init_from  # the config's own starting point (a fresh run only)
    source = init_from.partition(":")[0]
    if not os.path.isdir(os.path.join(source, "checkpoints")):
      raise UserError(f"this config starts from the weights of the run in {source} (model.init_from), which is "
                      "not there: train that run first (its config's docstring says which), or set "
                      "--config.model.init_from=DIR[:EPOCH]")
  run = build(config)  # fails on bad config or missing data before anything is written
  if init_from is not None:  # read (and checked) before anything is written
    run.state = resume.init_from(run, init_from)
  elif config.model.get("keras_weights") and not resume.finished_epochs(directory):
    from cnnzoo.transfer.keras_weights import load_into_state  # a fresh run starts from the file
    run.state = load_into_state(run.state, config, run.identity["num_classes"], parallel.replicated(run.mesh))
  ck = config.checkpoint
  with workdir_lib.lock(workdir):
    ckpt = Checkpointer(directory, keep=ck.keep, best_metric=ck.best_metric,
                        best_mode=ck.best_mode, keep_every=ck.keep_every, async_save=ck.async_save)
    failed, interrupted = True, False
    status = workdir_lib.Status(workdir, command)
    try:
      status.write("running")
      results = _train(run, config, workdir, ckpt, resume_epoch)
      failed = False
      status.write("finished")
      return results
    except RunStopped as e:
      status.write("diverged" if "diverged" in str(e) else "stopped", str(e))
      raise
    except (OSError, ValueError, RuntimeError) as e:
      reason = resume.disk_error(e)
      if reason is None:
        status.write("failed", f"{type(e).__name__}: {e}")
        raise
      done = resume.finished_epochs(directory)
      stop = RunStopped(f"cannot write to {workdir}: {reason}; " + (
          f"the checkpoint of epoch {done[-1]} is intact: free some space and rerun the same command "
          "to resume from it" if done else "no checkpoint was written: free some space and rerun"))
      status.write("stopped", str(stop))
      raise stop from None
    except KeyboardInterrupt:
      status.write("interrupted", "Ctrl-C")
      interrupted = True
      raise
    finally:
      try:
        ckpt.close()  # waits for a checkpoint being written
      except Exception:  # noqa: BLE001 -- already failing: the first error is the one to report
        if not failed:
          raise
      if interrupted and jax.process_index() == 0:
        done = resume.finished_epochs(directory)
        print("stopped by Ctrl-C; " + (f"the checkpoint of epoch {done[-1]} is kept: rerun the same command to "
              "resume from it" if done else "no epoch had finished"), file=sys.stderr, flush=True)


def _restore_best(run, ckpt, state, best: int, last: int):
  """EarlyStopping(restore_best_weights=True): the weights of epoch `best` for the test."""
  if best == last:
    return state
  if best not in ckpt.epochs():
    resume.warn(f"the best epoch {best}'s checkpoint is no longer on disk (keep it with "
                "--config.checkpoint.best_metric set to the early_stop monitor); testing the last weights")
    return state
  restored, _ = resume.restore(run, ckpt, best)
  if jax.process_index() == 0:
    print(f"restoring the weights of the best epoch, {best}", flush=True)
  return state.replace(params=restored.params, batch_stats=restored.batch_stats)


def _phase(name: str, epoch: int) -> None:
  """Logs where the run is (`--verbosity=0` shows it): compile (the first epoch of a process, whose
  first step compiles), train, evaluate, save, test. The kill -9 tests aim at these points."""
  logging.info("cnnzoo phase: %s epoch %d", name, epoch)


def _train(run, config, workdir, ckpt, resume_epoch) -> dict:
  """The body of train_and_evaluate once the workdir is locked and the checkpoints are open."""
  epochs = ckpt.epochs()
  start, state, history = resume.resume_point(run, ckpt, resume_epoch)
  truncate = bool(epochs) and start < epochs[-1]

  if jax.process_index() == 0:  # one writer; the other processes share the folder
    workdir_lib.write_config(config, workdir, start)
    ds = run.dataset
    monitor.write_json_atomic(os.path.join(workdir, "dataset.json"), {  # what predict needs of the data
        "name": ds.name, "class_names": list(ds.class_names), "image_shape": list(ds.image_shape),
        "mean": list(ds.mean) if ds.mean is not None else None,
        "std": list(ds.std) if ds.std is not None else None})
    if ds.mean_image is not None:  # normalize="pixel_mean": predict subtracts the same image
      with paths.atomic(os.path.join(workdir, MEAN_IMAGE), ".tmp.npy") as tmp:
        np.save(tmp, ds.mean_image)
  _print_header(run, config, start)
  writers = monitor.make_writers(workdir, config.monitor, f"{config.model.name} on {run.dataset.name}")
  bar = monitor.ProgressBar(config.monitor.progress)
  steps_per_epoch = run.train_loader.steps_per_epoch
  last_saved = start  # the newest checkpoint of this run's line (the one a stop points back to)
  current = stages.stage_of(run.stages, start)  # the stage whose optimizer `state` carries
  staged = len(run.stages) > 1
  plateau, early = callbacks.from_config(config)
  saved = history[-1].get("callbacks", {}) if history else {}
  for cb, name in ((plateau, "plateau"), (early, "early_stop")):
    if cb is not None and name in saved:
      cb.load(saved[name])
  stopped = bool(early is not None and early.stopped_epoch)  # a finished early-stopped run: test only
  for epoch in range(start, config.num_epochs if not stopped else start):
    t0 = time.perf_counter()
    stage = stages.stage_of(run.stages, epoch + 1)
    if stage.index != current.index or (epoch == start and staged):
      state = stages.with_stage(state, run.stages, current, stage, parallel.replicated(run.mesh))
      if run.train_step_for is not None:
        run.train_step = run.train_step_for(stage)
      if run.train_chunk_for is not None:
        run.train_chunk = run.train_chunk_for(stage)
      if jax.process_index() == 0 and staged:
        changes = ", ".join(f"{k}={v}" for k, v in stage.overrides.items()) or "the config as it is"
        print(f"stage {stage.index} of {len(run.stages)}: epochs {stage.start + 1}-{stage.end}, {changes}"
              + (" (a fresh optimizer)" if stage.fresh and stage.index > 1 else ""), flush=True)
      current = stage
    lr = float(stage.schedule(epoch * steps_per_epoch))
    if plateau is not None:
      lr = float(np.float32(lr * callbacks.lr_scale(state.opt_state)))
    bar.start(epoch + 1, config.num_epochs, steps_per_epoch)
    _phase("compile" if epoch == start else "train", epoch + 1)
    state, sums, data_seconds = train_epoch(run, state, epoch, bar, config.monitor.log_every_steps)
    bar.close()
    train_seconds = time.perf_counter() - t0
    _phase("evaluate", epoch + 1)
    val = evaluate(run, state, run.val_loader)
    n = int(sums["count"])
    resume.check_finite(float(sums["loss"]) / n, val["loss"], epoch + 1, lr, ckpt, last_saved)
    record = {"epoch": epoch + 1, "lr": lr, "loss": float(sums["loss"]) / n,
              "accuracy": float(sums["correct"]) / n, "val_loss": val["loss"],
              "val_accuracy": val["accuracy"], "val_top5_accuracy": val["top5_accuracy"],
              "seconds": time.perf_counter() - t0, "img_per_sec": n / train_seconds,
              "data_seconds": data_seconds}
    if staged:
      record["stage"] = stage.index
    if plateau is not None:
      new_lr = plateau.on_epoch_end(record, lr)
      if new_lr != float(np.float32(lr)):
        base = float(stage.schedule(epoch * steps_per_epoch))
        state = state.replace(opt_state=callbacks.with_lr_scale(state.opt_state, new_lr / base,
                                                                parallel.replicated(run.mesh)))
        if jax.process_index() == 0:
          print(f"epoch {epoch + 1}: ReduceLROnPlateau reducing the learning rate to {new_lr:.4g}", flush=True)
    stop = early is not None and early.on_epoch_end(epoch, record)
    if plateau is not None or early is not None:
      record["callbacks"] = {name: cb.state() for cb, name in ((plateau, "plateau"), (early, "early_stop"))
                             if cb is not None}
    history = history[:epoch] + [record]
    if truncate:
      ckpt.delete_after(start)
      truncate = False
    _phase("save", epoch + 1)
    ckpt.save(epoch + 1, state.checkpoint_tree(),
              meta={"identity": run.identity, "history": history,
                    "position": {"epoch": epoch + 1, "step_in_epoch": 0}},
              metrics={k: record[k] for k in ("val_loss", "val_accuracy", "loss", "accuracy")})
    last_saved = epoch + 1
    for write in writers:
      write(history)
    if jax.process_index() == 0:
      print(monitor.format_record(record), flush=True)
    if stop:
      if jax.process_index() == 0:
        print(f"early stopping after epoch {epoch + 1}: no {early.monitor} improvement for {early.patience} "
              f"epoch(s); best epoch {early.best_epoch + 1}", flush=True)
      break
  ckpt.wait()
  if early is not None and config.early_stop.restore_best and history:
    state = _restore_best(run, ckpt, state, early.best_epoch + 1, len(history))
  if history and start == config.num_epochs:  # nothing trained now: refresh the files from the checkpoint
    for write in writers:
      write(history)
  _phase("test", len(history))
  test = evaluate(run, state, run.test_loader, run.test_step, probabilities=True)
  labels, names = np.asarray(run.test_loader.split.labels), run.dataset.class_names
  report = metrics.report(test["probs"], labels, names)
  results = {"model": config.model.name, "dataset": run.dataset.name, "epochs": len(history),
             "test_loss": test["loss"], "test_accuracy": test["accuracy"],
             "test_top5_accuracy": test["top5_accuracy"], "test_count": test["count"],
             "best_epoch": ckpt.best_epoch(), "params_sha256": params_fingerprint(state.params),
             "test_report": report["classification_report"], "hardware": parallel.hardware()}
  if jax.process_index() == 0:
    monitor.write_json_atomic(os.path.join(workdir, "results.json"), results)
    text = metrics.report_text(test["probs"], labels, names)
    monitor.write_text_atomic(os.path.join(workdir, "test_report.txt"), text)
    if len(names) <= 20:  # the journal's table; larger ones stay in the file
      print(text.rstrip())
    print(f"test: loss {results['test_loss']:.4f}  accuracy {results['test_accuracy']:.4f}  "
          f"top-5 {results['test_top5_accuracy']:.4f}  ({results['test_count']} images)")
  for write in writers:
    getattr(write, "close", lambda: None)()
  return results
