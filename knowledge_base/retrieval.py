"""Retrieval over a :class:`~knowledge_base.index.KBIndex`: candidates from FAISS and BM25, scored by features.

Three modes, compared side by side by ``python -m knowledge_base.evaluate``:

* ``dense``   - embeddings only: best phrasing cosine + ``centroid_weight`` × cosine with the centroid of the entry's
  phrasings + ``answer_weight`` × cosine with its answer (``passage:``);
* ``lexical`` - BM25 only, saturated into [0, 1): ``bm25 / (bm25 + lexical_saturation)``;
* ``hybrid``  - the dense score + ``lexical_weight`` × the saturated BM25. Candidates are the union of the dense and the
  lexical top lists and every feature is computed exactly for every candidate (no rank fusion), so the fused score
  keeps one scale and one calibrated threshold decides answer vs decline.

In ``hybrid`` and ``lexical`` mode a near-verbatim question (character-bigram Dice ≥ ``exact_min_dice`` with one of
an entry's phrasings) adds ``exact_weight``: a citizen who types a known question gets that entry, even where e5
ranks a sibling entry a hair higher (居住证怎么办理 vs 北京居住证怎么办理？). No evaluation question is that close
to a phrasing (they are paraphrases by design), so this rule is not tuned there and changes none of its numbers.

The answer/decline decision uses a confidence in [0, 1]: a logistic calibration (fitted on the evaluation's dev split)
of the best score plus ``margin_weight`` × its lead over the runner-up. Weights and threshold live in
``knowledge_base/calibration.json`` written by the evaluation (``--write-calibration``).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from knowledge_base.index import IndexedEntry, KBIndex
from knowledge_base.text import char_bigrams, dice, normalise, tokens

Mode = Literal["dense", "lexical", "hybrid"]
MODES: tuple[Mode, ...] = ("hybrid", "dense", "lexical")
CALIBRATION_FILE = Path(__file__).resolve().parent / "calibration.json"


class QueryEmbedder(Protocol):
    def encode_queries(self, texts: list[str]) -> np.ndarray: ...


@dataclass
class RetrievalConfig:
    mode: Mode = "hybrid"
    candidates: int = 30
    centroid_weight: float = 0.5
    answer_weight: float = 0.5
    lexical_weight: float = 0.06
    lexical_saturation: float = 16.0
    margin_weight: float = 0.0
    exact_weight: float = 0.1
    exact_min_dice: float = 0.8
    calib_slope: float = 40.0  # confidence = sigmoid(calib_slope * (raw - calib_offset))
    calib_offset: float = 1.8
    threshold: float = 0.5  # answer when confidence >= threshold
    suggest_min: float = 0.1  # suggestions: other candidates whose own confidence reaches this
    suggestions: int = 3
    extra: dict = field(default_factory=dict)

    def raw_score(self, dense: np.ndarray, centroid: np.ndarray, answer: np.ndarray, bm25: np.ndarray,
                  exact: np.ndarray | None = None) -> np.ndarray:
        lex = bm25 / (bm25 + self.lexical_saturation)
        surface = 0.0 if exact is None else self.exact_weight * (exact >= self.exact_min_dice)
        if self.mode == "lexical":
            return lex + surface
        score = dense + self.centroid_weight * centroid + self.answer_weight * answer
        if self.mode == "hybrid":
            score = score + self.lexical_weight * lex + surface
        return score

    def confidence(self, raw: float, runner_up: float | None = None) -> float:
        margin = raw - runner_up if runner_up is not None else 0.0
        x = self.calib_slope * (raw + self.margin_weight * margin - self.calib_offset)
        return 1.0 / (1.0 + math.exp(-max(min(x, 60.0), -60.0)))

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "extra"}

    @classmethod
    def from_dict(cls, data: dict) -> RetrievalConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def load(cls, mode: Mode | None = None, path: Path = CALIBRATION_FILE) -> RetrievalConfig:
        """The calibrated configuration of ``mode`` (default: the mode the evaluation chose)."""
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            return cls(mode=mode or "hybrid")
        mode = mode or data["chosen_mode"]
        return cls.from_dict({**data["modes"][mode], "mode": mode})


@dataclass(frozen=True)
class Hit:
    slug: str
    score: float  # raw fused score of the mode
    dense: float
    centroid: float
    answer: float
    lexical: float  # raw BM25
    exact: float = 0.0  # best character-bigram Dice with a phrasing


@dataclass
class Candidates:
    """Every candidate of one question with its features (computed exactly; NaN-free)."""

    slugs: list[str]
    dense: np.ndarray
    centroid: np.ndarray
    answer: np.ndarray
    bm25: np.ndarray
    exact: np.ndarray

    def hits(self, config: RetrievalConfig) -> list[Hit]:
        if not self.slugs:
            return []
        raw = config.raw_score(self.dense, self.centroid, self.answer, self.bm25, self.exact)
        order = np.argsort(-raw, kind="stable")
        return [Hit(self.slugs[i], float(raw[i]), float(self.dense[i]), float(self.centroid[i]),
                    float(self.answer[i]), float(self.bm25[i]), float(self.exact[i])) for i in order.tolist()]


@dataclass(frozen=True)
class OverlayEntry:
    """An entry searched in addition to the index (a draft while previewing), with its vectors."""

    entry: IndexedEntry
    phrasing_vectors: np.ndarray
    answer_vector: np.ndarray


class HybridRetriever:
    def __init__(self, index: KBIndex, embedder: QueryEmbedder | None, config: RetrievalConfig | None = None) -> None:
        self.index = index
        self.embedder = embedder
        self.config = config or RetrievalConfig()

    def embed(self, question: str) -> np.ndarray:
        if self.embedder is None:
            raise RuntimeError("dense retrieval needs an embedder")
        return self.embedder.encode_queries([normalise(question)])[0]

    def candidates(self, question: str, mode: Mode | None = None, *, query_vector: np.ndarray | None = None,
                   overlay: list[OverlayEntry] | None = None) -> Candidates:
        mode = mode or self.config.mode
        n = self.config.candidates
        text = normalise(question)
        qtokens = tokens(text)
        use_dense = mode in ("dense", "hybrid")
        qvec = None
        if use_dense:
            qvec = query_vector if query_vector is not None else self.embed(text)
        hidden = {o.entry.slug for o in overlay or ()}
        order: dict[str, float] = {}  # slug -> best phrasing cosine if the dense search returned it
        if use_dense:
            assert qvec is not None
            dense_hits = self.index.search_dense(qvec, n)
            for slug, score in zip(dense_hits.slugs, dense_hits.scores):
                if slug not in hidden:
                    order[slug] = score
        lexical_only: list[str] = []
        if mode in ("lexical", "hybrid"):
            for slug, _ in self.index.search_lexical(qtokens, n):
                if slug not in hidden and slug not in order:
                    lexical_only.append(slug)
        slugs = list(order) + lexical_only
        dense = np.zeros(len(slugs), dtype=np.float32)
        aux = np.zeros((len(slugs), 2), dtype=np.float32)
        if use_dense and slugs:
            assert qvec is not None
            dense[: len(order)] = list(order.values())
            if lexical_only:
                dense[len(order):] = self.index.best_phrasing_scores(qvec, lexical_only)
            aux = self.index.aux_scores(qvec, slugs)
        bm25 = self.index.lexical.score_slugs(qtokens, slugs) if slugs else np.zeros(0, dtype=np.float32)
        qgrams = char_bigrams(text)
        exact = np.asarray([_best_dice(qgrams, self.index.phrasings.get(s, ())) for s in slugs], dtype=np.float32)
        cands = Candidates(slugs, dense, aux[:, 0].copy(), aux[:, 1].copy(), bm25, exact)
        if overlay:
            cands = _with_overlay(cands, overlay, qvec, qtokens, qgrams, self.index, use_dense)
        return cands

    def search(self, question: str, k: int = 5, mode: Mode | None = None) -> list[Hit]:
        mode = mode or self.config.mode
        config = self.config if mode == self.config.mode else RetrievalConfig(**{**asdict(self.config), "mode": mode})
        return self.candidates(question, mode).hits(config)[:k]


def _best_dice(qgrams: frozenset[str], phrasings: tuple[str, ...]) -> float:
    return max((dice(qgrams, char_bigrams(p)) for p in phrasings), default=0.0)


def _with_overlay(cands: Candidates, overlay: list[OverlayEntry], qvec: np.ndarray | None, qtokens: list[str],
                  qgrams: frozenset[str], index: KBIndex, use_dense: bool) -> Candidates:
    slugs = list(cands.slugs)
    dense, centroid, answer, bm25, exact = (list(a.tolist()) for a in (cands.dense, cands.centroid, cands.answer,
                                                                        cands.bm25, cands.exact))
    for item in overlay:
        slugs.append(item.entry.slug)
        if use_dense and qvec is not None:
            sims = item.phrasing_vectors @ qvec
            c = item.phrasing_vectors.mean(axis=0)
            c /= max(float(np.linalg.norm(c)), 1e-12)
            dense.append(float(sims.max()))
            centroid.append(float(c @ qvec))
            answer.append(float(item.answer_vector @ qvec))
        else:
            dense.append(0.0)
            centroid.append(0.0)
            answer.append(0.0)
        bm25.append(index.lexical.score_document(qtokens, item.entry.lexical_tokens))
        exact.append(_best_dice(qgrams, item.entry.phrasings))
    return Candidates(slugs, *(np.asarray(a, dtype=np.float32) for a in (dense, centroid, answer, bm25, exact)))
