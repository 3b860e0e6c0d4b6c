"""oneDNN's convolutions through XLA FFI calls (cnnzoo/models/onednn.py; the CPU's default,
CNNZOO_CPU_CONV=auto) give XLA's sums within float32 rounding in all three passes and train an
epoch loop bitwise like a call a step; without oneDNN, auto keeps XLA's convolutions and says why,
and CNNZOO_CPU_CONV=onednn is one error line."""

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import lenet_cli, quiet
from cnnzoo import native, parallel
from cnnzoo.models import conv, onednn

NHWC = ("NHWC", "HWIO", "NHWC")
EPS = np.finfo(np.float32).eps


@pytest.fixture
def use_onednn(monkeypatch):
  monkeypatch.setenv(parallel.CPU_CONV_ENV, "onednn")  # read when a convolution is traced
  onednn.load()


@pytest.mark.parametrize("x_shape,k_shape,strides,padding", [
    ((4, 9, 9, 3), (3, 3, 3, 5), (1, 1), "SAME"),
    ((4, 9, 9, 3), (3, 3, 3, 5), (2, 2), "SAME"),  # strides that skip the last input row
    ((4, 8, 8, 3), (3, 3, 3, 5), (2, 2), ((0, 1), (1, 0))),  # asymmetric, one-sided
    ((2, 11, 11, 4), (5, 5, 4, 6), (1, 1), "VALID"),
    ((2, 8, 8, 4), (1, 1, 4, 6), (2, 2), "VALID"),  # a ResNet projection
    ((2, 7, 9, 1), (3, 2, 1, 4), (1, 1), ((1, 1), (0, 1))),  # one input channel, a 3x2 kernel
])
def test_the_three_passes_are_xlas_sums_within_float32_rounding(use_onednn, x_shape, k_shape, strides, padding):
  """Each output of each pass is a sum of K products; two float32 summation orders differ by at most
  ~K eps times the sum of the products' magnitudes, which the same pass on |inputs| gives."""
  rng = np.random.default_rng(0)
  x, w = (jnp.asarray(rng.standard_normal(s, np.float32)) for s in (x_shape, k_shape))
  ours = lambda x, w: conv.conv_general_dilated(x, w, strides, padding, dimension_numbers=NHWC)
  xla = lambda x, w: jax.lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=NHWC)
  hlo = jax.jit(jax.vjp, static_argnums=0).lower(ours, x, w).as_text()
  assert hlo.count("CnnzooOnednnConvForward") == 1
  y, back = jax.vjp(ours, x, w)
  dy = jnp.asarray(rng.standard_normal(y.shape, np.float32))
  (dx, dw), (y_ref, back_ref) = back(dy), jax.vjp(xla, x, w)
  dx_ref, dw_ref = back_ref(dy)
  y_mag, back_mag = jax.vjp(xla, jnp.abs(x), jnp.abs(w))
  dx_mag, dw_mag = back_mag(jnp.abs(dy))
  n = x_shape[0] * y.shape[1] * y.shape[2]  # the kernel gradient's terms per output
  for got, ref, mag, terms in ((y, y_ref, y_mag, np.prod(k_shape[:3])), (dx, dx_ref, dx_mag, np.prod(k_shape)),
                               (dw, dw_ref, dw_mag, n)):
    assert got.shape == ref.shape and got.dtype == jnp.float32
    np.testing.assert_array_less(np.abs(got - ref), 2 * terms * EPS * np.asarray(mag) + 1e-30)
  assert float(jnp.max(jnp.abs(y - y_ref))) < float(jnp.max(jnp.abs(y_ref)))  # not vacuous: values are there


