"""``bot.lock_store.AtomicRedisLockStore`` against the real Redis server (the production lock store of several Rasa
workers): one conversation's messages go one at a time in arrival order, across workers; other conversations are
not held up; a dead holder's ticket expires; nothing is left in Redis afterwards."""
from __future__ import annotations

import asyncio
import os
import time
import uuid

import pytest

pytest.importorskip("rasa")

from rasa.core.lock_store import LockError, LockStore  # noqa: E402
from rasa.utils.endpoints import EndpointConfig  # noqa: E402

from bot.lock_store import AtomicRedisLockStore  # noqa: E402

REDIS_URL = os.environ.get("JSJB_TEST_REDIS_URL", "redis://127.0.0.1:6379/1")

pytestmark = pytest.mark.redis


def _settings() -> dict:
    from urllib.parse import urlparse

    parsed = urlparse(REDIS_URL)
    return {"host": parsed.hostname, "port": parsed.port or 6379, "db": int((parsed.path or "/1").lstrip("/") or 1)}


@pytest.fixture(scope="module")
def redis_settings():
    import redis

    settings = _settings()
    try:
        redis.Redis(**settings, socket_connect_timeout=1).ping()
    except Exception:  # noqa: BLE001 - any failure means unreachable
        if os.environ.get("JSJB_REQUIRE_REDIS"):
            pytest.fail(f"Redis unreachable at {REDIS_URL} but JSJB_REQUIRE_REDIS is set")
        pytest.skip(f"Redis unreachable at {REDIS_URL}")
    return settings


def _store(settings: dict, prefix: str, **extra) -> AtomicRedisLockStore:
    return AtomicRedisLockStore(**settings, key_prefix=prefix, **extra)


def _prefix() -> str:
    return f"locktest{uuid.uuid4().hex[:8]}"


async def _leftover_keys(store: AtomicRedisLockStore) -> list:
    return [k async for k in store.red.scan_iter(match=f"{store.key_prefix}*")]


def test_messages_of_one_conversation_run_one_at_a_time_in_arrival_order_across_workers(redis_settings):
    prefix = _prefix()

    async def scenario():
        workers = [_store(redis_settings, prefix), _store(redis_settings, prefix)]  # two Rasa processes
        inside, entered, overlaps = [0], [], []

        async def message(i: int):
            await asyncio.sleep(i * 0.015)  # arrival order (while earlier messages are still inside)
            async with workers[i % 2].lock("citizen-1"):
                inside[0] += 1
                if inside[0] > 1:
                    overlaps.append(i)
                entered.append(i)
                await asyncio.sleep(0.05)  # the turn's work, awaiting like Rasa does
                inside[0] -= 1

        await asyncio.gather(*(message(i) for i in range(12)))
        leftover = await _leftover_keys(workers[0])
        for w in workers:
            await w.close()
        return entered, overlaps, leftover

    entered, overlaps, leftover = asyncio.run(scenario())
    assert overlaps == []
    assert entered == list(range(12))
    assert leftover == []  # the keys go when nobody waits


def test_other_conversations_are_not_held_up(redis_settings):
    store_prefix = _prefix()

    async def scenario():
        store = _store(redis_settings, store_prefix)
        started = time.perf_counter()

        async def turn(conversation: str):
            async with store.lock(conversation):
                await asyncio.sleep(0.2)

        await asyncio.gather(*(turn(f"citizen-{k}") for k in range(5)))
        elapsed = time.perf_counter() - started
        await store.close()
        return elapsed

    assert asyncio.run(scenario()) < 0.6  # five conversations at once, not 5 x 0.2 s one after the other


def test_a_dead_holders_ticket_expires_and_the_next_message_goes_on(redis_settings):
    prefix = _prefix()

    async def scenario():
        store = _store(redis_settings, prefix)
        await store.draw_ticket("citizen-9", lock_lifetime=0.3)  # a worker drew a ticket and died
        started = time.perf_counter()
        async with store.lock("citizen-9"):
            waited = time.perf_counter() - started
        leftover = await _leftover_keys(store)
        await store.close()
        return waited, leftover

    waited, leftover = asyncio.run(scenario())
    assert 0.2 < waited < 2.0
    assert leftover == []


def test_a_message_whose_ticket_expired_before_its_turn_gets_rasas_lock_error(redis_settings):
    prefix = _prefix()

    async def scenario():
        store = _store(redis_settings, prefix)
        slow = await store.draw_ticket("citizen-7", lock_lifetime=0.05)
        waiting = await store.draw_ticket("citizen-7", lock_lifetime=30)
        assert not await store.is_first_in_line("citizen-7", waiting)
        await asyncio.sleep(0.1)
        assert await store.is_first_in_line("citizen-7", waiting)  # the expired ticket is dropped, the next goes on
        with pytest.raises(LockError, match="expired"):
            await store.is_first_in_line("citizen-7", slow)
        await store.finish("citizen-7", waiting)
        leftover = await _leftover_keys(store)
        await store.close()
        return leftover

    assert asyncio.run(scenario()) == []


def test_rasa_builds_it_from_endpoints_and_bad_prefixes_are_refused(redis_settings):
    config = EndpointConfig(url=redis_settings["host"], type="bot.lock_store.AtomicRedisLockStore",
                            port=redis_settings["port"], db=redis_settings["db"], key_prefix="jsjb")
    store = LockStore.create(config)
    assert isinstance(store, AtomicRedisLockStore) and store.key_prefix == "jsjb:lock:"
    assert store.keys("abc") == ["jsjb:lock:{abc}:next", "jsjb:lock:{abc}:queue", "jsjb:lock:{abc}:deadlines"]
    with pytest.raises(ValueError, match="letters and digits"):
        AtomicRedisLockStore(**redis_settings, key_prefix="bad prefix!")
