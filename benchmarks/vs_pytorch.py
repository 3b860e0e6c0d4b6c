"""cnnzoo's train step beside PyTorch's, the same network, alternated in one process.

  pip install -r requirements-bench.txt   # PyTorch (CPU), for this benchmark only
  python -m benchmarks.vs_pytorch [--models=minivggnet,resnet20_v1] [--batch_size=128] [--rounds=5]
  python -m benchmarks.vs_pytorch --profile   # + where each framework's step spends its time

Both sides run one SGD-momentum step (lr 0.01, momentum 0.9, no weight decay) with BatchNorm in
training mode and dropout, float32, on the same random uint8 batch scaled to [0, 1]; PyTorch in
channels_last (its faster CPU layout here). Each round times `--steps` steps of cnnzoo, then of
PyTorch, so both see the same machine state; the table reports the median round. Before timing, both
start from the same weights (cnnzoo's, copied into the PyTorch modules) and the first step's loss
is compared: it must agree to float32 noise, or the networks are not the same.

`--profile` times each layer's pieces in isolation at the model's own shapes, in both frameworks:
convolution forward, input gradient and weight gradient, BatchNorm forward + backward (batch
statistics), the dense layers, the optimizer update; "rest" is the whole step minus their sum
(ReLU, pooling, dropout, the loss, and what a fused program saves or loses over isolated calls).
"""

import statistics
import time

from absl import app, flags

_MODELS = flags.DEFINE_list("models", ["minivggnet", "resnet20_v1"], "minivggnet and/or resnet20_v1.")
_BATCH = flags.DEFINE_integer("batch_size", 128, "Batch size.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Alternated rounds.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps per round and framework.")
_PROFILE = flags.DEFINE_bool("profile", False, "Also split each step into its parts.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "--profile: calls per part (best of).")


# ----------------------------------------------------------------------------- PyTorch networks

def torch_minivggnet(torch, num_classes=10):
  """cnnzoo's MiniVGGNet: [conv-ReLU-BN]x2, pool, dropout .25, twice; FC 512-ReLU-BN, dropout .5."""
  nn = torch.nn
  bn2 = lambda c: nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)  # Keras' momentum 0.99 = PyTorch's 0.01
  layers = []
  cin = 3
  for width in (32, 64):
    for _ in range(2):
      layers += [nn.Conv2d(cin, width, 3, padding=1), nn.ReLU(), bn2(width)]
      cin = width
    layers += [nn.MaxPool2d(2), nn.Dropout(0.25)]
  # flax flattens NHWC: permute so that the first Dense sees the same order
  layers += [Permute(torch, (0, 2, 3, 1)), nn.Flatten(), nn.Linear(64 * 8 * 8, 512), nn.ReLU(),
             nn.BatchNorm1d(512, eps=1e-3, momentum=0.01), nn.Dropout(0.5), nn.Linear(512, num_classes)]
  return nn.Sequential(*layers)


def Permute(torch, dims):  # noqa: N802 (a module factory)
  class _Permute(torch.nn.Module):
    def forward(self, x):
      return x.permute(*dims)
  return _Permute()


def torch_resnet20_v1(torch, num_classes=10):
  """The Keras example's resnet_v1 of depth 20 (cnnzoo's resnet20_v1)."""
  nn = torch.nn
  bn = lambda c: nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)

  class Block(nn.Module):
    def __init__(self, cin, width, stride):
      super().__init__()
      self.conv1, self.bn1 = nn.Conv2d(cin, width, 3, stride, 1), bn(width)
      self.conv2, self.bn2 = nn.Conv2d(width, width, 3, 1, 1), bn(width)
      self.proj = nn.Conv2d(cin, width, 1, stride) if stride != 1 else None

    def forward(self, x):
      y = torch.relu(self.bn1(self.conv1(x)))
      y = self.bn2(self.conv2(y))
      return torch.relu((self.proj(x) if self.proj is not None else x) + y)

  class Net(nn.Module):
    def __init__(self):
      super().__init__()
      self.stem_conv, self.stem_bn = nn.Conv2d(3, 16, 3, 1, 1), bn(16)
      blocks, cin = [], 16
      for s in range(3):
        width = 16 * 2 ** s
        for b in range(3):
          blocks.append(Block(cin, width, 2 if s > 0 and b == 0 else 1))
          cin = width
      self.blocks = nn.Sequential(*blocks)
      self.head = nn.Linear(64, num_classes)

    def forward(self, x):
      x = torch.relu(self.stem_bn(self.stem_conv(x)))
      return self.head(self.blocks(x).mean((2, 3)))

  return Net()


def copy_weights(torch, variables, net):
  """cnnzoo's variables -> the PyTorch modules, in creation order (both create layers in the
  order they run): conv kernels HWIO -> OIHW, dense kernels (in, out) -> (out, in)."""
  import jax
  import numpy as np
  flat = jax.tree_util.tree_flatten_with_path(jax.device_get(variables["params"]))[0]
  by_layer = {}
  for path, leaf in flat:
    keys = [getattr(k, "key", str(k)) for k in path]
    by_layer.setdefault("/".join(keys[:-1]), {})[keys[-1]] = np.asarray(leaf)
  modules = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear,
                                                         torch.nn.BatchNorm2d, torch.nn.BatchNorm1d))]
  order = creation_order(list(by_layer.items()))
  if len(order) != len(modules):
    raise ValueError(f"{len(order)} cnnzoo layers vs {len(modules)} PyTorch modules")
  with torch.no_grad():
    for (name, p), m in zip(order, modules):
      if "kernel" in p:
        k = p["kernel"]
        w = k.transpose(3, 2, 0, 1) if k.ndim == 4 else k.T
        if tuple(w.shape) != tuple(m.weight.shape):
          raise ValueError(f"{name}: {w.shape} vs {tuple(m.weight.shape)}")
        m.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
        m.bias.copy_(torch.from_numpy(p["bias"]))
      else:
        m.weight.copy_(torch.from_numpy(p["scale"]))
        m.bias.copy_(torch.from_numpy(p["bias"]))


