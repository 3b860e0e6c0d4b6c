"""ResNet-18 on CIFAR-10 with and without BatchNorm (seed 002, "30 Days", PyTorch).

  python -m experiments.main --config=configs/resnet18_cifar10.py
  python -m experiments.main --config=configs/resnet18_cifar10.py:nobn

The seed compares the two as curves ("ResNet-18 ... ResNet-18 without BatchNorm", top-1 with and
without BN) and reports no number, nor its recipe. Chosen here, the common PyTorch CIFAR recipe the
blog's code follows: ResNet-18 with a 3x3 stem and no max pool (11,173,962 params), SGD lr 0.1,
momentum 0.9, weight decay 5e-4 (PyTorch's, added to the gradient), cosine decay over 200 epochs,
batch 128, per-channel standardization, pad-4 crop + flips, the test split as validation; optax's
SGD is PyTorch's. `:nobn` drops every BatchNorm layer and keeps the rest; at lr 0.1 it may
diverge (cnnzoo stops at the first NaN and names the last good checkpoint).
Data: tfds `cifar10`; prepare once with `pip install tensorflow && tfds build cifar10`.
"""

from configs import base

VARIANTS = ("nobn",)  # arguments that select another journal run


def get_config(arg=None):
  args = base.parse_args(arg, ("smoke", *VARIANTS))
  c = base.get_config()
  c.model.name = "resnet18"
  c.model.kwargs.stem = "cifar"
  c.journal.run = "ResNet-18, CIFAR-10, with BatchNorm (curves only)"
  c.journal.seed = "002"
  c.journal.recipe = "our choice: the journal gives no recipe"
  c.journal.metric = "val_accuracy"
  c.journal.figure = 0.0
  c.data.name = "cifar10"
  c.data.val_fraction = 0.0
  c.data.how_to_get = "prepare it once with `pip install tensorflow && tfds build cifar10`"
  c.data.batch_size = 128
  c.data.normalize = "standardize"
  c.data.augment = "crop_flip"
  c.optim.name = "sgd"
  c.optim.lr = 0.1
  c.optim.momentum = 0.9
  c.optim.weight_decay = 5e-4
  c.schedule.name = "cosine"
  c.num_epochs = 200
  c.checkpoint.keep_every = 20
  if "nobn" in args:
    c.journal.run = "ResNet-18, CIFAR-10, without BatchNorm (curves only)"
    c.model.kwargs.batch_norm = False
  if "smoke" in args:
    base.smoke(c, (32, 32, 3), 10)
    c.model.kwargs.stage_sizes = (1, 1, 1, 1)  # one block per stage: the plumbing, in seconds
  return c
