"""Evaluation: reports, rank-k, confusion matrices, evaluate-from-workdir, ensembles."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from conftest import quiet
from cnnzoo.errors import UserError
from cnnzoo import metrics
from cnnzoo.evaluation import evaluate as evaluate_lib


def test_rank_accuracy_and_report_by_hand():
  probs = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.2, 0.7], [0.5, 0.4, 0.1]], np.float32)
  labels = np.array([0, 2, 2, 1])
  assert metrics.rank_accuracy(probs, labels, 1) == 0.5  # rows 0 and 2
  assert metrics.rank_accuracy(probs, labels, 2) == 1.0
  assert metrics.rank_accuracy(probs, labels, 5) == 1.0  # k above the class count: all of them
  r = metrics.report(probs, labels, ["a", "b", "c"])
  assert r["count"] == 4 and r["rank1"] == 0.5
  assert r["confusion_matrix"] == [[1, 0, 0], [1, 0, 0], [0, 1, 1]]
  table = r["classification_report"]
  assert table["a"]["precision"] == 0.5 and table["a"]["recall"] == 1.0 and table["a"]["support"] == 1
  assert table["c"]["precision"] == 1.0 and table["c"]["recall"] == 0.5
  assert table["b"]["f1-score"] == 0.0  # never right: zero, not a warning
  assert table["accuracy"] == 0.5 and "macro avg" in table and "weighted avg" in table
  assert r["cross_entropy"] == pytest.approx(-np.mean(np.log([0.6, 0.3, 0.7, 0.4])), rel=1e-6)
  text = metrics.report_text(probs, labels, ["a", "b", "c"])
  assert "precision" in text and "0.5000" in text and "weighted avg" in text


@pytest.mark.parametrize("classes", [3, 17, 200])
def test_confusion_matrix_png_at_3_17_and_200_classes(classes, tmp_path):
  rng = np.random.default_rng(0)
  labels = rng.integers(0, classes, 2000)
  preds = np.where(rng.random(2000) < 0.7, labels, rng.integers(0, classes, 2000))
  matrix = np.zeros((classes, classes), int)
  np.add.at(matrix, (labels, preds), 1)
  path = str(tmp_path / "cm.png")
  metrics.plot_confusion(matrix, [f"class {i}" for i in range(classes)], path)
  with Image.open(path) as im:
    width, height = im.size
  assert width >= 600 and height >= 600 and width <= 2000 and height <= 1700
  assert os.listdir(tmp_path) == ["cm.png"]  # written via a temporary file, nothing left over


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
  """Two 1-epoch LeNet runs on digits with seeds 0 and 1 (the evaluation tests' members)."""
  from configs import lenet_digits
  from cnnzoo.training import loop
  root = tmp_path_factory.mktemp("runs")
  dirs = []
  for seed in (0, 1):
    c = quiet(lenet_digits.get_config())
    c.num_epochs, c.seed, c.checkpoint.async_save = 1, seed, False
    c.data.eval_batch_size = 64  # 360 test images: 5 full batches and one padded with 24 blanks
    loop.train_and_evaluate(c, str(root / f"member_{seed}"))
    dirs.append(str(root / f"member_{seed}"))
  return dirs


def test_results_json_carries_the_classification_report(two_runs):
  results = json.loads(open(os.path.join(two_runs[0], "results.json")).read())
  table = results["test_report"]
  assert sum(table[str(d)]["support"] for d in range(10)) == 360
  assert table["accuracy"] == pytest.approx(results["test_accuracy"], abs=1e-12)
  assert "precision" in open(os.path.join(two_runs[0], "test_report.txt")).read()


def test_evaluate_counts_each_example_once_and_matches_training(two_runs, tmp_path):
  member = evaluate_lib.predict_run(two_runs[0], "test", "latest")
  assert member.probs.shape == (360, 10) and member.epoch == 1
  np.testing.assert_allclose(member.probs.sum(axis=1), 1.0, rtol=1e-5)
  results = json.loads(open(os.path.join(two_runs[0], "results.json")).read())
  assert metrics.rank_accuracy(member.probs, member.labels, 1) == results["test_accuracy"]
  assert metrics.rank_accuracy(member.probs, member.labels, 5) == results["test_top5_accuracy"]
  out = evaluate_lib.evaluate_runs([two_runs[0]], out=str(tmp_path / "eval"), echo=lambda s: None)
  assert out["count"] == 360 and out["rank1"] == results["test_accuracy"]
  assert sorted(os.listdir(tmp_path / "eval")) == ["classification_report.txt", "confusion_matrix.png",
                                                    "evaluation.json"]
  saved = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
  assert saved["members"][0]["epoch"] == 1 and np.sum(saved["confusion_matrix"]) == 360


def test_a_two_member_ensemble_is_the_mean_of_their_probabilities(two_runs, tmp_path):
  a, b = (evaluate_lib.predict_run(d, "val", "latest") for d in two_runs)
  by_hand = (a.probs + b.probs) / 2
  out = evaluate_lib.evaluate_runs(two_runs, split="val", checkpoint="latest", out=str(tmp_path / "ens"),
                           echo=lambda s: None)
  assert out["ensemble_of"] == 2 and out["count"] == len(a.labels) == 180
  assert out["rank1"] == metrics.rank_accuracy(by_hand, a.labels, 1)
  assert out["confusion_matrix"] == metrics.report(by_hand, a.labels, a.class_names)["confusion_matrix"]
  assert [m["rank1"] for m in out["members"]] == [metrics.rank_accuracy(m.probs, m.labels, 1) for m in (a, b)]
  assert out["rank1"] != out["members"][0]["rank1"] or out["rank1"] != out["members"][1]["rank1"] or \
      not np.array_equal(np.argmax(by_hand, 1), np.argmax(a.probs, 1))  # the mean is not just member 0


def test_evaluate_refuses_what_cannot_be_evaluated(two_runs, tmp_path):
  with pytest.raises(UserError, match="no config.json"):
    evaluate_lib.evaluate_runs([str(tmp_path)], echo=lambda s: None)
  with pytest.raises(UserError, match="twice"):
    evaluate_lib.evaluate_runs([two_runs[0], two_runs[0]], echo=lambda s: None)
  with pytest.raises(UserError, match="no such checkpoint"):
    evaluate_lib.evaluate_runs([two_runs[0]], checkpoint="7", out=str(tmp_path / "x"), echo=lambda s: None)
  assert not os.path.exists(tmp_path / "x")


def test_an_ensemble_needs_one_dataset_and_the_same_examples():
  def member(name, dataset="digits", classes=("0", "1"), labels=(0, 1, 1)):
    return evaluate_lib.Member(name, 1, "lenet5", dataset, list(classes), np.array(labels), np.zeros((len(labels), 2)))
  evaluate_lib.check_compatible([member("a"), member("b")])
  with pytest.raises(UserError, match="same dataset and class list"):
    evaluate_lib.check_compatible([member("a"), member("b", dataset="cifar10")])
  with pytest.raises(UserError, match="same dataset and class list"):
    evaluate_lib.check_compatible([member("a"), member("b", classes=("0", "one"))])
  with pytest.raises(UserError, match="same examples"):
    evaluate_lib.check_compatible([member("a"), member("b", labels=(0, 1, 0))])


def test_predict_files_with_the_runs_preprocessing(two_runs, tmp_path, forkserver):
  from cnnzoo.data import sources
  from cnnzoo.evaluation import predict
  test = sources.load_digits().test
  paths = []
  for i in range(3):
    paths.append(str(tmp_path / f"digit{i}.png"))
    Image.fromarray(test.images[i, :, :, 0]).save(paths[-1])
  (tmp_path / "broken.png").write_bytes(b"not a png")
  warnings = []
  predictor = predict.from_run(two_runs[0], "latest")
  got = predict.predict_files(predictor, [paths[0], str(tmp_path / "broken.png"), *paths[1:]], top=3,
                              echo=lambda s: None, warn=warnings.append)
  assert [p for p, _ in got] == paths and len(warnings) == 1 and "broken.png: skipped" in warnings[0]
  member = evaluate_lib.predict_run(two_runs[0], "test", "latest")
  for i, (_, best) in enumerate(got):
    assert len(best) == 3 and best[0][0] == member.class_names[int(np.argmax(member.probs[i]))]
    assert best[0][1] == pytest.approx(float(member.probs[i].max()), rel=1e-5)
  proc = forkserver.run([f"--workdir={two_runs[0]}", str(tmp_path / "broken.png"), paths[0]],
                        module="experiments.predict")  # a fork of the preloaded server: no import time
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.splitlines()[0] == paths[0] and len(proc.stdout.splitlines()) == 6
  assert [l for l in proc.stderr.splitlines() if l.strip()] == [
      f"warning: {tmp_path / 'broken.png'}: skipped, it does not decode as an image (UnidentifiedImageError)"]


def test_imagenet_synsets_and_class_name_files(tmp_path):
  from cnnzoo.evaluation import predict
  synsets = predict.imagenet_synsets()
  assert len(synsets) == len(set(synsets)) == 1000 and synsets[:2] == ["n01440764", "n01443537"]
  words = tmp_path / "words.txt"
  words.write_text("n01443537\tgoldfish, Carassius auratus\nn99999999\tnothing\n")
  named = predict.read_class_names(str(words), synsets)
  assert named[1] == "goldfish, Carassius auratus" and named[0] == "n01440764"
  plain = tmp_path / "names.txt"
  plain.write_text("cat\ndog\n")
  assert predict.read_class_names(str(plain), ["0", "1"]) == ["cat", "dog"]
  with pytest.raises(UserError, match="has 2 names; the model has 3 classes"):
    predict.read_class_names(str(plain), ["0", "1", "2"])
