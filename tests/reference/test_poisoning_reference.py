"""aisec's poisoning attacks and backdoor detectors against ART 1.20 on the same digits model and data.

Tolerances and why:
- BadNets: aisec's 3x3 checkerboard (bottom right) and ART's ``add_pattern_bd(distance=1)`` light the
  same 4 corner pixels (aisec also lights the 5th checkerboard pixel and writes the unlit ones as 0).
  Same poisoned indices (4% of the training set, non-target classes), same labels, same recipe and
  seed: the two victims differ only by the trigger's pixels, so their ASRs on triggered held-out
  images must agree within 0.15 (a backdoor at this rate is near 1.0 in both; a broken trigger or
  relabelling gives ~0) and clean accuracy within 0.03.
- Hidden Trigger: both runs start from the same poisons and sources at the same eps and iterations;
  both must stay in the eps-ball and cut the mean feature distance to the nearest triggered source
  by a factor within 20% of each other (measured: the same to 1%; plain GD in ART, Adam in aisec).
- Sleeper Agent: same surrogate, poisons and triggered sources (fixed patch), same eps and steps;
  the gradient-alignment (cosine) reached must be above the clean images' and within 0.15 of ART's
  (measured on the same surrogate by the same function, so the two tools are scored identically).
- Detectors: ART's ``ActivationDefence`` (PCA 10 + 2-means, smaller cluster) and
  ``SpectralSignatureDefense`` read the model's last layer; the very same activations are given to
  aisec's ``activation_clustering``/``spectral_signatures`` (every class examined). The samples each
  flags in the backdoor's target class must overlap (Jaccard >= 0.8 for AC: k-means init differs;
  for spectral, ART's own scoring function on centred features must pick aisec's samples to one; ART's
  ``detect_poison`` skips the paper's centring, so only its flag count is compared); AC's flags must
  catch as many poisons (within 3). On 10 logits AC catches only ~2/3 of the 50 poisons in either
  tool (ART warns the layer is small).
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch

from aisec.attacks.poisoning import PatchTrigger, poison_dataset
from aisec.attacks.poisoning.hidden_trigger import HiddenTriggerParams, hidden_trigger
from aisec.attacks.poisoning.sleeper_agent import (
    SleeperAgentParams,
    craft_sleeper_agent,
    gradient_alignment,
    source_gradient,
)
from aisec.detect import activation_clustering, spectral_signatures
from aisec.models.recipe import TrainingRecipe
from aisec.models.torch_module import feature_fn

art_cls = pytest.importorskip("art.estimators.classification")
art_pois = pytest.importorskip("art.attacks.poisoning")
art_pert = pytest.importorskip("art.attacks.poisoning.perturbations")
art_def = pytest.importorskip("art.defences.detector.poison")

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

SRC, TGT = 0, 1
RECIPE = TrainingRecipe(architecture="digits-cnn", epochs=8, lr=3e-3)


def flat(model: torch.nn.Module) -> torch.nn.Sequential:
    """DigitsCNN as one flat Sequential, so ART's layer indices address single layers."""
    return torch.nn.Sequential(*model.features, *model.classifier).eval()


def art_classifier(model: torch.nn.Module):  # type: ignore[no-untyped-def]
    return art_cls.PyTorchClassifier(
        model, loss=torch.nn.CrossEntropyLoss(), optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
        input_shape=(1, 8, 8), nb_classes=10, clip_values=(0.0, 1.0), preprocessing=(0.0, 1.0), device_type="cpu",
    )


def onehot(y: torch.Tensor) -> np.ndarray:
    return np.eye(10, dtype=np.float32)[y.numpy()]


@pytest.fixture(scope="module")
def train(digits_split):
    tr, te = digits_split
    return tr.x.float(), tr.y.long(), te.x.float(), te.y.long()


@pytest.fixture(scope="module")
def badnets_pair(train):
    """Victims trained on aisec's and on ART's BadNets poisons (same indices, recipe and seed)."""
    x, y, _, _ = train
    trig = PatchTrigger(size=3, position="bottom-right", pattern="checkerboard")
    ours = poison_dataset(x, y, trig, rate=0.04, target_class=TGT, seed=0)
    attack = art_pois.PoisoningAttackBackdoor(lambda a: art_pert.add_pattern_bd(a, distance=1, channels_first=True))
    xa, _ = attack.poison(x[ours.index].numpy(), onehot(torch.full((ours.index.numel(),), TGT)))
    x_art = x.clone()
    x_art[ours.index] = torch.from_numpy(xa)
    # Two victims in one vmapped loop: rows [0, n) are aisec's set, [n, 2n) ART's.
    n = x.shape[0]
    keep = torch.zeros(2, 2 * n, dtype=torch.bool)
    keep[0, :n] = True
    keep[1, n:] = True
    stack = RECIPE.train_many(torch.cat([ours.x, x_art]), torch.cat([ours.y, ours.y]), keep, num_classes=10, seed=0)
    return {"trigger": trig, "ours": ours, "art_x": x_art, "models": [stack.module(0), stack.module(1)],
            "art_attack": attack}


