"""End to end: both servers started for real (Rasa 3.6 on Python 3.10, the services app on Python 3.11), a citizen
talking through Rasa's REST channel, and an agent reading the resulting work order through the API.

This is what `make run` offers a person in the browser, minus the browser (the widget has its own browser test).
It needs the products of set-up (environments, Rasa model, encoder, classifier); `make test` runs set-up first.

Division of labour with ``tests/bot/test_dialogue_live.py`` (Rasa environment, its own servers): this suite checks
the system as `make run` starts it — a bot-made order as an agent sees it (classifier category, place, suggested
units, token required), a knowledge-base answer from the real index, /health; the dialogue behaviours (intake
paths, corrections, emergency in and out of a form, quick replies, status query, callback, handoff, privacy) are
tested there, each once.
"""
from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
import pytest

from scripts.system import System, rasa_model_path

ROOT = Path(__file__).resolve().parents[2]
ORDER_NUMBER = re.compile(r"\d{8}-\d{6}")
RASA_MODEL = rasa_model_path(ROOT)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not RASA_MODEL.exists(), reason="no trained Rasa model: run `make setup` first"),
]


def say(system: System, sender: str, text: str) -> list[str]:
    resp = httpx.post(f"{system.rasa_url}/webhooks/rest/webhook", json={"sender": sender, "message": text}, timeout=60)
    resp.raise_for_status()
    return [m.get("text", "") for m in resp.json() if m.get("text")]


def answer_for(prompt: str) -> str:
    """What a citizen filing the demo complaint anonymously answers to each question of the intake form."""
    if "核对" in prompt or "是否正确" in prompt:  # the read-back
        return "嗯"
    if "保密" in prompt:
        return "不需要"
    if "电话" in prompt or "匿名" in prompt or "联系" in prompt:
        return "匿名"
    if "哪个区" in prompt or "什么位置" in prompt or "地址" in prompt:
        return "朝阳区望京西园三区"
    if "发生了什么" in prompt or "具体情况" in prompt or "描述" in prompt:
        return "饭馆排油烟的管子正对着我家窗户，每天中午晚上呛得没法开窗"
    return "嗯"


def test_citizen_files_a_complaint_and_gets_a_work_order_number(system: System, agent_token: str):
    sender = f"e2e-{uuid.uuid4().hex[:10]}"
    replies = say(system, sender, "我家楼下饭馆油烟太大，在朝阳区望京西园三区")
    assert replies, "the bot must answer"
    assert not ORDER_NUMBER.search(" ".join(replies)), "no work order before the citizen confirms"
    transcript = list(replies)
    number = None
    for _ in range(8):
        replies = say(system, sender, answer_for(replies[-1]))
        transcript += replies
        found = ORDER_NUMBER.search(" ".join(replies))
        if found:
            number = found.group(0)
            break
    assert number, "no work-order number after the form:\n" + "\n".join(transcript)
    # the read-back before confirmation showed the place the citizen gave
    assert any("望京" in r for r in transcript[:-1])

    resp = httpx.get(f"{system.api_url}/api/work-orders/{number}", headers={"Authorization": f"Bearer {agent_token}"})
    assert resp.status_code == 200, resp.text
    order = resp.json()
    assert order["number"] == number
    assert "油烟" in order["content"]
    assert order["district"] == "朝阳区"
    assert order["request_type"] in {"投诉", "求助", "举报", "建议"}
    assert order["category_l1"]
    assert order["suggestions"], "agents get suggested handling units"
    assert all(s["unit_name"] for s in order["suggestions"])

    # the same order is not visible without a token (citizens' data stays private)
    assert httpx.get(f"{system.api_url}/api/work-orders/{number}").status_code == 401


def test_citizen_asks_a_consultation_and_gets_a_knowledge_base_answer(system: System):
    replies = say(system, f"e2e-{uuid.uuid4().hex[:10]}", "居住证怎么办理")
    text = "\n".join(replies)
    assert "居住证" in text and len(text) > 60, text
    assert "帮助" in text  # "这个回答对您有帮助吗？"


def test_health_reports_every_part_up(system: System):
    health = httpx.get(f"{system.api_url}/health").json()
    assert health["parts"]["rasa"]["up"] and health["parts"]["database"]["up"]
    assert health["parts"]["encoder_model"]["up"]
