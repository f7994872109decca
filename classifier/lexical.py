"""Character n-gram TF-IDF with one linear SVM per head: the baseline, a component of the model, the reasons.

Fitting uses scikit-learn (``TfidfVectorizer`` + ``LinearSVC``); prediction re-implements the vectoriser's
char-n-gram TF-IDF in a few lines (tested equal to scikit-learn's) so the model folder holds plain arrays (no pickle)
and a text's reasons can be read off directly: the contribution of an n-gram to a class is its TF-IDF value times
the class weight; contributions are spread over the characters and the strongest runs of characters are the phrases.
"""
from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_WS = re.compile(r"\s\s+")
_ONLY_SYMBOLS = re.compile(r"^[\W\d_a-zA-Z]+$")
_PUNCT = re.compile(r"[\W_]")
UNSEEN_MARGIN = -5.0  # decision value of a class absent from the training data


def char_ngrams(text: str, lo: int, hi: int) -> list[tuple[str, int]]:
    """(n-gram, start) pairs exactly as scikit-learn's ``analyzer='char'`` (lower-cased, runs of whitespace -> one)."""
    text = _WS.sub(" ", text.lower())
    out = []
    n_chars = len(text)
    for n in range(lo, hi + 1):
        for i in range(n_chars - n + 1):
            out.append((text[i:i + n], i))
    return out


WORD_PREFIX = "\x01"  # vocabulary keys of word n-grams (never collide with character n-grams)
_ONLY_PUNCT = re.compile(r"^[\W_]+$")


def word_ngrams(text: str, lo: int, hi: int) -> list[str]:
    """Word ``lo``–``hi``-grams of ``text`` (jieba, lower-cased; punctuation tokens dropped) as vocabulary keys."""
    jieba = _jieba()
    if not jieba:
        raise RuntimeError("word features need jieba")
    words = [w for w in jieba.lcut(_WS.sub(" ", text.lower())) if w.strip() and not _ONLY_PUNCT.match(w)]
    return [WORD_PREFIX + " ".join(words[i:i + n]) for n in range(lo, hi + 1) for i in range(len(words) - n + 1)]


@dataclass(frozen=True)
class Features:
    """One text's TF-IDF row (``idx``, ``val``) and its candidate reason n-grams (feature, start, length, value)."""

    original: str
    idx: np.ndarray
    val: np.ndarray
    occ_feature: np.ndarray
    occ_start: np.ndarray
    occ_len: np.ndarray
    occ_value: np.ndarray
    cache: dict = field(default_factory=dict, compare=False, repr=False)

    def words(self) -> np.ndarray | None:
        if "words" not in self.cache:
            self.cache["words"] = word_spans(self.original)
        return self.cache["words"]


_JIEBA = None


def _jieba():
    """The jieba module, initialised once; ``False`` when it cannot be used."""
    global _JIEBA
    if _JIEBA is None:
        try:
            import logging

            import jieba

            jieba.setLogLevel(logging.WARNING)
            jieba.initialize()
            _JIEBA = jieba
        except Exception:  # noqa: BLE001 - any failure: fall back to n-gram phrases
            _JIEBA = False
    return _JIEBA


def word_spans(text: str) -> np.ndarray | None:
    """(start, end) of the words of two or more characters in ``text`` (jieba), ``None`` without jieba.

    Words never contain punctuation; spans index the whitespace-normalised text the n-gram starts refer to.
    """
    if _jieba() is False:
        return None
    spans = [(s, e) for w, s, e in _JIEBA.tokenize(text, HMM=False)
             if e - s >= 2 and not _PUNCT.search(w) and not _ONLY_SYMBOLS.match(w)]
    return np.array(spans, dtype=np.int64).reshape(-1, 2)