def test_badnets_asr_matches_art(train, badnets_pair):
    _, _, xte, yte = train
    ours, x_art = badnets_pair["ours"], badnets_pair["art_x"]
    idx = ours.index
    lit = torch.zeros(8, 8, dtype=torch.bool)
    lit[[7, 6, 7, 5], [7, 6, 5, 7]] = True  # the pixels add_pattern_bd(distance=1) sets
    assert torch.equal(ours.x[idx][..., lit], x_art[idx][..., lit])
    assert torch.equal(ours.x[~ours.is_poison], x_art[~ours.is_poison])
    victims = xte[yte != TGT]
    with torch.no_grad():
        m_ours, m_art = badnets_pair["models"]
        asr_ours = float((m_ours(badnets_pair["trigger"].apply(victims)).argmax(1) == TGT).float().mean())
        xa_t, _ = badnets_pair["art_attack"].poison(victims.numpy(), onehot(torch.full((victims.shape[0],), TGT)))
        asr_art = float((m_art(torch.from_numpy(xa_t)).argmax(1) == TGT).float().mean())
        acc = [float((m(xte).argmax(1) == yte).float().mean()) for m in (m_ours, m_art)]
    assert asr_ours > 0.8 and asr_art > 0.8, (asr_ours, asr_art)
    assert abs(asr_ours - asr_art) <= 0.15, (asr_ours, asr_art)
    assert abs(acc[0] - acc[1]) <= 0.03 and min(acc) > 0.9, acc


def test_hidden_trigger_matches_art(digits_model, train):
    x, y, _, _ = train
    model = flat(digits_model)
    trig = PatchTrigger(size=3, position="bottom-right")
    eps, iters, n = 32 / 255, 150, 20
    clf = art_classifier(model)
    backdoor = art_pois.PoisoningAttackBackdoor(lambda a: trig.apply(torch.from_numpy(a)).numpy())
    np.random.seed(0)  # ART draws poisons and sources with np.random
    attack = art_pois.HiddenTriggerBackdoor(
        clf, target=np.eye(10)[TGT], source=np.eye(10)[SRC], feature_layer=len(clf.layer_names) - 2,
        backdoor=backdoor, eps=eps, max_iter=iters, poison_percent=n / int((y == TGT).sum()),
        learning_rate=0.001, decay_iter=2000, stopping_threshold=0.0, verbose=False, print_iter=10**9,
    )
    with contextlib.redirect_stdout(io.StringIO()):  # ART prints its loss
        xa, ia = attack.poison(x.numpy(), onehot(y))
    idx = torch.from_numpy(ia)
    z_art = torch.from_numpy(xa)
    xsrc = x[y == SRC]
    z = hidden_trigger(model, x[idx], xsrc, trig, HiddenTriggerParams(eps=eps, steps=iters))
    phi = feature_fn(model)
    with torch.no_grad():
        fs = phi(trig.apply(xsrc))

        def dist(v: torch.Tensor) -> float:
            return float(torch.cdist(phi(v), fs).min(1).values.mean())

        before, d_ours, d_art = dist(x[idx]), dist(z), dist(z_art)
    for poisons in (z, z_art):
        assert (poisons - x[idx]).abs().max() <= eps + 1e-6
        assert poisons.min() >= 0 and poisons.max() <= 1
    f_ours, f_art = before / d_ours, before / d_art
    assert f_ours > 1.1 and f_art > 1.1, (before, d_ours, d_art)
    assert abs(f_ours / f_art - 1) <= 0.2, (f_ours, f_art)


