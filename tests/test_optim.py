"""Optimizer wiring: Keras-style L2 in the loss on kernels only, decoupled weight decay, names."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnnzoo import models
from cnnzoo.errors import ConfigError
from cnnzoo.training import components, optim, steps
from cnnzoo.training import state as state_lib


def optim_cfg(**fields):
  """A whole config whose optim section has `fields` (and its optimizer's other settings)."""
  from configs import base
  c = base.get_config()
  c.optim.update(fields)
  components.resolve(c)
  return c


@pytest.fixture(scope="module")
def lenet_params():
  model = models.create_model("lenet5", num_classes=10)
  return model, jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 32, 32, 1)))["params"]


def test_kernel_mask_selects_conv_and_dense_kernels_only(lenet_params):
  _, params = lenet_params
  mask = optim.kernel_mask(params)
  flat = {jax.tree_util.keystr(p): m for p, m in jax.tree_util.tree_leaves_with_path(mask)}
  assert sum(flat.values()) == 5 and len(flat) == 10
  assert all(m == k.endswith("['kernel']") for k, m in flat.items())


def test_l2_penalty_is_keras_sum_of_squares(lenet_params):
  _, params = lenet_params
  expected = 5e-4 * sum(float(jnp.sum(p["kernel"] ** 2)) for p in params.values())
  np.testing.assert_allclose(float(optim.l2_penalty(params, 5e-4)), expected, rtol=1e-6)
  assert float(optim.l2_penalty(params, 0.0)) == 0.0


def test_train_step_loss_is_cross_entropy_plus_l2(lenet_params):
  model, _ = lenet_params
  tx = optax.sgd(0.1)
  state = state_lib.create(model, tx, (32, 32, 1), seed=0)
  images = jax.random.randint(jax.random.key(1), (8, 32, 32, 1), 0, 256).astype(jnp.uint8)
  labels = jnp.arange(8) % 10
  preprocess = lambda key, x: x.astype(jnp.float32) / 255.0
  # jitted: eagerly, each op of the model would compile a program of its own (~40 of them)
  ce = float(jax.jit(lambda p: optax.softmax_cross_entropy_with_integer_labels(
      model.apply({"params": p}, images / 255.0), labels).mean())(state.params))
  penalty = float(jax.jit(lambda p: optim.l2_penalty(p, 1e-2))(state.params))
  step = functools.partial(steps.train_step, preprocess=preprocess, num_classes=10, l2=1e-2)
  _, metrics = jax.jit(step)(state, {"image": images, "label": labels})
  np.testing.assert_allclose(float(metrics["loss"]) / 8, ce + penalty, rtol=1e-5)
  assert int(metrics["count"]) == 8


@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop"])
def test_decoupled_weight_decay_acts_on_kernels_only(name, lenet_params):
  _, params = lenet_params
  tx = optim.build_optimizer(optim_cfg(name=name, weight_decay=0.1), optax.constant_schedule(1.0))
  zero = jax.tree.map(jnp.zeros_like, params)
  updates, _ = jax.jit(tx.update)(zero, jax.jit(tx.init)(params), params)  # eager: one compile per op and shape
  for layer in params:
    assert np.all(np.asarray(updates[layer]["bias"]) == 0)
    assert np.any(np.asarray(updates[layer]["kernel"]) != 0)


def test_sgd_nesterov_matches_optax(lenet_params):
  _, params = lenet_params
  grads = jax.tree.map(jnp.ones_like, params)
  tx = optim.build_optimizer(optim_cfg(name="sgd", momentum=0.9, nesterov=True), optax.constant_schedule(0.01))
  ref = optax.sgd(0.01, momentum=0.9, nesterov=True)
  s, r = jax.jit(tx.init)(params), jax.jit(ref.init)(params)
  update, ref_update = jax.jit(tx.update), jax.jit(ref.update)  # one program each, not one per op
  for _ in range(3):
    u, s = update(grads, s, params)
    v, r = ref_update(grads, r, params)
  jax.tree.map(np.testing.assert_array_equal, u, v)


def test_unknown_optimizer_is_a_config_error():
  with pytest.raises(ConfigError, match=r"^--config.optim.name='adagrad': no such optimizer; did you mean adam\? "
                                        r"registered: adam, rmsprop, sgd$"):
    optim_cfg(name="adagrad")


def test_auxiliary_classifier_losses_are_added_with_their_weight():
  import flax.linen as nn

  class TwoHeads(nn.Module):  # a stand-in for GoogLeNet's main + auxiliary classifiers
    @nn.compact
    def __call__(self, x, train=False):
      x = x.reshape((x.shape[0], -1))
      self.sow("aux_logits", "aux1", nn.Dense(10, name="aux")(x))
      return nn.Dense(10, name="main")(x)

  model = TwoHeads()
  state = state_lib.create(model, optax.sgd(0.1), (4, 4, 1), seed=0)
  images = jax.random.randint(jax.random.key(1), (8, 4, 4, 1), 0, 256).astype(jnp.uint8)
  labels = jnp.arange(8) % 10
  main, sown = model.apply({"params": state.params}, images / 255.0, mutable=["aux_logits"])
  ce = lambda logits: float(optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean())
  step = functools.partial(steps.train_step, preprocess=lambda k, x: x.astype(jnp.float32) / 255.0,
                           num_classes=10, aux_weight=0.3)
  _, metrics = jax.jit(step)(state, {"image": images, "label": labels})
  expected = ce(main) + 0.3 * ce(sown["aux_logits"]["aux1"][0])
  np.testing.assert_allclose(float(metrics["loss"]) / 8, expected, rtol=1e-5)


def test_l2_on_the_convolutions_only():
  """optim.l2_conv_only: Keras code that regularizes its Conv2D layers and not its Dense (the Keras
  ResNet example, seed 004) -- the 4-D kernels count, the 2-D ones and every bias do not."""
  import jax.numpy as jnp
  from cnnzoo.training.optim import l2_penalty
  params = {"conv": {"kernel": jnp.full((3, 3, 2, 4), 2.0), "bias": jnp.ones(4)},
            "head": {"kernel": jnp.full((4, 10), 3.0), "bias": jnp.ones(10)}}
  assert float(l2_penalty(params, 0.5)) == 0.5 * (72 * 4.0 + 40 * 9.0)
  assert float(l2_penalty(params, 0.5, conv_only=True)) == 0.5 * 72 * 4.0
