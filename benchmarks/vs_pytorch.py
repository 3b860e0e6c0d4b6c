"""cnnzoo's train step beside PyTorch's, the same network, alternated in one process.

  pip install -r requirements-bench.txt   # PyTorch (CPU), for this benchmark only
  python -m benchmarks.vs_pytorch [--models=minivggnet,resnet20_v1] [--batch_size=128] [--rounds=5]
  python -m benchmarks.vs_pytorch --profile   # + where each framework's step spends its time

Both sides run one SGD-momentum step (lr 0.01, momentum 0.9, no weight decay) with BatchNorm in
training mode and dropout, float32, on the same random uint8 batch scaled to [0, 1]; PyTorch in
channels_last (its faster CPU layout here). Each round times one call of cnnzoo's training loop
(`--loop_steps` steps as one compiled loop, as a run with its progress bar dispatches them), then
`--steps` steps of cnnzoo at a call a step (with its default convolutions, and with XLA's), then
of PyTorch, so all see the same machine state; the table reports the median round. Before timing, both
start from the same weights (cnnzoo's, copied into the PyTorch modules) and the first step's loss
is compared: it must agree to float32 noise, or the networks are not the same.

`--profile` times each layer's pieces in isolation at the model's own shapes, in both frameworks:
convolution forward, input gradient and weight gradient, BatchNorm forward + backward (batch
statistics), the dense layers, the optimizer update; "rest" is the whole step minus their sum
(ReLU, pooling, dropout, the loss, and what a fused program saves or loses over isolated calls).
"""

import os
import statistics
import time

from absl import app, flags

from benchmarks.torch_twins import copy_weights, torch_minivggnet, torch_resnet20_v1

_MODELS = flags.DEFINE_list("models", ["minivggnet", "resnet20_v1"], "minivggnet and/or resnet20_v1.")
_BATCH = flags.DEFINE_integer("batch_size", 128, "Batch size.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Alternated rounds.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps per round and framework.")
_LOOP_STEPS = flags.DEFINE_integer("loop_steps", 20, "Steps per call of cnnzoo's training loop (the configs' "
                                   "monitor.log_every_steps: what a run with its progress bar dispatches).")
