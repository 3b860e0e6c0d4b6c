"""cnnzoo/kernels/xla.py: the CPU kernel gradient as chunked im2col matmuls; kernels/dispatch.py's choice.

Tolerance: every kernel-gradient entry is a sum of K = N * Ho * Wo products, which float32 adds in
some order; any order is within K * 2^-24 * sum(|x| |dy|) of the exact sum (the classic bound for
recursive summation, products exact to 2^-24 each). Both XLA's gradient and the im2col one must be
within it of a float64 NumPy reference; a misplaced tap or channel is off by O(1) of that sum."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from cnnzoo.errors import ConfigError
from cnnzoo.kernels import dispatch, xla
from cnnzoo.kernels.settings import Settings
from cnnzoo.models.layers import Conv

EPS32 = 2.0 ** -24


def numpy_kernel_grad(x, dy, kshape, strides, pads):
  """float64 reference and the summation bound's scale sum(|patch| |dy|), per kernel entry."""
  kh, kw, cin, cout = kshape
  x = np.pad(np.asarray(x, np.float64), ((0, 0), pads[0], pads[1], (0, 0)))
  dy = np.asarray(dy, np.float64)
  n, ho, wo, _ = dy.shape
  grad, scale = np.zeros(kshape), np.zeros(kshape)
  for i in range(kh):
    for j in range(kw):
      tap = x[:, i:i + (ho - 1) * strides[0] + 1:strides[0], j:j + (wo - 1) * strides[1] + 1:strides[1], :]
      grad[i, j] = np.einsum("nhwc,nhwo->co", tap, dy)
      scale[i, j] = np.einsum("nhwc,nhwo->co", np.abs(tap), np.abs(dy))
  return grad, scale, n * ho * wo


CASES = [  # N, H, W, Cin, Cout, kernel, strides, padding
    (6, 9, 9, 3, 4, (3, 3), (1, 1), "SAME"),
    (4, 10, 8, 5, 3, (3, 3), (2, 2), "SAME"),  # even size, stride 2: Keras' asymmetric padding
    (3, 11, 11, 2, 6, (5, 5), (1, 1), "VALID"),
    (5, 7, 7, 4, 4, (1, 7), (1, 1), "SAME"),  # Inception's factorized kernels
    (4, 8, 8, 6, 5, (1, 1), (2, 2), "SAME"),  # a ResNet projection
]


@pytest.mark.parametrize("n,h,w,cin,cout,kernel,strides,padding", CASES)
def test_im2col_kernel_gradient_equals_the_exact_one_within_the_summation_bound(
    n, h, w, cin, cout, kernel, strides, padding, monkeypatch):
  monkeypatch.setattr(xla, "CHUNK_BYTES", 1)  # one image per chunk: the scan over chunks runs
  rng = np.random.default_rng(0)
  x = rng.normal(size=(n, h, w, cin)).astype(np.float32)
  kshape = (*kernel, cin, cout)
  pads = lax.padtype_to_pads((h, w), kernel, strides, padding)
  wgt = rng.normal(size=kshape).astype(np.float32)
  dy = rng.normal(size=lax.conv_general_dilated(x, wgt, strides, pads, dimension_numbers=xla.NHWC).shape)
  dy = dy.astype(np.float32)
  exact, scale, k = numpy_kernel_grad(x, dy, kshape, strides, pads)
  bound = k * EPS32 * scale
  ours = np.asarray(jax.jit(lambda x, dy: xla.im2col_kernel_grad(x, dy, kshape, strides, pads))(x, dy))
  xlas = np.asarray(xla.reference_kernel_grad(x, wgt, dy, strides, pads))
  assert np.all(np.abs(ours - exact) <= bound) and np.all(np.abs(xlas - exact) <= bound)


@pytest.mark.parametrize("n,h,w,cin,cout,kernel,strides,padding", CASES + [
    (2, 7, 6, 3, 2, (3, 3), (2, 2), "VALID"), (2, 9, 9, 3, 3, (3, 3), (3, 3), ((1, 3), (2, 0)))])
def test_the_input_gradient_is_xlas_bitwise(n, h, w, cin, cout, kernel, strides, padding):
  """xla.input_grad is the sum XLA's VJP builds, written as a plain convolution: the same bits
  (strides that skip input rows, asymmetric and one-sided padding included)."""
  rng = np.random.default_rng(1)
  x = rng.normal(size=(n, h, w, cin)).astype(np.float32)
  wgt = rng.normal(size=(*kernel, cin, cout)).astype(np.float32)
  pads = lax.padtype_to_pads((h, w), kernel, strides, padding) if isinstance(padding, str) else padding
  y, vjp = jax.vjp(lambda x: lax.conv_general_dilated(x, wgt, strides, pads, dimension_numbers=xla.NHWC), x)
  dy = rng.normal(size=y.shape).astype(np.float32)
  ours = jax.jit(lambda dy: xla.input_grad(dy, wgt, (h, w), strides, pads))(dy)
  assert ours.shape == x.shape and np.array_equal(ours, jax.jit(lambda dy: vjp(dy)[0])(dy))


