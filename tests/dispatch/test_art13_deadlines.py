"""Arts. 13, 15, 23: deadlines in working days (official calendar) or hours, extensions with reasons, overdue orders."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from dispatch.deadlines import BEIJING, DeadlinePolicy, add_working_days
from dispatch.errors import DispatchRefused, InvalidRequest
from dispatch.proposal import Intake
from tests.dispatch.helpers import AGENT, unit_actor


def bj(*args) -> datetime:
    return datetime(*args, tzinfo=BEIJING)


def test_art13_working_days_skip_national_day_and_count_adjusted_saturday():
    # 2026: Oct 1–7 off, Sat Oct 10 is an adjusted working day (State Council notice, via chinesecalendar)
    due = add_working_days(bj(2026, 9, 30, 10, 0), 3)
    assert due.astimezone(BEIJING) == bj(2026, 10, 10, 23, 59, 59)
    assert due.tzinfo == timezone.utc
    # an ordinary week: Friday + 1 working day = Monday
    assert add_working_days(bj(2026, 11, 27, 16, 0), 1).astimezone(BEIJING) == bj(2026, 11, 30, 23, 59, 59)


def test_art13_most_specific_rule_wins_and_urgent_counts_hours():
    policy = DeadlinePolicy.load()
    assert policy.limit_for("咨询").working_days == 3
    assert policy.limit_for("投诉", "劳动和社会保障", "工资福利").working_days == 10
    assert policy.limit_for("投诉", "劳动和社会保障", "劳动关系").working_days == 15
    assert policy.limit_for("求助", urgency="urgent").hours == 24
    assert policy.limit_for(None).working_days == 15  # default
    custom = DeadlinePolicy({"default": {"working_days": 5}, "rules": [{"category_l1": "卫生计生", "hours": 48}]})
    assert custom.limit_for("投诉", "卫生计生").describe() == "48小时"


def test_art13_dispatch_writes_the_deadline_on_the_order(svc, clock):
    clock.set_beijing(2026, 9, 30, 10, 0)
    r = svc.create_work_order(Intake(content="公积金提取需要什么材料，在朝阳区上班", request_type="咨询"))
    d = svc.dispatch(r["number"], None, AGENT)
    assert d["deadline_at"] == "2026-10-10T23:59:59+08:00"
    assert d["events"][-1]["payload"]["limit"] == "3个工作日"
    urgent = svc.create_work_order(Intake(content="朝阳区望京街道西园三区从早上开始停水了", request_type="求助"))
    assert urgent["urgency"] == "urgent"
    du = svc.dispatch(urgent["number"], None, AGENT)
    assert du["deadline_at"] == "2026-10-01T10:00:00+08:00"
    assert du["response_due_at"] == "2026-09-30T12:00:00+08:00"


def test_art15_extension_needs_reason_and_respects_limits(svc, clock):
    r = svc.create_work_order(Intake(content="朝阳区双井街道某小区私搭乱建", request_type="举报"))
    d = svc.dispatch(r["number"], None, AGENT)
    unit = unit_actor(d["lead_unit"]["code"])
    with pytest.raises(InvalidRequest):
        svc.extend(r["number"], unit, "", working_days=5)
    with pytest.raises(InvalidRequest):
        svc.extend(r["number"], unit, "需要协调规划部门认定", working_days=30)
    before = d["deadline_at"]
    e1 = svc.extend(r["number"], unit, "需要协调规划部门认定违建性质", working_days=5)
    assert e1["deadline_at"] > before and e1["extension_count"] == 1
    ev = e1["events"][-1]
    assert ev["action"] == "extend" and ev["reason"] == "需要协调规划部门认定违建性质"
    assert ev["payload"]["old_deadline"] == before and ev["payload"]["new_deadline"] == e1["deadline_at"]
    svc.extend(r["number"], AGENT, "诉求人同意延期处理", hours=48)
    with pytest.raises(DispatchRefused):
        svc.extend(r["number"], unit, "还需要更多时间协调", working_days=1)


def test_art23_overdue_listing_and_callback_after_deadline(svc, clock):
    r = svc.create_work_order(Intake(content="公积金提取需要什么材料，在朝阳区上班", request_type="咨询"))
    ontime = svc.create_work_order(Intake(content="朝阳区双井街道某小区私搭乱建", request_type="举报"))
    svc.dispatch(r["number"], None, AGENT)
    svc.dispatch(ontime["number"], None, AGENT)
    with pytest.raises(Exception):  # noqa: B017 - IllegalTransition: no callback before the deadline or a reply
        svc.record_callback(r["number"], False, "不满意")
    clock.advance(days=7)  # past 3 working days, within 15
    assert [o["number"] for o in svc.overdue()] == [r["number"]]
    assert svc.list_queue(overdue=False)["total"] == 1
    assert svc.counts()["overdue"] == 1
    cb = svc.record_callback(r["number"], False, "不满意", AGENT, note="逾期未联系诉求人")
    assert cb["status"] == "callback_done" and cb["resolved"] is False