def test_what_the_handlers_do_not_take_keeps_cnnzoos_forms(use_onednn):
  """Unequal strides and bfloat16 go to conv.py's own VJP (no FFI call), with XLA's values."""
  x, w = jnp.ones((2, 8, 8, 3)), jnp.ones((3, 3, 3, 4))
  for x_, w_, strides in ((x, w, (1, 2)), (x.astype(jnp.bfloat16), w.astype(jnp.bfloat16), (1, 1))):
    f = lambda x, w: conv.conv_general_dilated(x, w, strides, "SAME", dimension_numbers=NHWC)
    assert "CnnzooOnednn" not in jax.jit(f).lower(x_, w_).as_text()
    ref = jax.lax.conv_general_dilated(x_, w_, strides, "SAME", dimension_numbers=NHWC)
    np.testing.assert_array_equal(np.asarray(f(x_, w_), np.float32), np.asarray(ref, np.float32))


def test_an_epoch_loop_calls_onednn_and_trains_like_a_call_a_step(use_onednn, tiny_digits):
  """The loop body and the per-step program call the same oneDNN primitives: every loop size shares
  one program (the same bits for any steps_per_dispatch > 1, so resume stays exact), and with SGD a
  loop trains a call a step's bits here too. (Keras' Adam at these flags does not: see
  tests/test_training.py's LeNet case, bitwise at the users' flags.)"""
  from test_training import trained
  tiny_digits.num_epochs = 1
  auto, sums_auto, run = trained(quiet(tiny_digits), 0, 1)
  from cnnzoo.training import steps
  batches, count = next(run.train_loader.index_chunks(0, run.train_chunk.size))
  hlo = run.train_chunk.jitted.lower(run.state, steps.zero_metrics(), batches, np.int32(count),
                                     run.train_chunk.source).as_text()
  assert hlo.count("CnnzooOnednnConvKernelGrad") == 2  # LeNet's two convolutions, inside the loop
  seven, sums_seven, _ = trained(quiet(tiny_digits), 7, 1)
  assert np.array_equal(auto, seven) and sums_auto == sums_seven
  tiny_digits.optim.name, tiny_digits.optim.semantics = "sgd", "optax"
  sgd_one, sgd_sums_one, _ = trained(quiet(tiny_digits), 1, 1)
  sgd_loop, sgd_sums_loop, _ = trained(quiet(tiny_digits), 0, 1)
  assert np.array_equal(sgd_one, sgd_loop) and sgd_sums_one == sgd_sums_loop


def test_without_onednn_it_is_one_error_line_and_writes_nothing(tmp_path, forkserver):
  env = dict(os.environ, CNNZOO_CPU_CONV="onednn", CNNZOO_DNNL_LIB=str(tmp_path / "libdnnl.so.3"))
  proc = forkserver.run(lenet_cli(str(tmp_path / "run"), 1), env)
  lines = proc.stderr.strip().splitlines()
  why = f"no {tmp_path / 'libdnnl.so.3'}; {onednn.INSTALL} or set CNNZOO_DNNL_LIB"
  assert proc.returncode == 2 and lines == [f"error: CNNZOO_CPU_CONV=onednn: {why}"], proc.stderr[-2000:]
  assert not (tmp_path / "run").exists()
  # the default (auto) trains with XLA's convolutions instead, and its devices line says why
  env["CNNZOO_CPU_CONV"] = "auto"
  proc = forkserver.run(lenet_cli(str(tmp_path / "run"), 1), env)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert f"devices: 1 x cpu, XLA's convolutions (not oneDNN's: {why}) (1 process(es))" in proc.stdout
  with open(tmp_path / "run" / "results.json") as f:
    assert json.load(f)["hardware"].endswith(" cores, XLA's convolutions (1 process)")


