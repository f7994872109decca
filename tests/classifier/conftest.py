"""Classifier fixtures: one tiny model per test session, trained for real (≤ about a minute on 2 cores).

The tiny model is produced by the feedback loop itself: agents dispatch a few orders in a real (SQLite, migrated,
catalog-seeded) database, ``export_dispatch_decisions`` exports them, and ``python -m classifier.retrain`` trains on
our corpus + a small slice of the shared real messages (when present) + those decisions. The encoder folder is the
set-up's (``var/models/encoder``) or ``$JSJB_ENCODER_DIR``.
"""
from __future__ import annotations

import csv
import json
import os
import random
from pathlib import Path

import pytest

from core.config import get_settings
from core.db import make_engine, migrate, session_factory
from classifier.data import default_shared_path

TINY = {"num_layers": 2, "trainable_layers": 1, "epochs": 3, "patience": 3, "max_len": 64, "shared_max_len": 64,
        "shared_per_epoch": 400, "max_train_seconds": 75, "min_l2_examples": 5}

# agents' final choices recorded in the database (and exported as training rows)
DECISIONS = [
    ("共享单车把小区门口的盲道全占了，电话13912345678", "投诉", "ecology_environment:110105"),
    ("楼下那家KTV半夜还在放音乐，吵得睡不着", "投诉", "urban_enforcement:110105"),
]


def encoder_dir() -> Path:
    path = Path(os.environ.get("JSJB_ENCODER_DIR") or get_settings().resolved_encoder_dir)
    if not (path / "model.safetensors").is_file():
        pytest.skip(f"no converted encoder at {path} (set-up builds it: make setup)")
    return path


@pytest.fixture(scope="session")
def exported_decisions(tmp_path_factory) -> list[dict]:
    from dispatch.catalog.seed import seed_catalog
    from dispatch.proposal import Actor, Intake
    from dispatch.service import DispatchService, export_dispatch_decisions

    url = f"sqlite:///{tmp_path_factory.mktemp('clfdb') / 'db.sqlite'}"
    migrate(url)
    engine = make_engine(url)
    agent = Actor("坐席李明", "agent")
    with session_factory(engine)() as session:
        seed_catalog(session)
        svc = DispatchService(session)
        for text, rtype, unit in DECISIONS:
            order = svc.create_work_order(Intake(content=text, request_type=rtype, district="朝阳区"))
            svc.dispatch(order["number"], unit, agent, reason="坐席改派")
        rows = export_dispatch_decisions(session)
    engine.dispose()
    return rows


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, exported_decisions) -> Path:
    from classifier.retrain import main as retrain_main

    work = tmp_path_factory.mktemp("tiny")
    (work / "decisions.json").write_text(json.dumps(exported_decisions, ensure_ascii=False), encoding="utf-8")
    args = ["--out", str(work / "model"), "--encoder", str(encoder_dir()), "--decisions", str(work / "decisions.json")]
    shared = default_shared_path()
    if shared is not None and shared.is_file():  # a small real subset through the import path (segmented text)
        with open(shared, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        random.Random(0).shuffle(rows)
        with open(work / "shared_subset.csv", "w", encoding="utf-8", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["text", "label"])
            w.writeheader()
            w.writerows(rows[:400])
        args += ["--shared-data", str(work / "shared_subset.csv")]
    else:
        args += ["--shared-data", "none"]
    for key, value in TINY.items():
        args += ["--set", f"{key}={json.dumps(value)}"]
    assert retrain_main(args) == 0
    return work / "model"


@pytest.fixture(scope="session")
def tiny(tiny_model_dir):
    from classifier.service import Classifier

    return Classifier.load(tiny_model_dir)
