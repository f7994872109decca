"""Two Rasa worker processes with the Redis lock store (the production configuration for more than one core).

The whole system is started as `make run` starts it, with ``JSJB_RASA_WORKERS=2`` and ``JSJB_RASA_LOCK_STORE_URL``
pointing at the real Redis server. Messages of one conversation sent at the same time must still be processed one
after the other (the lock lives in Redis, so it holds across the two processes): the conversation's tracker shows
each message followed by the bot's complete answer before the next message, none lost or doubled.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from scripts.system import System, rasa_model_path, redis_lock_store_block
from tests.integration.conftest import _free_port, system_env

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("JSJB_TEST_REDIS_URL", "redis://127.0.0.1:6379/1")


def _redis():
    import redis

    return redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=2)


def _redis_reachable() -> bool:
    try:
        return bool(_redis().ping())
    except Exception:  # noqa: BLE001 - any failure means unreachable
        return False


def test_the_lock_store_block_is_built_from_the_url_and_bad_settings_are_refused(tmp_path):
    block = redis_lock_store_block("redis://:s3cret@cache.internal:6380/2", "hotline")
    assert "type: bot.lock_store.AtomicRedisLockStore" in block and 'url: "cache.internal"' in block and "port: 6380" in block
    assert "db: 2" in block and 'key_prefix: "hotline"' in block and 'password: "s3cret"' in block
    with pytest.raises(ValueError, match="redis://HOST"):
        redis_lock_store_block("http://cache.internal/1")
    lonely = System(api_port=_free_port(), rasa_port=_free_port(),
                    env={"JSJB_RASA_WORKERS": "2", "JSJB_RASA_LOCK_STORE_URL": "", "JSJB_DATA_DIR": str(tmp_path)})
    with pytest.raises(RuntimeError, match="need a shared lock store"):
        lonely.rasa_endpoints()
    with pytest.raises(ValueError, match="whole number"):
        System(env={"JSJB_RASA_WORKERS": "two"}).rasa_workers


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    if not _redis_reachable():
        pytest.skip(f"Redis unreachable at {REDIS_URL}")
    if not rasa_model_path().exists() or not (ROOT / ".venv" / "rasa" / "bin" / "python").exists():
        pytest.skip("needs `make setup` (Rasa model and environments)")
    data = tmp_path_factory.mktemp("workers")
    prefix = f"jsjbtest{uuid.uuid4().hex[:8]}"
    env = {
        **system_env(data),
        "JSJB_RASA_WORKERS": "2",
        "JSJB_RASA_LOCK_STORE_URL": REDIS_URL,
        "JSJB_RASA_LOCK_KEY_PREFIX": prefix,
    }
    python = str(ROOT / ".venv" / "svc" / "bin" / "python")
    subprocess.run([python, "-m", "core.manage", "init-db"], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT),
                   **env}, check=True, stdout=subprocess.DEVNULL)
    system = System(api_port=_free_port(), rasa_port=_free_port(), env=env, log_dir=data / "logs")
    with system:
        yield system, prefix, data / "logs" / "rasa.log"


def _watch_redis(prefix: str, seen: list[str], stop: threading.Event) -> None:
    with _redis().monitor() as monitor:
        for command in monitor.listen():
            if prefix in command.get("command", ""):
                seen.append(command["command"])
            if stop.is_set():
                return


async def _send_all(rasa_url: str, messages: list[tuple[str, str]]) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=60) as client:
        return await asyncio.gather(*(client.post(f"{rasa_url}/webhooks/rest/webhook",
                                                  json={"sender": sender, "message": text})
                                      for sender, text in messages))


def test_messages_sent_at_once_to_two_workers_are_processed_in_turn(two_workers):
    system, prefix, rasa_log = two_workers
    deadline = time.monotonic() + 180  # /health answers once the first worker is up; wait for the second
    while rasa_log.read_text(errors="replace").count("Rasa server is up and running") < 2:
        assert time.monotonic() < deadline, "the second Rasa worker did not start"
        time.sleep(1)
    seen: list[str] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_redis, args=(prefix, seen, stop), daemon=True)
    watcher.start()

    citizen = f"workers-{uuid.uuid4().hex[:8]}"
    burst = ["你好", "你们能干啥", "你是机器人吗", "好的谢谢"]
    others = [(f"other-{i}-{uuid.uuid4().hex[:6]}", "你好") for i in range(8)]
    responses = asyncio.run(_send_all(system.rasa_url, [(citizen, t) for t in burst] + others))
    stop.set()
    _redis().ping()  # one more command, so the watcher's listen() returns
    watcher.join(timeout=10)

    assert [r.status_code for r in responses] == [200] * len(responses)
    assert all(r.json() and r.json()[0].get("text") for r in responses), [r.text for r in responses]

    tracker = httpx.get(f"{system.rasa_url}/conversations/{citizen}/tracker", timeout=30).json()
    events = tracker["events"]
    user_texts = [e["text"] for e in events if e["event"] == "user"]
    assert sorted(user_texts) == sorted(burst)  # every message once: none lost, none doubled
    # each message is answered completely (the bot's turn ends in action_listen) before the next one is read
    turn_ended = True
    for event in events:
        if event["event"] == "user":
            assert turn_ended, "a message was read while the previous one was still being answered"
            turn_ended = False
        elif event["event"] == "action" and event.get("name") == "action_listen":
            turn_ended = True
    assert turn_ended
    # the locks went through Redis, under this run's prefix
    assert any(citizen in command for command in seen), seen[:5]
