"""The seed's Keras models, re-typed from the journal, as independent parameter-count references.

Each function returns a Keras 3 model built the way the seed built it (Sequential / functional
API, Keras layer defaults), so `count_params()` and the trainable split are Keras' own figures.
"""

import numpy as np

from conftest import fast_keras

keras = fast_keras()
layers, regularizers = keras.layers, keras.regularizers


def shallownet(num_classes=3, shape=(32, 32, 3)):
  return keras.Sequential([
      keras.Input(shape), layers.Conv2D(32, 3, padding="same", activation="relu"),
      layers.Flatten(), layers.Dense(num_classes, activation="softmax")])


def lenet(num_classes=10, shape=(32, 32, 1)):
  # Seed LeNet notebook: Conv(6,5) relu, pool, Conv(16,5) relu, pool, Dense 120, 84, classes.
  return keras.Sequential([
      keras.Input(shape), layers.Conv2D(6, 5, activation="relu"), layers.MaxPooling2D(2),
      layers.Conv2D(16, 5, activation="relu"), layers.MaxPooling2D(2), layers.Flatten(),
      layers.Dense(120, activation="relu"), layers.Dense(84, activation="relu"),
      layers.Dense(num_classes, activation="softmax")])


def minivggnet(num_classes=10, shape=(32, 32, 3)):
  model = keras.Sequential([keras.Input(shape)])
  for width in (32, 64):
    for _ in range(2):
      model.add(layers.Conv2D(width, 3, padding="same", activation="relu"))
      model.add(layers.BatchNormalization())
    model.add(layers.MaxPooling2D(2))
    model.add(layers.Dropout(0.25))
  model.add(layers.Flatten())
  model.add(layers.Dense(512, activation="relu"))
  model.add(layers.BatchNormalization())
  model.add(layers.Dropout(0.5))
  model.add(layers.Dense(num_classes, activation="softmax"))
  return model


def seed_resnet(stages, filters, num_classes, shape, dataset, reg=5e-4, eps=2e-5, mom=0.9):
  """Seed 2020-12-12's ResNet.build (pre-activation bottleneck residual_module, K * 0.25 inside)."""
  bn = lambda: layers.BatchNormalization(epsilon=eps, momentum=mom)
  conv = lambda k, size, stride=1: layers.Conv2D(k, size, strides=stride, padding="same", use_bias=False,
                                                 kernel_regularizer=regularizers.l2(reg))

  def residual_module(data, k, stride, red):
    act1 = layers.Activation("relu")(bn()(data))
    x = conv(int(k * 0.25), 1)(act1)
    x = conv(int(k * 0.25), 3, stride)(layers.Activation("relu")(bn()(x)))
    x = conv(k, 1)(layers.Activation("relu")(bn()(x)))
    shortcut = conv(k, 1, stride)(act1) if red else data
    return layers.add([x, shortcut])

  inputs = keras.Input(shape)
  x = bn()(inputs)
  if dataset == "cifar":
    x = conv(filters[0], 3)(x)
  else:
    x = conv(filters[0], 5)(x)
    x = layers.Activation("relu")(bn()(x))
    x = layers.ZeroPadding2D(1)(x)
    x = layers.MaxPooling2D(3, strides=2)(x)
  for i, size in enumerate(stages):
    stride = 1 if i == 0 else 2
    x = residual_module(x, filters[i + 1], stride, red=True)
    for _ in range(size - 1):
      x = residual_module(x, filters[i + 1], 1, red=False)
  x = layers.Activation("relu")(bn()(x))
  x = layers.AveragePooling2D(8)(x)
  x = layers.Flatten()(x)
  x = layers.Dense(num_classes, kernel_regularizer=regularizers.l2(reg), activation="softmax")(x)
  return keras.Model(inputs, x)


def alexnet_flowers17(num_classes=17):
  """Seed 001's Keras AlexNet (with BatchNorm) for Flowers-17, as written there."""
  model = keras.Sequential([keras.Input((224, 224, 3))])
  for filters, kernel, stride, pool in ((96, 11, 4, True), (256, 11, 1, True), (384, 3, 1, False),
                                        (384, 3, 1, False), (256, 3, 1, True)):
    model.add(layers.Conv2D(filters, kernel, strides=stride, padding="valid", activation="relu"))
    if pool:
      model.add(layers.MaxPooling2D(2, strides=2))
    model.add(layers.BatchNormalization())
  model.add(layers.Flatten())
  for units in (4096, 4096, 1000):
    model.add(layers.Dense(units, activation="relu"))
    model.add(layers.Dropout(0.4))
    model.add(layers.BatchNormalization())
  model.add(layers.Dense(num_classes, activation="softmax"))
  return model


REFERENCES = {
    "alexnet_flowers17": alexnet_flowers17,
    "shallownet": shallownet,
    "lenet5": lenet,
    "lenet5_keras": lambda: lenet(shape=(28, 28, 1)),
    "minivggnet": minivggnet,
    "resnet_cifar": lambda: seed_resnet((9, 9, 9), (64, 64, 128, 256), 10, (32, 32, 3), "cifar"),
    "resnet_tiny": lambda: seed_resnet((3, 4, 6), (64, 128, 256, 512), 200, (64, 64, 3), "tiny_imagenet"),
}


def counts(model):
  """(trainable, non-trainable) parameter counts as Keras reports them."""
  trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
  return trainable, model.count_params() - trainable


