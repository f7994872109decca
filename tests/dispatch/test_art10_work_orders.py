"""Art. 10: every request becomes a work order with its time and content; numbers are unique, creation idempotent."""
from __future__ import annotations

import re
import threading

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DatabaseError

from core.db import session_factory
from dispatch.errors import IllegalTransition, InvalidRequest
from dispatch.orm import Event, WorkOrder
from dispatch.proposal import Intake
from dispatch.service import DispatchService

from tests.dispatch.helpers import AGENT, unit_actor


def test_art10_order_records_time_content_and_daily_number(svc, clock):
    r = svc.create_work_order(Intake(content="望京SOHO旁边的路灯坏了三天了，晚上很黑", phone="13812345678"))
    assert re.fullmatch(r"20261123-\d{6}", r["number"]) and r["number"].endswith("000001")
    assert r["created"] is True and r["status"] == "registered"
    detail = svc.get_order(r["number"])
    assert detail["created_at"] == "2026-11-23T10:00:00+08:00"
    assert detail["content"] == "望京SOHO旁边的路灯坏了三天了，晚上很黑"
    assert (detail["district"], detail["street"]) == ("朝阳区", "望京街道")
    assert detail["citizen_phone_masked"] == "138****5678"
    assert [e["action"] for e in detail["events"]] == ["create", "route"]
    second = svc.create_work_order(Intake(content="双井桥下积水很深", phone="13900001111"))
    assert second["number"] == "20261123-000002"
    clock.advance(days=1)
    assert svc.create_work_order(Intake(content="国贸附近有人占道经营")) ["number"] == "20261124-000001"


def test_art10_empty_content_refused(svc):
    with pytest.raises(InvalidRequest) as exc:
        svc.create_work_order(Intake(content="   "))
    assert "不能为空" in exc.value.message_zh


def test_art10_idempotent_creation_same_key_same_order(svc, session):
    intake = Intake(content="小区门口井盖丢了，在回龙观", phone="13700000001")
    first = svc.create_work_order(intake, idempotency_key="conv-42:msg-7")
    again = svc.create_work_order(intake, idempotency_key="conv-42:msg-7")
    assert again["number"] == first["number"] and again["created"] is False
    assert again["citizen_message"] == first["citizen_message"]
    assert session.scalar(select(WorkOrder.id).where(WorkOrder.idempotency_key == "conv-42:msg-7")) is not None
    assert len(session.scalars(select(WorkOrder)).all()) == 1


def _run_threads(n, target):
    errors: list[BaseException] = []

    def wrap(i):
        try:
            target(i)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)

    threads = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_art10_numbers_unique_and_gapless_under_concurrency(seeded_engine, session, clock):
    factory = session_factory(seeded_engine)
    numbers: list[str] = []
    lock = threading.Lock()

    def create(i):
        with factory() as s:
            for j in range(5):
                r = DispatchService(s, clock=clock).create_work_order(
                    Intake(content=f"第{i}-{j}号测试：小区垃圾清运不及时，在朝阳区望京街道", phone=f"1390000{i:04d}"))
                with lock:
                    numbers.append(r["number"])

    _run_threads(8, create)
    assert len(numbers) == 40 and len(set(numbers)) == 40
    assert sorted(numbers) == [f"20261123-{k:06d}" for k in range(1, 41)]


def test_art10_concurrent_retries_with_one_key_create_one_order(seeded_engine, session, clock):
    factory = session_factory(seeded_engine)
    results: list[dict] = []
    lock = threading.Lock()

    def create(_):
        with factory() as s:
            r = DispatchService(s, clock=clock).create_work_order(
                Intake(content="天通苑北一区暖气不热，家里只有十四度", phone="13611112222"),
                idempotency_key="rasa:sender-9:turn-3")
            with lock:
                results.append(r)

    _run_threads(8, create)
    assert len({r["number"] for r in results}) == 1
    assert sum(r["created"] for r in results) == 1
    assert session.scalar(text("SELECT count(*) FROM dispatch_work_orders")) == 1


def test_art10_events_are_append_only(svc, session, seeded_engine):
    r = svc.create_work_order(Intake(content="国贸桥下有人占道经营卖水果"))
    event = session.scalars(select(Event)).first()
    event.reason = "篡改"
    with pytest.raises(PermissionError, match="append-only"):
        session.flush()
    session.rollback()
    with pytest.raises(DatabaseError):
        with seeded_engine.begin() as conn:
            conn.execute(text("UPDATE dispatch_events SET reason = 'x'"))
    assert len(svc.get_order(r["number"])["events"]) == 2


def test_lifecycle_illegal_transitions_refused_in_chinese_and_english(svc):
    r = svc.create_work_order(Intake(content="朝阳区望京街道的小区里有人私搭乱建"))
    with pytest.raises(IllegalTransition) as exc:
        svc.accept(r["number"], unit_actor("urban_enforcement:110105"))
    assert "已登记待派单" in exc.value.message_zh and "签收" in exc.value.message_zh
    assert "not allowed in status 'registered'" in exc.value.message_en
    svc.dispatch(r["number"], None, AGENT)
    with pytest.raises(IllegalTransition) as exc:
        svc.reply(r["number"], unit_actor("urban_enforcement:110105"), "已经处理完毕，违建已拆除")
    assert "已派单待签收" in exc.value.message_zh
    svc.accept(r["number"], unit_actor("urban_enforcement:110105"))
    with pytest.raises(IllegalTransition):
        svc.accept(r["number"], unit_actor("urban_enforcement:110105"))
