"""Randomized smoothing: certified L2 robustness of the Gaussian-smoothed classifier (Cohen et al. 2019).

Cohen, Rosenfeld & Kolter, "Certified Adversarial Robustness via Randomized Smoothing", ICML 2019,
https://arxiv.org/abs/1902.02918 (reference code: github locuslab/smoothing, ``core.py``).

From any base classifier ``f`` (here: the target's predicted label) build the smoothed classifier

    g(x) = argmax_c  P(f(x + ε) = c),   ε ~ N(0, σ² I).

If the top class has probability p_A ≥ p̲_A > 1/2, then ``g`` predicts it everywhere in the L2 ball of
radius ``σ Φ⁻¹(p̲_A)`` around ``x`` (Theorem 1, with p_B ≤ 1 − p_A). The probabilities are estimated by
Monte Carlo, so the two procedures are statistical:

- **CERTIFY**: ``n0`` noisy draws pick the guess c_A; ``n`` fresh draws count it (n_A); p̲_A is the
  one-sided ``1 − α`` Clopper–Pearson lower bound of n_A / n; abstain when p̲_A < 1/2, else certify
  radius σ Φ⁻¹(p̲_A). With probability at least 1 − α a returned (class, radius) is correct about ``g``.
- **PREDICT**: ``n`` draws; the top two counts n_A, n_B; return c_A when the two-sided binomial test of
  n_A against n_A + n_B at 1/2 has p ≤ α, else abstain. Wrong (a class other than g(x)) with
  probability at most α.

An abstention is class ``-1`` (:data:`ABSTAIN`) wherever labels are returned. The certificate is about
``g``, not about the target: a model that is easy to attack can have a robust smoothed classifier, and
the certificate says nothing about the attacked model (:attr:`Certificate.about` is ``smoothed``).
:class:`SmoothedTarget` is ``g`` as a target, so ``g`` can be attacked too.

Speed: the noise is drawn and classified in large batches that mix draws of several inputs
(``batch_size`` noisy samples per forward pass), counted with one ``bincount``, all on the target's
device — the reference loops over inputs, one noise batch at a time, counting on the CPU
(``bench/bench_certify.py`` measures both). Noise is not clipped to the value range (as in the
reference; the base classifier sees ``x + ε`` as drawn).

A certifiable model is trained on noise of the same σ: the ``gaussian-augment`` training recipe
(``aisec defend --recipe gaussian-augment:sigma=0.25,keep_clean=false``) is Cohen et al.'s training.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aisec.certify.base import Certificate, register_certifier
from aisec.core.errors import ConfigError
from aisec.core.target import Target, WrappedTarget

ABSTAIN = -1
"""The label an abstention is given (the smoothed classifier refuses to answer)."""


class SmoothingParams(BaseModel):
    """Settings of CERTIFY / PREDICT (the reference's defaults: N0 = 100, N = 100,000, α = 0.001)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    sigma: float = Field(default=0.25, gt=0, le=1e6, description="Std of the Gaussian noise, in the data range.")
    n0: int = Field(default=100, ge=1, description="Draws that select the top class (CERTIFY).")
    n: int = Field(default=1000, ge=1, description="Draws that estimate its probability (CERTIFY, PREDICT).")
    alpha: float = Field(default=0.001, gt=0, lt=1, description="Failure probability of each answer.")
    batch_size: int = Field(default=1000, ge=1, description="Noisy samples per forward pass.")
    seed: int = Field(default=0, description="Seed of the noise (the same seed, the same certificate).")


def parse_params(params: dict[str, Any], what: str = "smoothing") -> SmoothingParams:
    """``params`` as :class:`SmoothingParams`; a bad one is a one-line :class:`ConfigError`."""
    try:
        return SmoothingParams(**params)
    except ValidationError as exc:
        e = exc.errors(include_url=False)[0]
        field = ".".join(str(x) for x in e["loc"])
        raise ConfigError(f"{what}: {field}: {e['msg']} (its parameters: "
                          f"{', '.join(SmoothingParams.model_fields)})") from None


def _generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def sample_counts(target: Target, x: torch.Tensor, sigma: float, num: int, *, batch_size: int = 1000,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Per input, how many of ``num`` draws ``f(x + ε)``, ε ~ N(0, σ²I), fall in each class: ``(B, K)`` int64.

    Batched over inputs and draws together: each forward pass holds up to ``batch_size`` noisy samples
    (several inputs' draws when ``num < batch_size``), on the target's device.
    """
    dev = torch.device(target.spec.device)
    k = target.spec.num_classes
    x = x.detach().to(dev).float()
    b_all = int(x.shape[0])
    counts = torch.zeros(b_all, k, dtype=torch.int64, device=dev)
    gen = generator if generator is not None else _generator(dev, 0)
    per = max(1, batch_size // num)  # inputs per forward pass when one input's draws fit in a batch
    with torch.no_grad():
        for i in range(0, b_all, per):
            xb = x[i : i + per]
            b = int(xb.shape[0])
            left = num
            while left > 0:
                m = min(left, max(1, batch_size // b))
                rep = xb.repeat_interleave(m, dim=0)
                noise = torch.randn(rep.shape, generator=gen, device=dev, dtype=rep.dtype)
                labels = target.predict(rep + sigma * noise).argmax(1).to(dev)
                owner = torch.arange(b, device=dev).repeat_interleave(m)
                counts[i : i + b] += torch.bincount(owner * k + labels, minlength=b * k).view(b, k)
                left -= m
    return counts.cpu()


def lower_confidence_bound(n_a: np.ndarray, n: int, alpha: float) -> np.ndarray:
    """One-sided ``1 − α`` Clopper–Pearson lower bound on a binomial proportion, per count ``n_a`` of ``n``
    (the reference's ``proportion_confint(n_a, n, alpha=2 * alpha, method="beta")[0]``)."""
    from scipy import stats

    k = np.asarray(n_a, dtype=float)
    with np.errstate(invalid="ignore"):
        low = stats.beta.ppf(alpha, k, n - k + 1)
    return np.where(k > 0, low, 0.0)


def binomial_pvalue(n_a: np.ndarray, n_b: np.ndarray) -> np.ndarray:
    """Two-sided exact binomial test of ``n_a`` successes in ``n_a + n_b`` at p = 1/2 (``n_a ≥ n_b``): the
    reference's ``binom_test(n_a, n_a + n_b, 0.5)``, vectorised (the null is symmetric, so it is twice the
    smaller tail)."""
    from scipy import stats

    a, b = np.asarray(n_a, dtype=float), np.asarray(n_b, dtype=float)
    total = a + b
    p = np.minimum(1.0, 2 * stats.binom.cdf(np.minimum(a, b), total, 0.5))
    return np.where(total > 0, np.where(a == b, 1.0, p), 1.0)


@dataclass(frozen=True)
class SmoothingResult:
    """CERTIFY's answer per input: the class (``-1`` = abstain), p̲_A, and the certified L2 radius (NaN when
    abstaining)."""

    prediction: np.ndarray
    p_lower: np.ndarray
    radius: np.ndarray
    seconds: float
    params: SmoothingParams

    @property
    def abstained(self) -> np.ndarray:
        return np.asarray(self.prediction == ABSTAIN)


def certify(target: Target, x: torch.Tensor, params: SmoothingParams | None = None, **kwargs: Any) -> SmoothingResult:
    """Cohen et al.'s CERTIFY on every input of ``x`` (``params`` or keyword settings; see the module doc)."""
    p = params if params is not None else parse_params(kwargs)
    t0 = time.perf_counter()
    gen = _generator(torch.device(target.spec.device), p.seed)
    c0 = sample_counts(target, x, p.sigma, p.n0, batch_size=p.batch_size, generator=gen)
    guess = c0.argmax(1)
    c = sample_counts(target, x, p.sigma, p.n, batch_size=p.batch_size, generator=gen)
    n_a = c.gather(1, guess[:, None]).squeeze(1).numpy()
    low = lower_confidence_bound(n_a, p.n, p.alpha)
    from scipy import stats

    certified = low >= 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        radius = np.where(certified, p.sigma * stats.norm.ppf(low), np.nan)
    pred = np.where(certified, guess.numpy(), ABSTAIN)
    return SmoothingResult(prediction=pred.astype(np.int64), p_lower=low, radius=radius,
                           seconds=time.perf_counter() - t0, params=p)


def predict(target: Target, x: torch.Tensor, params: SmoothingParams | None = None, *,
            generator: torch.Generator | None = None, **kwargs: Any) -> np.ndarray:
    """Cohen et al.'s PREDICT: the smoothed class per input, ``-1`` where the test does not reject at α."""
    p = params if params is not None else parse_params(kwargs)
    gen = generator if generator is not None else _generator(torch.device(target.spec.device), p.seed)
    c = sample_counts(target, x, p.sigma, p.n, batch_size=p.batch_size, generator=gen)
    top2 = torch.topk(c, k=min(2, c.shape[1]), dim=1)
    n_a, n_b = top2.values[:, 0].numpy(), top2.values[:, 1].numpy()
    keep = binomial_pvalue(n_a, n_b) <= p.alpha
    return np.where(keep, top2.indices[:, 0].numpy(), ABSTAIN).astype(np.int64)


def statuses(result: SmoothingResult, y: np.ndarray, radius: float) -> np.ndarray:
    """Per sample at ``radius``: ``proved`` (g is right and certified at least that far), ``counterexample``
    (g answers a wrong class: the clean input itself), ``inconclusive`` (abstained, or certified less far)."""
    pred = result.prediction
    right = (pred == y) & (result.radius >= radius - 1e-12)
    wrong = (pred != ABSTAIN) & (pred != y)
    return np.where(right, "proved", np.where(wrong, "counterexample", "inconclusive")).astype(object)


@register_certifier("smoothing")
def certify_smoothing(target: Target, x: torch.Tensor, y: torch.Tensor, norm: str, radii: Sequence[float],
                      params: dict[str, Any]) -> list[Certificate]:
    """The robustness check's entry: CERTIFY once, one :class:`Certificate` per L2 radius asked about."""
    if norm != "l2":
        raise ConfigError(f"randomized smoothing with Gaussian noise certifies L2 balls, not {norm} (certify it on "
                          "the L2 grid, or use a bound method such as ibp for Linf)")
    p = parse_params(params)
    res = certify(target, x, p)
    yy = y.detach().cpu().numpy()
    record = {**p.model_dump(), "abstained": int(res.abstained.sum())}
    notes = [f"the smoothed classifier (σ={p.sigma:g}) abstained on {int(res.abstained.sum())} of {len(yy)} samples"]
    return [Certificate(method="smoothing", norm="l2", radius=float(r), status=statuses(res, yy, float(r)),
                        certified_radius=np.where(res.prediction == yy, res.radius, np.nan), seconds=res.seconds,
                        params=record, notes=notes, about="smoothed") for r in radii]


class SmoothedTarget(WrappedTarget):
    """The smoothed classifier ``g`` of ``target`` as a :class:`~aisec.core.target.Target`, so it can be attacked.

    - ``predict(x)``: the vote frequencies of ``draws`` noisy copies (their argmax is g's Monte-Carlo answer);
      each call draws fresh noise, so the target is **stochastic** (``stochastic = True``: the robustness
      check's randomness flag fires and its remedy, EOT, attacks it).
    - ``logits(x)``: the base logits at one noisy copy ``x + ε`` (differentiable when the target is); EOT over
      them is the gradient of the soft smoothed classifier (Salman et al. 2019, https://arxiv.org/abs/1906.04584).
    - ``classify(x)``: PREDICT with abstention (``-1``), the answer with a guarantee.
    """

    stochastic = True

    def __init__(self, target: Target, sigma: float, *, draws: int = 100, alpha: float = 0.001,
                 batch_size: int = 1000, seed: int = 0) -> None:
        self.params = parse_params({"sigma": sigma, "n": draws, "alpha": alpha, "batch_size": batch_size,
                                    "seed": seed}, what="SmoothedTarget")
        super().__init__(target, f"smoothed(σ={sigma:g})-{target.spec.name}")
        self._gen = _generator(torch.device(target.spec.device), seed)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The base classifier's logits at one noisy copy of each input (a fresh draw per call)."""
        noise = torch.randn(x.shape, generator=self._gen, device=torch.device(self._spec.device), dtype=x.dtype)
        return self.target.logits(x + self.params.sigma * noise.to(x.device))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Vote frequencies over ``draws`` noisy copies, ``(N, num_classes)`` summing to 1."""
        p = self.params
        c = sample_counts(self.target, x, p.sigma, p.n, batch_size=p.batch_size, generator=self._gen)
        return (c.float() / p.n).to(torch.device(self._spec.device))

    def classify(self, x: torch.Tensor) -> np.ndarray:
        """PREDICT: the smoothed class, or ``-1`` (abstain) where the vote is not significant at α."""
        return predict(self.target, x, self.params, generator=self._gen)


__all__ = ["ABSTAIN", "SmoothedTarget", "SmoothingParams", "SmoothingResult", "binomial_pvalue", "certify",
           "certify_smoothing", "lower_confidence_bound", "predict", "sample_counts", "statuses"]
