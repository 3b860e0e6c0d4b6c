"""Parameter counts of the seed's models against the seed's own Keras code, rebuilt in Keras 3."""

import pytest

import keras_refs  # noqa: E402  (keras is in requirements-dev.txt; its absence is a failure)

from test_models import EXPECTED  # noqa: E402


@pytest.mark.parametrize("name", sorted(keras_refs.REFERENCES))
def test_counts_equal_keras(name):
  trainable, non_trainable = keras_refs.counts(keras_refs.REFERENCES[name]())
  assert (trainable, non_trainable) == EXPECTED[name][:2]