class LexicalModel:
    """TF-IDF (sublinear tf, l2-normalised) over character ``ngram_range`` grams, linear SVM per head.

    ``word_ngram`` (lo, hi) with hi > 0 adds jieba word n-grams to the same TF-IDF row (one vocabulary, one norm).
    """

    def __init__(self, ngram_range: tuple[int, int] = (1, 2), min_df: int = 2, max_features: int | None = None,
                 C: float = 1.0, word_ngram: tuple[int, int] = (0, 0)) -> None:
        self.ngram_range = (int(ngram_range[0]), int(ngram_range[1]))
        self.word_ngram = (int(word_ngram[0]), int(word_ngram[1]))
        self.min_df = int(min_df)
        self.max_features = max_features
        self.C = float(C)
        self.vocab: dict[str, int] = {}
        self.idf = np.zeros(0, dtype=np.float32)
        self.coef: dict[str, np.ndarray] = {}       # head -> (n_features, n_classes), float16 once loaded
        self.intercept: dict[str, np.ndarray] = {}  # head -> (n_classes,)

    # -- fitting ----------------------------------------------------------------------------------------------
    def fit(self, texts: list[str], targets: dict[str, np.ndarray], sizes: dict[str, int], *,
            sample_weight: np.ndarray | None = None, seed: int = 0) -> LexicalModel:
        """``targets[head]`` holds class indices (-1 = unknown, skipped); ``sizes[head]`` the number of classes."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.svm import LinearSVC

        analyzer = "char"
        if self.word_ngram[1] > 0:  # character n-grams exactly as analyzer="char", plus word n-grams
            def analyzer(text: str) -> list[str]:
                return [g for g, _ in char_ngrams(text, *self.ngram_range)] + word_ngrams(text, *self.word_ngram)
        vec = TfidfVectorizer(analyzer=analyzer, sublinear_tf=True, min_df=self.min_df,
                              max_features=self.max_features, dtype=np.float32,
                              **({"ngram_range": self.ngram_range} if analyzer == "char" else {}))
        X = vec.fit_transform(texts)
        self.vocab = {k: int(v) for k, v in vec.vocabulary_.items()}
        self.idf = vec.idf_.astype(np.float32)
        for head, y in targets.items():
            y = np.asarray(y)
            keep = np.flatnonzero(y >= 0)
            coef = np.zeros((len(self.vocab), sizes[head]), dtype=np.float32)
            intercept = np.full(sizes[head], UNSEEN_MARGIN, dtype=np.float32)
            classes = np.unique(y[keep])
            if len(classes) >= 2:
                svm = LinearSVC(C=self.C, random_state=seed).fit(
                    X[keep], y[keep], sample_weight=None if sample_weight is None else sample_weight[keep])
                w = svm.coef_ if len(classes) > 2 else np.vstack([-svm.coef_, svm.coef_])
                b = svm.intercept_ if len(classes) > 2 else np.array([-svm.intercept_[0], svm.intercept_[0]])
                coef[:, classes] = w.T
                intercept[classes] = b
            elif len(classes) == 1:
                intercept[classes] = 1.0
            self.coef[head] = coef
            self.intercept[head] = intercept
        return self

    # -- features ---------------------------------------------------------------------------------------------
    def features(self, text: str) -> Features:
        """The sparse TF-IDF row of ``text`` and the n-gram occurrences that can serve as reasons."""
        counts: Counter[int] = Counter()
        occ_feature, occ_start, occ_len = [], [], []
        original = _WS.sub(" ", text)
        for gram, start in char_ngrams(text, *self.ngram_range):
            j = self.vocab.get(gram)
            if j is None:
                continue
            counts[j] += 1
            if len(gram) >= 2 and not _PUNCT.search(gram) and not _ONLY_SYMBOLS.match(gram):
                occ_feature.append(j)
                occ_start.append(start)
                occ_len.append(len(gram))
        if self.word_ngram[1] > 0:  # word n-grams count in the row; reasons come from the character n-grams
            for key in word_ngrams(text, *self.word_ngram):
                j = self.vocab.get(key)
                if j is not None:
                    counts[j] += 1
        if not counts:
            return Features(original, np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64),
                            np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
        idx = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        tf = np.fromiter((1.0 + math.log(c) for c in counts.values()), dtype=np.float32, count=len(counts))
        val = tf * self.idf[idx]
        val /= max(float(np.linalg.norm(val)), 1e-12)
        value_of = dict(zip(idx.tolist(), val.tolist()))
        occ_feature_a = np.array(occ_feature, dtype=np.int64)
        occ_value = np.array([value_of[j] for j in occ_feature], dtype=np.float32)
        return Features(original, idx, val, occ_feature_a, np.array(occ_start, dtype=np.int64),
                        np.array(occ_len, dtype=np.int64), occ_value)

    def scores(self, texts: list[str] | None = None, features: list[Features] | None = None) -> dict[str, np.ndarray]:
        """Decision values per head: ``{head: (n, n_classes)}`` (pass ``features`` already computed to reuse them)."""
        feats = features if features is not None else [self.features(t) for t in texts or []]
        out = {h: np.zeros((len(feats), c.shape[1]), dtype=np.float32) for h, c in self.coef.items()}
        for i, f in enumerate(feats):
            for h, coef in self.coef.items():
                out[h][i] = (f.val @ coef[f.idx].astype(np.float32) if len(f.idx) else 0.0) + self.intercept[h]
        return out

    # -- reasons ----------------------------------------------------------------------------------------------
    def phrases(self, text: str, head: str, cls: int, k: int = 3, max_len: int = 6,
                features: Features | None = None) -> list[str]:
        """The ≤ ``k`` phrases of ``text`` that most support class ``cls`` of ``head`` (strongest first).

        An n-gram occurrence (two or more characters, no punctuation) supports the class by its TF-IDF value times
        the class weight; the strongest distinct n-grams are merged where they overlap into phrases.
        """
        f = features if features is not None else self.features(text)
        if not len(f.occ_feature):
            return []
        contrib = f.occ_value * self.coef[head][f.occ_feature, cls].astype(np.float32)
        words = f.words()
        if words is not None:
            return self._word_phrases(f, contrib, words, k)
        return self._ngram_phrases(f, contrib, k, max_len)

    @staticmethod
    def _word_phrases(f: Features, contrib: np.ndarray, words: np.ndarray, k: int) -> list[str]:
        """Words (jieba) scored by the support of the n-grams inside them."""
        if not len(words):
            return []
        w = np.searchsorted(words[:, 0], f.occ_start, side="right") - 1
        inside = (w >= 0) & (f.occ_start + f.occ_len <= words[np.clip(w, 0, None), 1])
        score = np.zeros(len(words), dtype=np.float64)
        np.add.at(score, w[inside], contrib[inside])
        out: list[str] = []
        for i in np.argsort(-score, kind="stable"):
            if score[i] <= 0 or len(out) >= k:
                break
            word = f.original[int(words[i, 0]):int(words[i, 1])]
            if word not in out:
                out.append(word)
        return out

    @staticmethod
    def _ngram_phrases(f: Features, contrib: np.ndarray, k: int, max_len: int) -> list[str]:
        """Without a word segmenter: the strongest distinct n-grams, merged where they overlap."""
        order = np.argsort(-contrib, kind="stable")
        top: list[tuple[float, int, int]] = []
        seen: set[str] = set()
        for o in order[: 8 * k]:
            c = float(contrib[o])
            if c <= 0 or len(top) >= 2 * k:
                break
            s, e = int(f.occ_start[o]), int(f.occ_start[o] + f.occ_len[o])
            gram = f.original[s:e]
            if gram not in seen:
                seen.add(gram)
                top.append((c, s, e))
        spans: list[list[float]] = []
        for c, s, e in sorted(top, key=lambda t: t[1]):
            if spans and s < spans[-1][2] and e - spans[-1][1] <= max_len:
                spans[-1][0] += c
                spans[-1][2] = max(spans[-1][2], e)
            else:
                spans.append([c, s, e])
        out: list[str] = []
        for _, s, e in sorted(spans, reverse=True):
            phrase = f.original[int(s):int(e)].strip(" ，。,.!?！？、；;：:（）()“”\"'")
            if len(phrase) >= 2 and phrase not in out:
                out.append(phrase)
            if len(out) >= k:
                break
        return out

    # -- persistence ------------------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        vocab = sorted(self.vocab, key=self.vocab.get)
        (directory / "lexical_vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        arrays = {"idf": self.idf}
        for h in self.coef:
            arrays[f"coef__{h}"] = self.coef[h].astype(np.float16)
            arrays[f"intercept__{h}"] = self.intercept[h]
        np.savez(directory / "lexical.npz", **arrays)  # uncompressed: loads in milliseconds
        (directory / "lexical.json").write_text(json.dumps(
            {"ngram_range": self.ngram_range, "word_ngram": self.word_ngram, "min_df": self.min_df,
             "max_features": self.max_features, "C": self.C, "heads": list(self.coef)}), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> LexicalModel:
        directory = Path(directory)
        meta = json.loads((directory / "lexical.json").read_text(encoding="utf-8"))
        model = cls(tuple(meta["ngram_range"]), meta["min_df"], meta["max_features"], meta["C"],
                    tuple(meta.get("word_ngram", (0, 0))))
        vocab = json.loads((directory / "lexical_vocab.json").read_text(encoding="utf-8"))
        model.vocab = {g: i for i, g in enumerate(vocab)}
        with np.load(directory / "lexical.npz") as z:
            model.idf = z["idf"].astype(np.float32)
            for h in meta["heads"]:
                model.coef[h] = z[f"coef__{h}"]  # float16: half the memory, rows cast when used
                model.intercept[h] = z[f"intercept__{h}"].astype(np.float32)
        return model
