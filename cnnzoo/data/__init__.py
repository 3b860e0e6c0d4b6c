"""Datasets (sources), the batch loader and on-device preprocessing.

Importing this package registers cnnzoo's datasets (sources.py) and augmentations (ops.py).
"""

from cnnzoo.data import ops  # noqa: F401 -- registers the augmentations
from cnnzoo.data.dataset import register_augmentation, register_dataset
from cnnzoo.data.loader import Loader
from cnnzoo.data.sources import Dataset, DatasetNotFoundError, Split, load_dataset

__all__ = ["Dataset", "DatasetNotFoundError", "Loader", "Split", "load_dataset", "register_augmentation",
           "register_dataset"]
