"""The index itself (no model needed): exact incremental BM25, flat and HNSW dense search with removals, delta
snapshots replayed by another reader, atomic CURRENT, pruning."""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from knowledge_base.index import MAX_DELTAS, IndexedEntry, KBIndex, read_current
from knowledge_base.lexical import LexicalIndex

DIM = 16


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def entry(slug: str, n: int = 3, version: int = 1, words: tuple[str, ...] = ()) -> IndexedEntry:
    return IndexedEntry(slug, version, tuple(f"{slug} 问法{i}" for i in range(n)), f"{slug} 答案",
                        words or (slug, "通用"))


def brute_bm25(docs: dict[str, list[str]], query: list[str], k1: float = 1.2, b: float = 0.75) -> dict[str, float]:
    n = len(docs)
    avgdl = sum(len(d) for d in docs.values()) / n
    df = Counter(t for d in docs.values() for t in set(d))
    out = {}
    for slug, d in docs.items():
        tf = Counter(d)
        s = 0.0
        for t in dict.fromkeys(query):
            if tf[t]:
                idf = math.log1p((n - df[t] + 0.5) / (df[t] + 0.5))
                s += idf * tf[t] * (k1 + 1) / (tf[t] + k1 * (1 - b + b * len(d) / avgdl))
        if s > 0:
            out[slug] = s
    return out


def test_lexical_index_stays_exact_bm25_through_adds_removes_and_compaction():
    rng = np.random.default_rng(1)
    vocab = [f"w{i}" for i in range(40)]
    docs: dict[str, list[str]] = {}
    index = LexicalIndex()
    for step in range(300):
        slug = f"d{rng.integers(0, 60)}"
        if rng.random() < 0.25 and slug in docs:
            index.remove(slug)
            del docs[slug]
        else:
            toks = list(rng.choice(vocab, size=int(rng.integers(1, 12))))
            index.add(slug, toks)
            docs[slug] = toks
        if step % 97 == 0:
            index.compact()
        if step % 20 == 0 and docs:
            query = list(rng.choice(vocab, size=3))
            expected = brute_bm25(docs, query)
            got = dict(index.search(query, 100))
            assert got.keys() == expected.keys()
            for slug, score in expected.items():
                assert got[slug] == pytest.approx(score, rel=1e-4)
            slugs = list(docs)
            exact = index.score_slugs(query, slugs)
            assert np.allclose(exact, [expected.get(s, 0.0) for s in slugs], rtol=1e-4)


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_dense_search_never_returns_removed_entries(kind):
    rng = np.random.default_rng(2)
    index = KBIndex(DIM, dense_kind=kind)
    entries = [entry(f"e{i}") for i in range(50)]
    vecs = unit(rng, 150)
    index.upsert_many(entries, vecs, unit(rng, 50))
    target = vecs[10 * 3]  # first phrasing of e10
    assert index.search_dense(target, 5).slugs[0] == "e10"
    index.remove("e10")
    assert "e10" not in index.search_dense(target, 50).slugs
    # republishing with new vectors: the old rows never come back
    index.upsert(entry("e11", version=2), unit(rng, 3), unit(rng, 1)[0])
    assert index.versions["e11"] == 2 and len(index.slug_rows["e11"]) == 3
    hits = index.search_dense(vecs[11 * 3], 50)
    assert hits.slugs.count("e11") <= 1 and hits.scores == sorted(hits.scores, reverse=True)
    if kind == "hnsw":
        assert len(index.dead_rows) == 6
        index.compact()
        assert not index.dead_rows and index.dense.ntotal == index.live_rows == 49 * 3


def test_auto_kind_switches_to_hnsw_above_the_row_threshold():
    rng = np.random.default_rng(3)
    index = KBIndex(DIM, dense_kind="auto", hnsw_min_rows=60)
    index.upsert_many([entry(f"e{i}") for i in range(10)], unit(rng, 30), unit(rng, 10))
    assert index.kind == "flat"
    vecs = unit(rng, 60)
    index.upsert_many([entry(f"f{i}") for i in range(20)], vecs, unit(rng, 20))
    assert index.kind == "hnsw" and index.live_rows == 90
    assert index.search_dense(vecs[0], 3).slugs[0] == "f0"
    assert index.search_dense(index.dense.reconstruct(index.slug_rows["e3"][1]), 3).slugs[0] == "e3"