def test_the_conv_layer_keeps_xlas_forward_and_input_gradient():
  """Through layers.Conv: the output and the input gradient are XLA's, bitwise; the kernel
  gradient is the im2col one (within the bound of the test above); bias gradients equal. (With
  XLA's convolutions: CNNZOO_CPU_CONV=auto would give oneDNN's, tests/test_onednn.py.)"""
  x = jax.random.normal(jax.random.key(0), (4, 12, 12, 3))
  layer = Conv(8, (3, 3), strides=(2, 2), padding="SAME")
  params = layer.init(jax.random.key(1), x)

  def grads(setting):
    loss = lambda p, x: jnp.sum(jnp.sin(layer.apply(p, x)))
    with dispatch.use(dispatch.resolve(Settings("ynnpack", setting), "cpu", 1)):
      return jax.jit(lambda p, x: (layer.apply(p, x), jax.grad(loss, argnums=(0, 1))(p, x)))(params, x)

  (y_ours, (gp_ours, gx_ours)), (y_xla, (gp_xla, gx_xla)) = grads("im2col"), grads("xla")
  assert np.array_equal(y_ours, y_xla) and np.array_equal(gx_ours, gx_xla)
  assert np.array_equal(gp_ours["params"]["bias"], gp_xla["params"]["bias"])
  pads = lax.padtype_to_pads((12, 12), (3, 3), (2, 2), "SAME")
  exact, scale, k = numpy_kernel_grad(x, np.cos(np.asarray(y_xla, np.float64)), (3, 3, 3, 8), (2, 2), pads)
  for got in (gp_ours["params"]["kernel"], gp_xla["params"]["kernel"]):
    assert np.all(np.abs(np.asarray(got) - exact) <= k * EPS32 * scale + 1e-6 * scale)  # + cos' rounding


def jaxpr(f, *args, settings=Settings("ynnpack"), platform="cpu", devices=1):
  with dispatch.use(dispatch.resolve(settings, platform, devices)):
    return str(jax.make_jaxpr(f)(*args))


def test_auto_gives_every_plain_convolution_on_one_cpu_device_its_own_vjp():
  uses = lambda n, k=3, s=1, **where: "custom_vjp" in jaxpr(
      lambda x: dispatch.conv_general_dilated(x, jnp.zeros((k, k, 32, 32)), (s, s), "SAME", dimension_numbers=xla.NHWC),
      jnp.zeros((n, 32, 32, 32)), **where)
  # any size (LeNet's small layers too: one form inside and outside an epoch loop), 1x1 and strided
  assert jax.default_backend() == "cpu" and uses(1) and uses(8)
  assert uses(1, k=1) and uses(1, k=1, s=2)
  # under Eigen's convolutions (CNNZOO_CPU_CONV=eigen) too, wide patches included
  assert "custom_vjp" in jaxpr(
      lambda x: dispatch.conv_general_dilated(x, jnp.zeros((3, 3, 64, 64)), (1, 1), "SAME", dimension_numbers=xla.NHWC),
      jnp.zeros((8, 32, 32, 64)), settings=Settings("eigen"))
  assert not uses(8, settings=Settings(kernel_grad="xla")) and not uses(8, k=1, settings=Settings(kernel_grad="xla"))
  # not over several devices (collectives inside a scan), nor on a GPU, unless forced (im2col)
  assert not uses(8, devices=8) and not uses(8, platform="gpu")
  assert uses(8, devices=8, settings=Settings(kernel_grad="im2col"))
  # chunks: the largest divisor of the batch whose patch matrix fits CHUNK_BYTES (4 MiB)
  assert xla.images_per_chunk(128, 32 * 32 * 9 * 32 * 4) == 2  # 1.2 MB an image
  assert xla.images_per_chunk(128, 32 * 32 * 9 * 3 * 4) == 32  # 110 KB: 37 fit, 32 divides 128
  assert xla.images_per_chunk(6, 10 ** 9) == 1
  with pytest.raises(ConfigError, match="^CNNZOO_CONV_KERNEL_GRAD must be auto, xla or im2col, not 'cudnn'$"):
    Settings(kernel_grad="cudnn")
