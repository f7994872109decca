"""``nlu.privacy.MaskingSQLTrackerStore``: Rasa's SQL tracker store that never stores an ID-card number.

Before a conversation is saved (and streamed to an event broker), every ID-card number in the citizen's messages
— the raw text, the normalised text of the parse data — is replaced by its masked form (``110***********1234``).
The bot never needs the number (it asks citizens not to send it); slots never contain it either (see actions/).
Configure it in endpoints.yml with the same parameters as ``type: SQL``.

On SQLite (the embedded default) it also switches the file to write-ahead logging with ``synchronous=NORMAL``: every
turn saves the conversation, and a full fsync per commit was a visible share of the Rasa server's time under load
(``benchmarks/README.md``). A crash can lose at most the last turns, never corrupt the file; PostgreSQL is unchanged.
"""
from __future__ import annotations

from typing import Any

from rasa.core.tracker_store import SQLTrackerStore
from sqlalchemy import event
from rasa.shared.core.events import UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from nlu.patterns import mask_ids_in_text


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
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            self.engine.dispose()  # connections opened while creating the tables get the pragmas on reconnect

    async def save(self, tracker: DialogueStateTracker) -> None:
        for event in tracker.events:
            if isinstance(event, UserUttered):
                mask_user_event(event)
        await super().save(tracker)
