"""Citizens' self-service (art. 8: the right to know how a request is handled): status by number + phone tail.

Public (no token): the work-order number and the last four digits of the phone the request came from act as the
credential; a wrong number and a wrong tail give the same 404, and no other citizen's order is ever returned.
POST keeps the phone tail out of URLs and access logs.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from api.routes.work_orders import DispatchErrorRoute, service
from dispatch.service import DispatchService

router = APIRouter(prefix="/api/citizens", tags=["citizens"], route_class=DispatchErrorRoute)


class StatusQuery(BaseModel):
    number: str = Field(min_length=8, max_length=20, description="工单号，如 20261122-000123")
    phone_tail4: str = Field(pattern=r"^\d{4}$", description="来电手机号后四位")


@router.post("/work-order-status", summary="查询本人工单办理进度（工单号+手机号后四位）")
def work_order_status(body: StatusQuery, svc: DispatchService = Depends(service)) -> dict:
    return svc.citizen_status(body.number, body.phone_tail4)
