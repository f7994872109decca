"""The work-order lifecycle (arts. 10–15, 23) as a state machine; any other transition raises IllegalTransition."""
from __future__ import annotations

from dispatch.errors import IllegalTransition

REGISTERED = "registered"  # 已登记，待派单
DISPATCHED = "dispatched"  # 已派单，待签收
ACCEPTED = "accepted"  # 已签收，办理中
OBJECTED = "objected"  # 承办单位提出异议，待审核
REPLIED = "replied"  # 承办单位已反馈办理结果
CALLBACK_DONE = "callback_done"  # 已回访
CLOSED = "closed"  # 已办结
INFORMED = "informed"  # 已告知（法定途径/职责外/办理进展/劝导/即时答复）
TRANSFERRED = "transferred"  # 已转紧急专线
MERGED = "merged"  # 已合并到其他工单

STATUS_LABELS = {
    REGISTERED: "已登记待派单",
    DISPATCHED: "已派单待签收",
    ACCEPTED: "办理中",
    OBJECTED: "派单异议审核中",
    REPLIED: "已反馈办理结果",
    CALLBACK_DONE: "已回访",
    CLOSED: "已办结",
    INFORMED: "已告知",
    TRANSFERRED: "已转紧急专线",
    MERGED: "已合并",
}
OPEN_STATUSES = (REGISTERED, DISPATCHED, ACCEPTED, OBJECTED, REPLIED, CALLBACK_DONE)
FINAL_STATUSES = (CLOSED, INFORMED, TRANSFERRED, MERGED)
IN_HANDLING = (DISPATCHED, ACCEPTED, OBJECTED)  # the deadline runs; overdue applies

# action → (statuses it may start from, status it leads to; None = unchanged)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "dispatch": ((REGISTERED,), DISPATCHED),
    "redispatch": ((DISPATCHED, ACCEPTED), DISPATCHED),
    "accept": ((DISPATCHED,), ACCEPTED),
    "object": ((DISPATCHED,), OBJECTED),
    "uphold_objection": ((OBJECTED,), DISPATCHED),
    "reject_objection": ((OBJECTED,), DISPATCHED),
    "extend": ((DISPATCHED, ACCEPTED), None),
    "reply": ((ACCEPTED,), REPLIED),
    "callback": ((REPLIED, DISPATCHED, ACCEPTED), CALLBACK_DONE),
    "reopen": ((REPLIED, CALLBACK_DONE), DISPATCHED),
    "close": ((REGISTERED, REPLIED, CALLBACK_DONE), CLOSED),
    "inform": ((REGISTERED,), INFORMED),
    "transfer": ((REGISTERED,), TRANSFERRED),
    "merge": ((REGISTERED, DISPATCHED, ACCEPTED, OBJECTED), MERGED),
    "route": ((REGISTERED,), None),
    "comment": (OPEN_STATUSES + FINAL_STATUSES, None),
}
ACTION_LABELS = {
    "create": "登记工单",
    "route": "派单研判",
    "dispatch": "派单",
    "redispatch": "改派",
    "accept": "签收",
    "object": "提出派单异议",
    "uphold_objection": "异议成立并改派",
    "reject_objection": "驳回异议",
    "extend": "延长办理时限",
    "reply": "反馈办理结果",
    "callback": "回访",
    "reopen": "重新办理",
    "close": "办结",
    "inform": "告知诉求人",
    "transfer": "转紧急专线",
    "merge": "合并工单",
    "merged_in": "并入重复诉求",
    "comment": "备注",
}


def check(action: str, status: str) -> str:
    """The status after ``action`` from ``status``; raises :class:`IllegalTransition` if not allowed."""
    allowed_from, to = TRANSITIONS[action]
    if status not in allowed_from:
        raise IllegalTransition(action, status, allowed_from)
    return to or status
