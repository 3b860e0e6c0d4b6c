"""Pure train and eval steps. Settings are bound with functools.partial before jax.jit."""

import contextlib
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from cnnzoo.training import trainable
from cnnzoo.training.measures import Measures, default_measures
from cnnzoo.training.optim import l2_penalty
from cnnzoo.training.state import TrainState


def cross_entropy(logits, labels, num_classes: int, label_smoothing: float = 0.0):
  """Per-example softmax cross-entropy with optional label smoothing."""
  targets = jax.nn.one_hot(labels, num_classes)
  if label_smoothing:
    targets = optax.smooth_labels(targets, label_smoothing)
  return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)


def train_step(state: TrainState, batch: dict, *, preprocess: Callable, num_classes: int,
               measures: Measures | None = None,
               l2: float = 0.0, l2_conv_only: bool = False, label_smoothing: float = 0.0,
               aux_weight: float = 0.3, inference_modules: tuple = ()):
  """One optimizer step on a global batch; returns the new state and the summed loss, image count
  and `measures`' train metrics.

  The loss is the batch-mean cross-entropy, plus `aux_weight` times that of every auxiliary
  classifier the model sows in `aux_logits` (GoogLeNet's two heads; 0.3 in Szegedy et al. 2014),
  plus Keras-style L2 on kernels (Keras reports that sum as `loss`, so do we). Augmentation and
  dropout keys come from fold_in(state.rng, state.step). The modules at the paths
  `inference_modules` (frozen BatchNorm layers, or a frozen base: trainable.py) run in inference mode.
  """
  step_key = jax.random.fold_in(state.rng, state.step)
  aug_key, dropout_key = jax.random.split(step_key)
  images = preprocess(aug_key, batch["image"])
  labels = batch["label"]

  def loss_fn(params):
    with contextlib.ExitStack() as stack:
      if inference_modules:
        stack.enter_context(nn.intercept_methods(trainable.inference_modules(inference_modules)))
      logits, updates = state.apply_fn(state.variables(params), images, train=True,
                                       rngs={"dropout": dropout_key}, mutable=["batch_stats", "aux_logits"])
    ce = cross_entropy(logits, labels, num_classes, label_smoothing).mean()
    for aux in jax.tree.leaves(updates.get("aux_logits", {})):
      ce = ce + aux_weight * cross_entropy(aux, labels, num_classes, label_smoothing).mean()
    return ce + l2_penalty(params, l2, l2_conv_only), (logits, updates)

  (loss, (logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  new_state = state.apply_gradients(grads=grads, batch_stats=updates.get("batch_stats", {}))
  n = labels.shape[0]
  metrics = {"loss": loss * n, **(measures or default_measures()).sums("train", logits, labels),
             "count": jnp.int32(n)}
  return new_state, metrics


def zero_metrics(measures: Measures | None = None) -> dict:
  """The sums of `train_step`'s metrics before the first step (`train_steps` adds to them)."""
  return (measures or default_measures()).zeros()


def train_steps(state: TrainState, sums: dict, batches: dict, count, *, step: Callable):
  """`count` steps of `step(state, batch)` over the first `count` of the stacked `batches` (each
  leaf K x the batch), as one compiled loop; `sums` are the metric sums so far, added to in the
  order the per-step loop adds them. `count` is traced: one compilation serves every count <= K,
  so the results do not depend on how an epoch is cut into calls."""
  def body(i, carry):
    state, sums = carry
    state, metrics = step(state, jax.tree.map(lambda b: b[i], batches))
    return state, jax.tree.map(jnp.add, sums, metrics)

  return jax.lax.fori_loop(0, count, body, (state, sums))


def eval_step(state: TrainState, batch: dict, *, preprocess: Callable, num_classes: int,
              measures: Measures | None = None,
              l2: float = 0.0, l2_conv_only: bool = False):
  """Summed loss, `measures`' evaluation metrics and count over the valid (mask) examples of one
  padded batch, and the batch's class probabilities (N, classes) float32 (padded rows included: the caller drops them).

  `preprocess` gives V views per image (V, N, h, w, C); with V > 1 (10-crop) the prediction is
  the mean of the views' softmax probabilities, and the loss is the cross-entropy of that mean.
  """
  views = preprocess(batch["image"])
  v, n = views.shape[:2]
  logits = state.apply_fn(state.variables(), views.reshape(v * n, *views.shape[2:]), train=False)
  if v == 1:
    logits = logits.astype(jnp.float32)
  else:  # log of the averaged probabilities: softmax of it is that average again
    probs = jax.nn.softmax(logits.astype(jnp.float32).reshape(v, n, -1), axis=-1)
    logits = jnp.log(jnp.maximum(jnp.mean(probs, axis=0), jnp.finfo(jnp.float32).tiny))
  mask = batch["mask"]
  ce = cross_entropy(logits, batch["label"], num_classes)
  count = jnp.sum(mask)
  # Keras' evaluate() adds the regularization losses to val_loss too; per example that is the penalty.
  loss = jnp.sum(jnp.where(mask, ce, 0.0)) + l2_penalty(state.params, l2, l2_conv_only) * count
  metrics = {"loss": loss, **(measures or default_measures()).sums("eval", logits, batch["label"], mask),
             "count": count}
  return metrics, jax.nn.softmax(logits, axis=-1)
