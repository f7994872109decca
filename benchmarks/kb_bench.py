"""Knowledge-base latency at 1k, 10k and 100k entries: query end to end and publish-to-servable. Prints JSON.

    python -m benchmarks.kb_bench [--sizes 1000,10000,100000] [--queries 200] [--out reports/benchmarks/kb_bench.json]

Set-up (in a temporary folder, SQLite): the real seed entries (real passage vectors from the encoder) plus filler
entries up to each size, inserted into the database as published entries with versions, so the per-question fetch
queries a table of that size. Filler entries get as many phrasings as a random seed entry; their dense vectors are
**random unit vectors** (embedding 500k filler phrasings would take hours on two cores) and their BM25 tokens are
sampled from the seed's token distribution. Every query is a real question from the evaluation set and its embedding
is computed on every call (no cache) by the question encoder the knowledge base uses (e5-small's layers in
ONNX Runtime, int8, unless JSJB_KB_QUERY_ENCODER=full), so "end to end" = embed + search (FAISS + BM25 + features)
+ fetch of the servable entries from the database + decision.

Random filler vectors are nearly orthogonal to real questions, so they do not compete with real entries for the
answer (the quality check reports how often the answer differs from the seed-only index); for HNSW they are the hard
case (no cluster structure), so the HNSW timings are conservative.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.report import emit  # noqa: E402


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def summary_ms(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {"p50_ms": round(pct(ms, 50), 2), "p95_ms": round(pct(ms, 95), 2), "mean_ms": round(statistics.mean(ms), 2),
            "n": len(ms)}


def insert_fillers(engine, start: int, stop: int, rng: np.random.Generator, vocab: list[str],
                   phrasing_counts: list[int]) -> list:
    """Insert filler entries ``start..stop-1`` (published, version 1); returns their IndexedEntry objects."""
    from sqlalchemy import insert, select, func

    from knowledge_base.content import to_json
    from knowledge_base.index import IndexedEntry
    from knowledge_base.orm import KBEntry, KBEntryVersion, utcnow

    entries = []
    now = utcnow()
    with engine.begin() as conn:
        next_id = (conn.execute(select(func.max(KBEntry.id))).scalar() or 0) + 1
        entry_rows, version_rows = [], []
        for i in range(start, stop):
            n = phrasing_counts[int(rng.integers(0, len(phrasing_counts)))]
            token_lists = [list(rng.choice(vocab, size=int(rng.integers(4, 9)))) for _ in range(n)]
            phrasings = tuple(dict.fromkeys("".join(t) for t in token_lists))
            slug = f"filler-{i:06d}"
            content = {"question": phrasings[0], "alternatives": list(phrasings[1:]),
                       "answer": "填充条目，仅用于性能测试。", "department": "测试", "region": "北京市", "source": "",
                       "effective_from": None, "review_by": None, "expires_on": None, "tags": []}
            entry_rows.append({"id": next_id, "slug": slug, "status": "published", "current_version": 1,
                               "published_version": 1, "created_at": now, "updated_at": now, **content})
            version_rows.append({"entry_id": next_id, "version": 1, "action": "seed", "status": "published",
                                 "content": to_json(content), "author": "benchmark", "note": "", "created_at": now})
            entries.append(IndexedEntry(slug, 1, phrasings, content["answer"],
                                        tuple(t for toks in token_lists for t in toks)))
            next_id += 1
        for chunk in range(0, len(entry_rows), 5000):
            conn.execute(insert(KBEntry), entry_rows[chunk:chunk + 5000])
            conn.execute(insert(KBEntryVersion), version_rows[chunk:chunk + 5000])
    return entries


def random_unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def main(argv: list[str] | None = None) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="kb_bench_"))
    try:
        return run(argv, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(argv: list[str] | None, tmp: Path) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kb_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--queries", type=int, default=200, help="questions timed per size")
    parser.add_argument("--publishes", type=int, default=5, help="publish-to-servable repetitions per size")
    parser.add_argument("--flat-compare", action="store_true", default=True,
                        help="also time exact (flat) dense search at sizes where HNSW is used")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--profile", type=Path, default=None,
                        help="write cProfile statistics of the end-to-end queries at the largest size to this file "
                             "(the timings of that size then include the profiler's overhead)")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))

    # the benchmark's database and index go to ``tmp``; the encoder stays where the configured data folder has it
    models = Path(os.environ.get("JSJB_DATA_DIR", ROOT / "var")) / "models"
    os.environ.setdefault("JSJB_ENCODER_DIR", str(models / "encoder"))
    os.environ.setdefault("JSJB_ONNX_QUERY_DIR", str(models / "onnx-query"))
    os.environ.setdefault("JSJB_DATA_DIR", str(tmp))
    import faiss
    import torch

    from core.config import get_settings
    from core.db import make_engine, migrate, session_factory
    from encoder.embedder import get_embedder
    from knowledge_base import repository as repo
    from knowledge_base.content import indexed_entry
    from knowledge_base.evaluate import load_questions
    from knowledge_base.index import KBIndex
    from knowledge_base.retrieval import HybridRetriever
    from knowledge_base.seed import load_seed_entries, seed_knowledge_base
    from knowledge_base.service import KnowledgeBase

    settings = get_settings()
    url = f"sqlite:///{tmp / 'bench.db'}"
    migrate(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    with sessions() as s:
        seed_knowledge_base(s)
        s.commit()
    embedder = get_embedder(settings.resolved_encoder_dir, num_threads=settings.torch_threads)
    seed = [indexed_entry(slug, 1, content) for slug, content in load_seed_entries()]
    helper = KnowledgeBase(index_dir=tmp / "unused", sessions=sessions, embedder=embedder)
    started = time.perf_counter()
    seed_ph, seed_ans, seed_ctr = helper._vectors_for(seed)
    seed_embed_s = time.perf_counter() - started
    dim = seed_ph.shape[1]
    questions = [q.text for q in load_questions()]
    rng = np.random.default_rng(12345)
    rng.shuffle(questions)
    timed = questions[: args.queries]
    vocab = sorted({t for e in seed for t in e.lexical_tokens})
    phrasing_counts = [len(e.phrasings) for e in seed]
    from knowledge_base.service import query_encoder_kind

    query_encoder = helper.query_encoder  # settings: int8 ONNX layers (JSJB_KB_QUERY_ENCODER=full: PyTorch float32)
    for q in questions[:5]:
        query_encoder.encode_queries([q])  # warm-up

    # reference answers: the seed-only index (flat)
    ref_index = KBIndex(dim, dense_kind="flat")
    ref_index.upsert_many(seed, seed_ph, seed_ans, journal=False, counter_vectors=seed_ctr)
    qvecs = {q: helper.embed_query(q) for q in timed}
    ref_top = {q: HybridRetriever(ref_index, None, helper.config).candidates(q, query_vector=qvecs[q])
               .hits(helper.config)[0].slug for q in timed}

    results = []
    inserted = len(seed)
    all_fillers: list = []
    for size in sizes:
        fillers = insert_fillers(engine, inserted, size, rng, vocab, phrasing_counts) if size > inserted else []
        inserted = max(inserted, size)
        all_fillers += fillers
        t0 = time.perf_counter()
        index = KBIndex(dim, dense_kind="auto", meta=helper.index_meta)
        index.upsert_many(seed, seed_ph, seed_ans, journal=False, counter_vectors=seed_ctr)
        filler_rows = 0
        for chunk in range(0, len(all_fillers), 20000):
            part = all_fillers[chunk:chunk + 20000]
            rows = sum(len(e.phrasings) for e in part)
            filler_rows += rows
            index.upsert_many(part, random_unit(rng, rows, dim), random_unit(rng, len(part), dim), journal=False)
        build_s = time.perf_counter() - t0
        index_dir = tmp / f"index_{size}"
        t0 = time.perf_counter()
        index.save(index_dir, full=True)
        save_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        kb = KnowledgeBase(index_dir=index_dir, sessions=sessions, embedder=embedder, query_encoder=query_encoder)
        kb.index  # load the snapshot
        load_s = time.perf_counter() - t0
        other = KnowledgeBase(index_dir=index_dir, sessions=sessions, embedder=embedder, query_encoder=query_encoder)
        other.index
        for q in timed[:5]:
            kb.answer(q, log_unanswered=False)

        end_to_end, embed, search, fetch = [], [], [], []
        profiler = cProfile.Profile() if args.profile and size == sizes[-1] else None
        same_top = 0
        repeated = []
        for q in timed:
            kb._query_cache.clear()
            if profiler is not None:
                profiler.enable()
            t0 = time.perf_counter()
            result = kb.answer(q, log_unanswered=False)
            end_to_end.append(time.perf_counter() - t0)
            if profiler is not None:
                profiler.disable()
            t0 = time.perf_counter()
            kb.answer(q, log_unanswered=False)  # the same question again: its vector comes from the LRU
            repeated.append(time.perf_counter() - t0)
            kb._query_cache.clear()  # every timed question is embedded afresh
            t0 = time.perf_counter()
            vec = kb.embed_query(q)
            embed.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            hits = HybridRetriever(kb.index, None, kb.config).candidates(q, query_vector=vec).hits(kb.config)
            search.append(time.perf_counter() - t0)
            with sessions() as s:
                t0 = time.perf_counter()
                kb._decide(s, hits, {}, kb.config)
                fetch.append(time.perf_counter() - t0)
            same_top += hits[0].slug == ref_top[q]
            del result
        if profiler is not None:
            profiler.dump_stats(str(args.profile))
        flat_search = None
        if args.flat_compare and index.kind == "hnsw":
            flat = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
            rows = np.fromiter(index.row_slug.keys(), dtype=np.int64, count=len(index.row_slug))
            for chunk in range(0, len(rows), 50000):
                ids = rows[chunk:chunk + 50000]
                flat.add_with_ids(index._reconstruct(ids), ids)
            times = []
            for q in timed:
                t0 = time.perf_counter()
                flat.search(qvecs[q].reshape(1, -1), 48)
                times.append(time.perf_counter() - t0)
            hnsw_times = []
            for q in timed:
                t0 = time.perf_counter()
                index.search_dense(qvecs[q], 30)
                hnsw_times.append(time.perf_counter() - t0)
            flat_search = {"flat_dense_search": summary_ms(times), "hnsw_dense_search": summary_ms(hnsw_times)}
            del flat

        # publish-to-servable: edit + publish + commit, then time until the answer is served in this process and in
        # another KnowledgeBase instance that shares the index folder (what another worker process does)
        publish_times, other_times, sync_times = [], [], []
        question = "居住证怎么办理"
        for rep in range(args.publishes):
            marker = f"【基准测试{size}-{rep}】居住证请通过“京通”小程序在线申请。"
            with sessions() as s:
                t_start = time.perf_counter()
                repo.edit(s, "residence-permit-apply", {"answer": marker}, "benchmark")
                repo.publish(s, "residence-permit-apply", "benchmark")
                s.commit()
                t_sync = time.perf_counter()
                kb.sync(["residence-permit-apply"], s)
                sync_times.append(time.perf_counter() - t_sync)
            served = kb.answer(question, log_unanswered=False)
            publish_times.append(time.perf_counter() - t_start)
            assert served.answer == marker, (served.entry_id, served.answer)
            t_other = time.perf_counter()
            other.maybe_reload()
            assert other.index.versions["residence-permit-apply"] == kb.index.versions["residence-permit-apply"]
            assert other.answer(question, log_unanswered=False).answer == marker
            other_times.append(time.perf_counter() - t_other)
        results.append({
            "entries": size,
            "filler_entries": len(all_fillers),
            "dense_rows": index.live_rows,
            "dense_index": index.kind,
            "index_build_s": round(build_s, 1),
            "snapshot_write_s": round(save_s, 2),
            "snapshot_load_s": round(load_s, 2),
            "query_end_to_end": summary_ms(end_to_end),
            "query_end_to_end_repeated_question": summary_ms(repeated),
            "query_embed_only": summary_ms(embed),
            "query_search_only": summary_ms(search),
            "query_fetch_and_decide_only": summary_ms(fetch),
            "same_top1_as_seed_only_index": round(same_top / len(timed), 3),
            **({"dense_search_hnsw_vs_flat": flat_search} if flat_search else {}),
            "publish_to_servable_same_process": summary_ms(publish_times),
            "publish_index_update_only": summary_ms(sync_times),
            "picked_up_by_other_instance": summary_ms(other_times),
        })
        print(json.dumps(results[-1], ensure_ascii=False), file=sys.stderr, flush=True)
        del index, kb, other

    report = {
        "benchmark": "knowledge base query and publish latency",
        "date": date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
                    "faiss": faiss.__version__},
        "method": ("SQLite database with the real seed entries plus filler entries up to each size; seed vectors "
                   "real, filler dense vectors random unit vectors (FAISS part only) and filler BM25 tokens sampled "
                   "from the seed vocabulary; each timed query is a real evaluation question embedded by the real "
                   "question encoder the knowledge base uses (see query_encoder) on every call. end_to_end = KnowledgeBase.answer(): embed + FAISS/BM25 search + "
                   "features + fetch of servable entries from the database + decision. publish_to_servable = "
                   "edit+publish+commit, incremental index update (delta snapshot) and the first answer serving the "
                   "new text; picked_up_by_other_instance = another KnowledgeBase on the same index folder "
                   "noticing CURRENT, replaying the delta and serving the new text."),
        "query_encoder": query_encoder_kind(query_encoder),
        "seed_entries": len(seed),
        "seed_embedding_s": round(seed_embed_s, 1),
        "queries_per_size": len(timed),
        "results": results,
        "target": "query p50 <= 10 ms at 100k entries",
    }
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
