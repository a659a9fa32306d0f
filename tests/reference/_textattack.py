"""TextAttack 0.3.11, offline, for the cross-check and benchmark of aisec's synonym attack (tests/bench only).

``import textattack`` imports every recipe's dependencies at import time, some of them heavy or not
installable offline (flair, datasets, language_tool_python, jieba, pinyin, OpenHowNet, bert_score,
langdetect, pandas). :func:`load_textattack` puts a *placeholder* module in ``sys.modules`` for each
one that is not installed, for the duration of ``import textattack`` only: importing it works (so does
subclassing one of its classes, as ``strings.py`` does with ``flair.data.Tokenizer``), but calling
anything from it raises, so a placeholder can never stand in silently for something a recipe uses.
The PWWS-style recipe compared here (WordSwapWordNet, RepeatModification, StopwordModification,
MaxWordsPerturbed, GreedyWordSwapWIR, UntargetedClassification) uses none of them: only NLTK's
WordNet, torch and numpy.

NLTK's WordNet is read from Debian's ``wordnet-base`` (``/usr/share/wordnet``, the same WordNet 3.0
files aisec reads) through a temporary ``nltk_data/corpora/wordnet`` folder (copies: NLTK refuses
links), plus the ``lexnames`` file NLTK's reader needs, which Debian does not ship (its fixed 45 lines
are written here); Debian has no ``index.sense`` either, which NLTK reads only to map another WordNet
version onto 3.0's. NLTK's ``download`` is replaced by a function that refuses (WordSwapWordNet calls
``nltk.download("omw-1.4")`` in its constructor; the multilingual wordnet is not needed for English),
so nothing touches the network.
NLTK's stop words are a download too: the compared recipe gives StopwordModification :func:`stopwords`
(aisec's list) explicitly, and the same list is written as NLTK's ``english`` stop words for the default
StopwordModification() that TextAttack's augmentation module builds at import time.
"""

from __future__ import annotations

import atexit
import importlib.machinery
import importlib.util
import shutil
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

#: Modules ``import textattack`` needs at import time that the cross-checked recipe never calls.
PLACEHOLDERS = ("flair", "flair.data", "flair.models", "flair.embeddings", "datasets", "language_tool_python",
                "jieba", "pinyin", "OpenHowNet", "bert_score", "pandas", "editdistance", "Levenshtein",
                "langdetect")
#: The pip installs (all ``--no-deps``) that make TextAttack importable with the placeholders above.
PIP = ("textattack==0.3.11", "nltk==3.10.4", "lru-dict==1.4.1", "terminaltables==3.1.10", "word2number==1.1",
       "num2words==0.5.14", "lemminflect==0.2.3", "more-itertools==11.2.1")
WORDNET = Path("/usr/share/wordnet")
# WordNet 3.0's lexnames (lexicographer file number, name, syntactic category): the reader parses it
# at start-up to name each synset's lexicographer file.
_LEXNAMES = (
    "adj.all 3", "adj.pert 3", "adv.all 4", "noun.Tops 1", "noun.act 1", "noun.animal 1", "noun.artifact 1",
    "noun.attribute 1", "noun.body 1", "noun.cognition 1", "noun.communication 1", "noun.event 1",
    "noun.feeling 1", "noun.food 1", "noun.group 1", "noun.location 1", "noun.motive 1", "noun.object 1",
    "noun.person 1", "noun.phenomenon 1", "noun.plant 1", "noun.possession 1", "noun.process 1",
    "noun.quantity 1", "noun.relation 1", "noun.shape 1", "noun.state 1", "noun.substance 1", "noun.time 1",
    "verb.body 2", "verb.change 2", "verb.cognition 2", "verb.communication 2", "verb.competition 2",
    "verb.consumption 2", "verb.contact 2", "verb.creation 2", "verb.emotion 2", "verb.motion 2",
    "verb.perception 2", "verb.possession 2", "verb.social 2", "verb.stative 2", "verb.weather 2", "adj.ppl 3",
)


class _Missing(type):
    """Metaclass of placeholder classes: any attribute is another placeholder; calling one raises."""

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Missing(f"{cls.__name__}.{name}", (), {"__module__": cls.__module__})

    def __call__(cls, *a: Any, **k: Any) -> Any:
        raise RuntimeError(f"{cls.__module__}.{cls.__name__} is a placeholder (its package is not installed): "
                           "the TextAttack component that called it cannot be used in this cross-check")


class _PlaceholderModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Missing(name, (), {"__module__": self.__name__})


def missing_reason() -> str | None:
    """Why TextAttack cannot run here (None when it can): an uninstalled package or no WordNet files."""
    for mod in ("textattack", "nltk", "lru", "terminaltables", "word2number", "num2words", "lemminflect",
                "more_itertools"):
        if importlib.util.find_spec(mod) is None:
            return f"needs {mod}: pip install --no-deps " + " ".join(PIP)
    if not (WORDNET / "index.noun").is_file():
        return "needs wordnet-base (apt-get install wordnet-base)"
    return None


