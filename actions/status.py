"""Status query: work-order number + the last four digits of the citizen's phone → progress of their own order."""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import buttons, services

logger = logging.getLogger(__name__)


class ActionCheckStatus(Action):
    def name(self) -> Text:
        return "action_check_status"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict]:
        number = tracker.get_slot("status_order_number")
        tail = tracker.get_slot("status_phone_tail")
        # the phone tail is only a check; it is not kept in the conversation
        reset = [SlotSet("status_order_number", None), SlotSet("status_phone_tail", None)]
        if not number or not tail:
            dispatcher.utter_message(text="需要工单编号和电话后四位才能查询。")
            return reset
        try:
            status = await services.citizen_status(number, tail)
        except Exception:
            logger.exception("status query failed")
            dispatcher.utter_message(text="抱歉，暂时无法查询工单进度，请稍后再试，或说“转人工”。",
                                     buttons=buttons.buttons(buttons.HANDOFF))
            return reset
        if status is None:
            dispatcher.utter_message(
                text="未查到与该工单编号和电话后四位相匹配的工单，请核对后再试。如果是匿名反映的工单，请说“转人工”由工作人员帮您查询。",
                buttons=buttons.buttons(buttons.HANDOFF),
            )
            return reset
        dispatcher.utter_message(text=services.describe_status(status) + "还有其他需要帮忙的吗？")
        return reset
