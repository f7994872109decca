"""Open311 GeoReport v2 ↔ dispatch core: services, request parsing, public views, queries (no web framework).

``api/routes/open311.py`` is the HTTP side; everything here takes and returns plain data or ORM rows, so it can be
tested and reused without FastAPI.

Mapping decisions (see also the route module's docstring):

* **services** = the 15 first-level request categories (``category_l1`` of the classifier and of
  ``dispatch/catalog/data/routing_rules.yaml``), with stable ASCII ``service_code`` and Chinese ``service_name``;
* a posted request becomes an :class:`~dispatch.proposal.Intake` with ``channel="open311"`` and
  ``category_l1`` = the service's name; ``address_id`` is a place code of the dispatch gazetteer (administrative
  division code of a district, street/township or community, e.g. ``110105026`` = 朝阳区望京街道);
* the work-order table has no coordinate columns, so ``lat``/``long`` are kept in the order's address as a suffix
  ``（坐标：lat,long）`` (agents see it) and parsed back for the public view; ``media_url`` becomes a comment in the
  order's history; ``email``, ``device_id`` and ``account_id`` are not stored (``device_id``/``account_id`` only key
  the duplicate-submission window);
* the public view (GET requests) shows only orders that came in through Open311, never the citizen's name, phone or
  e-mail; phone and ID numbers inside the description and address are masked (art. 8: 个人隐私、个人信息依法受到保护);
  the description of an order handled as confidential (art. 11(4)) is not shown at all.
"""
from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from core.logging import mask_pii
from dispatch import states
from dispatch.deadlines import BEIJING
from dispatch.orm import Place, WorkOrder
from dispatch.proposal import Intake
from dispatch.routing import CONFIDENTIAL, DISPOSITION_LABELS, NEED_INFO

JURISDICTION_ID = "beijing.gov.cn"
SPEC_URL = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-11-22T00:00:00+08:00"  # bump when the service list or the fields change
CHANNEL = "open311"
MAX_DESCRIPTION = 4000  # the spec's limit for description
MAX_RESULTS = 1000  # at most this many requests per GET requests
MAX_RANGE = timedelta(days=90)  # the spec: a date range may not span more than 90 days; default = last 90 days
DUPLICATE_WINDOW = timedelta(minutes=10)  # same device_id/account_id + service + description → same request
MEDIA_NOTE = "Open311附件："
_COORD_SUFFIX = re.compile(r"（坐标：(-?\d{1,3}\.\d+),(-?\d{1,3}\.\d+)）$")
_ADDRESS_MAX = 255  # dispatch_work_orders.address


class Open311Error(Exception):
    """An error in the spec's format: HTTP ``status`` and ``[{"code": status, "description": …}]``."""

    def __init__(self, status: int, description_zh: str, description_en: str = ""):
        self.status = status
        self.description = f"{description_zh} / {description_en}" if description_en else description_zh
        super().__init__(self.description)

    def body(self) -> list[dict]:
        return [{"code": self.status, "description": self.description}]


# ------------------------------------------------------------------------------------------------------ services
@dataclass(frozen=True)
class ServiceType:
    code: str
    name: str  # = category_l1 of the dispatch core
    group: str
    description: str
    keywords: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"service_code": self.code, "service_name": self.name, "description": self.description,
                "metadata": False, "type": "realtime", "keywords": ",".join(self.keywords), "group": self.group}


_CITY, _LIVELIHOOD, _ECONOMY, _GOVERNANCE = "城市建设与管理", "民生保障", "经济与农业", "政务与法治"

