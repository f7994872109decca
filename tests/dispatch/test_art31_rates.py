"""Art. 31: response, resolution and satisfaction rates per unit, district and category, from the event history."""
from __future__ import annotations

from datetime import timedelta

import pytest

from dispatch.errors import InvalidRequest
from dispatch.proposal import Intake
from tests.dispatch.helpers import AGENT, unit_actor

ENFORCEMENT = "urban_enforcement:110105"  # 朝阳区城市管理综合行政执法局
STREET = "street_office:110105026"  # 朝阳区望京街道办事处


def _order(svc, content, unit, category="城乡建设"):
    r = svc.create_work_order(Intake(content=content, category_l1=category))
    svc.dispatch(r["number"], unit, AGENT)
    return r["number"]


def test_art31_three_rates_per_unit_district_and_category(svc, clock):
    start = clock.now
    # 1: enforcement signs in time, resolves, 满意
    a = _order(svc, "朝阳区望京街道有人占道经营", ENFORCEMENT)
    clock.advance(hours=2)
    svc.accept(a, unit_actor(ENFORCEMENT))
    svc.reply(a, unit_actor(ENFORCEMENT), "已依法取缔占道经营")
    svc.record_callback(a, True, "满意", AGENT)
    # 2: enforcement signs late (after 24 h), not resolved, 不满意
    b = _order(svc, "朝阳区望京街道饭店油烟扰民", ENFORCEMENT)
    clock.advance(hours=30)
    svc.accept(b, unit_actor(ENFORCEMENT))
    svc.reply(b, unit_actor(ENFORCEMENT), "已责令整改油烟净化设备")
    svc.record_callback(b, False, "不满意", AGENT)
    # 3: street office signs in time, resolved, 基本满意 (another category)
    c = _order(svc, "朝阳区望京街道楼道堆物", STREET, category="民政")
    clock.advance(hours=1)
    svc.accept(c, unit_actor(STREET))
    svc.reply(c, unit_actor(STREET), "已组织清理楼道堆物")
    svc.record_callback(c, True, "基本满意", AGENT)
    # 4: enforcement never signs; its response deadline has passed → counts as not responded
    _order(svc, "朝阳区望京街道违建", ENFORCEMENT)
    clock.advance(hours=25)
    end = clock.now + timedelta(seconds=1)

    by_unit = {r["label"]: r for r in svc.rates(start, end, "unit")}
    enf = by_unit["朝阳区城市管理综合行政执法局"]
    assert (enf["orders"], enf["response_due"], enf["responded"]) == (3, 3, 1)
    assert enf["response_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert (enf["resolved"], enf["callbacks_resolved_answered"], enf["resolution_rate"]) == (1, 2, 0.5)
    assert (enf["satisfied"], enf["dissatisfied"], enf["satisfaction_rate"]) == (1, 1, 0.5)
    st = by_unit["朝阳区望京街道办事处"]
    assert (st["response_rate"], st["resolution_rate"], st["satisfaction_rate"], st["basically_satisfied"]) == (1, 1, 1, 1)

    by_district = svc.rates(start, end, "district")
    assert [(r["label"], r["orders"], r["responded"]) for r in by_district] == [("朝阳区", 4, 2)]
    by_category = {r["label"]: r["orders"] for r in svc.rates(start, end, "category")}
    assert by_category == {"城乡建设": 3, "民政": 1}
    # a period before any dispatch is empty
    assert svc.rates(start - timedelta(days=30), start, "unit") == []
    with pytest.raises(InvalidRequest):
        svc.rates(end, start, "unit")


def test_art31_upheld_objection_is_not_charged_to_the_objecting_unit(svc, clock):
    start = clock.now
    n = _order(svc, "朝阳区望京街道西园三区楼道堆物", ENFORCEMENT)
    svc.object(n, unit_actor(ENFORCEMENT), "属地街道组织整治事项，不属于执法局职责")
    svc.review_objection(n, AGENT, True, "异议成立", new_unit_code=STREET)
    clock.advance(hours=3)
    svc.accept(n, unit_actor(STREET))
    rows = svc.rates(start, clock.now + timedelta(seconds=1), "unit")
    assert [(r["label"], r["orders"], r["responded"]) for r in rows] == [("朝阳区望京街道办事处", 1, 1)]
