"""Shared fixtures for the services tests: real databases built by Alembic (``upgrade heads``), never ``create_all``.

``db_url`` is parametrised over SQLite (a temporary file) and PostgreSQL (``$JSJB_TEST_PG_URL``, default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``) in a fresh schema per test session, so parallel test runs and
other suites never see each other's tables. The PostgreSQL parameter is skipped only when the server is unreachable.
Domain test folders add their own fixtures on top (e.g. tests/dispatch/conftest.py seeds the dispatch catalog).
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from functools import lru_cache

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from core.db import make_engine, migrate, session_factory

PG_URL = os.environ.get("JSJB_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@lru_cache
def postgres_reachable() -> bool:
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a fresh database migrated to every branch head (``alembic upgrade heads``)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        migrate(url)
        yield url
        return
    if not postgres_reachable():
        if os.environ.get("JSJB_REQUIRE_POSTGRES"):  # CI (.ci/run) guarantees the server: its absence is a failure
            pytest.fail(f"PostgreSQL unreachable at {PG_URL} but JSJB_REQUIRE_POSTGRES is set")
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}")
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{PG_URL}?options=-csearch_path={schema}"  # no "%": alembic config interpolates it
    try:
        migrate(url)
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def db_engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db_session(db_engine: Engine) -> Iterator[Session]:
    session = session_factory(db_engine)()
    yield session
    session.close()
