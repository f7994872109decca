"""Incremental replays of a conversation's events, for the places where Rasa replays all of them several times in
every turn.

- ``DialogueStateTracker.copy()`` builds a new tracker and applies every event of the conversation to it, one after
  the other. Rasa copies the tracker before each action it runs (and a form copies it again to validate).
- ``DialogueStateTracker.applied_events()`` goes through every event to drop those undone (reverted turns, a form's
  earlier runs); the policies, the processor and the states below call it several times per prediction.
- ``Domain.states_for_tracker_history`` (``tracker.past_states``), which each policy calls for each prediction,
  replays the applied events into a fresh tracker and builds a dialogue state before every action.

Each result depends only on the events and on what the call is given, and a conversation mostly grows at its end. So
each live tracker keeps (in an attribute of its own) the private results of its last replays:

- for ``copy()``, a tracker that has applied the first *n* events. When the tracker's first *n* events are still the
  very same event objects, only the events after them are applied; the caller gets a clone;
- for ``applied_events()``, the events processed and the list built, continued the same way unless a new loop name
  appeared (an ``ActiveLoop`` changes how the earlier runs of that action count);
- for the states, a few checkpoints, one per call before the last ``ActionExecuted`` of the applied events: the
  replay tracker as it was there (cloned), how many states had been built, and the loop's variables. A call resumes
  from the last checkpoint whose applied events are still the same objects, and builds only the states after it.

Anything else (an event removed or replaced, another domain, another size limit) is a full replay, exactly Rasa's.
The result is what Rasa's code computes: the loops below are Rasa 3.6's, and ``tests/bot/test_tracker_replay.py``
compares both on every prefix of the training stories and of the conversation tests. With ``JSJB_VERIFY_REPLAY=1``
the server also computes Rasa's own result on every call and logs ``tracker replay mismatch`` when they differ
(the live conversation tests run so).

Also, a new tracker copies each of the domain's slots with ``copy.copy``; the slot classes are plain objects, and
:func:`_copy_slot` makes the same copy without the copy module's generic protocol.

``benchmarks/tracker_replay_bench.py`` measures both ways per event step: 1.3 → 0.3 ms at 10 user turns, 10.5 → 0.8–1.2
ms at 60 (this machine).
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import os
from collections import deque
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Callable, Dict, List, Optional, Text, Tuple

import rasa.shared.core.trackers
from rasa.shared.core.constants import PREVIOUS_ACTION
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted, ActionReverted, ActiveLoop, Event, Restarted, SessionStarted, UserUttered, UserUtteranceReverted,
)
from rasa.shared.core.trackers import DialogueStateTracker

logger = logging.getLogger(__name__)

MEMO_ATTRIBUTE = "_jsjb_replay_memo"
MAX_CHECKPOINTS = 4  # a form's next turn undoes the applied events after its last run: a recent checkpoint serves
VERIFY_ENV = "JSJB_VERIFY_REPLAY"

_rasa_copy: Optional[Callable[[DialogueStateTracker], DialogueStateTracker]] = None
_rasa_states: Optional[Callable[..., List[Dict]]] = None
_rasa_applied: Optional[Callable[[DialogueStateTracker], List[Event]]] = None
mismatches = {"copy": 0, "applied": 0, "states": 0}
stats = {"copy_replays": 0, "copy_resumed": 0, "applied_replays": 0, "applied_resumed": 0, "states_replays": 0,
         "states_resumed": 0}


def clone(tracker: DialogueStateTracker) -> DialogueStateTracker:
    """A tracker in the same state as ``tracker``, sharing its event objects (as a replay of them would), with slots,
    latest action and active loop of its own: the objects Rasa changes in place."""
    slots = tracker.slots
    if type(slots) is not dict:  # AnySlotDict (a tracker without a domain): leave it to Rasa
        raise TypeError("only trackers with the domain's slots are cloned")
    out = DialogueStateTracker.__new__(DialogueStateTracker)
    out._max_event_history = tracker._max_event_history
    out.events = deque(tracker.events, tracker._max_event_history)
    out.sender_id = tracker.sender_id
    out.slots = {name: _copy_slot(slot) for name, slot in slots.items()}
    out.sender_source = tracker.sender_source
    out.is_rule_tracker = tracker.is_rule_tracker
    out._paused = tracker._paused
    out.followup_action = tracker.followup_action
    out.latest_action = dict(tracker.latest_action) if tracker.latest_action is not None else None
    out.latest_message = tracker.latest_message
    out.latest_bot_utterance = tracker.latest_bot_utterance
    out.active_loop = dataclasses.replace(tracker.active_loop) if tracker.active_loop is not None else None
    out.model_id = tracker.model_id
    out.assistant_id = tracker.assistant_id
    return out


def _copy_slot(slot: Any) -> Any:
    """``copy.copy(slot)`` for Rasa's slot classes (plain objects: a new instance with the same attribute dict),
    without the copy module's generic protocol."""
    cls = type(slot)
    plain = _PLAIN.get(cls)
    if plain is None:
        plain = _PLAIN[cls] = _is_plain(cls)
    if not plain:
        return copy.copy(slot)
    out = cls.__new__(cls)
    out.__dict__.update(slot.__dict__)
    return out


