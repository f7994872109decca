"""The tracker store's cache (nlu/tracker_cache.py) never changes what a turn sees: after every turn of every
conversation test, the tracker it hands out has the events, slots and dialogue states of a full replay from the
database - with one worker, with two workers taking turns on one conversation, when another worker starts a new
session, and when a tracker was changed after its save. On SQLite and on the real PostgreSQL server."""
from __future__ import annotations

import asyncio
import copy
import time
from pathlib import Path

import pytest

pytest.importorskip("rasa")

from rasa.shared.core.domain import Domain  # noqa: E402
from rasa.shared.core.events import ActionExecuted, SessionStarted, SlotSet, UserUttered  # noqa: E402
from rasa.shared.core.trackers import EventVerbosity  # noqa: E402
from rasa.shared.core.training_data.story_reader.yaml_story_reader import YAMLStoryReader  # noqa: E402

from nlu.privacy import MaskingSQLTrackerStore  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = Domain.load(ROOT / "bot" / "domain.yml")


def _turns(step) -> list[list]:
    """A conversation test's events cut into turns: each turn starts with the citizen's message."""
    turns: list[list] = [[ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen")]]
    for event in step.events:
        if isinstance(event, UserUttered):
            turns.append([])
        turns[-1].append(event)
    if not isinstance(turns[-1][-1], ActionExecuted) or turns[-1][-1].action_name != "action_listen":
        turns[-1].append(ActionExecuted("action_listen"))
    return turns


@pytest.fixture(scope="module")
def conversations():
    steps = []
    for path in sorted((ROOT / "bot" / "tests").glob("*.yml")):
        steps += YAMLStoryReader(DOMAIN).read_from_file(path)
    return [(step.block_name, _turns(step)) for step in steps]


def _store(kwargs: dict, cache: int = 500) -> MaskingSQLTrackerStore:
    return MaskingSQLTrackerStore(DOMAIN, tracker_cache_size=cache, **kwargs)


def _view(tracker) -> tuple:
    """What a turn reads: the events, the slots, and the dialogue states the policies are given."""
    return ([e.as_dict() for e in tracker.events], tracker.current_slot_values(), tracker.active_loop_name,
            tracker.latest_action_name, tracker.is_paused(), tracker.past_states(DOMAIN))


async def _turn(store, sender: str, events: list) -> None:
    """Retrieve, add the turn's events (stamped now, as the server stamps them), save."""
    tracker = await store.get_or_create_tracker(sender, append_action_listen=False)
    for event in events:
        event = copy.copy(event)
        event.timestamp = time.time()
        tracker.update(event)
    await store.save(tracker)


def _same_as_replay(store, reference, sender: str) -> None:
    mine, replay = asyncio.run(store.retrieve(sender)), asyncio.run(reference.retrieve(sender))
    assert _view(mine) == _view(replay), sender
    assert any(isinstance(e, UserUttered) for e in mine.events) or len(mine.events) == 2  # session start only
    asyncio.run(store.save(mine))  # hand it back, as the turn that retrieved it would


def test_every_turn_of_every_conversation_test_sees_what_a_replay_sees(tracker_store_pair, conversations):
    kwargs, _ = tracker_store_pair
    store, reference = _store(kwargs), _store(kwargs, cache=0)
    for name, turns in conversations:
        sender = f"c-{abs(hash(name))}"
        for events in turns:
            asyncio.run(_turn(store, sender, events))
            _same_as_replay(store, reference, sender)
    # two retrieves per turn. Full reads: the first (nothing stored yet) and the one after the session start - the
    # saved tracker also holds action_session_start, which precedes SessionStarted and so is not in the session
    turns = sum(len(t) for _name, t in conversations)
    assert store.tracker_cache.stats()["misses"] == 2 * len(conversations)
    assert store.tracker_cache.stats()["hits"] == 2 * turns - 2 * len(conversations)
    assert reference.tracker_cache.stats()["hits"] == 0


def test_two_workers_taking_turns_see_each_others_events(tracker_store_pair, conversations):
    kwargs, _ = tracker_store_pair
    workers, reference = (_store(kwargs), _store(kwargs)), _store(kwargs, cache=0)
    name, turns = max(conversations, key=lambda c: len(c[1]))
    for i, events in enumerate(turns):  # behind the lock store, one worker at a time
        asyncio.run(_turn(workers[i % 2], "shared", events))
        mine = asyncio.run(workers[(i + 1) % 2].retrieve("shared"))
        assert _view(mine) == _view(asyncio.run(reference.retrieve("shared"))), (name, i)
        asyncio.run(workers[(i + 1) % 2].save(mine))
    assert sum(w.tracker_cache.updates for w in workers) >= len(turns) - 2  # only the new events were read


def test_a_session_started_by_another_worker_is_not_missed(tracker_store_pair):
    kwargs, _ = tracker_store_pair
    first, second, reference = _store(kwargs), _store(kwargs), _store(kwargs, cache=0)
    asyncio.run(_turn(first, "c", [ActionExecuted("action_session_start"), SessionStarted(),
                                    ActionExecuted("action_listen"), UserUttered("暖气不热", {"name": "inform"}),
                                    SlotSet("description", "暖气不热"), ActionExecuted("action_listen")]))
    asyncio.run(_turn(first, "c", [UserUttered("在丰台区方庄", {"name": "inform"}), ActionExecuted("action_listen")]))
    assert len(first.tracker_cache) == 1  # kept after its second turn
    asyncio.run(_turn(second, "c", [ActionExecuted("action_session_start"), SessionStarted(),
                                     ActionExecuted("action_listen"), UserUttered("你好", {"name": "greet"}),
                                     ActionExecuted("action_listen")]))
    misses = first.tracker_cache.misses
    tracker = asyncio.run(first.retrieve("c"))
    assert _view(tracker) == _view(asyncio.run(reference.retrieve("c")))
    assert tracker.get_slot("description") is None and len(tracker.events) == 4  # the new session only
    assert first.tracker_cache.misses == misses + 1


def test_a_tracker_changed_after_its_save_is_read_again(tracker_store_pair):
    kwargs, _ = tracker_store_pair
    store = _store(kwargs)
    asyncio.run(_turn(store, "c", [ActionExecuted("action_listen"), UserUttered("路灯坏了", {"name": "complain"}),
                                   ActionExecuted("action_listen")]))
    kept = asyncio.run(store.retrieve("c"))
    asyncio.run(store.save(kept))
    kept.update(SlotSet("description", "没有保存的修改"))  # a caller that changes the tracker and never saves
    again = asyncio.run(store.retrieve("c"))
    assert again is not kept and again.get_slot("description") is None


def test_the_cache_holds_at_most_its_size(tmp_path):
    store = _store({"dialect": "sqlite", "db": str(tmp_path / "t.db")}, cache=2)
    for sender in ("a", "b", "c"):
        asyncio.run(_turn(store, sender, [ActionExecuted("action_listen")]))
    assert len(store.tracker_cache) == 2
    misses, hits = store.tracker_cache.misses, store.tracker_cache.hits
    assert asyncio.run(store.retrieve("a")) is not None and store.tracker_cache.misses == misses + 1  # dropped
    assert asyncio.run(store.retrieve("c")) is not None and store.tracker_cache.hits == hits + 1  # kept
