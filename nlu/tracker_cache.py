"""Recently saved conversation trackers kept in a Rasa worker, checked against the database before every reuse.

Every turn, Rasa's SQL tracker store reads all events of the conversation's session and replays them into a new
tracker (JSON decoding, event objects, every event applied): ~10 % of a Rasa worker's CPU under the 20-citizen
load (py-spy, ``benchmarks/README.md``). The tracker it then saves is exactly that replay plus the turn's new
events, so the store can keep it and hand it out for the next turn instead - provided the database has not changed
meanwhile. The store therefore keeps, with each tracker, the stamp of its session in the database: the number of
events and the highest event id. At retrieve one aggregate query reads the stamp again:

- unchanged: the kept tracker is the stored conversation, and is handed out;
- only new events appended (another worker took a turn - the lock store lets one worker at a time process a
  conversation): those events are read and applied to the kept tracker, as a replay would apply them;
- anything else (a new session started elsewhere, a tracker changed after its save): full read and replay.

A tracker is handed out once (taken out of the cache) and comes back with its next save, so two callers never
share one object, and a turn that fails before its save leaves nothing stale behind.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Optional, Text

DEFAULT_SIZE = 500  # conversations per Rasa worker; a tracker of 100 events is ~100 kB of Python objects


@dataclass(frozen=True)
class SessionStamp:
    """What the database holds of a conversation's latest session: how many events, and the highest event id."""

    count: int
    max_id: Optional[int]


@dataclass
class CachedTracker:
    tracker: Any  # rasa DialogueStateTracker
    stamp: SessionStamp


class TrackerCache:
    """Least-recently-saved trackers by conversation, at most ``size`` of them (0 turns caching off)."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = max(0, int(size))
        self._entries: "OrderedDict[Text, CachedTracker]" = OrderedDict()
        self.hits = self.updates = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def take(self, sender_id: Text) -> Optional[CachedTracker]:
        """The kept tracker of ``sender_id``, removed from the cache (None when there is none)."""
        return self._entries.pop(sender_id, None)

    def keep(self, sender_id: Text, tracker: Any, stamp: SessionStamp) -> None:
        if self.size == 0:
            return
        self._entries[sender_id] = CachedTracker(tracker, stamp)
        self._entries.move_to_end(sender_id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def stats(self) -> dict:
        return {"size": self.size, "kept": len(self._entries), "hits": self.hits, "updates": self.updates,
                "misses": self.misses}
