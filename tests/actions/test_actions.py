"""Tests of the custom actions (actions/) against the real dispatch service and a real SQLite database.

Runs in the services environment (rasa_sdk, SQLAlchemy 2, dispatch), part of ``make test``'s services stage:
``.venv/svc/bin/python -m pytest tests/actions -q``. Trackers are built the way Rasa sends them; the entities come
from the same nlu/ functions the Rasa pipeline runs (normaliser, gazetteer, pattern extractor), only the intent is given.
"""
from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
import yaml

from nlu.gazetteer import Gazetteer  # noqa: E402
from nlu.patterns import find_patterns  # noqa: E402
from nlu.places import load_places  # noqa: E402
from nlu.text import normalize  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = yaml.safe_load((ROOT / "bot" / "domain.yml").read_text(encoding="utf-8"))
PHONE = "13812345678"


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    """A fresh SQLite database for the services (migrated and seeded by actions.services on first use)."""
    import os

    from core import config, db

    path = tmp_path_factory.mktemp("actions") / "jsjb.db"
    old = os.environ.get("JSJB_DATABASE_URL")
    os.environ["JSJB_DATABASE_URL"] = f"sqlite:///{path}"
    config.get_settings.cache_clear()
    db.get_engine.cache_clear()
    import actions.services as services

    services._ready = False
    yield f"sqlite:///{path}"
    if old is None:
        os.environ.pop("JSJB_DATABASE_URL", None)
    else:
        os.environ["JSJB_DATABASE_URL"] = old
    config.get_settings.cache_clear()
    db.get_engine.cache_clear()
    services._ready = False


@pytest.fixture(scope="module")
def executor():
    from rasa_sdk.executor import ActionExecutor

    e = ActionExecutor()
    e.register_package("actions")
    return e


@pytest.fixture(scope="module")
def gazetteer():
    places, generic = load_places()
    return Gazetteer.from_places(places, generic)


class Conversation:
    """Builds trackers turn by turn and runs actions through rasa_sdk's executor."""

    def __init__(self, executor, gazetteer, sender: str = "citizen-1") -> None:
        self.executor, self.gazetteer, self.sender = executor, gazetteer, sender
        self.slots: Dict[str, Any] = {name: None for name in DOMAIN["slots"]}
        self.events: List[Dict[str, Any]] = []
        self.latest: Dict[str, Any] = {}
        self.active_loop: Optional[str] = None
        self.counter = 0

    def say(self, text: str, intent: str) -> "Conversation":
        normalised = normalize(text)[0]
        entities = find_patterns(normalised) + self.gazetteer.extract(normalised)
        self.counter += 1
        self.latest = {"text": normalised, "intent": {"name": intent, "confidence": 0.99}, "entities": entities,
                       "message_id": f"m{self.counter}"}
        self.events.append({"event": "user", "text": text, "timestamp": float(self.counter),
                            "parse_data": dict(self.latest)})
        return self

    def run(self, action: str) -> Dict[str, Any]:
        tracker = {
            "sender_id": self.sender, "slots": dict(self.slots), "latest_message": self.latest,
            "events": list(self.events), "paused": False, "followup_action": None,
            "active_loop": {"name": self.active_loop} if self.active_loop else {},
            "latest_action_name": "action_listen",
        }
        result = asyncio.run(self.executor.run({"next_action": action, "sender_id": self.sender, "tracker": tracker,
                                                "domain": DOMAIN, "version": "3.6.21"}))
        self.events.append({"event": "action", "name": action, "timestamp": float(self.counter)})  # as Rasa logs it
        for event in result.events:
            if event["event"] == "slot":
                self.slots[event["name"]] = event["value"]
            elif event["event"] == "active_loop":
                self.active_loop = event.get("name")
            self.events.append(event)
        return {"events": result.events, "texts": [r.get("text") for r in result.responses if r.get("text")],
                "buttons": [(b["title"], b["payload"]) for r in result.responses for b in r.get("buttons") or []]}

    def form_turn(self, text: str, intent: str) -> Dict[str, Any]:
        """A user turn inside intake_form: validation, then the question the form asks next."""
        self.active_loop = "intake_form"
        self.say(text, intent)
        out = self.run("validate_intake_form")
        if self.slots.get("requested_slot") == "confirmed":
            asked = self.run("action_ask_confirmed")
            out["texts"] += asked["texts"]
            out["buttons"] += asked["buttons"]
        return out


