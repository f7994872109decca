"""Every non-public endpoint refuses requests without a token (401) and tokens of the wrong role (403)."""
from __future__ import annotations

import pytest

from api.auth import ROLES, authenticate, create_token, hash_token, main, revoke_token
from api.auth_orm import ApiToken

N = "20261122-000001"
ALL = set(ROLES) | {"unit_street"}

# (method, path, json body, roles allowed)
ENDPOINTS = [
    ("POST", "/api/work-orders", {"content": "测试"}, {"agent", "admin"}),
    ("GET", "/api/work-orders", None, {"agent", "admin", "evaluator", "unit", "unit_street"}),
    ("GET", "/api/work-orders/overdue", None, {"agent", "admin", "evaluator"}),
    ("GET", f"/api/work-orders/{N}", None, {"agent", "admin", "evaluator", "unit", "unit_street"}),
    ("POST", f"/api/work-orders/{N}/route", {}, {"agent", "admin"}),
    ("POST", f"/api/work-orders/{N}/dispatch", {}, {"agent", "admin"}),
    ("POST", f"/api/work-orders/{N}/objection-review", {"upheld": False, "note": "驳回"}, {"agent", "admin"}),
    ("POST", f"/api/work-orders/{N}/merge", {"into": "20261122-000002", "reason": "重复"}, {"agent", "admin"}),
    ("POST", f"/api/work-orders/{N}/extend", {"reason": "需要协调", "hours": 2}, {"agent", "admin"}),
    ("POST", f"/api/work-orders/{N}/callback", {"resolved": True, "satisfaction": "满意"}, {"agent", "admin"}),
    ("POST", f"/api/work-orders/{N}/reopen", {"reason": "未解决"}, {"agent", "admin"}),
    ("POST", f"/api/work-orders/{N}/close", {}, {"agent", "admin"}),
    ("GET", "/api/units/me/work-orders", None, {"unit", "unit_street"}),
    ("POST", f"/api/units/work-orders/{N}/accept", {}, {"unit", "unit_street"}),
    ("POST", f"/api/units/work-orders/{N}/object", {"reason": "不属于本单位职责"}, {"unit", "unit_street"}),
    ("POST", f"/api/units/work-orders/{N}/reply", {"text": "已经办理完毕"}, {"unit", "unit_street"}),
    ("POST", f"/api/units/work-orders/{N}/extend", {"reason": "需要协调", "hours": 2}, {"unit", "unit_street"}),
    ("GET", "/api/catalog/units", None, {"agent", "admin", "unit", "unit_street", "evaluator", "editor"}),
    ("GET", "/api/catalog/unit-types", None, {"agent", "admin", "unit", "unit_street", "evaluator", "editor"}),
    ("GET", "/api/catalog/rules", None, {"admin"}),
    ("PUT", "/api/catalog/rules/x_rule", {"active": False}, {"admin"}),
    ("DELETE", "/api/catalog/rules/x_rule", None, {"admin"}),
    ("GET", "/api/catalog/settings", None, {"admin"}),
    ("PUT", "/api/catalog/settings/repeat_threshold", {"value": 0.5}, {"admin"}),
    ("GET", "/api/stats/rates?start=2026-11-01T00:00:00%2B08:00&end=2026-12-01T00:00:00%2B08:00", None,
     {"evaluator", "admin", "agent"}),
    ("GET", "/api/stats/counts", None, {"evaluator", "admin", "agent"}),
    ("GET", "/api/stats/dispatch-decisions", None, {"admin", "evaluator"}),
]


@pytest.mark.parametrize("method,path,body,allowed", ENDPOINTS, ids=[f"{m} {p.split('?')[0]}" for m, p, _, _ in ENDPOINTS])
def test_api_endpoint_refuses_missing_token_and_wrong_roles(client, headers, method, path, body, allowed):
    r = client.request(method, path, json=body)
    assert r.status_code == 401 and r.json()["detail"].startswith("未登录")
    for role in sorted(ALL - allowed):
        r = client.request(method, path, json=body, headers=headers(role))
        assert r.status_code == 403, (role, r.status_code, r.text)
        assert "无权访问" in r.json()["detail"]
    for role in sorted(allowed):
        r = client.request(method, path, json=body, headers=headers(role))
        assert r.status_code != 401 and "无权访问" not in r.text, (role, r.text)  # passed the role gate


def test_citizen_status_endpoint_is_public(client):
    r = client.post("/api/citizens/work-order-status", json={"number": N, "phone_tail4": "1234"})
    assert r.status_code == 404  # reached the handler without a token


def test_tokens_are_stored_hashed_and_can_be_revoked(api_engine):
    from core.db import session_factory

    with session_factory(api_engine)() as s:
        token = create_token(s, "editor", "知识库编辑甲")
        row = s.query(ApiToken).filter_by(token_hash=hash_token(token)).one()
        assert token not in (row.token_hash, row.name) and len(row.token_hash) == 64
        assert authenticate(s, token).role == "editor"
        assert revoke_token(s, row.id) is True
        assert authenticate(s, token) is None
        with pytest.raises(ValueError):
            create_token(s, "unit", "无单位")
        with pytest.raises(ValueError):
            create_token(s, "superuser", "x")


def test_cli_create_token_prints_the_token_once(api_engine, db_url, monkeypatch, capsys):
    from core.config import get_settings
    from core.db import get_engine, session_factory

    monkeypatch.setenv("JSJB_DATABASE_URL", db_url)
    get_settings.cache_clear()
    get_engine.cache_clear()
    try:
        assert main(["create-token", "--role", "agent", "--name", "张三"]) == 0
        out = capsys.readouterr()
        token = out.out.strip()
        assert token.startswith("jsjb_") and "不会再次显示" in out.err
        with session_factory(api_engine)() as s:
            assert authenticate(s, token).name == "张三"
        assert main(["list-tokens"]) == 0
        listing = capsys.readouterr().out
        assert "张三" in listing and token not in listing
        assert main(["create-token", "--role", "unit", "--name", "x", "--unit", "nope"]) == 2
    finally:
        get_engine().dispose()
        get_settings.cache_clear()
        get_engine.cache_clear()
