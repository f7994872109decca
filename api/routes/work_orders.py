"""Agents' work-order API: create, queue, detail with suggestions, dispatch/override, objections, merge, extend,
callback, close. Errors are JSON ``{"detail": "<中文>", "code": …, "message_en": …}``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from api.auth import Principal, db_session, require_role
from dispatch.errors import DispatchError
from dispatch.proposal import Intake, ModelProposal
from dispatch.service import DispatchService

_FIELD_NAMES = {"content": "诉求内容", "phone_tail4": "手机号后四位", "number": "工单号", "reason": "理由",
                "note": "审核意见", "text": "办理结果", "start": "开始时间", "end": "结束时间"}


class DispatchErrorRoute(APIRoute):
    """Turns domain errors and request validation errors into JSON with a Chinese ``detail``."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except DispatchError as exc:
                return JSONResponse({"detail": exc.message_zh, "code": exc.code, "message_en": exc.message_en},
                                    status_code=exc.http_status)
            except RequestValidationError as exc:
                problems = []
                for err in exc.errors():
                    field = str(err.get("loc", ["", ""])[-1])
                    problems.append(f"{_FIELD_NAMES.get(field, field)}：{err.get('msg', '')}")
                return JSONResponse({"detail": "请求参数有误：" + "；".join(problems), "code": "invalid_request",
                                     "errors": jsonable_errors(exc.errors())}, status_code=422)

        return route_handler


def jsonable_errors(errors: Any) -> list[dict]:
    return [{"loc": list(e.get("loc", [])), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in errors]


router = APIRouter(prefix="/api/work-orders", tags=["work-orders"], route_class=DispatchErrorRoute)

AGENTS = require_role("agent", "admin")
READERS = require_role("agent", "admin", "evaluator", "unit")


def service(session: Session = Depends(db_session)) -> DispatchService:
    return DispatchService(session)


class ScoredIn(BaseModel):
    label: str
    prob: float = Field(ge=0, le=1)
    reason: str = ""


class ProposalIn(BaseModel):
    """The classifier's output (dispatch.proposal.ModelProposal)."""

    request_type: list[ScoredIn] = []
    category_l1: list[ScoredIn] = []
    category_l2: list[ScoredIn] = []
    unit_type: list[ScoredIn] = []
    model_version: str = ""

    def to_domain(self) -> ModelProposal:
        return ModelProposal.from_dict(self.model_dump()) or ModelProposal()


class WorkOrderIn(BaseModel):
    content: str = Field(min_length=1, max_length=4000, description="诉求内容")
    phone: str | None = Field(None, max_length=32)
    citizen_name: str | None = Field(None, max_length=64)
    request_type: Literal["咨询", "求助", "投诉", "举报", "建议", "表扬"] | None = None
    category_l1: str | None = None
    category_l2: str | None = None
    address: str | None = Field(None, max_length=255)
    district: str | None = None
    street: str | None = None
    urgency: Literal["normal", "urgent"] | None = None
    channel: Literal["bot", "phone", "web", "app", "agent"] = "agent"
    summary: str | None = None
    answered_immediately: bool = False
    new_circumstances: bool = False
    proposal: ProposalIn | None = None
    idempotency_key: str | None = Field(None, max_length=128)


class DispatchIn(BaseModel):
    unit_code: str | None = Field(None, description="承办单位编码；不填则采用第一条建议")
    assist_unit_codes: list[str] = []
    reason: str | None = None
    request_type: Literal["咨询", "求助", "投诉", "举报", "建议", "表扬"] | None = None
    category_l1: str | None = None
    category_l2: str | None = None
    urgency: Literal["normal", "urgent"] | None = None


class MergeIn(BaseModel):
    into: str = Field(description="合并到的工单号")
    reason: str = Field(min_length=2)


class ExtendIn(BaseModel):
    reason: str = Field(min_length=4)
    working_days: int | None = Field(None, ge=1)
    hours: float | None = Field(None, gt=0)


class CloseIn(BaseModel):
    reason: str | None = None


class CallbackIn(BaseModel):
    resolved: bool | None
    satisfaction: Literal["满意", "基本满意", "不满意"] | None
    note: str | None = None


class ReviewIn(BaseModel):
    upheld: bool
    note: str = Field(min_length=2)
    new_unit_code: str | None = None
    assist_unit_codes: list[str] = []


class ReasonIn(BaseModel):
    reason: str = Field(min_length=2)


class RouteIn(BaseModel):
    proposal: ProposalIn | None = None


@router.post("", summary="登记工单（坐席）", status_code=201)
def create_work_order(body: WorkOrderIn, response: Response, svc: DispatchService = Depends(service),
                      principal: Principal = Depends(AGENTS),
                      idempotency_key: str | None = Header(None, alias="Idempotency-Key")) -> dict:
    data = body.model_dump(exclude={"proposal", "idempotency_key"})
    result = svc.create_work_order(Intake(**data), body.proposal.to_domain() if body.proposal else None,
                                   idempotency_key or body.idempotency_key, principal.actor)
    if not result["created"]:
        response.status_code = 200
    return result


@router.get("", summary="工单队列（坐席；承办单位只看本单位）")
def queue(
    status: list[str] | None = Query(None, description="状态，可多选"),
    district: str | None = None,
    unit_code: str | None = None,
    category_l1: str | None = None,
    overdue: bool | None = None,
    needs_consultation: bool | None = None,
    disposition: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0),
    svc: DispatchService = Depends(service),
    principal: Principal = Depends(READERS),
) -> dict:
    if principal.role == "unit":
        unit_code = principal.unit_code
    return svc.list_queue(status, district, unit_code, category_l1, overdue, needs_consultation, disposition,
                          limit, offset)