SERVICES: tuple[ServiceType, ...] = (
    ServiceType("urban_construction", "城乡建设", _CITY,
                "住房保障与房地产、市政设施、园林绿化环卫、城乡规划、工程质量、房屋征收与拆迁等问题",
                ("物业", "房屋", "路灯", "井盖", "道路破损", "绿化", "环卫", "违法建设", "施工", "供暖")),
    ServiceType("environment", "环境保护", _CITY, "大气、水、噪声、固体废物等环境污染问题及环保审批",
                ("噪音", "扰民", "油烟", "污水", "异味", "扬尘", "排污", "垃圾焚烧")),
    ServiceType("transport", "交通运输", _CITY, "公交地铁、出租车与网约车、客货运输、交通设施建设、邮政快递等问题",
                ("公交", "地铁", "出租车", "网约车", "快递", "停车", "客运")),
    ServiceType("land_resources", "国土资源", _CITY, "土地征收、土地资源利用、矿产资源及海洋气象地震等问题",
                ("土地", "征地", "占地", "宅基地", "矿产")),
    ServiceType("labour_social_security", "劳动和社会保障", _LIVELIHOOD,
                "拖欠工资、劳动关系、社会保险、就业培训、退休政策与待遇等问题",
                ("欠薪", "工资", "社保", "劳动合同", "养老金", "医保", "就业", "退休")),
    ServiceType("health", "卫生计生", _LIVELIHOOD, "医疗服务与医政监管、医患纠纷、公共卫生、食品药品安全、人口计生等问题",
                ("医院", "看病", "医患纠纷", "疫苗", "食品安全", "药品", "生育")),
    ServiceType("civil_affairs", "民政", _LIVELIHOOD, "社会救助、养老与社会服务、社区建设、区划地名、优抚安置、慈善等问题",
                ("低保", "救助", "养老", "社区", "残疾人", "优抚", "殡葬")),
    ServiceType("education_culture_sports", "教育文体", _LIVELIHOOD,
                "入学招生与考试、教育收费、教师队伍、文化体育设施和文物保护等问题",
                ("学校", "入学", "幼儿园", "学费", "校外培训", "体育", "文化", "文物")),
    ServiceType("agriculture", "农村农业", _ECONOMY, "土地承包经营、惠农补贴、村务管理、动物防疫、林业水利等农村农业问题",
                ("农村", "村务", "惠农补贴", "土地承包", "林业", "水利", "养殖")),
    ServiceType("commerce_tourism", "商贸旅游", _ECONOMY, "消费纠纷、市场监管、商业贸易、产品质量检验和旅游管理等问题",
                ("消费", "退款", "商家", "价格", "假冒伪劣", "旅游", "景区", "预付卡")),
    ServiceType("economic_management", "经济管理", _ECONOMY, "金融财税、能源供应、企业经营与破产、国资监管、安全生产等问题",
                ("税务", "发票", "金融", "保险", "燃气", "电力", "企业")),
    ServiceType("science_it", "科技与信息产业", _ECONOMY, "电信服务、信息化建设、知识产权和科学技术等问题",
                ("电信", "手机信号", "宽带", "网络", "知识产权", "专利")),
    ServiceType("party_government_affairs", "党务政务", _GOVERNANCE, "政务服务、政治体制、民族宗教、港澳台侨、群众团体等问题",
                ("政务服务", "办事窗口", "宗教", "侨务", "群团")),
    ServiceType("politics_law", "政法", _GOVERNANCE, "社会治安、交通管理、户籍证件、法律服务、仲裁调解、诉讼与行政复议等问题",
                ("治安", "户口", "身份证", "交通违法", "法律援助", "调解")),
    ServiceType("discipline_inspection", "纪检监察", _GOVERNANCE, "公职人员作风、失职渎职、滥用职权、贪污贿赂等问题",
                ("作风", "失职", "渎职", "滥用职权", "贪污", "受贿")),
)
SERVICES_BY_CODE = {s.code: s for s in SERVICES}
SERVICES_BY_NAME = {s.name: s for s in SERVICES}


def service_list() -> list[dict]:
    return [s.to_dict() for s in SERVICES]


def get_service(code: str | None) -> ServiceType:
    service = SERVICES_BY_CODE.get((code or "").strip())
    if service is None:
        raise Open311Error(404, f"未找到服务类型“{code}”", f"service_code {code!r} not found")
    return service


def service_definition(code: str) -> dict:
    return {"service_code": get_service(code).code, "attributes": []}


def discovery(base_url: str) -> dict:
    """The Open311 service discovery document for this server (``/open311/discovery.json``)."""
    return {"changeset": CHANGESET, "contact": "12345市民服务热线", "key_service": "向系统管理员申请API令牌（api_key）",
            "endpoints": [{"specification": SPEC_URL, "url": base_url.rstrip("/") + "/open311/v2",
                           "changeset": CHANGESET, "type": "production", "formats": ["application/json"]}]}


def check_jurisdiction(jurisdiction_id: str | None) -> None:
    if jurisdiction_id is not None and jurisdiction_id.strip() and jurisdiction_id.strip() != JURISDICTION_ID:
        raise Open311Error(404, f"未知的管辖区“{jurisdiction_id}”，本服务的jurisdiction_id为{JURISDICTION_ID}",
                           f"jurisdiction_id {jurisdiction_id!r} not found")


