"""Seed 003's CIFAR-10 network (experiment 5, step 1): the base its Tiny-ImageNet transfer and
fine-tuning runs start from (configs/seed003_transfer.py).

  python -m experiments.main --config=configs/seed003_cifar10.py      # -> runs/seed003_cifar10

Conv-ReLU-BN pairs of 32 / 64 / 128 filters (same, then valid padding), max pools, spatial dropout,
then the classifier (`seed003_cifar_net`; 288,800 params up to the last dropout, the base).
"The programme saved the model at 50 epochs"; "Test accuracy: 0.8423" on the CIFAR-10 test set.
Left out by the seed, chosen here: Adam with Keras' defaults, batch 64, pixels scaled to [0, 1],
shift 0.1 + horizontal flips, the test split as validation.
Data: tfds `cifar10`; prepare once with `pip install tensorflow && tfds build cifar10`.
"""

from configs import base


def get_config(arg=None):
  c = base.get_config()
  c.model.name = "seed003_cifar_net"
  c.journal.run = "seed 003 CIFAR-10 network (the transfer runs' base)"
  c.journal.seed = "003"
  c.journal.recipe = "our choice: the seed gives only its 50 epochs"
  c.journal.metric = "test_accuracy"
  c.journal.figure = 0.8423
  c.optim.semantics = "keras"  # Keras' update arithmetic, as the seed trained
  c.model.kernel_init = "glorot_uniform"  # Keras' default for Conv2D and Dense (biases zero)
  c.data.name = "cifar10"
  c.data.val_fraction = 0.0
  c.data.how_to_get = "prepare it once with `pip install tensorflow && tfds build cifar10`"
  c.data.batch_size = 64
  c.data.augment = "affine_flip"
  c.data.shift = 0.1
  c.optim.name = "adam"
  c.optim.lr = 1e-3
  c.num_epochs = 50
  c.checkpoint.keep_every = 10
  if "smoke" in base.parse_args(arg):
    base.smoke(c, (32, 32, 3), 10)
  return c
