"""Art. 17: nothing outside the community duty list goes to a community; assist items never as the lead."""
from __future__ import annotations

import pytest

from dispatch.errors import DispatchRefused
from dispatch.proposal import Intake
from tests.dispatch.helpers import AGENT

COMMUNITY = "community_committee:110101001001"  # 东城区东华门街道多福巷社区居委会


def test_art17_matter_outside_duty_list_never_given_to_community(svc):
    r = svc.create_work_order(Intake(content="多福巷社区旁边的饭馆后厨卫生很差，怀疑食品安全有问题"))
    with pytest.raises(DispatchRefused) as exc:
        svc.dispatch(r["number"], COMMUNITY, AGENT)
    assert "第十七条" in exc.value.message_zh and "职责清单" in exc.value.message_zh
    with pytest.raises(DispatchRefused):
        svc.dispatch(r["number"], "market_regulation:110101", AGENT, assist_unit_codes=[COMMUNITY])
    assert svc.get_order(r["number"])["status"] == "registered"


def test_art17_assist_item_not_given_to_community_as_lead(svc):
    r = svc.create_work_order(Intake(content="多福巷社区的王大爷想申请低保，不知道怎么办"))
    with pytest.raises(DispatchRefused) as exc:
        svc.dispatch(r["number"], COMMUNITY, AGENT)
    assert "主责" in exc.value.message_zh
    d = svc.dispatch(r["number"], "civil_affairs:110101", AGENT, assist_unit_codes=[COMMUNITY])
    assert {(a["unit_code"], a["role"]) for a in d["assignments"]} == {("civil_affairs:110101", "lead"),
                                                                       (COMMUNITY, "assist")}


def test_art17_duty_list_matter_may_go_to_the_community(svc):
    r = svc.create_work_order(Intake(content="多福巷社区楼上楼下邻里纠纷，想请社区帮忙调解"))
    top = r["suggestions"][0]
    assert top["unit_code"] in (COMMUNITY, "street_office:110101001")
    d = svc.dispatch(r["number"], COMMUNITY, AGENT)
    assert d["lead_unit"]["code"] == COMMUNITY
    assert any(a["role"] == "supervise" and a["unit_name"] == "东城区人民政府" for a in d["assignments"])


def test_art17_suggestions_never_put_a_community_in_charge_of_other_matters(svc):
    r = svc.create_work_order(Intake(content="多福巷社区门口的路灯坏了"))
    assert all(s["unit_type"] != "community_committee" for s in r["suggestions"])
