"""End-to-end conversations against the real servers: a trained Rasa model behind ``python -m bot.server run``
(= ``rasa run``) and the services app (FastAPI, actions at /webhook, dispatch on a fresh SQLite database), talking
over Rasa's REST channel.

Runs in the Rasa environment and needs a trained model and the services environment:
``PYTHONPATH=. .venv/rasa/bin/python -m pytest tests/bot/test_dialogue_live.py -q``.
Model: ``$RASA_MODEL``, else the newest ``*.tar.gz`` in ``$RASA_MODEL_DIR`` (default /tmp/rasa-models) or
``var/models/rasa``; services Python: ``$JSJB_SVC_PYTHON``, ``.venv/svc/bin/python`` or /tmp/exp/svc/bin/python.
Skips when either is missing.

The dialogue behaviours live here; ``tests/integration/test_end_to_end.py`` (services environment) covers what the
system adds around them (the agent's view of a bot-made order, the knowledge-base answer, /health): the
consultation answer is tested there, the emergency (as a first message and inside a form) here, each in one place.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

requests = pytest.importorskip("requests")
pytest.importorskip("rasa")

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _model() -> Path | None:
    if os.environ.get("RASA_MODEL"):
        return Path(os.environ["RASA_MODEL"])
    for folder in (Path(os.environ.get("RASA_MODEL_DIR", "/tmp/rasa-models")), ROOT / "var" / "models" / "rasa"):
        models = sorted(folder.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
        if models:
            return models[-1]
    return None


def _svc_python() -> Path | None:
    for candidate in (os.environ.get("JSJB_SVC_PYTHON"), ROOT / ".venv" / "svc" / "bin" / "python",
                      "/tmp/exp/svc/bin/python"):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before {url} answered")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    raise TimeoutError(url)


class Servers:
    def __init__(self, rasa_url: str, data_dir: Path, svc_python: Path, env: dict, api_port: int) -> None:
        self.rasa_url, self.data_dir, self.svc_python, self.env = rasa_url, data_dir, svc_python, env
        self.api_port = api_port
        self.api: subprocess.Popen | None = None
        self.api_log = open(data_dir / "services.log", "a")

    def start_services(self) -> None:
        """The services app (actions at /webhook) on its port; a running one is stopped first (a restart)."""
        if self.api is not None:
            self.api.terminate()
            self.api.wait(timeout=30)
        self.api = subprocess.Popen([str(self.svc_python), "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
                                     "--port", str(self.api_port)], cwd=ROOT, env=self.env, stdout=self.api_log,
                                    stderr=subprocess.STDOUT)
        _wait(f"http://127.0.0.1:{self.api_port}/actions", 120, self.api)

    def action_metrics(self) -> dict:
        return requests.get(f"http://127.0.0.1:{self.api_port}/metrics/actions", timeout=30).json()

    def send_full(self, sender: str, text: str) -> list[dict]:
        """The REST channel's reply as sent to a city app: ``[{"recipient_id", "text", "buttons"?}, ...]``."""
        r = requests.post(f"{self.rasa_url}/webhooks/rest/webhook", json={"sender": sender, "message": text},
                          timeout=120)
        r.raise_for_status()
        return r.json()

    def send(self, sender: str, text: str) -> list[str]:
        return [m["text"] for m in self.send_full(sender, text) if m.get("text")]

    def tracker(self, sender: str) -> dict:
        return requests.get(f"{self.rasa_url}/conversations/{sender}/tracker", timeout=30).json()

    def dispatch(self, code: str, **args) -> dict:
        """Runs ``code`` with ``svc`` (DispatchService) and ``args`` in the services environment; returns ``result``."""
        script = textwrap.dedent(
            """
            import json, sys
            from core.db import session_scope
            from dispatch.proposal import Actor, Intake
            from dispatch.service import DispatchService
            args = json.loads(sys.argv[1])
            with session_scope() as session:
                svc = DispatchService(session)
            """
        ) + textwrap.indent(textwrap.dedent(code), "    ") + "\n    print(json.dumps(result, ensure_ascii=False))\n"
        out = subprocess.run([str(self.svc_python), "-c", script, json.dumps(args)], cwd=ROOT, env=self.env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    model, svc_python = _model(), _svc_python()
    if model is None or svc_python is None:
        pytest.skip("needs a trained Rasa model and the services environment")
    tmp = tmp_path_factory.mktemp("live")
    api_port, rasa_port = _free_port(), _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RASA_TELEMETRY_ENABLED": "false", "JSJB_DATA_DIR": str(tmp),
           "JSJB_DATABASE_URL": f"sqlite:///{tmp / 'jsjb.db'}", "JSJB_LOG_JSON": "false",
           "JSJB_RASA_URL": f"http://127.0.0.1:{rasa_port}",
           # bot.tracker_replay checks each of its results against Rasa's own replay (see the last test)
           "JSJB_VERIFY_REPLAY": "1"}
    (tmp / "endpoints.yml").write_text(
        f'action_endpoint:\n  url: "http://127.0.0.1:{api_port}/webhook"\n'
        f'tracker_store:\n  type: nlu.privacy.MaskingSQLTrackerStore\n  dialect: "sqlite"\n'
        f'  db: "{tmp / "rasa_tracker.db"}"\n', encoding="utf-8")
    servers = Servers(f"http://127.0.0.1:{rasa_port}", tmp, svc_python, env, api_port)
    rasa_log = open(tmp / "rasa.log", "w")
    # started as `make run` starts it (bot/server.py = `rasa run` + its fixes)
    rasa = subprocess.Popen([sys.executable, "-m", "bot.server", "run", "--enable-api", "-m", str(model), "--endpoints",
                             str(tmp / "endpoints.yml"), "--credentials", str(ROOT / "bot" / "credentials.yml"),
                             "-i", "127.0.0.1", "-p", str(rasa_port)], cwd=ROOT / "bot", env=env, stdout=rasa_log,
                            stderr=subprocess.STDOUT)
    try:
        servers.start_services()
        _wait(f"http://127.0.0.1:{rasa_port}/status", 300, rasa)
        yield servers
    finally:
        for proc in (rasa, servers.api):
            if proc is not None:
                proc.terminate()
        for proc in (rasa, servers.api):
            try:
                if proc is not None:
                    proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        rasa_log.close()
        servers.api_log.close()