def test_sleeper_agent_alignment_matches_art(digits_model, train):
    x, y, xte, yte = train
    model = flat(digits_model)
    patch = PatchTrigger(size=3, position="bottom-right")
    eps, steps, n = 16 / 255, 30, 24
    cls_idx = (y == TGT).nonzero().squeeze(1)
    xsrc = x[y == SRC][:64]
    clf = art_classifier(model)
    np.random.seed(0)
    attack = art_pois.SleeperAgentAttack(
        clf, percent_poison=n / cls_idx.numel(), patch=patch.patch(1).numpy(), indices_target=cls_idx.numpy(),
        epsilon=eps, max_trials=1, max_epochs=steps,
        learning_rate_schedule=([1e-1, 1e-2, 1e-3, 1e-4], [int(steps * f) for f in (0.375, 0.625, 0.875, 1.0)]),
        batch_size=128, verbose=0, patching_strategy="fixed", selection_strategy="random", class_source=SRC,
        class_target=TGT,
    )
    x_art_all, _ = attack.poison(xsrc.numpy().copy(), onehot(torch.full((xsrc.shape[0],), TGT)), x.numpy(),
                                 onehot(y), xte.numpy(), onehot(yte))
    idx = cls_idx[torch.from_numpy(attack.get_poison_indices())]
    z_art = torch.from_numpy(x_art_all)[idx]
    out = craft_sleeper_agent(model, x[idx], y[idx], xsrc, patch, target_class=TGT,
                              params=SleeperAgentParams(eps=eps, steps=steps, retrain_rounds=1))
    g_src = source_gradient(model, xsrc, patch, TGT, torch.Generator().manual_seed(0))
    clean = gradient_alignment(model, x[idx], y[idx], g_src)
    a_ours = gradient_alignment(model, out.x, y[idx], g_src)
    a_art = gradient_alignment(model, z_art, y[idx], g_src)
    for poisons in (out.x, z_art):
        assert (poisons - x[idx]).abs().max() <= eps + 1e-5
    assert a_ours > clean + 0.05 and a_art > clean + 0.05, (clean, a_ours, a_art)
    assert a_ours >= a_art - 0.15, (a_ours, a_art)
    assert abs(out.alignment - a_ours) < 1e-4  # the outcome reports what it reached


@pytest.fixture(scope="module")
def last_layer(badnets_pair):
    """The aisec-poisoned victim's logits on its training set (ART's detectors read the last layer)."""
    model = badnets_pair["models"][0]
    ours = badnets_pair["ours"]
    clf = art_classifier(flat(model))
    acts = clf.get_activations(ours.x.numpy(), layer=len(clf.layer_names) - 1, batch_size=512)
    return clf, ours, torch.from_numpy(np.asarray(acts).reshape(len(acts), -1))


def _in_target(ix: np.ndarray, y: torch.Tensor) -> set[int]:
    return {int(i) for i in ix if int(y[i]) == TGT}


def test_activation_clustering_matches_art(last_layer):
    clf, ours, acts = last_layer
    ad = art_def.ActivationDefence(clf, ours.x.numpy(), onehot(ours.y))
    _, is_clean = ad.detect_poison(nb_clusters=2, nb_dims=10, reduce="PCA", cluster_analysis="smaller")
    art_flag = _in_target(np.nonzero(np.asarray(is_clean) == 0)[0], ours.y)
    det = activation_clustering(acts, ours.y, 10, dims=10, threshold=-np.inf, max_cluster_fraction=0.5)
    our_flag = _in_target(det.flagged, ours.y)
    poisons = {int(i) for i in ours.index}
    jac = len(art_flag & our_flag) / max(1, len(art_flag | our_flag))
    assert jac >= 0.8, (len(art_flag), len(our_flag), jac)
    caught = (len(our_flag & poisons), len(art_flag & poisons))
    assert min(caught) >= 0.5 * len(poisons) and abs(caught[0] - caught[1]) <= 3, caught


def test_spectral_signatures_match_art(last_layer):
    clf, ours, acts = last_layer
    rate = 0.25
    det = spectral_signatures(acts, ours.y, 10, expected_rate=rate, threshold=-np.inf)
    our_flag = _in_target(det.flagged, ours.y)
    # ART's scoring function on the paper's centred features ranks exactly like aisec's.
    cls = (ours.y == TGT).nonzero().squeeze(1).numpy()
    f = acts[cls].numpy().astype(np.float64)
    score = art_def.SpectralSignatureDefense.spectral_signature_scores(f - f.mean(0)).ravel()
    ref_flag = {int(i) for i in cls[np.argsort(-score)[: len(our_flag)]]}
    assert len(ref_flag & our_flag) >= len(our_flag) - 1, (len(ref_flag & our_flag), len(our_flag))
    # ART's detect_poison projects *uncentred* features (|v . r|, not (v . (r - mean))^2 as in the paper's
    # Algorithm 1), so its flags differ; it must still flag as many samples. (Measured on this model:
    # aisec's flags hold 17 of the 50 poisons, ART's 33; recorded in docs/poisoning.md, not asserted.)
    sd = art_def.SpectralSignatureDefense(clf, ours.x.numpy(), onehot(ours.y), batch_size=512, eps_multiplier=1.5,
                                          expected_pp_poison=rate)
    _, is_clean = sd.detect_poison()
    art_flag = _in_target(np.nonzero(np.asarray(is_clean) == 0)[0], ours.y)
    assert abs(len(art_flag) - len(our_flag)) <= 1
