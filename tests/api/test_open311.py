"""Open311 GeoReport v2 over real HTTP: the real app under uvicorn, a real database (SQLite file and PostgreSQL), and
the PyPI client library ``georeport`` (0.3.1) as the client.

``georeport`` reads services and requests but has no POST (its README says so), so :class:`Open311Client` adds
``post_service_request`` by subclassing, in the library's own style (``requests``, form-encoded, ``raise_for_status``).
"""
from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
import requests
import uvicorn
from georeport import GeoReport
from sqlalchemy.engine import Engine

from api.auth import authenticate, create_token, db_session, revoke_token
from core.db import session_factory
from dispatch.proposal import Intake
from dispatch.service import DispatchService
from tests.dispatch.helpers import AGENT, clear_work_tables

JURISDICTION = "beijing.gov.cn"
CATEGORIES = {"城乡建设", "环境保护", "交通运输", "国土资源", "农村农业", "劳动和社会保障", "卫生计生", "民政", "教育文体",
              "商贸旅游", "经济管理", "科技与信息产业", "党务政务", "政法", "纪检监察"}
REQUEST_FIELDS = {"service_request_id", "status", "status_notes", "service_name", "service_code", "description",
                  "agency_responsible", "service_notice", "requested_datetime", "updated_datetime",
                  "expected_datetime", "address", "address_id", "zipcode", "lat", "long", "media_url"}
NUMBER = re.compile(r"\d{8}-\d{6}")


class Open311Client(GeoReport):
    """``georeport.GeoReport`` plus POST requests (GeoReport v2 "POST Service Request")."""

    last_response: requests.Response | None = None

    def post_service_request(self, service_code: str, idempotency_key: str | None = None, **fields) -> list[dict]:
        data = {"service_code": service_code, **{k: v for k, v in fields.items() if v is not None}}
        if self.jurisdiction:
            data["jurisdiction_id"] = self.jurisdiction
        if self.api_key:
            data["api_key"] = self.api_key
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        response = requests.post(f"{self.root_address}/requests.{self.output_format}", data=data, headers=headers,
                                 timeout=30)
        self.last_response = response
        response.raise_for_status()
        return response.json()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def base_url(api_engine: Engine) -> Iterator[str]:
    """The real app (api.main.create_app) served by uvicorn on a free local port, on the test database."""
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
    port = _free_port()
    # lifespan "off": the app's start-up only reconfigures the process's logging, which would leak into other tests
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, name="uvicorn-open311", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy",
                "GEOREPORT_API_KEY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def extra_tokens(api_engine: Engine) -> dict[str, str]:
    with session_factory(api_engine)() as s:
        app2 = create_token(s, "citizen", "另一款城市应用")
        revoked = create_token(s, "citizen", "已停用应用")
        revoke_token(s, authenticate(s, revoked).token_id)
    return {"citizen2": app2, "revoked": revoked}


@pytest.fixture
def client(base_url: str, tokens: dict[str, str]) -> Open311Client:
    return Open311Client(f"{base_url}/open311/v2", jurisdiction=JURISDICTION, api_key=tokens["citizen"])


@pytest.fixture
def svc(api_engine: Engine) -> Iterator[DispatchService]:
    s = session_factory(api_engine)()
    yield DispatchService(s)
    s.close()


def _error(exc_info: pytest.ExceptionInfo[requests.HTTPError], status: int) -> str:
    """Assert a spec-format error ``[{"code": status, "description": …}]`` and return its description."""
    response = exc_info.value.response
    assert response.status_code == status
    body = response.json()
    assert isinstance(body, list) and len(body) == 1 and set(body[0]) == {"code", "description"}
    assert body[0]["code"] == status and body[0]["description"]
    return body[0]["description"]


# ------------------------------------------------------------------------------------------------------ services
def test_service_list_is_our_15_categories(client: Open311Client, base_url: str):
    services = client.get_service_list()
    assert len(services) == 15 and {s["service_name"] for s in services} == CATEGORIES
    codes = [s["service_code"] for s in services]
    assert len(set(codes)) == 15 and all(re.fullmatch(r"[a-z][a-z_]+", c) for c in codes)
    for s in services:
        assert s["type"] == "realtime" and s["metadata"] is False
        assert s["keywords"] and "," in s["keywords"] and s["group"] and s["description"]
    environment = next(s for s in services if s["service_name"] == "环境保护")
    assert client.get_service_definition(environment["service_code"]) == {
        "service_code": environment["service_code"], "attributes": []}
    discovery = requests.get(f"{base_url}/open311/discovery.json", timeout=10).json()
    assert discovery["endpoints"][0]["url"] == f"{base_url}/open311/v2"
    assert discovery["endpoints"][0]["formats"] == ["application/json"]


