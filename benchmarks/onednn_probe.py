"""How fast oneDNN's convolutions would make cnnzoo's train step on the CPU (issue 11.2's lever).

  pip install -r requirements-bench.txt      # PyTorch and onednn-cpu-gomp (oneDNN 3.2, CPU only)
  python -m benchmarks.onednn_probe          # per shape: oneDNN vs cnnzoo's XLA forms (ms)
  python -m benchmarks.onednn_probe --whole_step --models=minivggnet,resnet20_v1 --rounds=3

oneDNN is called through its C API with ctypes (the wheel ships `libdnnl.so.3` and no headers, so the
few enum values used are oneDNN 3.2's, from `dnnl_types.h`): NHWC activations in place, the weights
reordered from HWIO into the blocked layout oneDNN picks (`format_tag_any`), which is what lets it run
its brgemm / JIT kernels in all three passes (with plain HWIO weights both backward passes fall back to
im2col + GEMM, `x64:gemm:jit`, no faster than cnnzoo's). `--whole_step` swaps every plain convolution
of the models for a `jax.pure_callback` into these primitives (custom VJP: forward, input gradient,
kernel gradient) and times the jitted train step beside PyTorch's in one process: a probe of the gain,
not a way to train (each callback copies its output and holds the GIL; a `jax.ffi` handler would not).
"""

import ctypes
import functools
import os
import statistics
import sys
import time

from absl import app, flags

from benchmarks import torch_twins, vs_pytorch  # vs_pytorch: its --models and --rounds (alternated rounds of 5 steps) apply here too

_WHOLE = flags.DEFINE_bool("whole_step", False, "Time whole train steps with oneDNN's convolutions vs PyTorch.")

# oneDNN 3.2's C API values (include/oneapi/dnnl/dnnl_types.h)
F32, TAG_ANY, CPU, IN_ORDER = 3, 1, 1, 1
FORWARD_TRAINING, CONVOLUTION_DIRECT = 64, 1
ARG_SRC, ARG_DST, ARG_WEIGHTS, ARG_DIFF_SRC, ARG_DIFF_DST, ARG_DIFF_WEIGHTS = 1, 17, 33, 129, 145, 161
QUERY_IMPL_INFO_STR, QUERY_WEIGHTS_MD, QUERY_DIFF_WEIGHTS_MD = 8, 131, 132
# (batch, height, width, in channels, out channels, kernel, stride, padding): MiniVGGNet's and ResNet-20's
SHAPES = [(128, 32, 32, 3, 32, 3, 1, 1), (128, 32, 32, 32, 32, 3, 1, 1), (128, 16, 16, 32, 64, 3, 1, 1),
          (128, 16, 16, 64, 64, 3, 1, 1), (128, 32, 32, 16, 16, 3, 1, 1), (128, 16, 16, 32, 32, 3, 1, 1),
          (128, 8, 8, 64, 64, 3, 1, 1), (128, 32, 32, 16, 32, 3, 2, 1)]


class _Arg(ctypes.Structure):
  _fields_ = [("arg", ctypes.c_int), ("memory", ctypes.c_void_p)]


