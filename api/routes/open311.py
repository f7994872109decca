"""Open311 GeoReport v2 (JSON) for city apps and third-party clients: a thin adapter over ``dispatch.service``.

Endpoints (``jurisdiction_id`` optional everywhere; if given it must be ``beijing.gov.cn``):

* ``GET  /open311/discovery.json`` — service discovery;
* ``GET  /open311/v2/services.json`` — the 15 first-level request categories (``type`` realtime, ``metadata`` false);
* ``GET  /open311/v2/services/{service_code}.json`` — definition (no attributes);
* ``POST /open311/v2/requests.json`` — form-encoded (``application/x-www-form-urlencoded``) fields of the spec:
  ``api_key``, ``service_code``, ``lat``+``long`` | ``address_string`` | ``address_id``, ``description`` (required
  here: it is the citizen's request), ``first_name``, ``last_name``, ``phone``, ``email``, ``device_id``,
  ``account_id``, ``media_url``. Creates a work order (channel ``open311``) and answers
  ``[{"service_request_id": "20261122-000123", "service_notice": "<中文>", "account_id": null}]`` (201; 200 on a
  replay). **api_key** = one of our API bearer tokens (``python -m api.auth create-token --role citizen --name
  <应用名>``) with role citizen, agent or admin; ``Authorization: Bearer <token>`` is accepted instead. No key, an
  unknown/revoked key or another role → 403. **Idempotency**: the same ``Idempotency-Key`` header from the same key
  returns the same request; without the header, the same ``device_id`` (or ``account_id``) + service +
  description within 10 minutes does too.
* ``GET  /open311/v2/requests.json`` — ``service_request_id`` (comma list, overrides the rest), ``service_code``
  (comma list), ``start_date``/``end_date`` (W3C; default the last 90 days; at most 90 days), ``status`` (open,
  closed); newest first, at most 1000;
* ``GET  /open311/v2/requests/{service_request_id}.json`` — one request (a one-element list).

Status: ``open`` = 已登记/已派单/办理中/异议审核/已反馈/已回访; ``closed`` = 已办结/已告知/已转紧急专线/已合并.
Only requests that came in through Open311 are listed (others: the same 404 as unknown numbers); no name, phone or
e-mail is ever returned and phone/ID numbers in texts are masked (条例第八条). Errors, on these routes only, are the
spec's ``[{"code": <HTTP status>, "description": "<中文> / <English>"}]``: 400 missing or invalid fields or a format
other than ``.json``, 403 api_key, 404 unknown service, request, jurisdiction or resource.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session

from api import open311_mapping as o311
from api.auth import Principal, authenticate, db_session
from core.config import get_settings
from dispatch.errors import DispatchError
from dispatch.orm import utcnow
from dispatch.service import DispatchService

logger = logging.getLogger(__name__)

POST_ROLES = ("citizen", "agent", "admin")


class Open311JSON(JSONResponse):
    media_type = "application/json; charset=utf-8"


def _error(status: int, description: str) -> Open311JSON:
    return Open311JSON([{"code": status, "description": description}], status_code=status)


class Open311Route(APIRoute):
    """Every error on the Open311 routes in the spec's format (other routers keep their own)."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except o311.Open311Error as exc:
                return _error(exc.status, exc.description)
            except DispatchError as exc:
                status = 400 if exc.http_status == 422 else exc.http_status
                return _error(status, f"{exc.message_zh} / {exc.message_en}")
            except RequestValidationError as exc:
                fields = "、".join(str(e.get("loc", ["?"])[-1]) for e in exc.errors())
                return _error(400, f"请求参数有误：{fields} / invalid parameters: {fields}")
            except HTTPException as exc:
                return _error(exc.status_code, str(exc.detail))
            except Exception:
                logger.exception("open311 request failed", extra={"path": request.url.path})
                return _error(500, "服务器内部错误，请稍后重试 / internal server error")

        return route_handler


router = APIRouter(prefix="/open311", tags=["open311"], route_class=Open311Route)


async def posted_fields(request: Request) -> dict[str, str]:
    """The POST fields: form body over query string (some clients put api_key/jurisdiction_id in the URL)."""
    fields = dict(request.query_params)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("", "application/x-www-form-urlencoded"):
        raw = await request.body()
        try:
            fields.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError as exc:
            raise o311.Open311Error(400, "请求须为UTF-8编码", "the body must be UTF-8") from exc
    elif content_type == "multipart/form-data":
        try:
            form = await request.form()
        except (AssertionError, ImportError) as exc:  # python-multipart not installed
            raise o311.Open311Error(400, "请以application/x-www-form-urlencoded提交",
                                    "send application/x-www-form-urlencoded") from exc
        fields.update({k: v for k, v in form.items() if isinstance(v, str)})
    else:
        raise o311.Open311Error(400, f"不支持的内容类型“{content_type}”，请以application/x-www-form-urlencoded提交",
                                f"unsupported content type {content_type!r}")
    return fields


