"""The knowledge-base HTTP API on the real app: public self-query, editors' endpoints behind roles, publish through
the API served at once, import errors, export, unanswered questions."""
from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from api.auth import create_token, db_session
from api.routes.knowledge import knowledge_base

ROLES = ("citizen", "agent", "evaluator", "editor", "admin")
SLUG = "residence-permit-apply"

# (method, path, body) of every editors' endpoint; roles editor and admin only
EDITOR_ENDPOINTS = [
    ("GET", "/api/kb/entries", None),
    ("POST", "/api/kb/entries", {"question": "问题？", "answer": "答案。"}),
    ("GET", "/api/kb/entries/export?format=json", None),
    ("POST", "/api/kb/entries/import?format=json&dry_run=true", []),
    ("GET", f"/api/kb/entries/{SLUG}", None),
    ("PATCH", f"/api/kb/entries/{SLUG}", {"note": "无改动"}),
    ("POST", f"/api/kb/entries/{SLUG}/publish", {}),
    ("POST", f"/api/kb/entries/{SLUG}/unpublish", {}),
    ("POST", f"/api/kb/entries/{SLUG}/archive", {}),
    ("POST", f"/api/kb/entries/{SLUG}/restore", {}),
    ("GET", f"/api/kb/entries/{SLUG}/history", None),
    ("POST", f"/api/kb/entries/{SLUG}/rollback", {"version": 1}),
    ("POST", "/api/kb/preview", {"question": "居住证怎么办理"}),
    ("GET", "/api/kb/unanswered", None),
    ("POST", "/api/kb/unanswered/1/entry", {"answer": "答案。"}),
    ("POST", "/api/kb/unanswered/1/resolve", {"entry_id": SLUG}),
    ("POST", "/api/kb/unanswered/1/counter-example", {}),
]


@pytest.fixture
def client(kb, sessions):
    from api.main import create_app

    app = create_app()

    def override():
        s = sessions()
        try:
            yield s
        finally:
            s.close()

    app.dependency_overrides[db_session] = override
    app.dependency_overrides[knowledge_base] = lambda: kb
    with sessions() as s:
        tokens = {role: create_token(s, role, f"知识库测试{role}") for role in ROLES}
    test_client = TestClient(app)
    test_client.auth_headers = lambda role: {"Authorization": f"Bearer {tokens[role]}"}  # type: ignore[attr-defined]
    return test_client


@pytest.mark.parametrize("method,path,body", EDITOR_ENDPOINTS, ids=[f"{m} {p.split('?')[0]}" for m, p, _ in
                                                                   EDITOR_ENDPOINTS])
def test_editors_endpoints_refuse_other_roles(client, method, path, body):
    r = client.request(method, path, json=body)
    assert r.status_code == 401
    for role in ("citizen", "agent", "evaluator"):
        r = client.request(method, path, json=body, headers=client.auth_headers(role))
        assert r.status_code == 403 and "无权访问" in r.json()["detail"], (role, r.text)
    r = client.request(method, path, json=body, headers=client.auth_headers("editor"))
    assert r.status_code not in (401, 403), r.text


def test_index_admin_endpoints_are_admin_only(client):
    assert client.get("/api/kb/index", headers=client.auth_headers("editor")).status_code == 403
    r = client.get("/api/kb/index", headers=client.auth_headers("admin"))
    assert r.status_code == 200 and r.json()["entries"] >= 200


def test_public_search_answers_or_declines_without_login(client):
    r = client.get("/api/kb/search", params={"q": "居住证怎么办理"})
    assert r.status_code == 200
    body = r.json()
    assert body["answered"] and body["entry_id"] == SLUG and body["message"] is None and "draft" not in body
    r = client.get("/api/kb/search", params={"q": "这期双色球开奖号码是多少"})
    body = r.json()
    assert not body["answered"] and body["answer"] is None and "12345" in body["message"]
    assert all(set(s) == {"entry_id", "question", "score"} for s in body["suggestions"])
    assert client.get("/api/kb/search", params={"q": ""}).status_code == 422
    unanswered = client.get("/api/kb/unanswered", headers=client.auth_headers("editor")).json()
    assert unanswered["total"] == 1 and unanswered["items"][0]["count"] == 1