def test_delta_snapshots_are_replayed_by_another_reader(tmp_path):
    rng = np.random.default_rng(4)
    writer = KBIndex(DIM, dense_kind="flat", meta={"encoder": "x"})
    writer.upsert_many([entry(f"e{i}") for i in range(20)], unit(rng, 60), unit(rng, 20), journal=False)
    base = writer.save(tmp_path, full=True)
    reader = KBIndex.load(tmp_path)
    assert reader.snapshot == base and len(reader) == 20 and reader.meta == {"encoder": "x"}
    new_vecs = unit(rng, 2)
    writer.upsert(entry("e3", n=2, version=2, words=("新词",)), new_vecs, unit(rng, 1)[0])
    writer.remove("e5")
    state = writer.save(tmp_path)
    assert state == (base[0], 1) and read_current(tmp_path) == state
    assert reader.refresh(tmp_path) is True and reader.snapshot == state
    assert reader.versions["e3"] == 2 and "e5" not in reader and len(reader) == 19
    assert reader.search_dense(new_vecs[0], 1).slugs == ["e3"]
    assert reader.search_lexical(["新词"], 3)[0][0] == "e3"
    assert np.allclose(reader.aux["e3"], writer.aux["e3"])
    assert reader.refresh(tmp_path) is False
    # after MAX_DELTAS deltas the next save writes a new base; a reader loads it whole
    for i in range(MAX_DELTAS):
        writer.upsert(entry(f"n{i}"), unit(rng, 3), unit(rng, 1)[0])
        writer.save(tmp_path)
    assert read_current(tmp_path)[0] != base[0] and read_current(tmp_path)[1] == 0
    assert reader.refresh(tmp_path) is True
    assert set(reader.versions) == set(writer.versions) and reader.live_rows == writer.live_rows
    fresh = KBIndex.load(tmp_path)
    assert fresh.versions == writer.versions
    assert len([p for p in (tmp_path / "snapshots").iterdir() if not p.name.startswith(".")]) <= 3


def test_surface_similarity_is_computed_at_indexing_and_survives_snapshots_and_deltas(tmp_path):
    """The best character-bigram Dice per entry (the 'exact' feature) equals the set computation, is saved with a
    full snapshot, replayed with deltas, and recomputed for a snapshot written before the surface files existed."""
    from knowledge_base.seed import load_seed_entries
    from knowledge_base.content import indexed_entry
    from knowledge_base.surface import ARRAYS_FILE, VOCAB_FILE
    from knowledge_base.text import char_bigrams, dice

    seed = [indexed_entry(slug, 1, content) for slug, content in load_seed_entries()[:60]]
    rng = np.random.default_rng(3)
    index = KBIndex(DIM, dense_kind="flat")
    index.upsert_many(seed, unit(rng, sum(len(e.phrasings) for e in seed)), unit(rng, len(seed)),
                      counter_vectors=unit(rng, sum(len(e.counter_examples) for e in seed)))
    questions = ["居住证怎么办", "狗证年检在哪里办", "社保卡丢了咋补", "进京证一年能办几次", "公积金提取需要什么材料",
                 seed[5].phrasings[1], "好"]
    slugs = [e.slug for e in seed] + ["no-such-entry"]

    def expected(q: str) -> np.ndarray:
        g = char_bigrams(q)
        return np.array([max((dice(g, char_bigrams(p)) for p in index.phrasings.get(s, ())), default=0.0)
                         for s in slugs], dtype=np.float32)

    for q in questions:
        np.testing.assert_allclose(index.surface.best_dice(char_bigrams(q), slugs), expected(q), rtol=1e-6)
    assert index.surface.best_dice(char_bigrams(seed[5].phrasings[1]), [seed[5].slug])[0] == pytest.approx(1.0)

    root = tmp_path / "index"
    index.save(root, full=True)
    snap = root / "snapshots" / read_current(root)[0]
    assert (snap / ARRAYS_FILE).exists() and (snap / VOCAB_FILE).exists()
    changed = IndexedEntry(seed[0].slug, 2, ("养猫要不要办证", "猫需要登记吗"), "答案", ("猫", "登记"))
    index.upsert(changed, unit(rng, 2), unit(rng, 1)[0])
    index.remove(seed[1].slug)
    index.save(root)  # a delta
    reader = KBIndex.load(root)
    for q in questions + ["养猫要办证吗"]:
        np.testing.assert_allclose(reader.surface.best_dice(char_bigrams(q), slugs),
                                   index.surface.best_dice(char_bigrams(q), slugs), rtol=1e-6)
    assert reader.surface.best_dice(char_bigrams("养猫要不要办证"), [seed[0].slug])[0] == pytest.approx(1.0)
    assert reader.surface.best_dice(char_bigrams(seed[1].phrasings[0]), [seed[1].slug])[0] == 0.0

    (snap / ARRAYS_FILE).unlink()  # an older snapshot: computed from the phrasings on load
    older = KBIndex.load(root)
    for q in questions:
        np.testing.assert_allclose(older.surface.best_dice(char_bigrams(q), slugs),
                                   index.surface.best_dice(char_bigrams(q), slugs), rtol=1e-6)


