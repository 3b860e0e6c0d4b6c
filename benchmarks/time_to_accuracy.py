"""Wall time to a test accuracy on real data: cnnzoo against PyTorch, the same recipe, epochs alternated.

  apt-get install dataset-fashion-mnist      # the real images (or --data_dir with the four IDX files)
  pip install torch==2.13.0                  # the reference (requirements-bench.txt)
  python -m benchmarks.time_to_accuracy --variants=default,resnet20 --targets=0.90,0.92

Each contestant trains configs/fashion_mnist.py:VARIANT on the 60,000 training images and is tested
on the official 10,000 after every epoch; its clock counts training and testing, the first epoch's
compilation included (what a user waits for). The contestants take turns epoch by epoch in one
process, so both see the same machine: cnnzoo with the split on the device (the epoch as compiled
K-step calls), cnnzoo with the split streamed from the host (`data.on_device=no`: host batches
stacked K at a time, the path of datasets larger than the device), optionally cnnzoo computing in
bfloat16 (`cnnzoo_bf16`: float32 parameters, optimizer and loss), and the PyTorch twin
(benchmarks/torch_twins.py) started from cnnzoo's initial weights, fed the same batch order, with
the same optimizer, schedule, L2 / weight decay, normalization and augmentation. A contestant stops
at the last target or after the recipe's epochs. Prints one table: epochs and seconds to each
target, images/s of the median epoch, final accuracy. A timing: run it on an otherwise idle machine.
"""

import math
import os
import time

from absl import app, flags

_VARIANTS = flags.DEFINE_list("variants", ["default", "resnet20"], "configs/fashion_mnist.py variants "
                              "(default = MiniVGGNet; resnet20); each needs a PyTorch twin")
_TARGETS = flags.DEFINE_list("targets", ["0.90", "0.92"], "test accuracies to time")
_MAX_EPOCHS = flags.DEFINE_integer("max_epochs", 0, "stop each contestant after this many epochs "
                                   "(0: the recipe's; the schedule stays the recipe's)")
_CONTESTANTS = flags.DEFINE_list("contestants", ["cnnzoo", "cnnzoo_streamed", "pytorch"],
                                 "who runs: cnnzoo, cnnzoo_streamed, cnnzoo_bf16 (model.dtype=bfloat16), pytorch")
_DATA_DIR = flags.DEFINE_string("data_dir", "", "the IDX files' folder ('' = the Debian package's)")

TWINS = {"minivggnet": "torch_minivggnet", "resnet20_v1": "torch_resnet20_v1"}


def cnnzoo_contestant(config):
  """A callable epoch -> test accuracy training `config` with cnnzoo's own loop."""
  from cnnzoo.training import loop, monitor
  run = loop.build(config)
  holder = {"state": run.state}
  bar = monitor.ProgressBar(False)

  def epoch(i):
    holder["state"], _, _ = loop.train_epoch(run, holder["state"], i, bar, config.monitor.log_every_steps)
    return loop.evaluate(run, holder["state"], run.test_loader, run.test_step)["accuracy"]
  return epoch, run


def torch_contestant(config, run):
  """The same recipe in PyTorch: the twin from cnnzoo's initial weights, the loader's batch order."""
  import numpy as np
  import torch
  from benchmarks import torch_twins
  ds, d, o, s = run.dataset, config.data, config.optim, config.schedule
  h, w, c = ds.image_shape
  make = getattr(torch_twins, TWINS[config.model.name])
  net = make(torch, ds.num_classes, c, h) if config.model.name == "minivggnet" else make(torch, ds.num_classes, c)
  torch_twins.copy_weights(torch, run.state.variables(), net)
  net = net.to(memory_format=torch.channels_last)
  decayed = [p for n, p in net.named_parameters() if p.ndim > 1]  # conv and dense kernels (Keras' L2)
  rest = [p for n, p in net.named_parameters() if p.ndim <= 1]
  opt = torch.optim.SGD([{"params": decayed, "weight_decay": 2 * o.l2}, {"params": rest, "weight_decay": 0.0}],
                        lr=o.lr, momentum=o.momentum, nesterov=o.nesterov)
  steps = run.train_loader.steps_per_epoch
  if s.name == "keras_time":
    factor = lambda t: 1.0 / (1.0 + s.decay * t)
  elif s.name == "cosine":
    total = (s.decay_epochs or config.num_epochs) * steps
    factor = lambda t: 0.5 * (1 + math.cos(math.pi * min(t, total) / total))
  else:
    raise ValueError(f"no PyTorch form of schedule {s.name!r} here")
  sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)  # stepped every batch, as the recipes are
  if d.normalize == "scale":
    mean, std = np.zeros(c, np.float32), np.full(c, 255.0, np.float32)
  elif d.normalize == "standardize":
    mean, std = np.asarray(ds.mean, np.float32), np.asarray(ds.std, np.float32)
  else:
    raise ValueError(f"no PyTorch form of normalize={d.normalize!r} here")
  norm = lambda x: ((x.float() - torch.from_numpy(mean).view(1, c, 1, 1)) / torch.from_numpy(std).view(1, c, 1, 1))
  to_nchw = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2)
  train_x, train_y = to_nchw(np.asarray(ds.train.images)), torch.from_numpy(np.asarray(ds.train.labels)).long()
  test_x, test_y = to_nchw(np.asarray(ds.test.images)), torch.from_numpy(np.asarray(ds.test.labels)).long()
  gen = torch.Generator().manual_seed(config.seed)
  loss_fn = torch.nn.CrossEntropyLoss()
  batch = d.batch_size

  def augment(x):  # uint8 NCHW: pad-and-crop, then horizontal flips (the zoo's crop_flip), before normalizing
    if d.augment == "none":
      return x
    n, pad = x.shape[0], d.crop_padding
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    rows = (oy[:, None] + torch.arange(h))[:, :, None]
    cols = (ox[:, None] + torch.arange(w))[:, None, :]
    x = padded.permute(0, 2, 3, 1)[torch.arange(n)[:, None, None], rows, cols].permute(0, 3, 1, 2)
    flip = torch.rand(n, generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)

  def epoch(i):
    net.train()
    order = torch.from_numpy(run.train_loader.order(i))
    for k in range(steps):
      idx = order[k * batch:(k + 1) * batch]
      x = norm(augment(train_x[idx])).contiguous(memory_format=torch.channels_last)
      opt.zero_grad(set_to_none=True)
      loss_fn(net(x), train_y[idx]).backward()
      opt.step()
      sched.step()
    net.eval()
    correct = 0
    with torch.no_grad():
      for k in range(0, len(test_y), 1000):
        x = norm(test_x[k:k + 1000]).contiguous(memory_format=torch.channels_last)
        correct += int((net(x).argmax(1) == test_y[k:k + 1000]).sum())
    return correct / len(test_y)
  return epoch


