"""oneDNN's convolutions through XLA FFI calls (cnnzoo/kernels/onednn.py; the CPU's default,
CNNZOO_CPU_CONV=auto) give XLA's sums within float32 rounding in all three passes and train an
epoch loop bitwise like a call a step; without oneDNN, auto keeps XLA's convolutions and says why,
and CNNZOO_CPU_CONV=onednn is one error line."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import lenet_cli, quiet
from cnnzoo import models, runtime
from cnnzoo.errors import ConfigError
from cnnzoo.kernels import build, dispatch, onednn
from cnnzoo.kernels.settings import Settings

WHY_NOT = onednn.why_not()  # '' where the handlers build and load here
needs_onednn = pytest.mark.skipif(bool(WHY_NOT), reason=f"oneDNN's handlers cannot load here: {WHY_NOT}")

NHWC = ("NHWC", "HWIO", "NHWC")
EPS = np.finfo(np.float32).eps


@pytest.fixture
def use_onednn():
  if WHY_NOT:
    pytest.skip(f"oneDNN's handlers cannot load here: {WHY_NOT}")
  with dispatch.use(dispatch.resolve(Settings("onednn"), "cpu", 1)) as kernels:
    assert kernels.name == "onednn"
    yield kernels


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
  ours = lambda x, w: dispatch.conv_general_dilated(x, w, strides, padding, dimension_numbers=NHWC)
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
  """Unequal strides and bfloat16 go to kernels/xla.py's own VJP (no FFI call), with XLA's values."""
  x, w = jnp.ones((2, 8, 8, 3)), jnp.ones((3, 3, 3, 4))
  for x_, w_, strides in ((x, w, (1, 2)), (x.astype(jnp.bfloat16), w.astype(jnp.bfloat16), (1, 1))):
    f = lambda x, w: dispatch.conv_general_dilated(x, w, strides, "SAME", dimension_numbers=NHWC)
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
  batches, count = next(run.train_loader.chunks(0, run.train_chunk.size))
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
  why = f"no {tmp_path / 'libdnnl.so.3'}; {build.INSTALL} or set CNNZOO_DNNL_LIB"
  assert proc.returncode == 2 and lines == [f"error: CNNZOO_CPU_CONV=onednn: {why}"], proc.stderr[-2000:]
  assert not (tmp_path / "run").exists()
  # the default (auto) trains with XLA's convolutions instead, and its devices line says why
  env["CNNZOO_CPU_CONV"] = "auto"
  proc = forkserver.run(lenet_cli(str(tmp_path / "run"), 1), env)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert f"devices: 1 x cpu, XLA's convolutions (not oneDNN's: {why}) (1 process(es))" in proc.stdout
  with open(tmp_path / "run" / "results.json") as f:
    results = json.load(f)
  assert results["hardware"].endswith(" cores, XLA's convolutions (1 process)") and results["kernels"] == "xla"


@needs_onednn
def test_a_first_run_builds_the_handlers_meanwhile_and_an_early_exit_leaves_nothing(tmp_path, forkserver):
  """experiments.main starts compiling the handlers before it imports JAX (kernels/build.py): a run
  that stops at a user error leaves no partial file, the next one trains with what it built."""
  env = dict(os.environ, CNNZOO_ONEDNN_CACHE=str(tmp_path / "cache"), CNNZOO_CPU_CONV="auto")  # the default
  with pytest.MonkeyPatch.context() as m:
    m.setenv("CNNZOO_ONEDNN_CACHE", str(tmp_path / "cache"))
    build_dir = os.path.dirname(build.target(build.library_path()))
  os.makedirs(build_dir)
  open(os.path.join(build_dir, "tmpkilled.so"), "w").close()  # a build that was killed
  proc = forkserver.run(["--config=configs/no_such_config.py"], env)
  assert proc.returncode == 2 and "no_such_config.py is not a file" in proc.stderr
  # the compile had started (the killed build's partial file removed) and was stopped, its own file removed
  assert sorted(os.listdir(build_dir)) == ["build.lock"]
  proc = forkserver.run(lenet_cli(str(tmp_path / "run"), 1), env)
  assert proc.returncode == 0 and "devices: 1 x cpu, oneDNN convolutions (1 process(es))" in proc.stdout
  assert sorted(os.listdir(build_dir)) == ["build.lock", "libcnnzoo_onednn.so"]
  with open(tmp_path / "run" / "results.json") as f:
    assert json.load(f)["kernels"] == "onednn"


BUILD_NOW = "from cnnzoo.kernels import build; build.start(); print(build.build())"


@needs_onednn
def test_two_processes_starting_at_once_build_once(tmp_path):
  """The build runs under a file lock: the second process waits and takes the first one's file."""
  import shlex
  import subprocess
  import sys
  log = tmp_path / "compiles.log"
  cxx = tmp_path / "cxx"  # the machine's compiler, counting its calls (--version is the key's)
  real = " ".join(shlex.quote(part) for part in build._compiler())  # g++, or python -m ziglang c++
  cxx.write_text(f'#!/bin/sh\n[ "$1" = --version ] || echo built >> {log}\nexec {real} "$@"\n')
  cxx.chmod(0o755)
  env = dict(os.environ, CXX=str(cxx), CNNZOO_ONEDNN_CACHE=str(tmp_path / "cache"), JAX_PLATFORMS="cpu")
  procs = [subprocess.Popen([sys.executable, "-c", BUILD_NOW], env=env, stdout=subprocess.PIPE, text=True)
           for _ in range(2)]
  outs = [p.communicate(timeout=300)[0].strip() for p in procs]
  assert [p.returncode for p in procs] == [0, 0] and outs[0] == outs[1] and os.path.exists(outs[0])
  assert log.read_text().splitlines() == ["built"]


