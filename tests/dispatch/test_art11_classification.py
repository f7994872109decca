"""Art. 11: requests outside ordinary dispatch are handled by category (emergency, legal channel, repeat, …)."""
from __future__ import annotations

import pytest

from dispatch.proposal import Intake
from dispatch.service import DispatchService
from tests.dispatch.helpers import AGENT


@pytest.mark.parametrize(
    "content,line",
    [
        ("我家楼下着火了，浓烟很大，快来人", "119"),
        ("楼道里闻到很大的燃气味，怀疑燃气泄漏", "119"),
        ("我爸突然晕倒了，叫不醒", "120"),
        ("小区门口有人持刀砍人", "110"),
        ("刚才在路口被车撞了，腿在流血", "122"),
    ],
)
def test_art11_1_emergency_transferred_to_emergency_line(svc, content, line):
    r = svc.create_work_order(Intake(content=content, phone="13800000001"))
    assert r["status"] == "transferred" and r["disposition"] == "emergency_transfer"
    assert r["target"] == line and line in r["citizen_message"]
    assert "第十一条" in r["reason"]
    assert svc.get_order(r["number"])["events"][-1]["action"] == "transfer"


def test_art11_1_fire_safety_complaint_is_not_an_emergency(svc):
    r = svc.create_work_order(Intake(content="朝阳区望京街道某商场的安全出口被锁死了，消防通道也堵着"))
    assert r["disposition"] != "emergency_transfer"


@pytest.mark.parametrize(
    "content,channel",
    [
        ("我已经起诉了开发商，法院已经立案了，想问问进度", "诉讼"),
        ("我已经申请了劳动仲裁，仲裁委已经受理", "仲裁"),
        ("我对区里的处罚决定已经申请了行政复议", "行政复议"),
        ("这个事我已经去信访了，信访办已经受理", "信访"),
    ],
)
def test_art11_2_legal_channel_informed(svc, content, channel):
    r = svc.create_work_order(Intake(content=content))
    assert r["status"] == "informed" and r["disposition"] == "legal_channel" and r["target"] == channel
    assert r["citizen_message"].startswith("您反映的事项")


def test_art11_3_repeat_of_open_order_is_merged_and_progress_told(svc):
    first = svc.create_work_order(Intake(content="回龙观龙腾苑小区门口的井盖丢了，很危险", phone="13912345678"))
    svc.dispatch(first["number"], None, AGENT)
    again = svc.create_work_order(Intake(content="回龙观龙腾苑小区门口井盖丢了好几天了，太危险了", phone="13912345678"))
    assert again["disposition"] == "repeat" and again["status"] == "merged"
    assert again["merged_into"] == first["number"] and again["repeat_of"] == first["number"]
    assert first["number"] in again["citizen_message"] and "办理中" in again["citizen_message"]
    history = svc.get_order(first["number"])["events"]
    assert history[-1]["action"] == "merged_in" and history[-1]["payload"]["from"] == again["number"]


def test_art11_3_closed_order_repeat_told_the_result(svc, clock):
    first = svc.create_work_order(Intake(content="朝阳区望京街道花家地小区垃圾清运不及时", phone="13912340000"))
    n = first["number"]
    svc.dispatch(n, None, AGENT)
    from tests.dispatch.helpers import unit_actor

    lead = svc.get_order(n)["lead_unit"]["code"]
    svc.accept(n, unit_actor(lead))
    svc.reply(n, unit_actor(lead), "已协调环卫公司每日清运两次")
    svc.record_callback(n, True, "满意")
    svc.close(n, AGENT)
    clock.advance(days=10)
    again = svc.create_work_order(Intake(content="朝阳区望京街道花家地小区的垃圾清运不及时", phone="13912340000"))
    assert again["status"] == "informed" and again["repeat_of"] == n and again["merged_into"] is None
    assert "已协调环卫公司每日清运两次" in again["citizen_message"]


def test_art11_3_new_circumstances_or_other_citizen_is_a_new_order(svc):
    first = svc.create_work_order(Intake(content="回龙观龙腾苑小区门口的井盖丢了，很危险", phone="13912345678"))
    new = svc.create_work_order(Intake(content="回龙观龙腾苑小区门口的井盖丢了，很危险", phone="13912345678",
                                       new_circumstances=True))
    other = svc.create_work_order(Intake(content="回龙观龙腾苑小区门口的井盖丢了，很危险", phone="13000000000"))
    assert new["disposition"] != "repeat" and other["disposition"] != "repeat"
    assert first["number"] not in (new["number"], other["number"])


def test_art11_3_repeat_uses_the_injected_similarity_and_place(session, clock):
    calls: list[tuple[str, str]] = []

    def semantic(a: str, b: str) -> float:  # stands for the caller's embedding cosine
        calls.append((a, b))
        return 0.95 if ("暖气" in a and "供暖" in b) or ("供暖" in a and "暖气" in b) else 0.1

    svc = DispatchService(session, similarity=semantic, similarity_threshold=0.9, clock=clock)
    first = svc.create_work_order(Intake(content="天通苑北一区家里暖气不热", phone="13811110000"))
    again = svc.create_work_order(Intake(content="天通苑北一区的供暖温度太低", phone="13811110000"))
    assert calls and again["repeat_of"] == first["number"]
    elsewhere = svc.create_work_order(Intake(content="望京西园三区供暖温度太低", phone="13811110000"))
    assert elsewhere["repeat_of"] is None  # same wording, other district: not the same matter


def test_art11_4_privacy_explained(svc):
    r = svc.create_work_order(Intake(content="帮我查一下我邻居的手机号，他家漏水找不到人"))
    assert r["disposition"] == "confidential" and r["status"] == "informed"


def test_art11_5_out_of_scope_told_other_channels(svc):
    r = svc.create_work_order(Intake(content="我朋友借了我两万块钱一直不还，你们帮我要回来"))
    assert r["disposition"] == "out_of_scope" and r["status"] == "informed"
    assert "调解" in r["citizen_message"] or "诉讼" in r["citizen_message"]


def test_art11_6_harassment_educated_but_real_request_still_dispatched(svc):
    abuse = svc.create_work_order(Intake(content="你们这帮傻逼，我就是要占着你们的线"))
    assert abuse["disposition"] == "harassment" and "第九条" in abuse["citizen_message"]
    angry = svc.create_work_order(Intake(content="傻逼物业，朝阳区望京街道小区暖气不热一个星期了"))
    assert angry["disposition"] == "direct_dispatch" and "劝导" in angry["reason"]


def test_art11_consultation_answered_on_the_spot(svc):
    r = svc.create_work_order(Intake(content="公积金提取需要什么材料", request_type="咨询", answered_immediately=True))
    assert r["disposition"] == "answered" and r["status"] == "informed"


def test_art11_route_preview_stores_nothing(svc, session):
    from sqlalchemy import func, select

    from dispatch.orm import WorkOrder

    d = svc.route(Intake(content="我家着火了"))
    assert d["disposition"] == "emergency_transfer" and d["target"] == "119"
    assert session.scalar(select(func.count()).select_from(WorkOrder)) == 0
