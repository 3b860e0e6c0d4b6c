"""The seed's ResNet on CIFAR-10 (seed 2020-12-12): stages (9, 9, 9), filters (64, 64, 128, 256).

  python -m experiments.main --config=configs/resnet_cifar10.py             # run 4: linear decay
  python -m experiments.main --config=configs/resnet_cifar10.py:restart     # run 3: 1e-1, then 1e-2 from 75
  python -m experiments.main --config=configs/resnet_cifar10.py:l2small     # run 4 with L2 1e-4

SGD momentum 0.9, lr 1e-1 decaying linearly (poly, power 1) to 0 over 100 epochs, L2 5e-4 on every
kernel, batch 128. Seed result: validation accuracy 0.9313 at the end of training.
Where the journal speaks, it is followed; where it is silent, the book code it follows:
- the schedule: the journal's "linear learning rate decay" (run 4), a straight line from 1e-1 to 0
  at epoch 100 (`poly`, power 1). The book's CIFAR-10 ResNet drops along two segments instead; the
  journal's words and its plot are a single line, so they win.
- augmentation (journal silent): the book's ImageDataGenerator, width / height shift 0.1 and
  horizontal flips, fill "nearest" (`affine_flip`, shift 0.1).
- mean subtraction (journal silent): the book's per-pixel mean image of the training set (`trainX -= np.mean(trainX, axis=0)`), here `pixel_mean`. The book subtracts in 0..255 units,
  cnnzoo in [0, 1] units; the network's first layer is a BatchNormalization of its input, which
  normalizes the factor 255 away (up to its epsilon).
Run 3 (`:restart`): "learning rate 1e-1 for the first 100 epoch ... the training stagnates quickly
after 75 epoch, we retrain the model at epoch75 and change the learning rate to 1e-2" (no figure):
a constant 1e-1 to epoch 75, then 1e-2 to 100 in one command (the optimizer state carries over, as
a Keras model reloaded with a new rate); the journal leaves the length after 75 out: 25 epochs.
`:l2small`: the comparison behind the journal's choice, "larger (0.0005 instead of 0.0001)
l2-regularization constant for every Conv2D layer for longer training" -- run 4's recipe with the
L2 it replaced (the journal gives no figure for it).
Data: tfds `cifar10`; prepare once with `pip install tensorflow && tfds build cifar10`.
"""

from configs import base

VARIANTS = ("restart", "l2small")  # arguments that select another journal run


def get_config(arg=None):
  args = base.parse_args(arg, ("smoke", *VARIANTS))
  c = base.get_config()
  c.model.name = "resnet_cifar"
  c.journal.run = "the seed ResNet, CIFAR-10, linear decay (run 4)"
  c.journal.seed = "2020-12-12"
  c.journal.recipe = "journal + book"
  c.journal.metric = "val_accuracy"
  c.journal.figure = 0.9313
  c.optim.semantics = "keras"  # Keras 3's update arithmetic, as the journal trained
  c.model.kernel_init = "glorot_uniform"  # Keras' default for Conv2D and Dense (biases zero)
  c.data.name = "cifar10"
  c.data.val_fraction = 0.0  # validate on the test split, as the seed did
  c.data.how_to_get = "prepare it once with `pip install tensorflow && tfds build cifar10`"
  c.data.batch_size = 128
  c.data.normalize = "pixel_mean"  # the book's per-pixel mean image (see the docstring)
  c.data.augment = "affine_flip"
  c.data.shift = 0.1  # the book: width_shift_range = height_shift_range = 0.1, horizontal_flip
  c.optim.name = "sgd"
  c.optim.lr = 1e-1
  c.optim.momentum = 0.9
  c.optim.l2 = 5e-4
  c.schedule.name = "poly"
  c.schedule.power = 1.0
  c.num_epochs = 100
  c.checkpoint.keep_every = 5
  if "restart" in args:
    c.journal.recipe = "journal + our choice: 25 epochs after epoch 75"
    c.journal.run, c.journal.figure = "the seed ResNet, CIFAR-10, 1e-1 then 1e-2 from epoch 75 (run 3)", 0.0
    c.schedule.name = "constant"
    base.drop(c.schedule, "power")  # poly's
    c.stages = ((75, "optim.lr=1e-1"), (100, "optim.lr=1e-2"))
  if "l2small" in args:
    c.journal.run, c.journal.figure = "the seed ResNet, CIFAR-10, linear decay, L2 1e-4 (before 5e-4)", 0.0
    c.optim.l2 = 1e-4
  if "smoke" in args:
    base.smoke(c, (32, 32, 3), 10)
    # one block per stage: the plumbing is the same and the (9, 9, 9) train step takes ~35 s to
    # compile on 2 CPU cores (its shapes and counts are tested in tests/test_models.py)
    c.model.kwargs.stage_sizes = (1, 1, 1)
  return c
