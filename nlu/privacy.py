"""``nlu.privacy.MaskingSQLTrackerStore``: Rasa's SQL tracker store that never stores an ID-card number.

Before a conversation is saved (and streamed to an event broker), every ID-card number in the citizen's messages
— the raw text, the normalised text of the parse data — is replaced by its masked form (``110***********1234``).
The bot never needs the number (it asks citizens not to send it); slots never contain it either (see actions/).
Configure it in endpoints.yml with the same parameters as ``type: SQL``.

On SQLite (the embedded default) it also switches the file to write-ahead logging with ``synchronous=NORMAL``: every
turn saves the conversation, and a full fsync per commit was a visible share of the Rasa server's time under load
(``benchmarks/README.md``). A crash can lose at most the last turns, never corrupt the file; PostgreSQL is unchanged.
Its connections are pooled (Rasa opens a SQLite file afresh for every read and write).

Retrieve and save run Rasa's own queries in SQLAlchemy Core (the ``data`` column alone read, one multi-row insert)
instead of ORM objects: the same rows and trackers (``tests/bot/test_nlu_components.py`` compares them with Rasa's
store on SQLite and PostgreSQL) at 60–85 % of the cost on SQLite and about half on PostgreSQL
(``benchmarks/tracker_store_bench.py``).

It keeps the trackers it saved and reuses them at the next retrieve once one aggregate query has shown that the
database holds the same session (or only new events, which are then applied): ``nlu/tracker_cache.py``. Set
``tracker_cache_size`` in endpoints.yml (default 500 conversations per Rasa worker; 0 turns it off).
"""
from __future__ import annotations

import json
from functools import cached_property
from typing import Any, Dict, List, Optional, Text

from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import SessionStarted, UserUttered, deserialise_events
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY
from sqlalchemy import bindparam, create_engine, event, func, or_, select
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import QueuePool

from nlu.patterns import mask_ids_in_text
from nlu.tracker_cache import DEFAULT_SIZE, SessionStamp, TrackerCache


