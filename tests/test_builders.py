"""Dataset builders on small trees written in each real layout (with one corrupt image each)."""

import json
import os
import re
import warnings

import h5py
import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, quiet
from cnnzoo.data import builders, sources


def jpeg(path, color, size=(40, 30)):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.new("RGB", size, color).save(path, "JPEG")


def corrupt(path):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(b"\xff\xd8\xff\xe0 not really a jpeg")


def read(path):
  with h5py.File(path, "r") as f:
    names = [c.decode() if isinstance(c, bytes) else str(c) for c in f.attrs["class_names"]]
    return np.asarray(f["images"]), np.asarray(f["labels"]), names


def test_tiny_imagenet_layout_and_the_seeds_split(tmp_path, forkserver):
  src = tmp_path / "tiny-imagenet-200"
  wnids = ["n01443537", "n01629819", "n01641577"]
  (src / "val" / "images").mkdir(parents=True)
  (src / "wnids.txt").write_text("\n".join(wnids) + "\n")
  (src / "words.txt").write_text("n01443537\tgoldfish, Carassius auratus\nn01629819\tEuropean fire salamander\n")
  for c, wnid in enumerate(wnids):
    for k in range(6):
      jpeg(str(src / "train" / wnid / "images" / f"{wnid}_{k}.JPEG"), (80 * c, 10 * k, 0))
  lines = []
  for k in range(4):
    jpeg(str(src / "val" / "images" / f"val_{k}.JPEG"), (0, 0, 50 * k))
    lines.append(f"val_{k}.JPEG\t{wnids[k % 3]}\t0\t0\t10\t10")
  (src / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
  corrupt(str(src / "train" / wnids[0] / "images" / f"{wnids[0]}_9.JPEG"))
  report = builders.build("tiny_imagenet_200", str(src), str(tmp_path / "out"), 16, progress=False,
                          val_per_class=2)
  # class 0 lists 7 images, one corrupt: 13 train + 6 val listed, 18 written in all.
  assert report["counts"]["test"] == 4 and report["counts"]["train"] + report["counts"]["val"] == 18
  assert len(report["skipped"]) == 1 and report["skipped"][0].endswith("_9.JPEG")
  images, labels, names = read(tmp_path / "out" / "test.h5")
  assert images.shape == (4, 16, 16, 3) and list(labels) == [0, 1, 2, 0]
  assert names[:2] == ["goldfish, Carassius auratus", "European fire salamander"] and names[2] == "n01641577"
  val_labels = read(tmp_path / "out" / "val.h5")[1]
  assert np.bincount(val_labels, minlength=3)[1:].tolist() == [2, 2] and len(val_labels) in (5, 6)
  mean = json.loads((tmp_path / "out" / "mean.json").read_text())
  train = read(tmp_path / "out" / "train.h5")[0].astype(np.float64)
  np.testing.assert_allclose([mean["R"], mean["G"], mean["B"]], train.mean(axis=(0, 1, 2)), atol=1e-6)
  np.testing.assert_allclose(mean["std"], train.std(axis=(0, 1, 2)), rtol=1e-6)
  ds = sources.load_hdf5(str(tmp_path / "out"))
  assert ds.std == tuple(mean["std"]) and ds.mean == (mean["R"], mean["G"], mean["B"])

  # configs/resnet_tiny.py's own commands on this tree: the build its docstring names, then training
  out = tmp_path / "tiny-imagenet-200-hdf5"
  build = forkserver.run(["--layout=tiny_imagenet_200", f"--src={src}", f"--out={out}", "--val=1"],
                         module="experiments.build_dataset")
  assert build.returncode == 0, build.stderr[-2000:]
  assert "wrote" in build.stdout and "train 15, val 3, test 4" in build.stdout
  # (:smoke for its one-block stages, which compile in a third of the time, back on this hdf5 tree)
  train = forkserver.run(["--config=configs/resnet_tiny.py:smoke", "--config.data.name=hdf5", f"--config.data.dir={out}",
                   "--config.model.num_classes=0", "--config.num_epochs=1",
                   "--config.data.batch_size=4", "--config.monitor.progress=False",
                   "--config.monitor.plot=False", "--config.monitor.tensorboard=False",
                   f"--workdir={tmp_path / 'run'}"])
  assert train.returncode == 0, train.stderr[-2000:]
  assert "model resnet_tiny: " in train.stdout
  assert "images (64, 64, 3), 3 classes" in train.stdout
  results = json.loads((tmp_path / "run" / "results.json").read_text())
  assert results["test_count"] == 4 and results["epochs"] == 1


def test_flowers17_labels_follow_the_file_index(tmp_path):
  src = tmp_path / "17flowers"
  for number in (1, 2, 80, 81, 160, 161, 1360):  # classes 0, 0, 0, 1, 1, 2, 16
    jpeg(str(src / "jpg" / f"image_{number:04d}.jpg"), (number % 255, 0, 0))
  listing = builders.list_flowers17(str(src), test_fraction=0.0)
  labels = {os.path.basename(p): l for p, l in listing.splits["train"]}
  assert labels == {"image_0001.jpg": 0, "image_0002.jpg": 0, "image_0080.jpg": 0, "image_0081.jpg": 1,
                    "image_0160.jpg": 1, "image_0161.jpg": 2, "image_1360.jpg": 16}
  assert listing.class_names[16] == "Pansy" and len(listing.class_names) == 17


def test_dogs_vs_cats_and_an_end_to_end_training_run_on_the_hdf5(tmp_path, forkserver):
  src = tmp_path / "dogs-vs-cats" / "train"
  for k in range(10):
    jpeg(str(src / f"cat.{k}.jpg"), (200, 50, 50), size=(50, 40))
    jpeg(str(src / f"dog.{k}.jpg"), (50, 50, 200), size=(30, 60))
  corrupt(str(src / "dog.99.jpg"))
  proc = forkserver.run(["--layout=dogs_vs_cats", f"--src={src.parent}", f"--out={tmp_path / 'h5'}", "--size=32",
                         "--val=4", "--test=4"], module="experiments.build_dataset")
  assert proc.returncode == 0, proc.stderr[-2000:]
  summary = next(line for line in proc.stdout.splitlines() if line.startswith("wrote"))
  counts = dict(part.split() for part in summary.split(": ", 1)[1].split(";")[0].split(", "))
  assert sum(int(v) for v in counts.values()) == 20 and int(counts["test"]) + int(counts["val"]) >= 7
  assert "skipped 1 unreadable image(s)" in proc.stdout
  before = (tmp_path / "h5" / "train.h5").read_bytes()
  again = forkserver.run(["--layout=folder", f"--src={src}", f"--out={tmp_path / 'h5'}"],
                         module="experiments.build_dataset")
  assert again.returncode == 2 and again.stderr.strip() == (
      f"error: {tmp_path / 'h5'} already holds train.h5; pass --overwrite to replace it or choose another --out")
  assert (tmp_path / "h5" / "train.h5").read_bytes() == before
  ds = sources.load_hdf5(str(tmp_path / "h5"))
  assert ds.class_names == ["cat", "dog"] and ds.image_shape == (32, 32, 3) and len(ds.mean) == 3
  from configs import minivggnet_cifar10
  from cnnzoo.training import loop
  from configs import base
  config = quiet(minivggnet_cifar10.get_config())
  base.drop(config.data, "val_fraction")  # tfds' CIFAR-10 setting: an HDF5 folder has its own splits
  config.data.name, config.data.dir, config.data.batch_size, config.num_epochs = "hdf5", str(tmp_path / "h5"), 4, 2
  results = loop.train_and_evaluate(config, str(tmp_path / "run"))
  assert results["test_count"] == 4 and results["epochs"] == 2


def test_wrong_layout_and_interrupted_build(tmp_path, monkeypatch):
  with pytest.raises(builders.LayoutError, match="expected wnids.txt"):
    builders.build("tiny_imagenet_200", str(tmp_path), str(tmp_path / "out"), 16)
  src = tmp_path / "folder"
  for c in ("a", "b"):
    for k in range(5):
      jpeg(str(src / c / f"{k}.jpg"), (10, 20, 30))
  calls = {"n": 0}
  real = builders.load_image

  def crash_on_the_third(path, size, mode="aspect", channels=3):
    calls["n"] += 1
    if calls["n"] == 3:
      raise KeyboardInterrupt
    return real(path, size, mode, channels)

  monkeypatch.setattr(builders, "load_image", crash_on_the_third)
  with pytest.raises(KeyboardInterrupt):
    builders.build("folder", str(src), str(tmp_path / "out2"), 8, progress=False)
  assert not (tmp_path / "out2").exists()  # no half-written file, valid-looking or not; not even the folder


def test_sigterm_during_a_build_leaves_nothing_and_the_rerun_builds(tmp_path, forkserver):
  """SIGTERM (a scheduler's time limit) mid-build: exit 143, no file in --out (the build writes into
  OUT/.building and moves complete files into place), and the same command then builds."""
  import signal
  import time
  src = tmp_path / "src"
  rng = np.random.default_rng(0)
  for c in ("a", "b"):
    (src / c).mkdir(parents=True)
    for k in range(600):
      Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(src / c / f"{k}.png")
  out = tmp_path / "data"
  out.mkdir()
  (out / "keep.txt").write_text("the user's own file")
  # the test and validation splits take 70 %: the signal lands once train.h5 is complete, mid-build
  argv = ["--layout=folder", f"--src={src}", f"--out={out}", "--size=48", "--val=0.4", "--test=0.3"]
  child = forkserver.start(argv, module="experiments.build_dataset")
  deadline = time.time() + 120
  while not (out / ".building" / "train.h5").exists():
    assert time.time() < deadline and child.poll() is None, child.stderr
    time.sleep(0.005)
  child.kill(signal.SIGTERM)
  assert child.wait() == 143, child.stderr
  assert child.stderr.strip().splitlines()[-1] == "terminated (SIGTERM)" and "Traceback" not in child.stderr
  assert sorted(os.listdir(out)) == ["keep.txt"]
  again = forkserver.run(argv, module="experiments.build_dataset")
  assert again.returncode == 0, again.stderr
  assert sorted(os.listdir(out)) == ["keep.txt", "mean.json", "test.h5", "train.h5", "val.h5"]


def test_images_as_a_user_has_them(tmp_path, monkeypatch, capsys):
  """16-bit files scale to 8 bits (not clipped to white), palette + transparency, CMYK and gray
  files convert as Keras' load_img would, and an image over PIL's decompression-bomb limit is
  skipped with one warning by predict and listed as skipped by the builders."""
  from cnnzoo.evaluation import predict
  ramp = (np.arange(16 * 16, dtype=np.uint32).reshape(16, 16) * 257).astype(np.uint16)
  Image.fromarray(ramp).save(tmp_path / "deep.png")
  assert Image.open(tmp_path / "deep.png").mode.startswith("I")
  np.testing.assert_array_equal(np.asarray(builders.open_image(tmp_path / "deep.png", 1)), np.arange(256).reshape(16, 16))
  assert np.asarray(builders.open_image(tmp_path / "deep.png", 3))[15, 15].tolist() == [255, 255, 255]
  palette = Image.new("P", (8, 8), 3)
  palette.putpalette([0, 0, 0, 10, 20, 30, 40, 50, 60, 200, 100, 50] + [0] * 756)
  palette.info["transparency"] = 0
  palette.save(tmp_path / "palette.png", transparency=0)
  Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=100)
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # PIL's palette-transparency warning is avoided
    assert np.asarray(builders.open_image(tmp_path / "palette.png"))[0, 0].tolist() == [200, 100, 50]
  red = np.asarray(builders.open_image(tmp_path / "cmyk.jpg"))[4, 4]
  assert red[0] > 240 and red[1] < 15 and red[2] < 15, red
  assert builders.load_image(tmp_path / "cmyk.jpg", 4, channels=1).shape == (4, 4, 1)

  Image.new("RGB", (40, 30), (9, 9, 9)).save(tmp_path / "big.png")
  monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # 1,200 pixels > 2 x 500: PIL refuses it
  with pytest.raises(builders.ImageTooLarge, match=r"too large to decode safely \(1,200 pixels, over PIL's "
                     r"decompression-bomb limit of 1,000\); resize it first"):
    builders.open_image(tmp_path / "big.png")
  warned = []
  images, kept = predict.load_images([str(tmp_path / "big.png"), str(tmp_path / "cmyk.jpg")], (8, 8, 3),
                                     "aspect", warned.append)
  assert kept == [str(tmp_path / "cmyk.jpg")] and images.shape == (1, 8, 8, 3)
  assert warned == [f"{tmp_path / 'big.png'}: skipped, too large to decode safely (1,200 pixels, over PIL's "
                      "decompression-bomb limit of 1,000); resize it first"]
  n, skipped = builders.write_split(str(tmp_path / "train.h5"), [(str(tmp_path / "big.png"), 0),
                                                                 (str(tmp_path / "cmyk.jpg"), 1)],
                                    ["a", "b"], 8, progress=False)
  assert (n, skipped) == (1, [str(tmp_path / "big.png")])


