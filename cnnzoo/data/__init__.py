"""Datasets (sources), the batch loader and on-device preprocessing."""

from cnnzoo.data.loader import Loader
from cnnzoo.data.sources import Dataset, DatasetNotFoundError, Split, load_dataset

__all__ = ["Dataset", "DatasetNotFoundError", "Loader", "Split", "load_dataset"]
