"""Tracker-store cost per message: Rasa's own ``SQLTrackerStore`` against ``nlu.privacy.MaskingSQLTrackerStore``.

Runs in the **Rasa environment** (Python 3.10), from the repository root:

    PYTHONPATH=. .venv/rasa/bin/python -m benchmarks.tracker_store_bench [--turns 30] [--pg-host 127.0.0.1] [--out F]

The Rasa server retrieves the conversation before and saves it after every message; this replays that cycle for one
conversation of ``--turns`` turns (6 events each, realistic parse data) next to 50 other conversations in the table,
on SQLite (the embedded default) and, when reachable, PostgreSQL (a fresh database, dropped afterwards). Prints JSON:
retrieve and save p50 / mean per store and backend; ``MaskingSQLTrackerStore`` with and without its tracker cache
(``nlu/tracker_cache.py``: one worker, so every retrieve after the first save is served from the cache).
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.report import emit  # noqa: E402


def turn_events(i: int) -> list:
    from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered

    text = f"我家楼下饭馆油烟太大，开窗就是一股味，第{i}次反映了"
    intent = {"name": "inform", "confidence": 0.98}
    parse = {"text": text, "intent": intent, "entities": [],
             "intent_ranking": [{"name": f"intent_{k}", "confidence": 0.01} for k in range(10)]}
    return [UserUttered(text, intent, [], parse), ActionExecuted("intake_form"), SlotSet("description", text),
            SlotSet("requested_slot", "address"), BotUttered("问题发生在什么位置？", {"elements": None}),
            ActionExecuted("action_listen")]


async def replay(store, domain, turns: int) -> dict:
    from rasa.shared.core.events import ActionExecuted, SessionStarted
    from rasa.shared.core.trackers import DialogueStateTracker

    def fresh(sender: str) -> DialogueStateTracker:
        start = [ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen")]
        return DialogueStateTracker.from_events(sender, start, domain.slots)

    for k in range(50):  # other conversations in the same table
        other = fresh(f"other-{k}")
        for i in range(6):
            for event in turn_events(i):
                other.update(event)
        await store.save(other)
    await store.save(fresh("citizen"))
    retrieve, save = [], []
    for i in range(turns):
        t0 = time.perf_counter()
        tracker = await store.retrieve("citizen")
        retrieve.append(time.perf_counter() - t0)
        for event in turn_events(i):
            tracker.update(event)
        t0 = time.perf_counter()
        await store.save(tracker)
        save.append(time.perf_counter() - t0)

    def ms(values: list) -> dict:
        return {"p50_ms": round(statistics.median(values) * 1000, 2), "mean_ms": round(statistics.mean(values) * 1000, 2)}

    return {"retrieve": ms(retrieve), "save": ms(save), "events_at_end": len(tracker.events)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tracker_store_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--pg-host", default="127.0.0.1", help="PostgreSQL host (port 5432, user postgres); 'none' skips")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain

    from nlu.privacy import MaskingSQLTrackerStore

    domain = Domain.load(str(ROOT / "bot" / "domain.yml"))
    stores = {"rasa SQLTrackerStore": (SQLTrackerStore, {}),
              "MaskingSQLTrackerStore without its tracker cache": (MaskingSQLTrackerStore, {"tracker_cache_size": 0}),
              "MaskingSQLTrackerStore": (MaskingSQLTrackerStore, {})}
    results: dict = {"benchmark": "tracker_store", "turns": args.turns, "sqlite": {}, "postgresql": None}
    with tempfile.TemporaryDirectory(prefix="tracker_bench_") as tmp:
        for name, (cls, options) in stores.items():
            store = cls(domain, dialect="sqlite", db=str(Path(tmp) / f"{uuid.uuid4().hex[:8]}.db"), **options)
            results["sqlite"][name] = asyncio.run(replay(store, domain, args.turns))
    if args.pg_host != "none":
        try:
            import psycopg2

            admin = psycopg2.connect(host=args.pg_host, port=5432, user="postgres", dbname="test", connect_timeout=3)
        except Exception as exc:  # noqa: BLE001 - unreachable: reported, not fatal
            results["postgresql"] = f"unreachable: {exc}"
        else:
            admin.autocommit = True
            results["postgresql"] = {}
            for name, (cls, options) in stores.items():
                db = f"jsjb_bench_{uuid.uuid4().hex[:10]}"
                with admin.cursor() as cur:
                    cur.execute(f'CREATE DATABASE "{db}"')
                try:
                    store = cls(domain, dialect="postgresql", host=args.pg_host, port=5432, username="postgres", db=db,
                                **options)
                    results["postgresql"][name] = asyncio.run(replay(store, domain, args.turns))
                    store.engine.dispose()
                finally:
                    with admin.cursor() as cur:
                        cur.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            admin.close()
    emit(results, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