class OneDNN:
  """The library, a CPU engine and an in-order stream."""

  def __init__(self):
    path = os.environ.get("CNNZOO_DNNL_LIB", os.path.join(sys.prefix, "lib", "libdnnl.so.3"))
    if not os.path.exists(path):
      sys.exit(f"error: no oneDNN at {path}; pip install -r requirements-bench.txt (onednn-cpu-gomp) "
               "or set CNNZOO_DNNL_LIB to a libdnnl.so.3")
    self.lib = ctypes.CDLL(path)
    self.lib.dnnl_primitive_desc_query_md.restype = ctypes.c_void_p
    self.lib.dnnl_memory_desc_get_size.restype = ctypes.c_size_t
    self.engine, self.stream = ctypes.c_void_p(), ctypes.c_void_p()
    self.call("dnnl_engine_create", ctypes.byref(self.engine), CPU, 0)
    self.call("dnnl_stream_create", ctypes.byref(self.stream), self.engine, IN_ORDER)

  def call(self, name, *args):
    status = getattr(self.lib, name)(*args)
    if status != 0:
      raise RuntimeError(f"{name}: oneDNN status {status}")

  def md(self, dims, strides=None):
    """A memory descriptor: logical dims (N, C, H, W) or (O, I, KH, KW); `strides` None = any layout."""
    m, d = ctypes.c_void_p(), ctypes.c_int64 * 12
    if strides is None:
      self.call("dnnl_memory_desc_create_with_tag", ctypes.byref(m), 4, d(*dims), F32, TAG_ANY)
    else:
      self.call("dnnl_memory_desc_create_with_strides", ctypes.byref(m), 4, d(*dims), F32, d(*strides))
    return m

  def primitive(self, pd):
    p = ctypes.c_void_p()
    self.call("dnnl_primitive_create", ctypes.byref(p), pd)
    return p

  def reorder(self, src_md, dst_md):
    pd = ctypes.c_void_p()
    self.call("dnnl_reorder_primitive_desc_create", ctypes.byref(pd), src_md, self.engine, dst_md, self.engine, None)
    return self.primitive(pd)

  def execute(self, primitive, args):
    """Runs `primitive` on (arg id, memory descriptor, NumPy array) triples, in place."""
    mems = []
    for _, md, array in args:
      mems.append(ctypes.c_void_p())
      self.call("dnnl_memory_create", ctypes.byref(mems[-1]), md, self.engine, ctypes.c_void_p(array.ctypes.data))
    packed = (_Arg * len(args))(*[_Arg(arg, m.value) for (arg, _, _), m in zip(args, mems)])
    self.call("dnnl_primitive_execute", primitive, self.stream, len(args), packed)
    self.call("dnnl_stream_wait", self.stream)
    for m in mems:
      self.lib.dnnl_memory_destroy(m)


class Conv:
  """A 2-D convolution of NHWC float32 activations with HWIO weights: forward, input and kernel gradient."""

  def __init__(self, dnnl: OneDNN, x_shape, k_shape, stride: int, pads):
    import numpy as np
    self.dnnl, self.np = dnnl, np
    (n, h, w, cin), (k, _, _, cout), ((top, bottom), (left, right)) = x_shape, k_shape, pads
    ho, wo = (h + top + bottom - k) // stride + 1, (w + left + right - k) // stride + 1
    self.x_shape, self.k_shape, self.y_shape = tuple(x_shape), tuple(k_shape), (n, ho, wo, cout)
    nhwc = lambda n, h, w, c: dnnl.md((n, c, h, w), (h * w * c, 1, w * c, c))
    self.src, self.dst = nhwc(n, h, w, cin), nhwc(n, ho, wo, cout)
    self.hwio = dnnl.md((cout, cin, k, k), (1, cout, k * cin * cout, cin * cout))
    d = ctypes.c_int64 * 12
    geometry = (d(stride, stride), d(0, 0), d(top, left), d(bottom, right))
    self.pds = [ctypes.c_void_p() for _ in range(3)]
    dnnl.call("dnnl_convolution_forward_primitive_desc_create", ctypes.byref(self.pds[0]), dnnl.engine,
              FORWARD_TRAINING, CONVOLUTION_DIRECT, self.src, dnnl.md((cout, cin, k, k)), None, self.dst, *geometry, None)
    dnnl.call("dnnl_convolution_backward_data_primitive_desc_create", ctypes.byref(self.pds[1]), dnnl.engine,
              CONVOLUTION_DIRECT, self.src, dnnl.md((cout, cin, k, k)), self.dst, *geometry, self.pds[0], None)
    dnnl.call("dnnl_convolution_backward_weights_primitive_desc_create", ctypes.byref(self.pds[2]), dnnl.engine,
              CONVOLUTION_DIRECT, self.src, dnnl.md((cout, cin, k, k)), None, self.dst, *geometry, self.pds[0], None)
    self.prims = [dnnl.primitive(pd) for pd in self.pds]
    query = dnnl.lib.dnnl_primitive_desc_query_md
    self.w_mds = [ctypes.c_void_p(query(self.pds[0], QUERY_WEIGHTS_MD, 0)),
                  ctypes.c_void_p(query(self.pds[1], QUERY_WEIGHTS_MD, 0)),
                  ctypes.c_void_p(query(self.pds[2], QUERY_DIFF_WEIGHTS_MD, 0))]
    self.reorders = [dnnl.reorder(self.hwio, self.w_mds[0]), dnnl.reorder(self.hwio, self.w_mds[1]),
                     dnnl.reorder(self.w_mds[2], self.hwio)]

  def implementations(self) -> list[str]:
    out = []
    for pd in self.pds:
      s = ctypes.c_char_p()
      self.dnnl.call("dnnl_primitive_desc_query", pd, QUERY_IMPL_INFO_STR, 0, ctypes.byref(s))
      out.append(s.value.decode())
    return out

  def _blocked(self, i):
    return self.np.empty(self.dnnl.lib.dnnl_memory_desc_get_size(self.w_mds[i]) // 4, self.np.float32)

  def forward(self, x, w):
    wb, y = self._blocked(0), self.np.empty(self.y_shape, self.np.float32)
    self.dnnl.execute(self.reorders[0], [(ARG_SRC, self.hwio, w), (ARG_DST, self.w_mds[0], wb)])
    self.dnnl.execute(self.prims[0], [(ARG_SRC, self.src, x), (ARG_WEIGHTS, self.w_mds[0], wb), (ARG_DST, self.dst, y)])
    return y

  def input_grad(self, dy, w):
    wb, dx = self._blocked(1), self.np.empty(self.x_shape, self.np.float32)
    self.dnnl.execute(self.reorders[1], [(ARG_SRC, self.hwio, w), (ARG_DST, self.w_mds[1], wb)])
    self.dnnl.execute(self.prims[1], [(ARG_DIFF_DST, self.dst, dy), (ARG_WEIGHTS, self.w_mds[1], wb),
                                      (ARG_DIFF_SRC, self.src, dx)])
    return dx

  def kernel_grad(self, x, dy):
    dwb, dw = self._blocked(2), self.np.empty(self.k_shape, self.np.float32)
    self.dnnl.execute(self.prims[2], [(ARG_SRC, self.src, x), (ARG_DIFF_DST, self.dst, dy),
                                      (ARG_DIFF_WEIGHTS, self.w_mds[2], dwb)])
    self.dnnl.execute(self.reorders[2], [(ARG_SRC, self.w_mds[2], dwb), (ARG_DST, self.hwio, dw)])
    return dw


def _best_ms(fn, repeats=5):
  import jax
  jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t)
  return min(times) * 1e3


