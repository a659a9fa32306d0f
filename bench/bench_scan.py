"""``aisec scan`` on breast cancer: LogisticRegression, every black-box attack, budget 1000 per sample.

Trains the model on the built-in breast-cancer train split (min-max scaled inputs), pickles it and
runs the scan on the test split, then again on a CSV version of the same table with integer and
one-hot columns added and tabular constraints inferred (immutable: mean radius, mean texture), so
the effect of constraints shows side by side. Times are wall-clock on a shared machine: compare
the rows with each other, not with other machines.

    python bench/bench_scan.py [--budget 1000] [--out /tmp/aisec-bench-scan]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression

from aisec.core.constraints import TabularConstraints
from aisec.core.dataset import take
from aisec.data.builtin import breast_cancer
from aisec.data.table import constraints_from_csv


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=int, default=1000)
    ap.add_argument("--out", default="/tmp/aisec-bench-scan")
    a = ap.parse_args()
    root = Path(a.out)
    root.mkdir(parents=True, exist_ok=True)
    xtr, ytr = take(breast_cancer("train"))
    model = LogisticRegression(max_iter=3000).fit(xtr.numpy(), ytr.numpy())
    joblib.dump(model, root / "bc_lr.pkl")
    aisec = [sys.executable, "-m", "aisec"]
    cmd = [*aisec, "scan", "-m", str(root / "bc_lr.pkl"), "-d", "breast-cancer", "--split", "test",
           "--trust-model-code", "--budget", str(a.budget), "-o", str(root / "plain"), "-q"]
    print("$", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=False)

    # The same table as CSV with an integer and a one-hot column group, and constraints.
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    tex = np.eye(3)[np.digitize(d.data[:, 1], np.quantile(d.data[:, 1], [1 / 3, 2 / 3]))]
    raw = np.column_stack([d.data, np.round(d.data[:, 0]), tex])
    names = [n.replace(" ", "_") for n in d.feature_names] + ["radius_int", "tex_lo", "tex_mid", "tex_hi"]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(raw))
    test, train = order[: len(raw) // 3], order[len(raw) // 3:]
    lines = [",".join([*names, "label"])] + [",".join([*(f"{v:g}" for v in raw[i]), str(d.target[i])]) for i in test]
    (root / "bc_test.csv").write_text("\n".join(lines) + "\n")
    lo, hi = raw[test].min(0), raw[test].max(0)  # the CSV loader scales by the file's own min/max
    span = np.where(hi > lo, hi - lo, 1.0)
    joblib.dump(LogisticRegression(max_iter=3000).fit((raw[train] - lo) / span, d.target[train]),
                root / "bc_lr_csv.pkl")
    c = constraints_from_csv(root / "bc_test.csv")
    keep = c.model_dump(exclude={"offset", "scale"})
    c = TabularConstraints(**{**keep, "immutable": ("mean_radius", "mean_texture")})
    c.dump(root / "constraints.yaml")
    for tag, extra in (("csv-free", []), ("csv-constrained", ["--constraints", str(root / "constraints.yaml")])):
        cmd = [*aisec, "scan", "-m", str(root / "bc_lr_csv.pkl"), "-d", str(root / "bc_test.csv"),
               "--trust-model-code", "--budget", str(a.budget), "-o", str(root / tag), "-q", *extra]
        print("$", " ".join(cmd[2:]), flush=True)
        subprocess.run(cmd, check=False)


if __name__ == "__main__":
    main()
