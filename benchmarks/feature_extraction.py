"""Feature-extraction throughput of a convolutional base (experiments.extract_features' forward).

  python -m benchmarks.feature_extraction --model=vgg16 --layer=block5_pool --batch_size=16
  python -m benchmarks.feature_extraction --model=resnet50_keras --batch_size=16

Random weights (drawn with NumPy on the model's shapes: the figure does not depend on them), uint8
images at the model's input size, Keras' preprocessing for the family, jitted as in
cnnzoo.transfer.features. Prints the first call (compile) and `img/s: <number>` last.
"""

import time

from absl import app, flags

_MODEL = flags.DEFINE_string("model", "vgg16", "Zoo model (its convolutional base).")
_LAYER = flags.DEFINE_string("layer", "features", "Output to take.")
_BATCH = flags.DEFINE_integer("batch_size", 16, "Images per call.", lower_bound=1)
_STEPS = flags.DEFINE_integer("steps", 5, "Timed calls.", lower_bound=1)


def main(argv):
  del argv
  import jax
  import jax.numpy as jnp
  import numpy as np
  from cnnzoo import models
  from cnnzoo.transfer import features
  info = models.model_info(_MODEL.value)
  model = models.create_model(_MODEL.value, num_classes=info.num_classes, include_top=False)
  shape = tuple(info.input_shape)
  abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, *shape)), train=False))
  rng = np.random.default_rng(0)
  variables = jax.tree.map(lambda s: jnp.asarray(rng.normal(0, 0.02, s.shape), s.dtype), abstract)
  mode = info.preprocess
  extractor = features.Extractor(model, variables, lambda x: features.preprocess_input(x, mode), shape[:2],
                                 _LAYER.value, _MODEL.value)
  fn = jax.jit(extractor.apply)
  images = rng.integers(0, 256, (_BATCH.value, *shape)).astype(np.uint8)
  t = time.perf_counter()
  out = jax.block_until_ready(fn(images))
  print(f"{_MODEL.value} {_LAYER.value}: {out.shape[1]:,} features per image; first call {time.perf_counter() - t:.1f} s")
  t = time.perf_counter()
  for _ in range(_STEPS.value):
    jax.block_until_ready(fn(images))
  seconds = time.perf_counter() - t
  print(f"{1000 * seconds / _STEPS.value:.0f} ms per batch of {_BATCH.value}")
  print(f"img/s: {_STEPS.value * _BATCH.value / seconds:.1f}")


if __name__ == "__main__":
  app.run(main)
