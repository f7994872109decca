"""Fixtures of the Rasa-side tests: real tracker-store databases (SQLite files, and PostgreSQL where reachable)."""
from __future__ import annotations

import pytest


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def tracker_store_pair(request, tmp_path):
    """(kwargs of our store, kwargs of Rasa's own store): two fresh SQLite files, or two fresh databases on the real
    PostgreSQL server ($JSJB_TEST_PG_HOST, default 127.0.0.1:5432, user postgres, trust auth), dropped afterwards."""
    pytest.importorskip("rasa")
    if request.param == "sqlite":
        yield {"dialect": "sqlite", "db": str(tmp_path / "ours.db")}, {"dialect": "sqlite", "db": str(tmp_path / "rasa.db")}
        return
    import os
    import uuid

    import psycopg2

    host = os.environ.get("JSJB_TEST_PG_HOST", "127.0.0.1")
    try:
        admin = psycopg2.connect(host=host, port=5432, user="postgres", dbname="test", connect_timeout=3)
    except psycopg2.OperationalError:
        if os.environ.get("JSJB_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL unreachable at {host}:5432 but JSJB_REQUIRE_POSTGRES is set")
        pytest.skip(f"PostgreSQL unreachable at {host}:5432")
    admin.autocommit = True
    names = [f"jsjb_tracker_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    with admin.cursor() as cur:
        for name in names:
            cur.execute(f'CREATE DATABASE "{name}"')
    common = {"dialect": "postgresql", "host": host, "port": 5432, "username": "postgres"}
    try:
        yield {**common, "db": names[0]}, {**common, "db": names[1]}
    finally:
        with admin.cursor() as cur:
            for name in names:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