def slot_events(result) -> Dict[str, Any]:
    return {e["name"]: e["value"] for e in result["events"] if e["event"] == "slot"}


def demo_until_read_back(conv: Conversation) -> None:
    conv.slots["requested_slot"] = None
    first = conv.form_turn("我家楼下饭馆油烟太大，在朝阳区望京西园三区", "file_request")
    assert slot_events(first)["requested_slot"] == "contact_phone"
    conv.form_turn(PHONE, "inform")
    conv.form_turn("不需要", "deny")
    assert conv.slots["requested_slot"] == "confirmed"


def test_demo_request_is_read_back_and_creates_one_work_order(database, executor, gazetteer):
    conv = Conversation(executor, gazetteer)
    conv.slots["requested_slot"] = None
    first = conv.form_turn("我家楼下饭馆油烟太大，在朝阳区望京西园三区", "file_request")
    assert slot_events(first) == {
        "description": "我家楼下饭馆油烟太大，在朝阳区望京西园三区", "address": "朝阳区望京西园三区",
        "district": "朝阳区", "street": "望京街道", "requested_slot": "contact_phone"}
    phone = conv.form_turn(PHONE, "inform")
    assert slot_events(phone)["contact_phone"] == PHONE
    assert conv.slots["requested_slot"] == "confidential"
    read_back = conv.form_turn("不需要", "deny")
    assert conv.slots["confidential"] is False and conv.slots["requested_slot"] == "confirmed"
    summary = read_back["texts"][-1]
    assert "朝阳区望京西园三区" in summary and "望京街道" in summary and "138****5678" in summary
    assert PHONE not in summary and "以上信息是否正确" in summary

    confirm = conv.form_turn("确认", "affirm")
    assert conv.slots["confirmed"] is True and conv.slots["requested_slot"] is None
    submitted = conv.run("action_submit_work_order")
    number = re.search(r"工单号：(\d{8}-\d{6})", submitted["texts"][0]).group(1)
    assert "工作日" in submitted["texts"][0]
    assert conv.slots["last_work_order"] == number and conv.slots["description"] is None

    # Rasa re-running the action for the same confirming message must not create a second order
    conv.slots.update({k: v for k, v in slot_events(confirm).items()})
    conv.slots.update({"description": "我家楼下饭馆油烟太大，在朝阳区望京西园三区", "address": "朝阳区望京西园三区",
                       "district": "朝阳区", "street": "望京街道", "contact_phone": PHONE, "confidential": False,
                       "confirmed": True})
    again = conv.run("action_submit_work_order")
    assert re.search(r"工单号：(\d{8}-\d{6})", again["texts"][0]).group(1) == number

    from core.db import session_scope
    from dispatch.orm import WorkOrder
    from sqlalchemy import func, select

    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(WorkOrder).where(WorkOrder.number == number)) == 1
        order = session.scalar(select(WorkOrder).where(WorkOrder.number == number))
        assert order.citizen_phone == PHONE and order.district == "朝阳区"


def test_correction_of_the_district_at_the_read_back(database, executor, gazetteer):
    conv = Conversation(executor, gazetteer, "citizen-correct")
    demo_until_read_back(conv)
    out = conv.form_turn("不对，是海淀区", "correction")
    events = slot_events(out)
    assert events["district"] == "海淀区" and events["street"] is None and events["confirmed"] is None
    assert conv.slots["address"] == "海淀区望京西园三区"
    assert conv.slots["requested_slot"] == "confirmed"
    assert out["texts"][-1].startswith("好的，已为您更新。") and "海淀区" in out["texts"][-1]
    assert "望京街道" not in out["texts"][-1]


