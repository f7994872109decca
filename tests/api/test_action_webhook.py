"""POST /webhook, the Rasa action server inside the services app: the domain-digest protocol the Rasa server speaks
(bot/action_client.py) - the domain is needed once per digest, a call without it answers 449 until then."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from api.routes import action_webhook

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = yaml.safe_load((ROOT / "bot" / "domain.yml").read_text(encoding="utf-8"))


def _call(digest: str, with_domain: bool, action: str = "validate_praise_form") -> dict:
    body = {
        "next_action": action,
        "sender_id": "webhook-test",
        "version": "3.6.21",
        "domain_digest": digest,
        "tracker": {
            "sender_id": "webhook-test",
            "slots": {"praise_text": None, "requested_slot": "praise_text"},
            "latest_message": {"text": "谢谢望京街道的王师傅，帮我们修好了路灯", "intent": {"name": "praise"},
                               "entities": []},
            "events": [],
            "paused": False,
            "followup_action": None,
            "active_loop": {"name": "praise_form"},
            "latest_action_name": "action_listen",
        },
    }
    if with_domain:
        body["domain"] = DOMAIN
    return body


@pytest.fixture
def fresh_executor(client):
    action_webhook._executor = None  # an action server that has just started: it holds no domain
    return client


def test_the_domain_is_needed_once_per_digest(fresh_executor):
    client = fresh_executor
    before = client.get("/metrics/actions").json()["domain_payloads"]

    missing = client.post("/webhook", json=_call("digest-1", with_domain=False))
    assert missing.status_code == 449
    assert missing.json()["action_name"] == "validate_praise_form"

    first = client.post("/webhook", json=_call("digest-1", with_domain=True))
    assert first.status_code == 200
    again = client.post("/webhook", json=_call("digest-1", with_domain=False))
    assert again.status_code == 200
    assert again.json()["events"] == first.json()["events"]
    assert any(e.get("event") == "slot" for e in again.json()["events"])

    # a new model (another digest) needs its domain again
    assert client.post("/webhook", json=_call("digest-2", with_domain=False)).status_code == 449
    assert client.get("/metrics/actions").json()["domain_payloads"] == before + 1


def test_an_unknown_action_is_404_and_a_broken_body_400(fresh_executor):
    client = fresh_executor
    assert client.post("/webhook", json=_call("d", with_domain=True, action="action_does_not_exist")).status_code == 404
    assert client.post("/webhook", content=b"{not json", headers={"Content-Type": "application/json"}).status_code == 400