def test_counter_examples_are_kept_beside_faiss_through_snapshots_deltas_and_removal(tmp_path):
    """An entry's counter-examples are never search rows, but their cosines with a question are there for the
    entries found; they survive a full snapshot, a delta replayed by another reader, an edit and a removal."""
    rng = np.random.default_rng(9)
    dog = IndexedEntry("dog", 1, ("养狗怎么办证", "狗证在哪办"), "答", ("养狗", "狗证"), ("养猫要办证吗",))
    plain = entry("plain")
    ctr = unit(rng, 1)
    index = KBIndex(DIM, dense_kind="flat")
    index.upsert_many([dog, plain], unit(rng, 5), unit(rng, 2), counter_vectors=ctr)
    assert index.live_rows == 5  # phrasings only: a counter-example is never a search row
    assert index.search_dense(ctr[0], 5).slugs  # searching by it finds entries by their phrasings
    np.testing.assert_allclose(index.counter_scores(ctr[0], ["dog", "plain", "nope"]), [1.0, -1.0, -1.0], rtol=1e-6)
    with pytest.raises(ValueError, match="counter-example"):
        index.upsert_many([dog], unit(rng, 2), unit(rng, 1))  # its counter-example vectors are missing

    index.save(tmp_path, full=True)
    reader = KBIndex.load(tmp_path)
    assert reader.counter_texts == {"dog": ("养猫要办证吗",)}
    np.testing.assert_allclose(reader.counter["dog"], ctr, rtol=1e-6)

    edited = IndexedEntry("dog", 2, dog.phrasings, "答", dog.lexical_tokens, ("养猫要办证吗", "兔子要登记吗"))
    new_ctr = unit(rng, 2)
    index.upsert(edited, unit(rng, 2), unit(rng, 1)[0], counter_vectors=new_ctr)
    index.upsert(entry("later"), unit(rng, 3), unit(rng, 1)[0])
    index.save(tmp_path)  # a delta
    assert reader.refresh(tmp_path) and reader.snapshot[1] == 1
    assert reader.counter_texts["dog"] == ("养猫要办证吗", "兔子要登记吗")
    np.testing.assert_allclose(reader.counter_scores(new_ctr[1], ["dog"]), [1.0], rtol=1e-6)
    assert "later" in reader and "later" not in reader.counter

    index.remove("dog")
    index.save(tmp_path)
    assert reader.refresh(tmp_path)
    assert "dog" not in reader.counter and reader.counter_scores(new_ctr[1], ["dog"])[0] == -1.0
    assert KBIndex.load(tmp_path).counter == {}
