"""RepetitionPolicy (art. 9 / 11(6)): the same message three times, the earlier two not moving the conversation,
gets one calm reminder, then the bot listens; answers that move the conversation and emergencies never trigger it."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("rasa")

from rasa.engine.graph import ExecutionContext, GraphSchema  # noqa: E402
from rasa.engine.storage.local_model_storage import LocalModelStorage  # noqa: E402
from rasa.engine.storage.resource import Resource  # noqa: E402
from rasa.shared.core.domain import Domain  # noqa: E402
from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered  # noqa: E402
from rasa.shared.core.trackers import DialogueStateTracker  # noqa: E402

from bot.policies import ACTION, RepetitionPolicy  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = Domain.load(str(ROOT / "bot" / "domain.yml"))
CHAT = "utter_chitchat"
ASK = "ask:description"  # the intake form asks (again) what happened


@pytest.fixture
def policy(tmp_path):
    storage = LocalModelStorage(tmp_path)
    context = ExecutionContext(GraphSchema({}), "test")
    return RepetitionPolicy.create(RepetitionPolicy.get_default_config(), storage, Resource("repetition"), context)


def tracker_of(turns: list[tuple[str, str, list[str]]], open_question: str | None = None) -> DialogueStateTracker:
    """turns: (user text, intent, the bot's answer: action names, or "ask:<slot>" for the intake form asking that
    slot); the last turn is not answered yet (its prediction is due). ``open_question``: the slot asked before."""
    events = [ActionExecuted("action_listen")]
    if open_question:
        events.append(SlotSet("requested_slot", open_question))
    for i, (text, intent, answer) in enumerate(turns):
        events.append(UserUttered(text, {"name": intent, "confidence": 0.9}))
        if i == len(turns) - 1:
            break
        for step in answer:
            if step.startswith("ask:"):
                events += [ActionExecuted("intake_form"), SlotSet("requested_slot", step[4:]), BotUttered("……")]
            else:
                events += [ActionExecuted(step), BotUttered("……")]
        events.append(ActionExecuted("action_listen"))
    return DialogueStateTracker.from_events("c", events, DOMAIN.slots)


def predicted(policy, tracker) -> str | None:
    prediction = policy.predict_action_probabilities(tracker, DOMAIN)
    probs = prediction.probabilities
    best = max(range(len(probs)), key=probs.__getitem__)
    return DOMAIN.action_names_or_texts[best] if probs[best] > 0 else None


def test_third_identical_message_that_goes_nowhere_gets_the_reminder_then_the_bot_listens(policy):
    tracker = tracker_of([("哈哈哈", "chitchat", [CHAT]), ("哈哈哈", "chitchat", [CHAT]), ("哈哈哈！", "chitchat", [])])
    assert predicted(policy, tracker) == ACTION
    tracker.update(ActionExecuted(ACTION))
    assert predicted(policy, tracker) == "action_listen"
    text = DOMAIN.responses[ACTION][0]["text"]
    assert "第九条" in text and "转人工" in text
    stuck = tracker_of([("我要投诉", "file_request", [ASK])] * 3, open_question="description")
    assert predicted(policy, stuck) == ACTION
    # both predictions overrule a form's own "no user" prediction (the ensemble prefers that kind)
    assert policy.predict_action_probabilities(stuck, DOMAIN).is_no_user_prediction


def test_no_reminder_when_the_conversation_moves_or_for_emergencies(policy):
    assert predicted(policy, tracker_of([("哈哈哈", "chitchat", [CHAT]), ("哈哈哈", "chitchat", [])])) is None
    # the first "我要投诉" started the intake (nothing was asked before): that moved the conversation
    started = tracker_of([("我要投诉", "file_request", [ASK])] * 3)
    assert predicted(policy, started) is None
    moving = tracker_of([("不知道", "dont_know", ["ask:contact_phone"]), ("不知道", "dont_know", ["ask:confirmed"]),
                         ("不知道", "dont_know", [])], open_question="address")
    assert predicted(policy, moving) is None
    different = tracker_of([("我要投诉", "file_request", [ASK]), ("我要投诉", "file_request", [ASK]),
                            ("楼上天天半夜蹦迪", "file_request", [])], open_question="description")
    assert predicted(policy, different) is None
    help_now = tracker_of([("救命", "emergency", ["utter_emergency"])] * 3)
    assert predicted(policy, help_now) is None


def test_after_a_reminder_a_new_run_is_needed(policy):
    tracker = tracker_of([("我要投诉", "file_request", [ASK]), ("我要投诉", "file_request", [ASK]),
                          ("我要投诉", "file_request", [ACTION]), ("我要投诉", "file_request", [ASK]),
                          ("我要投诉", "file_request", [])], open_question="description")
    assert predicted(policy, tracker) is None
