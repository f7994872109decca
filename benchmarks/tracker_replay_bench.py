"""Cost of Rasa's per-turn replays of a conversation, as Rasa does them and with ``bot.tracker_replay``.

Runs in the **Rasa environment** (Python 3.10), from the repository root:

    PYTHONPATH=. .venv/rasa/bin/python -m benchmarks.tracker_replay_bench [--turns 10,30,60] [--out F]

A conversation is grown event by event from the bot's own training stories (a story after another, forms and all)
on one live tracker, as in the server. After each event it times what a Rasa worker does for each predicted action:
``tracker.copy()`` (before running an action), ``applied_events()``, and the dialogue states of RulePolicy and of
MemoizationPolicy (``past_states``). Prints JSON: microseconds per event step for Rasa's code and for the incremental
replays, at the conversation lengths asked for (in user turns), and the speed-up.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.report import emit  # noqa: E402
RULE_ONLY = {"slots": ["dialogue_stage"], "loops": []}


def conversation(domain, turns: int) -> list:
    from rasa.core.training import load_data
    from rasa.shared.core.events import UserUttered

    stories = [list(t.events) for t in load_data(str(ROOT / "bot" / "data"), domain, augmentation_factor=0,
                                                 use_story_concatenation=False)]
    stories = [s for s in stories if any(isinstance(e, UserUttered) for e in s)]
    events, n = [], 0
    while n < turns:
        for story in stories:
            events += story
            n = sum(isinstance(e, UserUttered) for e in events)
            if n >= turns:
                break
    return events


def measure(domain, events: list) -> dict:
    from rasa.shared.core.trackers import DialogueStateTracker

    live = DialogueStateTracker("bench", domain.slots)
    spent = {"copy": 0.0, "applied_events": 0.0, "states": 0.0}
    window = events[len(events) // 2:]  # the second half: the costs at the conversation's length, not from zero
    for event in events[:len(events) // 2]:
        live.update(event)
        live.copy(), live.applied_events(), live.past_states(domain)
    for event in window:
        live.update(event)
        t0 = time.perf_counter()
        live.copy()
        t1 = time.perf_counter()
        live.applied_events()
        t2 = time.perf_counter()
        live.past_states(domain)
        live.past_states(domain, ignore_rule_only_turns=True, rule_only_data=RULE_ONLY)
        t3 = time.perf_counter()
        spent["copy"] += t1 - t0
        spent["applied_events"] += t2 - t1
        spent["states"] += t3 - t2
    out = {key: round(value / len(window) * 1e6, 1) for key, value in spent.items()}
    out["total"] = round(sum(out.values()), 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", default="10,30,60", help="conversation lengths in user turns")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    from rasa.shared.core.domain import Domain

    from bot import tracker_replay

    domain = Domain.load(ROOT / "bot" / "domain.yml")
    results = []
    for turns in (int(t) for t in args.turns.split(",")):
        events = conversation(domain, turns)
        rasa = measure(domain, events)
        tracker_replay.install_incremental_replays(verify=False)
        try:
            ours = measure(domain, events)
        finally:
            tracker_replay.uninstall_incremental_replays()
        results.append({"user_turns": turns, "events": len(events), "rasa_us_per_event": rasa,
                        "incremental_us_per_event": ours,
                        "speed_up": round(rasa["total"] / ours["total"], 1) if ours["total"] else None})
    result = {"benchmark": "tracker_replay", "calls_per_event_step": "copy + applied_events + 2 × past_states",
              "results": results}
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