def _sender() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


def test_demo_complaint_is_confirmed_and_gets_a_work_order_then_its_status(servers):
    me = _sender()
    reply = servers.send(me, "我家楼下饭馆油烟太大，在朝阳区望京西园三区")
    assert any("联系电话" in r and "匿名" in r for r in reply), reply
    reply = servers.send(me, "13812345678")
    assert any("保密" in r for r in reply), reply
    reply = servers.send(me, "不需要")
    summary = reply[-1]
    assert "朝阳区望京西园三区" in summary and "138****5678" in summary and "以上信息是否正确" in summary
    reply = servers.send(me, "确认")
    m = re.search(r"工单号：(\d{8}-\d{6})", "".join(reply))
    assert m, reply
    assert "工作日" in "".join(reply)
    number = m.group(1)

    reply = servers.send(me, "帮我查一下工单进度")
    assert any("工单编号" in r for r in reply), reply
    reply = servers.send(me, number)
    assert any("后四位" in r for r in reply), reply
    reply = servers.send(me, "5678")
    assert number in "".join(reply) and "当前状态" in "".join(reply)

    other = _sender()  # another citizen with the number but a wrong phone tail learns nothing
    servers.send(other, "查一下工单")
    servers.send(other, number)
    assert "未查到" in "".join(servers.send(other, "1234"))

    slots = servers.tracker(me)["slots"]
    assert slots["last_work_order"] == number and slots["status_phone_tail"] is None


def test_correction_at_the_read_back(servers):
    me = _sender()
    servers.send(me, "小区门口天天有人摆摊占道，在朝阳区望京西园三区")
    servers.send(me, "匿名")
    reply = servers.send(me, "不对，是海淀区")
    assert "已为您更新" in reply[-1] and "海淀区" in reply[-1] and "望京街道" not in reply[-1]
    reply = servers.send(me, "对的")
    assert re.search(r"工单号：\d{8}-\d{6}", "".join(reply)), reply


def test_emergency_in_the_middle_of_the_intake_gets_only_the_emergency_instruction(servers):
    first = servers.send(_sender(), "楼道里着火了！好大的烟，怎么办")  # as the first message, outside any form
    assert first and "119" in first[0], first
    me = _sender()
    reply = servers.send(me, "我要投诉")
    assert any("具体说说" in r for r in reply), reply
    reply = servers.send(me, "楼下饭馆着火了，火很大")
    assert len(reply) == 1 and "119" in reply[0] and "110" in reply[0]
    assert servers.tracker(me)["active_loop"] == {} or not servers.tracker(me)["active_loop"].get("name")


