"""Handing the conversation to a human agent: on request (转人工) or after two consecutive NLU fallbacks.

The conversation is paused (Rasa ``ConversationPaused``): the citizen's further messages are stored but not
answered by the bot until an agent resumes it (POST /conversations/<sender>/tracker/events with
``{"event": "resume"}``, see bot/README.md).
"""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, ConversationPaused, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import buttons

HANDOFF_MESSAGE = "好的，正在为您转接人工客服，请稍候。工作人员接入后会看到我们之前的对话，您不用重复说明；也可以直接拨打12345热线。"
FALLBACK_HANDOFF_MESSAGE = "抱歉，我还是没能理解您的意思，现在为您转接人工客服，请稍候。"
FALLBACK_MESSAGE = "抱歉，我没太明白您的意思。您可以换个说法，直接说说遇到的问题或想咨询的事情；需要人工服务请说“转人工”。"


def pause_events(tracker: Tracker) -> List[Dict]:
    events: List[Dict] = []
    if (tracker.active_loop or {}).get("name"):
        events += [ActiveLoop(None), SlotSet("requested_slot", None)]
    return events + [ConversationPaused()]


FALLBACK_ACTIONS = frozenset({"action_fallback", "action_default_fallback"})


def consecutive_fallbacks(tracker: Tracker) -> int:
    """Number of the latest user messages, in a row, that the bot could not understand: the current one (a fallback
    is running for it) and each earlier one after which a fallback action ran. A message the NLU was unsure about
    but a form still understood (a bare phone number, an address) breaks the run."""
    count = 0
    fell_back = True  # the message being answered now
    for event in reversed(tracker.events or []):
        if event.get("event") == "action" and event.get("name") in FALLBACK_ACTIONS:
            fell_back = True
        elif event.get("event") == "user":
            if not fell_back:
                break
            count += 1
            fell_back = False
    return count


class ActionHandoff(Action):
    def name(self) -> Text:
        return "action_handoff"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict]:
        dispatcher.utter_message(text=HANDOFF_MESSAGE)
        return [ConversationPaused()]  # the rules end an active form before this action


class ActionFallback(Action):
    """First fallback: ask to rephrase. Second in a row: hand over to a human."""

    def name(self) -> Text:
        return "action_fallback"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict]:
        if consecutive_fallbacks(tracker) >= 2:
            dispatcher.utter_message(text=FALLBACK_HANDOFF_MESSAGE)
            return pause_events(tracker)
        dispatcher.utter_message(text=FALLBACK_MESSAGE, buttons=buttons.buttons(buttons.HANDOFF))
        return []