def creation_order(layers):
  """cnnzoo's layers in the order the PyTorch twins create their modules."""
  import re

  def key(item):
    name = item[0]
    # MiniVGGNet: block{i}_conv{j}, block{i}_bn{j}, fc1, fc1_bn, head
    m = re.fullmatch(r"block(\d)_(conv|bn)(\d)", name)
    if m:
      return (0, int(m[1]), int(m[3]), m[2] == "bn", 0)
    if name in ("fc1", "fc1_bn", "head"):
      return (1, ("fc1", "fc1_bn", "head").index(name), 0, 0, 0)
    # ResNet-20 v1: stem_conv, stem_bn, stage{s}_block{b}_{conv1,bn1,conv2,bn2,proj_conv}, head
    if name in ("stem_conv", "stem_bn"):
      return (-1, name == "stem_bn", 0, 0, 0)
    m = re.fullmatch(r"stage(\d)_block(\d)_(conv1|bn1|conv2|bn2|proj_conv)", name)
    if m:
      return (0, int(m[1]), int(m[2]), ("conv1", "bn1", "conv2", "bn2", "proj_conv").index(m[3]), 0)
    raise ValueError(f"no PyTorch twin for layer {name!r}")
  return sorted(layers, key=key)


# ----------------------------------------------------------------------------- the two steps

def cnnzoo_step(name, batch_size):
  import functools
  import jax
  import numpy as np
  import optax
  from cnnzoo import models
  from cnnzoo.data.ops import normalize
  from cnnzoo.training import state as state_lib
  from cnnzoo.training import steps
  model = models.create_model(name, num_classes=10)
  state = state_lib.create(model, optax.sgd(0.01, momentum=0.9), (32, 32, 3), 0)
  step = jax.jit(functools.partial(steps.train_step, preprocess=lambda k, x: normalize(x, "scale"),
                                   num_classes=10), donate_argnums=0)
  rng = np.random.default_rng(0)
  batch = {"image": rng.integers(0, 256, (batch_size, 32, 32, 3), dtype=np.uint8),
           "label": rng.integers(0, 10, batch_size).astype(np.int32)}
  return model, state, step, jax.device_put(batch)


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


def compare(name, batch_size, rounds, steps):
  import jax
  import torch
  model, state, step, batch = cnnzoo_step(name, batch_size)
  net = {"minivggnet": torch_minivggnet, "resnet20_v1": torch_resnet20_v1}[name](torch)
  copy_weights(torch, state.variables(), net)
  tstep = torch_step(torch, net, batch)
  # the same weights give the same loss (dropout off on both sides: their masks come from two RNGs)
  jax_loss = first_loss_without_dropout(model, state, batch)
  torch_loss = torch_loss_without_dropout(torch, net, batch)
  t = time.perf_counter()
  state, m = step(state, batch)
  jax.block_until_ready(m)
  compile_s = time.perf_counter() - t
  tstep()
  jax_t, torch_t = [], []
  for _ in range(rounds):
    t = time.perf_counter()
    for _ in range(steps):
      state, m = step(state, batch)
    jax.block_until_ready(m)
    jax_t.append((time.perf_counter() - t) / steps)
    t = time.perf_counter()
    for _ in range(steps):
      tstep()
    torch_t.append((time.perf_counter() - t) / steps)
  j, p = statistics.median(jax_t), statistics.median(torch_t)
  return {"model": name, "batch": batch_size, "compile_s": compile_s, "cnnzoo_ms": j * 1e3, "torch_ms": p * 1e3,
          "cnnzoo_img_s": batch_size / j, "torch_img_s": batch_size / p, "ratio": p / j,
          "first_loss": (jax_loss, torch_loss), "rounds": (jax_t, torch_t)}


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


def main(argv):
  del argv
  import jax
  import torch
  print(f"jax {jax.__version__} ({jax.devices()[0].device_kind}), torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), batch {_BATCH.value}, float32")
  rows = [compare(name, _BATCH.value, _ROUNDS.value, _STEPS.value) for name in _MODELS.value]
  print("| model | batch | cnnzoo ms/step | PyTorch ms/step | cnnzoo img/s | PyTorch img/s | cnnzoo / PyTorch |")
  print("|---|---:|---:|---:|---:|---:|---:|")
  for r in rows:
    print(f"| {r['model']} | {r['batch']} | {r['cnnzoo_ms']:.0f} | {r['torch_ms']:.0f} | {r['cnnzoo_img_s']:.0f} | "
          f"{r['torch_img_s']:.0f} | {r['ratio']:.2f}x |")
  for r in rows:
    print(f"{r['model']}: first-step loss cnnzoo {r['first_loss'][0]:.6f} PyTorch {r['first_loss'][1]:.6f}; "
          f"cnnzoo compile {r['compile_s']:.1f} s; rounds (ms) cnnzoo "
          f"{[round(t * 1e3) for t in r['rounds'][0]]} PyTorch {[round(t * 1e3) for t in r['rounds'][1]]}")


if __name__ == "__main__":
  app.run(main)