_PLAIN: Dict[type, bool] = {}


class _SlotCopier:
    """Stands in for the ``copy`` module in ``rasa.shared.core.trackers``, whose only use of it is
    ``copy.copy(slot)`` in ``DialogueStateTracker.__init__``."""

    copy = staticmethod(_copy_slot)


def _is_plain(cls: type) -> bool:
    """Whether ``copy.copy`` of an instance is a new instance with a copy of its ``__dict__`` and nothing else."""
    special = ("__copy__", "__reduce__", "__reduce_ex__", "__getstate__", "__setstate__", "__new__")
    for klass in cls.__mro__:
        if klass is object:
            continue
        if any(name in vars(klass) for name in special) or vars(klass).get("__slots__"):
            return False
    return True


def _same_prefix(known: Any, events: Any, n: int) -> bool:
    """Whether the first ``n`` items of ``events`` are the very objects of the first ``n`` of ``known``."""
    if len(events) < n:
        return False
    return all(a is b for a, b in zip(islice(known, n), islice(events, n)))


def _memo(tracker: DialogueStateTracker) -> Dict[Any, Any]:
    memo = tracker.__dict__.get(MEMO_ATTRIBUTE)
    if memo is None:
        memo = tracker.__dict__[MEMO_ATTRIBUTE] = {}
    return memo


# --- copy() -------------------------------------------------------------------------------------------------------

def incremental_copy(tracker: DialogueStateTracker) -> DialogueStateTracker:
    """``tracker.copy()``: the tracker that applying all of ``tracker``'s events to ``tracker.init_copy()`` gives."""
    if type(tracker.slots) is not dict:
        return _rasa_copy(tracker)
    memo = _memo(tracker)
    replay: Optional[DialogueStateTracker] = memo.get("copy")
    events = tracker.events
    if (replay is None or replay._max_event_history != tracker._max_event_history
            or not _same_prefix(replay.events, events, len(replay.events))):
        stats["copy_replays"] += 1
        replay = _rasa_copy(tracker)
    else:
        stats["copy_resumed"] += 1
        try:
            for event in islice(events, len(replay.events), None):
                replay.update(event)
        except Exception:
            memo.pop("copy", None)
            raise
    memo["copy"] = replay
    return clone(replay)


# --- applied_events() ------------------------------------------------------------------------------------------

@dataclass
class _AppliedMemo:
    events: List[Event]  # the tracker's events that were processed
    loop_names: frozenset
    applied: List[Event]


def incremental_applied_events(tracker: DialogueStateTracker) -> List[Event]:
    """``tracker.applied_events()``: the events minus those undone, resumed after the events already processed as
    long as no new loop name appeared (a new ``ActiveLoop`` changes how the earlier runs of that action count)."""
    events = tracker.events
    memo = _memo(tracker)
    previous: Optional[_AppliedMemo] = memo.get("applied")
    if previous is not None and _same_prefix(previous.events, events, len(previous.events)):
        new_events = list(islice(events, len(previous.events), None))
        new_loops = {e.name for e in new_events if isinstance(e, ActiveLoop) and e.name}
        if new_loops <= previous.loop_names:
            stats["applied_resumed"] += 1
            applied = list(previous.applied)
            _apply_events(tracker, new_events, previous.loop_names, applied)
            memo["applied"] = _AppliedMemo(list(events), previous.loop_names, applied)
            return list(applied)
    stats["applied_replays"] += 1
    all_events = list(events)
    loop_names = frozenset(e.name for e in all_events if isinstance(e, ActiveLoop) and e.name)
    applied = []
    _apply_events(tracker, all_events, loop_names, applied)
    memo["applied"] = _AppliedMemo(all_events, loop_names, applied)
    return list(applied)


