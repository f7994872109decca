"""Hybrid retrieval over a :class:`~knowledge_base.index.KBIndex`: dense (FAISS) and lexical (BM25) candidates fused.

Three modes, so the evaluation can compare them side by side: ``dense``, ``lexical`` and ``hybrid``.
Fused score = dense cosine + ``lexical_weight`` × saturated BM25 (``bm25 / (bm25 + lexical_saturation)``), which keeps
the dense cosine's scale (so one threshold calibrates the answer/decline decision) while letting exact keyword
matches (进京证, 公积金, 低保) break near-ties that embeddings blur.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from knowledge_base.index import KBIndex
from knowledge_base.text import normalise, tokens

Mode = Literal["dense", "lexical", "hybrid"]


class QueryEmbedder(Protocol):
    def encode_queries(self, texts: list[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class Hit:
    slug: str
    score: float
    dense: float | None = None
    lexical: float | None = None


@dataclass
class RetrievalConfig:
    mode: Mode = "hybrid"
    candidates: int = 20
    lexical_weight: float = 0.08
    lexical_saturation: float = 8.0
    extra: dict = field(default_factory=dict)


class HybridRetriever:
    def __init__(self, index: KBIndex, embedder: QueryEmbedder, config: RetrievalConfig | None = None) -> None:
        self.index = index
        self.embedder = embedder
        self.config = config or RetrievalConfig()

    def search(self, question: str, k: int = 5, mode: Mode | None = None) -> list[Hit]:
        mode = mode or self.config.mode
        text = normalise(question)
        dense: dict[str, float] = {}
        lexical: dict[str, float] = {}
        if mode in ("dense", "hybrid"):
            vec = self.embedder.encode_queries([text])[0]
            dense = dict(self.index.search_dense(vec, self.config.candidates))
        if mode in ("lexical", "hybrid"):
            lexical = dict(self.index.search_lexical(tokens(text), self.config.candidates))
        if mode == "dense":
            hits = [Hit(s, d, dense=d) for s, d in dense.items()]
        elif mode == "lexical":
            # scale BM25 into [0, 1) so the lexical-only baseline can use the same threshold machinery
            sat = self.config.lexical_saturation
            hits = [Hit(s, b / (b + sat), lexical=b) for s, b in lexical.items()]
        else:
            hits = self._fuse(dense, lexical)
        hits.sort(key=lambda h: -h.score)
        return hits[:k]

    def _fuse(self, dense: dict[str, float], lexical: dict[str, float]) -> list[Hit]:
        cfg = self.config
        slugs = set(dense) | set(lexical)
        floor = min(dense.values()) if dense else 0.0  # a lexical-only candidate gets the weakest dense score seen
        hits = []
        for slug in slugs:
            d = dense.get(slug, floor)
            b = lexical.get(slug, 0.0)
            hits.append(Hit(slug, d + cfg.lexical_weight * (b / (b + cfg.lexical_saturation)), dense=d, lexical=b))
        return hits
