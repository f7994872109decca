"""The chat page in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven by Playwright
(tests/integration/widget_browser.mjs, playwright-core from npm) against both servers started for real.

The browser script plays one conversation and prints a JSON report of what a person would notice; the tests below
assert on it: the page loads, shows 在线 and greets; a complaint shows the citizen's bubble and the typing indicator
until the answer; after a reload the conversation is still on the page and the bot still expects the contact
answer; after the connection drops the status says so, comes back to 在线, and the confirmation sent then is
answered with a work-order number; the quick-reply buttons the bot offers (匿名反映 at the contact question, 确认提交 /
需要修改 / 取消登记 at the read-back, 有帮助 / 没帮助 after a knowledge-base answer) are clicked, show their title as the
citizen's message, send their intent payload, disappear, and get the answer that button asks for.
A screenshot of the finished conversation goes to the test's tmp dir and to var/widget-screenshot.png.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from api.main import chat_socket_url
from scripts.system import System, rasa_model_path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).resolve().parent / "widget_browser.mjs"
RASA_MODEL = rasa_model_path(ROOT)
CHROMIUM = Path(os.environ.get("JSJB_CHROMIUM", "/usr/bin/chromium"))
PLAYWRIGHT = ROOT / "node_modules" / "playwright-core"
SCREENSHOT = ROOT / "var" / "widget-screenshot.png"
ORDER_NUMBER = re.compile(r"\d{8}-\d{6}")
ONLINE = "在线"

needs_browser = [
    pytest.mark.integration,
    pytest.mark.skipif(not RASA_MODEL.exists(), reason="no trained Rasa model: run `make setup` first"),
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"no Chromium at {CHROMIUM}: `apt-get install chromium` (.ci/run installs it)"),
    pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed"),
    pytest.mark.skipif(not PLAYWRIGHT.exists(), reason="npm packages (playwright-core) not installed: run `make setup`"),
]


@pytest.fixture(scope="module")
def report(system: System, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run the browser script once against the running system; its JSON report (also saved next to the shot)."""
    out = tmp_path_factory.mktemp("widget_browser")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["node", str(SCRIPT), "--url", f"{system.api_url}/", "--chromium", str(CHROMIUM),
           "--screenshot", str(out / "widget.png"), "--screenshot", str(SCREENSHOT)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines, f"browser script failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}"
    result = json.loads(lines[-1])
    (out / "report.json").write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    return result


def step(report: dict, name: str) -> dict:
    """One step of the report; a clear failure with the browser's error and transcript if it never got there."""
    if name not in report["steps"]:
        pytest.fail(f"the browser conversation stopped before step {name!r}: {report.get('error')}\n"
                    f"page at the end: {json.dumps(report.get('final'), ensure_ascii=False)}\n"
                    + "\n".join(report["transcript"]))
    return report["steps"][name]


def assert_turn_seen_like_a_person(turn: dict) -> None:
    """The citizen's bubble appears, the typing indicator shows while the bot works and goes when it answers."""
    assert turn["user_bubble"] == turn["sent"], turn
    assert turn["replies"] and all(r.strip() for r in turn["replies"]), turn
    assert turn["typing_visible_right_after_send"], "no typing indicator after sending"
    assert not turn["typing_visible_after_answer"], "typing indicator still shown after the answer"
    events = turn["page_events"]
    assert events[:4] == ["user", "typing:on", "typing:off", "bot"], events
    assert "typing:on" not in events[4:], events


# ------------------------------------------------------------------------------------------- page serving


def test_socket_url_comes_from_settings():
    # the public URL wins; a loopback Rasa URL means "the host that served the page"
    assert chat_socket_url("https://chat.example.org/", "http://127.0.0.1:5005", "x") == "https://chat.example.org"
    assert chat_socket_url("", "http://127.0.0.1:5005", "127.0.0.1") == "http://127.0.0.1:5005"
    assert chat_socket_url("", "http://127.0.0.1:5005", "192.168.1.20") == "http://192.168.1.20:5005"
    assert chat_socket_url("", "http://localhost:5005", "fe80::1") == "http://[fe80::1]:5005"
    assert chat_socket_url("", "http://rasa.internal:5005", "example.org") == "http://rasa.internal:5005"


@pytest.mark.integration
@pytest.mark.skipif(not RASA_MODEL.exists(), reason="no trained Rasa model: run `make setup` first")
def test_page_is_served_with_the_rasa_socket_url(system: System):
    page = httpx.get(f"{system.api_url}/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert f'data-socket-url="{system.rasa_url}"' in page.text
    client = httpx.get(f"{system.api_url}/static/vendor/socket.io.min.js")
    assert client.status_code == 200 and "io" in client.text[:2000]
    assert httpx.get(f"{system.api_url}/static/widget.js").status_code == 200


# ------------------------------------------------------------------------------------------- in the browser


class TestWidgetInChromium:
    pytestmark = needs_browser

    def test_page_loads_shows_online_and_greets(self, report: dict, system: System):
        load = step(report, "load")
        assert load["http_status"] == 200
        assert "12345" in load["title"]
        assert load["socket_url"] == system.rasa_url
        assert load["status_seen"][-1] == ONLINE
        assert load["greeting"] and "您好" in load["greeting"][0] and "12345" in load["greeting"][0]
        greeting_buttons = report["steps"]["complaint"]["buttons_offered"]
        assert any("反映" in b for b in greeting_buttons) and "转人工" in greeting_buttons, greeting_buttons
        assert load["session_id"]

    def test_complaint_shows_bubble_typing_indicator_and_answer(self, report: dict):
        turn = step(report, "complaint")
        assert turn["via"] == "typed" and turn["input_cleared"]
        assert_turn_seen_like_a_person(turn)
        # the bot goes on with the intake: it asks for what is missing
        assert re.search(r"请|吗|？", turn["replies"][-1]), turn["replies"]

    def test_reload_keeps_the_conversation_and_the_form_state(self, report: dict):
        load, reload = step(report, "load"), step(report, "reload")
        assert re.search("电话|匿名|联系", report["steps"]["contact_question"])
        assert reload["same_messages"], "the messages shown after the reload differ from before"
        assert reload["bot_after"] == reload["bot_before"] >= 2 and reload["user_after"] == reload["user_before"] >= 1
        assert reload["session_id"] == load["session_id"]
        assert reload["status_seen"][-1] == ONLINE
        assert reload["bot_count_after_online"] == reload["bot_before"], "the bot greeted again after the reload"
        answer = reload["answer"]
        assert_turn_seen_like_a_person(answer)
        # the bot still expected the contact answer: it takes 匿名 and reads back what was said before the reload
        text = "\n".join(answer["replies"])
        assert "匿名" in text and "望京" in text, text
        assert not re.search("请留一个联系电话", text), text

    def test_reconnect_shows_status_and_answers_after_it(self, report: dict):
        reconnect = step(report, "reconnect")
        assert any(re.search("重连|断开|重试", s) for s in reconnect["status_seen_offline"]), reconnect
        assert reconnect["status_while_offline"] != ONLINE and reconnect["offline_class"]
        assert reconnect["status_seen_back"][-1] == ONLINE
        assert reconnect["session_id_after"] == reconnect["session_id_before"]
        answer = reconnect["answer"]
        assert_turn_seen_like_a_person(answer)
        assert ORDER_NUMBER.search("\n".join(answer["replies"])), answer["replies"]

    def test_consultation_is_answered_and_asks_for_feedback(self, report: dict):
        turn = step(report, "consultation")
        assert_turn_seen_like_a_person(turn)
        assert "居住证" in "\n".join(turn["replies"]) and "帮助" in turn["replies"][-1]
        assert_turn_seen_like_a_person(step(report, "consultation_feedback"))

    def test_quick_replies_are_offered_where_a_citizen_expects_them(self, report: dict):
        step(report, "consultation_feedback")  # the whole conversation ran
        offered = {o["step"]: o for o in report["quick_replies"]["offered"]}
        contact = offered["contact_after_reload"]  # restored after the reload: the contact question is the last turn
        assert "匿名反映" in contact["buttons"] and "/anonymous" in contact["payloads"], contact
        assert report["steps"]["readback_buttons"] == ["确认提交", "需要修改", "取消登记"]
        assert offered["readback_change"]["payloads"] == ["/affirm", "/deny", "/cancel"]
        feedback = offered["kb_feedback"]
        assert feedback["buttons"] == ["有帮助", "没帮助"] and feedback["payloads"] == ["/affirm", "/deny"], feedback

    def test_quick_reply_click_sends_the_payload_and_gets_the_right_answer(self, report: dict):
        step(report, "consultation_feedback")
        clicked = {c["step"]: c for c in report["quick_replies"]["clicked"]}
        assert set(clicked) >= {"contact_after_reload", "readback_change", "confirm_after_reconnect", "kb_feedback"}, \
            report["quick_replies"]
        turns = {t["step"]: t for t in _all_turns(report) if t["via"] == "quick-reply"}
        for name, turn in turns.items():
            assert turn["buttons_left_after_click"] == 0, f"{name}: the buttons stay after one was clicked"
            # the citizen sees the title, never the intent payload
            assert turn["user_bubble"] == clicked[name]["title"] and not turn["user_bubble"].startswith("/"), turn
            assert_turn_seen_like_a_person(turn)
        # each click got the answer to that choice
        assert "匿名" in "\n".join(turns["contact_after_reload"]["replies"])
        assert "哪一项需要修改" in "\n".join(turns["readback_change"]["replies"]), turns["readback_change"]["replies"]
        assert ORDER_NUMBER.search("\n".join(turns["confirm_after_reconnect"]["replies"]))
        assert "很高兴" in "\n".join(turns["kb_feedback"]["replies"]), turns["kb_feedback"]["replies"]

    def test_correction_after_the_change_button_reads_back_again_with_buttons(self, report: dict):
        corrected = step(report, "readback_corrected")
        assert corrected["via"] == "typed"
        assert_turn_seen_like_a_person(corrected)
        text = "\n".join(corrected["replies"])
        assert "5号楼" in text and "确认" in text, text
        assert not re.search(r"发生时间：[^\n]*5号", text), "the building number 5号楼 was taken for a date (5号)"
        assert report["steps"]["readback_buttons_again"] == ["确认提交", "需要修改", "取消登记"]

    def test_sending_anything_removes_the_offered_buttons(self, report: dict):
        step(report, "consultation_feedback")
        turns = _all_turns(report)
        assert any(t["via"] == "typed" and t["buttons_offered"] for t in turns), "no typed answer to a buttoned turn"
        for turn in turns:
            assert turn["buttons_left_after_send"] == 0, f"stale quick replies after {turn['step']}: {turn}"

    def test_no_script_errors_and_a_screenshot(self, report: dict):
        step(report, "consultation")
        assert report["ok"], report.get("error")
        assert not report["page_errors"], report["page_errors"]
        assert not [e for e in report["console_errors"] if not e.get("during_offline")], report["console_errors"]
        assert not report["failed_responses"], report["failed_responses"]
        assert report["final"]["status"] == ONLINE and not report["final"]["typing_visible"]
        assert len(report["screenshots"]) == 2
        for path in report["screenshots"]:
            assert Path(path).stat().st_size > 10_000, path


def _all_turns(report: dict) -> list[dict]:
    steps = report["steps"]
    turns = [steps.get("complaint"), *steps.get("intake", []), (steps.get("reload") or {}).get("answer"),
             *steps.get("after_reload", []), steps.get("readback_change"), steps.get("readback_corrected"),
             (steps.get("reconnect") or {}).get("answer"), steps.get("consultation"), steps.get("consultation_feedback")]
    return [t for t in turns if t]