def main(argv):
  del argv
  from cnnzoo import cli
  cli.choose_platform()
  import numpy as np
  from configs import fashion_mnist
  targets = sorted(float(t) for t in _TARGETS.value)
  rows = []
  for variant in _VARIANTS.value:
    base = fashion_mnist.get_config(None if variant == "default" else variant)
    base.data.dir = _DATA_DIR.value or base.data.dir
    base.monitor.progress = base.monitor.plot = base.monitor.tensorboard = False
    epochs = min(_MAX_EPOCHS.value or base.num_epochs, base.num_epochs)
    contestants, reference_run = {}, None
    for name in _CONTESTANTS.value:
      config = base.copy_and_resolve_references()
      t = time.perf_counter()
      if name in ("cnnzoo", "cnnzoo_streamed", "cnnzoo_bf16"):
        config.data.on_device = "no" if name == "cnnzoo_streamed" else "yes"
        if name == "cnnzoo_bf16":
          config.model.dtype = "bfloat16"  # compute in bfloat16; parameters, optimizer and loss stay float32
        step, run = cnnzoo_contestant(config)
        reference_run = reference_run or run
      elif name == "pytorch":
        if reference_run is None:
          step, reference_run = cnnzoo_contestant(config)  # cnnzoo's initial weights and batch order
        step = torch_contestant(config, reference_run)
      else:
        raise app.UsageError(f"--contestants: {name!r} is not cnnzoo, cnnzoo_streamed, cnnzoo_bf16 or pytorch")
      contestants[name] = {"step": step, "clock": time.perf_counter() - t, "epochs": [], "reached": {}}
    for i in range(epochs):
      for name, c in contestants.items():
        if len(c["reached"]) == len(targets):
          continue
        t = time.perf_counter()
        acc = c["step"](i)
        seconds = time.perf_counter() - t
        c["clock"] += seconds
        c["epochs"].append((acc, seconds))
        for target in targets:
          if acc >= target and target not in c["reached"]:
            c["reached"][target] = (i + 1, c["clock"])
        print(f"{variant} {name} epoch {i + 1}: test accuracy {acc:.4f}, {seconds:.1f} s "
              f"({c['clock']:.0f} s so far)", flush=True)
    n_train = len(reference_run.dataset.train) if reference_run else 0
    for name, c in contestants.items():
      median = float(np.median([s for _, s in c["epochs"][1:]] or [s for _, s in c["epochs"]]))
      cells = [f"{c['reached'][t][1]:.0f} s ({c['reached'][t][0]} ep)" if t in c["reached"] else "not reached"
               for t in targets]
      rows.append(f"| {variant} | {name} | " + " | ".join(cells) + f" | {n_train / median:.0f} | "
                  f"{c['epochs'][-1][0]:.4f} ({len(c['epochs'])} ep) |")
  print(f"\n| config | contestant | {' | '.join(f'to {t:.2f}' for t in targets)} | img/s (median epoch, "
        "train + test) | last accuracy |")
  print("|---|---|" + "---:|" * len(targets) + "---:|---:|")
  print("\n".join(rows))


if __name__ == "__main__":
  app.run(main)
