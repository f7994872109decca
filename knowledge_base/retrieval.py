"""Retrieval over a :class:`~knowledge_base.index.KBIndex`: candidates from FAISS and BM25, scored by features.

Three modes, compared side by side by ``python -m knowledge_base.evaluate``:

* ``dense``   - embeddings only: best phrasing cosine + ``centroid_weight`` × cosine with the centroid of the entry's
  phrasings + ``answer_weight`` × cosine with its answer (``passage:``);
* ``lexical`` - BM25 only, saturated into [0, 1): ``bm25 / (bm25 + lexical_saturation)``;
* ``hybrid``  - candidates are the union of the dense and the lexical top lists and every feature is computed exactly
  for every candidate (no rank fusion). With ``ranker="grid"`` the score is the dense score + ``lexical_weight`` × the
  saturated BM25 (weights by grid search). With ``ranker="linear"`` (what the evaluation now chooses) the candidates
  are *ordered* by a learned linear score over :data:`FEATURES` - the three dense scores above, the saturated BM25,
  the best character-bigram Dice with a phrasing, the mean of the two best phrasing cosines, the cosine with the
  standard question, and how much of the question (IDF-weighted, and plain) the entry's BM25 document contains -
  fitted as a pairwise logistic regression (``knowledge_base.evaluate.fit_linear_ranker``); with
  ``decision="grid"`` the answer/decline confidence still comes from the hand-shaped score of the entries so ordered
  (it separates answerable from unanswerable questions better than the ranking score; see the evaluation report).

In ``hybrid`` and ``lexical`` mode a near-verbatim question (character-bigram Dice ≥ ``exact_min_dice`` with one of
an entry's phrasings) adds ``exact_weight``: a citizen who types a known question gets that entry, even where e5
ranks a sibling entry a hair higher (居住证怎么办理 vs 北京居住证怎么办理？). No evaluation question is that close
to a phrasing (they are paraphrases by design), so this rule is not tuned there and changes none of its numbers.

Counter-examples: an editor may record, per entry, questions that look like it but that it does not answer (养猫要办证吗
for the dog-registration entry). A candidate whose best counter-example is closer to the question (cosine) than its
best phrasing, by more than ``counter_margin``, is a *near miss*: its scores drop by :data:`NEAR_MISS_PENALTY`, so it
is neither the answer nor a suggestion, and the next candidate is judged on its own confidence. The margin is the
only knob; the evaluation tunes it inside its folds and writes it to ``calibration.json``.

The answer/decline decision uses a confidence in [0, 1]: a logistic calibration (fitted on the evaluation's dev split)
of the best score plus ``margin_weight`` × its lead over the runner-up. Weights and threshold live in
``knowledge_base/calibration.json`` written by the evaluation (``--write-calibration``).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from knowledge_base.index import IndexedEntry, KBIndex, phrasing_profile
from knowledge_base.text import char_bigrams, normalise, tokens

Mode = Literal["dense", "lexical", "hybrid"]
MODES: tuple[Mode, ...] = ("hybrid", "dense", "lexical")
# Candidate features (the arrays of Candidates; "lexical" is the saturated BM25) a linear ranker may weigh.
FEATURES = ("dense", "centroid", "answer", "lexical", "exact", "dense2", "title", "coverage", "coverage_tokens")
NEAR_MISS_PENALTY = 10.0  # far below any real score: a near miss ranks last and gets a confidence of ~0
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
    # "grid": the hand-shaped score above; "linear": sum of ``weights[feature] * feature`` over FEATURES (weights
    # fitted by the evaluation - a pairwise logistic ranker), plus the near-verbatim rule
    ranker: str = "grid"
    weights: dict = field(default_factory=dict)
    ranker_saturation: float = 16.0  # the linear ranker's "lexical" feature: bm25 / (bm25 + this), fixed when fitted
    # what the answer/decline confidence is computed from: "rank" - the ranking score; "grid" - the hand-shaped
    # hybrid score (centroid/answer/lexical weights above) of the entries as the ranker ordered them
    decision: str = "rank"
    exact_weight: float = 0.1
    exact_min_dice: float = 0.8
    calib_slope: float = 40.0  # confidence = sigmoid(calib_slope * (raw - calib_offset))
    calib_offset: float = 1.8
    threshold: float = 0.5  # answer when confidence >= threshold
    suggest_min: float = 0.1  # suggestions: other candidates whose own confidence reaches this
    suggestions: int = 3
    counter_margin: float = 0.01  # near miss when best counter-example cosine > best phrasing cosine + this
    extra: dict = field(default_factory=dict)

    def near_miss(self, f: Any) -> np.ndarray:
        """Candidates closer to one of their counter-examples than to any of their phrasings (see the module doc)."""
        counter = getattr(f, "counter", None)
        if counter is None:
            return np.zeros(np.shape(f.dense), dtype=bool)
        return counter > f.dense + self.counter_margin

    def raw_score(self, f: Any) -> np.ndarray:
        """Scores of candidates ``f`` (anything with the arrays of :class:`Candidates`: dense, centroid, ...)."""
        return self._ranking_score(f) - NEAR_MISS_PENALTY * self.near_miss(f)

    def _ranking_score(self, f: Any) -> np.ndarray:
        lex = f.bm25 / (f.bm25 + self.lexical_saturation)
        surface = self.exact_weight * (f.exact >= self.exact_min_dice)
        if self.mode == "lexical":
            return lex + surface
        if self.mode == "hybrid" and self.ranker == "linear":
            score = np.zeros_like(f.dense)
            for name, w in self.weights.items():
                if name == "lexical":
                    score = score + w * (f.bm25 / (f.bm25 + self.ranker_saturation))
                else:
                    score = score + w * getattr(f, name)
            return score + surface
        return self._shaped(f, lex, surface)

    def _shaped(self, f: Any, lex: np.ndarray, surface: np.ndarray) -> np.ndarray:
        score = f.dense + self.centroid_weight * f.centroid + self.answer_weight * f.answer
        if self.mode == "hybrid":
            score = score + self.lexical_weight * lex + surface
        return score

    def decision_score(self, f: Any) -> np.ndarray:
        """The score the answer/decline confidence is computed from (see ``decision``)."""
        if self.decision == "grid" and self.mode == "hybrid" and self.ranker == "linear":
            return self._shaped(f, f.bm25 / (f.bm25 + self.lexical_saturation),
                                self.exact_weight * (f.exact >= self.exact_min_dice)) \
                - NEAR_MISS_PENALTY * self.near_miss(f)
        return self.raw_score(f)

    def confidence(self, raw: float, runner_up: float | None = None) -> float:
        margin = raw - runner_up if runner_up is not None else 0.0
        x = self.calib_slope * (raw + self.margin_weight * margin - self.calib_offset)
        return 1.0 / (1.0 + math.exp(-max(min(x, 60.0), -60.0)))

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "extra" and (k != "weights" or v)}

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


def calibrated_query_encoder(path: Path = CALIBRATION_FILE) -> str | None:
    """Which question encoder the calibration was tuned with (``full`` for files written before there was a choice)."""
    try:
        return json.loads(Path(path).read_text()).get("query_encoder", "full")
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class Hit:
    slug: str
    score: float  # raw fused score of the mode (ranking)
    dense: float
    centroid: float
    answer: float
    lexical: float  # raw BM25
    exact: float = 0.0  # best character-bigram Dice with a phrasing
    coverage: float = 0.0  # IDF-weighted share of the question's tokens found in the entry's BM25 document
    decision: float | None = None  # the score its confidence comes from (None: ``score``)
    counter: float = -1.0  # best cosine with one of its counter-examples (-1: it has none)
    near_miss: bool = False  # closer to a counter-example than to its phrasings: never served

    @property
    def decision_score(self) -> float:
        return self.score if self.decision is None else self.decision


@dataclass
class Candidates:
    """Every candidate of one question with its features (computed exactly; NaN-free)."""

    slugs: list[str]
    dense: np.ndarray
    centroid: np.ndarray
    answer: np.ndarray
    bm25: np.ndarray
    exact: np.ndarray
    dense2: np.ndarray  # mean of the two best phrasing cosines
    title: np.ndarray  # cosine with the standard question
    coverage: np.ndarray  # IDF-weighted share of the question's distinct tokens in the entry's BM25 document
    coverage_tokens: np.ndarray  # plain share of them
    counter: np.ndarray  # best cosine with the entry's counter-examples (-1: none)

    ARRAYS = ("dense", "centroid", "answer", "bm25", "exact", "dense2", "title", "coverage", "coverage_tokens",
              "counter")

    def hits(self, config: RetrievalConfig, limit: int | None = None) -> list[Hit]:
        """Candidates as hits, best first (the ``limit`` best, or all)."""
        if not self.slugs:
            return []
        raw = config.raw_score(self)
        decision = config.decision_score(self)
        near = config.near_miss(self)
        order = np.argsort(-raw, kind="stable")[:limit]
        return [Hit(self.slugs[i], float(raw[i]), float(self.dense[i]), float(self.centroid[i]),
                    float(self.answer[i]), float(self.bm25[i]), float(self.exact[i]), float(self.coverage[i]),
                    float(decision[i]), float(self.counter[i]), bool(near[i])) for i in order.tolist()]


@dataclass(frozen=True)
class OverlayEntry:
    """An entry searched in addition to the index (a draft while previewing), with its vectors."""

    entry: IndexedEntry
    phrasing_vectors: np.ndarray
    answer_vector: np.ndarray
    counter_vectors: np.ndarray | None = None  # one per ``entry.counter_examples``


@dataclass(frozen=True)
class LexicalPart:
    """What a question's candidates need that no vector does (see :meth:`HybridRetriever.lexical_candidates`)."""

    tokens: list[str]
    hits: list[tuple[str, float]]  # BM25 top list, best first
    bm25: np.ndarray  # features of those documents, in that order
    cover: np.ndarray
    exact: np.ndarray