def test_the_build_is_keyed_on_source_flags_compiler_jaxlib_and_onednn(tmp_path, monkeypatch):
  """Another jaxlib (its FFI headers), other flags, another compiler or another oneDNN library file
  is another build; the same inputs are the same one."""
  import importlib.metadata
  lib = tmp_path / "libdnnl.so.3"
  lib.write_bytes(b"x")
  base = build.target(str(lib))
  assert build.target(str(lib)) == base
  version = importlib.metadata.version
  with monkeypatch.context() as m:
    m.setattr(importlib.metadata, "version", lambda name: "0.0.1" if name == "jaxlib" else version(name))
    assert build.target(str(lib)) != base
  with monkeypatch.context() as m:
    m.setattr(build, "FLAGS", (*build.FLAGS, "-march=native"))
    assert build.target(str(lib)) != base
  with monkeypatch.context() as m:
    m.setattr(build, "_compiler_version", lambda compiler: "clang version 99")
    assert build.target(str(lib)) != base
  lib.write_bytes(b"another oneDNN")
  assert build.target(str(lib)) != base


@needs_onednn
def test_another_onednn_version_is_refused_with_the_reason(monkeypatch):
  """The handlers declare oneDNN 3.2's API: a library of another version is not loaded."""
  import ctypes
  assert onednn.library_version(ctypes.CDLL(build.library_path()))[:2] == onednn.VERSION
  monkeypatch.setattr(onednn, "library_version", lambda lib: (3, 5, 1))
  why = onednn.why_not.__wrapped__()
  assert why == (f"{build.library_path()} is oneDNN 3.5.1, its handlers are written for 3.2; "
                 "pip install onednn-cpu-gomp==2023.2.0")


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
  assert build._compiler() == ["/usr/bin/c++"]
  monkeypatch.setattr(shutil, "which", lambda name: None)
  assert build._compiler()[1:] == ["-m", "ziglang", "c++"]
  monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
  with pytest.raises(build.Unavailable, match="^no C\\+\\+ compiler to build its handlers; install g\\+\\+ or set "
                     "CXX, or pip install ziglang$"):
    build._compiler()


def test_the_backend_is_chosen_once_from_the_settings_and_named_in_each_run():
  """dispatch.resolve: oneDNN's on one CPU device under auto / onednn (where they load), XLA's with
  cnnzoo's backward pass under ynnpack / eigen, XLA's own over several devices or on a GPU; results.json's
  `hardware` and the devices line name them."""
  names = lambda settings, platform="cpu", devices=1: [b.name for b in dispatch.resolve(settings, platform, devices).backends]
  onednn_here = [] if WHY_NOT else ["onednn"]
  assert names(Settings()) == names(Settings("onednn")) == [*onednn_here, "xla", "lax"]
  assert names(Settings("ynnpack")) == names(Settings("eigen")) == ["xla", "lax"]
  assert names(Settings(kernel_grad="xla")) == names(Settings(), devices=8) == names(Settings(), "gpu") == ["lax"]
  assert names(Settings(kernel_grad="im2col"), "gpu") == ["xla", "lax"]
  note = lambda settings, why=False: dispatch.resolve(settings, "cpu", 1).note(why)
  assert note(Settings("ynnpack"), why=True) == ", XLA's convolutions"
  assert note(Settings("eigen")) == ", Eigen convolutions"
  gone = dispatch.Kernels((dispatch.XLA, dispatch.LAX), Settings(), fallback="no libdnnl.so.3")
  assert gone.note(why=True) == ", XLA's convolutions (not oneDNN's: no libdnnl.so.3)"
  assert gone.note() == ", XLA's convolutions" and gone.name == "xla"
  if not WHY_NOT:  # asked for over several devices: XLA's, and the devices line says why
    assert dispatch.resolve(Settings("onednn"), "cpu", 8).note(why=True) == (
        ", XLA's convolutions (not oneDNN's: they run on one CPU device, and this process has 8)")
    assert note(Settings()) == note(Settings("onednn")) == ", oneDNN convolutions"
    assert runtime.hardware(note(Settings())).endswith(", oneDNN convolutions (1 process)")
    assert dispatch.resolve(Settings(), "cpu", 1).without_ffi().name == "xla"
  with pytest.raises(ConfigError, match="^CNNZOO_CPU_CONV must be auto, onednn, ynnpack, eigen, not 'mkl'$"):
    Settings("mkl")


@needs_onednn
def test_forward_only_programs_take_the_kernels_measured_faster_for_the_model():
  """MiniVGGNet's forward-only programs (validation, test, predict, extract_features) take XLA's
  convolutions (0.68x with oneDNN's, benchmarks.forward_kernels); its train step and every other
  model keep oneDNN's."""
  from configs import minivggnet_cifar10
  from cnnzoo.training import loop
  kernels = dispatch.resolve(Settings(), "cpu", 1)
  assert kernels.for_forward(models.model_info("minivggnet").forward_kernels).name == "xla"
  assert kernels.for_forward(models.model_info("resnet20_v1").forward_kernels).name == "onednn"
  config = quiet(minivggnet_cifar10.get_config("smoke"))
  with dispatch.use(kernels):
    run = loop.build(config)
  batch = next(run.val_loader.epoch(0))
  evaluation = run.eval_step.jitted.lower(run.state, batch, run.eval_step.source).as_text()
  train = run.train_step.jitted.lower(run.state, next(run.train_loader.epoch(0)), run.train_step.source).as_text()
  assert "CnnzooOnednn" not in evaluation and "CnnzooOnednnConvKernelGrad" in train