def keras_example_resnet(depth, version, num_classes=10, activation="softmax"):
  """keras-team/keras examples/cifar10_resnet.py resnet_v1 / resnet_v2, as seed 004 uses them
  (activation=None: logits, for the training twin)."""
  def resnet_layer(x, num_filters=16, kernel_size=3, strides=1, activation="relu", bn=True, conv_first=True):
    conv = layers.Conv2D(num_filters, kernel_size, strides=strides, padding="same")
    if conv_first:
      x = conv(x)
      x = layers.BatchNormalization()(x) if bn else x
      return layers.Activation(activation)(x) if activation else x
    x = layers.BatchNormalization()(x) if bn else x
    x = layers.Activation(activation)(x) if activation else x
    return conv(x)

  inputs = keras.Input((32, 32, 3))
  x = resnet_layer(inputs)
  if version == 1:
    num_filters, n = 16, (depth - 2) // 6
    for stack in range(3):
      for block in range(n):
        strides = 2 if stack > 0 and block == 0 else 1
        y = resnet_layer(x, num_filters, strides=strides)
        y = resnet_layer(y, num_filters, activation=None)
        if strides == 2:
          x = resnet_layer(x, num_filters, kernel_size=1, strides=2, activation=None, bn=False)
        x = layers.Activation("relu")(layers.add([x, y]))
      num_filters *= 2
  else:
    num_in, n = 16, (depth - 2) // 9
    for stage in range(3):
      for block in range(n):
        activation, bn, strides = "relu", True, 1
        if stage == 0:
          num_out = num_in * 4
          if block == 0:
            activation, bn = None, False
        else:
          num_out = num_in * 2
          if block == 0:
            strides = 2
        y = resnet_layer(x, num_in, 1, strides, activation, bn, conv_first=False)
        y = resnet_layer(y, num_in, conv_first=False)
        y = resnet_layer(y, num_out, 1, conv_first=False)
        if block == 0:
          x = resnet_layer(x, num_out, 1, strides, activation=None, bn=False)
        x = layers.add([x, y])
      num_in = num_out
    x = layers.Activation("relu")(layers.BatchNormalization()(x))
  x = layers.Flatten()(layers.AveragePooling2D(8)(x))
  return keras.Model(inputs, layers.Dense(num_classes, activation=activation)(x))


REFERENCES.update({
    "resnet20_v1": lambda: keras_example_resnet(20, 1),
    "resnet110_v1": lambda: keras_example_resnet(110, 1),
    "resnet20_v2": lambda: keras_example_resnet(20, 2),
    "resnet56_v2": lambda: keras_example_resnet(56, 2),
    "resnet164": lambda: keras_example_resnet(164, 2),
})


def _conv_module(x, k, size, stride=1, padding="same"):
  x = layers.Conv2D(k, size, strides=stride, padding=padding)(x)
  return layers.Activation("relu")(layers.BatchNormalization()(x))


def minigooglenet(num_classes=10):
  """Seed 2020-12-06's MiniGoogLeNet (pyimagesearch), Keras functional API."""
  inception = lambda x, k1, k3: layers.concatenate([_conv_module(x, k1, 1), _conv_module(x, k3, 3)])
  downsample = lambda x, k: layers.concatenate([_conv_module(x, k, 3, 2, "valid"), layers.MaxPooling2D(3, 2)(x)])
  inputs = keras.Input((32, 32, 3))
  x = _conv_module(inputs, 96, 3)
  x = downsample(inception(inception(x, 32, 32), 32, 48), 80)
  for k1, k3 in ((112, 48), (96, 64), (80, 80), (48, 96)):
    x = inception(x, k1, k3)
  x = downsample(x, 96)
  x = inception(inception(x, 176, 160), 176, 160)
  x = layers.Flatten()(layers.Dropout(0.5)(layers.AveragePooling2D(7)(x)))
  return keras.Model(inputs, layers.Dense(num_classes, activation="softmax")(x))


def deepergooglenet(num_classes=200):
  """Seed 2020-12-10's DeeperGoogLeNet (pyimagesearch), Keras functional API."""
  def inception(x, c1, r3, c3, r5, c5, pp):
    pooled = layers.MaxPooling2D(3, 1, padding="same")(x)
    return layers.concatenate([_conv_module(x, c1, 1), _conv_module(_conv_module(x, r3, 1), c3, 3),
                               _conv_module(_conv_module(x, r5, 1), c5, 5), _conv_module(pooled, pp, 1)])
  pool = lambda x: layers.MaxPooling2D(3, 2, padding="same")(x)
  inputs = keras.Input((64, 64, 3))
  x = pool(_conv_module(inputs, 64, 5))
  x = pool(_conv_module(_conv_module(x, 64, 1), 192, 3))
  x = inception(inception(x, 64, 96, 128, 16, 32, 32), 128, 128, 192, 32, 96, 64)
  x = pool(x)
  for widths in ((192, 96, 208, 16, 48, 64), (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64),
                 (112, 144, 288, 32, 64, 64), (256, 160, 320, 32, 128, 128)):
    x = inception(x, *widths)
  x = layers.Flatten()(layers.Dropout(0.4)(layers.AveragePooling2D(4)(pool(x))))
  return keras.Model(inputs, layers.Dense(num_classes, activation="softmax")(x))


REFERENCES.update({"minigooglenet": minigooglenet, "deepergooglenet": deepergooglenet})
