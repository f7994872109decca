"""``bot.tracker_replay`` gives exactly Rasa's results: ``tracker.copy()``, ``applied_events()`` and the dialogue
states of every policy,
on every prefix of every conversation the bot is trained on and tested with, grown event by event on one live
tracker (as a conversation grows in the server), plus conversations with undone turns, restarts and new sessions."""
from __future__ import annotations

import copy
import random
from pathlib import Path

import pytest

pytest.importorskip("rasa")

from rasa.core.featurizers.tracker_featurizers import MaxHistoryTrackerFeaturizer  # noqa: E402
from rasa.core.training import load_data  # noqa: E402
from rasa.shared.core.domain import Domain  # noqa: E402
from rasa.shared.core.events import (  # noqa: E402
    ActionExecuted, ActionExecutionRejected, ActionReverted, ActiveLoop, BotUttered, ConversationPaused,
    ConversationResumed, Event, FollowupAction, Restarted, SessionStarted, SlotSet, UserUttered, UserUtteranceReverted,
)
from rasa.shared.core.trackers import DialogueStateTracker  # noqa: E402

from bot import tracker_replay  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RULE_ONLY = {"slots": ["dialogue_stage", "kb_question"], "loops": ["status_form"]}
# (omit_unset_slots, ignore_rule_only_turns, rule_only_data): RulePolicy's call, MemoizationPolicy's, and one more
PARAMETERS = [(False, False, None), (False, True, RULE_ONLY), (True, False, None), (False, True, None)]


@pytest.fixture(scope="module")
def domain():
    return Domain.load(ROOT / "bot" / "domain.yml")


@pytest.fixture(scope="module")
def conversations(domain):
    """Event lists: every training story and rule, every conversation test, and hand-made ones with the events that
    undo or restart (which a replay must handle the way Rasa does)."""
    out = []
    for resource in (ROOT / "bot" / "data", ROOT / "bot" / "tests"):
        trackers = load_data(str(resource), domain, augmentation_factor=0, use_story_concatenation=False)
        out += [list(t.events) for t in trackers]
    assert len(out) > 50
    out += _hand_made()
    # in the server, an action that a rule predicted in a rule-only turn is logged with hide_rule_turn=True, and the
    # states of MemoizationPolicy skip those turns: the same conversations with such turns (a fixed random choice)
    rng = random.Random(12345)
    out += [[_hidden(event) if isinstance(event, ActionExecuted) and event.action_name != "action_listen"
             and rng.random() < 0.5 else event for event in events] for events in out]
    return out


def _hidden(event):
    return ActionExecuted(event.action_name, event.policy, event.confidence, event.timestamp, hide_rule_turn=True)


def _user(text, intent, entities=()):
    return UserUttered(text, {"name": intent, "confidence": 0.9}, list(entities))


def _hand_made():
    form_turn = [
        ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen"),
        _user("我家楼下饭馆油烟太大", "file_request"), ActionExecuted("intake_form"), ActiveLoop("intake_form"),
        SlotSet("description", "我家楼下饭馆油烟太大"), SlotSet("requested_slot", "district"),
        ActionExecuted("action_listen"),
        _user("朝阳区", "inform", [{"entity": "district", "value": "朝阳区", "start": 0, "end": 3}]),
        SlotSet("district", "朝阳区"), ActionExecuted("intake_form"), SlotSet("requested_slot", "contact_phone"),
        ActionExecuted("action_listen"), _user("不对，是海淀区", "correction"),
        ActionExecutionRejected("intake_form"), ActionExecuted("action_ask_address"), SlotSet("district", "海淀区"),
        ActionExecuted("intake_form"), SlotSet("requested_slot", "contact_phone"), ActionExecuted("action_listen"),
    ]
    undone = form_turn + [
        _user("你是机器人吗", "bot_challenge"), ActionExecuted("utter_iamabot"), BotUttered("我是12345的智能助手"),
        UserUtteranceReverted(), ActionExecuted("action_listen"), _user("匿名", "anonymous"),
        ActionExecuted("intake_form"), SlotSet("anonymous", True), ActionReverted(),
        ActionExecuted("intake_form"), SlotSet("anonymous", True), ActiveLoop(None), SlotSet("requested_slot", None),
        FollowupAction("action_submit_work_order"), ActionExecuted("action_submit_work_order"),
        ActionExecuted("action_listen"),
    ]
    restarted = undone + [
        _user("重新开始", "cancel"), ActionExecuted("action_restart"), Restarted(),
        ActionExecuted("action_session_start"), SessionStarted(), SlotSet("contact_phone", "13800001111"),
        ActionExecuted("action_listen"), _user("居住证怎么办理", "consult"), ActionExecuted("action_answer_consultation"),
        ActionExecuted("action_listen"), _user("转人工", "human_handoff"), ActionExecuted("action_handoff"),
        ConversationPaused(), ActionExecuted("action_listen"), _user("还在吗", "greet"), ConversationResumed(),
        ActionExecuted("action_listen"),
    ]
    return [form_turn, undone, restarted]