def test_a_fifo_among_the_images_is_skipped_not_read(tmp_path):
  """A FIFO named like an image (in a class folder, or given to predict) would block its open()
  forever: it is refused from stat() first, counted as unreadable by the build, warned about by
  predict. Run in children with a time limit: a regression hangs them, not the suite."""
  import subprocess
  import sys
  src = tmp_path / "animals"
  for name in ("cat", "dog"):
    for k in range(4):
      jpeg(str(src / name / f"{k}.jpg"), (200 if name == "cat" else 50, 50, 50))
  os.mkfifo(src / "dog" / "waiting.jpg")
  build = subprocess.run([sys.executable, "-m", "experiments.build_dataset", "--layout=folder", f"--src={src}",
                          f"--out={tmp_path / 'h5'}", "--size=8", "--val=0", "--test=0.5"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
  assert build.returncode == 0, build.stderr[-2000:]
  assert "skipped 1 unreadable image(s)" in build.stdout + build.stderr
  code = ("from cnnzoo.evaluation.predict import load_images; import sys; "
          f"images, kept = load_images([{str(src / 'dog' / 'waiting.jpg')!r}, {str(src / 'dog' / '0.jpg')!r}], "
          "(8, 8, 3), 'aspect'); print(images.shape, len(kept))")
  child = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert child.stdout.strip() == "(1, 8, 8, 3) 1", child.stderr[-2000:]
  assert child.stderr.strip() == (f"warning: {src / 'dog' / 'waiting.jpg'}: skipped, not a regular file (a FIFO, a "
                                  "device, a socket or a folder): nothing to decode")


def test_a_class_whose_every_image_is_unreadable_stops_the_build(tmp_path, forkserver):
  """Before, the dataset was built listing the class with no image of it; now one line names it and
  nothing is written."""
  src = tmp_path / "animals"
  for k in range(4):
    jpeg(str(src / "cat" / f"{k}.jpg"), (200, 50, 50))
    corrupt(str(src / "dog" / f"{k}.jpg"))
  proc = forkserver.run(["--layout=folder", f"--src={src}", f"--out={tmp_path / 'h5'}", "--size=8", "--val=0",
                         "--test=0.5"], module="experiments.build_dataset")
  assert proc.returncode == 2, proc.stderr[-2000:]
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and re.fullmatch(
      rf"error: class 'dog' lost all its 2 training image\(s\): none could be read \(e.g. {re.escape(str(src))}/dog/"
      r"\d.jpg\); fix them, or move the class's images away to build without it; nothing was written", lines[0]), lines
  assert not (tmp_path / "h5").exists()


def test_webp_and_tiff_images_of_a_class_folder_are_built(tmp_path):
  """.webp / .tif / .tiff / .ppm files (what PIL decodes) are images of the folder layout, not left out."""
  from PIL import Image
  from cnnzoo.data import builders
  src = tmp_path / "shapes"
  for cls, ext in (("a", "webp"), ("b", "tif"), ("b", "tiff"), ("a", "ppm")):
    os.makedirs(src / cls, exist_ok=True)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(src / cls / f"one.{ext}")
  listing = builders.list_folder(str(src), val_fraction=0.0, test_fraction=0.0)
  assert sorted(os.path.basename(p) for p, _ in listing.splits["train"]) == ["one.ppm", "one.tif", "one.tiff",
                                                                             "one.webp"]