def _nltk_wordnet_dir() -> Path:
    root = Path(tempfile.mkdtemp(prefix="aisec-nltk-data-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    d = root / "corpora" / "wordnet"
    d.mkdir(parents=True)
    for f in WORDNET.iterdir():  # NLTK refuses symbolic and hard links (out of its root): 28 MB of copies
        shutil.copyfile(f, d / f.name)
    if not (d / "lexnames").exists():
        (d / "lexnames").write_text("".join(f"{i:02d}\t{ln.split()[0]}\t{ln.split()[1]}\n"
                                            for i, ln in enumerate(_LEXNAMES)), encoding="utf-8")
    # TextAttack's augmentation module builds a default StopwordModification() at import time, which reads
    # NLTK's (downloaded) stop words: give it aisec's list, the one the cross-check passes explicitly.
    sw = root / "corpora" / "stopwords"
    sw.mkdir(parents=True)
    (sw / "english").write_text("\n".join(sorted(stopwords())) + "\n", encoding="utf-8")
    return root


def _refuse_download(*a: Any, **k: Any) -> bool:
    """Stands in for ``nltk.download``: offline, nothing is fetched (False = not downloaded)."""
    return False


def _no_map(self: Any, version: str = "wordnet") -> None:
    if self.get_version() != "3.0":
        raise RuntimeError(f"expected WordNet 3.0, found {self.get_version()}")


def load_textattack() -> Any:
    """Import and return ``textattack`` offline (placeholders for absent import-time-only deps, WordNet from
    Debian's files). Raises ImportError (with :func:`missing_reason`) when it cannot run here."""
    why = missing_reason()
    if why is not None:
        raise ImportError(why)
    if "textattack" in sys.modules:
        return sys.modules["textattack"]
    placed: list[str] = []
    for name in PLACEHOLDERS:
        if name in sys.modules:
            continue
        parent = name.split(".")[0]
        if parent != name and not isinstance(sys.modules.get(parent), _PlaceholderModule):
            continue  # a real parent package brings its own submodules
        if parent == name and importlib.util.find_spec(name) is not None:
            continue  # installed: the real module is used
        mod = _PlaceholderModule(name)
        mod.__spec__ = importlib.machinery.ModuleSpec(name, None)  # find_spec() callers (torch) need one
        sys.modules[name] = mod
        placed.append(name)
        if parent != name:
            setattr(sys.modules[parent], name.split(".")[1], mod)
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    nltk.download = _refuse_download
    # NLTK maps the loaded WordNet's synsets to WordNet 3.0's (for the multilingual OMW data) by reading
    # index.sense, which Debian does not ship; the loaded WordNet *is* 3.0, so that map is the identity
    # (None), and it is used only for OMW languages, never for English synonyms.
    WordNetCorpusReader.map_wn = _no_map
    nltk.data.path.insert(0, str(_nltk_wordnet_dir()))
    try:
        import textattack
    finally:
        # textattack's modules keep their references; out of sys.modules, the placeholders cannot reach
        # later imports in this process (another test's `importorskip("pandas")` must still skip)
        for name in placed:
            sys.modules.pop(name, None)
    return textattack


def stopwords() -> set[str]:
    """aisec's stop words (``aisec.attacks.text.base.stop_words``), with capitalised forms.

    TextAttack's StopwordModification compares words case-sensitively; aisec lower-cases first, so
    the capitalised variants are added to make both skip the same words.
    """
    from aisec.attacks.text.base import stop_words

    base = stop_words()
    return set(base) | {w.capitalize() for w in base} | {w.upper() for w in base}


def pwws_like(textattack: Any, model_wrapper: Any, *, eps: float, wir: str = "delete") -> Any:
    """TextAttack's PWWS recipe built from its components, with aisec's stop words and word budget.

    WordSwapWordNet + RepeatModification + StopwordModification(aisec's list) + MaxWordsPerturbed
    (max_percent=eps: ``ceil(eps × words)``, aisec's budget) + GreedyWordSwapWIR(``wir``) +
    UntargetedClassification.
    """
    from textattack.constraints.overlap import MaxWordsPerturbed
    from textattack.constraints.pre_transformation import RepeatModification, StopwordModification
    from textattack.goal_functions import UntargetedClassification
    from textattack.search_methods import GreedyWordSwapWIR
    from textattack.transformations import WordSwapWordNet

    goal = UntargetedClassification(model_wrapper, use_cache=True)
    constraints = [RepeatModification(), StopwordModification(stopwords=stopwords()),
                   MaxWordsPerturbed(max_percent=eps)]
    return textattack.Attack(goal, constraints, WordSwapWordNet(), GreedyWordSwapWIR(wir_method=wir))


def model_wrapper(textattack: Any, target: Any) -> Any:
    """A TextAttack ModelWrapper over an aisec text target: ``target.predict(target.encode(texts))`` probabilities."""
    import torch

    class AisecTargetWrapper(textattack.models.wrappers.ModelWrapper):  # type: ignore[misc, name-defined]
        def __init__(self, target: Any, batch_size: int = 64) -> None:
            self.model = target
            self.batch_size = batch_size
            self.calls = 0  # texts scored (TextAttack's own query count is per attack)

        def __call__(self, text_input_list: list[str]) -> Any:
            out = []
            with torch.no_grad():
                for i in range(0, len(text_input_list), self.batch_size):
                    chunk = list(text_input_list[i : i + self.batch_size])
                    out.append(self.model.predict(self.model.encode(chunk).long()).float().cpu())
                    self.calls += len(chunk)
            return torch.cat(out).numpy()

    return AisecTargetWrapper(target)
