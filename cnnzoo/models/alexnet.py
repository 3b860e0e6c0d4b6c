"""AlexNet and the journal's adaptations of it, as layer specs for `PlainNet`."""


from cnnzoo.models.plain import PlainNet
from cnnzoo.models.registry import register_model


def _conv(filters, kernel, stride=1, padding="SAME"):
  return [("conv", filters, kernel, stride, padding), ("relu",)]


# Krizhevsky et al. 2012 as one tower (the seed's AlexNet table): LRN after conv1 and conv2.
ALEXNET = (
    *_conv(96, 11, 4, "VALID"), ("lrn",), ("maxpool", 3, 2),
    *_conv(256, 5), ("lrn",), ("maxpool", 3, 2),
    *_conv(384, 3), *_conv(384, 3), *_conv(256, 3), ("maxpool", 3, 2), ("flatten",))
FC_4096 = (("dropout", 0.5), ("dense", 4096), ("relu",), ("dropout", 0.5), ("dense", 4096), ("relu",))

# Krizhevsky 2014, "One weird trick" single-tower form, as torchvision builds it.
ALEXNET_OWT = (
    ("conv", 64, 11, 4, ((2, 2), (2, 2))), ("relu",), ("maxpool", 3, 2),
    ("conv", 192, 5, 1, ((2, 2), (2, 2))), ("relu",), ("maxpool", 3, 2),
    *_conv(384, 3), *_conv(256, 3), *_conv(256, 3), ("maxpool", 3, 2),
    ("adaptive_avg", 6), ("flatten",))

# Seed 003: AlexNet adapted to 32x32 Tiny-ImageNet (BatchNorm where the original had LRN, tanh FCs).
ALEXNET_TINY = (
    *_conv(96, 3, 2), ("maxpool", 2, 2), ("bn",),
    *_conv(256, 5), ("maxpool", 3, 2), ("bn",),
    *_conv(384, 3), *_conv(384, 3), *_conv(256, 3), ("maxpool", 3, 2), ("bn",), ("flatten",))
ALEXNET_TINY_FC = (("dense", 4096), ("tanh",), ("dropout", 0.5), ("dense", 4096), ("tanh",),
                   ("dropout", 0.5))

# Seed 001: the Keras AlexNet with BatchNorm trained on Flowers-17 (224x224, valid convs).
ALEXNET_FLOWERS = (
    ("conv", 96, 11, 4, "VALID"), ("relu",), ("maxpool", 2, 2), ("bn",),
    ("conv", 256, 11, 1, "VALID"), ("relu",), ("maxpool", 2, 2), ("bn",),
    ("conv", 384, 3, 1, "VALID"), ("relu",), ("bn",),
    ("conv", 384, 3, 1, "VALID"), ("relu",), ("bn",),
    ("conv", 256, 3, 1, "VALID"), ("relu",), ("maxpool", 2, 2), ("bn",), ("flatten",))
ALEXNET_FLOWERS_FC = (
    ("dense", 4096), ("relu",), ("dropout", 0.4), ("bn",),
    ("dense", 4096), ("relu",), ("dropout", 0.4), ("bn",),
    ("dense", 1000), ("relu",), ("dropout", 0.4), ("bn",))


@register_model(input_shape=(227, 227, 3), num_classes=1000, reference="seed 001 AlexNet table: 62,378,344")
def alexnet(*, num_classes, **kw):
  """Single-tower AlexNet (Krizhevsky et al. 2012) with LRN, on 227x227."""
  return PlainNet(features=ALEXNET, classifier=FC_4096, num_classes=num_classes, **kw)


@register_model(input_shape=(224, 224, 3), num_classes=1000, reference="torchvision docs: 61,100,840")
def alexnet_owt(*, num_classes, **kw):
  """AlexNet "one weird trick" (torchvision's form), on 224x224."""
  return PlainNet(features=ALEXNET_OWT, classifier=FC_4096, num_classes=num_classes, **kw)


@register_model(input_shape=(32, 32, 3), num_classes=200, reference="seed 003 table: 22,370,760 total")
def alexnet_tiny(*, num_classes, **kw):
  """Seed 003's AlexNet for 32x32 Tiny-ImageNet."""
  return PlainNet(features=ALEXNET_TINY, classifier=ALEXNET_TINY_FC, num_classes=num_classes, **kw)


@register_model(input_shape=(224, 224, 3), num_classes=17, reference="seed 001 Keras code, rebuilt in Keras 3")
def alexnet_flowers17(*, num_classes, **kw):
  """Seed 001's Keras AlexNet with BatchNorm for Flowers-17."""
  return PlainNet(features=ALEXNET_FLOWERS, classifier=ALEXNET_FLOWERS_FC, num_classes=num_classes, **kw)


# Seed 003 Part 1: "the best network we could build in Keras" for 32x32 Tiny-ImageNet.
def _seed003_pair(filters, pool=True):
  layers = [*_conv(filters, 3), ("bn",), *_conv(filters, 3, 1, "VALID"), ("bn",)]
  return layers + ([("maxpool", 2, 2)] if pool else [])


SEED003_PART1 = (
    *_seed003_pair(16), ("dropout", 0.25), *_seed003_pair(32), ("dropout", 0.25),
    *_seed003_pair(64), ("dropout", 0.25), *_conv(64, 3), ("bn",), ("maxpool", 2, 2),
    ("dropout", 0.25), ("gap",))

# Seed 003 experiment 5: the CIFAR-10 network whose conv part (288,800 params) is reused.
SEED003_CIFAR = (
    *_conv(32, 3), ("bn",), *_conv(32, 3, 1, "VALID"), ("bn",), ("maxpool", 2, 2), ("spatial_dropout", 0.2),
    *_conv(64, 3), ("bn",), *_conv(64, 3, 1, "VALID"), ("bn",), ("maxpool", 2, 2), ("spatial_dropout", 0.3),
    *_conv(128, 3), ("bn",), *_conv(128, 3, 1, "VALID"), ("bn",), ("maxpool", 2, 2), ("dropout", 0.4),
    ("flatten",))


@register_model(input_shape=(32, 32, 3), num_classes=200, reference="seed 003 Part 1 layer table")
def seed003_tiny_net(*, num_classes, **kw):
  """Seed 003 Part 1: conv-ReLU-BN pairs 16/32/64, a last conv 64, global pool, dropout, dense."""
  return PlainNet(features=SEED003_PART1, classifier=(("relu",), ("dropout", 0.25)),
                  num_classes=num_classes, **kw)


@register_model(input_shape=(32, 32, 3), num_classes=10, reference="seed 003 exp. 5: 288,800 to the dropout")
def seed003_cifar_net(*, num_classes, **kw):
  """Seed 003 experiment 5: the CIFAR-10 network; `include_top=False` is its 288,800-param base."""
  return PlainNet(features=SEED003_CIFAR, classifier=(), num_classes=num_classes, **kw)


@register_model(input_shape=(1, 1, 3072), num_classes=200, reference="seed 003 exp. 5 head: 1,675,976")
def seed003_transfer_head(*, num_classes, **kw):
  """Seed 003 experiment 5's dense head on 3,072 flattened features: Dense 512-ReLU-dropout-Dense."""
  return PlainNet(features=(("flatten",),), classifier=(("dense", 512), ("relu",), ("dropout", 0.5)),
                  num_classes=num_classes, **kw)


