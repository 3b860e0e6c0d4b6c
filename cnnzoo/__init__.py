"""cnnzoo: the classic CNN line (LeNet to ResNet) in JAX/Flax, with the tools to study them.

Importing cnnzoo has no side effects: it does not import JAX, touch devices or JAX's
configuration. The public contract for components of one's own (docs/extending.md) is reached
from here and loaded on first use:

  @cnnzoo.register_model(input_shape=(28, 28, 1), num_classes=10)   fn(*, num_classes, **options) -> nn.Module
  @cnnzoo.register_dataset("name", settings={...})                  fn(config) -> cnnzoo.Dataset
  @cnnzoo.register_schedule("name", settings={...})                 fn(lr, steps_per_epoch, num_epochs, config)
  @cnnzoo.register_optimizer("name", settings={...})                fn(learning_rate, config) -> optax transform
  @cnnzoo.register_augmentation("name", settings={...})             fn(key, images, data) -> images (in jit)
  @cnnzoo.register_metric("name", ...)                              fn(logits, labels) -> per-image values

`cnnzoo.setting(default, doc, low=..., high=..., choices=..., check=...)` declares a setting.
"""

import importlib

__version__ = "0.1.0"

_LAZY = {
    "register_model": "cnnzoo.models.registry", "create_model": "cnnzoo.models.registry",
    "list_models": "cnnzoo.models.registry",
    "register_dataset": "cnnzoo.data.dataset", "register_augmentation": "cnnzoo.data.dataset",
    "Dataset": "cnnzoo.data.dataset", "Split": "cnnzoo.data.dataset",
    "register_schedule": "cnnzoo.training.schedules", "register_optimizer": "cnnzoo.training.optim",
    "register_metric": "cnnzoo.metrics", "setting": "cnnzoo.registry",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
  """`cnnzoo.register_model` and the rest of the contract, imported when first asked for."""
  if name in _LAZY:
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
  raise AttributeError(f"module 'cnnzoo' has no attribute {name!r}")


def __dir__():
  return sorted([*globals(), *_LAZY])