def check_format(fmt: str) -> None:
    if fmt != "json":
        raise Open311Error(400, f"不支持的格式“{fmt}”，本服务仅提供JSON（请使用.json）",
                           f"format {fmt!r} not supported: this server speaks JSON only")


# ------------------------------------------------------------------------------------------------------ POST
@dataclass(frozen=True)
class PostedRequest:
    """A validated POST requests body (spec field names)."""

    service: ServiceType
    description: str
    lat: float | None = None
    long: float | None = None
    address_string: str | None = None
    address_id: str | None = None
    citizen_name: str | None = None
    phone: str | None = None
    device_id: str | None = None
    account_id: str | None = None
    media_url: str | None = None


def _field(fields: Mapping[str, str], name: str, max_len: int | None = None) -> str | None:
    value = (fields.get(name) or "").strip()
    if not value:
        return None
    if max_len is not None and len(value) > max_len:
        raise Open311Error(400, f"字段{name}过长（最多{max_len}个字符）", f"{name} longer than {max_len} characters")
    return value


def _coordinate(value: str | None, name: str, limit: float) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or abs(number) > limit:
        raise Open311Error(400, f"{name}须为-{limit:g}到{limit:g}之间的十进制度数", f"{name} must be a WGS84 decimal degree")
    return number


def parse_post(fields: Mapping[str, str]) -> PostedRequest:
    """Validate the form fields of POST requests; raises :class:`Open311Error` (400 missing/invalid, 404 service)."""
    code = _field(fields, "service_code", 64)
    if code is None:
        raise Open311Error(400, "缺少必填字段service_code", "service_code is required")
    service = get_service(code)
    lat, long_ = _field(fields, "lat", 32), _field(fields, "long", 32)
    if (lat is None) != (long_ is None):
        raise Open311Error(400, "lat和long须同时提供", "lat and long must be given together")
    address_string = _field(fields, "address_string", 200)
    address_id = _field(fields, "address_id", 32)
    if lat is None and address_string is None and address_id is None:
        raise Open311Error(400, "缺少位置：须提供lat和long、address_string或address_id之一",
                           "a location is required: lat & long, address_string or address_id")
    description = _field(fields, "description", MAX_DESCRIPTION)
    if description is None:
        raise Open311Error(400, "缺少必填字段description：请描述诉求内容", "description is required by this jurisdiction")
    media_url = _field(fields, "media_url", 1000)
    if media_url is not None and not re.match(r"^https?://[^\s]+$", media_url):
        raise Open311Error(400, "media_url须为http(s)网址", "media_url must be an http(s) URL")
    first, last = _field(fields, "first_name", 32), _field(fields, "last_name", 32)
    name = "".join(p for p in (last, first) if p) or None  # Chinese order: family name first
    return PostedRequest(
        service=service, description=description,
        lat=_coordinate(lat, "lat", 90), long=_coordinate(long_, "long", 180),
        address_string=address_string, address_id=address_id, citizen_name=name,
        phone=_field(fields, "phone", 32), device_id=_field(fields, "device_id", 128),
        account_id=_field(fields, "account_id", 128), media_url=media_url,
    )


def resolve_address_id(session: Session, address_id: str) -> Place:
    """A gazetteer place by its administrative-division code (district 6, street 9, community 12 digits)."""
    place = None
    if address_id.isdigit():
        place = session.scalar(select(Place).where(Place.code == address_id, Place.kind != "landmark").limit(1))
    if place is None:
        raise Open311Error(400, f"未知的address_id“{address_id}”：须为区、街道（乡镇）或社区（村）的行政区划代码",
                           f"address_id {address_id!r} is not a known division code")
    return place


def encode_address(address: str | None, lat: float | None, long: float | None) -> str | None:
    """The order's address: the citizen's text, then ``（坐标：lat,long）`` when coordinates were given."""
    if lat is None or long is None:
        return address[:_ADDRESS_MAX] if address else None
    suffix = f"（坐标：{lat:.6f},{long:.6f}）"
    return (address or "")[: _ADDRESS_MAX - len(suffix)] + suffix


