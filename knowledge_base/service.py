"""The knowledge base as the bot and the public self-query endpoint use it: ``answer(question) -> KBResult``.

:class:`KnowledgeBase` is process-wide (``get_knowledge_base()``): it loads the embedder and the persisted index
lazily, notices another process's newer index through ``CURRENT`` (:meth:`KnowledgeBase.maybe_reload`, a ``stat``
per question), and keeps the index in line with the database after editors' changes (:meth:`KnowledgeBase.sync`:
only the changed entries are embedded, then a small delta snapshot is written).

What is served always comes from the database, not from the index: an entry is answered only if it is published,
not archived and not expired *now* (``repository.servable``), so a stale index can never serve withdrawn content.
Declined questions are logged for editors, anonymised (``core.logging.mask_pii``) and counted by a fingerprint of the
normalised, masked text.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from core.logging import mask_pii
from knowledge_base import repository
from knowledge_base.content import indexed_entry
from knowledge_base.index import IndexedEntry, IndexFormatError, KBIndex, read_current, writer_lock
from knowledge_base.orm import KBUnanswered, utcnow
from knowledge_base.retrieval import Hit, HybridRetriever, LexicalPart, OverlayEntry, RetrievalConfig
from knowledge_base.scope import other_region
from knowledge_base.text import normalise

logger = logging.getLogger(__name__)

CONTENT_SCHEMA = 3  # bump when what is embedded/tokenised per entry changes: ensure-index then rebuilds
FETCH_DEPTH = 10  # candidates fetched from the database per question (the best servable ones are used)
MAX_QUESTION_CHARS = 500
EMBED_BATCH = 64
QUERY_CACHE_SIZE = 4096


@dataclass(frozen=True)
class KBResult:
    answered: bool
    entry_id: str | None
    question: str | None
    answer: str | None
    department: str | None
    score: float  # calibrated confidence in [0, 1] of the best servable entry (0 when there is none)
    suggestions: list[tuple[str, str, float]] = field(default_factory=list)  # (entry id, question, confidence)
    version: int | None = None
    source: str | None = None
    draft: bool = False  # preview only: the answer is unpublished content
    other_region: str | None = None  # declined because the question is about this other region (scope.py)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["suggestions"] = [{"entry_id": s, "question": q, "score": round(c, 4)} for s, q, c in self.suggestions]
        data["score"] = round(self.score, 4)
        return data


DECLINED_EMPTY = KBResult(False, None, None, None, None, 0.0, [])


def fingerprint(question: str) -> tuple[str, str]:
    """(anonymised normalised text, its SHA-256) - what the unanswered-questions log stores."""
    text = mask_pii(normalise(question))[:MAX_QUESTION_CHARS]
    return text, hashlib.sha256(text.encode("utf-8")).hexdigest()


def encoder_fingerprint(path: Path) -> str:
    path = Path(path)
    h = hashlib.sha256()
    for name in ("conversion.json", "adaptation.json", "config.json", "config_sentence_transformers.json"):
        p = path / name
        if p.exists():
            h.update(p.read_bytes())
    model = path / "model.safetensors"
    if model.exists():
        h.update(str(model.stat().st_size).encode())
    return h.hexdigest()[:16]


# Passage vectors by text, shared by every KnowledgeBase of the process (rebuilds and tests re-embed nothing twice).
_PASSAGE_CACHE: dict[tuple[str, str], np.ndarray] = {}
_PASSAGE_CACHE_MAX = 200_000


# Threads that run a new question's lexical search while the asking thread embeds it (one per core, at most 4;
# an executor starts its threads on first use).
_LEXICAL_POOL = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="kb-lexical")


def load_query_encoder(embedder: Any, settings: Any = None) -> Any:
    """The question encoder the settings ask for (see :attr:`KnowledgeBase.query_encoder`)."""
    from core.config import get_settings
    from encoder.onnx_query import OnnxQueryEncoder, OnnxQueryMismatch
    from knowledge_base.retrieval import calibrated_query_encoder

    settings = settings or get_settings()
    if settings.kb_query_encoder not in QUERY_ENCODERS:
        raise ValueError(f"JSJB_KB_QUERY_ENCODER must be one of {', '.join(QUERY_ENCODERS)}, "
                         f"not {settings.kb_query_encoder!r}")
    encoder = embedder
    if settings.kb_query_encoder == "onnx-int8":
        try:
            encoder = OnnxQueryEncoder.load(settings.resolved_onnx_query_dir, embedder)
        except (OnnxQueryMismatch, ImportError) as exc:
            logger.warning("knowledge base: no usable int8 ONNX question encoder (%s); questions are embedded by "
                           "the full encoder in PyTorch (slower) - run set-up", exc)
    calibrated = calibrated_query_encoder()
    if calibrated and calibrated != query_encoder_kind(encoder):
        logger.warning("knowledge base: the answer threshold was calibrated with the %s question encoder, questions "
                       "are now embedded by %s - confidences may be off; run the evaluation with "
                       "--write-calibration", calibrated, query_encoder_kind(encoder))
    logger.info("knowledge base: questions embedded by %r", encoder)
    return encoder


def query_encoder_kind(encoder: Any) -> str:
    """``onnx-int8`` or ``full`` (what a calibration depends on)."""
    return getattr(encoder, "kind", None) or "full"


QUERY_ENCODERS = ("onnx-int8", "full")


class KnowledgeBase:
    def __init__(self, index_dir: Path | str | None = None, encoder_dir: Path | str | None = None,
                 sessions: sessionmaker[Session] | None = None, config: RetrievalConfig | None = None,
                 today: Callable[[], date] | None = None, dense_kind: str = "auto", embedder: Any = None,
                 query_threads: int | None = 1, query_encoder: Any = None) -> None:
        from core.config import get_settings

        settings = get_settings()
        self.index_dir = Path(index_dir or settings.resolved_kb_index_dir)
        self.encoder_dir = Path(encoder_dir or settings.resolved_encoder_dir)
        self._sessions = sessions
        self.config = config or RetrievalConfig.load()
        self.today = today or repository.beijing_today
        self.dense_kind = dense_kind
        self._embedder = embedder
        self._query_encoder = query_encoder
        self.query_threads = query_threads
        self._query_cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._index: KBIndex | None = None
        self._lock = threading.RLock()  # guards the in-memory index (search vs. update/reload)
        self._load_lock = threading.Lock()
        self._current_stat: tuple[int, int] | None = None
        self._draft_vectors: dict[tuple[str, int], tuple[IndexedEntry, np.ndarray, np.ndarray, np.ndarray]] = {}

    # ------------------------------------------------------------------ resources

    @property
    def sessions(self) -> sessionmaker[Session]:
        if self._sessions is None:
            from core.db import session_factory

            self._sessions = session_factory()
        return self._sessions

    @property
    def embedder(self):
        if self._embedder is None:
            from encoder.embedder import get_embedder

            self._embedder = get_embedder(self.encoder_dir)
        return self._embedder

    @property
    def query_encoder(self):
        """What embeds questions: e5-small's layers in ONNX Runtime, int8 (settings ``kb_query_encoder=onnx-int8``,
        the default) when set-up exported them from this encoder, else the full encoder in PyTorch (with a
        warning)."""
        if self._query_encoder is None:
            with self._load_lock:
                if self._query_encoder is None:
                    self._query_encoder = load_query_encoder(self.embedder)
        return self._query_encoder

    @property
    def index_meta(self) -> dict[str, Any]:
        return {"encoder": encoder_fingerprint(self.encoder_dir), "content_schema": CONTENT_SCHEMA}

    @property
    def index(self) -> KBIndex:
        """The in-memory index; loaded on first use (built from the database if none is persisted yet)."""
        if self._index is None:
            # not self._lock: building takes the writer lock and then self._lock (sync's order); holding self._lock
            # here first could deadlock against a concurrent sync
            with self._load_lock:
                if self._index is None:
                    try:
                        index = KBIndex.load(self.index_dir)
                        with self._lock:
                            self._index = index
                            self._current_stat = self._stat_current()
                    except (FileNotFoundError, IndexFormatError):
                        self.ensure_index()
        assert self._index is not None
        return self._index

    def _stat_current(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.index_dir / "CURRENT")
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns

    def maybe_reload(self) -> bool:
        """Pick up a snapshot another process published (cheap when nothing changed: one ``stat``)."""
        if self._index is None:
            return False
        stat = self._stat_current()
        if stat is None or stat == self._current_stat:
            return False
        with self._lock:
            try:
                changed = self._index.refresh(self.index_dir)
            except (FileNotFoundError, IndexFormatError):
                logger.warning("knowledge-base index at %s unreadable; keeping the loaded one", self.index_dir)
                return False
            self._current_stat = stat
        if changed:
            logger.info("knowledge-base index reloaded", extra={"snapshot": self._index.snapshot})
        return changed

    @contextlib.contextmanager
    def _few_threads(self):
        """Run small encodes with ``query_threads`` torch threads in this thread.

        One short text (a question, or the phrasings of the entry just published) gains nothing from intra-op
        parallelism and loses a lot when the cores are busy: measured p50 21 ms with one thread vs 171 ms with two
        for one question on this project's two-core machine under load. OpenMP thread counts belong to the calling
        thread, so batch encoders elsewhere in the process keep theirs.
        """
        import torch

        previous = torch.get_num_threads()
        change = bool(self.query_threads) and previous != self.query_threads
        if change:
            torch.set_num_threads(self.query_threads)
        try:
            yield
        finally:
            if change:
                torch.set_num_threads(previous)

    @staticmethod
    def _query_key(question: str) -> bytes:
        return hashlib.sha256(normalise(question).encode("utf-8")).digest()

    def _cached_query_vector(self, key: bytes) -> np.ndarray | None:
        cached = self._query_cache.get(key)
        if cached is not None:
            with contextlib.suppress(KeyError):  # another thread may have evicted it meanwhile
                self._query_cache.move_to_end(key)
        return cached

    def _remember_query_vector(self, key: bytes, vector: np.ndarray) -> None:
        self._query_cache[key] = vector
        if len(self._query_cache) > QUERY_CACHE_SIZE:
            with contextlib.suppress(KeyError):
                self._query_cache.popitem(last=False)

    def embed_query(self, question: str) -> np.ndarray:
        """The question's vector (``query:`` prompt). Vectors of recent questions are kept in a small LRU keyed by a
        hash of the normalised text (hotline questions repeat a lot); the text itself is not kept."""
        key = self._query_key(question)
        vector = self._cached_query_vector(key)
        return vector if vector is not None else self._encode_query(key, question)

    def _encode_query(self, key: bytes, question: str) -> np.ndarray:
        """A question's vector that is not in the LRU yet, remembered there under ``key``."""
        with self._few_threads():
            vector = self.query_encoder.encode_queries([normalise(question)])[0]
        self._remember_query_vector(key, vector)
        return vector

    def _embed_passages(self, texts: list[str]) -> np.ndarray:
        key_root = str(self.encoder_dir)
        missing = [t for t in dict.fromkeys(texts) if (key_root, t) not in _PASSAGE_CACHE]
        for start in range(0, len(missing), EMBED_BATCH):
            chunk = missing[start:start + EMBED_BATCH]
            if len(missing) <= 16:  # a publish: few texts, latency matters
                with self._few_threads():
                    vectors = self.embedder.encode_passages(chunk)
            else:
                vectors = self.embedder.encode_passages(chunk)
            if len(_PASSAGE_CACHE) + len(chunk) > _PASSAGE_CACHE_MAX:
                _PASSAGE_CACHE.clear()
            for text, vec in zip(chunk, vectors):
                _PASSAGE_CACHE[(key_root, text)] = vec
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return np.stack([_PASSAGE_CACHE[(key_root, t)] for t in texts]).astype(np.float32)

    def _vectors_for(self, entries: list[IndexedEntry]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(phrasing, answer, counter-example) vectors of the entries, each in entry order."""
        phrasing_texts = [p for e in entries for p in e.phrasings]
        counter_texts = [c for e in entries for c in e.counter_examples]
        vectors = self._embed_passages(phrasing_texts + [e.answer for e in entries] + counter_texts)
        n_ph, n_ans = len(phrasing_texts), len(entries)
        return vectors[:n_ph], vectors[n_ph:n_ph + n_ans], vectors[n_ph + n_ans:]

    # ------------------------------------------------------------------ answering

    def retriever(self, config: RetrievalConfig | None = None) -> HybridRetriever:
        return HybridRetriever(self.index, self.query_encoder if (config or self.config).mode != "lexical" else None,
                               config or self.config)

    def answer(self, question: str, *, log_unanswered: bool = True, session: Session | None = None) -> KBResult:
        """Answer from a published entry, or decline (with suggestions) - declines are logged unless told not to."""
        question = (question or "").strip()[:MAX_QUESTION_CHARS]
        if not normalise(question):
            return DECLINED_EMPTY
        region = other_region(question)
        if region:  # not a gap of the knowledge base: not logged as unanswered
            return replace(DECLINED_EMPTY, other_region=region)
        self.index  # load (or build) on first use
        self.maybe_reload()
        config = self.config
        qvec = lexical = None
        if config.mode != "lexical":
            key = self._query_key(question)
            qvec = self._cached_query_vector(key)
            if qvec is None and config.mode == "hybrid" and hasattr(self.query_encoder, "encode_query_alongside"):
                # BM25 and the lexical features need no vector: a worker thread computes them while ONNX Runtime
                # runs the question's transformer layers (~1 ms of the answer hidden on an idle machine)
                qvec, lexical = self.query_encoder.encode_query_alongside(
                    normalise(question), lambda: self._lexical_part(question, config), _LEXICAL_POOL)
                self._remember_query_vector(key, qvec)
            elif qvec is None:
                qvec = self._encode_query(key, question)
        with self._lock:
            cands = HybridRetriever(self.index, None, config).candidates(question, query_vector=qvec, lexical=lexical)
        hits = cands.hits(config, FETCH_DEPTH)
        if session is not None:
            result = self._decide(session, hits, {}, config)
        else:
            with self.sessions() as s:
                result = self._decide(s, hits, {}, config)
        if not result.answered and log_unanswered:
            try:
                self.log_unanswered(question, result)
            except Exception:  # noqa: BLE001 - never fail an answer because the log write failed
                logger.exception("could not log an unanswered question")
        return result

    def _lexical_part(self, question: str, config: RetrievalConfig) -> LexicalPart:
        with self._lock:
            return HybridRetriever(self.index, None, config).lexical_candidates(question)

    def _decide(self, session: Session, hits: list[Hit], overlay_content: dict[str, tuple[int, dict[str, Any]]],
                config: RetrievalConfig) -> KBResult:
        top = hits[:FETCH_DEPTH]
        today = self.today()
        confidences = [config.confidence(hit.decision_score) for hit in top]
        served: dict[str, repository.ServedEntry] = {}
        asked: set[str] = set()

        def fetch(wanted: list[Hit]) -> None:
            slugs = [h.slug for h in wanted if h.slug not in overlay_content and h.slug not in asked]
            asked.update(slugs)
            if slugs:
                served.update(repository.servable(session, slugs, today))

        def usable_entry(hit: Hit) -> tuple[Hit, int, dict[str, Any], bool] | None:
            if hit.slug in overlay_content:
                version, content = overlay_content[hit.slug]
                expires = content.get("expires_on")
                return None if expires is not None and expires < today else (hit, version, content, True)
            if hit.slug in served:
                entry = served[hit.slug]
                return hit, entry.version, entry.content, False
            return None

        # Only what the decision can use is read from the database: the first two servable hits (the answer and
        # the runner-up) and every hit confident enough to be a suggestion - not all ten candidates' content.
        prefix = 2
        fetch(top[:prefix] + [h for h, c in zip(top, confidences) if c >= config.suggest_min])
        while prefix < len(top) and sum(usable_entry(h) is not None for h in top[:prefix]) < 2:
            prefix += 2
            fetch(top[:prefix])
        usable = [u for h in top if (u := usable_entry(h)) is not None]
        if not usable:
            return DECLINED_EMPTY
        best, version, content, draft = usable[0]
        runner = usable[1][0].decision_score if len(usable) > 1 else None
        confidence = config.confidence(best.decision_score, runner)
        answered = confidence >= config.threshold
        suggestions = []
        for hit, _, c, _ in usable[1 if answered else 0:]:
            conf = config.confidence(hit.decision_score)
            if conf >= config.suggest_min and len(suggestions) < config.suggestions:
                suggestions.append((hit.slug, c["question"], conf))
        if not answered:
            return KBResult(False, None, None, None, None, confidence, suggestions)
        return KBResult(True, best.slug, content["question"], content["answer"], content.get("department") or None,
                        confidence, suggestions, version=version, source=content.get("source") or None, draft=draft)

    def log_unanswered(self, question: str, result: KBResult) -> None:
        text, fp = fingerprint(question)
        best_slug = result.suggestions[0][0] if result.suggestions else None
        self._log_question("declined", text, fp, best_slug, float(result.score))
        logger.info("knowledge base declined a question", extra={"fingerprint": fp[:12]})

    def log_unhelpful(self, question: str, entry_slug: str) -> None:
        """The citizen said the answer from ``entry_slug`` did not help: kept (anonymised, counted per question and
        entry) for editors, who may add the question to the entry's counter-examples or write a new entry."""
        text, fp = fingerprint(question)
        fp = hashlib.sha256(f"unhelpful|{entry_slug}|{fp}".encode()).hexdigest()
        self._log_question("unhelpful", text, fp, entry_slug, None)
        logger.info("a knowledge-base answer did not help", extra={"fingerprint": fp[:12], "entry": entry_slug})

    def _log_question(self, kind: str, text: str, fp: str, best_slug: str | None, score: float | None) -> None:
        now = utcnow()
        with self.sessions() as session:
            dialect = session.get_bind().dialect.name
            values = dict(fingerprint=fp, kind=kind, question=text, count=1, best_entry_slug=best_slug,
                          best_score=score, first_seen=now, last_seen=now)
            if dialect in ("postgresql", "sqlite"):
                if dialect == "postgresql":
                    from sqlalchemy.dialects.postgresql import insert
                else:
                    from sqlalchemy.dialects.sqlite import insert
                stmt = insert(KBUnanswered).values(**values)
                stmt = stmt.on_conflict_do_update(
                    index_elements=[KBUnanswered.fingerprint],
                    set_={"count": KBUnanswered.count + 1, "last_seen": now, "best_entry_slug": best_slug,
                          "best_score": score})
                session.execute(stmt)
            else:  # pragma: no cover - other databases: read-modify-write
                row = session.scalar(select(KBUnanswered).where(KBUnanswered.fingerprint == fp))
                if row is None:
                    session.add(KBUnanswered(**values))
                else:
                    session.execute(update(KBUnanswered).where(KBUnanswered.id == row.id)
                                    .values(count=KBUnanswered.count + 1, last_seen=now))
            session.commit()

    def preview(self, session: Session, question: str, *, include_drafts: bool = True) -> KBResult:
        """Answer as the bot would, but with drafts and unpublished edits searched as if published. Logs nothing."""
        question = (question or "").strip()[:MAX_QUESTION_CHARS]
        if not normalise(question):
            return DECLINED_EMPTY
        region = other_region(question)
        if region:  # declined as the bot would
            return replace(DECLINED_EMPTY, other_region=region)
        self.index  # load (or build) on first use
        self.maybe_reload()
        overlay: list[OverlayEntry] = []
        overlay_content: dict[str, tuple[int, dict[str, Any]]] = {}
        if include_drafts:
            drafts = repository.pending_drafts(session)
            new = []
            for entry in drafts:
                key = (entry.slug, entry.current_version)
                if key not in self._draft_vectors:
                    new.append((key, indexed_entry(entry.slug, entry.current_version, repository.content_of(entry))))
                overlay_content[entry.slug] = (entry.current_version, repository.content_of(entry))
            if new:
                ph, ans, ctr = self._vectors_for([ie for _, ie in new])
                offset = counter_at = 0
                for i, (key, ie) in enumerate(new):
                    n, k = len(ie.phrasings), len(ie.counter_examples)
                    self._draft_vectors[key] = (ie, ph[offset:offset + n], ans[i], ctr[counter_at:counter_at + k])
                    offset += n
                    counter_at += k
            keys = {(e.slug, e.current_version) for e in drafts}
            for key in [k for k in self._draft_vectors if k not in keys]:
                del self._draft_vectors[key]
            overlay = [OverlayEntry(*self._draft_vectors[k]) for k in keys]
        config = self.config
        qvec = self.embed_query(question) if config.mode != "lexical" else None
        with self._lock:
            cands = HybridRetriever(self.index, None, config).candidates(question, query_vector=qvec,
                                                                         overlay=overlay)
        return self._decide(session, cands.hits(config, FETCH_DEPTH), overlay_content, config)

    # ------------------------------------------------------------------ editors' operations that change what is served

    def publish(self, session: Session, slug: str, author: str, **kwargs: Any):
        """Publish (repository.publish), commit, and make the entry servable at once (incremental index update)."""
        entry, changed = repository.publish(session, slug, author, **kwargs)
        session.commit()
        if changed:
            self.sync([slug], session)
        return entry

    def unpublish(self, session: Session, slug: str, author: str, **kwargs: Any):
        entry, changed = repository.unpublish(session, slug, author, **kwargs)
        session.commit()
        if changed:
            self.sync([slug], session)
        return entry

    def archive(self, session: Session, slug: str, author: str, **kwargs: Any):
        entry, changed = repository.archive(session, slug, author, **kwargs)
        session.commit()
        if changed:
            self.sync([slug], session)
        return entry

    def rollback(self, session: Session, slug: str, version: int, author: str, **kwargs: Any):
        entry = repository.rollback(session, slug, version, author, **kwargs)
        session.commit()
        if entry.status == "published":
            self.sync([slug], session)
        return entry

    # ------------------------------------------------------------------ keeping the index in line

    def sync(self, slugs: Iterable[str], session: Session | None = None) -> dict[str, Any]:
        """After editors' committed changes: re-index exactly these entries (upsert the servable ones, remove the
        rest), then persist a delta snapshot. Other processes pick it up on their next question."""
        slugs = list(dict.fromkeys(slugs))
        if not slugs:
            return {"upserted": [], "removed": [], "snapshot": None}
        started = time.perf_counter()
        if session is None:
            with self.sessions() as s:
                return self.sync(slugs, s)
        with writer_lock(self.index_dir):
            if self._index is None or read_current(self.index_dir) is None:
                self._index = None
                try:
                    self._index = KBIndex.load(self.index_dir)
                except (FileNotFoundError, IndexFormatError):
                    return {**self._build(session), "upserted": slugs, "removed": []}
            with self._lock:
                self._index.refresh(self.index_dir)
            state = repository.published_state(session, self.today(), slugs)
            contents = repository.published_contents(session, [s for s in slugs if s in state])
            entries = [indexed_entry(s, v, c) for s, (v, c) in contents.items()]
            ph, ans, ctr = self._vectors_for(entries)
            removed = [s for s in slugs if s not in contents]
            with self._lock:
                if entries:
                    self._index.upsert_many(entries, ph, ans, counter_vectors=ctr)
                removed = [s for s in removed if self._index.remove(s)]
                snapshot = self._index.save(self.index_dir)
                self._current_stat = self._stat_current()
        took = time.perf_counter() - started
        logger.info("knowledge-base index updated", extra={"upserted": len(entries), "removed": len(removed),
                                                           "seconds": round(took, 3)})
        return {"upserted": [e.slug for e in entries], "removed": removed, "snapshot": list(snapshot),
                "seconds": round(took, 3)}

    def ensure_index(self, session: Session | None = None) -> dict[str, Any]:
        """Build the index if missing or outdated (other encoder, other content schema); otherwise bring it in line
        with the database's published set incrementally. Returns what was done."""
        if session is None:
            with self.sessions() as s:
                return self.ensure_index(s)
        with writer_lock(self.index_dir):
            try:
                index = KBIndex.load(self.index_dir)
            except (FileNotFoundError, IndexFormatError):
                return self._build(session)
            if index.meta != self.index_meta:
                return self._build(session)
            state = repository.published_state(session, self.today())
            stale = [s for s, v in state.items() if index.versions.get(s) != v]
            gone = [s for s in index.versions if s not in state]
            if not stale and not gone:
                with self._lock:
                    self._index = index
                    self._current_stat = self._stat_current()
                return {"action": "up to date", "entries": len(index), "snapshot": list(index.snapshot or ())}
            contents = repository.published_contents(session, stale)
            entries = [indexed_entry(s, v, c) for s, (v, c) in contents.items()]
            ph, ans, ctr = self._vectors_for(entries)
            if entries:
                index.upsert_many(entries, ph, ans, counter_vectors=ctr)
            for slug in gone:
                index.remove(slug)
            snapshot = index.save(self.index_dir)
            with self._lock:
                self._index = index
                self._current_stat = self._stat_current()
            return {"action": "updated", "upserted": len(entries), "removed": len(gone), "entries": len(index),
                    "snapshot": list(snapshot)}

    def rebuild(self, session: Session | None = None) -> dict[str, Any]:
        """Disaster recovery: re-embed every published entry into a fresh index and swap it in."""
        if session is None:
            with self.sessions() as s:
                return self.rebuild(s)
        with writer_lock(self.index_dir):
            return self._build(session)

    def _build(self, session: Session) -> dict[str, Any]:
        started = time.perf_counter()
        state = repository.published_state(session, self.today())
        contents = repository.published_contents(session, list(state))
        entries = [indexed_entry(s, v, c) for s, (v, c) in sorted(contents.items())]
        ph, ans, ctr = self._vectors_for(entries)
        dim = ph.shape[1] if len(ph) else int(getattr(self.embedder, "dim", 384))
        index = KBIndex(dim, dense_kind=self.dense_kind, meta=self.index_meta)
        if entries:
            index.upsert_many(entries, ph, ans, journal=False, counter_vectors=ctr)
        snapshot = index.save(self.index_dir, full=True)
        with self._lock:
            self._index = index
            self._current_stat = self._stat_current()
        return {"action": "built", "entries": len(index), "rows": index.live_rows, "snapshot": list(snapshot),
                "seconds": round(time.perf_counter() - started, 1)}


_DEFAULT: KnowledgeBase | None = None
_DEFAULT_LOCK = threading.Lock()


def get_knowledge_base() -> KnowledgeBase:
    """The process-wide knowledge base on the configured database, index folder and encoder."""
    global _DEFAULT
    if _DEFAULT is None:
        with _DEFAULT_LOCK:
            if _DEFAULT is None:
                _DEFAULT = KnowledgeBase()
    return _DEFAULT


def set_knowledge_base(kb: KnowledgeBase | None) -> None:
    """Replace the process-wide instance (tests, or a process configured by hand)."""
    global _DEFAULT
    _DEFAULT = kb


def answer(question: str) -> KBResult:
    """Answer a citizen's question from the published knowledge base, or decline with suggestions."""
    return get_knowledge_base().answer(question)
