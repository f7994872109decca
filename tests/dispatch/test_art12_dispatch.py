"""Art. 12: direct dispatch, district coordination, consultation; suggestions combine the model, rules and place."""
from __future__ import annotations

import pytest

from dispatch.errors import Forbidden, InvalidRequest
from dispatch.proposal import Intake, ModelProposal, Scored
from dispatch.service import export_dispatch_decisions
from tests.dispatch.helpers import AGENT, unit_actor


def proposal(unit_types: list[tuple[str, float]], l1="城乡建设", l2="城市建设和市政管理", rt="投诉") -> ModelProposal:
    return ModelProposal(request_type=[Scored(rt, 0.9)], category_l1=[Scored(l1, 0.8)], category_l2=[Scored(l2, 0.7)],
                         unit_type=[Scored(u, p, "关键词：测试") for u, p in unit_types], model_version="test")


def test_art12_street_dispatch_also_goes_to_district(svc):
    r = svc.create_work_order(Intake(content="望京西园三区楼道堆物严重，邻居之间为此吵架", phone="13800001234"))
    top = r["suggestions"][0]
    assert r["disposition"] == "direct_dispatch"
    assert top["unit_name"] == "朝阳区望京街道办事处" and top["supervise_unit_name"] == "朝阳区人民政府"
    assert "第十二条第一款第一项" in top["reason"]
    detail = svc.dispatch(r["number"], None, AGENT)
    roles = {(a["unit_name"], a["role"]) for a in detail["assignments"] if a["active"]}
    assert roles == {("朝阳区望京街道办事处", "lead"), ("朝阳区人民政府", "supervise")}
    assert detail["events"][-1]["payload"]["supervise"] == ["district_government:110105"]
    # the district government can read the order it supervises, but cannot sign for it
    assert svc.get_order(r["number"], unit_actor("district_government:110105"))["number"] == r["number"]
    with pytest.raises(Forbidden):
        svc.accept(r["number"], unit_actor("district_government:110105"))


def test_art12_district_coordination_when_unit_unclear_but_district_known(svc):
    r = svc.create_work_order(Intake(content="海淀区这边的事情一直没人管，希望领导重视一下"))
    assert r["disposition"] == "district_coordination"
    assert r["suggestions"][0]["unit_name"] == "海淀区人民政府"
    assert "第十二条第一款第二项" in r["reason"]


def test_art12_place_unknown_asks_for_more_information(svc):
    r = svc.create_work_order(Intake(content="我们小区门口的路灯不亮好几天了"))
    assert r["disposition"] == "need_more_info" and "哪个区" in r["citizen_message"]
    assert r["status"] == "registered"  # recorded (art. 10), waits for the place


def test_art12_model_proposal_combined_with_rules_and_place(svc):
    p = proposal([("housing", 0.7), ("street_office", 0.2), ("urban_management", 0.1)], "城乡建设", "住房保障与房地产")
    r = svc.create_work_order(Intake(content="朝阳区望京街道老旧小区想加装电梯，不知道找谁申请"), p)
    names = [s["unit_name"] for s in r["suggestions"]]
    assert names[0] == "朝阳区住房和城乡建设委员会" and len(names) <= 3 and len(set(names)) == len(names)
    top = r["suggestions"][0]
    assert 0 < top["confidence"] <= 1 and "模型预测0.70" in top["reason"] and "加装电梯" in top["reason"]
    assert [s["confidence"] for s in r["suggestions"]] == sorted((s["confidence"] for s in r["suggestions"]),
                                                                   reverse=True)
    assert r["request_type"] == "投诉" and r["category_l1"] == "城乡建设"


def test_art12_model_alone_decides_when_no_rule_matches(svc):
    p = proposal([("culture_tourism", 0.85), ("market_regulation", 0.1)], "商贸旅游", "旅游管理")
    r = svc.create_work_order(Intake(content="延庆区八达岭那边有人拉客去购物点，说是包车游长城"), p)
    assert r["suggestions"][0]["unit_name"] == "延庆区文化和旅游局"


def test_art12_companies_picked_by_keywords(svc):
    subway = svc.create_work_order(Intake(content="地铁10号线早高峰太挤了，建议加车"))
    assert subway["suggestions"][0]["unit_name"] == "北京市地铁运营有限公司"
    unicom = svc.create_work_order(Intake(content="联通宽带在朝阳区双井街道总掉线，报修一周没人来"))
    assert unicom["suggestions"][0]["unit_name"] == "中国联合网络通信有限公司北京市分公司"
    power = svc.create_work_order(Intake(content="大兴区黄村这片从早上开始停电了"))
    assert power["suggestions"][0]["unit_name"] == "国网北京大兴供电公司" and power["urgency"] == "urgent"


def test_art12_consultation_flag_for_hard_or_multi_unit_requests(svc):
    r = svc.create_work_order(Intake(content="朝阳区双井街道小区门口的违建，城管和街道互相推诿，反映了好几次都没人管"))
    assert r["needs_consultation"] is True and "会商" in r["reason"]
    queue = svc.list_queue(needs_consultation=True)
    assert [i["number"] for i in queue["items"]] == [r["number"]]


def test_art12_agent_override_recorded_and_exported_as_training_rows(svc, session):
    r = svc.create_work_order(Intake(content="望京西园三区电话13812345678，楼下商铺油烟很大", request_type="投诉"))
    suggested = r["suggestions"][0]["unit_code"]
    assert suggested != "ecology_environment:110105"
    d = svc.dispatch(r["number"], "ecology_environment:110105", AGENT, reason="油烟超标由生态环境局检测",
                     category_l1="环境保护", category_l2="环境污染")
    assert d["decisions"][-1]["kind"] == "override"
    confirm = svc.create_work_order(Intake(content="国贸附近有流动摊贩占道经营", request_type="举报"))
    svc.dispatch(confirm["number"], None, AGENT)
    rows = export_dispatch_decisions(session)
    assert rows == [
        {"text": "望京西园三区电话138****5678，楼下商铺油烟很大", "request_type": "投诉", "category_l1": "环境保护",
         "category_l2": "环境污染", "unit_type": "ecology_environment"},
        {"text": "国贸附近有流动摊贩占道经营", "request_type": "举报", "category_l1": "", "category_l2": "",
         "unit_type": "urban_enforcement"},
    ]


def test_art12_redispatch_by_agent_keeps_history(svc):
    r = svc.create_work_order(Intake(content="国贸附近有流动摊贩占道经营"))
    svc.dispatch(r["number"], None, AGENT)
    d = svc.dispatch(r["number"], "street_office:110105001", AGENT, reason="属地街道先行处置")
    assert [a["active"] for a in d["assignments"]][0] is False
    assert d["lead_unit"]["code"] == "street_office:110105001"
    assert [e["action"] for e in d["events"]][-2:] == ["dispatch", "redispatch"]


def test_art12_dispatch_requires_an_agent_and_a_known_unit(svc):
    r = svc.create_work_order(Intake(content="国贸附近有流动摊贩占道经营"))
    with pytest.raises(Forbidden):
        svc.dispatch(r["number"], None, unit_actor("urban_enforcement:110105"))
    from dispatch.errors import NotFound

    with pytest.raises(NotFound):
        svc.dispatch(r["number"], "no_such_unit", AGENT)
    with pytest.raises(InvalidRequest):
        svc.dispatch(r["number"], None, AGENT, request_type="闲聊")
