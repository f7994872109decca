"""A tiny model trained for real: predictions a user would notice are right, the proposal contract, calibration,
the model folder (label maps, model card), the feedback loop and inference variants."""
from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from classifier.data import load_corpus
from classifier.labels import HEADS, LabelMaps
from classifier.onnx_export import onnxruntime_available
from classifier.retrain import merge_decisions
from classifier.service import Classifier, load_classifier
from classifier.train import gather_rows
from dispatch.proposal import REQUEST_TYPES, ModelProposal, Scored


def top(items: list[Scored], k: int = 3) -> list[str]:
    return [s.label for s in items[:k]]


def test_predictions_a_user_would_notice(tiny):
    heating = tiny.predict("暖气不热，家里才十五度")
    assert heating.category_l1[0].label == "城乡建设"
    assert "heating_company" in top(heating.unit_type)
    fumes = tiny.predict("饭馆油烟太大")
    assert fumes.category_l1[0].label == "环境保护" or "urban_enforcement" in top(fumes.unit_type)
    wages = tiny.predict("老板拖欠我们三个月工资了，一直找借口不给")
    assert wages.category_l1[0].label == "劳动和社会保障"
    assert "human_resources_social_security" in top(wages.unit_type)
    praise = tiny.predict("感谢社区网格员小张，大雪天帮我们独居老人送菜上门，必须点赞表扬")
    assert praise.request_type[0].label == "表扬"


def test_proposal_contract(tiny):
    p = tiny.predict("小区门口的路灯坏了一个多月了，晚上走路很危险")
    assert isinstance(p, ModelProposal)
    assert p.model_version == tiny.version and p.model_version.startswith("clf-")
    for head in HEADS:
        items = getattr(p, head)
        assert len(items) == 3
        assert all(isinstance(s, Scored) and 0.0 <= s.prob <= 1.0 for s in items)
        assert [s.prob for s in items] == sorted((s.prob for s in items), reverse=True)
        assert sum(s.prob for s in items) <= 1.0 + 1e-3
        assert all(s.reason for s in items)
    assert {s.label for s in p.request_type} <= set(REQUEST_TYPES)
    assert {s.label for s in p.unit_type} <= set(tiny.labels.labels["unit_type"])
    l2_names = {k.split("/", 1)[1] for k in tiny.labels.labels["category_l2"]}
    assert {s.label for s in p.category_l2} <= l2_names
    assert p.category_l2[0].reason.startswith("属于“")
    reasons = [s.reason for s in p.category_l1 + p.unit_type if s.reason.startswith("关键词：")]
    assert reasons and "路灯" in "".join(reasons)
    assert ModelProposal.from_dict(p.to_dict()) == p
    assert tiny.predict_batch(["小区门口的路灯坏了一个多月了，晚上走路很危险", "饭馆油烟太大"])[0] == p
    assert tiny.predict_batch([]) == []
    empty = tiny.predict("")
    assert len(empty.category_l1) == 3


def test_calibrated_probabilities(tiny, tiny_model_dir):
    calib = json.loads((tiny_model_dir / "calibration.json").read_text())
    assert all(t > 0 for t in calib["temperatures"].values())
    assert set(calib["temperatures"]) == set(HEADS)
    probs = tiny.probabilities(["暖气不热", "孩子学校乱收费", "公交车司机态度很差，骂乘客"])
    for head, p in probs.items():
        assert p.shape[1] == tiny.labels.size(head)
        assert np.allclose(p.sum(axis=1), 1.0, atol=1e-4)
    metrics = json.loads((tiny_model_dir / "metrics.json").read_text())
    for head, d in metrics["dev"].items():
        assert d["temperature"] > 0 and d["ece_after"] is not None


def test_model_folder(tiny, tiny_model_dir):
    for name in ("model.safetensors", "tokenizer.json", "label_maps.json", "calibration.json", "metrics.json",
                 "MODEL_CARD.md", "lexical.npz", "encoder_config.json"):
        assert (tiny_model_dir / name).is_file(), name
    assert LabelMaps.load(tiny_model_dir / "label_maps.json") == tiny.labels
    card = (tiny_model_dir / "MODEL_CARD.md").read_text(encoding="utf-8")
    metrics = json.loads((tiny_model_dir / "metrics.json").read_text())
    assert metrics["model_version"] in card and metrics["trained_at"][:10] in card
    assert f"Rows: {metrics['rows']['total']}" in card
    assert metrics["rows"]["total"] == metrics["rows"]["train"] + metrics["rows"]["dev"]
    assert metrics["stopped_by"] in ("epochs", "early stopping", "time budget")
    assert metrics["history"] and metrics["best_epoch"] >= 1
    if "shared" in metrics["rows_by_source"]:  # shared rows carry only the first-level category (masked losses)
        assert set(metrics["label_counts"]["category_l1"]) >= {"城乡建设", "劳动和社会保障"}