def test_insult_gets_persuasion_and_the_service_continues(servers):
    me = _sender()
    servers.send(me, "我要反映个问题")
    reply = servers.send(me, "你们这帮废物，拿着工资不干活")
    assert "文明表达" in reply[0] and "具体说说" in reply[-1]


def _buttons(messages: list[dict]) -> list[tuple[str, str]]:
    return [(b["title"], b["payload"]) for m in messages for b in m.get("buttons") or []]


def test_quick_replies_over_rest_carry_intent_payloads_that_the_dialogue_understands(servers):
    """A city app gets the buttons in the REST reply (the text still names the options) and sends the payload."""
    me = _sender()
    greeting = servers.send_full(me, "你好")
    assert ("我要反映问题", "/file_request") in _buttons(greeting) and ("转人工", "/human_handoff") in _buttons(greeting)
    asked = servers.send_full(me, "/file_request")
    assert any("具体说说" in m.get("text", "") for m in asked), asked
    contact = servers.send_full(me, "小区门口的路灯坏了一个多月，晚上黑漆漆的，在朝阳区望京西园三区")
    assert ("匿名反映", "/anonymous") in _buttons(contact) and "匿名" in contact[-1]["text"], contact
    read_back = servers.send_full(me, "/anonymous")
    assert "匿名反映" in read_back[-1]["text"] and "确认" in read_back[-1]["text"], read_back
    assert _buttons(read_back) == [("确认提交", "/affirm"), ("需要修改", "/deny"), ("取消登记", "/cancel")]
    change = servers.send(me, "/deny")
    assert "哪一项需要修改" in change[-1], change
    updated = servers.send_full(me, "地址是朝阳区望京西园三区5号楼")
    assert "已为您更新" in updated[-1]["text"] and "5号楼" in updated[-1]["text"], updated
    assert ("确认提交", "/affirm") in _buttons(updated)
    done = "".join(servers.send(me, "/affirm"))
    assert re.search(r"工单号：\d{8}-\d{6}", done), done


def test_quick_reply_cancels_at_the_read_back(servers):
    me = _sender()
    servers.send(me, "我家楼下饭馆油烟太大，在朝阳区望京西园三区")
    confidential = servers.send_full(me, "13812345678")
    assert _buttons(confidential) == [("需要保密", "/confidential"), ("不需要保密", "/deny")], confidential
    read_back = servers.send(me, "/deny")
    assert "个人信息保密：否" in read_back[-1], read_back
    cancelled = servers.send(me, "/cancel")
    assert "已取消" in "".join(cancelled) and not re.search(r"\d{8}-\d{6}", "".join(cancelled)), cancelled
    assert not (servers.tracker(me)["active_loop"] or {}).get("name")


def test_praise_is_recorded(servers):
    me = _sender()
    reply = "".join(servers.send(me, "我要表扬一下望京街道的王主任，帮我们把暖气的问题解决了"))
    assert "感谢您的表扬" in reply and re.search(r"\d{8}-\d{6}", reply), reply


def test_handoff_pauses_until_an_agent_resumes(servers):
    me = _sender()
    servers.send(me, "你好")
    reply = servers.send(me, "转人工")
    assert any("人工" in r for r in reply)
    assert servers.tracker(me)["paused"] is True
    assert servers.send(me, "喂？有人吗") == []
    r = requests.post(f"{servers.rasa_url}/conversations/{me}/tracker/events", json=[{"event": "resume"}], timeout=30)
    assert r.status_code == 200
    assert any("12345" in t for t in servers.send(me, "你好"))


def _replied_order(servers, me: str) -> str:
    """A work order answered by its unit (so it can be called back); its number."""
    created = servers.dispatch(
        """
        r = svc.create_work_order(Intake(content="小区门口的路灯坏了好几盏，晚上很黑", phone=args["phone"],
                                         district="朝阳区", street="望京街道"), idempotency_key=args["key"])
        agent = Actor("agent", "agent")
        unit = svc.get_order(r["number"], agent)["suggestions"][0]["unit_code"]
        svc.dispatch(r["number"], unit, agent)
        svc.accept(r["number"], Actor("unit", "unit", unit))
        svc.reply(r["number"], Actor("unit", "unit", unit), "已修复损坏路灯。")
        result = r
        """, key=me, phone="139" + str(int(uuid.uuid4().hex[:8], 16) % 10**8).zfill(8))  # a citizen of its own
    return created["number"]


