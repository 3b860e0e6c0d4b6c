#!/usr/bin/env bash
# The journal's tools on the Fashion-MNIST runs, as RESULTS.md reports them: run from the repository
# root after the trainings (`apt-get install dataset-fashion-mnist` first):
#
#   python -m experiments.main --config=configs/fashion_mnist.py:lenet --workdir=runs/fmnist_lenet
#   python -m experiments.main --config=configs/fashion_mnist.py:ensemble --workdir=runs/fmnist_minivgg_ens
#   bash results/fashion_mnist/tools.sh
#
# Writes into results/fashion_mnist/: the MiniVGGNet's evaluation (report + confusion matrix), the
# logistic regression on its penultimate features, predict on PNGs written from the test set, and
# the LeNet stopped at epoch 10 and resumed with lr 1e-4, beside the uninterrupted run.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=results/fashion_mnist
RUN=runs/fmnist_minivgg_ens/member_0
mkdir -p "$OUT"

echo "== evaluate: classification report and confusion matrix (the last epoch; the test split)"
python -m experiments.evaluate --workdir="$RUN" --checkpoint=latest --out="$OUT/minivggnet_eval_test"

echo "== features (fc1_bn: the 512 units the classifier reads) -> logistic regression"
python -m experiments.extract_features --workdir="$RUN" --checkpoint=latest --data=fashion_mnist \
    --layer=fc1_bn --out=runs/fmnist_minivgg_features --overwrite
python -m experiments.train_logreg --features=runs/fmnist_minivgg_features --C=0.1,1,10 \
    --out="$OUT/minivggnet_logreg" | tail -n 20

echo "== predict on 500 PNGs written from the test split (50 a class)"
python - <<'EOF'
import os
import numpy as np
from PIL import Image
from cnnzoo.data import sources
test = sources.load_idx("fashion_mnist").test
os.makedirs("runs/fmnist_pngs", exist_ok=True)
for k in range(10):
  for i in np.flatnonzero(test.labels == k)[:50]:
    Image.fromarray(test.images[i, :, :, 0]).save(f"runs/fmnist_pngs/{i:05d}_label{k}.png")
EOF
python -m experiments.predict --workdir="$RUN" --checkpoint=latest --top=1 runs/fmnist_pngs/*.png \
    > runs/fmnist_predict.txt
python - <<'EOF' | tee "$OUT/predict_pngs.txt"
from cnnzoo.data import idx
lines = open("runs/fmnist_predict.txt").read().splitlines()
names = idx.FASHION_MNIST_CLASSES
pairs = [(lines[i], lines[i + 1].split(None, 1)[1].rsplit(None, 1)[0]) for i in range(0, len(lines), 2)]
right = sum(names[int(path.rsplit("label", 1)[1][:-4])] == top for path, top in pairs)
print(f"experiments.predict on {len(pairs)} PNGs of the test split: top-1 = label for {right} "
      f"({right / len(pairs):.1%})")
EOF

echo "== stop at epoch 10 and resume with lr 1e-4 (LeNet), curves beside the uninterrupted run"
rm -rf runs/fmnist_lenet_resume10 && cp -r runs/fmnist_lenet runs/fmnist_lenet_resume10
rm -f runs/fmnist_lenet_resume10/.lock
python -m experiments.main --config=configs/fashion_mnist.py:lenet --workdir=runs/fmnist_lenet_resume10 \
    --resume_epoch=10 --config.optim.lr=1e-4 --config.monitor.progress=False | tail -n 3
python -m experiments.runs runs/fmnist_lenet runs/fmnist_lenet_resume10 --plot="$OUT/lenet_resume10_lr1e-4.png"

echo "== $OUT/tools.md (a fragment RESULTS.md includes; its links are from the repository root)"
python - <<'EOF2'
import json
out = "results/fashion_mnist"
ev = json.load(open(f"{out}/minivggnet_eval_test/evaluation.json"))
lr = json.load(open(f"{out}/minivggnet_logreg/logreg_evaluation.json"))
predict = open(f"{out}/predict_pngs.txt").read().strip()
hist = lambda run: json.load(open(f"runs/{run}/history.json"))
res = lambda run: json.load(open(f"runs/{run}/results.json"))
keys = ("loss", "accuracy", "val_loss", "val_accuracy")
same = all(a[k] == b[k] for a, b in zip(hist("fmnist_lenet")[:10], hist("fmnist_lenet_resume10")[:10]) for k in keys)
lines = [
    "| tool | command (results/fashion_mnist/tools.sh) | result |",
    "|---|---|---|",
    f"| `experiments.evaluate` | `--workdir=runs/fmnist_minivgg_ens/member_0 --checkpoint=latest` | rank-1 "
    f"{ev['rank1']:.4f}, rank-5 {ev['rank5']:.4f}; [report](results/fashion_mnist/minivggnet_eval_test/classification_report.txt), "
    "[confusion matrix](results/fashion_mnist/minivggnet_eval_test/confusion_matrix.png) |",
    f"| features -> logistic regression | `extract_features --layer=fc1_bn` (512 features) then `train_logreg "
    f"--C=0.1,1,10` | test {lr['rank1']:.4f} (C = {lr['C']:g}, 3-fold {lr['cv_accuracy']:.4f}); "
    "[report](results/fashion_mnist/minivggnet_logreg/logreg_report.txt) |",
    f"| `experiments.predict` | `--top=1` on 500 PNGs written from the test split | {predict.split(': ', 1)[1]} |",
    f"| stop at 10, resume with lr 1e-4 | LeNet: `--resume_epoch=10 --config.optim.lr=1e-4` | test "
    f"{res('fmnist_lenet_resume10')['test_accuracy']:.4f} vs {res('fmnist_lenet')['test_accuracy']:.4f} "
    f"uninterrupted; epochs 1-10 {'identical' if same else 'DIFFER'} in loss and accuracy; "
    "[both curves](results/fashion_mnist/lenet_resume10_lr1e-4.png) |",
]
open(f"{out}/tools.md", "w").write("\n".join(lines) + "\n")
EOF2