@pytest.fixture
def installed():
    tracker_replay.install_incremental_replays(verify=False)
    try:
        yield tracker_replay._rasa_copy, tracker_replay._rasa_states, tracker_replay._rasa_applied
    finally:
        tracker_replay.uninstall_incremental_replays()


def _post_processed(states_fn, domain, tracker, ignore, rule_only_data, use_text):
    """What a policy finally reads: the featurizer's prediction states, built from ``states_fn`` (its post-processing
    changes the states in place, so this also shows that the kept results are not shared with callers)."""
    featurizer = MaxHistoryTrackerFeaturizer(max_history=None)
    original = Domain.states_for_tracker_history
    Domain.states_for_tracker_history = states_fn
    try:
        return featurizer.prediction_states([tracker], domain, use_text_for_last_user_input=use_text,
                                            ignore_rule_only_turns=ignore, rule_only_data=rule_only_data)
    finally:
        Domain.states_for_tracker_history = original


def test_copy_and_states_equal_rasas_on_every_prefix(installed, domain, conversations):
    rasa_copy, rasa_states, rasa_applied = installed
    prefixes = 0
    for events in conversations:
        live = DialogueStateTracker("citizen", domain.slots)
        for event in events:
            live.update(event)
            prefixes += 1
            assert tracker_replay.snapshot(live.copy()) == tracker_replay.snapshot(rasa_copy(live))
            assert [id(e) for e in live.applied_events()] == [id(e) for e in rasa_applied(live)]
            for omit, ignore, rule_only_data in PARAMETERS:
                assert tracker_replay.incremental_states(domain, live, omit, ignore, rule_only_data) == \
                    rasa_states(domain, live, omit, ignore, rule_only_data)
            for use_text in (False, True):
                assert _post_processed(tracker_replay.incremental_states, domain, live, True, RULE_ONLY, use_text) == \
                    _post_processed(rasa_states, domain, live, True, RULE_ONLY, use_text)
    assert prefixes > 1000
    # the point of it: most calls resumed from what the tracker kept
    assert tracker_replay.stats["copy_resumed"] > prefixes * 0.9
    assert tracker_replay.stats["applied_resumed"] > prefixes * 0.9
    assert tracker_replay.stats["states_resumed"] > tracker_replay.stats["states_replays"]


def test_slots_are_copied_as_copy_copy_copies_them(domain):
    for slot in map(copy.copy, domain.slots):  # copies: the domain is the module's
        slot.value = ["朝阳区"] if type(slot).__name__ == "ListSlot" else slot.initial_value
        ours, theirs = tracker_replay._copy_slot(slot), copy.copy(slot)
        assert type(ours) is type(theirs) is type(slot) and ours is not slot
        assert vars(ours) == vars(theirs) and vars(ours) is not vars(slot)
        assert ours.value is slot.value
    assert len({type(slot) for slot in domain.slots}) >= 3  # text, bool, categorical, any... slots of the domain


def test_a_copy_is_the_callers_own(installed, domain, conversations):
    live = DialogueStateTracker("citizen", domain.slots)
    for event in conversations[-1][:12]:
        live.update(event)
    first = live.copy()
    first.update(SlotSet("district", "延庆区"))
    first.active_loop.rejected = True
    second = live.copy()
    assert second.get_slot("district") == "朝阳区" and live.get_slot("district") == "朝阳区"
    assert not second.active_loop.rejected and not live.active_loop.rejected
    assert len(second.events) == len(live.events) == 12


def test_a_changed_history_is_replayed_in_full(installed, domain, conversations):
    rasa_copy, rasa_states, rasa_applied = installed
    events = _hand_made()[1]  # the one with undone turns and no restart
    live = DialogueStateTracker("citizen", domain.slots)
    for event in events:
        live.update(event)
    live.copy(), tracker_replay.incremental_states(domain, live)
    # the same conversation rebuilt from the store's rows (equal events, other objects), then one with an event
    # inserted early on: nothing kept applies, and the results are still Rasa's
    rebuilt = [Event.from_parameters(event.as_dict()) for event in events]
    for history in (rebuilt, rebuilt[:5] + [SlotSet("district", "通州区")] + rebuilt[5:]):
        live.events.clear()
        live._reset()
        for event in history:
            live.update(event)
        before = dict(tracker_replay.stats)
        assert tracker_replay.snapshot(live.copy()) == tracker_replay.snapshot(rasa_copy(live))
        assert tracker_replay.incremental_states(domain, live) == rasa_states(domain, live)
        assert tracker_replay.stats["copy_replays"] == before["copy_replays"] + 1
        assert tracker_replay.stats["states_replays"] == before["states_replays"] + 1


def test_verify_mode_counts_no_mismatch_on_the_conversations(domain, conversations):
    tracker_replay.install_incremental_replays(verify=True)
    try:
        before = dict(tracker_replay.mismatches)
        for events in conversations[:40] + conversations[-3:]:
            live = DialogueStateTracker("citizen", domain.slots)
            for event in events:
                live.update(event)
                live.copy()
                live.past_states(domain)
                live.past_states(domain, ignore_rule_only_turns=True, rule_only_data=RULE_ONLY)
        assert tracker_replay.mismatches == before
    finally:
        tracker_replay.uninstall_incremental_replays()
