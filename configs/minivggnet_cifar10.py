"""MiniVGGNet on CIFAR-10 (seed 000, 2020-11-12): the learning-rate decay study, four runs.

  python -m experiments.main --config=configs/minivggnet_cifar10.py            # time-based decay
  python -m experiments.main --config=configs/minivggnet_cifar10.py:step       # x0.25 every 5 epochs
  python -m experiments.main --config=configs/minivggnet_cifar10.py:constant   # lr 0.01 throughout
  python -m experiments.main --config=configs/minivggnet_cifar10.py:nobn       # time decay, no BatchNorm

The journal: SGD with momentum and Nesterov, BatchNorm added "to see difference", Keras' time-based
decay lr = a0 / (1 + decay * iterations) "with decay = a0 / batchSize": 0.01 / 64 here (the book
code the journal follows uses a0 / epochs = 0.01 / 40; we follow the journal's text). Step decay:
"decay per 5 epochs ... factor 0.25"; the constant-rate baseline at 0.01. Seed result: validation
accuracy "about 0.82" for the time-based decay; the other three runs are compared as curves only.
Left out by the journal, taken from the book: lr 0.01, momentum 0.9, batch 64, 40 epochs, pixels
scaled to [0, 1], no augmentation; the test split doubles as validation.
Data: tfds `cifar10`; prepare once with `pip install tensorflow && tfds build cifar10`.
"""

from configs import base

VARIANTS = ("step", "constant", "nobn")  # arguments that select another journal run


def get_config(arg=None):
  args = base.parse_args(arg, ("smoke", *VARIANTS))
  c = base.get_config()
  c.model.name = "minivggnet"
  c.journal.run = "MiniVGGNet, CIFAR-10, time-based decay"
  c.journal.seed = "000 (2020-11-12)"
  c.journal.recipe = "journal + book"
  c.journal.metric = "val_accuracy"
  c.journal.figure = 0.82
  c.optim.semantics = "keras"  # Keras 3's update arithmetic, as the journal trained
  c.model.kernel_init = "glorot_uniform"  # Keras' default for Conv2D and Dense (biases zero)
  c.data.name = "cifar10"
  c.data.val_fraction = 0.0  # validate on the test split, as the seed did
  c.data.how_to_get = "prepare it once with `pip install tensorflow && tfds build cifar10`"
  c.data.batch_size = 64
  c.optim.name = "sgd"
  c.optim.lr = 0.01
  c.optim.momentum = 0.9
  c.optim.nesterov = True
  c.schedule.name = "keras_time"
  c.schedule.decay = 0.01 / 64  # the journal: decay = a0 / batchSize
  c.num_epochs = 40
  if "step" in args:
    c.journal.run, c.journal.figure = "MiniVGGNet, CIFAR-10, step decay x0.25 every 5 epochs", 0.0
    c.schedule.name, c.schedule.step_every, c.schedule.step_factor = "step", 5, 0.25
    base.drop(c.schedule, "decay")  # keras_time's
    # the book's step_decay(epoch) = 0.01 * 0.25 ** floor((1 + epoch) / 5), which Keras'
    # LearningRateScheduler calls with the 0-based epoch: the first drop is at the 5th epoch
    c.schedule.step_offset = 1
  if "constant" in args:
    c.journal.run, c.journal.figure = "MiniVGGNet, CIFAR-10, constant lr 0.01 (baseline)", 0.0
    c.schedule.name = "constant"
    base.drop(c.schedule, "decay")
  if "nobn" in args:
    c.journal.run, c.journal.figure = "MiniVGGNet, CIFAR-10, time-based decay, no BatchNorm", 0.0
    c.model.kwargs.batch_norm = False
  if "smoke" in args:
    base.smoke(c, (32, 32, 3), 10)
  return c
