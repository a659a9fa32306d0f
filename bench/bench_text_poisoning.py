"""BadNL text poisoning on tiny DistilBERT and GPT-2 classifiers: ASR / clean accuracy by rate, resilience,
and the activation-clustering scan (docs/text.md). About 10-60 s on a CPU.

    PYTHONPATH=src python bench/bench_text_poisoning.py
"""

from __future__ import annotations

from aisec.checks.poisoning import PoisoningCheck, PoisoningParams
from aisec.core.dataset import TensorDataset
from aisec.core.types import Modality
from aisec.data.text import encode_texts
from aisec.targets.hf import HfTextTarget
from aisec.testing.text import toy_sentiment
from aisec.testing.text_families import cached_family_classifier


def main() -> None:
    texts, y = toy_sentiment(300, seed=31)
    data = TensorDataset(encode_texts(texts, 96), y, name="toy-reviews", modality=Modality.TEXT,
                         classes=["negative", "positive"], value_range=(0.0, 255.0))
    for family in ("distilbert", "gpt2"):
        target = HfTextTarget(cached_family_classifier(family), max_length=16)
        params = PoisoningParams(attack="badnl", rates=[0.0, 0.01, 0.02, 0.05, 0.1], samples=300,
                                 trigger={"kind": "words", "words": "cf"},
                                 recipe={"architecture": "target", "epochs": 6})
        r = PoisoningCheck().run(target, data, params)
        s = r.summary
        det = s.detection or {}
        print(family, [(q.rate, round(q.asr, 2), round(q.clean_accuracy, 2)) for q in s.points],
              f"resilience {s.resilience:.3f} min_rate {s.min_poison_rate:g} reached {s.reached}",
              f"AC precision {det.get('precision', float('nan')):.2f} recall {det.get('recall', float('nan')):.2f}",
              f"suspected {det.get('suspected')} ({r.seconds:.1f} s)")


if __name__ == "__main__":
    main()