class HybridRetriever:
    def __init__(self, index: KBIndex, embedder: QueryEmbedder | None, config: RetrievalConfig | None = None,
                 full_features: bool = False) -> None:
        self.index = index
        self.embedder = embedder
        self.config = config or RetrievalConfig()
        self.full_features = full_features  # compute every feature even where the configured score needs fewer

    def embed(self, question: str) -> np.ndarray:
        if self.embedder is None:
            raise RuntimeError("dense retrieval needs an embedder")
        return self.embedder.encode_queries([normalise(question)])[0]

    def lexical_candidates(self, question: str) -> LexicalPart:
        """The part of :meth:`candidates` that needs no vector - the question's tokens, its BM25 top list and those
        documents' lexical and surface features - so a caller can compute it while the question is being embedded."""
        text = normalise(question)
        qtokens = tokens(text)
        top = self.index.search_lexical(qtokens, self.config.candidates)
        slugs = [slug for slug, _ in top]
        bm25, cover = self.index.lexical.candidate_features(qtokens, slugs)
        return LexicalPart(qtokens, top, bm25, cover, self.index.surface.best_dice(char_bigrams(text), slugs))

    def candidates(self, question: str, mode: Mode | None = None, *, query_vector: np.ndarray | None = None,
                   overlay: list[OverlayEntry] | None = None, lexical: LexicalPart | None = None) -> Candidates:
        """Every candidate of the question with its features. ``lexical``: :meth:`lexical_candidates` of this
        question, already computed (on the same index)."""
        mode = mode or self.config.mode
        n = self.config.candidates
        text = normalise(question)
        qtokens = lexical.tokens if lexical is not None else tokens(text)
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
            for slug, _ in (lexical.hits if lexical is not None else self.index.search_lexical(qtokens, n)):
                if slug not in hidden and slug not in order:
                    lexical_only.append(slug)
        slugs = list(order) + lexical_only
        profile = np.zeros((len(slugs), 3), dtype=np.float32)  # best phrasing, mean of two best, standard question
        aux = np.zeros((len(slugs), 2), dtype=np.float32)
        counter = np.full(len(slugs), -1.0, dtype=np.float32)
        if use_dense and slugs:
            assert qvec is not None
            if self.full_features or self.config.ranker == "linear":
                profile = self.index.phrasing_profile(qvec, slugs)
            else:  # the grid score needs only the best phrasing: reconstruct rows of lexical-only candidates alone
                profile[: len(order), 0] = list(order.values())
                if lexical_only:
                    profile[len(order):, 0] = self.index.best_phrasing_scores(qvec, lexical_only)
            aux = self.index.aux_scores(qvec, slugs)
            counter = self.index.counter_scores(qvec, slugs)
        qgrams = char_bigrams(text)
        bm25, cover, exact = self._lexical_features(qtokens, qgrams, slugs, lexical)
        cands = Candidates(slugs, profile[:, 0].copy(), aux[:, 0].copy(), aux[:, 1].copy(), bm25, exact,
                           profile[:, 1].copy(), profile[:, 2].copy(), cover[:, 0].copy(), cover[:, 1].copy(),
                           counter)
        if overlay:
            cands = _with_overlay(cands, overlay, qvec, qtokens, qgrams, self.index, use_dense)
        return cands

    def _lexical_features(self, qtokens: list[str], qgrams: frozenset[str], slugs: list[str],
                          known: LexicalPart | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """BM25, coverage and best Dice of ``slugs``: taken from ``known`` where it has them, computed for the rest
        (each row depends on its own document only, so the values are the same either way)."""
        if known is None or not known.hits:
            bm25, cover = self.index.lexical.candidate_features(qtokens, slugs)
            return bm25, cover, self.index.surface.best_dice(qgrams, slugs)
        at = {slug: i for i, (slug, _) in enumerate(known.hits)}
        have = np.fromiter((slug in at for slug in slugs), dtype=bool, count=len(slugs))
        rows = [at[slug] for slug in slugs if slug in at]
        bm25 = np.zeros(len(slugs), dtype=np.float32)
        cover = np.zeros((len(slugs), 2), dtype=np.float32)
        exact = np.zeros(len(slugs), dtype=np.float32)
        bm25[have], cover[have], exact[have] = known.bm25[rows], known.cover[rows], known.exact[rows]
        rest = [slug for slug, h in zip(slugs, have.tolist()) if not h]
        if rest:
            bm25[~have], cover[~have] = self.index.lexical.candidate_features(qtokens, rest)
            exact[~have] = self.index.surface.best_dice(qgrams, rest)
        return bm25, cover, exact

    def search(self, question: str, k: int = 5, mode: Mode | None = None) -> list[Hit]:
        mode = mode or self.config.mode
        config = self.config if mode == self.config.mode else RetrievalConfig(**{**asdict(self.config), "mode": mode})
        return self.candidates(question, mode).hits(config, k)


def _with_overlay(cands: Candidates, overlay: list[OverlayEntry], qvec: np.ndarray | None, qtokens: list[str],
                  qgrams: frozenset[str], index: KBIndex, use_dense: bool) -> Candidates:
    slugs = list(cands.slugs)
    cols = {name: list(getattr(cands, name).tolist()) for name in Candidates.ARRAYS}
    for item in overlay:
        slugs.append(item.entry.slug)
        if use_dense and qvec is not None:
            best, best2, title = phrasing_profile(item.phrasing_vectors @ qvec)
            c = item.phrasing_vectors.mean(axis=0)
            c /= max(float(np.linalg.norm(c)), 1e-12)
            values = {"dense": best, "dense2": best2, "title": title, "centroid": float(c @ qvec),
                      "answer": float(item.answer_vector @ qvec), "counter": -1.0}
            if item.counter_vectors is not None and len(item.counter_vectors):
                values["counter"] = float((item.counter_vectors @ qvec).max())
        else:
            values = {"dense": 0.0, "dense2": 0.0, "title": 0.0, "centroid": 0.0, "answer": 0.0, "counter": -1.0}
        values["bm25"] = index.lexical.score_document(qtokens, item.entry.lexical_tokens)
        values["exact"] = index.surface.dice_with(qgrams, item.entry.phrasings)
        values["coverage"], values["coverage_tokens"] = index.lexical.coverage_document(qtokens,
                                                                                        item.entry.lexical_tokens)
        for name in Candidates.ARRAYS:
            cols[name].append(values[name])
    return Candidates(slugs, *(np.asarray(cols[name], dtype=np.float32) for name in Candidates.ARRAYS))
