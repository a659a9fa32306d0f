"""Privacy benchmark: aisec vs ART 1.20 at equal settings on Fashion-MNIST, and LiRA reference models/min.

Run::

    python bench/bench_privacy.py                 # default subsample, about 3 minutes on 2 CPU cores
    python bench/bench_privacy.py --full          # 60k members / 10k non-members (long with ART)

What is compared (same target model, same data, same settings):

1. Threshold attacks. ART's only threshold attack is ``MembershipInferenceBlackBoxRuleBased``
   (member iff correctly classified) = aisec's ``gap``; identical outputs are checked. aisec's
   ``loss`` threshold is timed against ART's loss-based ``MembershipInferenceBlackBox``
   (input_type='loss'), which must first fit an attack model (given half the records' membership).
   "threshold suite": gap, loss, confidence (max) and confidence (mentr) on one task, as the
   privacy check runs them — one forward pass per record feeds all four — against ART's rule-based
   plus loss-based attacks (two passes). Per attack, both tools' floor is the target's forward pass.
2. Shadow models (Shokri et al.): K shadow MLPs with the target's architecture, optimiser, epochs and
   batch size on the same shadow data (each on a random half), then a random-forest attack model
   (100 trees) — ART: ``ShadowModels`` + ``MembershipInferenceBlackBox(attack_model_type='rf')``;
   aisec: ``shadow`` with ``attack_model='rf'`` (shadow models trained in one vmapped loop).
3. SHAPr on the same members and test points: ART ``art.metrics.SHAPr`` vs
   :func:`aisec.metrics.shapr.shapr_values` (values compared).
4. LiRA reference models per minute on the digits demo (CPU): the demo recipe (DigitsCNN, Adam,
   30 epochs, batch 64), each model on half of the 1,797 digits — batched (vmap) and one by one.

Fashion-MNIST comes from Debian's ``dataset-fashion-mnist`` (/usr/share/datasets/fashion-mnist).
"""

from __future__ import annotations

import argparse
import gzip
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch

FMNIST = Path(os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))


def load_fmnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    p = "train" if split == "train" else "t10k"
    with gzip.open(FMNIST / f"{p}-images-idx3-ubyte.gz") as fx, gzip.open(FMNIST / f"{p}-labels-idx1-ubyte.gz") as fy:
        x = np.frombuffer(fx.read(), np.uint8, offset=16)
        y = np.frombuffer(fy.read(), np.uint8, offset=8)
    return (x.reshape(-1, 784).astype(np.float32) / 255.0), y.astype(np.int64)


