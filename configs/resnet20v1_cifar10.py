"""ResNet20 v1 on CIFAR-10, the Keras example (keras.io cifar10_resnet) as seed 001 shows it, and
seed 004's run of it without augmentation.

  python -m experiments.main --config=configs/resnet20v1_cifar10.py          # the Keras example, 200 epochs
  python -m experiments.main --config=configs/resnet20v1_cifar10.py:noaug    # seed 004: no augmentation, 50 epochs

The example's recipe, as seed 001 quotes it: batch 32, 200 epochs, subtract_pixel_mean (x / 255 minus
the training set's mean image), Adam lr 1e-3 times 0.1 / 0.01 / 0.001 / 0.0005 once the (0-based)
epoch is > 80 / 120 / 160 / 180 (`schedule.boundaries` 81 / 121 / 161 / 181), he_normal kernels,
L2 1e-4, shift 0.1 + horizontal flips, the test split as validation. Seed 001 stops before training:
no figure (the Keras example's own table gives 92.16 % for ResNet20 v1).
The example also passes ReduceLROnPlateau(factor sqrt(0.1), patience 5, min_lr 0.5e-6), but its
LearningRateScheduler sets the rate again at the start of every epoch, so the reductions never
reach a step: it changes nothing in Keras and is left off here (cnnzoo's plateau would compound
with the schedule instead). L2 on the convolutions only, as the example (and seed 004) has it.
Seed 004: "roughly the same as the Keras example, but I didn't use data augmentation", 50 epochs,
about 0.80 on the test set.
Data: tfds `cifar10`; prepare once with `pip install tensorflow && tfds build cifar10`.
"""

from configs import base

VARIANTS = ("noaug",)  # arguments that select another journal run


def get_config(arg=None):
  args = base.parse_args(arg, ("smoke", *VARIANTS))
  c = base.get_config()
  c.model.name = "resnet20_v1"
  c.journal.run = "ResNet20 v1, CIFAR-10, the Keras example (no figure in the seed)"
  c.journal.seed = "001"
  c.journal.recipe = "journal + book (the Keras ResNet example)"
  c.journal.metric = "val_accuracy"
  c.journal.figure = 0.0
  c.optim.semantics = "keras"  # Keras 3's update arithmetic
  c.model.kernel_init = "he_normal"  # the example's kernel_initializer
  c.data.name = "cifar10"
  c.data.val_fraction = 0.0  # validation_data=(x_test, y_test)
  c.data.how_to_get = "prepare it once with `pip install tensorflow && tfds build cifar10`"
  c.data.batch_size = 32
  c.data.normalize = "pixel_mean"
  c.data.augment = "affine_flip"
  c.data.shift = 0.1
  c.optim.name = "adam"
  c.optim.lr = 1e-3
  c.optim.l2 = 1e-4
  c.optim.l2_conv_only = True  # kernel_regularizer on Conv2D; the Dense has none
  c.schedule.name = "piecewise"
  c.schedule.boundaries = (81, 121, 161, 181)  # Keras' `epoch > 80` etc. with 0-based epochs
  c.schedule.scales = (0.1, 0.1, 0.1, 0.5)  # cumulative: 1e-4, 1e-5, 1e-6, 5e-7
  c.num_epochs = 200
  c.checkpoint.keep_every = 20
  if "noaug" in args:
    c.journal.run = "ResNet20 v1, CIFAR-10, without augmentation, 50 epochs"
    c.journal.seed, c.journal.metric, c.journal.figure = "004", "test_accuracy", 0.80
    c.data.augment = "none"
    base.drop(c.data, "shift")  # affine_flip's
    c.num_epochs = 50
  if "smoke" in args:
    base.smoke(c, (32, 32, 3), 10)
  return c
