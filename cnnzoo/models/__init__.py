"""The model zoo: `create_model(name, num_classes=...)`, `list_models(pattern)`, `model_info(name)`.

Importing this package registers every family (one module each).
"""

from cnnzoo.models import (alexnet, googlenet, inception, inception_v4, lenet, resnet,  # noqa: F401
                           resnet_cifar, resnet_keras, vgg)  # importing a family registers its models
from cnnzoo.models.registry import (ModelInfo, UnknownModelError, create_model, input_problem,
                                    list_models, model_info, register_model)

__all__ = ["ModelInfo", "UnknownModelError", "create_model", "input_problem", "list_models",
           "model_info", "register_model"]