_PROFILE = flags.DEFINE_bool("profile", False, "Also split each step into its parts.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "--profile: calls per part (best of).")


# ----------------------------------------------------------------------------- the two steps

def kernels_with(kernel_grad):
  """The process's kernels with CNNZOO_CONV_KERNEL_GRAD=`kernel_grad` (auto: the default; xla:
  XLA's convolutions and their own gradients), for dispatch.use around a step's tracing."""
  import dataclasses
  import jax
  from cnnzoo.kernels import dispatch, settings
  return dispatch.resolve(dataclasses.replace(settings.from_env(), kernel_grad=kernel_grad), jax.default_backend(),
                          jax.device_count())


def _cnnzoo_setup(name, batch_size):
  """(model, initial state, the unjitted train step, a host batch)."""
  import functools
  import numpy as np
  import optax
  from cnnzoo import models
  from cnnzoo.data.ops import normalize
  from cnnzoo.training import state as state_lib
  from cnnzoo.training import steps
  model = models.create_model(name, num_classes=10)
  state = state_lib.create(model, optax.sgd(0.01, momentum=0.9), (32, 32, 3), 0)
  step = functools.partial(steps.train_step, preprocess=lambda k, x: normalize(x, "scale"), num_classes=10)
  rng = np.random.default_rng(0)
  batch = {"image": rng.integers(0, 256, (batch_size, 32, 32, 3), dtype=np.uint8),
           "label": rng.integers(0, 10, batch_size).astype(np.int32)}
  return model, state, step, batch


def cnnzoo_step(name, batch_size, kernel_grad=None):
  import jax
  from cnnzoo.kernels import dispatch
  model, state, step, batch = _cnnzoo_setup(name, batch_size)
  batch = jax.device_put(batch)
  t = time.perf_counter()
  kernels = dispatch.active() if kernel_grad is None else kernels_with(kernel_grad)
  with dispatch.use(kernels):  # traced (and compiled) under these kernels
    step = jax.jit(step, donate_argnums=0).lower(state, batch).compile()
  return model, state, step, batch, time.perf_counter() - t


def cnnzoo_loop(name, batch_size, steps_per_call):
  """cnnzoo's training loop on a device-resident split (config.steps_per_dispatch): `steps_per_call`
  train steps as one compiled `lax.fori_loop` (steps.train_steps), here all on the same batch."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  from cnnzoo.training import steps
  _, state, step, batch = _cnnzoo_setup(name, batch_size)
  batches = jax.device_put(jax.tree.map(lambda a: np.stack([a] * steps_per_call), batch))
  run = jax.jit(lambda state, sums, batches: steps.train_steps(state, sums, batches, jnp.int32(steps_per_call),
                                                                step=step), donate_argnums=(0, 1))
  run = run.lower(state, steps.zero_metrics(), batches).compile()
  return lambda state: run(state, steps.zero_metrics(), batches), state


def torch_step(torch, net, batch):
  import numpy as np
  net = net.to(memory_format=torch.channels_last).train()
  opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
  x = torch.from_numpy(np.asarray(batch["image"])).permute(0, 3, 1, 2).float().div(255)
  x = x.contiguous(memory_format=torch.channels_last)
  y = torch.from_numpy(np.asarray(batch["label"])).long()
  loss_fn = torch.nn.CrossEntropyLoss()

  def step():
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(net(x), y)
    loss.backward()
    opt.step()
    return loss

  return step


def compare(name, batch_size, rounds, steps, loop_steps):
  """Median ms/step of cnnzoo (its default convolutions, and XLA's own throughout) and PyTorch, alternated."""
  import jax
  import torch
  model, state, step, batch, compile_s = cnnzoo_step(name, batch_size, "auto")
  _, state_x, step_x, _, _ = cnnzoo_step(name, batch_size, "xla")
  net = {"minivggnet": torch_minivggnet, "resnet20_v1": torch_resnet20_v1}[name](torch)
  copy_weights(torch, state.variables(), net)
  # the same weights give the same loss (dropout off on both sides: their masks come from two RNGs)
  jax_loss = first_loss_without_dropout(model, state, batch)
  torch_loss = torch_loss_without_dropout(torch, net, batch)
  tstep = torch_step(torch, net, batch)
  sides = {"cnnzoo": [step, state], "cnnzoo_xla": [step_x, state_x]}
  times = {k: [] for k in ("cnnzoo", "cnnzoo_xla", "cnnzoo_loop", "torch")}
  losses = {"cnnzoo": [], "cnnzoo_xla": []}
  loop_fn, loop_state = cnnzoo_loop(name, batch_size, loop_steps)
  for r in range(rounds + 1):  # round 0 warms up (and compiles the loop)
    t = time.perf_counter()
    loop_state, sums = loop_fn(loop_state)
    jax.block_until_ready(sums)
    if r:
      times["cnnzoo_loop"].append((time.perf_counter() - t) / loop_steps)
    for side, (fn, st) in sides.items():
      t = time.perf_counter()
      for _ in range(steps):
        st, m = fn(st, batch)
        losses[side].append(m["loss"])
      jax.block_until_ready(m)
      sides[side][1] = st
      if r:
        times[side].append((time.perf_counter() - t) / steps)
    t = time.perf_counter()
    for _ in range(steps):
      tstep()
    if r:
      times["torch"].append((time.perf_counter() - t) / steps)
  ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
  # the second step's loss (after one update from the same weights): the two convolutions'
  # difference, before 20 steps on one batch amplify it
  same = [(float(losses["cnnzoo"][1]) / batch_size, float(losses["cnnzoo_xla"][1]) / batch_size)]
  return {"model": name, "batch": batch_size, "compile_s": compile_s, "ms": ms, "rounds": times,
          "first_loss": (jax_loss, torch_loss), "default_vs_xla_losses": same}


def first_loss_without_dropout(model, state, batch):
  """The cross-entropy of the batch in training mode (batch statistics), dropout off."""
  import jax
  import jax.numpy as jnp
  x = batch["image"].astype(jnp.float32) / 255
  model = model.clone(**{f: 0.0 for f in ("dropout", "conv_dropout") if hasattr(model, f)})
  logits, _ = model.apply(state.variables(), x, train=True, mutable=["batch_stats"])
  return float(jnp.mean(-jax.nn.log_softmax(logits)[jnp.arange(x.shape[0]), batch["label"]]))


def torch_loss_without_dropout(torch, net, batch):
  import numpy as np
  x = torch.from_numpy(np.asarray(batch["image"])).permute(0, 3, 1, 2).float().div(255)
  y = torch.from_numpy(np.asarray(batch["label"])).long()
  net.train()
  for m in net.modules():
    if isinstance(m, torch.nn.Dropout):
      m.eval()
  with torch.no_grad():
    loss = float(torch.nn.functional.cross_entropy(net(x), y))
  net.train()
  return loss


# ----------------------------------------------------------------------------- --profile

def layer_shapes(model, batch_size):
  """The convolutions, BatchNorms and Dense layers of one training forward pass, in order:
  ("conv", x shape, kernel shape, strides, padding) / ("bn", x shape) / ("dense", x shape, units)."""
  import flax.linen as nn
  import jax
  import jax.numpy as jnp
  found = []

  def record(next_fun, args, kwargs, context):
    m, x = context.module, args[0] if args else None
    if context.method_name == "__call__" and x is not None:
      if isinstance(m, nn.Conv):
        strides = m.strides or 1
        found.append(("conv", x.shape, (*m.kernel_size, x.shape[-1], m.features),
                      (strides, strides) if isinstance(strides, int) else tuple(strides), m.padding))
      elif isinstance(m, nn.BatchNorm):
        found.append(("bn", x.shape))
      elif isinstance(m, nn.Dense):
        found.append(("dense", x.shape, m.features))
    return next_fun(*args, **kwargs)

  x = jnp.zeros((batch_size, 32, 32, 3))
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
  with nn.intercept_methods(record):
    jax.eval_shape(lambda v: model.apply(v, x, train=True, mutable=["batch_stats"], rngs={"dropout": jax.random.key(0)}),
                   variables)
  return found


def best_ms(fn, repeats):
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - t)
  return best * 1e3


def jax_parts(layers, repeats):
  """ms per part, each jitted on its own at the layer's shape (cnnzoo's own conv and BatchNorm)."""
  import jax
  import jax.numpy as jnp
  from jax import lax
  from cnnzoo.kernels import dispatch, xla
  from cnnzoo.models.layers import BatchNorm
  key = jax.random.key(0)
  out = {k: 0.0 for k in ("conv forward", "conv input gradient", "conv kernel gradient",
                          "BatchNorm forward + backward", "dense forward + backward")}
  xla_kernel_grad = 0.0

  def timed(f, *args):
    f = jax.jit(f)
    jax.block_until_ready(f(*args))
    return best_ms(lambda: jax.block_until_ready(f(*args)), repeats)

  for layer in layers:
    if layer[0] == "conv":
      _, xs, ks, strides, padding = layer
      x, w = jax.random.normal(key, xs), jax.random.normal(key, ks) * 0.1
      f = lambda x, w: dispatch.conv_general_dilated(x, w, strides, padding, dimension_numbers=xla.NHWC)
      y, vjp = jax.vjp(f, x, w)
      dy = jnp.ones_like(y)
      out["conv forward"] += timed(f, x, w)
      out["conv input gradient"] += timed(lambda x, w, dy: jax.vjp(lambda x: f(x, w), x)[1](dy)[0], x, w, dy)
      out["conv kernel gradient"] += timed(lambda x, w, dy: jax.vjp(lambda w: f(x, w), w)[1](dy)[0], x, w, dy)
      pads = lax.padtype_to_pads(xs[1:3], ks[:2], strides, padding) if isinstance(padding, str) else padding
      xla_kernel_grad += timed(lambda x, w, dy: xla.reference_kernel_grad(x, w, dy, strides, pads), x, w, dy)
    elif layer[0] == "bn":
      x = jax.random.normal(key, layer[1])
      bn = BatchNorm(use_running_average=False, momentum=0.99, epsilon=1e-3)
      v = bn.init(key, x)
      def fb(p, x):
        y, vjp = jax.vjp(lambda p, x: bn.apply({"params": p, "batch_stats": v["batch_stats"]}, x,
                                               mutable=["batch_stats"])[0], p, x)
        return vjp(jnp.ones_like(y))
      out["BatchNorm forward + backward"] += timed(fb, v["params"], x)
    else:
      _, xs, units = layer
      x, w = jax.random.normal(key, xs), jax.random.normal(key, (xs[-1], units)) * 0.01
      out["dense forward + backward"] += timed(lambda x, w: jax.vjp(lambda x, w: x @ w, x, w)[1](
          jnp.ones((xs[0], units))), x, w)
  return out, xla_kernel_grad


def torch_parts(torch, layers, repeats):
  """The same parts in PyTorch (channels_last): F.conv2d, aten.convolution_backward with one
  output at a time, F.batch_norm forward + backward, a Linear forward + backward."""
  F = torch.nn.functional
  out = {k: 0.0 for k in ("conv forward", "conv input gradient", "conv kernel gradient",
                          "BatchNorm forward + backward", "dense forward + backward")}
  cl = torch.channels_last
  for layer in layers:
    if layer[0] == "conv":
      _, (n, h, w_, c), (kh, kw, cin, cout), strides, padding = layer
      from jax import lax
      pads = lax.padtype_to_pads((h, w_), (kh, kw), strides, padding) if isinstance(padding, str) else padding
      x = torch.randn(n, c, h, w_).contiguous(memory_format=cl)
      x = F.pad(x, (pads[1][0], pads[1][1], pads[0][0], pads[0][1])).contiguous(memory_format=cl)
      wt = (torch.randn(cout, cin, kh, kw) * 0.1).contiguous(memory_format=cl)
      y = F.conv2d(x, wt, stride=strides)
      dy = torch.ones_like(y).contiguous(memory_format=cl)
      args = (dy, x, wt, [cout], list(strides), [0, 0], [1, 1], False, [0, 0], 1)
      with torch.no_grad():
        out["conv forward"] += best_ms(lambda: F.conv2d(x, wt, stride=strides), repeats)
        out["conv input gradient"] += best_ms(lambda: torch.ops.aten.convolution_backward(*args, [True, False, False]), repeats)
        out["conv kernel gradient"] += best_ms(lambda: torch.ops.aten.convolution_backward(*args, [False, True, False]), repeats)
    elif layer[0] == "bn":
      shape = layer[1]
      x = (torch.randn(shape[0], shape[-1], *shape[1:-1]) if len(shape) == 4 else torch.randn(*shape))
      x = (x.contiguous(memory_format=cl) if len(shape) == 4 else x).requires_grad_()
      g, b = torch.ones(shape[-1], requires_grad=True), torch.zeros(shape[-1], requires_grad=True)
      rm, rv = torch.zeros(shape[-1]), torch.ones(shape[-1])

      def fb():
        y = F.batch_norm(x, rm, rv, g, b, training=True, momentum=0.01, eps=1e-3)
        y.backward(torch.ones_like(y))
      out["BatchNorm forward + backward"] += best_ms(fb, repeats)
    else:
      _, xs, units = layer
      lin = torch.nn.Linear(xs[-1], units)
      x = torch.randn(*xs, requires_grad=True)

      def fb():
        y = lin(x)
        y.backward(torch.ones_like(y))
      out["dense forward + backward"] += best_ms(fb, repeats)
  return out


def profile(name, batch_size, row, repeats):
  """The step's parts in both frameworks (ms), and the rest of the step."""
  import torch
  from cnnzoo import models
  layers = layer_shapes(models.create_model(name, num_classes=10), batch_size)
  (ours, xla_kernel_grad), theirs = jax_parts(layers, repeats), torch_parts(torch, layers, repeats)
  ours["rest of the step"] = row["ms"]["cnnzoo"] - sum(ours.values())
  theirs["rest of the step"] = row["ms"]["torch"] - sum(theirs.values())
  print(f"\n{name}, batch {batch_size}: {sum(l[0] == 'conv' for l in layers)} convolutions, "
        f"{sum(l[0] == 'bn' for l in layers)} BatchNorms, {sum(l[0] == 'dense' for l in layers)} Dense")
  print("| part | cnnzoo ms | share | PyTorch ms | share | cnnzoo / PyTorch time |")
  print("|---|---:|---:|---:|---:|---:|")
  for part in ours:
    a, b = ours[part], theirs[part]
    print(f"| {part} | {a:.0f} | {a / row['ms']['cnnzoo']:.0%} | {b:.0f} | {b / row['ms']['torch']:.0%} | "
          f"{a / b if b > 0 else float('nan'):.1f} |")
  print(f"| whole step | {row['ms']['cnnzoo']:.0f} | | {row['ms']['torch']:.0f} | | "
        f"{row['ms']['cnnzoo'] / row['ms']['torch']:.1f} |")
  print(f"| (XLA's own conv kernel gradient, replaced by the above) | {xla_kernel_grad:.0f} | | | | "
        f"{xla_kernel_grad / theirs['conv kernel gradient']:.1f} |")


def main(argv):
  del argv
  from cnnzoo import cli
  cli.choose_platform()  # the CPU flags cnnzoo's entry points use
  import jax
  import torch
  from cnnzoo.kernels import dispatch
  print(f"jax {jax.__version__} ({jax.devices()[0].device_kind}), torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), batch {_BATCH.value}, float32; XLA_FLAGS "
        f"{os.environ.get('XLA_FLAGS', '')!r}; cnnzoo's default{dispatch.default().note(why=True)}, "
        "the second column CNNZOO_CONV_KERNEL_GRAD=xla (XLA's convolutions and their gradients)")
  rows = [compare(name, _BATCH.value, _ROUNDS.value, _STEPS.value, _LOOP_STEPS.value) for name in _MODELS.value]
  k = _LOOP_STEPS.value
  print(f"| model | batch | cnnzoo ms/step | cnnzoo with XLA's convolutions | cnnzoo, {k} steps a call | "
        f"PyTorch ms/step | cnnzoo img/s | PyTorch img/s | cnnzoo / PyTorch | the same, {k} steps a call |")
  print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
  for r in rows:
    ms = r["ms"]
    print(f"| {r['model']} | {r['batch']} | {ms['cnnzoo']:.0f} | {ms['cnnzoo_xla']:.0f} | {ms['cnnzoo_loop']:.0f} | "
          f"{ms['torch']:.0f} | {r['batch'] * 1e3 / ms['cnnzoo']:.0f} | {r['batch'] * 1e3 / ms['torch']:.0f} | "
          f"{ms['torch'] / ms['cnnzoo']:.2f}x | {ms['torch'] / ms['cnnzoo_loop']:.2f}x |")
  for r in rows:
    (a, b), = r["default_vs_xla_losses"]
    print(f"{r['model']}: first loss from the same weights cnnzoo {r['first_loss'][0]:.6f} PyTorch "
          f"{r['first_loss'][1]:.6f}; second step's loss with the default / XLA's convolutions {a:.7f} / "
          f"{b:.7f} ({abs(a - b) / abs(b):.1e} relative); compile {r['compile_s']:.1f} s; rounds (ms) "
          + "; ".join(f"{k} {[round(t * 1e3) for t in v]}" for k, v in r["rounds"].items()))
  if _PROFILE.value:
    for r in rows:
      profile(r["model"], r["batch"], r, _REPEATS.value)


if __name__ == "__main__":
  app.run(main)