# ------------------------------------------------------------------------------------------------------ POST + GET
def test_post_request_creates_work_order_and_reads_back(client: Open311Client, svc: DispatchService):
    posted = client.post_service_request(
        "urban_construction", lat="39.996210", long="116.470530", address_string="朝阳区望京西园三区5号楼东侧",
        description="小区东门的路灯坏了一周了，晚上很黑，老人出门不安全", first_name="小明", last_name="王",
        phone="13812340001", email="wxm@example.com", device_id="device-A1",
        media_url="https://img.example.com/p/lamp.jpg")
    assert client.last_response.status_code == 201
    assert len(posted) == 1 and set(posted[0]) == {"service_request_id", "service_notice", "account_id"}
    number = posted[0]["service_request_id"]
    assert NUMBER.fullmatch(number) and posted[0]["account_id"] is None
    assert "已受理" in posted[0]["service_notice"] and number in posted[0]["service_notice"]

    got = client.get_service_request(number)
    assert set(got) == REQUEST_FIELDS
    assert got["service_request_id"] == number and got["status"] == "open"
    assert (got["service_code"], got["service_name"]) == ("urban_construction", "城乡建设")
    assert got["description"] == "小区东门的路灯坏了一周了，晚上很黑，老人出门不安全"
    assert got["address"] == "朝阳区望京西园三区5号楼东侧"
    assert (got["lat"], got["long"]) == (39.99621, 116.47053)
    assert got["media_url"] == "https://img.example.com/p/lamp.jpg"
    assert got["requested_datetime"].endswith("+08:00") and got["updated_datetime"]
    assert got["status_notes"] == "已登记待派单" and got["agency_responsible"] == "12345市民服务热线"
    assert got["expected_datetime"] is None  # not dispatched yet: no deadline

    # what the dispatch core recorded (the agents' view)
    order = svc.get_order(number, AGENT)
    assert order["channel"] == "open311" and order["category_l1"] == "城乡建设"
    assert order["citizen_phone"] == "13812340001" and order["citizen_name"] == "王小明"
    assert (order["district"], order["street"]) == ("朝阳区", "望京街道")
    assert order["address"] == "朝阳区望京西园三区5号楼东侧（坐标：39.996210,116.470530）"
    assert order["events"][0]["actor"] == "测试citizen" and order["events"][0]["actor_role"] == "citizen"
    assert any(e["action"] == "comment" and "lamp.jpg" in e["reason"] for e in order["events"])

    # the agent dispatches it: the public view shows the unit and the deadline (art. 13)
    svc.dispatch(number, None, AGENT)
    got = client.get_service_request(number)
    assert got["status"] == "open" and got["status_notes"] == "已派单待签收"
    assert got["agency_responsible"] == order["suggestions"][0]["unit_name"]
    assert got["expected_datetime"] and got["expected_datetime"] > got["requested_datetime"]


def test_address_id_is_a_division_code(client: Open311Client, svc: DispatchService):
    posted = client.post_service_request("environment", address_id="110105026",
                                         description="楼下饭馆油烟直排，窗户都不敢开", phone="13812340002")
    number = posted[0]["service_request_id"]
    order = svc.get_order(number, AGENT)
    assert (order["district"], order["street"]) == ("朝阳区", "望京街道") and order["category_l1"] == "环境保护"
    got = client.get_service_request(number)
    assert got["address"] == "朝阳区望京街道" and got["lat"] is None and got["service_code"] == "environment"
    with pytest.raises(requests.HTTPError) as exc:
        client.post_service_request("environment", address_id="999999", description="噪音扰民")
    assert "address_id" in _error(exc, 400)


def test_no_personal_data_in_public_views(client: Open311Client, base_url: str):
    description = "我叫赵某，电话13912345678，身份证110105199001011234，楼上装修每天晚上十点后还在砸墙"
    posted = client.post_service_request(
        "environment", address_string="朝阳区望京街道", description=description, first_name="某", last_name="赵",
        phone="13812340003", email="zhao.private@example.com", device_id="device-B2", account_id="acct-778")
    number = posted[0]["service_request_id"]
    raw_one = requests.get(f"{base_url}/open311/v2/requests/{number}.json", timeout=10).text
    raw_list = requests.get(f"{base_url}/open311/v2/requests.json", params={"service_code": "environment"},
                            timeout=10).text
    for raw in (raw_one, raw_list, json.dumps(posted, ensure_ascii=False)):
        for secret in ("13812340003", "zhao.private", "13912345678", "110105199001011234", "device-B2", "acct-778"):
            assert secret not in raw
    got = json.loads(raw_one)[0]
    assert set(got) == REQUEST_FIELDS  # no phone/email/first_name/last_name/device_id/account_id fields
    assert "139****5678" in got["description"] and "110" + "*" * 11 + "1234" in got["description"]
    assert got["description"].startswith("我叫赵某，电话139****5678")
    assert number in {r["service_request_id"] for r in json.loads(raw_list)}


