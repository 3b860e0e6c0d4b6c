"""VGG16 on CIFAR-10 with and without augmentation (seed 002, "30 Days", PyTorch).

  python -m experiments.main --config=configs/vgg16_cifar10.py
  python -m experiments.main --config=configs/vgg16_cifar10.py:noaug

The seed: "I trained a VGG16 model on the CIFAR10 dataset. It was a 5% - 7% drop in TOP-1 accuracy
if I do nothing with the data": a relative figure only, the runs are in an earlier post the seed
does not include. Chosen here: VGG16 with BatchNorm (`vgg16_bn`, the usual CIFAR form) on 32x32
images (block5 ends at 1x1x512, then the 4096-4096 classifier), SGD lr 0.05, momentum 0.9, weight
decay 5e-4, cosine decay over 100 epochs, batch 128, per-channel standardization, pad-4 crop +
flips (none for `:noaug`), the test split as validation.
Data: tfds `cifar10`; prepare once with `pip install tensorflow && tfds build cifar10`.
"""

from configs import base

VARIANTS = ("noaug",)  # arguments that select another journal run


def get_config(arg=None):
  args = base.parse_args(arg, ("smoke", *VARIANTS))
  c = base.get_config()
  c.model.name = "vgg16_bn"
  c.model.input_shape = (32, 32, 3)
  c.journal.run = "VGG16, CIFAR-10, with augmentation (seed: 5-7 % above no augmentation)"
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
  c.optim.lr = 0.05
  c.optim.momentum = 0.9
  c.optim.weight_decay = 5e-4
  c.schedule.name = "cosine"
  c.num_epochs = 100
  c.checkpoint.keep_every = 10
  if "noaug" in args:
    c.journal.run = "VGG16, CIFAR-10, without augmentation (seed: 5-7 % lower top-1)"
    c.data.augment = "none"
  if "smoke" in args:
    base.smoke(c, (32, 32, 3), 10)
    c.model.kwargs.convs_per_block = (1, 1, 1, 1, 1)  # one conv per block and a narrow classifier:
    c.model.kwargs.fc_width = 64  # the plumbing in seconds (tests/test_models.py counts the full model)
  return c
