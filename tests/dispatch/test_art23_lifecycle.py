"""Arts. 15, 23 and 8: a full lifecycle; callbacks; what a citizen may see of an order."""
from __future__ import annotations

import pytest

from dispatch.errors import IllegalTransition, InvalidRequest, NotFound
from dispatch.proposal import Intake
from tests.dispatch.helpers import AGENT, unit_actor


def test_art15_art23_full_lifecycle_dispatch_accept_reply_callback_close(svc, clock):
    r = svc.create_work_order(Intake(content="朝阳区望京街道西园三区门口人行道地砖坏了，老人容易摔倒",
                                     phone="13812349876", citizen_name="李女士"))
    n = r["number"]
    d = svc.dispatch(n, None, AGENT)
    unit = unit_actor(d["lead_unit"]["code"])
    clock.advance(hours=1)
    assert svc.accept(n, unit, "已电话联系诉求人")["status"] == "accepted"
    clock.advance(days=2)
    d = svc.reply(n, unit, "已安排维修队更换破损地砖，诉求人认可")
    assert d["status"] == "replied" and d["events"][-1]["payload"]["late"] is False
    with pytest.raises(InvalidRequest):
        svc.record_callback(n, True, "非常满意")
    d = svc.record_callback(n, True, "基本满意", AGENT)
    assert (d["status"], d["resolved"], d["satisfaction"]) == ("callback_done", True, "基本满意")
    d = svc.close(n, AGENT)
    assert d["status"] == "closed" and d["closed_at"]
    assert [e["action"] for e in d["events"]] == ["create", "route", "dispatch", "accept", "reply", "callback", "close"]
    assert all(e["actor"] and e["actor_role"] and e["at"] for e in d["events"])
    with pytest.raises(IllegalTransition):
        svc.reply(n, unit, "再补充一点办理情况")


def test_art23_unresolved_order_reopened_to_the_same_unit(svc, clock):
    r = svc.create_work_order(Intake(content="朝阳区双井街道九龙社区楼道灯坏了"))
    d = svc.dispatch(r["number"], None, AGENT)
    unit = unit_actor(d["lead_unit"]["code"])
    svc.accept(r["number"], unit)
    svc.reply(r["number"], unit, "已通知物业维修")
    svc.record_callback(r["number"], False, "不满意", AGENT, note="诉求人称灯仍未修好")
    d = svc.reopen(r["number"], AGENT, "回访未解决，重新办理")
    assert d["status"] == "dispatched" and d["lead_unit"]["code"] == unit.unit_code


def test_close_from_registered_needs_a_reason(svc):
    r = svc.create_work_order(Intake(content="请问12345能查询社保缴费记录吗", request_type="咨询"))
    with pytest.raises(InvalidRequest):
        svc.close(r["number"], AGENT)
    d = svc.close(r["number"], AGENT, "已即时答复：可通过北京市人社局网站查询")
    assert d["status"] == "closed" and d["disposition"] == "answered"


def test_merge_duplicate_into_open_order(svc):
    a = svc.create_work_order(Intake(content="国贸桥东南角有人占道经营卖水果", phone="13800000001"))
    b = svc.create_work_order(Intake(content="国贸那边天天有小商贩摆摊堵路", phone="13800000002"))
    svc.dispatch(a["number"], None, AGENT)
    d = svc.merge(b["number"], a["number"], AGENT, "同一地点同一事项")
    assert d["status"] == "merged" and d["merged_into"] == a["number"]
    with pytest.raises(IllegalTransition):
        svc.dispatch(b["number"], None, AGENT)


def test_art8_citizen_sees_own_order_only_by_number_and_phone_tail(svc):
    mine = svc.create_work_order(Intake(content="国贸桥东南角有人占道经营卖水果", phone="13812345678"))
    svc.create_work_order(Intake(content="望京西园三区暖气不热", phone="13900009999"))
    status = svc.citizen_status(mine["number"], "5678")
    assert status["number"] == mine["number"] and status["status_label"] == "已登记待派单"
    assert "citizen_phone" not in status and "content" not in status
    for number, tail in ((mine["number"], "9999"), (mine["number"], "567"), ("20261123-999999", "5678")):
        with pytest.raises(NotFound) as exc:
            svc.citizen_status(number, tail)
        assert exc.value.message_zh == "未找到与该电话号码匹配的工单，请核对工单号和手机号后四位"


def test_merged_order_names_its_target_even_when_already_loaded(svc):
    """An agent who opened the duplicate before merging it sees where it went: the session keeps loaded orders after
    commit, so the merge must update the loaded relationship, not only the column (this failed intermittently)."""
    from sqlalchemy import select

    from dispatch.orm import WorkOrder

    a = svc.create_work_order(Intake(content="国贸桥下的井盖丢了一个", phone="13800000011"))
    b = svc.create_work_order(Intake(content="国贸桥附近有个井没盖子，很危险", phone="13800000012"))
    assert svc.get_order(b["number"], AGENT)["merged_into"] is None
    loaded = svc.session.scalars(select(WorkOrder).where(WorkOrder.number == b["number"])).one()
    assert loaded.merged_into is None  # held in this session from here on
    d = svc.merge(b["number"], a["number"], AGENT, "同一地点同一事项")
    assert d["status"] == "merged" and d["merged_into"] == a["number"]
