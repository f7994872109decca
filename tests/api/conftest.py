"""API fixtures: the real app (api.main.create_app) on a migrated, seeded database; one token per role."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from api.auth import create_token, db_session
from core.db import session_factory
from tests.dispatch.helpers import clear_work_tables, seed

UNIT_CODES = {
    "unit": "urban_enforcement:110105",  # 朝阳区城市管理综合行政执法局
    "unit_street": "street_office:110105026",  # 朝阳区望京街道办事处
}


@pytest.fixture(scope="session")
def api_engine(db_engine: Engine) -> Engine:
    return seed(db_engine)


@pytest.fixture(scope="session")
def tokens(api_engine: Engine) -> dict[str, str]:
    """Bearer tokens: one per role, plus ``unit_street`` (a second unit)."""
    out = {}
    with session_factory(api_engine)() as s:
        for role in ("citizen", "agent", "editor", "evaluator", "admin"):
            out[role] = create_token(s, role, f"测试{role}")
        for key, code in UNIT_CODES.items():
            out[key] = create_token(s, "unit", f"测试{key}", code)
    return out


@pytest.fixture
def client(api_engine: Engine) -> Iterator[TestClient]:
    from api.main import create_app

    clear_work_tables(api_engine)
    app = create_app()
    factory = session_factory(api_engine)

    def override() -> Iterator:
        s = factory()
        try:
            yield s
        finally:
            s.close()

    app.dependency_overrides[db_session] = override
    yield TestClient(app)


@pytest.fixture
def headers(tokens: dict[str, str]):
    """``headers("agent")`` → the Authorization header of that role's token."""
    return lambda role: {"Authorization": f"Bearer {tokens[role]}"}
