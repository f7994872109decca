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


class LexicalModel:
    """TF-IDF (sublinear tf, l2-normalised) over character ``ngram_range`` grams, linear SVM per head."""

    def __init__(self, ngram_range: tuple[int, int] = (1, 2), min_df: int = 2, max_features: int | None = None,
                 C: float = 1.0) -> None:
        self.ngram_range = (int(ngram_range[0]), int(ngram_range[1]))
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

        vec = TfidfVectorizer(analyzer="char", ngram_range=self.ngram_range, sublinear_tf=True, min_df=self.min_df,
                              max_features=self.max_features, dtype=np.float32)
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
    def features(self, text: str) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, int]]]:
        """Sparse TF-IDF row (indices, values) and occurrences ``(feature, start, length)``."""
        counts: Counter[int] = Counter()
        occ = []
        for gram, start in char_ngrams(text, *self.ngram_range):
            j = self.vocab.get(gram)
            if j is not None:
                counts[j] += 1
                occ.append((j, start, len(gram)))
        if not counts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32), occ
        idx = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        tf = np.fromiter((1.0 + math.log(c) for c in counts.values()), dtype=np.float32, count=len(counts))
        val = tf * self.idf[idx]
        val /= max(float(np.linalg.norm(val)), 1e-12)
        return idx, val, occ

    def scores(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Decision values per head: ``{head: (n, n_classes)}``."""
        out = {h: np.zeros((len(texts), c.shape[1]), dtype=np.float32) for h, c in self.coef.items()}
        for i, text in enumerate(texts):
            idx, val, _ = self.features(text)
            for h, coef in self.coef.items():
                out[h][i] = (val @ coef[idx].astype(np.float32) if len(idx) else 0.0) + self.intercept[h]
        return out

    # -- reasons ----------------------------------------------------------------------------------------------
    def phrases(self, text: str, head: str, cls: int, k: int = 3, max_len: int = 6,
                features: tuple | None = None) -> list[str]:
        """The ≤ ``k`` phrases of ``text`` that most support class ``cls`` of ``head`` (strongest first)."""
        idx, val, occ = features or self.features(text)
        if not len(idx):
            return []
        contrib = dict(zip(idx.tolist(), (val * self.coef[head][idx, cls].astype(np.float32)).tolist()))
        original = _WS.sub(" ", text)
        # the strongest supporting n-grams (two or more characters: single characters carry little meaning) ...
        best: dict[str, tuple[float, int, int]] = {}
        for j, start, n in occ:
            c = contrib.get(j, 0.0)
            gram = original[start:start + n]
            if (n >= 2 and c > 0 and not _PUNCT.search(gram) and not _ONLY_SYMBOLS.match(gram)
                    and (gram not in best or best[gram][0] < c)):
                best[gram] = (c, start, start + n)
        top = sorted(best.values(), reverse=True)[: 2 * k]
        # ... merged where they overlap into phrases, ranked by their summed support
        spans: list[list[float]] = []
        for c, s, e in sorted(top, key=lambda t: t[1]):
            if spans and s < spans[-1][2] and e - spans[-1][1] <= max_len:
                spans[-1][0] += c
                spans[-1][2] = max(spans[-1][2], e)
            else:
                spans.append([c, s, e])
        out: list[str] = []
        for _, s, e in sorted(spans, reverse=True):
            phrase = original[int(s):int(e)].strip(" ，。,.!?！？、；;：:（）()“”\"'")
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
            {"ngram_range": self.ngram_range, "min_df": self.min_df, "max_features": self.max_features, "C": self.C,
             "heads": list(self.coef)}), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> LexicalModel:
        directory = Path(directory)
        meta = json.loads((directory / "lexical.json").read_text(encoding="utf-8"))
        model = cls(tuple(meta["ngram_range"]), meta["min_df"], meta["max_features"], meta["C"])
        vocab = json.loads((directory / "lexical_vocab.json").read_text(encoding="utf-8"))
        model.vocab = {g: i for i, g in enumerate(vocab)}
        with np.load(directory / "lexical.npz") as z:
            model.idf = z["idf"].astype(np.float32)
            for h in meta["heads"]:
                model.coef[h] = z[f"coef__{h}"]  # float16: half the memory, rows cast when used
                model.intercept[h] = z[f"intercept__{h}"].astype(np.float32)
        return model