def _apply_events(tracker: DialogueStateTracker, events: List[Event], loop_names: frozenset,
                  applied: List[Event]) -> None:
    # the loop of Rasa 3.6's DialogueStateTracker.applied_events, continuing ``applied`` in place
    for event in events:
        if isinstance(event, (Restarted, SessionStarted)):
            applied.clear()
        elif isinstance(event, ActionReverted):
            tracker._undo_till_previous(ActionExecuted, applied)
        elif isinstance(event, UserUtteranceReverted):
            tracker._undo_till_previous(UserUttered, applied)
            tracker._undo_till_previous(ActionExecuted, applied)
        elif (isinstance(event, ActionExecuted) and event.action_name in loop_names
              and not tracker._first_loop_execution_or_unhappy_path(event.action_name, applied)):
            tracker._undo_till_previous_loop_execution(event.action_name, applied)
        else:
            applied.append(event)


# --- states_for_tracker_history ----------------------------------------------------------------------------------

@dataclass
class _Checkpoint:
    index: int  # position in the applied events of the ActionExecuted about to be replayed
    tracker: DialogueStateTracker  # the replay tracker before it (applied events [0, index))
    n_states: int
    last_ml_action_sub_state: Any
    turn_was_hidden: bool


@dataclass
class _StatesMemo:
    domain: Domain
    applied: List[Event]
    states: List[Dict]
    checkpoints: List[_Checkpoint] = field(default_factory=list)


def _copy_states(states: List[Dict]) -> List[Dict]:
    """Two levels deep (sub-state values are strings and tuples), keeping which sub-states are one object: callers
    change the last state's user sub-state in place, and Rasa's states share it with the state before."""
    copies: Dict[int, Dict] = {}
    out = []
    for state in states:
        new = {}
        for key, sub in state.items():
            found = copies.get(id(sub))
            if found is None:
                found = copies[id(sub)] = dict(sub) if isinstance(sub, dict) else sub
            new[key] = found
        out.append(new)
    return out


def incremental_states(domain: Domain, tracker: DialogueStateTracker, omit_unset_slots: bool = False,
                       ignore_rule_only_turns: bool = False,
                       rule_only_data: Optional[Dict[Text, Any]] = None) -> List[Dict]:
    """``domain.states_for_tracker_history(tracker, ...)``, resumed from the last valid checkpoint."""
    if type(tracker.slots) is not dict:
        return _rasa_states(domain, tracker, omit_unset_slots, ignore_rule_only_turns, rule_only_data)
    memo_key: Tuple = ("states", omit_unset_slots, ignore_rule_only_turns, _freeze(rule_only_data))
    memo = _memo(tracker)
    applied = tracker.applied_events()
    previous: Optional[_StatesMemo] = memo.get(memo_key)
    start: Optional[_Checkpoint] = None
    if previous is not None and previous.domain is domain:
        for checkpoint in reversed(previous.checkpoints):
            if _same_prefix(previous.applied, applied, checkpoint.index + 1):
                start = checkpoint
                break
    stats["states_replays" if start is None else "states_resumed"] += 1
    if start is None:
        tr = tracker.init_copy()
        states: List[Dict] = []
        last_ml_action_sub_state = None
        turn_was_hidden = False
        position = 0
        checkpoints: List[_Checkpoint] = []
    else:
        tr = clone(start.tracker)
        states = previous.states[:start.n_states]
        last_ml_action_sub_state = start.last_ml_action_sub_state
        turn_was_hidden = start.turn_was_hidden
        position = start.index
        checkpoints = [c for c in previous.checkpoints if c.index <= start.index]
    memo.pop(memo_key, None)  # an exception below leaves no half-built memo behind

    def state_of(tr: DialogueStateTracker, hide_rule_turn: bool) -> None:
        # Rasa 3.6's Domain.states_for_tracker_history, one step of its loop
        nonlocal last_ml_action_sub_state, turn_was_hidden
        if ignore_rule_only_turns:
            if not turn_was_hidden:
                last_ml_action_sub_state = domain._get_prev_action_sub_state(tr)
            if not tr.followup_action and not tr.latest_action_name == tr.active_loop_name:
                turn_was_hidden = hide_rule_turn
            if turn_was_hidden:
                return
        state = domain.get_active_state(tr, omit_unset_slots=omit_unset_slots)
        if ignore_rule_only_turns:
            domain._remove_rule_only_features(state, rule_only_data)
            if states:
                domain._substitute_rule_only_user_input(state, states[-1])
            if last_ml_action_sub_state:
                state[PREVIOUS_ACTION] = last_ml_action_sub_state
        states.append(domain._clean_state(state))

    # Rasa's DialogueStateTracker.generate_all_prior_trackers: a state before each ActionExecuted, and one at the end
    # one new checkpoint per call, before the last ActionExecuted: a conversation's next calls resume from there, or
    # (a form's next turn undoes the events after its last run) from a checkpoint an earlier call left
    last_action = next((i for i in range(len(applied) - 1, position - 1, -1)
                        if isinstance(applied[i], ActionExecuted)), None)
    for index in range(position, len(applied)):
        event = applied[index]
        if isinstance(event, ActionExecuted):
            if index == last_action and (not checkpoints or checkpoints[-1].index < index):
                checkpoints.append(_Checkpoint(index, clone(tr), len(states), last_ml_action_sub_state,
                                               turn_was_hidden))
            state_of(tr, event.hide_rule_turn)
        tr.update(event)
    final_states = list(states)
    state_of(tr, False)
    memo[memo_key] = _StatesMemo(domain, applied, final_states, checkpoints[-MAX_CHECKPOINTS:])
    return _copy_states(states)


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple, set, frozenset)):
        return tuple(_freeze(v) for v in value)
    return value


