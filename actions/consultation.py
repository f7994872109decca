"""咨询: answer from the knowledge base, ask whether it helped, and offer to file the question as a request."""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import buttons, services
from actions.intake import idempotency_key
from actions.slots import citizen_text, latest_intent

logger = logging.getLogger(__name__)

HELPFUL_QUESTION = "这个回答对您有帮助吗？"
OFFER_FILE = "需要我帮您把这个问题登记下来，转给相关部门答复吗？"
OTHER_REGION = ("您问的是{region}的政策或办事问题。12345市民服务热线只解答北京市的政策和办事流程，{region}的规定可能和北京不同，"
                "请咨询{region}当地的12345政务服务便民热线或有关部门，以当地规定为准。如果您要问的是在北京怎么办，请再说具体一些。")


class ActionAnswerConsultation(Action):
    def name(self) -> Text:
        return "action_answer_consultation"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict]:
        question = citizen_text(tracker)
        in_form = bool((tracker.active_loop or {}).get("name"))
        result = await services.answer_question(question)
        events: List[Dict] = [SlotSet("kb_question", question)]
        if in_form:  # inside a form: answer only, no follow-up question
            events.append(SlotSet("dialogue_stage", None))
        if result.answered and result.answer:
            text = result.answer.strip()
            if result.department:
                text += f"\n（答复口径来源：{result.department}）"
            if in_form:
                dispatcher.utter_message(text=text)
                return events
            dispatcher.utter_message(text=f"{text}\n{HELPFUL_QUESTION}", buttons=buttons.buttons(buttons.KB_FEEDBACK))
            await self._record_answered(tracker, question, result)
            return events + [SlotSet("kb_entry_id", result.entry_id), SlotSet("dialogue_stage", "kb_feedback")]
        if result.other_region:  # not Beijing's matter: say where to ask; nothing to file here
            dispatcher.utter_message(text=OTHER_REGION.format(region=result.other_region))
            return events + [SlotSet("kb_entry_id", None), SlotSet("dialogue_stage", None)]
        if not result.available:
            lead = "抱歉，知识库暂时无法查询。"
        else:
            lead = "这个问题我暂时没有查到准确的答复，不好随便回答您。"
            if result.suggestions:
                options = "；".join(f"“{q}”" for _, q, _ in result.suggestions[:3])
                lead += f"您要问的是不是：{options}？如果是，可以直接换个说法再问我。"
        if in_form:
            dispatcher.utter_message(text=lead + "您的这个问题可以在本次登记完成后再单独反映。")
            return events
        dispatcher.utter_message(text=f"{lead}{OFFER_FILE}", buttons=buttons.buttons(buttons.OFFER_FILE))
        return events + [SlotSet("kb_entry_id", None), SlotSet("dialogue_stage", "offer_file")]

    @staticmethod
    async def _record_answered(tracker: Tracker, question: str, result: services.KBAnswer) -> None:
        """Art. 10 and 11 para. 1: an answered consultation is still a recorded request (closed as answered)."""
        data = services.IntakeData(description=question, request_type="咨询", anonymous=True, answered_immediately=True)
        try:
            await services.create_work_order(data, idempotency_key(tracker, "consult"))
        except Exception:  # the citizen already has the answer; recording must not break the conversation
            logger.exception("answered consultation could not be recorded")


class ActionKbFeedback(Action):
    """The citizen's yes/no to "这个回答对您有帮助吗？" or to the offer to file the question."""

    def name(self) -> Text:
        return "action_kb_feedback"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict]:
        stage, intent = tracker.get_slot("dialogue_stage"), latest_intent(tracker)
        if stage == "kb_feedback" and intent == "affirm":
            dispatcher.utter_message(response="utter_glad_helpful")
            return [SlotSet("dialogue_stage", None)]
        if stage == "kb_feedback" and intent == "deny":
            question, entry_id = tracker.get_slot("kb_question"), tracker.get_slot("kb_entry_id")
            if question and entry_id:
                await services.record_unhelpful_answer(question, entry_id)
            dispatcher.utter_message(text=f"抱歉没能帮到您。{OFFER_FILE}", buttons=buttons.buttons(buttons.OFFER_FILE))
            return [SlotSet("dialogue_stage", "offer_file")]
        dispatcher.utter_message(response="utter_offer_declined")
        return [SlotSet("dialogue_stage", None), SlotSet("kb_question", None), SlotSet("kb_entry_id", None)]


class ActionStartRequestFromQuestion(Action):
    """The citizen accepted to file the unanswered question: it becomes the description of a 咨询 request."""

    def name(self) -> Text:
        return "action_start_request_from_question"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict]:
        question = tracker.get_slot("kb_question")
        dispatcher.utter_message(text="好的，我来帮您登记，再确认几项信息。")
        return [
            SlotSet("description", question),
            SlotSet("request_type", "咨询"),
            SlotSet("dialogue_stage", None),
            SlotSet("kb_question", None),
            SlotSet("kb_entry_id", None),
        ]
