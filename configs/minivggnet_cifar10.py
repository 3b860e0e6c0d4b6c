"""MiniVGGNet on CIFAR-10 (seed 2020-11-12, MiniVGGNet_CIFAR10_decay.py).

  python -m experiments.main --config=configs/minivggnet_cifar10.py --workdir=runs/minivggnet_cifar10

SGD lr 0.01, momentum 0.9, Nesterov, Keras time-based decay 0.01 / 40 per iteration, 40 epochs,
batch 64, pixels scaled to [0, 1]; the test split doubles as validation, as in the seed.
Seed result: validation accuracy about 0.82.
Data: tfds `cifar10`; prepare once with `pip install tensorflow && tfds build cifar10`.
"""

from configs import base


def get_config(arg=None):
  c = base.get_config()
  c.model.name = "minivggnet"
  c.journal.run = "MiniVGGNet, CIFAR-10, time-based decay"
  c.journal.seed = "2020-11-12"
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
  c.schedule.decay = 0.01 / 40
  c.num_epochs = 40
  if "smoke" in base.parse_args(arg):
    base.smoke(c, (32, 32, 3), 10)
  return c
