"""The CPU's convolution kernels, behind one seam.

- `settings`: CNNZOO_CPU_CONV / CNNZOO_CONV_KERNEL_GRAD parsed and checked in one place (imports no
  JAX, so an entry point can read them before it imports JAX).
- `build`: compiles oneDNN's XLA FFI handlers (`onednn_conv.cc`) once per machine (imports no JAX).
- `xla`, `onednn`: the backends -- XLA's convolution with cnnzoo's own backward pass, oneDNN's
  through FFI calls.
- `dispatch`: the backend interface, the choice made once per process (`dispatch.default()`),
  recorded in each run's results.json, and `conv_general_dilated`, the drop-in every cnnzoo
  convolution calls.

This package imports nothing at import time: `from cnnzoo.kernels import build` stays free of JAX.
"""
