"""Label maps, calibration and the lexical component (no training of the encoder needed)."""
from __future__ import annotations

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from classifier.calibration import ece, fit_temperature, reliability, softmax
from classifier.data import shared_split
from classifier.labels import CATEGORY_L1, LabelMaps, build_label_maps, load_unit_types
from classifier.lexical import LexicalModel
from dispatch.proposal import REQUEST_TYPES


def test_label_maps_round_trip(tmp_path):
    rows = [{"category_l2": "城乡建设/城市建设和市政管理"}] * 3 + [{"category_l2": "民政/社会救助"}]
    maps = build_label_maps(rows, min_l2_examples=2)
    assert maps.labels["request_type"] == list(REQUEST_TYPES)
    assert maps.labels["category_l1"] == list(CATEGORY_L1) and len(CATEGORY_L1) == 15
    assert maps.labels["category_l2"] == ["城乡建设/城市建设和市政管理"]  # the rarer pair lacks data
    assert maps.labels["unit_type"] == list(load_unit_types())
    assert "heating_company" in maps.labels["unit_type"]
    maps.save(tmp_path / "labels.json")
    back = LabelMaps.load(tmp_path / "labels.json")
    assert back == maps
    for head, labels in maps.labels.items():
        for i, label in enumerate(labels):
            assert back.index(head, label) == i and back.label(head, i) == label
    assert back.index("category_l1", "不存在") == -1 and back.index("category_l1", "") == -1


def test_temperature_scaling_recovers_temperature_and_lowers_ece():
    rng = np.random.default_rng(0)
    n, k = 4000, 6
    true_logits = rng.normal(0, 2.0, size=(n, k))
    y = np.array([rng.choice(k, p=p) for p in softmax(true_logits)])
    overconfident = true_logits * 3.0  # a model three times too sure of itself
    t = fit_temperature(overconfident, y)
    assert t > 0 and abs(t - 3.0) < 0.4
    before, after = ece(softmax(overconfident), y), ece(softmax(overconfident, t), y)
    assert after < before and after < 0.05
    p = softmax(overconfident, t)
    assert np.allclose(p.sum(axis=1), 1.0)
    rel = reliability(p, y, n_bins=10)
    assert sum(b["count"] for b in rel["bins"]) == n
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int)) == 1.0


def test_lexical_features_match_scikit_learn_and_reasons_are_phrases_of_the_text():
    texts = ["饭馆油烟太大熏得没法开窗", "楼下饭馆油烟扰民", "暖气不热家里才十五度", "小区暖气不热", "公交车司机态度差",
             "公交车到站不停", "饭馆后厨油烟直排", "暖气片不热"]
    y = np.array([0, 0, 1, 1, 2, 2, 0, 1])
    model = LexicalModel((1, 3), min_df=1, max_features=None).fit(texts, {"h": y}, {"h": 4})
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=1).fit(texts)
    inv = {i: g for g, i in model.vocab.items()}
    for text in texts + ["饭馆油烟"]:
        f = model.features(text)
        idx, val = f.idx, f.val
        ours = {inv[i]: v for i, v in zip(idx.tolist(), val.tolist())}
        row = vec.transform([text]).tocoo()
        ref = {vec.get_feature_names_out()[j]: v for j, v in zip(row.col, row.data)}
        assert ours.keys() == ref.keys()
        assert all(abs(ours[g] - ref[g]) < 1e-5 for g in ours)
    scores = model.scores(["饭馆油烟太呛"])["h"][0]
    assert scores.argmax() == 0
    assert scores[3] < scores.min() + 1e-6  # a class without training rows never wins
    phrases = model.phrases("这家饭馆油烟太呛", "h", 0)
    assert phrases and all(p in "这家饭馆油烟太呛" for p in phrases)
    assert any("油烟" in p or "饭馆" in p for p in phrases)


