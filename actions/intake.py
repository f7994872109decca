"""Intake actions: the read-back, submitting the work order, cancelling, and recording praise (表扬)."""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import buttons, services
from actions.slots import (
    INTAKE_SLOTS,
    intake_summary,
    latest_intent,
    requested_slot_before_last_user,
    slot_events_since_last_user,
)

logger = logging.getLogger(__name__)

CONFIRM_QUESTION = ("以上信息是否正确？确认无误请回复“确认”；需要修改请直接告诉我，例如“地址是海淀区中关村大街1号”或“电话是139……”；"
                    "不想提交了请回复“取消”。")
ASK_WHAT_TO_CHANGE = "好的，请问哪一项需要修改？您可以直接说正确的内容，例如“地址是丰台区方庄芳城园一区”“电话是13912345678”，或者说“描述要改”。"


def idempotency_key(tracker: Tracker, prefix: str) -> str:
    """sender + the id (or timestamp) of the citizen's confirming message: a replay never creates a second order."""
    message_id = tracker.latest_message.get("message_id")
    if not message_id:
        for event in reversed(tracker.events or []):
            if event.get("event") == "user":
                message_id = str(event.get("timestamp"))
                break
    return f"{prefix}:{tracker.sender_id}:{message_id}"[:128]


def _slots(tracker: Tracker) -> Dict[str, Any]:
    return {name: tracker.get_slot(name) for name in INTAKE_SLOTS}


class ActionAskAddress(Action):
    """Asks for the place; a consultation is asked which district it concerns instead."""

    def name(self) -> Text:
        return "action_ask_address"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict]:
        if tracker.get_slot("request_type") == "咨询":
            dispatcher.utter_message(text="请问您咨询的事项涉及北京哪个区或街道？如果不涉及具体地点，回复“不知道”即可。")
        else:
            dispatcher.utter_message(response="utter_ask_address")
        return []


class ActionAskConfirmed(Action):
    """The read-back: the summary and the confirmation question (after a correction, the updated summary)."""

    def name(self) -> Text:
        return "action_ask_confirmed"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict]:
        at_read_back = requested_slot_before_last_user(tracker) == "confirmed"
        changed = [e for e in slot_events_since_last_user(tracker, INTAKE_SLOTS) if e.get("name") != "confirmed"]
        if at_read_back and latest_intent(tracker) == "deny" and not changed:
            dispatcher.utter_message(text=ASK_WHAT_TO_CHANGE)
            return []
        prefix = "好的，已为您更新。\n" if at_read_back and changed else ""
        dispatcher.utter_message(text=f"{prefix}{intake_summary(_slots(tracker))}\n{CONFIRM_QUESTION}",
                                 buttons=buttons.buttons(buttons.READ_BACK))
        return []


class ActionSubmitWorkOrder(Action):
    """Creates the work order after the citizen confirmed the read-back; tells the number and the deadline."""

    def name(self) -> Text:
        return "action_submit_work_order"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict]:
        slots = _slots(tracker)
        if not slots.get("confirmed") or not slots.get("description"):
            dispatcher.utter_message(text="诉求信息还没有确认，暂不能提交。")
            return []
        data = services.IntakeData(
            description=slots["description"],
            request_type=slots.get("request_type"),
            address=slots.get("address"),
            district=slots.get("district"),
            street=slots.get("street"),
            occurred_at=slots.get("occurred_at"),
            phone=slots.get("contact_phone"),
            name=slots.get("contact_name"),
            anonymous=bool(slots.get("anonymous")),
            confidential=bool(slots.get("confidential")),
        )
        try:
            result = await services.create_work_order(data, idempotency_key(tracker, "intake"))
        except services.ServiceError as exc:
            dispatcher.utter_message(text=f"抱歉，工单没有登记成功：{exc.message_zh}。您可以稍后回复“确认”再试一次，或说“转人工”。")
            return [SlotSet("confirmed", None), FollowupAction("intake_form")]
        except Exception:
            logger.exception("work order creation failed")
            dispatcher.utter_message(text="抱歉，系统暂时无法登记工单。您的信息还在，请稍后回复“确认”再试一次，或说“转人工”由工作人员为您登记。")
            return [SlotSet("confirmed", None), FollowupAction("intake_form")]
        dispatcher.utter_message(text=self.message(result, data))
        return [SlotSet(name, None) for name in INTAKE_SLOTS] + [SlotSet("last_work_order", result["number"])]

    @staticmethod
    def message(result: Dict[str, Any], data: services.IntakeData) -> str:
        number = result["number"]
        if result.get("status") == "registered":
            parts = [f"您的诉求已登记，工单号：{number}。"]
            deadline = result.get("deadline")
            if deadline:
                parts.append(f"派单后承办单位须在{deadline['limit']}内办理并反馈（预计{deadline['due']}前）。")
            if result.get("disposition") == "need_more_info":
                parts.append("由于地点不够具体，工作人员可能会与您联系核实。" if not data.anonymous else "由于地点不够具体，可能影响派单，建议补充具体位置后重新反映。")
            if data.anonymous:
                parts.append("您选择了匿名反映，办理结果不会回访告知，可凭工单号查询进度。")
            else:
                parts.append("您可以凭工单号和电话后四位随时向我查询办理进度。")
            return "".join(parts) + "还有其他需要帮忙的吗？"
        # emergency, legal channel, repeat, out of scope ...: dispatch tells what happens instead (art. 11)
        text = result.get("citizen_message") or ""
        if number not in text:
            text += f"（记录编号：{number}）"
        return text


class ActionCancelIntake(Action):
    def name(self) -> Text:
        return "action_cancel_intake"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict]:
        if latest_intent(tracker) == "goodbye":
            dispatcher.utter_message(text="好的，本次登记未提交。感谢您的来电，再见！")
        else:
            dispatcher.utter_message(text="好的，已取消本次登记，您提供的信息不会提交。还有其他需要帮忙的吗？")
        return [ActiveLoop(None), SlotSet("requested_slot", None)] + [SlotSet(name, None) for name in INTAKE_SLOTS]


class ActionRecordPraise(Action):
    """表扬: thanks the citizen and records the praise as a 表扬 work order for the praised unit."""

    def name(self) -> Text:
        return "action_record_praise"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict]:
        text: Optional[str] = tracker.get_slot("praise_text")
        if not text:
            dispatcher.utter_message(text="感谢您的肯定！")
            return []
        data = services.IntakeData(description=text, request_type="表扬", anonymous=True)
        try:
            result = await services.create_work_order(data, idempotency_key(tracker, "praise"))
        except Exception:
            logger.exception("praise could not be recorded")
            dispatcher.utter_message(text="感谢您的表扬！抱歉，系统暂时没能记录，您的肯定我们会请工作人员转达。")
            return [SlotSet("praise_text", None)]
        dispatcher.utter_message(
            text=f"感谢您的表扬！我们会把您的肯定转达给相关单位和工作人员，记录编号：{result['number']}。还有其他需要帮忙的吗？"
        )
        return [SlotSet("praise_text", None), SlotSet("last_work_order", result["number"])]