def test_editor_publishes_through_the_api_and_citizens_get_it_at_once(client):
    h = client.auth_headers("editor")
    r = client.patch(f"/api/kb/entries/{SLUG}", json={"answer": "【接口测试】新的办理说明。", "expected_version": 1,
                                                      "note": "改答案"}, headers=h)
    assert r.status_code == 200 and r.json()["changed"] and r.json()["unpublished_changes"]
    assert client.get("/api/kb/search", params={"q": "居住证怎么办理"}).json()["answer"] != "【接口测试】新的办理说明。"
    stale = client.patch(f"/api/kb/entries/{SLUG}", json={"answer": "过期编辑", "expected_version": 1}, headers=h)
    assert stale.status_code == 409
    r = client.post(f"/api/kb/entries/{SLUG}/publish", json={"note": "审核通过"}, headers=h)
    assert r.status_code == 200 and r.json()["index"]["upserted"] == [SLUG]
    assert client.get("/api/kb/search", params={"q": "居住证怎么办理"}).json()["answer"] == "【接口测试】新的办理说明。"
    history = client.get(f"/api/kb/entries/{SLUG}/history", headers=h).json()
    assert [v["action"] for v in history] == ["seed", "edit", "publish"]
    assert history[1]["author"].startswith("知识库测试editor") and history[1]["changed_fields"] == ["answer"]
    r = client.post(f"/api/kb/entries/{SLUG}/rollback", json={"version": 1}, headers=h)
    assert r.status_code == 200 and r.json()["published_version"] == 4
    assert "派出所" in client.get("/api/kb/search", params={"q": "居住证怎么办理"}).json()["answer"]
    r = client.post(f"/api/kb/entries/{SLUG}/archive", json={}, headers=h)
    assert r.json()["index"]["removed"] == [SLUG]
    assert client.get("/api/kb/search", params={"q": "居住证怎么办理"}).json()["entry_id"] != SLUG


def test_create_preview_and_validation_errors(client):
    h = client.auth_headers("editor")
    r = client.post("/api/kb/entries", json={"question": "", "answer": "x"}, headers=h)
    assert r.status_code == 422
    r = client.post("/api/kb/entries", json={"id": "subway-last-train", "question": "北京地铁末班车是几点？",
                                             "answer": "一般在22:30至23:30之间，以车站公告为准。"}, headers=h)
    assert r.status_code == 201 and r.json()["status"] == "draft"
    preview = client.post("/api/kb/preview", json={"question": "地铁末班车一般几点"}, headers=h).json()
    assert preview["answered"] and preview["entry_id"] == "subway-last-train" and preview["draft"]
    assert not client.get("/api/kb/search", params={"q": "地铁末班车一般几点"}).json()["answered"]
    listed = client.get("/api/kb/entries", params={"status": "draft"}, headers=h).json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == "subway-last-train"


def test_import_with_row_errors_imports_nothing_and_export_round_trips(client):
    h = client.auth_headers("editor")
    rows = [{"id": "kb-import-ok", "question": "导入的问题？", "answer": "导入的答案。"},
            {"id": "kb-import-bad", "question": "缺答案的问题？"}]
    r = client.post("/api/kb/entries/import?format=json", content=json.dumps(rows).encode(), headers=h)
    assert r.status_code == 422
    body = r.json()
    assert not body["applied"] and body["errors"] == [{"row": 2, "id": "kb-import-bad", "field": "answer",
                                                       "message": "必填"}]
    assert client.get("/api/kb/entries/kb-import-ok", headers=h).status_code == 404
    r = client.post("/api/kb/entries/import?format=json&partial=true&publish=true", content=json.dumps(rows).encode(),
                    headers=h)
    assert r.status_code == 200 and r.json()["created"] == ["kb-import-ok"] and r.json()["index"]["upserted"]
    csv_data = client.get("/api/kb/entries/export", params={"format": "csv"}, headers=h)
    assert csv_data.status_code == 200 and csv_data.headers["content-type"].startswith("text/csv")
    r = client.post("/api/kb/entries/import", content=csv_data.content, headers={**h, "Content-Type": "text/csv"})
    assert r.status_code == 200 and r.json()["applied"] and not r.json()["updated"] and not r.json()["created"]


