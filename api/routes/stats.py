"""Evaluation API (art. 31): response, resolution and satisfaction rates; counts; dispatch decisions as training rows."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from api.auth import Principal, db_session, require_role
from api.routes.work_orders import DispatchErrorRoute, service
from dispatch.errors import InvalidRequest
from dispatch.service import DispatchService, export_dispatch_decisions

router = APIRouter(prefix="/api/stats", tags=["stats"], route_class=DispatchErrorRoute)

EVALUATORS = require_role("evaluator", "admin", "agent")


@router.get("/rates", summary="三率：响应率、解决率、满意率（按承办单位、区或分类）")
def rates(start: datetime = Query(description="开始时间（含），ISO 8601，需带时区，如 2026-11-01T00:00:00+08:00"),
          end: datetime = Query(description="结束时间（不含）"),
          group_by: Literal["unit", "district", "category"] = "unit",
          svc: DispatchService = Depends(service), _: Principal = Depends(EVALUATORS)) -> dict:
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidRequest("开始和结束时间须带时区，如 +08:00", "start/end need a timezone")
    return {"start": start.isoformat(), "end": end.isoformat(), "group_by": group_by,
            "rows": svc.rates(start, end, group_by)}


@router.get("/counts", summary="各状态工单数与逾期数")
def counts(svc: DispatchService = Depends(service), _: Principal = Depends(EVALUATORS)) -> dict:
    return svc.counts()


@router.get("/dispatch-decisions", summary="导出派单决定（分类器训练数据）")
def dispatch_decisions(session: Session = Depends(db_session),
                       _: Principal = Depends(require_role("admin", "evaluator"))) -> list[dict]:
    return export_dispatch_decisions(session)
