"""The work-order, unit, citizen and stats API end to end, on a real database (SQLite and PostgreSQL)."""
from __future__ import annotations

from datetime import datetime, timedelta

from dispatch.deadlines import BEIJING

PROPOSAL = {
    "request_type": [{"label": "投诉", "prob": 0.91}],
    "category_l1": [{"label": "城乡建设", "prob": 0.8}],
    "category_l2": [{"label": "城市建设和市政管理", "prob": 0.7}],
    "unit_type": [{"label": "urban_enforcement", "prob": 0.75, "reason": "关键词：占道经营"},
                  {"label": "street_office", "prob": 0.15}],
    "model_version": "test",
}


def create(client, headers, content="望京西园三区门口有人占道经营卖水果，堵住了人行道", **extra):
    body = {"content": content, "phone": "13812345678", "proposal": PROPOSAL, **extra}
    r = client.post("/api/work-orders", json=body, headers=headers("agent"))
    assert r.status_code in (200, 201), r.text
    return r.json()


def test_api_agent_creates_reads_and_dispatches_with_suggestions(client, headers):
    order = create(client, headers)
    assert order["status"] == "registered" and order["request_type"] == "投诉"
    number = order["number"]
    detail = client.get(f"/api/work-orders/{number}", headers=headers("agent")).json()
    top = detail["suggestions"][0]
    assert top["unit_name"] == "朝阳区城市管理综合行政执法局" and "模型预测0.75" in top["reason"]
    assert detail["citizen_phone"] == "13812345678"
    r = client.post(f"/api/work-orders/{number}/dispatch", json={}, headers=headers("agent"))
    assert r.status_code == 200 and r.json()["status"] == "dispatched" and r.json()["deadline_at"]
    q = client.get("/api/work-orders", params={"status": "dispatched", "district": "朝阳",
                                               "unit_code": "urban_enforcement:110105", "category_l1": "城乡建设",
                                               "overdue": "false"}, headers=headers("agent")).json()
    assert [i["number"] for i in q["items"]] == [number] and q["total"] == 1
    assert client.get("/api/work-orders", params={"overdue": "true"}, headers=headers("agent")).json()["total"] == 0


def test_api_idempotency_key_header_gives_the_same_order(client, headers):
    body = {"content": "国贸桥下积水很深，车辆无法通行", "phone": "13900000000"}
    h = {**headers("agent"), "Idempotency-Key": "agent-desk-7:call-123"}
    first = client.post("/api/work-orders", json=body, headers=h)
    again = client.post("/api/work-orders", json=body, headers=h)
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["number"] == again.json()["number"] and again.json()["created"] is False


def test_api_unit_accepts_objects_and_replies_only_on_its_own_orders(client, headers):
    number = create(client, headers)["number"]
    client.post(f"/api/work-orders/{number}/dispatch", json={}, headers=headers("agent"))
    mine = client.get("/api/units/me/work-orders", headers=headers("unit")).json()
    assert [i["number"] for i in mine["items"]] == [number]
    assert client.get("/api/units/me/work-orders", headers=headers("unit_street")).json()["total"] == 0
    other = client.post(f"/api/units/work-orders/{number}/accept", json={}, headers=headers("unit_street"))
    assert other.status_code == 403 and "主办单位" in other.json()["detail"]
    assert client.get(f"/api/work-orders/{number}", headers=headers("unit_street")).status_code == 403
    # objection → review upheld → re-dispatch to the street office, which replies
    r = client.post(f"/api/units/work-orders/{number}/object", json={"reason": "属地街道组织整治，非执法事项"},
                    headers=headers("unit"))
    assert r.status_code == 200 and r.json()["status"] == "objected"
    r = client.post(f"/api/work-orders/{number}/objection-review",
                    json={"upheld": True, "note": "异议成立", "new_unit_code": "street_office:110105026"},
                    headers=headers("agent"))
    assert r.json()["lead_unit"]["name"] == "朝阳区望京街道办事处"
    assert client.post(f"/api/units/work-orders/{number}/accept", json={}, headers=headers("unit_street")).status_code == 200
    r = client.post(f"/api/units/work-orders/{number}/reply", json={"text": "已组织清理占道摊点"},
                    headers=headers("unit_street"))
    assert r.json()["status"] == "replied"
    r = client.post(f"/api/work-orders/{number}/callback", json={"resolved": True, "satisfaction": "满意"},
                    headers=headers("agent"))
    assert r.json()["status"] == "callback_done"
    assert client.post(f"/api/work-orders/{number}/close", json={}, headers=headers("agent")).json()["status"] == "closed"


def test_api_errors_are_json_with_chinese_detail(client, headers):
    r = client.get("/api/work-orders/20261122-999999", headers=headers("agent"))
    assert r.status_code == 404 and r.json()["detail"] == "未找到工单20261122-999999"
    number = create(client, headers)["number"]
    r = client.post(f"/api/work-orders/{number}/close", json={"reason": "x"}, headers=headers("agent"))
    assert r.status_code == 200
    r = client.post(f"/api/work-orders/{number}/dispatch", json={}, headers=headers("agent"))
    assert r.status_code == 409 and r.json()["code"] == "illegal_transition" and "已办结" in r.json()["detail"]
    r = client.post("/api/work-orders", json={"content": ""}, headers=headers("agent"))
    assert r.status_code == 422 and r.json()["detail"].startswith("请求参数有误：诉求内容")
    r = client.post("/api/work-orders", json={"content": "x", "request_type": "闲聊"}, headers=headers("agent"))
    assert r.status_code == 422 and "请求参数有误" in r.json()["detail"]
    assert client.get("/api/work-orders").json()["detail"].startswith("未登录")
    assert client.get("/api/work-orders", headers={"Authorization": "Bearer jsjb_wrong"}).json()["detail"] == "令牌无效或已吊销"