def test_correction_without_a_value_asks_again(database, executor, gazetteer):
    conv = Conversation(executor, gazetteer, "citizen-readdress")
    demo_until_read_back(conv)
    conv.form_turn("地址错了", "correction")
    assert conv.slots["address"] is None and conv.slots["district"] is None
    assert conv.slots["requested_slot"] == "address"
    conv.form_turn("丰台区方庄芳城园一区", "inform")
    assert conv.slots["district"] == "丰台区" and conv.slots["requested_slot"] == "confirmed"
    conv.form_turn("不对", "deny")
    assert conv.slots["requested_slot"] == "confirmed"
    asked = conv.run("action_ask_confirmed")["texts"][0]
    assert asked.startswith("好的，请问哪一项需要修改")


def test_small_talk_at_the_place_question_is_not_taken_as_the_place(database, executor, gazetteer):
    conv = Conversation(executor, gazetteer, "citizen-smalltalk")
    conv.slots["requested_slot"] = None
    conv.form_turn("我要投诉楼下饭馆油烟太大，熏得没法开窗", "file_request")
    assert conv.slots["requested_slot"] == "address"
    for text, intent in (("你是机器人吗", "bot_challenge"), ("今天天气怎么样", "chitchat"), ("你们能干什么", "bot_challenge"),
                         ("谢谢", "thanks")):
        out = conv.form_turn(text, intent)
        assert slot_events(out).get("address") is None and slot_events(out).get("occurred_at") is None, text
        assert conv.slots["address"] is None and conv.slots["occurred_at"] is None
    # a place given with a pleasantry is still the place
    conv.form_turn("谢谢，在海淀区学院路20号院", "thanks")
    assert conv.slots["address"] == "海淀区学院路20号院" and conv.slots["district"] == "海淀区"


def test_small_talk_at_the_district_question_gets_no_error_message(database, executor, gazetteer):
    conv = Conversation(executor, gazetteer, "citizen-smalltalk-district")
    conv.slots["requested_slot"] = None
    conv.form_turn("小区门口的路灯坏了一个多月，晚上黑乎乎的", "file_request")
    conv.form_turn("我家楼下那个十字路口", "inform")
    assert conv.slots["requested_slot"] == "district"
    out = conv.form_turn("你是真人吗", "bot_challenge")
    assert not any("没有识别出" in t for t in out["texts"]) and conv.slots["district"] is None
    out = conv.form_turn("随便说的一个地方", "inform")
    assert any("没有识别出是北京哪个区" in t for t in out["texts"])


def test_a_description_correction_with_the_new_words_keeps_them(database, executor, gazetteer):
    conv = Conversation(executor, gazetteer, "citizen-add-detail")
    demo_until_read_back(conv)
    out = conv.form_turn("描述再补充一下，晚上十点以后还在炒菜", "correction")
    assert conv.slots["description"] == "我家楼下饭馆油烟太大，在朝阳区望京西园三区；晚上十点以后还在炒菜"
    assert conv.slots["requested_slot"] == "confirmed" and "晚上十点以后还在炒菜" in out["texts"][-1]
    conv.form_turn("问题改成：楼下烧烤店油烟大，半夜还有人喝酒吵闹", "correction")
    assert conv.slots["description"] == "楼下烧烤店油烟大，半夜还有人喝酒吵闹"
    conv.form_turn("描述不对", "correction")  # no new words: the form asks for the description again
    assert conv.slots["description"] is None and conv.slots["requested_slot"] == "description"