def test_a_first_run_builds_the_handlers_meanwhile_and_an_early_exit_leaves_nothing(tmp_path, forkserver):
  """experiments.main starts compiling the handlers before it imports JAX (cnnzoo/native.py): a run
  that stops at a user error leaves no partial file, the next one trains with what it built."""
  env = dict(os.environ, CNNZOO_ONEDNN_CACHE=str(tmp_path / "cache"), CNNZOO_CPU_CONV="auto")  # the default
  with pytest.MonkeyPatch.context() as m:
    m.setenv("CNNZOO_ONEDNN_CACHE", str(tmp_path / "cache"))
    build_dir = os.path.dirname(native.target(native.library_path()))
  os.makedirs(build_dir)
  for name, age in (("tmpkilled.so", 7200), ("tmpbusy.so", 60)):  # a build killed 2 h ago, one running
    open(os.path.join(build_dir, name), "w").close()
    os.utime(os.path.join(build_dir, name), (time.time() - age,) * 2)
  proc = forkserver.run(["--config=configs/no_such_config.py"], env)
  assert proc.returncode == 2 and "no_such_config.py is not a file" in proc.stderr
  # the compile had started (the stale partial file removed) and was stopped, its own file removed
  assert sorted(os.listdir(build_dir)) == ["tmpbusy.so"]
  proc = forkserver.run(lenet_cli(str(tmp_path / "run"), 1), env)
  assert proc.returncode == 0 and "devices: 1 x cpu, oneDNN convolutions (1 process(es))" in proc.stdout
  assert sorted(os.listdir(build_dir)) == ["libcnnzoo_onednn.so", "tmpbusy.so"]


def test_a_cache_that_cannot_be_written_is_one_error_line_or_xlas_convolutions(tmp_path, forkserver):
  (tmp_path / "a_file").write_text("")
  cache = tmp_path / "a_file" / "cache"  # below a file: not writable, even for root
  env = dict(os.environ, CNNZOO_CPU_CONV="onednn", CNNZOO_ONEDNN_CACHE=str(cache))
  proc = forkserver.run(lenet_cli(str(tmp_path / "run"), 1), env)
  lines = proc.stderr.strip().splitlines()
  why = f"cannot write its handlers to {cache}/"
  assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: CNNZOO_CPU_CONV=onednn: {why}")
  assert lines[0].endswith("(Not a directory); set CNNZOO_ONEDNN_CACHE to a writable directory")
  assert not (tmp_path / "run").exists()
  proc = forkserver.run(lenet_cli(str(tmp_path / "run"), 1), dict(env, CNNZOO_CPU_CONV="auto"))
  assert proc.returncode == 0 and f"devices: 1 x cpu, XLA's convolutions (not oneDNN's: {why}" in proc.stdout


def test_the_compiler_is_the_machines_or_pips(monkeypatch):
  """$CXX / g++ / c++ first, then ziglang's clang (pip install ziglang); with neither, one line why."""
  import importlib.util
  import shutil
  monkeypatch.delenv("CXX", raising=False)
  monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}" if name == "c++" else None)
  assert native._compiler() == ["/usr/bin/c++"]
  monkeypatch.setattr(shutil, "which", lambda name: None)
  assert native._compiler()[1:] == ["-m", "ziglang", "c++"]
  monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
  with pytest.raises(native.Unavailable, match="^no C\\+\\+ compiler to build its handlers; install g\\+\\+ or set "
                     "CXX, or pip install ziglang$"):
    native._compiler()


def test_a_run_says_which_convolutions_it_used(monkeypatch):
  """results.json's `hardware` and the devices line name other kernels than XLA's default."""
  monkeypatch.delenv(parallel.CPU_CONV_ENV, raising=False)
  assert conv.cpu_conv_note() == ", oneDNN convolutions"  # auto, where oneDNN loads
  monkeypatch.setenv(parallel.CPU_CONV_ENV, "ynnpack")
  assert conv.cpu_conv_note(why=True) == ", XLA's convolutions"
  monkeypatch.setenv(parallel.CPU_CONV_ENV, "onednn")
  assert conv.cpu_conv_note() == ", oneDNN convolutions"
  assert parallel.hardware(conv.cpu_conv_note()).endswith(", oneDNN convolutions (1 process)")
  monkeypatch.setenv(parallel.CPU_CONV_ENV, "eigen")
  assert conv.cpu_conv_note() == ", Eigen convolutions"
