"""The learned linear ranker and its features (no model needed): phrasing profile, query coverage, the linear score
with the decision taken from the hand-shaped score, and the pairwise fit on a toy feature matrix."""
from __future__ import annotations

import numpy as np

from knowledge_base.evaluate import FeatureMatrix, Outcome, best_threshold, fit_linear_ranker, outcome
from knowledge_base.index import IndexedEntry, KBIndex, phrasing_profile, segment_profile
from knowledge_base.lexical import LexicalIndex
from knowledge_base.retrieval import FEATURES, Candidates, HybridRetriever, OverlayEntry, RetrievalConfig

DIM = 8


def unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_phrasing_profile_best_mean_of_two_and_standard_question() -> None:
    assert phrasing_profile(np.array([0.2, 0.9, 0.5])) == (0.9, 0.7, 0.2)
    assert phrasing_profile(np.array([0.4])) == (0.4, 0.4, 0.4)


def test_index_phrasing_profile_matches_the_rows() -> None:
    rng = np.random.default_rng(1)
    vecs = unit(rng.standard_normal((3, DIM)))
    index = KBIndex(DIM, dense_kind="flat")
    index.upsert(IndexedEntry("a", 1, ("问一", "问二", "问三"), "答", ("问",)), vecs, unit(rng.standard_normal(DIM)))
    q = unit(rng.standard_normal(DIM))
    got = index.phrasing_profile(q, ["a", "missing"])
    assert np.allclose(got[0], phrasing_profile(vecs @ q), atol=1e-6)
    assert np.allclose(got[1], -1.0)