def test_read_back_quick_replies_and_a_building_number_is_no_date(database, executor, gazetteer):
    conv = Conversation(executor, gazetteer, "citizen-buttons")
    conv.slots["requested_slot"] = None
    conv.form_turn("我家楼下饭馆油烟太大，在朝阳区望京西园三区", "file_request")
    conv.form_turn(PHONE, "inform")
    read_back = conv.form_turn("/deny", "deny")  # the 不需要保密 button
    assert conv.slots["confidential"] is False
    assert read_back["buttons"] == [("确认提交", "/affirm"), ("需要修改", "/deny"), ("取消登记", "/cancel")]
    assert "取消" in read_back["texts"][-1]  # the text names the options too (text-only channels)
    change = conv.form_turn("/deny", "deny")  # 需要修改
    assert change["texts"][-1].startswith("好的，请问哪一项需要修改") and conv.slots["requested_slot"] == "confirmed"
    updated = conv.form_turn("地址是朝阳区望京西园三区5号楼", "correction")
    assert "5号楼" in conv.slots["address"] and conv.slots["occurred_at"] is None, conv.slots
    assert "发生时间" not in updated["texts"][-1] and ("确认提交", "/affirm") in updated["buttons"]
    conv.form_turn("是这个月5号晚上开始的", "inform")  # a real day of the month is still a time
    assert conv.slots["occurred_at"] and "5号" in conv.slots["occurred_at"]
    done = conv.form_turn("/affirm", "affirm")
    assert conv.slots["confirmed"] is True, done


def test_consultation_answer_offers_feedback_buttons(database, executor, gazetteer):
    conv = Conversation(executor, gazetteer, "citizen-kb-buttons")
    conv.say("居住证怎么办理", "consult")
    out = conv.run("action_answer_consultation")
    if conv.slots.get("dialogue_stage") == "kb_feedback":
        assert out["buttons"] == [("有帮助", "/affirm"), ("没帮助", "/deny")]
        entry_id = conv.slots["kb_entry_id"]
        conv.say("/deny", "deny")
        out = conv.run("action_kb_feedback")
        # editors see the answer that did not help, with the entry it came from
        from sqlalchemy import select

        from core.db import session_scope
        from knowledge_base.orm import KBUnanswered

        with session_scope() as session:
            row = session.scalar(select(KBUnanswered).where(KBUnanswered.kind == "unhelpful"))
            assert row is not None and row.question == "居住证怎么办理" and row.best_entry_slug == entry_id
    assert out["buttons"] == [("帮我登记", "/affirm"), ("不用了", "/deny")] and "登记" in out["texts"][-1]


def test_anonymous_skips_phone_and_confidentiality(database, executor, gazetteer):
    conv = Conversation(executor, gazetteer, "citizen-anon")
    conv.slots["requested_slot"] = None
    conv.form_turn("举报我们小区地下室住了几十个人，是群租房", "file_request")
    assert conv.slots["requested_slot"] == "address"
    conv.form_turn("海淀区学院路", "inform")
    assert conv.slots["district"] == "海淀区" and conv.slots["requested_slot"] == "contact_phone"
    out = conv.form_turn("匿名", "anonymous")
    assert conv.slots["anonymous"] is True and conv.slots["requested_slot"] == "confirmed"
    assert "匿名反映" in out["texts"][-1]


def test_id_card_number_is_refused_and_never_stored(database, executor, gazetteer):
    conv = Conversation(executor, gazetteer, "citizen-id")
    conv.slots["requested_slot"] = None
    conv.form_turn("我家暖气不热，我身份证号110105199003071234", "file_request")
    assert "110105199003071234" not in str(conv.slots)
    assert "110***********1234" in conv.slots["description"]
    conv.slots["requested_slot"] = "contact_phone"
    out = conv.form_turn("110105199003071234", "inform")
    assert any("身份证" in t for t in out["texts"])
    assert conv.slots["contact_phone"] is None
    assert "110105199003071234" not in str(conv.slots)


