"""Transfer learning: pretrained weight import (Keras .h5)."""

from cnnzoo.models.keras_weights import KerasWeightsError, load_keras_weights, read_keras_file

__all__ = ["KerasWeightsError", "load_keras_weights", "read_keras_file"]