@router.get("/overdue", summary="逾期工单")
def overdue(svc: DispatchService = Depends(service), _: Principal = Depends(require_role("agent", "admin", "evaluator"))
            ) -> list[dict]:
    return svc.overdue()


@router.get("/{number}", summary="工单详情（含建议承办单位、流转记录）")
def detail(number: str, svc: DispatchService = Depends(service), principal: Principal = Depends(READERS)) -> dict:
    order = svc.get_order(number, principal.actor)
    if principal.role == "evaluator":  # evaluators need the handling, not the citizen's contact
        order["citizen_phone"] = order["citizen_phone_masked"]
        order["citizen_name"] = None
    return order


@router.post("/{number}/route", summary="重新研判（已登记工单）")
def reroute(number: str, body: RouteIn, svc: DispatchService = Depends(service), _: Principal = Depends(AGENTS)) -> dict:
    return svc.route(number, body.proposal.to_domain() if body.proposal else None)


@router.post("/{number}/dispatch", summary="派单：确认建议或改选承办单位")
def dispatch(number: str, body: DispatchIn, svc: DispatchService = Depends(service),
             principal: Principal = Depends(AGENTS)) -> dict:
    return svc.dispatch(number, body.unit_code, principal.actor, body.assist_unit_codes, body.reason,
                        body.request_type, body.category_l1, body.category_l2, body.urgency)


@router.post("/{number}/objection-review", summary="审核承办单位的派单异议")
def review_objection(number: str, body: ReviewIn, svc: DispatchService = Depends(service),
                     principal: Principal = Depends(AGENTS)) -> dict:
    return svc.review_objection(number, principal.actor, body.upheld, body.note, body.new_unit_code,
                                body.assist_unit_codes)


@router.post("/{number}/merge", summary="合并重复工单")
def merge(number: str, body: MergeIn, svc: DispatchService = Depends(service),
          principal: Principal = Depends(AGENTS)) -> dict:
    return svc.merge(number, body.into, principal.actor, body.reason)


@router.post("/{number}/extend", summary="延长办理时限")
def extend(number: str, body: ExtendIn, svc: DispatchService = Depends(service),
           principal: Principal = Depends(AGENTS)) -> dict:
    return svc.extend(number, principal.actor, body.reason, body.working_days, body.hours)


@router.post("/{number}/callback", summary="回访结果")
def callback(number: str, body: CallbackIn, svc: DispatchService = Depends(service),
             principal: Principal = Depends(AGENTS)) -> dict:
    return svc.record_callback(number, body.resolved, body.satisfaction, principal.actor, body.note)


@router.post("/{number}/reopen", summary="回访未解决，重新办理")
def reopen(number: str, body: ReasonIn, svc: DispatchService = Depends(service),
           principal: Principal = Depends(AGENTS)) -> dict:
    return svc.reopen(number, principal.actor, body.reason)


@router.post("/{number}/close", summary="办结")
def close(number: str, body: CloseIn, svc: DispatchService = Depends(service),
          principal: Principal = Depends(AGENTS)) -> dict:
    return svc.close(number, principal.actor, body.reason)
