"""Handling units' API (accept, object, reply, extend, own queue) and the dispatch catalog (units, unit types, rules).

A ``unit`` token is bound to one unit; it sees and acts on that unit's orders only (first responsibility, art. 14).
Routing rules and catalog settings are edited by admins; edits take effect on the next request of every process.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from api.auth import Principal, db_session, require_role
from api.routes.work_orders import DispatchErrorRoute, service
from dispatch.catalog import admin
from dispatch.service import DispatchService

router = APIRouter(tags=["units"], route_class=DispatchErrorRoute)

UNIT = require_role("unit")
ADMIN = require_role("admin")
CATALOG_READERS = require_role("agent", "admin", "unit", "evaluator", "editor")


class NoteIn(BaseModel):
    note: str | None = None


class ObjectionIn(BaseModel):
    reason: str = Field(min_length=4, description="异议理由")


class ReplyIn(BaseModel):
    text: str = Field(min_length=4, description="办理结果")


class UnitExtendIn(BaseModel):
    reason: str = Field(min_length=4)
    working_days: int | None = Field(None, ge=1)
    hours: float | None = Field(None, gt=0)


class RuleIn(BaseModel):
    kind: str | None = None
    target: str | None = None
    name: str | None = None
    reason: str | None = None
    patterns: list[str] | None = None
    keywords: list[str] | None = None
    category_l1: str | None = None
    category_l2: str | None = None
    weight: float | None = None
    active: bool | None = None


class SettingIn(BaseModel):
    value: Any


@router.get("/api/units/me/work-orders", summary="本单位的工单")
def my_queue(status: list[str] | None = Query(None), overdue: bool | None = None,
             limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0),
             svc: DispatchService = Depends(service), principal: Principal = Depends(UNIT)) -> dict:
    return svc.list_queue(status, unit_code=principal.unit_code, overdue=overdue, limit=limit, offset=offset)


@router.post("/api/units/work-orders/{number}/accept", summary="签收")
def accept(number: str, body: NoteIn, svc: DispatchService = Depends(service),
           principal: Principal = Depends(UNIT)) -> dict:
    return svc.accept(number, principal.actor, body.note)


@router.post("/api/units/work-orders/{number}/object", summary="提出派单异议（职责或管辖）")
def object_(number: str, body: ObjectionIn, svc: DispatchService = Depends(service),
            principal: Principal = Depends(UNIT)) -> dict:
    return svc.object(number, principal.actor, body.reason)


@router.post("/api/units/work-orders/{number}/reply", summary="反馈办理结果")
def reply(number: str, body: ReplyIn, svc: DispatchService = Depends(service),
          principal: Principal = Depends(UNIT)) -> dict:
    return svc.reply(number, principal.actor, body.text)


@router.post("/api/units/work-orders/{number}/extend", summary="申请延长办理时限")
def extend(number: str, body: UnitExtendIn, svc: DispatchService = Depends(service),
           principal: Principal = Depends(UNIT)) -> dict:
    return svc.extend(number, principal.actor, body.reason, body.working_days, body.hours)


@router.get("/api/catalog/units", summary="查询派单目录中的承办单位")
def units(q: str | None = None, unit_type: str | None = None, district: str | None = None,
          limit: int = Query(50, ge=1, le=200), session: Session = Depends(db_session),
          _: Principal = Depends(CATALOG_READERS)) -> list[dict]:
    return admin.search_units(session, q, unit_type, district, limit)


@router.get("/api/catalog/unit-types", summary="承办单位类型")
def unit_types(session: Session = Depends(db_session), _: Principal = Depends(CATALOG_READERS)) -> list[dict]:
    return admin.unit_types(session)


@router.get("/api/catalog/rules", summary="派单规则（管理员）")
def rules(kind: str | None = None, session: Session = Depends(db_session), _: Principal = Depends(ADMIN)) -> list[dict]:
    return admin.list_rules(session, kind)


@router.put("/api/catalog/rules/{code}", summary="新建或修改派单规则（管理员）")
def put_rule(code: str, body: RuleIn, session: Session = Depends(db_session),
             principal: Principal = Depends(ADMIN)) -> dict:
    return admin.upsert_rule(session, code, body.model_dump(exclude_none=True), principal.actor)


@router.delete("/api/catalog/rules/{code}", summary="停用派单规则（管理员）")
def delete_rule(code: str, session: Session = Depends(db_session), principal: Principal = Depends(ADMIN)) -> dict:
    return admin.deactivate_rule(session, code, principal.actor)


@router.get("/api/catalog/settings", summary="派单研判参数（管理员）")
def settings(session: Session = Depends(db_session), _: Principal = Depends(ADMIN)) -> dict:
    return admin.get_settings(session)


@router.put("/api/catalog/settings/{key}", summary="修改派单研判参数（管理员）")
def put_setting(key: str, body: SettingIn, session: Session = Depends(db_session),
                _: Principal = Depends(ADMIN)) -> dict:
    return admin.set_setting(session, key, body.value)