# --- installation --------------------------------------------------------------------------------------------------

def _verified_copy(tracker: DialogueStateTracker) -> DialogueStateTracker:
    ours = incremental_copy(tracker)
    theirs = _rasa_copy(tracker)
    if snapshot(ours) != snapshot(theirs):
        mismatches["copy"] += 1
        logger.error("tracker replay mismatch in copy() of %s", tracker.sender_id)
        return theirs
    return ours


def _verified_applied(tracker: DialogueStateTracker) -> List[Event]:
    ours = incremental_applied_events(tracker)
    theirs = _rasa_applied(tracker)
    if len(ours) != len(theirs) or any(a is not b for a, b in zip(ours, theirs)):
        mismatches["applied"] += 1
        logger.error("tracker replay mismatch in the applied events of %s", tracker.sender_id)
        return theirs
    return ours


def _verified_states(domain: Domain, tracker: DialogueStateTracker, omit_unset_slots: bool = False,
                     ignore_rule_only_turns: bool = False, rule_only_data: Optional[Dict[Text, Any]] = None) -> List:
    ours = incremental_states(domain, tracker, omit_unset_slots, ignore_rule_only_turns, rule_only_data)
    theirs = _rasa_states(domain, tracker, omit_unset_slots, ignore_rule_only_turns, rule_only_data)
    if ours != theirs:
        mismatches["states"] += 1
        logger.error("tracker replay mismatch in the states of %s", tracker.sender_id)
        return theirs
    return ours


def snapshot(tracker: DialogueStateTracker) -> Dict[Text, Any]:
    """Everything a replay sets on a tracker, comparable with ``==`` (slots by their attributes)."""
    out = {key: value for key, value in vars(tracker).items() if key not in ("slots", "events", MEMO_ATTRIBUTE)}
    out["slots"] = {name: vars(slot) for name, slot in tracker.slots.items()}
    out["events"] = [id(event) for event in tracker.events]
    out["events_maxlen"] = tracker.events.maxlen
    return out


def install_incremental_replays(verify: Optional[bool] = None) -> None:
    """Patch ``DialogueStateTracker.copy`` and ``Domain.states_for_tracker_history`` (once)."""
    global _rasa_copy, _rasa_states, _rasa_applied
    if _rasa_copy is not None:
        return
    if verify is None:
        verify = os.environ.get(VERIFY_ENV, "") not in ("", "0", "false")
    _rasa_copy = DialogueStateTracker.copy
    _rasa_states = Domain.states_for_tracker_history
    _rasa_applied = DialogueStateTracker.applied_events
    # every new tracker (a copy, a replay, a tracker built from stored events) copies each of the domain's slots with
    # copy.copy - ~3 % of a worker's CPU under load; the module's one use of ``copy``
    rasa.shared.core.trackers.copy = _SlotCopier
    if verify:
        logger.warning("%s: every tracker copy and dialogue-state history is checked against Rasa's own replay",
                       VERIFY_ENV)
    DialogueStateTracker.copy = _verified_copy if verify else incremental_copy
    Domain.states_for_tracker_history = _verified_states if verify else incremental_states
    DialogueStateTracker.applied_events = _verified_applied if verify else incremental_applied_events


def uninstall_incremental_replays() -> None:
    global _rasa_copy, _rasa_states, _rasa_applied
    if _rasa_copy is None:
        return
    DialogueStateTracker.copy = _rasa_copy
    Domain.states_for_tracker_history = _rasa_states
    DialogueStateTracker.applied_events = _rasa_applied
    rasa.shared.core.trackers.copy = copy
    _rasa_copy = _rasa_states = _rasa_applied = None
