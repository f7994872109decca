"""The three rates of art. 31 (响应率、解决率、满意率), computed from the append-only event history.

Definitions (also in dispatch/README.md):

- An order **counts in a period** when its first dispatch (``dispatch`` event) falls in ``[start, end)``.
- Its **responsible unit** is the lead unit of its latest lead-changing event (``dispatch``, ``redispatch``,
  ``uphold_objection``): a unit whose objection was upheld is not charged with the order (art. 14).
- **Response rate** = responded / due. An order is *due* once its response deadline (carried in the payload of the
  responsible unit's dispatch event, ``response_due``; 24 h or 2 h for 一级响应 by default) has passed or the unit has
  signed; it is *responded* when the responsible unit signed for it (``accept`` event) by that deadline.
- **Resolution rate** = callbacks with ``resolved = true`` / callbacks with an answer to "was it resolved"; the latest
  ``callback`` event of an order counts.
- **Satisfaction rate** = (满意 + 基本满意) / callbacks with a satisfaction rating; the latest ``callback`` counts.
  The counts of each rating are reported too, so a weighted formula can be applied by the evaluator.

Grouping: by responsible unit, by the order's district, or by its level-1 category.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatch.orm import Event, Unit, WorkOrder

LEAD_EVENTS = ("dispatch", "redispatch", "uphold_objection", "reopen")
GROUPS = ("unit", "district", "category")


@dataclass
class RateRow:
    key: str
    label: str
    orders: int = 0
    response_due: int = 0
    responded: int = 0
    response_rate: float | None = None
    callbacks_resolved_answered: int = 0
    resolved: int = 0
    resolution_rate: float | None = None
    rated: int = 0
    satisfied: int = 0
    basically_satisfied: int = 0
    dissatisfied: int = 0
    satisfaction_rate: float | None = None

    def finish(self) -> RateRow:
        self.response_rate = round(self.responded / self.response_due, 4) if self.response_due else None
        self.resolution_rate = (round(self.resolved / self.callbacks_resolved_answered, 4)
                                if self.callbacks_resolved_answered else None)
        self.satisfaction_rate = (round((self.satisfied + self.basically_satisfied) / self.rated, 4)
                                  if self.rated else None)
        return self

    def to_dict(self) -> dict:
        return asdict(self)


def _parse(ts: str | None) -> datetime | None:
    return datetime.fromisoformat(ts) if ts else None


def compute_rates(session: Session, start: datetime, end: datetime, group_by: str = "unit",
                  now: datetime | None = None) -> list[RateRow]:
    if group_by not in GROUPS:
        raise ValueError(f"group_by must be one of {GROUPS}")
    now = now or datetime.now(start.tzinfo)
    first_dispatch = (
        select(Event.order_id)
        .where(Event.action == "dispatch")
        .group_by(Event.order_id)
    )
    events = session.execute(
        select(Event.order_id, Event.action, Event.at, Event.unit_id, Event.payload)
        .where(Event.order_id.in_(first_dispatch),
               Event.action.in_(LEAD_EVENTS + ("accept", "callback")))
        .order_by(Event.order_id, Event.at, Event.id)
    ).all()
    per_order: dict[int, list] = defaultdict(list)
    for row in events:
        per_order[row.order_id].append(row)
    orders = {o.id: o for o in session.scalars(select(WorkOrder).where(WorkOrder.id.in_(list(per_order))))}
    unit_names = dict(session.execute(select(Unit.id, Unit.name).where(
        Unit.id.in_({r.unit_id for r in events if r.unit_id is not None}))).all())

    rows: dict[str, RateRow] = {}
    for order_id, evs in per_order.items():
        first = next(e for e in evs if e.action == "dispatch")
        if not (start <= first.at < end):
            continue
        lead = [e for e in evs if e.action in LEAD_EVENTS and e.unit_id is not None]
        if not lead:
            continue
        current = lead[-1]
        order = orders[order_id]
        if group_by == "unit":
            key, label = str(current.unit_id), unit_names.get(current.unit_id, str(current.unit_id))
        elif group_by == "district":
            key = label = order.district or "属地不明"
        else:
            key = label = order.category_l1 or "未分类"
        row = rows.setdefault(key, RateRow(key, label))
        row.orders += 1

        due = _parse((current.payload or {}).get("response_due"))
        accepted = next((e for e in evs if e.action == "accept" and e.at >= current.at
                         and e.unit_id == current.unit_id), None)
        if accepted is not None or (due is not None and due <= now):
            row.response_due += 1
            if accepted is not None and (due is None or accepted.at <= due):
                row.responded += 1

        callbacks = [e for e in evs if e.action == "callback"]
        if callbacks:
            payload = callbacks[-1].payload or {}
            if payload.get("resolved") is not None:
                row.callbacks_resolved_answered += 1
                row.resolved += 1 if payload["resolved"] else 0
            rating = payload.get("satisfaction")
            if rating:
                row.rated += 1
                if rating == "满意":
                    row.satisfied += 1
                elif rating == "基本满意":
                    row.basically_satisfied += 1
                else:
                    row.dissatisfied += 1
    return sorted((r.finish() for r in rows.values()), key=lambda r: (-r.orders, r.key))
