"""The knowledge-base editors' page (/editor, api/static/editor.*) as served by the app, and the one endpoint added
for it (``GET /api/kb/me``). The page itself is exercised in Chromium by tests/integration/test_editor_browser.py."""
from __future__ import annotations

import re

from api.main import STATIC_DIR


def test_editor_page_is_served_in_chinese_with_its_own_assets(client):
    page = client.get("/editor")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers.get("cache-control") == "no-cache"
    assert '<html lang="zh-CN">' in page.text and "知识库编辑台" in page.text
    for asset, kind in (("/static/editor.js", "javascript"), ("/static/editor.css", "css")):
        assert f'"{asset}"' in page.text
        r = client.get(asset)
        assert r.status_code == 200 and kind in r.headers["content-type"], asset


def test_editor_page_loads_nothing_from_elsewhere():
    # offline-capable: no CDN, no web fonts, no absolute URLs in what the browser loads
    for name in ("editor.html", "editor.js", "editor.css"):
        text = (STATIC_DIR / name).read_text(encoding="utf-8")
        assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text), name
        assert not re.search(r"url\(\s*[\"']?(https?:)?//", text), name
        assert "@import" not in text, name


def test_me_names_the_editor_token_and_refuses_the_others(client, headers):
    r = client.get("/api/kb/me", headers=headers("editor"))
    assert r.status_code == 200
    body = r.json()
    assert body["name"] == "测试editor" and body["role"] == "editor" and body["author"].startswith("测试editor（editor#")
    assert client.get("/api/kb/me", headers=headers("admin")).json()["role"] == "admin"
    r = client.get("/api/kb/me")
    assert r.status_code == 401 and "令牌" in r.json()["detail"]
    r = client.get("/api/kb/me", headers={"Authorization": "Bearer jsjb_not-a-token"})
    assert r.status_code == 401 and r.json()["detail"] == "令牌无效或已吊销"
    for role in ("citizen", "agent", "unit", "evaluator"):
        r = client.get("/api/kb/me", headers=headers(role))
        assert r.status_code == 403 and "无权访问" in r.json()["detail"], role