def test_create_entry_from_an_unanswered_question(client):
    client.get("/api/kb/search", params={"q": "北京动物园几点开门"})
    h = client.auth_headers("editor")
    item = client.get("/api/kb/unanswered", headers=h).json()["items"][0]
    r = client.post(f"/api/kb/unanswered/{item['id']}/entry",
                    json={"answer": "北京动物园旺季7:30开园，淡季7:30开园，具体以官方公告为准。", "id": "zoo-hours"},
                    headers=h)
    assert r.status_code == 201 and r.json()["question"] == item["question"]
    assert client.get("/api/kb/unanswered", headers=h).json()["total"] == 0


def test_an_answer_a_citizen_found_unhelpful_becomes_a_counter_example_in_one_step(client):
    """The citizen's 没帮助 (public feedback endpoint, no login) is logged with the entry that answered;
    editors list it apart from the declined questions and add it to that entry's counter-examples, published at once:
    the same question is no longer answered by that entry."""
    question = "养只猫要不要去登记办证啊"

    def offered(body: dict) -> list[str]:  # the entry answered with, and the suggested ones
        return [body["entry_id"]] * bool(body["answered"]) + [s["entry_id"] for s in body["suggestions"]]

    before = client.get("/api/kb/search", params={"q": question}).json()
    assert offered(before)[0] == "dog-registration"  # the near miss
    for _ in range(2):
        r = client.post("/api/kb/feedback", json={"question": question, "entry_id": "dog-registration",
                                                  "helpful": False})
        assert r.status_code == 200 and r.json() == {"recorded": True}
    assert client.post("/api/kb/feedback", json={"question": "居住证怎么办理", "entry_id": SLUG,
                                                 "helpful": True}).json() == {"recorded": False}
    assert client.post("/api/kb/feedback", json={"question": "x", "entry_id": "no-such-entry",
                                                 "helpful": False}).status_code == 404
    client.get("/api/kb/search", params={"q": "北京动物园几点开门"})  # a declined question, listed apart

    h = client.auth_headers("editor")
    unhelpful = client.get("/api/kb/unanswered", params={"kind": "unhelpful"}, headers=h).json()
    assert unhelpful["total"] == 1
    item = unhelpful["items"][0]
    assert item["kind"] == "unhelpful" and item["count"] == 2 and item["best_entry_id"] == "dog-registration"
    assert item["question"] == question
    assert client.get("/api/kb/unanswered", params={"kind": "declined"}, headers=h).json()["total"] == 1
    assert client.get("/api/kb/unanswered", params={"kind": "wrong"}, headers=h).status_code == 400

    r = client.post(f"/api/kb/unanswered/{item['id']}/counter-example", json={"publish": True}, headers=h)
    assert r.status_code == 200, r.text
    assert item["question"] in r.json()["counter_examples"] and r.json()["index"]["upserted"] == ["dog-registration"]
    assert "dog-registration" not in offered(client.get("/api/kb/search", params={"q": question}).json())
    assert client.get("/api/kb/search", params={"q": "养狗要去哪里办证"}).json()["entry_id"] == "dog-registration"
    assert client.get("/api/kb/unanswered", params={"kind": "unhelpful"}, headers=h).json()["total"] == 0
    again = client.post(f"/api/kb/unanswered/{item['id']}/counter-example", json={}, headers=h)
    assert again.status_code == 409
    history = client.get("/api/kb/entries/dog-registration/history", headers=h).json()
    assert [v["action"] for v in history][-2:] == ["edit", "publish"] and "反例" in history[-2]["note"]