def test_orders_from_other_channels_are_not_public(client: Open311Client, svc: DispatchService):
    hotline = svc.create_work_order(Intake("望京西园三区路灯不亮", phone="13812340004", category_l1="城乡建设",
                                           channel="phone"), actor=AGENT)
    with pytest.raises(requests.HTTPError) as exc:
        client.get_service_request(hotline["number"])
    assert _error(exc, 404)
    assert client.get_service_requests(service_request_id=hotline["number"]) == []
    assert hotline["number"] not in {r["service_request_id"] for r in client.get_service_requests()}


def test_emergency_is_transferred_and_closed(client: Open311Client):
    posted = client.post_service_request("urban_construction", address_string="朝阳区望京西园三区",
                                         description="楼道里着火了，浓烟很大", phone="13812340005")
    assert "119" in posted[0]["service_notice"]
    got = client.get_service_request(posted[0]["service_request_id"])
    assert got["status"] == "closed" and "119" in got["status_notes"] and got["agency_responsible"] == "119紧急专线"


# ------------------------------------------------------------------------------------------------------ filters
def test_list_filters(client: Open311Client, svc: DispatchService):
    lamp = client.post_service_request("urban_construction", address_string="海淀区中关村大街",
                                       description="中关村大街人行道地砖松动，下雨踩上去溅一身水",
                                       phone="13812340011")[0]["service_request_id"]
    noise = client.post_service_request("environment", address_string="丰台区方庄",
                                        description="方庄芳城园工地夜间施工噪音太大",
                                        phone="13812340012")[0]["service_request_id"]
    bus = client.post_service_request("transport", lat="39.9", long="116.4", description="公交站牌信息多年未更新",
                                      phone="13812340013")[0]["service_request_id"]
    svc.close(bus, AGENT, "已电话答复诉求人，站牌信息已由公交公司更新")

    both = client.get_service_requests(service_request_id=f"{lamp},{noise}")
    assert {r["service_request_id"] for r in both} == {lamp, noise}
    # service_request_id overrides every other parameter (spec)
    assert len(client.get_service_requests(service_request_id=lamp, service_code="transport", status="closed")) == 1

    by_code = client.get_service_requests(service_code="environment,transport")
    ids = {r["service_request_id"] for r in by_code}
    assert {noise, bus} <= ids and lamp not in ids
    assert {r["service_code"] for r in by_code} <= {"environment", "transport"}

    closed = {r["service_request_id"]: r for r in client.get_service_requests(status="closed")}
    opened = {r["service_request_id"] for r in client.get_service_requests(status="open")}
    assert bus in closed and closed[bus]["status_notes"] == "已办结" and bus not in opened
    assert {lamp, noise} <= opened and not {lamp, noise} & set(closed)
    assert {lamp, noise, bus} <= {r["service_request_id"] for r in client.get_service_requests(status="open,closed")}

    now = datetime.now(timezone.utc)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    window = client.get_service_requests(start_date=(now - timedelta(hours=1)).strftime(fmt),
                                         end_date=(now + timedelta(hours=1)).strftime(fmt), service_code="transport")
    assert [r["service_request_id"] for r in window] == [bus]
    past = client.get_service_requests(start_date="2025-01-01T00:00:00+08:00", end_date="2025-02-01T00:00:00+08:00")
    assert past == []
    newest_first = [r["service_request_id"] for r in client.get_service_requests()]
    assert newest_first.index(bus) < newest_first.index(noise) < newest_first.index(lamp)


# ------------------------------------------------------------------------------------------------------ idempotency
def test_idempotency_key_header_and_device_window(client: Open311Client, base_url: str, extra_tokens: dict[str, str]):
    fields = dict(address_string="西城区金融街", description="金融街路口红绿灯坏了", phone="13812340021")
    first = client.post_service_request("politics_law", idempotency_key="app-req-0001", **fields)
    again = client.post_service_request("politics_law", idempotency_key="app-req-0001", **fields)
    assert client.last_response.status_code == 200
    assert again[0]["service_request_id"] == first[0]["service_request_id"]
    # the same key from another client (another api_key) is another request
    other = Open311Client(f"{base_url}/open311/v2", jurisdiction=JURISDICTION, api_key=extra_tokens["citizen2"])
    theirs = other.post_service_request("politics_law", idempotency_key="app-req-0001",
                                        address_string="东城区王府井", description="王府井步行街共享单车乱停放")
    assert theirs[0]["service_request_id"] != first[0]["service_request_id"]

    # no header: same device + service + description within the window → the same request
    device = dict(address_string="通州区北苑", description="北苑小区垃圾桶满了没人清运", device_id="device-C3")
    one = client.post_service_request("urban_construction", **device)
    two = client.post_service_request("urban_construction", **device)
    assert two[0]["service_request_id"] == one[0]["service_request_id"] and client.last_response.status_code == 200
    three = client.post_service_request("urban_construction", **{**device, "description": "北苑小区路面塌陷一个坑"})
    assert three[0]["service_request_id"] != one[0]["service_request_id"]


