"""LeNet on MNIST (seed 001, the LeNet Keras notebook): 28x28x1 inputs, conv 6 5x5 - pool - conv 16
5x5 - pool - dense 120 - 84 - 10, ReLU, 44,426 params (`lenet5_keras`).

  python -m experiments.main --config=configs/lenet_mnist.py

The notebook's recipe, complete: pixels / 255, Adam with Keras' defaults (lr 1e-3, beta 0.9 /
0.999, epsilon 1e-7), batch 128, 20 epochs, no augmentation, the 10,000 test images as the
validation data. Seed result: "Test accuracy: 0.9857".
Data: MNIST's four IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
t10k-labels-idx1-ubyte; gzipped or not) in a folder given as --config.data.dir, or tfds `mnist` when
prepared (`pip install tensorflow && tfds build mnist`).
"""

from configs import base


def get_config(arg=None):
  c = base.get_config()
  c.model.name = "lenet5_keras"
  c.journal.run = "LeNet, MNIST, Adam"
  c.journal.seed = "001"
  c.journal.recipe = "journal"
  c.journal.metric = "test_accuracy"
  c.journal.figure = 0.9857
  c.optim.semantics = "keras"  # Keras 3's update arithmetic, as the journal trained
  c.model.kernel_init = "glorot_uniform"  # Keras' default for Conv2D and Dense (biases zero)
  c.data.name = "mnist"
  c.data.val_fraction = 0.0  # validation_data=(x_test, y_test), as the notebook
  c.data.how_to_get = ("put MNIST's four IDX files (train-images-idx3-ubyte, ...) in a folder and add "
                       "--config.data.dir=FOLDER, or prepare tfds' mnist (`pip install tensorflow && tfds build mnist`)")
  c.data.batch_size = 128
  c.optim.name = "adam"
  c.optim.lr = 1e-3
  c.num_epochs = 20
  if "smoke" in base.parse_args(arg):
    base.smoke(c, (28, 28, 1), 10)
  return c