def test_the_vectorised_profile_equals_the_per_entry_one_with_ties_and_single_phrasings() -> None:
    rng = np.random.default_rng(7)
    lengths = np.array([1, 3, 2, 5, 1, 4, 12, 2], dtype=np.int64)
    sims = rng.uniform(-1, 1, int(lengths.sum())).astype(np.float32)
    sims[1:4] = [0.5, 0.9, 0.9]  # a tie for the best: the second best is that same value
    sims[4:6] = [0.3, 0.3]
    got = segment_profile(sims, lengths)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    want = [phrasing_profile(sims[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]
    assert got.astype(np.float32).tolist() == np.asarray(want, dtype=np.float32).tolist()
    assert got[1].tolist() == [np.float32(0.9), np.float32(0.9), np.float32(0.5)]


def test_bm25_and_coverage_from_one_lookup_equal_the_separate_features() -> None:
    lex = LexicalIndex()
    lex.add("dog", ["养犬", "登记", "办理", "办理"])
    lex.add("card", ["社保卡", "办理"])
    lex.add("id", ["身份证", "办理", "补办"])
    query, slugs = ["办理", "养犬", "办理", "补办", "火星"], ["id", "dog", "none", "card"]
    bm25, cover = lex.candidate_features(query, slugs)
    assert bm25[2] == 0.0 and cover[2].tolist() == [0.0, 0.0]
    assert bm25[0] > 0 and bm25[1] > 0 and bm25[1] > bm25[3]
    assert cover.tolist() == lex.coverage(query, slugs).tolist()
    assert bm25.tolist() == lex.score_slugs(query, slugs).tolist()
    assert [s for s, _ in lex.search(query, 4)] == [slugs[i] for i in np.argsort(-bm25, kind="stable")[:3]]


def test_coverage_weights_rare_tokens_and_counts_unknown_ones_as_missing() -> None:
    lex = LexicalIndex()
    lex.add("dog", ["养犬", "登记", "办理"])
    lex.add("card", ["社保卡", "办理"])
    lex.add("id", ["身份证", "办理"])
    cov = lex.coverage(["养犬", "办理", "火星"], ["dog", "card", "none"])
    assert cov[0, 0] == 1.0  # every known token (养犬, 办理) is in the document
    assert abs(cov[0, 1] - 2 / 3) < 1e-6  # 火星 is unknown: missing from the plain share
    assert 0.0 < cov[1, 0] < 0.5  # only the common token 办理 (low IDF)
    assert cov[2].tolist() == [0.0, 0.0]
    w, plain = lex.coverage_document(["养犬", "办理", "火星"], ["养犬", "火星"])
    assert w > 0.5 and abs(plain - 2 / 3) < 1e-6


def candidates(dense, title, bm25=None, counter=None) -> Candidates:
    n = len(dense)
    z = np.zeros(n, dtype=np.float32)
    arr = lambda v: np.asarray(v, dtype=np.float32)  # noqa: E731
    return Candidates([f"e{i}" for i in range(n)], arr(dense), z, z, arr(bm25 if bm25 is not None else z), z,
                      arr(dense), arr(title), z, z, arr(counter if counter is not None else [-1.0] * n))


def test_a_candidate_closer_to_its_counter_example_is_never_the_answer() -> None:
    """The near-miss rule: e0 leads on every score, but the question is closer to one of e0's counter-examples
    than to any of its phrasings - e0 drops below every other candidate, in ranking and in the decision, and the
    evaluation's outcome sees the same."""
    cands = candidates(dense=[0.93, 0.80, 0.70], title=[0.9, 0.8, 0.7], counter=[0.95, -1.0, 0.69])
    cfg = RetrievalConfig(mode="hybrid", centroid_weight=0.0, answer_weight=0.0, lexical_weight=0.0,
                          counter_margin=0.0)
    hits = cands.hits(cfg)
    assert [h.slug for h in hits] == ["e1", "e2", "e0"]
    assert hits[-1].near_miss and hits[-1].counter > hits[-1].dense
    assert not hits[0].near_miss and not hits[1].near_miss  # 0.69 < 0.70: e2 keeps its place
    assert cfg.confidence(hits[-1].decision_score) < 1e-6
    linear = RetrievalConfig(mode="hybrid", ranker="linear", weights={"dense": 1.0, "title": 1.0}, decision="grid")
    assert [h.slug for h in cands.hits(linear)] == ["e1", "e2", "e0"]
    assert cands.hits(linear)[-1].decision_score < -5
    # a margin makes the rule stricter: e0 is only a near miss when the counter-example leads by more than it
    assert cands.hits(RetrievalConfig.from_dict({**cfg.to_dict(), "counter_margin": 0.05}))[0].slug == "e0"
    fm = FeatureMatrix.of([cands], ["e1"])
    assert outcome(fm, cfg).top_slug == ["e1"] and bool(outcome(fm, cfg).top_correct[0])


def test_linear_ranker_orders_and_grid_decides() -> None:
    cands = candidates(dense=[0.9, 0.8], title=[0.0, 1.0])
    grid = RetrievalConfig(mode="hybrid", centroid_weight=0.0, answer_weight=0.0, lexical_weight=0.0)
    assert [h.slug for h in cands.hits(grid)] == ["e0", "e1"]
    linear = RetrievalConfig(mode="hybrid", centroid_weight=0.0, answer_weight=0.0, lexical_weight=0.0,
                             ranker="linear", weights={"dense": 1.0, "title": 1.0}, decision="grid")
    hits = cands.hits(linear)
    assert [h.slug for h in hits] == ["e1", "e0"]
    assert abs(hits[0].score - 1.8) < 1e-6
    assert abs(hits[0].decision_score - 0.8) < 1e-6  # the hand-shaped score of the entry the ranker put first
    own = RetrievalConfig.from_dict({**linear.to_dict(), "decision": "rank"})
    assert abs(cands.hits(own)[0].decision_score - 1.8) < 1e-6


def test_config_round_trip_keeps_the_ranker() -> None:
    cfg = RetrievalConfig(ranker="linear", weights={"dense": 1.5, "lexical": 0.5}, decision="grid")
    again = RetrievalConfig.from_dict(cfg.to_dict())
    assert again.ranker == "linear" and again.weights == cfg.weights and again.decision == "grid"
    assert "weights" not in RetrievalConfig().to_dict()


def test_fit_linear_ranker_learns_the_informative_feature() -> None:
    rng = np.random.default_rng(0)
    cands, golds = [], []
    for i in range(40):
        n = 6
        title = rng.uniform(0.0, 0.5, n).astype(np.float32)
        gold = int(rng.integers(n))
        title[gold] = 0.9  # the standard-question cosine identifies the gold entry; dense is noise
        c = candidates(dense=rng.uniform(0.5, 0.9, n), title=title)
        cands.append(c)
        golds.append(c.slugs[gold])
    fm = FeatureMatrix.of(cands, golds)
    weights = fit_linear_ranker(fm, np.ones(len(golds), dtype=bool))
    assert set(weights) == set(FEATURES)
    assert abs(sum(abs(w) for w in weights.values()) - 2.0) < 1e-6
    assert weights["title"] == max(weights.values())
    o = outcome(fm, RetrievalConfig(mode="hybrid", ranker="linear", weights=weights))
    assert o.top_correct.all()


def test_overlay_draft_gets_every_feature() -> None:
    rng = np.random.default_rng(2)
    index = KBIndex(DIM, dense_kind="flat")
    index.upsert(IndexedEntry("a", 1, ("居住证怎么办",), "答", ("居住证", "办")), unit(rng.standard_normal((1, DIM))),
                 unit(rng.standard_normal(DIM)))
    q = unit(rng.standard_normal(DIM))
    draft_vecs = unit(np.stack([q, rng.standard_normal(DIM)]))
    draft = OverlayEntry(IndexedEntry("d", 1, ("养狗登记", "狗证"), "答", ("养狗", "登记", "狗证")), draft_vecs,
                         unit(rng.standard_normal(DIM)))
    cfg = RetrievalConfig(mode="hybrid", ranker="linear", weights={"title": 1.0, "coverage": 1.0})
    cands = HybridRetriever(index, None, cfg).candidates("养狗登记", query_vector=q, overlay=[draft])
    i = cands.slugs.index("d")
    assert abs(cands.title[i] - 1.0) < 1e-5 and abs(cands.dense[i] - 1.0) < 1e-5
    assert cands.coverage_tokens[i] > 0.0  # its tokens are unknown to the corpus: no IDF weight, plain share only
    assert cands.hits(cfg)[0].slug == "d"


def test_candidates_are_the_same_when_the_lexical_part_was_computed_while_embedding() -> None:
    """The service runs BM25 and the lexical features while the question is embedded; the candidates and every
    feature must equal the one-pass computation (candidates found by both retrievers, by one only, and none)."""
    rng = np.random.default_rng(5)
    index = KBIndex(DIM, dense_kind="flat")
    topics = [("居住证", "办理"), ("养犬", "登记"), ("社保卡", "补办"), ("公积金", "提取"), ("进京证", "办理"),
              ("居住证", "续签"), ("失业金", "领取"), ("暖气", "不热")]
    for i, (a, b) in enumerate(topics):
        phrasings = (f"{a}怎么{b}", f"{a}{b}要什么材料", f"想{b}{a}")
        index.upsert(IndexedEntry(f"e{i}", 1, phrasings, "答", (a, b, a)), unit(rng.standard_normal((3, DIM))),
                     unit(rng.standard_normal(DIM)))
    cfg = RetrievalConfig(mode="hybrid", candidates=3, ranker="linear", weights={"dense": 1.0, "lexical": 1.0})
    retriever = HybridRetriever(index, None, cfg)
    for question in ("居住证怎么办理", "狗证在哪登记", "火星移民"):
        q = unit(rng.standard_normal(DIM))
        once = retriever.candidates(question, query_vector=q)
        split = retriever.candidates(question, query_vector=q, lexical=retriever.lexical_candidates(question))
        assert split.slugs == once.slugs and len(once.slugs) >= 3
        for name in Candidates.ARRAYS:
            assert getattr(split, name).tolist() == getattr(once, name).tolist(), name
    assert retriever.lexical_candidates("居住证怎么办理").hits[0][0] in {"e0", "e5"}


def test_threshold_keeps_the_decline_floor_for_unanswerable_questions() -> None:
    # 10 answerable questions answered right with scores 1..10; 10 unanswerable ones scoring 0.5..9.5
    good = np.arange(1.0, 11.0)
    bad = np.concatenate([np.full(8, 0.5), [9.2, 9.5]])
    decision = np.concatenate([good, bad])
    answerable = np.array([True] * 10 + [False] * 10)
    o = Outcome(top_correct=answerable.copy(), rank=np.zeros(20, dtype=np.int64), decision=decision,
                top_slug=[None] * 20)
    everything = np.ones(20, dtype=bool)
    free_t, free_bal = best_threshold(o, answerable, everything, decline_floor=0.0)
    assert 0.5 < free_t < 1.0 and abs(free_bal - 0.9) < 1e-9  # answers all 10, declines 8 of 10
    floor_t, _ = best_threshold(o, answerable, everything, decline_floor=0.9)
    assert ((bad < floor_t).mean() >= 0.9) and floor_t > 9.2  # declines 9 of 10 at the cost of answers