def per_shape(dnnl: OneDNN) -> None:
  """oneDNN's three passes against cnnzoo's (XLA's forward, `xla.input_grad`, `xla.im2col_kernel_grad`)."""
  import jax
  import numpy as np
  from jax import lax
  from cnnzoo.kernels import xla
  print("| shape (N,H,W,Cin->Cout,k,stride) | XLA fwd | oneDNN fwd | cnnzoo input grad | oneDNN | "
        "cnnzoo kernel grad | oneDNN | largest relative difference | oneDNN's kernels |")
  print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
  rng = np.random.default_rng(0)
  for n, h, wd, cin, cout, k, s, p in SHAPES:
    pads = ((p, p), (p, p))
    c = Conv(dnnl, (n, h, wd, cin), (k, k, cin, cout), s, pads)
    x = rng.standard_normal((n, h, wd, cin), np.float32)
    wt = (rng.standard_normal((k, k, cin, cout)) * 0.1).astype(np.float32)
    dy = rng.standard_normal(c.y_shape, np.float32)
    fwd = jax.jit(lambda x, w: lax.conv_general_dilated(x, w, (s, s), pads, dimension_numbers=("NHWC", "HWIO", "NHWC")))
    ig = jax.jit(lambda dy, w: xla.input_grad(dy, w, (h, wd), (s, s), pads))
    kg = jax.jit(lambda x, dy: xla.im2col_kernel_grad(x, dy, (k, k, cin, cout), (s, s), pads))
    ours = [fwd(x, wt), ig(dy, wt), kg(x, dy)]
    theirs = [c.forward(x, wt), c.input_grad(dy, wt), c.kernel_grad(x, dy)]
    diff = max(float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b))) for a, b in zip(ours, theirs))
    ms = [_best_ms(lambda: fwd(x, wt)), _best_ms(lambda: c.forward(x, wt)), _best_ms(lambda: ig(dy, wt)),
          _best_ms(lambda: c.input_grad(dy, wt)), _best_ms(lambda: kg(x, dy)), _best_ms(lambda: c.kernel_grad(x, dy))]
    print(f"| {n}x{h}x{wd}, {cin}->{cout}, {k}, {s} | " + " | ".join(f"{v:.2f}" for v in ms)
          + f" | {diff:.1e} | {', '.join(sorted(set(c.implementations())))} |", flush=True)


