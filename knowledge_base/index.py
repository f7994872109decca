"""The search index of published entries: dense vectors in FAISS plus BM25 over jieba tokens.

Each entry contributes one dense row per phrasing (standard question and alternatives, embedded with the e5
``passage: `` prompt - measured better than ``query: `` for question-to-question matching, see the evaluation
report), two auxiliary vectors kept beside FAISS (the normalised centroid of its phrasings, and its answer embedded as
a passage) and one BM25 document (tokens of question, alternatives and tags). An entry's counter-examples (questions
that look like it but that it does not answer, written by editors) are embedded like phrasings and kept beside FAISS,
never searched: retrieval only compares a question with the counter-examples of the entries it already found. Rows carry FAISS ids mapped to entry
slugs, so publishing one entry replaces only its rows; nothing else is re-embedded.

Dense rows live in ``IndexIDMap2(IndexFlatIP)`` while small; above ``hnsw_min_rows`` rows (``dense_kind="auto"``) the
index converts itself to ``IndexIDMap2(IndexHNSWFlat)``: at 100k entries (560k rows) exact search took p50 281 ms
per question on this project's two busy cores, HNSW 0.27 ms (benchmarks/kb_bench.py). HNSW cannot delete, so removed
rows become tombstones, excluded from every search by an ``IDSelector``; a rebuild (or :meth:`KBIndex.compact`)
drops them.

Persistence (``root`` folder)::

    CURRENT                       "<base id> <number of deltas>", replaced atomically (os.replace)
    snapshots/<base id>/          a full index: dense.faiss, aux.npy, counter.npy, lexical.npz/.json, surface.npz/
                                  surface_vocab.json (phrasings' bigram ids), manifest.json
    snapshots/<base id>/delta-000001.json + .npy    later changes (upserts with their vectors, removals)

A publish writes one small delta file and then swaps ``CURRENT``; after ``MAX_DELTAS`` deltas the next save writes a
new full base. Readers compare ``CURRENT`` with what they hold and replay only the deltas they lack (or load the new
base), so another process picks up a publish in milliseconds without re-embedding anything. Writers serialise
through :func:`writer_lock` (an ``flock`` on ``root/.lock``).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import faiss
import numpy as np

from knowledge_base.lexical import LexicalIndex
from knowledge_base.surface import PhrasingBigrams

logger = logging.getLogger(__name__)

INDEX_FORMAT = 3  # 3: counter-examples
SNAPSHOTS_KEPT = 3
MAX_DELTAS = 32
HNSW_MIN_ROWS = 20_000
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 40
HNSW_EF_SEARCH = 96


@dataclass(frozen=True)
class IndexedEntry:
    """What the index needs of an entry: slug and version, phrasings, answer text and lexical tokens."""

    slug: str
    version: int
    phrasings: tuple[str, ...]
    answer: str
    lexical_tokens: tuple[str, ...]
    counter_examples: tuple[str, ...] = ()  # questions it does not answer although they look like it


@dataclass
class DenseHits:
    """Best phrasing cosine per entry among the rows the dense search returned, best first."""

    slugs: list[str]
    scores: list[float]


def read_current(root: Path) -> tuple[str, int] | None:
    try:
        text = (Path(root) / "CURRENT").read_text().split()
    except FileNotFoundError:
        return None
    if not text:
        return None
    return text[0], int(text[1]) if len(text) > 1 else 0


@contextlib.contextmanager
def writer_lock(root: Path) -> Iterator[None]:
    """Exclusive lock for processes that change the persisted index (publish, ensure-index, rebuild)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class KBIndex:
    def __init__(self, dim: int, *, dense_kind: str = "auto", hnsw_min_rows: int = HNSW_MIN_ROWS,
                 hnsw_m: int = HNSW_M, hnsw_ef_construction: int = HNSW_EF_CONSTRUCTION,
                 hnsw_ef_search: int = HNSW_EF_SEARCH, meta: dict | None = None) -> None:
        if dense_kind not in ("auto", "flat", "hnsw"):
            raise ValueError("dense_kind must be auto, flat or hnsw")
        self.dim = dim
        self.dense_kind = dense_kind
        self.hnsw_min_rows = hnsw_min_rows
        self.hnsw_m = hnsw_m
        self.hnsw_ef_construction = hnsw_ef_construction
        self.hnsw_ef_search = hnsw_ef_search
        self.meta: dict = dict(meta or {})
        self.kind = "flat"
        self.dense = self._new_dense("hnsw" if dense_kind == "hnsw" else "flat")
        self.row_slug: dict[int, str] = {}
        self.slug_rows: dict[str, list[int]] = {}
        self.versions: dict[str, int] = {}
        self.aux: dict[str, np.ndarray] = {}  # slug -> (2, dim): phrasing centroid, answer
        self.phrasings: dict[str, tuple[str, ...]] = {}
        self.counter: dict[str, np.ndarray] = {}  # slug -> (k, dim) counter-example vectors (entries that have any)
        self.counter_texts: dict[str, tuple[str, ...]] = {}
        self.surface = PhrasingBigrams()  # phrasings' character bigrams as ids, for the surface-similarity feature
        self.lexical = LexicalIndex()
        self.next_row = 0
        self.dead_rows: set[int] = set()
        self._selector = None
        self.snapshot: tuple[str, int] | None = None
        self._journal: list[dict] = []
        self._journal_vectors: list[np.ndarray] = []

    # ------------------------------------------------------------------ dense storage

    def _new_dense(self, kind: str):
        self.kind = kind
        if kind == "flat":
            return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        hnsw = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = self.hnsw_ef_construction
        hnsw.hnsw.efSearch = self.hnsw_ef_search
        return faiss.IndexIDMap2(hnsw)

    @property
    def live_rows(self) -> int:
        return len(self.row_slug)

    def _maybe_convert(self, extra_rows: int) -> None:
        if self.dense_kind == "auto" and self.kind == "flat" and self.live_rows + extra_rows >= self.hnsw_min_rows:
            self._rebuild_dense("hnsw")

    def _rebuild_dense(self, kind: str) -> None:
        """Re-create the dense index of the given kind from the live rows (drops tombstones)."""
        rows = np.fromiter(self.row_slug.keys(), dtype=np.int64, count=len(self.row_slug))
        vectors = self._reconstruct(rows)
        self.dense = self._new_dense(kind)
        if len(rows):
            self.dense.add_with_ids(vectors, rows)
        self.dead_rows = set()
        self._selector = None

    def _reconstruct(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        for i, row in enumerate(rows.tolist()):
            out[i] = self.dense.reconstruct(int(row))
        return out

    def compact(self) -> None:
        """Drop dense tombstones and removed BM25 documents (an HNSW index is rebuilt: slow at scale)."""
        if self.dead_rows:
            self._rebuild_dense(self.kind)
        self.lexical.compact()

    # ------------------------------------------------------------------ updates

    def __len__(self) -> int:
        return len(self.slug_rows)

    def __contains__(self, slug: str) -> bool:
        return slug in self.slug_rows

    def upsert(self, entry: IndexedEntry, phrasing_vectors: np.ndarray, answer_vector: np.ndarray,
               counter_vectors: np.ndarray | None = None) -> None:
        """Replace the entry's rows (or add them): one L2-normalised vector per phrasing, plus its answer's (and one
        per counter-example, if it has any)."""
        self.upsert_many([entry], phrasing_vectors, answer_vector.reshape(1, -1), counter_vectors=counter_vectors)

    def upsert_many(self, entries: list[IndexedEntry], phrasing_vectors: np.ndarray, answer_vectors: np.ndarray,
                    journal: bool = True, counter_vectors: np.ndarray | None = None) -> None:
        """``counter_vectors``: the entries' counter-examples' vectors, in entry order (may be None when none has
        any)."""
        n_rows = sum(len(e.phrasings) for e in entries)
        if phrasing_vectors.shape != (n_rows, self.dim) or answer_vectors.shape != (len(entries), self.dim):
            raise ValueError(f"expected {n_rows}×{self.dim} phrasing and {len(entries)}×{self.dim} answer vectors, "
                             f"got {phrasing_vectors.shape} and {answer_vectors.shape}")
        n_counter = sum(len(e.counter_examples) for e in entries)
        if counter_vectors is None:
            counter_vectors = np.zeros((0, self.dim), dtype=np.float32)
        if counter_vectors.shape != (n_counter, self.dim):
            raise ValueError(f"expected {n_counter}×{self.dim} counter-example vectors, got {counter_vectors.shape}")
        counter_vectors = np.ascontiguousarray(counter_vectors, dtype=np.float32)
        if len(set(e.slug for e in entries)) != len(entries):
            raise ValueError("duplicate slugs in one upsert")
        for entry in entries:
            if not entry.phrasings:
                raise ValueError(f"entry {entry.slug} has no phrasing")
            self.remove(entry.slug, journal=False)
        self._maybe_convert(n_rows)
        phrasing_vectors = np.ascontiguousarray(phrasing_vectors, dtype=np.float32)
        ids = np.arange(self.next_row, self.next_row + n_rows, dtype=np.int64)
        self.next_row += n_rows
        if n_rows:
            self.dense.add_with_ids(phrasing_vectors, ids)
        offset = 0
        counter_at = 0
        for i, entry in enumerate(entries):
            n = len(entry.phrasings)
            if entry.counter_examples:
                k = len(entry.counter_examples)
                self.counter[entry.slug] = counter_vectors[counter_at:counter_at + k].copy()
                self.counter_texts[entry.slug] = tuple(entry.counter_examples)
                counter_at += k
            rows = ids[offset:offset + n].tolist()
            block = phrasing_vectors[offset:offset + n]
            offset += n
            for row in rows:
                self.row_slug[row] = entry.slug
            self.slug_rows[entry.slug] = rows
            self.versions[entry.slug] = entry.version
            centroid = block.mean(axis=0)
            centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
            self.aux[entry.slug] = np.stack([centroid, answer_vectors[i]]).astype(np.float32)
            self.phrasings[entry.slug] = tuple(entry.phrasings)
            self.surface.add(entry.slug, entry.phrasings)
            self.lexical.add(entry.slug, entry.lexical_tokens)
        if journal:  # one op per entry; its vectors: its phrasing rows, its answer vector, its counter-examples
            offset = 0
            counter_at = 0
            for i, entry in enumerate(entries):
                n = len(entry.phrasings)
                k = len(entry.counter_examples)
                self._journal.append({"op": "upsert", "slug": entry.slug, "version": entry.version,
                                      "phrasings": list(entry.phrasings), "answer": entry.answer,
                                      "lexical": list(entry.lexical_tokens),
                                      "counter_examples": list(entry.counter_examples)})
                self._journal_vectors.append(np.concatenate([phrasing_vectors[offset:offset + n],
                                                             answer_vectors[i:i + 1].astype(np.float32),
                                                             counter_vectors[counter_at:counter_at + k]]))
                offset += n
                counter_at += k

    def remove(self, slug: str, journal: bool = True) -> bool:
        rows = self.slug_rows.pop(slug, None)
        if rows is None:
            return False
        if self.kind == "flat":
            self.dense.remove_ids(np.asarray(rows, dtype=np.int64))
        else:
            self.dead_rows.update(rows)
            self._selector = None
        for row in rows:
            self.row_slug.pop(row, None)
        self.versions.pop(slug, None)
        self.aux.pop(slug, None)
        self.counter.pop(slug, None)
        self.counter_texts.pop(slug, None)
        self.phrasings.pop(slug, None)
        self.surface.remove(slug)
        self.lexical.remove(slug)
        if journal:
            self._journal.append({"op": "remove", "slug": slug})
        return True

    # ------------------------------------------------------------------ search

    def search_dense(self, query: np.ndarray, k: int) -> DenseHits:
        """Up to ``k`` entries by their best-matching phrasing (cosine), best first."""
        if not self.row_slug:
            return DenseHits([], [])
        fetch = min(self.live_rows, max(k * 4, 48))  # entries have ~5 phrasings; rows of one entry cluster
        q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        # One query: OpenMP threads cost more than they save (measured 14 ms vs 2 ms per question for the flat
        # index on two busy cores). omp_set_num_threads applies to the calling thread, and torch shares the OpenMP
        # runtime in that thread, so the previous value is restored at once.
        previous = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            scores, ids = self._search(q, fetch)
        finally:
            faiss.omp_set_num_threads(previous)
        slugs: list[str] = []
        best: list[float] = []
        seen: set[str] = set()
        for score, row in zip(scores[0].tolist(), ids[0].tolist()):
            slug = self.row_slug.get(row)
            if slug is not None and slug not in seen:
                seen.add(slug)
                slugs.append(slug)
                best.append(score)
                if len(slugs) == k:
                    break
        return DenseHits(slugs, best)

    def _search(self, q: np.ndarray, fetch: int) -> tuple[np.ndarray, np.ndarray]:
        if self.kind == "hnsw":
            if self._selector is None and self.dead_rows:
                dead = np.fromiter(self.dead_rows, dtype=np.int64, count=len(self.dead_rows))
                batch = faiss.IDSelectorBatch(dead)
                self._selector = (faiss.IDSelectorNot(batch), batch)  # keep the inner selector alive
            params = faiss.SearchParametersHNSW(efSearch=max(self.hnsw_ef_search, fetch))
            if self._selector is not None:
                params.sel = self._selector[0]
            return self.dense.search(q, fetch, params=params)
        return self.dense.search(q, fetch)

    def best_phrasing_scores(self, query: np.ndarray, slugs: list[str]) -> np.ndarray:
        """Exact best phrasing cosine of each given entry (reconstructs its rows; -1 for unknown slugs)."""
        out = np.full(len(slugs), -1.0, dtype=np.float32)
        for i, slug in enumerate(slugs):
            rows = self.slug_rows.get(slug)
            if rows:
                out[i] = float((self._reconstruct(np.asarray(rows, dtype=np.int64)) @ query).max())
        return out

    def phrasing_profile(self, query: np.ndarray, slugs: list[str]) -> np.ndarray:
        """(n, 3) per entry: best phrasing cosine, mean of its two best phrasing cosines, cosine with its standard
        question (the first phrasing); -1 for unknown slugs. Reconstructs the entries' rows (~6-12 each) in one batch
        and reduces them per entry without a Python loop (the same values as :func:`phrasing_profile`)."""
        out = np.full((len(slugs), 3), -1.0, dtype=np.float32)
        row_lists = [self.slug_rows.get(slug) for slug in slugs]
        known = np.fromiter((bool(rows) for rows in row_lists), dtype=bool, count=len(slugs))
        if not known.any():
            return out
        lengths = np.fromiter((len(rows) for rows in row_lists if rows), dtype=np.int64)
        ids = np.fromiter(chain.from_iterable(rows for rows in row_lists if rows), dtype=np.int64,
                          count=int(lengths.sum()))
        sims = self._reconstruct_many(ids) @ np.asarray(query, dtype=np.float32)  # one batch: ~0.1 ms for 600 rows
        out[known] = segment_profile(sims, lengths)
        return out

    def _reconstruct_many(self, rows: np.ndarray) -> np.ndarray:
        try:
            return np.asarray(self.dense.reconstruct_batch(rows), dtype=np.float32).reshape(len(rows), self.dim)
        except (RuntimeError, AttributeError, TypeError):  # an index type without batch reconstruction
            return self._reconstruct(rows)

    def aux_scores(self, query: np.ndarray, slugs: list[str]) -> np.ndarray:
        """(n, 2): cosine of the query with each entry's phrasing centroid and with its answer passage."""
        if not slugs:
            return np.zeros((0, 2), dtype=np.float32)
        mats = np.stack([self.aux[s] for s in slugs])  # (n, 2, dim)
        return mats @ query.astype(np.float32)

    def counter_scores(self, query: np.ndarray, slugs: list[str]) -> np.ndarray:
        """Best cosine of the query with each entry's counter-examples; -1 for entries without any."""
        out = np.full(len(slugs), -1.0, dtype=np.float32)
        if not self.counter:
            return out
        q = np.asarray(query, dtype=np.float32)
        for i, slug in enumerate(slugs):
            mat = self.counter.get(slug)
            if mat is not None:
                out[i] = float((mat @ q).max())
        return out

    def search_lexical(self, query_tokens: list[str], k: int) -> list[tuple[str, float]]:
        return self.lexical.search(query_tokens, k)

    # ------------------------------------------------------------------ persistence

    def _manifest(self) -> dict:
        return {
            "format": INDEX_FORMAT,
            "dim": self.dim,
            "kind": self.kind,
            "dense_kind": self.dense_kind,
            "hnsw": {"min_rows": self.hnsw_min_rows, "m": self.hnsw_m, "ef_construction": self.hnsw_ef_construction,
                     "ef_search": self.hnsw_ef_search},
            "next_row": self.next_row,
            "slug_rows": self.slug_rows,
            "versions": self.versions,
            "dead_rows": sorted(self.dead_rows),
            "aux_slugs": list(self.aux),
            "phrasings": self.phrasings,
            "counter_examples": self.counter_texts,
            "meta": self.meta,
            "saved_at": time.time(),
        }

    def save(self, root: Path, full: bool = False) -> tuple[str, int]:
        """Persist: a delta with the changes since the last save/load, or a full base; then swap ``CURRENT``.

        The caller holds :func:`writer_lock` and has brought this index up to date with ``CURRENT`` first
        (:meth:`refresh`); otherwise (someone else wrote meanwhile) a full base is written, which is always correct.
        """
        root = Path(root)
        (root / "snapshots").mkdir(parents=True, exist_ok=True)
        on_disk = read_current(root)
        base_dir = root / "snapshots" / self.snapshot[0] if self.snapshot else None
        delta_possible = (
            not full and self.snapshot is not None and on_disk == self.snapshot and self.snapshot[1] < MAX_DELTAS
            and base_dir is not None and base_dir.is_dir()
            and sum(len(v) for v in self._journal_vectors) < max(2000, self.live_rows // 10)
        )
        if delta_possible and not self._journal:
            return self.snapshot  # nothing changed
        if delta_possible:
            assert self.snapshot is not None and base_dir is not None
            n = self.snapshot[1] + 1
            stem = f"delta-{n:06d}"
            vectors = (np.concatenate(self._journal_vectors) if self._journal_vectors
                       else np.zeros((0, self.dim), dtype=np.float32))
            tmp_npy = base_dir / f".{stem}.{uuid.uuid4().hex[:6]}.npy"
            np.save(tmp_npy, vectors)
            os.replace(tmp_npy, base_dir / f"{stem}.npy")
            tmp_json = base_dir / f".{stem}.{uuid.uuid4().hex[:6]}.json"
            tmp_json.write_text(json.dumps({"ops": self._journal, "meta": self.meta}, ensure_ascii=False))
            os.replace(tmp_json, base_dir / f"{stem}.json")
            state = (self.snapshot[0], n)
        else:
            base_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
            tmp = root / "snapshots" / f".{base_id}.tmp"
            tmp.mkdir(parents=True)
            if self.lexical.needs_compaction():
                self.lexical.compact()
            faiss.write_index(self.dense, str(tmp / "dense.faiss"))
            aux = (np.stack([self.aux[s] for s in self.aux]) if self.aux
                   else np.zeros((0, 2, self.dim), dtype=np.float32))
            np.save(tmp / "aux.npy", aux)
            counter = (np.concatenate([self.counter[s] for s in self.counter_texts]) if self.counter_texts
                       else np.zeros((0, self.dim), dtype=np.float32))
            np.save(tmp / "counter.npy", counter)
            self.lexical.save(tmp)
            self.surface.save(tmp, list(self.phrasings))
            (tmp / "manifest.json").write_text(json.dumps(self._manifest(), ensure_ascii=False))
            os.replace(tmp, root / "snapshots" / base_id)
            state = (base_id, 0)
        pointer = root / f".CURRENT.{uuid.uuid4().hex[:8]}"
        pointer.write_text(f"{state[0]} {state[1]}\n")
        os.replace(pointer, root / "CURRENT")
        self.snapshot = state
        self._journal = []
        self._journal_vectors = []
        if state[1] == 0:
            _prune(root, keep=state[0])
        return state

    @classmethod
    def load(cls, root: Path) -> KBIndex:
        """Load what ``CURRENT`` names: the base and its deltas."""
        root = Path(root)
        for attempt in range(3):
            state = read_current(root)
            if state is None:
                raise FileNotFoundError(f"no knowledge-base index at {root} (run `python -m knowledge_base.cli "
                                        "ensure-index`)")
            try:
                index = cls._load_base(root / "snapshots" / state[0])
                index._apply_deltas(root, state[0], 1, state[1])
                return index
            except FileNotFoundError:
                if attempt == 2:  # pruned between reading CURRENT and opening the files: read CURRENT again
                    raise
                time.sleep(0.05)
        raise AssertionError("unreachable")

    @classmethod
    def _load_base(cls, snap: Path) -> KBIndex:
        manifest = json.loads((snap / "manifest.json").read_text())
        if manifest.get("format") != INDEX_FORMAT:
            raise IndexFormatError(f"index format {manifest.get('format')} != {INDEX_FORMAT}")
        h = manifest["hnsw"]
        index = cls(manifest["dim"], dense_kind=manifest["dense_kind"], hnsw_min_rows=h["min_rows"], hnsw_m=h["m"],
                    hnsw_ef_construction=h["ef_construction"], hnsw_ef_search=h["ef_search"], meta=manifest["meta"])
        index.dense = faiss.read_index(str(snap / "dense.faiss"))
        index.kind = manifest["kind"]
        index.next_row = manifest["next_row"]
        index.slug_rows = {s: list(rows) for s, rows in manifest["slug_rows"].items()}
        index.row_slug = {row: s for s, rows in index.slug_rows.items() for row in rows}
        index.versions = dict(manifest["versions"])
        index.dead_rows = set(manifest["dead_rows"])
        aux = np.load(snap / "aux.npy")
        index.aux = {slug: aux[i] for i, slug in enumerate(manifest["aux_slugs"])}
        index.phrasings = {slug: tuple(p) for slug, p in manifest.get("phrasings", {}).items()}
        counter = np.load(snap / "counter.npy")
        at = 0
        for slug, texts in manifest["counter_examples"].items():
            index.counter_texts[slug] = tuple(texts)
            index.counter[slug] = counter[at:at + len(texts)]
            at += len(texts)
        index.surface = PhrasingBigrams.load(snap, index.phrasings)
        index.lexical = LexicalIndex.load(snap)
        index.snapshot = (snap.name, 0)
        return index

    def _apply_deltas(self, root: Path, base_id: str, first: int, last: int) -> None:
        snap = Path(root) / "snapshots" / base_id
        for n in range(first, last + 1):
            stem = f"delta-{n:06d}"
            payload = json.loads((snap / f"{stem}.json").read_text())
            vectors = np.load(snap / f"{stem}.npy")
            offset = 0
            for op in payload["ops"]:
                if op["op"] == "remove":
                    self.remove(op["slug"], journal=False)
                    continue
                entry = IndexedEntry(op["slug"], op["version"], tuple(op["phrasings"]), op["answer"],
                                     tuple(op["lexical"]), tuple(op.get("counter_examples", ())))
                k = len(entry.phrasings)
                c = len(entry.counter_examples)
                block = vectors[offset:offset + k + 1 + c]
                offset += k + 1 + c
                self.upsert_many([entry], block[:k], block[k:k + 1], journal=False, counter_vectors=block[k + 1:])
            self.meta = payload.get("meta", self.meta)
        self.snapshot = (base_id, last)

    def refresh(self, root: Path) -> bool:
        """Bring this index up to date with ``CURRENT``; True if anything changed."""
        state = read_current(root)
        if state is None or state == self.snapshot:
            return False
        if self.snapshot is not None and state[0] == self.snapshot[0] and state[1] > self.snapshot[1] \
                and not self._journal:
            try:
                self._apply_deltas(root, state[0], self.snapshot[1] + 1, state[1])
                return True
            except FileNotFoundError:
                pass
        fresh = KBIndex.load(root)
        self.__dict__.update(fresh.__dict__)
        return True


def phrasing_profile(sims: np.ndarray) -> tuple[float, float, float]:
    """(best, mean of the two best, first) of one entry's phrasing cosines (the first phrasing is its question)."""
    values = sims.tolist()
    if len(values) == 1:
        return values[0], values[0], values[0]
    first, second = sorted(values, reverse=True)[:2]
    return first, (first + second) / 2, values[0]


def segment_profile(sims: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """:func:`phrasing_profile` of consecutive segments of ``sims`` (``lengths`` > 0 each), as an (n, 3) array."""
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    best = np.maximum.reduceat(sims, starts)
    owner = np.repeat(np.arange(len(lengths)), lengths)
    # the first position of each segment's best value is masked out; the best of the rest is the second best
    at_best = np.flatnonzero(sims == best[owner])
    first_best = at_best[np.unique(owner[at_best], return_index=True)[1]]
    rest = sims.astype(np.float64)
    rest[first_best] = -np.inf
    second = np.maximum.reduceat(rest, starts)
    second = np.where(lengths > 1, second, best)
    best64 = best.astype(np.float64)
    return np.stack([best64, (best64 + second) / 2, sims[starts].astype(np.float64)], axis=1)


class IndexFormatError(RuntimeError):
    """The persisted index was written by another version of this code; rebuild it."""


def _prune(root: Path, keep: str) -> None:
    """Keep the newest few bases (a reader that loaded an older one keeps it in memory; its files may go)."""
    snaps = sorted((p for p in (root / "snapshots").iterdir() if p.is_dir() and not p.name.startswith(".")),
                   key=lambda p: p.name)
    for old in snaps[:-SNAPSHOTS_KEPT]:
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)
    for tmp in (root / "snapshots").glob(".*.tmp"):
        if time.time() - tmp.stat().st_mtime > 3600:
            shutil.rmtree(tmp, ignore_errors=True)