# ------------------------------------------------------------------------------------------------------ errors
def test_spec_format_errors(client: Open311Client, base_url: str, tokens: dict[str, str],
                            extra_tokens: dict[str, str]):
    root = f"{base_url}/open311/v2"
    ok = dict(address_string="朝阳区望京", description="路灯坏了")
    with pytest.raises(requests.HTTPError) as exc:
        client.get_service_definition("no_such_service")
    assert "no_such_service" in _error(exc, 404)
    with pytest.raises(requests.HTTPError) as exc:
        client.get_service_request("20000101-000001")
    _error(exc, 404)

    # api_key: missing, unknown, revoked, a role that may not create requests → 403
    for key in (None, "jsjb_not-a-real-token", extra_tokens["revoked"], tokens["evaluator"], tokens["unit"]):
        with pytest.raises(requests.HTTPError) as exc:
            Open311Client(root, jurisdiction=JURISDICTION, api_key=key).post_service_request("environment", **ok)
        assert "api_key" in _error(exc, 403)
    for role in ("agent", "admin"):  # staff keys may post too
        staff = Open311Client(root, jurisdiction=JURISDICTION, api_key=tokens[role])
        assert NUMBER.fullmatch(staff.post_service_request("environment", **{**ok, "description": f"{role}代录：路灯坏了"})
                                [0]["service_request_id"])

    # missing or invalid fields → 400, unknown service → 404
    bad_posts = [
        ({"service_code": ""}, 400, "service_code"),
        ({"service_code": "no_such_service"}, 404, "no_such_service"),
        ({"address_string": None}, 400, "位置"),
        ({"description": None}, 400, "description"),
        ({"address_string": None, "lat": "39.9"}, 400, "lat"),
        ({"address_string": None, "lat": "north", "long": "116.4"}, 400, "lat"),
        ({"address_string": None, "lat": "39.9", "long": "516.4"}, 400, "long"),
        ({"media_url": "javascript:alert(1)"}, 400, "media_url"),
        ({"description": "长" * 4001}, 400, "description"),
    ]
    for change, status, needle in bad_posts:
        fields = {"service_code": "environment", **ok, **change}
        code = fields.pop("service_code")
        with pytest.raises(requests.HTTPError) as exc:
            client.post_service_request(code, **fields)
        assert needle in _error(exc, status), change

    # GET requests: invalid status, a range over 90 days, a bad date, an unknown service or jurisdiction
    with pytest.raises(requests.HTTPError) as exc:
        client.get_service_requests(status="pending")
    _error(exc, 400)
    with pytest.raises(requests.HTTPError) as exc:
        client.get_service_requests(start_date="2026-01-01T00:00:00Z", end_date="2026-06-01T00:00:00Z")
    assert "90" in _error(exc, 400)
    with pytest.raises(requests.HTTPError) as exc:
        client.get_service_requests(start_date="yesterday")
    assert "start_date" in _error(exc, 400)
    with pytest.raises(requests.HTTPError) as exc:
        client.get_service_requests(service_code="no_such_service")
    _error(exc, 404)
    with pytest.raises(requests.HTTPError) as exc:
        GeoReport(root, jurisdiction="chicago.gov").get_service_list()
    assert "jurisdiction_id" in _error(exc, 404)

    # JSON only: .xml (which the client library supports) is refused in the spec's error format
    with pytest.raises(requests.HTTPError) as exc:
        GeoReport(root, output_format="xml").get_service_list()
    assert "JSON" in _error(exc, 400)

    # unknown resources and wrong methods under /open311 are spec errors too …
    for method, path, status in (("GET", "/v2/no_such_resource.json", 404), ("PUT", "/v2/requests.json", 405),
                                 ("DELETE", "/v2/services.json", 405)):
        response = requests.request(method, f"{base_url}/open311{path}", timeout=10)
        assert response.status_code == status and response.json()[0]["code"] == status
    # … but the handler is scoped to the Open311 routes: the rest of the API keeps its own error format
    other = requests.get(f"{base_url}/api/work-orders/20000101-000001", timeout=10)
    assert other.status_code == 401 and isinstance(other.json(), dict) and "detail" in other.json()