def mask_user_event(event: UserUttered) -> bool:
    """Masks ID-card numbers in a user event in place; True when something was masked."""
    changed = False
    if event.text:
        masked = mask_ids_in_text(event.text)
        changed = masked != event.text
        event.text = masked
    parse_text: Any = event.parse_data.get("text")
    if isinstance(parse_text, str):
        masked = mask_ids_in_text(parse_text)
        changed = changed or masked != parse_text
        event.parse_data["text"] = masked
    return changed


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class MaskingSQLTrackerStore(SQLTrackerStore):
    def __init__(self, *args: Any, tracker_cache_size: int = DEFAULT_SIZE, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tracker_cache = TrackerCache(tracker_cache_size)
        if self.engine.dialect.name == "sqlite":
            # Rasa's engine for a SQLite file has no pool (SQLAlchemy 1.4's NullPool): every retrieve and save opened
            # and closed the file, ~7 % of a Rasa worker's CPU under load. A small pool keeps connections open; the
            # server runs the store on its event-loop thread, and WAL lets other workers' connections read meanwhile.
            url = self.engine.url
            self.engine.dispose()
            self.engine = create_engine(url, poolclass=QueuePool, pool_size=2, max_overflow=8,
                                        connect_args={"check_same_thread": False})
            event.listen(self.engine, "connect", _sqlite_pragmas)
            self.sessionmaker = sessionmaker(bind=self.engine)

    # Rasa's SQLTrackerStore reads and writes events through ORM objects: ~4 ms to retrieve and ~4 ms to save a
    # conversation of 70 events on this machine, a third of the Rasa process's time under load. The same queries in
    # SQLAlchemy Core (only the ``data`` column read, one multi-row insert) give the same trackers and rows. They are
    # built once with the conversation as a bound parameter: building the session query anew took 0.85 ms per
    # execution, running the built one 0.1 ms (SQLite, this machine).

    def _session_events(self, fetch_events_from_all_sessions: bool, *columns: Any) -> Any:
        """Rasa's ``_event_query`` (events of the latest session, or of all sessions) as a Core select of the
        conversation ``:sender_id``."""
        table = self.SQLEvent.__table__
        sender_id = bindparam("sender_id")
        query = select(*columns).where(table.c.sender_id == sender_id)
        if not fetch_events_from_all_sessions:
            session_start = (
                select(func.max(table.c.timestamp))
                .where(table.c.sender_id == sender_id, table.c.type_name == SessionStarted.type_name)
                .scalar_subquery()
            )
            query = query.where(or_(table.c.timestamp >= session_start, session_start.is_(None)))
        return query

    @cached_property
    def _queries(self) -> Dict[str, Any]:
        table = self.SQLEvent.__table__
        return {
            "stamp": self._session_events(False, func.count(table.c.id), func.max(table.c.id)),
            "session": self._session_events(False, table.c.data).order_by(table.c.id),
            "all_sessions": self._session_events(True, table.c.data).order_by(table.c.id),
            "appended": select(table.c.type_name, table.c.data)
            .where(table.c.sender_id == bindparam("sender_id"), table.c.id > bindparam("after_id"))
            .order_by(table.c.id),
            "insert": table.insert(),
        }

    def _stamp(self, session: Any, sender_id: Text) -> SessionStamp:
        count, max_id = session.execute(self._queries["stamp"], {"sender_id": sender_id}).one()
        return SessionStamp(count, max_id)

    async def _retrieve(self, sender_id: Text,
                        fetch_events_from_all_sessions: bool) -> Optional[DialogueStateTracker]:
        cached = None if fetch_events_from_all_sessions else self.tracker_cache.take(sender_id)
        with self.session_scope() as session:
            if cached is not None and self.domain:
                tracker = self._brought_up_to_date(session, sender_id, cached.tracker, cached.stamp)
                if tracker is not None:
                    return tracker
            query = self._queries["all_sessions" if fetch_events_from_all_sessions else "session"]
            events = [json.loads(data) for data in session.execute(query, {"sender_id": sender_id}).scalars()]
        self.tracker_cache.misses += not fetch_events_from_all_sessions
        if self.domain and events:
            return DialogueStateTracker.from_dict(sender_id, events, self.domain.slots)
        return None

    def _brought_up_to_date(self, session: Any, sender_id: Text, tracker: DialogueStateTracker,
                            kept: SessionStamp) -> Optional[DialogueStateTracker]:
        """``tracker`` as the database now holds the session, or None where only a full replay can tell."""
        if len(tracker.events) != kept.count:  # changed after it was saved
            return None
        now = self._stamp(session, sender_id)
        if now == kept:
            self.tracker_cache.hits += 1
            return tracker
        if kept.max_id is None or now.max_id is None or now.max_id < kept.max_id:
            return None
        rows = session.execute(self._queries["appended"], {"sender_id": sender_id, "after_id": kept.max_id}).all()
        if kept.count + len(rows) != now.count or any(r.type_name == SessionStarted.type_name for r in rows):
            return None  # not just appended to this session
        for event in deserialise_events([json.loads(r.data) for r in rows]):
            tracker.update(event)  # as DialogueStateTracker.from_dict applies every event
        self.tracker_cache.updates += 1
        return tracker

    async def save(self, tracker: DialogueStateTracker) -> None:
        for event in tracker.events:
            if isinstance(event, UserUttered):
                mask_user_event(event)
        await self.stream_events(tracker)
        with self.session_scope() as session:
            stored = self._stamp(session, tracker.sender_id).count
            rows: List[Dict[str, Any]] = []
            for event in list(tracker.events)[stored:]:
                data = event.as_dict()
                rows.append({
                    "sender_id": tracker.sender_id, "type_name": event.type_name,
                    "timestamp": data.get("timestamp"), "action_name": data.get("name"),
                    "intent_name": data.get("parse_data", {}).get("intent", {}).get(INTENT_NAME_KEY),
                    "data": json.dumps(data),
                })
            if rows:
                session.execute(self._queries["insert"], rows)
            session.commit()
            if self.tracker_cache.size:
                stamp = self._stamp(session, tracker.sender_id)
                if stamp.count == len(tracker.events):  # the tracker is exactly the stored session
                    self.tracker_cache.keep(tracker.sender_id, tracker, stamp)