def _trigger_callback(servers, me: str, number: str) -> list[dict]:
    r = requests.post(f"{servers.rasa_url}/conversations/{me}/trigger_intent?output_channel=latest",
                      json={"name": "EXTERNAL_callback", "entities": {"work_order_number": number}}, timeout=60)
    assert r.status_code == 200
    return r.json().get("messages", [])


def test_callback_triggered_from_outside_is_recorded(servers):
    me = _sender()
    number = _replied_order(servers, me)
    servers.send(me, "你好")
    asked = "".join(m.get("text", "") for m in _trigger_callback(servers, me, number))
    assert number in asked and "解决了吗" in asked
    assert any("满意" in t for t in servers.send(me, "已经解决了"))
    assert any("感谢您的评价" in t for t in servers.send(me, "很满意"))
    detail = servers.dispatch(
        'result = svc.get_order(args["number"], Actor("agent", "agent"))', number=number)
    assert detail["resolved"] is True and detail["satisfaction"] == "满意"


def test_callback_answered_with_quick_replies(servers):
    me = _sender()
    number = _replied_order(servers, me)
    asked = _trigger_callback(servers, me, number)
    assert _buttons(asked) == [("已解决", "/resolved"), ("未解决", "/not_resolved")], asked
    satisfaction = servers.send_full(me, "/not_resolved")
    assert _buttons(satisfaction) == [("满意", "/satisfied"), ("基本满意", "/basically_satisfied"),
                                      ("不满意", "/dissatisfied")], satisfaction
    assert any("督促" in t for t in servers.send(me, "/dissatisfied"))
    detail = servers.dispatch(
        'result = svc.get_order(args["number"], Actor("agent", "agent"))', number=number)
    assert detail["resolved"] is False and detail["satisfaction"] == "不满意"


def test_id_card_numbers_are_refused_and_never_stored(servers):
    import sqlite3

    me = _sender()
    servers.send(me, "我家暖气一点都不热，在海淀区学院路")
    reply = servers.send(me, "我的身份证号是110105199003071234")
    assert any("身份证" in r for r in reply), reply
    assert "110105199003071234" not in json.dumps(servers.tracker(me)["slots"], ensure_ascii=False)
    with sqlite3.connect(servers.data_dir / "rasa_tracker.db") as db:
        stored = "".join(row[0] for row in db.execute("SELECT data FROM events WHERE sender_id = ?", (me,)))
    assert "110***********1234" in stored
    assert "110105199003071234" not in stored


def test_the_conversation_goes_on_when_the_action_server_restarts(servers):
    """Rasa sends the domain to the action server once, then only its digest (bot/action_client.py); an action
    server that restarts has no domain and answers 449, and Rasa repeats the call with it - the citizen sees
    nothing of this. Kept-alive connections to the old process are not reused."""
    me = _sender()
    assert any("具体说说" in r for r in servers.send(me, "我要投诉"))
    before = servers.action_metrics()
    reply = servers.send(me, "小区门口的垃圾桶好几天没人清，味道很大，在海淀区学院路")
    assert any("联系电话" in r for r in reply), reply
    after = servers.action_metrics()
    assert after["domain_payloads"] == before["domain_payloads"]  # the running server already had it
    assert sum(a["count"] for a in after["actions"].values()) > sum(a["count"] for a in before["actions"].values())

    servers.start_services()
    reply = servers.send(me, "匿名")
    assert "以上信息是否正确" in reply[-1], reply
    reply = servers.send(me, "确认")
    assert re.search(r"工单号：\d{8}-\d{6}", "".join(reply)), reply
    assert servers.action_metrics()["domain_payloads"] == 1  # the new process got it once, then the digest sufficed


def test_every_incremental_replay_of_these_conversations_equalled_rasas(servers):
    """Runs last: the conversations above went through bot.tracker_replay with JSJB_VERIFY_REPLAY=1."""
    log = (servers.data_dir / "rasa.log").read_text(encoding="utf-8", errors="replace")
    assert "JSJB_VERIFY_REPLAY: every tracker copy" in log
    assert "tracker replay mismatch" not in log
