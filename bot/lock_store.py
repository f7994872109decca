"""``bot.lock_store.AtomicRedisLockStore``: the per-conversation lock of several Rasa workers, in Redis, atomically.

Rasa processes one conversation's messages one after the other by a ticket lock: each message draws a ticket and
waits until it is first in line. Rasa's own ``RedisLockStore`` keeps that lock as one JSON value and changes it by
read - modify - write from the client, with the blocking ``redis`` client, on the server's event loop:

- about seven round trips per message (draw: GET + SET; wait: GET; finish: GET + SET; clean-up: GET + DEL), and the
  worker's event loop stands still during each - ~10 % of a Rasa worker's time under the 20-citizen load (py-spy,
  ``benchmarks/README.md``);
- two workers drawing a ticket for the same conversation at the same moment can both read the same lock and write
  back the same ticket number, and then answer two messages of one conversation at once.

Here the lock is three Redis keys per conversation - a counter, the queue of waiting tickets (a sorted set) and
their deadlines (a hash) - changed only by Lua scripts, which Redis runs atomically. A message costs three round
trips on the ``redis.asyncio`` client (draw, "am I first?", finish) and never blocks the event loop. A ticket whose
holder died is dropped once its lifetime has passed (``TICKET_LOCK_LIFETIME``, as in Rasa), the next in line goes on,
and a message whose own ticket expired while waiting gets Rasa's ``LockError``. Deadlines are read from Redis's
clock (``TIME``), so workers on different hosts need not agree on the time. Keys carry the conversation in a
``{hash tag}`` so that all three live on the same node of a Redis cluster.

endpoints.yml (``scripts/system.py`` writes it for ``JSJB_RASA_LOCK_STORE_URL``)::

    lock_store:
      type: bot.lock_store.AtomicRedisLockStore
      url: 127.0.0.1
      port: 6379
      db: 1
      key_prefix: jsjb        # letters and digits
      # password: ..., use_ssl: true, poll_interval: 0.01
"""
from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import AsyncGenerator, Optional, Text

import redis.asyncio as aioredis
from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, LockStore
from rasa.utils.endpoints import EndpointConfig

logger = logging.getLogger(__name__)

# KEYS: counter, queue, deadlines; ARGV: lifetime in ms. Returns the new ticket.
DRAW = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local ticket = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], ticket, ticket)
redis.call('HSET', KEYS[3], ticket, now_ms + tonumber(ARGV[1]))
local keep = tonumber(ARGV[1]) * 2 + 60000
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], keep) end
return ticket
"""

# KEYS: queue, deadlines; ARGV: ticket. 1 = first in line, 0 = wait, -1 = the ticket expired.
FIRST_IN_LINE = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return -1 end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
while true do
  local head = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
  if head == ARGV[1] then return 1 end
  local deadline = tonumber(redis.call('HGET', KEYS[2], head) or '0')
  if deadline > now_ms then return 0 end
  redis.call('ZREM', KEYS[1], head)
  redis.call('HDEL', KEYS[2], head)
end
"""

# KEYS: counter, queue, deadlines; ARGV: ticket. Removes the ticket; the keys go when nobody waits.
FINISH = """
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
if redis.call('ZCARD', KEYS[2]) == 0 then redis.call('DEL', KEYS[1], KEYS[2], KEYS[3]) end
return 1
"""