def _principal(session: Session, api_key: str | None, authorization: str | None) -> Principal:
    token = api_key
    if not token and authorization and authorization.lower().startswith("bearer "):
        token = authorization[7:].strip()
    if not token:
        raise o311.Open311Error(403, "缺少api_key：提交服务请求须提供API令牌", "api_key is required to create requests")
    principal = authenticate(session, token)
    if principal is None:
        raise o311.Open311Error(403, "api_key无效或已吊销", "invalid api_key")
    if principal.role not in POST_ROLES:
        raise o311.Open311Error(403, f"该api_key的角色（{principal.role}）无权提交服务请求",
                                f"role {principal.role!r} may not create requests")
    return principal


@router.get("/discovery.json", summary="Open311 service discovery")
def discovery(request: Request) -> Open311JSON:
    return Open311JSON(o311.discovery(str(request.base_url)))


@router.get("/v2/services.{fmt}", summary="GeoReport v2: 服务类型列表")
def services(fmt: str, jurisdiction_id: str | None = None) -> Open311JSON:
    o311.check_format(fmt)
    o311.check_jurisdiction(jurisdiction_id)
    return Open311JSON(o311.service_list())


@router.get("/v2/services/{service_code}.{fmt}", summary="GeoReport v2: 服务类型定义")
def service_definition(service_code: str, fmt: str, jurisdiction_id: str | None = None) -> Open311JSON:
    o311.check_format(fmt)
    o311.check_jurisdiction(jurisdiction_id)
    return Open311JSON(o311.service_definition(service_code))


@router.post("/v2/requests.{fmt}", summary="GeoReport v2: 提交服务请求（登记工单）")
def create_request(
    fmt: str,
    fields: dict[str, str] = Depends(posted_fields),
    session: Session = Depends(db_session),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
    authorization: str | None = Header(None),
) -> Open311JSON:
    o311.check_format(fmt)
    o311.check_jurisdiction(fields.get("jurisdiction_id"))
    principal = _principal(session, fields.get("api_key"), authorization)
    req = o311.parse_post(fields)
    place = o311.resolve_address_id(session, req.address_id) if req.address_id else None
    now = utcnow()
    if idempotency_key is not None:
        key = o311.header_idempotency_key(principal.token_id, idempotency_key)
    else:
        keys = o311.duplicate_keys(principal.token_id, req, now)
        key = o311.recent_duplicate(session, keys, now) or (keys[0] if keys else None)
    svc = DispatchService(session)
    result = svc.create_work_order(o311.to_intake(req, place), idempotency_key=key, actor=principal.actor)
    if result["created"] and req.media_url:
        svc.comment(result["number"], principal.actor, o311.media_note(req.media_url))
    logger.info("open311 request", extra={"number": result["number"], "new_order": result["created"],
                                          "service_code": req.service.code, "client": principal.name})
    return Open311JSON([{"service_request_id": result["number"], "service_notice": result["citizen_message"],
                         "account_id": None}], status_code=201 if result["created"] else 200)


@router.get("/v2/requests.{fmt}", summary="GeoReport v2: 查询服务请求")
def list_requests(
    fmt: str,
    service_request_id: str | None = None,
    service_code: str | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
    status: str | None = None,
    jurisdiction_id: str | None = None,
    session: Session = Depends(db_session),
) -> Open311JSON:
    o311.check_format(fmt)
    o311.check_jurisdiction(jurisdiction_id)
    flt = o311.parse_filters(service_request_id, service_code, start_date, end_date, status, utcnow())
    orders = o311.query_requests(session, flt)
    return Open311JSON(o311.public_requests(orders, get_settings().hotline_name))


@router.get("/v2/requests/{service_request_id}.{fmt}", summary="GeoReport v2: 查询单个服务请求")
def get_request(service_request_id: str, fmt: str, jurisdiction_id: str | None = None,
                session: Session = Depends(db_session)) -> Open311JSON:
    o311.check_format(fmt)
    o311.check_jurisdiction(jurisdiction_id)
    order = o311.get_request(session, service_request_id)
    return Open311JSON([o311.public_request(order, get_settings().hotline_name)])


@router.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
def unknown_resource(path: str, request: Request) -> Open311JSON:
    """Anything else under /open311: 405 for a known resource with another method, else 404 (spec format)."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.endpoint is not unknown_resource \
                and route.path_regex.match(request.url.path):
            return _error(405, f"该资源不支持{request.method}方法 / method {request.method} not allowed")
    return _error(404, f"未找到资源“/open311/{path}” / resource not found")
