"""PyTorch twins of cnnzoo's MiniVGGNet and ResNet-20 v1, and the copy of cnnzoo's weights into
them (benchmarks/vs_pytorch.py and onednn_probe.py compare the two frameworks' train steps from the
same weights). PyTorch is passed in: it is a benchmark-only dependency (requirements-bench.txt)."""


def torch_minivggnet(torch, num_classes=10, in_channels=3, size=32):
  """cnnzoo's MiniVGGNet: [conv-ReLU-BN]x2, pool, dropout .25, twice; FC 512-ReLU-BN, dropout .5."""
  nn = torch.nn
  bn2 = lambda c: nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)  # Keras' momentum 0.99 = PyTorch's 0.01
  layers = []
  cin = in_channels
  for width in (32, 64):
    for _ in range(2):
      layers += [nn.Conv2d(cin, width, 3, padding=1), nn.ReLU(), bn2(width)]
      cin = width
    layers += [nn.MaxPool2d(2), nn.Dropout(0.25)]
  # flax flattens NHWC: permute so that the first Dense sees the same order
  layers += [Permute(torch, (0, 2, 3, 1)), nn.Flatten(), nn.Linear(64 * (size // 4) ** 2, 512), nn.ReLU(),
             nn.BatchNorm1d(512, eps=1e-3, momentum=0.01), nn.Dropout(0.5), nn.Linear(512, num_classes)]
  return nn.Sequential(*layers)


def Permute(torch, dims):  # noqa: N802 (a module factory)
  class _Permute(torch.nn.Module):
    def forward(self, x):
      return x.permute(*dims)
  return _Permute()


def torch_resnet20_v1(torch, num_classes=10, in_channels=3):
  """The Keras example's resnet_v1 of depth 20 (cnnzoo's resnet20_v1)."""
  nn = torch.nn
  bn = lambda c: nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)

  class Block(nn.Module):
    def __init__(self, cin, width, stride):
      super().__init__()
      # Keras' "same" padding of a stride-2 3x3 conv on an even size pads 0 before, 1 after
      conv1 = nn.Conv2d(cin, width, 3, stride, 1) if stride == 1 else nn.Sequential(
          nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(cin, width, 3, stride, 0))
      self.conv1, self.bn1 = conv1, bn(width)
      self.conv2, self.bn2 = nn.Conv2d(width, width, 3, 1, 1), bn(width)
      self.proj = nn.Conv2d(cin, width, 1, stride) if stride != 1 else None

    def forward(self, x):
      y = torch.relu(self.bn1(self.conv1(x)))
      y = self.bn2(self.conv2(y))
      return torch.relu((self.proj(x) if self.proj is not None else x) + y)

  class Net(nn.Module):
    def __init__(self):
      super().__init__()
      self.stem_conv, self.stem_bn = nn.Conv2d(in_channels, 16, 3, 1, 1), bn(16)
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
        m.bias.copy_(torch.from_numpy(np.array(p["bias"])))
      else:
        m.weight.copy_(torch.from_numpy(np.array(p["scale"])))
        m.bias.copy_(torch.from_numpy(np.array(p["bias"])))


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
