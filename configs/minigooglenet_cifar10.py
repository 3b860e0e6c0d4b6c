"""MiniGoogLeNet on CIFAR-10 (seed 000, 2020-12-06): three learning-rate schedules, 70 epochs each.

  python -m experiments.main --config=configs/minigooglenet_cifar10.py           # poly 2, lr 5e-3
  python -m experiments.main --config=configs/minigooglenet_cifar10.py:highlr    # poly 2, lr 1e-2
  python -m experiments.main --config=configs/minigooglenet_cifar10.py:linear    # linear, lr 1e-2

The journal: "polynomial decay of degree 2", then "a larger initial learning rate with the same
decay" (its validation loss "saturated very quickly at about 50 epoch"), then "linear decay"
instead of the quadratic. Seed results (validation accuracy): 0.90 / 0.91 / 0.91, "almost the same".
Left out by the journal, chosen here: 70 epochs (its figures end at epoch index 69); SGD momentum
0.9, lr 5e-3 for the first run (the book code it follows), 1e-2 as the "larger" rate, also for the
linear run; batch 64, mean subtraction, shift 0.1 + horizontal flips (the book's augmentation).
The journal validated on a random 10,000 images of its own; here the CIFAR-10 test split.
Data: tfds `cifar10`; prepare once with `pip install tensorflow && tfds build cifar10`.
"""

from configs import base

VARIANTS = ("highlr", "linear")  # arguments that select another journal run


def get_config(arg=None):
  args = base.parse_args(arg, ("smoke", *VARIANTS))
  c = base.get_config()
  c.model.name = "minigooglenet"
  c.journal.run = "MiniGoogLeNet, CIFAR-10, poly 2 decay"
  c.journal.seed = "000 (2020-12-06)"
  c.journal.recipe = "journal + book"
  c.journal.metric = "val_accuracy"
  c.journal.figure = 0.90
  c.optim.semantics = "keras"  # Keras 3's update arithmetic, as the journal trained
  c.model.kernel_init = "glorot_uniform"  # Keras' default for Conv2D and Dense (biases zero)
  c.data.name = "cifar10"
  c.data.val_fraction = 0.0  # validate on the test split
  c.data.how_to_get = "prepare it once with `pip install tensorflow && tfds build cifar10`"
  c.data.batch_size = 64
  c.data.normalize = "mean"
  c.data.augment = "affine_flip"
  c.data.shift = 0.1
  c.optim.name = "sgd"
  c.optim.lr = 5e-3
  c.optim.momentum = 0.9
  c.schedule.name = "poly"
  c.schedule.power = 2.0
  c.num_epochs = 70
  c.checkpoint.keep_every = 10
  if "highlr" in args:
    c.journal.recipe = "journal + our choice: the larger rate 1e-2"
    c.journal.run, c.journal.figure = "MiniGoogLeNet, CIFAR-10, poly 2 decay, larger initial lr", 0.91
    c.optim.lr = 1e-2
  if "linear" in args:
    c.journal.recipe = "journal + our choice: the larger rate 1e-2"
    c.journal.run, c.journal.figure = "MiniGoogLeNet, CIFAR-10, linear decay", 0.91
    c.optim.lr = 1e-2
    c.schedule.name = "linear"
    base.drop(c.schedule, "power")  # poly's (linear is poly of power 1)
  if "smoke" in args:
    base.smoke(c, (32, 32, 3), 10)
  return c
