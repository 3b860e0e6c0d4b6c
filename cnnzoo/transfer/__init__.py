"""Transfer learning: pretrained weight import (Keras .h5)."""

from cnnzoo.transfer.keras_weights import KerasWeightsError, load_keras_weights, read_keras_file

__all__ = ["KerasWeightsError", "load_keras_weights", "read_keras_file"]
