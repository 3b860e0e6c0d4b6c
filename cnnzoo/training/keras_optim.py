"""Keras 3's update rules as optax GradientTransformations (`optim.semantics = "keras"`).

optax and Keras agree on what SGD, Adam and RMSprop are, not on their arithmetic, and the
differences grow over a run (keras/src/optimizers/{sgd,adam,rmsprop}.py, Keras 3):

- SGD with momentum keeps the learning rate inside the velocity: m = momentum * m - lr * g, then
  w += m (Nesterov: w += momentum * m - lr * g). optax keeps lr outside (m = g + momentum * m,
  w -= lr * m), which differs as soon as the rate changes (time-based decay, step decay).
- Adam folds both bias corrections into the step size and adds epsilon to the raw sqrt(v):
  w -= m * (lr * sqrt(1 - b2^t) / (1 - b1^t)) / (sqrt(v) + eps), with m += (g - m) * (1 - b1) and
  v += (g^2 - v) * (1 - b2). optax adds epsilon to the bias-corrected sqrt(v_hat), an epsilon
  sqrt(1 - b2^t) times smaller: 3e-3 relative after three steps on MiniVGGNet.
- RMSprop: w -= lr * g / sqrt(v + eps) (epsilon inside the root, as Keras 3 has it; Keras 2 added
  it outside), with momentum: m = momentum * m + lr * g / sqrt(v + eps), w -= m.

Each takes the learning rate as a function of its step count (0 for the first update), as Keras
evaluates a LearningRateSchedule at `optimizer.iterations` before the update; the same
expressions in the same order, so float32 results match Keras' up to XLA's fusion choices.
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax


class KerasState(NamedTuple):
  count: jax.Array  # updates done (Keras' optimizer.iterations)
  first: optax.Updates | None  # SGD / RMSprop momentum, Adam m (None when unused)
  second: optax.Updates | None  # Adam v, RMSprop velocity (None when unused)


def _zeros(params):
  return jax.tree.map(jnp.zeros_like, params)


def _empty(params):
  del params
  return None  # no arrays at all (orbax refuses zero-size ones)


def sgd(learning_rate: Callable, momentum: float = 0.0, nesterov: bool = False) -> optax.GradientTransformation:

  def init(params):
    return KerasState(jnp.zeros([], jnp.int32), _zeros(params) if momentum else _empty(params), _empty(params))

  def update(grads, state, params=None):
    del params
    lr = jnp.asarray(learning_rate(state.count), jnp.float32)
    if not momentum:
      return jax.tree.map(lambda g: -(g * lr.astype(g.dtype)), grads), state._replace(count=state.count + 1)
    mom = jnp.float32(momentum)
    new_m = jax.tree.map(lambda m, g: m * mom.astype(m.dtype) - g * lr.astype(g.dtype), state.first, grads)
    if nesterov:
      updates = jax.tree.map(lambda m, g: m * mom.astype(m.dtype) - g * lr.astype(g.dtype), new_m, grads)
    else:
      updates = new_m
    return updates, KerasState(state.count + 1, new_m, state.second)

  return optax.GradientTransformation(init, update)


def adam(learning_rate: Callable, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-7) -> optax.GradientTransformation:

  def init(params):
    return KerasState(jnp.zeros([], jnp.int32), _zeros(params), _zeros(params))

  def update(grads, state, params=None):
    del params
    lr = jnp.asarray(learning_rate(state.count), jnp.float32)
    step = (state.count + 1).astype(jnp.float32)
    alpha = lr * jnp.sqrt(1 - jnp.power(jnp.float32(b2), step)) / (1 - jnp.power(jnp.float32(b1), step))
    m = jax.tree.map(lambda m, g: m + (g - m) * (1 - b1), state.first, grads)
    v = jax.tree.map(lambda v, g: v + (jnp.square(g) - v) * (1 - b2), state.second, grads)
    updates = jax.tree.map(lambda m, v: -((m * alpha.astype(m.dtype)) / (jnp.sqrt(v) + eps)), m, v)
    return updates, KerasState(state.count + 1, m, v)

  return optax.GradientTransformation(init, update)


def rmsprop(learning_rate: Callable, rho: float = 0.9, eps: float = 1e-7, momentum: float = 0.0
            ) -> optax.GradientTransformation:

  def init(params):
    return KerasState(jnp.zeros([], jnp.int32), _zeros(params) if momentum else _empty(params), _zeros(params))

  def update(grads, state, params=None):
    del params
    lr = jnp.asarray(learning_rate(state.count), jnp.float32)
    velocity = jax.tree.map(lambda v, g: rho * v + (1 - rho) * jnp.square(g), state.second, grads)
    increment = jax.tree.map(lambda v, g: (lr.astype(g.dtype) * g) / jnp.sqrt(v + eps), velocity, grads)
    if not momentum:
      return jax.tree.map(jnp.negative, increment), KerasState(state.count + 1, state.first, velocity)
    mom = jax.tree.map(lambda m, inc: momentum * m + inc, state.first, increment)
    return jax.tree.map(jnp.negative, mom), KerasState(state.count + 1, mom, velocity)

  return optax.GradientTransformation(init, update)