def test_api_merge_extend_and_overdue(client, headers):
    a = create(client, headers)["number"]
    b = create(client, headers, content="国贸那边有小商贩摆摊堵路", phone="13900000001")["number"]
    client.post(f"/api/work-orders/{a}/dispatch", json={}, headers=headers("agent"))
    r = client.post(f"/api/work-orders/{b}/merge", json={"into": a, "reason": "同一事项"}, headers=headers("agent"))
    assert r.status_code == 200 and r.json()["merged_into"] == a
    r = client.post(f"/api/units/work-orders/{a}/extend", json={"reason": "需要联合执法", "working_days": 3},
                    headers=headers("unit"))
    assert r.status_code == 200 and r.json()["extension_count"] == 1
    r = client.post(f"/api/work-orders/{a}/extend", json={"reason": "诉求人同意延期", "hours": 24},
                    headers=headers("agent"))
    assert r.json()["extension_count"] == 2
    assert client.get("/api/work-orders/overdue", headers=headers("evaluator")).json() == []


def test_api_citizen_status_is_public_but_only_with_the_phone_tail(client, headers):
    number = create(client, headers)["number"]
    r = client.post("/api/citizens/work-order-status", json={"number": number, "phone_tail4": "5678"})
    assert r.status_code == 200 and r.json()["status_label"] == "已登记待派单"
    assert "citizen_phone" not in r.json()
    r = client.post("/api/citizens/work-order-status", json={"number": number, "phone_tail4": "0000"})
    assert r.status_code == 404 and "手机号后四位" in r.json()["detail"]
    r = client.post("/api/citizens/work-order-status", json={"number": number, "phone_tail4": "56"})
    assert r.status_code == 422


def test_api_stats_rates_counts_and_decision_export(client, headers):
    number = create(client, headers)["number"]
    client.post(f"/api/work-orders/{number}/dispatch", json={"request_type": "举报"}, headers=headers("agent"))
    client.post(f"/api/units/work-orders/{number}/accept", json={}, headers=headers("unit"))
    now = datetime.now(BEIJING)
    params = {"start": (now - timedelta(days=1)).isoformat(), "end": (now + timedelta(days=1)).isoformat(),
              "group_by": "unit"}
    rows = client.get("/api/stats/rates", params=params, headers=headers("evaluator")).json()["rows"]
    assert [(r["label"], r["orders"], r["responded"], r["response_rate"]) for r in rows] == [
        ("朝阳区城市管理综合行政执法局", 1, 1, 1.0)]
    r = client.get("/api/stats/rates", params={**params, "start": "2026-11-01T00:00:00"}, headers=headers("evaluator"))
    assert r.status_code == 422 and "时区" in r.json()["detail"]
    counts = client.get("/api/stats/counts", headers=headers("evaluator")).json()
    assert counts["by_status"]["dispatched"]["count"] == 0 and counts["by_status"]["accepted"]["count"] == 1
    rows = client.get("/api/stats/dispatch-decisions", headers=headers("admin")).json()
    assert rows == [{"text": "望京西园三区门口有人占道经营卖水果，堵住了人行道", "request_type": "举报",
                     "category_l1": "城乡建设", "category_l2": "城市建设和市政管理", "unit_type": "urban_enforcement"}]


def test_api_admin_edits_a_rule_and_routing_follows(client, headers):
    content = "海淀区中关村街道有人在小区里放孔明灯"
    before = create(client, headers, content=content, proposal=None)
    assert before["suggestions"] == [] or before["suggestions"][0]["unit_type"] != "emergency_management"
    rule = {"kind": "unit", "target": "emergency_management", "keywords": ["孔明灯"], "weight": 3}
    r = client.put("/api/catalog/rules/admin_sky_lantern", json=rule, headers=headers("admin"))
    assert r.status_code == 200 and r.json()["origin"] == "admin"
    after = create(client, headers, content=content, proposal=None, phone="13000000009")
    assert after["suggestions"][0]["unit_name"] == "海淀区应急管理局"
    bad = client.put("/api/catalog/rules/admin_bad", json={"kind": "emergency", "target": "999", "patterns": ["x"],
                                                           "reason": "r"}, headers=headers("admin"))
    assert bad.status_code == 422 and "110" in bad.json()["detail"]
    assert client.delete("/api/catalog/rules/admin_sky_lantern", headers=headers("admin")).json()["active"] is False
    r = client.put("/api/catalog/settings/dispatch_min_confidence", json={"value": 0.4}, headers=headers("admin"))
    assert r.json()["dispatch_min_confidence"] == 0.4
    client.put("/api/catalog/settings/dispatch_min_confidence", json={"value": 0.3}, headers=headers("admin"))
    units = client.get("/api/catalog/units", params={"q": "望京街道"}, headers=headers("agent")).json()
    assert units[0]["code"] == "street_office:110105026"