def decode_address(stored: str | None) -> tuple[str | None, float | None, float | None]:
    if not stored:
        return None, None, None
    match = _COORD_SUFFIX.search(stored)
    if not match:
        return stored, None, None
    return stored[: match.start()] or None, float(match.group(1)), float(match.group(2))


def to_intake(req: PostedRequest, place: Place | None = None) -> Intake:
    address = req.address_string
    district = street = None
    if place is not None:
        district, street = place.district, place.street or None
        if place.kind == "community":  # community names help the community duty list (art. 17)
            address = address or f"{place.district}{place.street}{place.name}"
        else:
            address = address or f"{place.district}{place.street if place.kind == 'street' else ''}"
    return Intake(content=req.description, phone=req.phone, citizen_name=req.citizen_name,
                  category_l1=req.service.name, address=encode_address(address, req.lat, req.long),
                  district=district, street=street, channel=CHANNEL)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:40]


def header_idempotency_key(token_id: int, key: str) -> str:
    """The dispatch idempotency key for a client's ``Idempotency-Key`` header, namespaced by its api_key."""
    if not key.strip() or len(key) > 255:
        raise Open311Error(400, "Idempotency-Key须为1到255个字符", "Idempotency-Key must be 1..255 characters")
    return f"open311:{token_id}:h:{_digest(key.strip())}"