def test_shared_split_is_fixed_stratified_and_disjoint():
    rows = [{"text": f"t{i}", "category_l1": CATEGORY_L1[i % 3]} for i in range(300)]
    rows.append({"text": "t0", "category_l1": CATEGORY_L1[0]})  # a duplicate text
    tr1, te1 = shared_split(rows)
    tr2, te2 = shared_split(rows)
    assert te1 == te2 and tr1 == tr2
    assert abs(len(te1) - 0.2 * len(rows)) <= 1
    assert not {r["text"] for r in tr1} & {r["text"] for r in te1}
    counts = {c: sum(r["category_l1"] == c for r in te1) for c in CATEGORY_L1[:3]}
    assert max(counts.values()) - min(counts.values()) <= 1


def test_word_ngram_features_join_the_character_row():
    from classifier.lexical import WORD_PREFIX, char_ngrams, word_ngrams

    texts = ["饭馆油烟太大熏得没法开窗", "楼下饭馆油烟扰民", "暖气不热家里才十五度", "小区暖气不热", "公交车司机态度差",
             "公交车到站不停", "饭馆后厨油烟直排", "暖气片不热"]
    y = np.array([0, 0, 1, 1, 2, 2, 0, 1])
    model = LexicalModel((1, 2), min_df=1, word_ngram=(1, 2)).fit(texts, {"h": y}, {"h": 3})
    assert any(k.startswith(WORD_PREFIX) for k in model.vocab)
    vec = TfidfVectorizer(analyzer=lambda t: [g for g, _ in char_ngrams(t, 1, 2)] + word_ngrams(t, 1, 2),
                          sublinear_tf=True, min_df=1).fit(texts)
    inv = {i: g for g, i in model.vocab.items()}
    for text in texts + ["饭馆油烟，暖气"]:
        f = model.features(text)
        ours = {inv[i]: v for i, v in zip(f.idx.tolist(), f.val.tolist())}
        row = vec.transform([text]).tocoo()
        ref = {vec.get_feature_names_out()[j]: v for j, v in zip(row.col, row.data)}
        assert ours.keys() == ref.keys() and all(abs(ours[g] - ref[g]) < 1e-5 for g in ours)
    assert model.scores(["饭馆油烟太呛"])["h"][0].argmax() == 0


def test_report_states_how_often_two_annotators_agreed(tmp_path):
    """The evaluation report gives the test set's double-annotation agreement next to the scores (the ceiling an
    evaluator reads them against); the newest adjudication record counts, and a test set without one has none."""
    from classifier.evaluate import annotator_agreement, render_markdown

    assert annotator_agreement(10, tmp_path) is None
    folder = tmp_path / "annotation"
    folder.mkdir()
    header = "file,row,field,first_annotator,second_annotator,final,reason\n"
    (folder / "test_adjudication_2026-01-01.csv").write_text(header, encoding="utf-8")
    (folder / "test_adjudication_2026-12-07.csv").write_text(
        header + "test_a.csv,0,request_type,求助,投诉,投诉,rule 4\n"
        "test_a.csv,3,request_type,咨询,求助,咨询,rule 6\n"
        "test_a.csv,3,unit_type,street_office,housing,housing,duty\n", encoding="utf-8")
    agreement = annotator_agreement(10, tmp_path)
    assert agreement == {"record": "annotation/test_adjudication_2026-12-07.csv", "rows": 10,
                         "request_type": 0.8, "category_l1": 1.0, "unit_type": 0.9}
    metrics = {"accuracy": 0.7, "macro_f1": 0.7, "top3_accuracy": 0.9, "per_class": {}, "worst_errors": []}
    report = {"generated_at": "2026-12-07T00:00:00+00:00", "seconds": 1.0, "checks": {}, "figures": {},
              "default_model": {"version": "v", "reused": True, "dir": "d", "training_seconds": 1,
                                "rows": {"total": 1}, "rows_by_source": {}},
              "test_sets": {"ours": {"rows": 10, "model": {"category_l1": metrics}, "baseline": {},
                                     "annotator_agreement": agreement}}}
    assert "request_type 0.800, category_l1 1.000, unit_type 0.900" in render_markdown(report)
