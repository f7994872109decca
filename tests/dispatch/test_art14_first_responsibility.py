"""Art. 14 (and 12 para. 3): first responsibility; a unit objects with a reason, the hotline reviews, history stays."""
from __future__ import annotations

import pytest

from dispatch.errors import DispatchRefused, Forbidden, InvalidRequest
from dispatch.proposal import Intake
from tests.dispatch.helpers import AGENT, unit_actor


@pytest.fixture
def dispatched(svc):
    r = svc.create_work_order(Intake(content="朝阳区望京街道西园三区楼道堆物严重，邻居吵架", phone="13800005555"))
    svc.dispatch(r["number"], "urban_enforcement:110105", AGENT, reason="坐席判断为违法占用")
    return r["number"]


def test_art14_objection_review_redispatch_and_history_keeps_all(svc, dispatched):
    unit = unit_actor("urban_enforcement:110105")
    with pytest.raises(InvalidRequest):
        svc.object(dispatched, unit, "不")
    d = svc.object(dispatched, unit, "楼道堆物属于属地街道组织整治事项，不属于执法局职责")
    assert d["status"] == "objected" and d["objections"][0]["status"] == "pending"
    d = svc.review_objection(dispatched, AGENT, upheld=True, note="异议成立，改派属地街道",
                             new_unit_code="street_office:110105026")
    assert d["status"] == "dispatched" and d["lead_unit"]["name"] == "朝阳区望京街道办事处"
    assert d["objections"][0]["status"] == "upheld"
    active = {(a["unit_name"], a["role"]) for a in d["assignments"] if a["active"]}
    ended = [a for a in d["assignments"] if not a["active"]]
    assert active == {("朝阳区望京街道办事处", "lead"), ("朝阳区人民政府", "supervise")}
    assert ended[0]["unit_name"] == "朝阳区城市管理综合行政执法局" and "异议成立" in ended[0]["end_reason"]
    assert [e["action"] for e in d["events"]] == ["create", "route", "dispatch", "object", "uphold_objection"]
    assert d["events"][-1]["payload"]["from_unit"] == "urban_enforcement:110105"
    assert [x["kind"] for x in d["decisions"]] == ["override", "redispatch"]
    # the new lead handles it; the old one can no longer act on it
    with pytest.raises(Forbidden):
        svc.accept(dispatched, unit)
    assert svc.accept(dispatched, unit_actor("street_office:110105026"))["status"] == "accepted"


def test_art14_rejected_objection_means_the_unit_must_handle_it(svc, dispatched):
    unit = unit_actor("urban_enforcement:110105")
    svc.object(dispatched, unit, "不属于我局职责范围")
    d = svc.review_objection(dispatched, AGENT, upheld=False, note="楼道堆物占用消防通道，属执法范围")
    assert d["status"] == "dispatched" and d["objections"][0]["status"] == "rejected"
    with pytest.raises(DispatchRefused) as exc:
        svc.object(dispatched, unit, "仍然认为不属于我局职责")
    assert "首接负责制" in exc.value.message_zh
    assert svc.accept(dispatched, unit)["status"] == "accepted"


def test_art14_only_the_lead_unit_acts_and_only_agents_review(svc, dispatched):
    with pytest.raises(Forbidden):
        svc.accept(dispatched, unit_actor("housing:110105"))
    with pytest.raises(Forbidden):
        svc.get_order(dispatched, unit_actor("housing:110105"))
    svc.object(dispatched, unit_actor("urban_enforcement:110105"), "不属于我局职责范围")
    with pytest.raises(Forbidden):
        svc.review_objection(dispatched, unit_actor("urban_enforcement:110105"), True, "自己审核自己")