def timed(fn):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def art_classifier(model: torch.nn.Module, lr: float):  # type: ignore[no-untyped-def]
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(),
                             optimizer=torch.optim.Adam(model.parameters(), lr=lr), input_shape=(784,),
                             nb_classes=10, clip_values=(0.0, 1.0), device_type="cpu")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="60k members, 10k non-members, 5k SHAPr test points")
    ap.add_argument("--members", type=int, default=10000)
    ap.add_argument("--nonmembers", type=int, default=3000)
    ap.add_argument("--population", type=int, default=3000, help="shadow data (test split, disjoint from scored)")
    ap.add_argument("--shadow-models", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--shapr-train", type=int, default=3000)
    ap.add_argument("--shapr-test", type=int, default=300)
    ap.add_argument("--reference-models", type=int, default=8, help="LiRA models/min measurement on digits")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("AISEC_BENCH_THREADS", "1")),
                    help="torch threads for both tools (1: robust on a shared machine)")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: threshold,shadow,shapr,lira")
    args = ap.parse_args()
    if args.full:
        args.members, args.nonmembers, args.population = 60000, 5000, 5000
        args.shapr_train, args.shapr_test = 60000, 5000
    skip = set(filter(None, args.skip.split(",")))
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")

    from aisec.attacks.inference.base import MembershipTask, get_inference_attack
    from aisec.metrics.membership import auc_delong
    from aisec.metrics.shapr import shapr_values
    from aisec.models.recipe import TrainingRecipe
    from aisec.targets.torch import TorchTarget

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, members={args.members}, "
          f"non-members={args.nonmembers}, population={args.population}")
    xtr, ytr = load_fmnist("train")
    xte, yte = load_fmnist("test")
    rng = np.random.default_rng(0)
    mi = rng.permutation(xtr.shape[0])[: args.members]
    ti = rng.permutation(xte.shape[0])
    x_in, y_in = xtr[mi], ytr[mi]
    x_out, y_out = xte[ti[: args.nonmembers]], yte[ti[: args.nonmembers]]
    x_pop, y_pop = xte[ti[args.nonmembers : args.nonmembers + args.population]], \
        yte[ti[args.nonmembers : args.nonmembers + args.population]]
    recipe = TrainingRecipe(architecture="tabular-mlp", kwargs={"in_features": 784, "hidden": 256},
                            epochs=args.epochs, batch_size=128, lr=1e-3)
    model, t_fit = timed(lambda: recipe.train(torch.from_numpy(x_in), torch.from_numpy(y_in), num_classes=10))
    target = TorchTarget(model, input_shape=(784,), num_classes=10, modality="tabular", device="cpu")
    clf = art_classifier(model, recipe.lr)
    acc_in = (clf.predict(x_in).argmax(1) == y_in).mean()
    acc_out = (clf.predict(x_out).argmax(1) == y_out).mean()
    print(f"target MLP trained in {t_fit:.1f}s; train acc {acc_in:.3f}, test acc {acc_out:.3f}")
    task = MembershipTask(target, torch.from_numpy(x_in), torch.from_numpy(y_in), torch.from_numpy(x_out),
                          torch.from_numpy(y_out), recipe=recipe, population=(torch.from_numpy(x_pop),
                                                                              torch.from_numpy(y_pop)),
                          shadow_models=args.shadow_models, batch_size=1024, seed=0)
    rows = []

    def auc(si, so):  # type: ignore[no-untyped-def]
        return auc_delong(np.asarray(si, float), np.asarray(so, float))[0]

    if "threshold" not in skip:
        from art.attacks.inference.membership_inference import (
            MembershipInferenceBlackBox,
            MembershipInferenceBlackBoxRuleBased,
        )

        gap = get_inference_attack("gap").cls

        def ours_gap():  # type: ignore[no-untyped-def]
            t = MembershipTask(target, task.x_in, task.y_in, task.x_out, task.y_out, batch_size=1024)
            return gap().run(t, gap.Params())

        g, t_ours = timed(ours_gap)
        rb = MembershipInferenceBlackBoxRuleBased(clf)
        (ri, ro), t_art = timed(lambda: (rb.infer(x_in, y_in), rb.infer(x_out, y_out)))
        same = np.array_equal(g.members.numpy(), ri) and np.array_equal(g.nonmembers.numpy(), ro)
        rows.append((f"gap / rule-based (identical outputs: {same})", t_art, t_ours, auc(ri, ro),
                     auc(g.members, g.nonmembers)))

        loss = get_inference_attack("loss").cls

        def ours_loss():  # type: ignore[no-untyped-def]
            t = MembershipTask(target, task.x_in, task.y_in, task.x_out, task.y_out, batch_size=1024)
            return loss().run(t, loss.Params())

        s, t_ours = timed(ours_loss)
        h_in, h_out = len(x_in) // 2, len(x_out) // 2

        def art_loss():  # type: ignore[no-untyped-def]
            bb = MembershipInferenceBlackBox(clf, input_type="loss", attack_model_type="lr")
            bb.fit(x_in[:h_in], y_in[:h_in], x_out[:h_out], y_out[:h_out])
            return (bb.infer(x_in[h_in:], y_in[h_in:], probabilities=True)[:, -1],
                    bb.infer(x_out[h_out:], y_out[h_out:], probabilities=True)[:, -1])

        (ai, ao), t_art_loss = timed(art_loss)
        rows.append(("loss threshold / ART black-box(loss, lr; not equal)", t_art_loss, t_ours, auc(ai, ao),
                     auc(s.members[h_in:], s.nonmembers[h_out:])))

        conf = get_inference_attack("confidence").cls

        def ours_suite():  # type: ignore[no-untyped-def]
            # As the privacy check runs them: one task, one forward pass per record feeds every threshold attack.
            t = MembershipTask(target, task.x_in, task.y_in, task.x_out, task.y_out, batch_size=1024)
            return (gap().run(t, gap.Params()), loss().run(t, loss.Params()), conf().run(t, conf.Params()),
                    conf().run(t, conf.Params(statistic="mentr")))

        (g2, l2, _, _), t_suite = timed(ours_suite)
        _, t_art_gap = timed(lambda: (rb.infer(x_in, y_in), rb.infer(x_out, y_out)))
        (ai, ao), t_art_loss = timed(art_loss)
        same = same and np.array_equal(g2.members.numpy(), ri) and torch.equal(l2.members, s.members)
        rows.append((f"threshold suite, shared forward (same: {same})", t_art_gap + t_art_loss, t_suite,
                     auc(ai, ao), auc(l2.members[h_in:], l2.nonmembers[h_out:])))

    if "shadow" not in skip:
        from art.attacks.inference.membership_inference import MembershipInferenceBlackBox, ShadowModels

        sh = get_inference_attack("shadow").cls
        s, t_ours = timed(lambda: sh().run(task, sh.Params(attack_model="rf")))

        # Equal work: ART's ShadowModels (disjoint_datasets=False) trains each of its K models on a
        # random half of the same P population records, like aisec, so both attack models see K·P rows.
        k_sh = args.shadow_models

        def art_shadow():  # type: ignore[no-untyped-def]
            torch.manual_seed(1)
            template = art_classifier(recipe.build(task.x_in[:1], 10), recipe.lr)
            models = ShadowModels(template, num_shadow_models=k_sh, random_state=0)
            orig_fit = type(template).fit
            for m in models.get_shadow_models():  # same epochs and batch size as the recipe
                m.fit = (lambda mm: lambda x, y, **kw: orig_fit(mm, x, y, batch_size=recipe.batch_size,
                                                                nb_epochs=recipe.epochs))(m)
            t = time.perf_counter()
            (mx, my, mp), (nx, ny, npred) = models.generate_shadow_dataset(x_pop, y_pop)
            art_train.append(time.perf_counter() - t)
            bb = MembershipInferenceBlackBox(clf, attack_model_type="rf")
            bb.fit(mx, my, nx, ny, mp, npred)
            return (bb.infer(x_in, y_in, probabilities=True)[:, -1], bb.infer(x_out, y_out, probabilities=True)[:, -1])

        art_train: list[float] = []
        (ai, ao), t_art = timed(art_shadow)
        rows.append((f"shadow models (K={k_sh}, {len(x_pop) // 2} rec./model, rf), whole", t_art, t_ours,
                     auc(ai, ao),
                     auc(s.members, s.nonmembers)))
        rows.append(("  of which: training the shadow models", art_train[0], s.info["shadow_training_seconds"],
                     float("nan"), float("nan")))
        rows.append(("  of which: the rest (attack model fit + scoring)", t_art - art_train[0],
                     t_ours - s.info["shadow_training_seconds"], float("nan"), float("nan")))

    if "shapr" not in skip:
        from art.metrics import SHAPr

        n, m = min(args.shapr_train, len(x_in)), min(args.shapr_test, len(x_out))

        def ours_shapr():  # type: ignore[no-untyped-def]
            with torch.no_grad():
                p_tr = target.predict(torch.from_numpy(x_in[:n]))
                p_te = target.predict(torch.from_numpy(x_out[:m]))
            return shapr_values(p_tr, y_in[:n], p_te, y_out[:m])

        v, t_ours = timed(ours_shapr)
        # ART's kNN runs on its estimator's predict (logits here); give it softmax outputs like aisec's.
        soft = art_classifier(torch.nn.Sequential(model, torch.nn.Softmax(dim=1)), recipe.lr)
        ref, t_art = timed(lambda: SHAPr(soft, x_in[:n], y_in[:n], x_out[:m], y_out[:m]))
        err = float(np.abs(v - ref).max() / max(np.abs(ref).max(), 1e-12))
        rows.append((f"SHAPr {n}x{m} (max rel. diff {err:.1e})", t_art, t_ours, float(ref.mean()), float(v.mean())))

    if rows:
        print(f"\n{'comparison':52s} {'ART s':>8s} {'aisec s':>8s} {'ratio':>7s} {'ART':>7s} {'aisec':>7s}")
        print(f"{'':52s} {'':>8s} {'':>8s} {'':>7s} {'(AUC / SHAPr mean)':>15s}")
        for name, ta, to, va, vo in rows:
            print(f"{name:52s} {ta:8.2f} {to:8.2f} {ta / max(to, 1e-9):6.1f}x {va:7.3f} {vo:7.3f}")

    if "lira" not in skip:
        from aisec.attacks.inference.base import balanced_halves
        from aisec.data.builtin import digits

        d = digits()
        demo = TrainingRecipe(architecture="digits-cnn", epochs=30, batch_size=64, lr=1e-3)
        k = args.reference_models
        keep = balanced_halves(k, len(d), seed=0)
        _, t_b = timed(lambda: demo.train_many(d.x, d.y, keep, num_classes=10))
        k_seq = 2
        _, t_s = timed(lambda: [demo.train(d.x[keep[j]], d.y[keep[j]], seed=j, num_classes=10) for j in range(k_seq)])
        print(f"\nLiRA reference models on the digits demo (DigitsCNN, 30 epochs, ~{len(d) // 2} records each, CPU, "
              f"{torch.get_num_threads()} threads):")
        print(f"  batched (vmap, K={k}): {k / t_b * 60:.1f} models/min ({t_b:.1f}s)")
        print(f"  one by one (K={k_seq}):  {k_seq / t_s * 60:.1f} models/min ({t_s:.1f}s)")


if __name__ == "__main__":
    main()