def whole_step(dnnl: OneDNN, names, rounds: int) -> None:
  """Train steps with every plain convolution through oneDNN (pure_callback), alternated with PyTorch's."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  import torch
  from cnnzoo.kernels import dispatch

  convs = {}

  def conv_for(x_shape, k_shape, strides, pads):
    key = (x_shape, k_shape, strides, pads)
    if key not in convs:
      assert strides[0] == strides[1], strides
      convs[key] = Conv(dnnl, x_shape, k_shape, strides[0], pads)
    return convs[key]

  host = lambda a: np.ascontiguousarray(a, np.float32)

  @functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
  def onednn_conv(x, w, strides, pads, precision):
    c = conv_for(x.shape, w.shape, strides, pads)
    return jax.pure_callback(lambda x, w: c.forward(host(x), host(w)), jax.ShapeDtypeStruct(c.y_shape, jnp.float32), x, w)

  def onednn_conv_bwd(strides, pads, precision, residuals, dy):
    x, w = residuals
    c = conv_for(x.shape, w.shape, strides, pads)
    dx = jax.pure_callback(lambda dy, w: c.input_grad(host(dy), host(w)), jax.ShapeDtypeStruct(x.shape, jnp.float32), dy, w)
    dw = jax.pure_callback(lambda x, dy: c.kernel_grad(host(x), host(dy)), jax.ShapeDtypeStruct(w.shape, jnp.float32), x, dy)
    return dx, dw

  onednn_conv.defvjp(lambda x, w, s, p, prec: (onednn_conv(x, w, s, p, prec), (x, w)), onednn_conv_bwd)
  # every plain convolution of cnnzoo's models through these callbacks
  callbacks = dispatch.Backend("onednn_callback", lambda: "", lambda *_: "",
                               lambda x, w, strides, pads, precision=None: onednn_conv(x, w, strides, pads, precision))
  for name in names:
    with dispatch.use(dispatch.Kernels((callbacks, dispatch.LAX))):
      model, state, step, batch, _ = vs_pytorch.cnnzoo_step(name, 128)
    net = {"minivggnet": torch_twins.torch_minivggnet, "resnet20_v1": torch_twins.torch_resnet20_v1}[name](torch)
    torch_twins.copy_weights(torch, state.variables(), net)
    losses = (vs_pytorch.first_loss_without_dropout(model, state, batch),
              vs_pytorch.torch_loss_without_dropout(torch, net, batch))
    torch_step = vs_pytorch.torch_step(torch, net, batch)
    times = {"cnnzoo + oneDNN": [], "PyTorch": []}
    for r in range(rounds + 1):  # round 0 warms up
      t = time.perf_counter()
      for _ in range(5):
        state, m = step(state, batch)
      jax.block_until_ready(m)
      if r:
        times["cnnzoo + oneDNN"].append((time.perf_counter() - t) / 5 * 1e3)
      t = time.perf_counter()
      for _ in range(5):
        torch_step()
      if r:
        times["PyTorch"].append((time.perf_counter() - t) / 5 * 1e3)
    ms = {k: statistics.median(v) for k, v in times.items()}
    print(f"{name}: first loss {losses[0]:.6f} vs PyTorch {losses[1]:.6f}; ms/step "
          + ", ".join(f"{k} {v:.0f} ({', '.join(f'{x:.0f}' for x in times[k])})" for k, v in ms.items())
          + f"; ratio {ms['PyTorch'] / ms['cnnzoo + oneDNN']:.2f}x", flush=True)


def main(argv):
  del argv
  from cnnzoo import cli
  cli.choose_platform()
  dnnl = OneDNN()
  if _WHOLE.value:
    import torch
    torch.set_num_threads(2)
    whole_step(dnnl, vs_pytorch._MODELS.value, vs_pytorch._ROUNDS.value)  # noqa: SLF001 (the shared flags)
  else:
    per_shape(dnnl)


if __name__ == "__main__":
  app.run(main)