def test_status_query_only_with_the_matching_phone_tail(database, executor, gazetteer):
    conv = Conversation(executor, gazetteer, "citizen-status")
    demo_until_read_back(conv)
    conv.form_turn("确认", "affirm")
    number = conv.run("action_submit_work_order")["texts"][0]
    number = re.search(r"(\d{8}-\d{6})", number).group(1)

    other = Conversation(executor, gazetteer, "someone-else")
    other.slots.update({"status_order_number": number, "status_phone_tail": "0000"})
    other.say("0000", "inform")
    assert "未查到" in other.run("action_check_status")["texts"][0]

    conv.slots.update({"status_order_number": number, "status_phone_tail": "5678"})
    conv.say("5678", "inform")
    out = conv.run("action_check_status")
    assert number in out["texts"][0] and "当前状态" in out["texts"][0]
    assert conv.slots["status_phone_tail"] is None


def test_status_form_extracts_number_and_tail(database, executor, gazetteer):
    conv = Conversation(executor, gazetteer, "citizen-status-form")
    conv.active_loop = "status_form"
    conv.slots["requested_slot"] = None
    conv.say("帮我查一下20261118-000256", "status_query")
    assert slot_events(conv.run("validate_status_form"))["status_order_number"] == "20261118-000256"
    conv.slots["requested_slot"] = "status_phone_tail"
    conv.say("后四位是5678", "inform")
    assert slot_events(conv.run("validate_status_form"))["status_phone_tail"] == "5678"


def test_callback_is_recorded_on_the_work_order(database, executor, gazetteer):
    from core.db import session_scope
    from dispatch.proposal import Actor, Intake
    from dispatch.service import DispatchService

    with session_scope() as session:
        svc = DispatchService(session)
        created = svc.create_work_order(Intake(content="小区门口路灯坏了好几盏，晚上很黑", phone=PHONE,
                                               district="朝阳区", street="望京街道"), idempotency_key="cb-test")
        number = created["number"]
        agent = Actor("agent-1", "agent")
        order = svc.get_order(number, agent)
        unit = order["suggestions"][0]["unit_code"]
        svc.dispatch(number, unit, agent)
        svc.accept(number, Actor("unit", "unit", unit))
        svc.reply(number, Actor("unit", "unit", unit), "已更换损坏路灯。")

    conv = Conversation(executor, gazetteer, "citizen-callback")
    conv.active_loop = "callback_form"
    conv.slots.update({"callback_order_number": number, "requested_slot": "callback_resolved"})
    conv.say("解决了，挺满意的", "resolved")
    events = slot_events(conv.run("validate_callback_form"))
    assert events["callback_resolved"] is True and events["callback_satisfaction"] == "满意"
    out = conv.run("action_record_callback")
    assert "感谢您的评价" in out["texts"][0]
    with session_scope() as session:
        detail = DispatchService(session).get_order(number, Actor("agent-1", "agent"))
        assert detail["satisfaction"] == "满意" and detail["resolved"] is True


def test_two_fallbacks_in_a_row_hand_over(database, executor, gazetteer):
    conv = Conversation(executor, gazetteer, "citizen-fallback")
    conv.say("啊吧啊吧", "nlu_fallback")
    first = conv.run("action_fallback")
    assert not any(e["event"] == "pause" for e in first["events"])
    conv.say("呜啦啦", "nlu_fallback")
    second = conv.run("action_fallback")
    assert any(e["event"] == "pause" for e in second["events"])
    assert "人工" in second["texts"][0]


