"""The Keras twin: the seed's MiniVGGNet and the Keras example's ResNet v1 (seeds 001 / 004; depth 8) in
Keras 3 (JAX backend) and in cnnzoo, from the same weights on the same batches, train step by step
to the same losses, within 10x the float32 noise floor measured here (the largest change of cnnzoo
rerun from its weights nudged by one part in 1e7, over 8 sign patterns) -- with `optim.semantics=keras`, two-pass BatchNorm variances,
and the journal's optimizers: SGD + Nesterov + time-based decay, Adam, RMSprop. (Dropout is off in
both: the two draw different masks.)
Measured (AMD EPYC): the Keras gap is at most 1.5x that floor at every step; optax's Adam is 62x
further from Keras than ours after the first update."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import fast_keras
from cnnzoo import models
from cnnzoo.kernels import dispatch
from cnnzoo.models.resnet_cifar import KerasCifarResNet
from cnnzoo.training import components, optim, steps
from cnnzoo.training import state as state_lib

keras = fast_keras()
L = keras.layers
STEPS, BATCH = 4, 32


def keras_minivggnet():
  """tests/keras_refs.minivggnet without its dropout and softmax (logits, as cnnzoo's head)."""
  model = keras.Sequential([keras.Input((32, 32, 3))])
  for width in (32, 64):
    for _ in range(2):
      model.add(L.Conv2D(width, 3, padding="same", activation="relu"))
      model.add(L.BatchNormalization())
    model.add(L.MaxPooling2D(2))
  model.add(L.Flatten())
  model.add(L.Dense(512, activation="relu"))
  model.add(L.BatchNormalization())
  model.add(L.Dense(10))
  return model


def keras_resnet8_v1():
  """tests/keras_refs.keras_example_resnet(8, 1) with logits out (no softmax): the example's
  resnet_v1 at its smallest depth -- ResNet-20 v1's stem, blocks (plain and projecting) and head,
  one block per stage instead of three, a third of the compile time."""
  from keras_refs import keras_example_resnet
  return keras_example_resnet(8, 1, activation=None)


def resnet8_v1_names():
  """cnnzoo's KerasCifarResNet(depth=8) kernels (convs, then the head) and BatchNorms in the order
  the Keras example creates its layers: stem, then per block conv1, conv2 and (first block of
  stages 2, 3) the projection."""
  convs, norms = ["stem_conv"], ["stem_bn"]
  for s in (1, 2, 3):
    for b in (1,):
      name = f"stage{s}_block{b}"
      convs += [f"{name}_conv1", f"{name}_conv2"] + ([f"{name}_proj_conv"] if s > 1 and b == 1 else [])
      norms += [f"{name}_bn1", f"{name}_bn2"]
  return convs + ["head"], norms


def copy_into_keras(kmodel, params, stats, convs, norms):
  """cnnzoo's weights into the Keras twin: kernels (Conv2D, Dense) and BatchNorms each in the order
  Keras created the layers (their automatic names count up: conv2d, conv2d_1, ...)."""
  import re
  created = lambda layer: int((re.search(r"_(\d+)$", layer.name) or [0, 0])[1])
  kernels = sorted((l for l in kmodel.layers if l.weights and not isinstance(l, L.BatchNormalization)),
                   key=lambda l: (not isinstance(l, L.Conv2D), created(l)))
  bns = sorted((l for l in kmodel.layers if isinstance(l, L.BatchNormalization)), key=created)
  assert (len(kernels), len(bns)) == (len(convs), len(norms))
  for layer, n in zip(kernels, convs):
    layer.set_weights([params[n]["kernel"], params[n]["bias"]])
  for layer, n in zip(bns, norms):
    layer.set_weights([params[n]["scale"], params[n]["bias"], stats[n]["mean"], stats[n]["var"]])


TWINS = {  # cnnzoo model, its Keras twin, the layer names in Keras' creation order
    "minivggnet": (lambda: models.create_model("minivggnet", num_classes=10, conv_dropout=0.0, dropout=0.0),
                   keras_minivggnet,
                   lambda: ([f"block{b}_conv{c}" for b in (1, 2) for c in (1, 2)] + ["fc1", "head"],
                            [f"block{b}_bn{c}" for b in (1, 2) for c in (1, 2)] + ["fc1_bn"])),
    "resnet8_v1": (lambda: KerasCifarResNet(depth=8, num_classes=10, version=1), keras_resnet8_v1, resnet8_v1_names),
}


KERAS_OPTIMIZERS = {
    "sgd_nesterov_time_decay": lambda: keras.optimizers.SGD(
        keras.optimizers.schedules.InverseTimeDecay(0.01, decay_steps=1, decay_rate=0.5), momentum=0.9,
        nesterov=True),
    "adam": lambda: keras.optimizers.Adam(1e-3),
    "rmsprop": lambda: keras.optimizers.RMSprop(1e-3),
}
OURS = {
    "sgd_nesterov_time_decay": (dict(name="sgd", lr=0.01, momentum=0.9, nesterov=True), 0.5),
    "adam": (dict(name="adam", lr=1e-3), 0.0),
    "rmsprop": (dict(name="rmsprop", lr=1e-3), 0.0),
}


@functools.lru_cache(maxsize=None)
def our_optimizer(case, semantics):
  """One optimizer object per case: the jitted step below is then compiled once per case and
  reused for the nudged rerun (the optimizer is a static part of the train state)."""
  fields, decay = OURS[case]
  from configs import base
  cfg = base.get_config()
  cfg.optim.update(dict(fields, semantics=semantics))
  components.resolve(cfg)  # the optimizer's other settings at their (Keras') defaults
  lr = cfg.optim.lr
  return optim.build_optimizer(cfg, (lambda count: lr / (1.0 + decay * count)) if decay else (lambda count: lr))


NUDGES = 8


def nudged(params, seed):
  """`params` with every weight scaled by 1 +- 1e-7 (signs drawn from `seed`)."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda w: (w * (1 + 1e-7 * rng.choice([-1.0, 1.0], w.shape))).astype(w.dtype), params)


def no_augmentation(key, images):
  return images


STEP = jax.jit(functools.partial(steps.train_step, preprocess=no_augmentation, num_classes=10))
XLA_STEP = jax.jit(functools.partial(steps.train_step, preprocess=no_augmentation, num_classes=10))  # traced
# only inside dispatch.use(...without_ffi()): XLA's convolutions where the default would call oneDNN
MODELS = {name: make() for name, (make, _, _) in TWINS.items()}


def our_losses(name, case, semantics, params, stats, batches, step=None):
  state = state_lib.TrainState.create(apply_fn=MODELS[name].apply, params=params, batch_stats=stats,
                                      tx=our_optimizer(case, semantics), rng=jax.random.key_data(jax.random.key(0)))
  losses = []
  for x, y in batches:
    state, m = (step or STEP)(state, {"image": jnp.asarray(x), "label": jnp.asarray(y), "mask": jnp.ones(len(y), bool)})
    losses.append(float(m["loss"]) / len(y))
  return np.array(losses)


@functools.lru_cache(maxsize=None)
def start(name):
  model = MODELS[name]
  variables = jax.jit(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))()
  params = state_lib.with_kernel_init(variables["params"], jax.random.key(1), "glorot_uniform")
  rng = np.random.default_rng(0)
  # smooth images (4x4 noise upsampled): pixel noise makes max-pool near-ties, whose argmax flips
  # under rounding and lift the noise floor 100-fold within three steps
  smooth = lambda: np.asarray(jax.image.resize(rng.uniform(0, 1, (BATCH, 4, 4, 3)).astype(np.float32),
                                               (BATCH, 32, 32, 3), "bilinear"))
  batches = [(smooth(), rng.integers(0, 10, BATCH).astype(np.int32)) for _ in range(STEPS)]
  return jax.device_get(params), jax.device_get(variables["batch_stats"]), batches


@pytest.mark.parametrize("name", sorted(TWINS))
@pytest.mark.parametrize("case", sorted(KERAS_OPTIMIZERS))
def test_cnnzoo_trains_like_keras_step_by_step(case, name):
  params, stats, batches = start(name)
  _, twin, names = TWINS[name]
  kmodel = twin()
  copy_into_keras(kmodel, params, stats, *names())
  kmodel.compile(optimizer=KERAS_OPTIMIZERS[case](), jit_compile=True,
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  theirs = np.array([float(kmodel.train_on_batch(x, y)) for x, y in batches])
  ours = our_losses(name, case, "keras", params, stats, batches)
  # The noise floor: the largest loss change of NUDGES reruns from weights nudged by one part in 1e7
  # (each a different random sign pattern). One nudge is not enough: the change it causes swings by
  # orders of magnitude with the sign pattern (ResNet-8, SGD: 0 at every step for one pattern, up to
  # 7e-5 for another; Adam's first update follows the sign of near-zero gradients), and a gap
  # within 10x of one unlucky pattern's floor failed on another machine. Measured over 8 patterns
  # (AMD EPYC): every gap is below 1.5x the largest floor, so 10x leaves a margin of 6 or more.
  floor = np.max([np.abs(our_losses(name, case, "keras", nudged(params, seed), stats, batches) - ours)
                  for seed in range(1, NUDGES + 1)], axis=0)
  floor = np.maximum(floor, 4 * np.finfo(np.float32).eps * np.abs(ours))  # at least a few ulps of the loss
  gap = np.abs(ours - theirs)
  assert np.all(gap <= 10 * floor), (case, gap, floor, ours, theirs)
  if case == "adam" and name == "minivggnet":  # optax's Adam (the default before) is visibly not
    # Keras': after the first update (loss 2) it is 8.9e-5 from Keras against our 1.4e-6, and 2.9x
    # the largest floor (3.0e-5); later steps are chaos. (On ResNet-8 it is within the floor.) With
    # XLA's convolutions: under oneDNN's (and Eigen's) the floor after Adam's first update is 2.9e-4,
    # as Adam's first step follows the sign of near-zero gradients, and hides the difference.
    with dispatch.use(dispatch.active().without_ffi()):
      ours_x, optax_x = (our_losses(name, case, s, params, stats, batches[:2], XLA_STEP) for s in ("keras", "optax"))
      floor_x = np.max([np.abs(our_losses(name, case, "keras", nudged(params, seed), stats, batches[:2], XLA_STEP)
                               - ours_x) for seed in range(1, NUDGES + 1)], axis=0)
    gap_x, optax_gap = np.abs(ours_x - theirs[:2]), np.abs(optax_x - theirs[:2])
    assert optax_gap[1] > max(10 * gap_x[1], floor_x[1]), (optax_gap, gap_x, floor_x)
  # (SGD's two forms differ by 0.81 (lr0 - lr1) g0 from the third step on, which this chaotic
  # four-step run cannot tell from its noise; tests/test_keras_optim.py shows it on the optimizer)
