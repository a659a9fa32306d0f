"""Contest mode: the stratified hidden split and attack/defence submissions as in-process plugins."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import torch

from aisec.attacks.base import EvasionParams, run_attack
from aisec.campaigns.contest import CONTEST_EPS, ContestRules, hidden_split, run_contest
from aisec.campaigns.spec import Campaign
from aisec.core import registry
from aisec.core.dataset import digest_arrays
from aisec.core.errors import ConfigError
from aisec.core.registry import AttackKind
from aisec.core.types import Capability, Norm
from aisec.data.builtin import digits
from aisec.defences.preprocess.base import DefenceParams, PreprocessDefence

SEEN: list[torch.Tensor] = []


class _SignParams(EvasionParams):
    pass


class ToySign:
    """Toy attack submission: one signed-gradient step of size eps (FGSM by hand)."""

    Params: ClassVar[type[EvasionParams]] = _SignParams

    def run(self, target: Any, x: torch.Tensor, y: torch.Tensor, params: Any, *,
            target_labels: torch.Tensor | None = None) -> torch.Tensor:
        x = x.clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(target.logits(x), y)
        (g,) = torch.autograd.grad(loss, x)
        return (x + params.eps * g.sign()).clamp(0, 1).detach()


class ToyNoop:
    """Toy attack submission that returns its input unchanged (robust accuracy = clean accuracy)."""

    Params: ClassVar[type[EvasionParams]] = _SignParams

    def run(self, target: Any, x: torch.Tensor, y: torch.Tensor, params: Any, *,
            target_labels: torch.Tensor | None = None) -> torch.Tensor:
        return x.clone()


class ToyRecorder(PreprocessDefence):
    """Toy defence submission: fitted on what it is given (recorded), then rounds inputs to 1 bit."""

    Params = DefenceParams
    name = "toy-recorder"
    image_only = False

    def fit(self, x: torch.Tensor, y: torch.Tensor) -> None:
        SEEN.append(x)

    def transform(self, x: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
        return (x > 0.5).to(x.dtype)


@pytest.fixture
def plugins() -> Any:
    facts = dict(norms={Norm.LINF}, targeted=False, kind=AttackKind.FIXED_EPS, requires={Capability.GRADIENTS})
    registry.register("evasion", "toy-sign", **facts)(ToySign)
    registry.register("evasion", "toy-noop", norms={Norm.LINF}, targeted=False, kind=AttackKind.FIXED_EPS)(ToyNoop)
    registry.register("defence", "toy-recorder", differentiable=False, piecewise_constant=True)(ToyRecorder)
    SEEN.clear()
    yield
    for fam, name in (("evasion", "toy-sign"), ("evasion", "toy-noop"), ("defence", "toy-recorder")):
        registry.unregister(fam, name)


def _rows(x: torch.Tensor) -> set[bytes]:
    return {r.numpy().tobytes() for r in x}


def test_hidden_split_is_stratified_disjoint_and_seeded() -> None:
    data = digits()
    s = hidden_split(data, fraction=0.3, seed=3)
    assert len(s.public) + len(s.hidden) == len(data)
    assert not _rows(s.public.x) & _rows(s.hidden.x) or len(_rows(data.x)) < len(data)
    for c in range(10):  # each class's share matches the fraction to the nearest sample
        n = int((data.y == c).sum())
        assert int((s.hidden.y == c).sum()) == round(0.3 * n)
    assert s.hidden_digest == digest_arrays(s.hidden.x, s.hidden.y)
    assert hidden_split(data, fraction=0.3, seed=3).hidden_digest == s.hidden_digest
    assert hidden_split(data, fraction=0.3, seed=4).hidden_digest != s.hidden_digest
    with pytest.raises(ConfigError, match="hidden_fraction"):
        hidden_split(data, fraction=1.0, seed=0)


def test_tiny_contest_ranks_defences_by_delta_and_never_shows_hidden_samples(
        plugins: Any, digits_target: Any, tmp_path: Any) -> None:
    rules = ContestRules(dataset="digits", seed=1, samples=40, attacks=["toy-sign", "toy-noop"],
                         defences=[None, "toy-recorder"])
    result = run_contest(digits_target, rules, data=digits())
    split = hidden_split(digits(), fraction=rules.hidden_fraction, seed=1)
    # the defence was fitted once, on exactly the public part: no hidden sample reached it
    assert len(SEEN) == 1
    assert torch.equal(SEEN[0], split.public.x)
    assert not _rows(SEEN[0]) & _rows(split.hidden.x) - _rows(split.public.x)
    assert result.hidden_digest == split.hidden_digest and result.hidden_samples == len(split.hidden)
    assert result.eps == CONTEST_EPS
    rows = {r.defence: r for r in result.rows}
    assert set(rows) == {"none", "toy-recorder"}
    for r in result.rows:
        # the no-op attack changes inputs only by the 8-bit rounding; the ensemble is the worst case
        assert r.robust_accuracy["toy-noop"] <= r.clean_accuracy
        assert r.ensemble_robust_accuracy <= min(r.robust_accuracy.values()) + 1e-12
        assert r.safair_delta == pytest.approx(r.clean_accuracy - r.ensemble_robust_accuracy)
        assert not r.over_time
    assert [r.rank for r in result.rows] == [1, 2]
    assert result.rows[0].safair_delta <= result.rows[1].safair_delta
    assert rows["none"].robust_accuracy["toy-noop"] == pytest.approx(rows["none"].clean_accuracy)
    # the hand-written FGSM submission scores as aisec's own FGSM does on the same hidden samples
    x, y = split.hidden.x[:40], split.hidden.y[:40].long()
    ref = run_attack("fgsm", digits_target, x, y, {"eps": CONTEST_EPS}, quantize=True, seed=1)
    assert rows["none"].robust_accuracy["toy-sign"] == pytest.approx(float(ref.robust.float().mean()))
    assert rows["none"].clean_accuracy == pytest.approx(float(ref.clean_correct.float().mean()))
    # the evidence holds the digest, never the hidden samples
    text = result.write(tmp_path / "contest.json").read_text()
    assert split.hidden_digest in text and '"x"' not in text


def test_contest_block_in_a_campaign_and_unknown_submissions(plugins: Any, digits_target: Any) -> None:
    spec = Campaign.parse({"name": "c", "models": ["digits-cnn"], "datasets": ["digits"],
                           "checks": {"robustness": {"attacks": ["fgsm"], "samples": 8}},
                           "contest": {"dataset": "digits", "seed": 2, "attacks": ["toy-sign"]}})
    assert isinstance(spec.contest, ContestRules) and spec.contest.seed == 2
    assert spec.threat_models[0].eps == CONTEST_EPS
    with pytest.raises(ConfigError, match="unknown attack submission 'nope'"):
        run_contest(digits_target, ContestRules(attacks=["nope"]), data=digits())
    with pytest.raises(ConfigError, match="unknown defence 'nope'"):
        run_contest(digits_target, ContestRules(attacks=["toy-sign"], defences=["nope"]), data=digits())
    with pytest.raises(ConfigError, match="at least one attack"):
        run_contest(digits_target, ContestRules(), data=digits())


def test_a_campaign_with_a_contest_block_writes_results_the_leaderboard_shows(
        plugins: Any, tmp_path: Any, aisec_cache: str) -> None:
    from aisec.campaigns.campaign import run_campaign
    from aisec.campaigns.leaderboard import build_leaderboard, write_leaderboard

    spec = Campaign.parse({"name": "tc", "models": ["digits-cnn"], "datasets": ["digits"],
                           "checks": {"robustness": {"attacks": ["fgsm"], "samples": 8, "clever": {"enabled": False}}},
                           "contest": {"dataset": "digits", "seed": 5, "samples": 16, "attacks": ["toy-sign"],
                                       "defences": [None, "toy-recorder"]}})
    out = run_campaign(spec, base_dir=tmp_path)
    board = build_leaderboard(tmp_path / "tc")
    (result,) = board.submissions.values()
    assert result["hidden_digest"] == hidden_split(digits(), fraction=0.3, seed=5).hidden_digest
    assert [r["rank"] for r in result["rows"]] == [1, 2] and len(SEEN) == 1
    assert out.contest == [tmp_path / "tc" / "contest" / "digits-cnn.json"]
    assert board.to_json()["submissions"]["digits-cnn"]["ranked_by"] == "safair_delta"
    write_leaderboard(board, tmp_path / "board")
    html = (tmp_path / "board" / "leaderboard.html").read_text()
    assert result["hidden_digest"] in html and "toy-recorder" in html and "toy-sign" in html


def test_a_defence_over_the_time_limit_is_marked_and_ranked_last(plugins: Any, digits_target: Any) -> None:
    rules = ContestRules(samples=8, attacks=["toy-noop"], defences=["toy-recorder", None])
    result = run_contest(digits_target, rules, data=digits(), seconds_per_1000_samples=1e-9)
    assert all(r.over_time for r in result.rows) and result.time_limit_seconds == pytest.approx(8e-12)
    ok = run_contest(digits_target, rules, data=digits())
    assert not any(r.over_time for r in ok.rows) and ok.time_limit_seconds == pytest.approx(4 * 3600 * 8 / 1000)