def duplicate_keys(token_id: int, req: PostedRequest, now: datetime) -> list[str]:
    """Keys of the duplicate-submission window (current and previous window), newest first; [] without a device."""
    device = req.device_id or req.account_id
    if device is None:
        return []
    bucket = int(now.timestamp() // DUPLICATE_WINDOW.total_seconds())
    text = " ".join(req.description.split())
    return [f"open311:{token_id}:d:{b}:{_digest(device, req.service.code, text)}" for b in (bucket, bucket - 1)]


def recent_duplicate(session: Session, keys: Sequence[str], now: datetime) -> str | None:
    """The idempotency key of an order created under one of ``keys`` within the window, if any."""
    if not keys:
        return None
    row = session.execute(select(WorkOrder.idempotency_key, WorkOrder.created_at)
                          .where(WorkOrder.idempotency_key.in_(list(keys)))).first()
    if row is not None and row.created_at >= now - DUPLICATE_WINDOW:
        return row.idempotency_key
    return None


def media_note(url: str) -> str:
    return f"{MEDIA_NOTE}{url}"


# ------------------------------------------------------------------------------------------------------ GET
def parse_datetime(value: str | None, name: str) -> datetime | None:
    """W3C date/time (``2026-11-22T08:00:00Z``, ``…+08:00``, or a date); without an offset: Beijing time."""
    if value is None or not value.strip():
        return None
    try:
        text = value.strip()
        if "T" in text:  # a "+" left unescaped in a query string arrives as " "
            text = re.sub(r" (\d{2}:?\d{2})$", r"+\1", text)
        ts = datetime.fromisoformat(text)
    except ValueError as exc:
        raise Open311Error(400, f"{name}须为W3C日期时间格式，如2026-11-22T08:00:00+08:00",
                           f"{name} must be a W3C datetime") from exc
    return ts if ts.tzinfo else ts.replace(tzinfo=BEIJING)


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


@dataclass(frozen=True)
class RequestFilter:
    numbers: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    statuses: tuple[str, ...] = ()


def parse_filters(service_request_id: str | None, service_code: str | None, start_date: str | None,
                  end_date: str | None, status: str | None, now: datetime) -> RequestFilter:
    """The spec's GET requests parameters; ``service_request_id`` overrides all others."""
    numbers = _split(service_request_id)
    if numbers:
        if len(numbers) > MAX_RESULTS:
            raise Open311Error(400, f"一次最多查询{MAX_RESULTS}个工单", f"at most {MAX_RESULTS} service_request_id")
        return RequestFilter(numbers=tuple(numbers))
    categories = tuple(get_service(code).name for code in _split(service_code))
    statuses: list[str] = []
    for value in _split(status):
        if value not in ("open", "closed"):
            raise Open311Error(400, f"status须为open或closed，收到“{value}”", "status must be open or closed")
        statuses += states.OPEN_STATUSES if value == "open" else states.FINAL_STATUSES
    start, end = parse_datetime(start_date, "start_date"), parse_datetime(end_date, "end_date")
    if start is None and end is None:
        end = now
    if start is None:
        start = end - MAX_RANGE
    elif end is None:
        end = start + MAX_RANGE
    if end < start:
        raise Open311Error(400, "end_date不能早于start_date", "end_date is before start_date")
    if end - start > MAX_RANGE:
        raise Open311Error(400, "查询时间范围不能超过90天", "the date range may not span more than 90 days")
    return RequestFilter(categories=categories, start=start, end=end, statuses=tuple(dict.fromkeys(statuses)))


def query_requests(session: Session, flt: RequestFilter) -> list[WorkOrder]:
    """Open311 orders matching the filter, newest first, at most MAX_RESULTS."""
    stmt = (select(WorkOrder).where(WorkOrder.channel == CHANNEL)
            .options(selectinload(WorkOrder.lead_unit), selectinload(WorkOrder.events),
                     selectinload(WorkOrder.merged_into)))
    if flt.numbers:
        stmt = stmt.where(WorkOrder.number.in_(flt.numbers))
    else:
        if flt.categories:
            stmt = stmt.where(WorkOrder.category_l1.in_(flt.categories))
        if flt.statuses:
            stmt = stmt.where(WorkOrder.status.in_(flt.statuses))
        if flt.start is not None:
            stmt = stmt.where(WorkOrder.created_at >= flt.start.astimezone(timezone.utc))
        if flt.end is not None:
            stmt = stmt.where(WorkOrder.created_at <= flt.end.astimezone(timezone.utc))
    return list(session.scalars(stmt.order_by(WorkOrder.id.desc()).limit(MAX_RESULTS)))


def get_request(session: Session, number: str) -> WorkOrder:
    rows = query_requests(session, RequestFilter(numbers=(number.strip(),)))
    if not rows:  # orders of other channels are not public: the same 404 as an unknown number
        raise Open311Error(404, f"未找到服务请求“{number}”", f"service_request_id {number!r} not found")
    return rows[0]


def _iso(ts: datetime | None) -> str | None:
    return ts.astimezone(BEIJING).isoformat(timespec="seconds") if ts else None


def _status_notes(order: WorkOrder) -> str:
    label = states.STATUS_LABELS[order.status]
    if order.status == states.TRANSFERRED:
        return f"{label}：属于紧急事项，请拨打{order.disposition_target}"
    if order.status == states.MERGED and order.merged_into is not None:
        return f"{label}：与工单{order.merged_into.number}为同一诉求，已并入该工单办理"
    if order.status == states.INFORMED:
        return f"{label}：{DISPOSITION_LABELS.get(order.disposition or '', '已答复诉求人')}"
    if order.status == states.REGISTERED and order.disposition == NEED_INFO:
        return f"{label}：请补充问题发生的具体地点（区、街道或小区）"
    return label


def _agency(order: WorkOrder, hotline_name: str) -> str:
    if order.lead_unit is not None:
        return order.lead_unit.name
    if order.status == states.TRANSFERRED and order.disposition_target:
        return f"{order.disposition_target}紧急专线"
    return hotline_name


def public_request(order: WorkOrder, hotline_name: str) -> dict:
    """What anyone may see of an Open311 order (GeoReport v2 request fields); no personal data."""
    address, lat, long_ = decode_address(order.address)
    if not address and order.district:
        address = f"北京市{order.district}{order.street or ''}"
    service = SERVICES_BY_NAME.get(order.category_l1 or "")
    media = next((e.reason[len(MEDIA_NOTE):] for e in order.events
                  if e.action == "comment" and (e.reason or "").startswith(MEDIA_NOTE)), None)
    return {
        "service_request_id": order.number,
        "status": "closed" if order.status in states.FINAL_STATUSES else "open",
        "status_notes": _status_notes(order),
        "service_name": service.name if service else order.category_l1,
        "service_code": service.code if service else None,
        "description": None if order.disposition == CONFIDENTIAL else mask_pii(order.content),
        "agency_responsible": _agency(order, hotline_name),
        "service_notice": None,
        "requested_datetime": _iso(order.created_at),
        "updated_datetime": _iso(order.updated_at),
        "expected_datetime": _iso(order.deadline_at),
        "address": mask_pii(address) if address else None,
        "address_id": None,
        "zipcode": None,
        "lat": lat,
        "long": long_,
        "media_url": media,
    }


def public_requests(orders: Iterable[WorkOrder], hotline_name: str) -> list[dict]:
    return [public_request(o, hotline_name) for o in orders]