def test_retrain_merged_the_exported_decisions(tiny, tiny_model_dir, exported_decisions):
    assert len(exported_decisions) == 2
    with open(tiny_model_dir / "feedback_rows.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["unit_type"] for r in rows] == ["ecology_environment", "urban_enforcement"]
    assert "13912345678" not in rows[0]["text"] and "139****5678" in rows[0]["text"]
    assert json.loads((tiny_model_dir / "metrics.json").read_text())["feedback_rows"] == 2
    assert tiny.version.endswith("-fb")
    # the agents' choice is learned: the unusual unit for this exact request is now among the top three
    learned = tiny.predict(rows[0]["text"])
    assert "ecology_environment" in top(learned.unit_type)


def test_merge_gives_agents_decisions_precedence():
    corpus = [{"text": "楼下那家KTV半夜还在放音乐", "request_type": "投诉", "category_l1": "城乡建设", "category_l2": "",
               "unit_type": "street_office", "source": "corpus:train_a"}]
    merged, res = merge_decisions(corpus, [
        {"text": "楼下那家KTV半夜还在放音乐", "request_type": "投诉", "category_l1": "环境保护",
         "category_l2": "环境污染", "unit_type": "ecology_environment"},
        {"text": "x", "request_type": "", "category_l1": "", "category_l2": "", "unit_type": "no_such_unit"}])
    assert len(merged) == 1 and merged[0]["unit_type"] == "ecology_environment"
    assert merged[0]["category_l2"] == "环境保护/环境污染" and merged[0]["source"] == "feedback"
    assert res.total == 2 and len(res.errors) >= 1


def test_training_data_without_the_shared_file(tmp_path):
    rows, test, report = gather_rows(shared=tmp_path / "absent.csv")
    assert rows and not test
    assert all(r["source"].startswith("corpus:") for r in rows)
    test_texts = {r["text"] for r in load_corpus("test")}
    assert not test_texts & {r["text"] for r in rows}


def test_cached_loader_and_backends(tiny_model_dir, tiny):
    a = load_classifier(tiny_model_dir)
    assert load_classifier(tiny_model_dir) is a
    assert a.backend == "torch-int8"  # what training writes into inference.json
    texts = [r["text"] for r in load_corpus("test")[:60]]
    served = a.probabilities(texts)
    for backend in ("torch", "onnx-int8" if onnxruntime_available() else "torch"):
        other = Classifier.load(tiny_model_dir, backend=backend)
        assert other.backend == backend
        agree = np.mean(served["category_l1"].argmax(1) == other.probabilities(texts)["category_l1"].argmax(1))
        assert agree >= 0.9, backend


@pytest.mark.skipif(not os.environ.get("JSJB_CLASSIFIER_DIR"), reason="set JSJB_CLASSIFIER_DIR to the full model")
def test_full_model():
    clf = load_classifier(Path(os.environ["JSJB_CLASSIFIER_DIR"]))
    assert clf.predict("暖气不热，家里才十五度").category_l1[0].label == "城乡建设"
    assert "heating_company" in top(clf.predict("暖气不热，家里才十五度").unit_type)
    p = clf.predict("饭馆油烟太大，熏得没法开窗")
    assert p.category_l1[0].label == "环境保护" and {"urban_enforcement", "ecology_environment"} & set(top(p.unit_type))
    rows = load_corpus("test")
    probs = clf.probabilities([r["text"] for r in rows])
    y = np.array([clf.labels.index("category_l1", r["category_l1"]) for r in rows])
    assert np.mean(probs["category_l1"].argmax(1) == y) > 0.6
    started = time.perf_counter()
    clf.predict("小区门口的饭馆油烟太大，每天晚上熏得家里没法开窗，希望有关部门管一管")
    assert time.perf_counter() - started < 1.0
