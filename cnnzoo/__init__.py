"""cnnzoo: the classic CNN line (LeNet to ResNet) in JAX/Flax, with the tools to study them.

Importing cnnzoo has no side effects: it does not touch devices or JAX's configuration.
"""

__version__ = "0.1.0"