class AtomicRedisLockStore(LockStore):
    """Ticket locks in Redis, changed by atomic scripts over an asyncio client (see the module docstring)."""

    def __init__(self, endpoint_config: Optional[EndpointConfig] = None, *, host: Text = "localhost",
                 port: int = 6379, db: int = 1, password: Optional[Text] = None, use_ssl: bool = False,
                 key_prefix: Optional[Text] = None, poll_interval: float = 0.01,
                 socket_timeout: float = 10.0) -> None:
        if endpoint_config is not None:
            kwargs = dict(endpoint_config.kwargs)
            host = endpoint_config.url or host
            port, db = int(kwargs.get("port", port)), int(kwargs.get("db", db))
            password, use_ssl = kwargs.get("password", password), bool(kwargs.get("use_ssl", use_ssl))
            key_prefix = kwargs.get("key_prefix", key_prefix)
            poll_interval = float(kwargs.get("poll_interval", poll_interval))
            socket_timeout = float(kwargs.get("socket_timeout", socket_timeout))
        if key_prefix is not None and not (isinstance(key_prefix, str) and key_prefix.isalnum()):
            raise ValueError(f"lock_store key_prefix must be letters and digits only, not {key_prefix!r}")
        self.key_prefix = f"{key_prefix}:lock:" if key_prefix else "lock:"
        self.poll_interval = poll_interval
        self.red = aioredis.Redis(host=host, port=port, db=db, password=password, ssl=use_ssl,
                                  socket_timeout=socket_timeout)
        self._draw = self.red.register_script(DRAW)
        self._first_in_line = self.red.register_script(FIRST_IN_LINE)
        self._finish = self.red.register_script(FINISH)
        super().__init__()

    def keys(self, conversation_id: Text) -> list[str]:
        """The conversation's counter, queue and deadlines keys."""
        base = f"{self.key_prefix}{{{conversation_id}}}"
        return [f"{base}:next", f"{base}:queue", f"{base}:deadlines"]

    async def draw_ticket(self, conversation_id: Text, lock_lifetime: float = LOCK_LIFETIME) -> int:
        return int(await self._draw(keys=self.keys(conversation_id), args=[int(lock_lifetime * 1000)]))

    async def is_first_in_line(self, conversation_id: Text, ticket: int) -> bool:
        """True when the ticket may go; LockError when it expired while waiting."""
        state = int(await self._first_in_line(keys=self.keys(conversation_id)[1:], args=[ticket]))
        if state < 0:
            raise LockError(f"Could not acquire lock for conversation_id '{conversation_id}': the ticket expired.")
        return state == 1

    async def finish(self, conversation_id: Text, ticket: int) -> None:
        await self._finish(keys=self.keys(conversation_id), args=[ticket])

    @asynccontextmanager
    async def lock(self, conversation_id: Text, lock_lifetime: float = LOCK_LIFETIME,
                   wait_time_in_seconds: float = 1) -> AsyncGenerator[TicketLock, None]:
        """Wait for the conversation's turn, polling every ``min(wait_time_in_seconds, poll_interval)`` seconds."""
        try:
            ticket = await self.draw_ticket(conversation_id, lock_lifetime)
        except Exception as error:  # noqa: BLE001 - Rasa's contract: a lock store failure is a LockError
            raise LockError(f"Error while acquiring lock. Error:\n{error}") from error
        try:
            wait = min(wait_time_in_seconds, self.poll_interval)
            while not await self.is_first_in_line(conversation_id, ticket):
                await asyncio.sleep(wait)
            logger.debug("Acquired lock for conversation '%s' (ticket %d).", conversation_id, ticket)
            yield TicketLock(conversation_id)
        finally:
            await self.finish(conversation_id, ticket)

    # Rasa's read-modify-write interface: not used, because ``lock`` above replaces the whole protocol.
    def get_lock(self, conversation_id: Text) -> Optional[TicketLock]:
        raise NotImplementedError("AtomicRedisLockStore changes its locks only through lock()")

    def delete_lock(self, conversation_id: Text) -> None:
        raise NotImplementedError("AtomicRedisLockStore changes its locks only through lock()")

    def save_lock(self, lock: TicketLock) -> None:
        raise NotImplementedError("AtomicRedisLockStore changes its locks only through lock()")

    async def close(self) -> None:
        await self.red.close()  # redis 4.6 (requirements/rasa.lock): close(); aclose() only exists from 5.0.1