def test_a_message_the_form_understood_breaks_a_run_of_fallbacks(database, executor, gazetteer):
    conv = Conversation(executor, gazetteer, "citizen-fallback-phone")
    conv.slots["requested_slot"] = None
    conv.form_turn("楼下饭馆油烟太大，在朝阳区望京西园三区", "file_request")
    assert conv.slots["requested_slot"] == "contact_phone"
    conv.form_turn(PHONE, "nlu_fallback")  # the NLU was unsure about a bare number, the form took it
    assert conv.slots["contact_phone"] == PHONE
    conv.say("你们多久能处理", "nlu_fallback")
    first = conv.run("action_fallback")
    assert not any(e["event"] == "pause" for e in first["events"]) and "人工" not in first["texts"][0][:10]
    conv.say("呜啦啦", "nlu_fallback")
    assert any(e["event"] == "pause" for e in conv.run("action_fallback")["events"])


def test_status_query_and_praise_are_not_filled_with_small_talk(database, executor, gazetteer):
    conv = Conversation(executor, gazetteer, "citizen-status-smalltalk")
    conv.active_loop, conv.slots["requested_slot"] = "status_form", "status_order_number"
    for text, intent in (("你好", "greet"), ("谢谢", "thanks"), ("你是机器人吗", "bot_challenge"),
                         ("我要投诉楼上噪音，天天半夜蹦迪", "file_request")):
        conv.say(text, intent)
        out = conv.run("validate_status_form")
        assert not out["texts"], text  # no "没有识别出工单编号"
        assert conv.slots["status_order_number"] is None
    conv.say("就是那个，你看着办", "inform")
    assert "没有识别出工单编号" in conv.run("validate_status_form")["texts"][0]

    praise = Conversation(executor, gazetteer, "citizen-praise-smalltalk")
    praise.active_loop, praise.slots["requested_slot"] = "praise_form", "praise_text"
    for text, intent in (("你是机器人吗", "bot_challenge"), ("今天天气怎么样", "chitchat"), ("你好", "greet")):
        praise.say(text, intent)
        praise.run("validate_praise_form")
        assert praise.slots["praise_text"] is None, text
    praise.say("谢谢望京街道的王主任，帮我们把停车的事解决了", "thanks")
    praise.run("validate_praise_form")
    assert praise.slots["praise_text"] == "谢谢望京街道的王主任，帮我们把停车的事解决了"


def test_consultation_answers_or_honestly_offers_to_file(database, executor, gazetteer):
    import actions.services as services

    conv = Conversation(executor, gazetteer, "citizen-consult")
    conv.say("居住证怎么办理", "consult")
    out = conv.run("action_answer_consultation")
    expected = asyncio.run(services.answer_question("居住证怎么办理"))
    if expected.answered:
        assert out["texts"][0].endswith("这个回答对您有帮助吗？")
        assert conv.slots["dialogue_stage"] == "kb_feedback"
    else:
        assert "登记" in out["texts"][0] and conv.slots["dialogue_stage"] == "offer_file"
    conv.say("好的", "affirm")
    if conv.slots["dialogue_stage"] == "offer_file":
        conv.run("action_start_request_from_question")
        assert conv.slots["description"] == "居住证怎么办理" and conv.slots["request_type"] == "咨询"


def test_action_quick_replies_send_intents_the_domain_knows():
    from actions import buttons

    offered = [buttons.HANDOFF, *buttons.READ_BACK, *buttons.KB_FEEDBACK, *buttons.OFFER_FILE]
    for b in offered:
        assert b["title"] and b["payload"].startswith("/") and b["payload"][1:] in DOMAIN["intents"], b
    assert buttons.buttons(buttons.READ_BACK) is not buttons.READ_BACK  # a fresh list for each message


def test_consultation_about_another_city_says_where_to_ask(database, executor, gazetteer):
    conv = Conversation(executor, gazetteer, "citizen-other-city")
    conv.say("上海的居住证怎么办理，积分要多少", "consult")
    out = conv.run("action_answer_consultation")
    text = out["texts"][0]
    assert "上海" in text and "只解答北京市" in text and "当地的12345" in text
    assert not out["buttons"] and conv.slots["dialogue_stage"] is None and conv.slots["kb_entry_id"] is None
