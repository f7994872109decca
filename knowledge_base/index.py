"""The search index of published entries: dense vectors in FAISS plus a BM25 index over jieba tokens.

Each entry contributes one dense row per phrasing (standard question and alternatives, embedded with the
``query: `` prompt because matching a question to a question is symmetric) and one BM25 document. Rows carry
FAISS ids mapped to entry slugs, so publishing one entry replaces only its rows (no re-embedding of others).

Persistence: ``<root>/snapshots/<id>/`` holds ``dense.faiss``, ``bm25/`` and ``manifest.json``; ``<root>/CURRENT``
names the snapshot in use and is replaced atomically (``os.replace``) after the snapshot is complete, so a reader
never sees a half-written index. Other processes notice a new ``CURRENT`` and reload (see ``maybe_reload``).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import bm25s
import faiss
import numpy as np

logger = logging.getLogger(__name__)

SNAPSHOTS_KEPT = 3


@dataclass(frozen=True)
class IndexedEntry:
    """What the index needs of an entry: its slug and version, its phrasings and its lexical tokens."""

    slug: str
    version: int
    phrasings: tuple[str, ...]
    lexical_tokens: tuple[str, ...]


class KBIndex:
    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.dense = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.row_slug: dict[int, str] = {}
        self.slug_rows: dict[str, list[int]] = {}
        self.versions: dict[str, int] = {}
        self.lexical: dict[str, tuple[str, ...]] = {}
        self.next_row = 0
        self._bm25: bm25s.BM25 | None = None
        self._bm25_slugs: list[str] = []
        self.snapshot_id: str | None = None

    # ------------------------------------------------------------------ updates

    def __len__(self) -> int:
        return len(self.slug_rows)

    def upsert(self, entry: IndexedEntry, vectors: np.ndarray) -> None:
        """Replace the entry's rows (or add them) with ``vectors`` (one per phrasing, L2-normalised)."""
        if vectors.shape != (len(entry.phrasings), self.dim):
            raise ValueError(f"expected {len(entry.phrasings)}×{self.dim} vectors, got {vectors.shape}")
        self.remove(entry.slug)
        ids = np.arange(self.next_row, self.next_row + len(vectors), dtype=np.int64)
        self.next_row += len(vectors)
        self.dense.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        for row in ids.tolist():
            self.row_slug[row] = entry.slug
        self.slug_rows[entry.slug] = ids.tolist()
        self.versions[entry.slug] = entry.version
        self.lexical[entry.slug] = entry.lexical_tokens
        self._bm25 = None

    def upsert_many(self, entries: list[IndexedEntry], vectors: np.ndarray) -> None:
        offset = 0
        for entry in entries:
            n = len(entry.phrasings)
            self.upsert(entry, vectors[offset : offset + n])
            offset += n

    def remove(self, slug: str) -> bool:
        rows = self.slug_rows.pop(slug, None)
        if rows is None:
            return False
        self.dense.remove_ids(np.asarray(rows, dtype=np.int64))
        for row in rows:
            self.row_slug.pop(row, None)
        self.versions.pop(slug, None)
        self.lexical.pop(slug, None)
        self._bm25 = None
        return True

    # ------------------------------------------------------------------ search

    def search_dense(self, query: np.ndarray, k: int) -> list[tuple[str, float]]:
        """Entries by their best-matching phrasing (cosine), best first."""
        if self.dense.ntotal == 0:
            return []
        fetch = min(self.dense.ntotal, max(k * 8, 32))
        scores, ids = self.dense.search(np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32), fetch)
        best: dict[str, float] = {}
        for score, row in zip(scores[0].tolist(), ids[0].tolist()):
            slug = self.row_slug.get(row)
            if slug is not None and slug not in best:
                best[slug] = score
                if len(best) == k:
                    break
        return sorted(best.items(), key=lambda kv: -kv[1])

    def _ensure_bm25(self) -> None:
        if self._bm25 is not None:
            return
        self._bm25_slugs = list(self.lexical)
        model = bm25s.BM25()
        if self._bm25_slugs:
            model.index([list(self.lexical[s]) or ["∅"] for s in self._bm25_slugs], show_progress=False)
        self._bm25 = model

    def search_lexical(self, query_tokens: list[str], k: int) -> list[tuple[str, float]]:
        if not self.lexical or not query_tokens:
            return []
        self._ensure_bm25()
        assert self._bm25 is not None
        scores = self._bm25.get_scores(query_tokens)
        if not len(scores):
            return []
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(self._bm25_slugs[i], float(scores[i])) for i in top if scores[i] > 0]

    # ------------------------------------------------------------------ persistence

    def save(self, root: Path) -> str:
        """Write a complete snapshot, then atomically point ``CURRENT`` at it; returns the snapshot id."""
        root = Path(root)
        snap_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        tmp = root / "snapshots" / f".{snap_id}.tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.dense, str(tmp / "dense.faiss"))
        self._ensure_bm25()
        assert self._bm25 is not None
        if self._bm25_slugs:
            self._bm25.save(str(tmp / "bm25"), show_progress=False)
        manifest = {
            "dim": self.dim,
            "next_row": self.next_row,
            "slug_rows": self.slug_rows,
            "versions": self.versions,
            "lexical": {s: list(t) for s, t in self.lexical.items()},
            "bm25_slugs": self._bm25_slugs,
            "saved_at": time.time(),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False))
        final = root / "snapshots" / snap_id
        os.replace(tmp, final)
        pointer = root / f".CURRENT.{uuid.uuid4().hex[:8]}"
        pointer.write_text(snap_id)
        os.replace(pointer, root / "CURRENT")
        self.snapshot_id = snap_id
        _prune(root, keep=snap_id)
        return snap_id

    @classmethod
    def load(cls, root: Path) -> KBIndex:
        root = Path(root)
        snap_id = (root / "CURRENT").read_text().strip()
        snap = root / "snapshots" / snap_id
        manifest = json.loads((snap / "manifest.json").read_text())
        index = cls(manifest["dim"])
        index.dense = faiss.read_index(str(snap / "dense.faiss"))
        index.next_row = manifest["next_row"]
        index.slug_rows = {s: list(rows) for s, rows in manifest["slug_rows"].items()}
        index.row_slug = {row: s for s, rows in index.slug_rows.items() for row in rows}
        index.versions = dict(manifest["versions"])
        index.lexical = {s: tuple(t) for s, t in manifest["lexical"].items()}
        index._bm25_slugs = list(manifest["bm25_slugs"])
        if index._bm25_slugs and (snap / "bm25").exists():
            index._bm25 = bm25s.BM25.load(str(snap / "bm25"), show_progress=False)
        index.snapshot_id = snap_id
        return index

    @staticmethod
    def current_snapshot(root: Path) -> str | None:
        try:
            return (Path(root) / "CURRENT").read_text().strip()
        except FileNotFoundError:
            return None


def _prune(root: Path, keep: str) -> None:
    """Keep the newest few snapshots (readers that loaded an older one keep it in memory; files may go)."""
    snaps = sorted((p for p in (root / "snapshots").iterdir() if p.is_dir() and not p.name.startswith(".")),
                   key=lambda p: p.stat().st_mtime)
    for old in snaps[:-SNAPSHOTS_KEPT]:
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)
