"""``bot.policies.RepetitionPolicy``: calm persuasion when a citizen sends the same message again and again.

Regulation art. 9 asks citizens not to occupy the hotline with meaningless repetition, and art. 11(6) asks the
hotline to persuade, not to cut them off. When the same text arrives for the third time in a row and the previous
two did not move the conversation - the bot answered both in the same way and the same question stayed open
("哈哈哈" three times; "我要投诉" typed twice more after the bot asked what happened) - this policy answers with
``utter_repetition`` (a gentle reminder plus what the citizen can do) and then listens; a form in progress stays
active, so the next real answer continues it. It never fires on an emergency, a legal-channel, cancel or handoff
message, nor on answers that move the conversation on ("不知道" to two different questions).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa.core.policies.policy import Policy, PolicyPrediction
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.shared.core.constants import ACTION_LISTEN_NAME, REQUESTED_SLOT
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, SlotSet, UserUttered
from rasa.shared.core.generator import TrackerWithCachedStates
from rasa.shared.core.trackers import DialogueStateTracker

ACTION = "utter_repetition"
NEVER_ON = frozenset({"emergency", "legal_channel", "human_handoff", "cancel", "goodbye"})


def _norm(text: Optional[str]) -> str:
    return "".join((text or "").split()).strip("。！!？?，,.~～").lower()


def meaningless_repetition(tracker: DialogueStateTracker, repeats: int = 3) -> bool:
    """The latest ``repeats`` user messages have the same text, and the earlier ones did not move the conversation:
    the bot answered each in the same way (same actions) and left the same question open (``requested_slot`` the
    same before and after) - and none of those answers was the reminder itself."""
    turns: List[List[Any]] = []  # [user text, [actions], question open before, question open after]
    requested: Any = None
    for event in tracker.events:
        if isinstance(event, UserUttered):
            turns.append([_norm(event.text), [], requested, requested])
        elif isinstance(event, ActionExecuted) and turns and event.action_name != ACTION_LISTEN_NAME:
            turns[-1][1].append(event.action_name)
        elif isinstance(event, SlotSet) and event.key == REQUESTED_SLOT:
            requested = event.value
            if turns:
                turns[-1][3] = requested
    if len(turns) < repeats:
        return False
    last = turns[-repeats:]
    if not last[0][0] or any(t[0] != last[0][0] for t in last):
        return False
    earlier = last[:-1]
    return (bool(earlier[0][1]) and ACTION not in earlier[0][1]
            and all(t[1] == earlier[0][1] and t[2] == t[3] == earlier[0][3] for t in earlier))


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.POLICY_WITHOUT_END_TO_END_SUPPORT], is_trainable=True)
class RepetitionPolicy(Policy):
    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        # above RulePolicy (6): a rule or form would otherwise answer the repeated message the same way again
        return {"priority": 7, "repeats": 3}

    def train(self, training_trackers: List[TrackerWithCachedStates], domain: Domain, **kwargs: Any) -> Resource:
        return self._resource  # nothing to learn

    def predict_action_probabilities(self, tracker: DialogueStateTracker, domain: Domain,
                                     rule_only_data: Optional[Dict[Text, Any]] = None,
                                     **kwargs: Any) -> PolicyPrediction:
        result = self._default_predictions(domain)
        if ACTION not in domain.action_names_or_texts:
            return self._prediction(result)
        # RulePolicy's prediction of an active form is a "no user" prediction, which the ensemble lets overrule every
        # other kind; ours are of that kind too, so that they come first (by priority) in the middle of a form
        if tracker.latest_action_name == ACTION:
            result[domain.index_for_action(ACTION_LISTEN_NAME)] = 1.0
            return self._prediction(result, is_no_user_prediction=True)
        if tracker.latest_action_name == ACTION_LISTEN_NAME:
            intent = (tracker.latest_message.intent or {}).get("name") if tracker.latest_message else None
            if intent not in NEVER_ON and meaningless_repetition(tracker, int(self.config.get("repeats", 3))):
                result[domain.index_for_action(ACTION)] = 1.0
                return self._prediction(result, is_no_user_prediction=True)
        return self._prediction(result)
