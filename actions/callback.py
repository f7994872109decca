"""Callback (回访, art. 23): triggered from outside with the intent EXTERNAL_callback and the entity
work_order_number (POST /conversations/<sender>/trigger_intent); the callback form asks whether the problem was
resolved and how satisfied the citizen is, and this action records the answers."""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import services

logger = logging.getLogger(__name__)

CALLBACK_SLOTS = ("callback_order_number", "callback_resolved", "callback_satisfaction")


class ActionRecordCallback(Action):
    def name(self) -> Text:
        return "action_record_callback"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict]:
        number = tracker.get_slot("callback_order_number")
        resolved = tracker.get_slot("callback_resolved")
        satisfaction = tracker.get_slot("callback_satisfaction")
        reset = [SlotSet(name, None) for name in CALLBACK_SLOTS]
        if not number:
            dispatcher.utter_message(text="感谢您的反馈！")
            return reset
        try:
            await services.record_callback(number, resolved, satisfaction)
        except services.ServiceError as exc:
            logger.warning("callback for %s not recorded: %s", number, exc.message_zh)
            dispatcher.utter_message(text=f"感谢您的反馈！不过回访结果暂未能保存（{exc.message_zh}），工作人员会再与您核实。")
            return reset
        except Exception:
            logger.exception("callback for %s not recorded", number)
            dispatcher.utter_message(text="感谢您的反馈！不过回访结果暂未能保存，工作人员会再与您核实。")
            return reset
        if resolved is False or satisfaction == "不满意":
            text = "感谢您的反馈，您的评价已记录。对于仍未解决或不满意的情况，我们会督促承办单位继续办理。"
        else:
            text = "感谢您的评价，已记录！祝您生活愉快。"
        dispatcher.utter_message(text=text)
        return reset
