"""Optimizers: a registry, cnnzoo's own optimizers its entries, and what wraps any of them.

An optimizer is `fn(learning_rate, config) -> optax.GradientTransformation`, registered with
`@register_optimizer(NAME, settings={...})`; `learning_rate` is a schedule (a function of the
optimizer's step count) or a float; its settings are fields of config.optim beside the fields
every optimizer shares (name, lr, l2, l2_conv_only, label_smoothing, aux_loss_weight,
clip_grad_norm, trainable). Learning-rate schedules: training/schedules.py.
"""

import jax
import jax.numpy as jnp
import optax

from cnnzoo.errors import ConfigError
from cnnzoo.registry import Registry, setting
from cnnzoo.training import keras_optim

OPTIMIZERS = Registry("optimizer", section="optim", reserved=(
    "name", "lr", "l2", "l2_conv_only", "label_smoothing", "aux_loss_weight", "clip_grad_norm", "trainable"))
register_optimizer = OPTIMIZERS.register


def kernel_mask(params):
  """True for convolution and dense kernels: the weights Keras' kernel_regularizer and decoupled
  weight decay act on (biases and BatchNorm scales are left alone)."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: getattr(path[-1], "key", None) == "kernel", params)


def l2_penalty(params, l2: float, conv_only: bool = False):
  """Keras' l2(reg) summed over every kernel: reg * sum(w ** 2) (no 1/2 factor); `conv_only`: over
  the convolution kernels (4-D) alone, as code that regularizes only its Conv2D layers has it."""
  if not l2:
    return jnp.zeros((), jnp.float32)
  keep = lambda p, m: m and (p.ndim == 4 or not conv_only)
  leaves = jax.tree.leaves(jax.tree.map(lambda p, m: jnp.sum(jnp.square(p)) if keep(p, m) else 0.0,
                                        params, kernel_mask(params)))
  return l2 * sum(leaves)


def with_plateau_scale(tx: optax.GradientTransformation) -> optax.GradientTransformation:
  """`tx` followed by a factor kept in its state (`step_size`, 1.0 at first), which
  ReduceLROnPlateau lowers between epochs (callbacks.with_lr_scale)."""
  return optax.chain(tx, optax.inject_hyperparams(optax.scale)(step_size=1.0))


def build_optimizer(config, schedule, labels=None, plateau: bool = False) -> optax.GradientTransformation:
  """The optimizer of config.optim driven by `schedule`, clipped by `clip_grad_norm`.

  `labels` (params -> "train" / "frozen" per leaf, trainable.py) freezes parameters: they get no
  update and no optimizer state. `plateau`: a factor ReduceLROnPlateau lowers (callbacks.py), kept
  in the state as `step_size`: with optax's arithmetic a scale after the optimizer (its learning
  rate is one); with Keras' it multiplies the learning rate itself, as Keras sets
  `optimizer.learning_rate` -- not the same for momentum SGD and RMSprop, which keep the rate
  inside the velocity.
  """
  keras_plateau = plateau and config.optim.get("semantics", "optax") == "keras"
  if keras_plateau:
    tx = optax.inject_hyperparams(lambda step_size: _optimizer(config, lambda c: schedule(c) * step_size))(
        step_size=1.0)
  else:
    tx = _optimizer(config, schedule)
  if labels is not None:
    tx = optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)
  return with_plateau_scale(tx) if plateau and not keras_plateau else tx


def _optimizer(config, learning_rate) -> optax.GradientTransformation:
  """The registered optimizer of config.optim.name, checked, then clipped."""
  entry = OPTIMIZERS.get(config.optim.name)
  tx = entry.fn(learning_rate, config)
  if not isinstance(tx, optax.GradientTransformation):
    raise ConfigError(f"optimizer {entry.name!r} ({entry.module}.{entry.fn.__name__}) returned "
                      f"{type(tx).__name__}, not an optax.GradientTransformation")
  if config.optim.get("clip_grad_norm"):
    return optax.chain(optax.clip_by_global_norm(config.optim.clip_grad_norm), tx)
  return tx


_FRACTION = dict(low=0, high=1, high_open=True)
SEMANTICS = setting("optax", "optax | keras: Keras 3's update arithmetic (keras_optim.py)", choices=("optax", "keras"))
WEIGHT_DECAY = setting(0.0, "decoupled weight decay on kernels (AdamW for Adam; before momentum for SGD "
                       "and RMSprop, as PyTorch does)", low=0)
EPS = setting(1e-7, "Keras' default epsilon", low=0, low_open=True)
MOMENTUM = setting(0.0, "", **_FRACTION)


def _no_keras_decay(o) -> None:
  if o.weight_decay:
    raise ConfigError("optim.weight_decay has no Keras form here; with optim.semantics=keras use optim.l2 "
                      "(the Keras kernel_regularizer the journal uses) or optim.semantics=optax")


def _decayed(o, tx):
  return optax.chain(optax.add_decayed_weights(o.weight_decay, mask=kernel_mask), tx) if o.weight_decay else tx


@register_optimizer("sgd", settings={"semantics": SEMANTICS, "momentum": MOMENTUM, "nesterov": setting(False),
                                     "weight_decay": WEIGHT_DECAY})
def sgd(learning_rate, config):
  o = config.optim
  if o.semantics == "keras":
    _no_keras_decay(o)
    return keras_optim.sgd(learning_rate, momentum=o.momentum, nesterov=o.nesterov)
  return _decayed(o, optax.sgd(learning_rate, momentum=o.momentum or None, nesterov=o.nesterov))


@register_optimizer("adam", settings={"semantics": SEMANTICS, "b1": setting(0.9, "", **_FRACTION),
                                      "b2": setting(0.999, "", **_FRACTION), "eps": EPS, "weight_decay": WEIGHT_DECAY})
def adam(learning_rate, config):
  o = config.optim
  if o.semantics == "keras":
    _no_keras_decay(o)
    return keras_optim.adam(learning_rate, b1=o.b1, b2=o.b2, eps=o.eps)
  if o.weight_decay:
    return optax.adamw(learning_rate, b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay, mask=kernel_mask)
  return optax.adam(learning_rate, b1=o.b1, b2=o.b2, eps=o.eps)


@register_optimizer("rmsprop", settings={"semantics": SEMANTICS, "rho": setting(0.9, "", **_FRACTION), "eps": EPS,
                                         "momentum": MOMENTUM, "weight_decay": WEIGHT_DECAY})
def rmsprop(learning_rate, config):
  o = config.optim
  if o.semantics == "keras":
    _no_keras_decay(o)
    return keras_optim.rmsprop(learning_rate, rho=o.rho, eps=o.eps, momentum=o.momentum)
  return _decayed(o, optax.rmsprop(learning_rate, decay=o.rho, eps=o.eps, momentum=o.momentum or None))
