"""The knowledge-base editors' page (/editor) in a real browser: headless Chromium (/usr/bin/chromium) driven by
Playwright (tests/integration/editor_browser.mjs, playwright-core from npm) against the services started for real
(the ``system`` fixture of tests/integration/conftest.py, shared with the other end-to-end tests).

The fixture creates an editor token in the system's database and makes a citizen ask a question the knowledge base
cannot answer (public self-query), then runs the browser script once; the tests assert on its report what an editor
would see, and on what the public self-query endpoint serves citizens after each step. A screenshot of the page goes
to the test's tmp dir and to var/editor-screenshot.png.
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

from scripts.system import System
from tests.integration.conftest import RASA_MODEL

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).resolve().parent / "editor_browser.mjs"
CHROMIUM = Path(os.environ.get("JSJB_CHROMIUM", "/usr/bin/chromium"))
PLAYWRIGHT = ROOT / "node_modules" / "playwright-core"
SCREENSHOT = ROOT / "var" / "editor-screenshot.png"

ENTRY = "residence-permit-apply"  # a seed entry (knowledge_base/seed/entries_part1.yaml)
SEARCH = "居住证怎么办理"
QUESTION = "居住证怎么办理"
NEW_ANSWER = "【编辑台测试】持有效身份证件和居住登记信息，到居住地派出所或通过“北京通”线上申领居住证。"
NOTE = "更新办理渠道"
UNSAVED_TEXT = "【编辑台测试】还没保存的修改"
NEW_ENTRY_ID = "editor-ui-from-unanswered"
EDITOR_NAME = "集成测试编辑"
# questions the seed knowledge base should decline; the first one declined becomes the unanswered question
UNANSWERABLE = ("北京动物园几点开门", "这期双色球开奖号码是多少", "明天晚上的足球比赛谁会赢")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not RASA_MODEL.exists(), reason="no trained Rasa model: run `make setup` first"),
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"no Chromium at {CHROMIUM}: `apt-get install chromium` (.ci/run installs it)"),
    pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed"),
    pytest.mark.skipif(not PLAYWRIGHT.exists(), reason="npm packages (playwright-core) not installed: run `make setup`"),
]


def _editor_token(system: System) -> str:
    from api.auth import create_token
    from core.db import make_engine, session_factory

    engine = make_engine(system.env["JSJB_DATABASE_URL"])
    with session_factory(engine)() as session:
        token = create_token(session, "editor", EDITOR_NAME)
    engine.dispose()
    return token


def _declined_question(system: System) -> str:
    """Ask as a citizen (public self-query) until one question is declined: it is then logged as unanswered."""
    for question in UNANSWERABLE:
        r = httpx.get(f"{system.api_url}/api/kb/search", params={"q": question}, timeout=60)
        assert r.status_code == 200, r.text
        if not r.json()["answered"]:
            return question
    pytest.fail(f"the knowledge base answered every one of {UNANSWERABLE}: no unanswered question to work with")


@pytest.fixture(scope="module")
def report(system: System, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("editor_browser")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    token = _editor_token(system)
    unanswered = _declined_question(system)
    cmd = ["node", str(SCRIPT), "--url", f"{system.api_url}/editor", "--token", token, "--entry", ENTRY,
           "--search", SEARCH, "--question", QUESTION, "--unanswered", unanswered, "--download-dir", str(out),
           "--chromium", str(CHROMIUM), "--screenshot", str(out / "editor.png"), "--screenshot", str(SCREENSHOT)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines, f"browser script failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}"
    result = json.loads(lines[-1])
    result["unanswered_question"] = unanswered
    result["token"] = token
    (out / "report.json").write_text(json.dumps({k: v for k, v in result.items() if k != "token"}, ensure_ascii=False,
                                                indent=1), encoding="utf-8")
    return result


def step(report: dict, name: str):
    if name not in report["steps"]:
        pytest.fail(f"the browser session stopped before step {name!r}: {report.get('error')}\n"
                    f"steps done: {json.dumps(report['steps'], ensure_ascii=False)[:4000]}")
    return report["steps"][name]


def test_page_asks_for_a_token_and_refuses_missing_or_wrong_ones(report: dict):
    load = step(report, "load")
    assert load["http_status"] == 200 and "知识库编辑台" in load["title"]
    assert load["login_visible"] and not load["app_visible"]
    assert "请先粘贴编辑令牌" in load["empty_token_error"]
    assert "令牌无效或已吊销" in load["wrong_token_error"] and not load["app_visible_after_wrong_token"]
    login = step(report, "login")
    assert login["who"] == f"当前编辑：{EDITOR_NAME}（editor）"
    assert not login["login_visible"] and login["results_after_login"] > 0 and re.match(r"共 \d+ 条", login["total_text"])
    assert login["token_in_session_storage"] and not login["token_in_local_storage"]


def test_search_with_status_filter_opens_the_entry(report: dict):
    search = step(report, "search")
    assert ENTRY in [r["id"] for r in search["results"]]
    assert all("已发布" in r["text"] for r in search["results"])
    opened = search["opened"]
    assert "居住证" in opened["question"] and opened["status"] == "已发布" and opened["id_disabled"]
    assert f"编号 {ENTRY}" in opened["version"] and "线上第 1 版" in opened["version"]
    assert opened["answer"] and opened["history"] and opened["history"][0]["served"]
    before = step(report, "public_before")
    assert before["answered"] and before["entry_id"] == ENTRY and before["answer"] == opened["answer"]


def test_validation_error_is_shown_on_the_field_and_the_form_is_kept(report: dict):
    invalid = step(report, "invalid")
    assert invalid["form_error"].startswith("保存失败") and "标红" in invalid["form_error"]
    assert "没有丢失" in invalid["form_error"]
    assert invalid["field_error"] == "不能为空"
    assert invalid["note_kept"] == NOTE and "居住证" in invalid["question_kept"]


def test_a_lost_token_loses_nothing_typed(report: dict):
    lost = step(report, "token_lost")
    assert "令牌无效" in lost["form_error"] and "保留" in lost["form_error"]
    assert lost["login_visible"] and "令牌" in lost["login_error"]
    assert lost["answer_kept"] == NEW_ANSWER and lost["note_kept"] == NOTE
    assert lost["answer_after_login"] == NEW_ANSWER
    assert re.search(r"已保存第 \d+ 版（尚未发布，市民仍看到第 1 版）", lost["saved"]), lost["saved"]
    assert "尚未发布的修改" in lost["pending_banner"] and lost["status"] == "已发布"
    # saved, not yet published: citizens still get the old answer
    served = step(report, "public_after_save")
    assert served["entry_id"] == ENTRY and served["answer"] != NEW_ANSWER


def test_preview_answers_as_the_bot_would(report: dict):
    draft = step(report, "preview_draft")
    assert draft["answer"] == NEW_ANSWER and ENTRY in draft["meta"] and "未发布内容" in draft["meta"]
    published = step(report, "preview_published")
    assert published["answer"] == NEW_ANSWER and "已发布" in published["meta"]


def test_publish_serves_the_new_answer_to_citizens(report: dict):
    publish = step(report, "publish")
    assert re.search(r"已发布第 \d+ 版", publish["message"]) and publish["status"] == "已发布"
    assert not publish["pending_banner_visible"]
    served = step(report, "public_after_publish")
    assert served["answered"] and served["entry_id"] == ENTRY and served["answer"] == NEW_ANSWER


def test_history_shows_who_when_why(report: dict):
    history = step(report, "history")
    top, edit = history[0], history[1]
    assert top["action"] == "发布" and top["served"] and not top["can_roll_back"]
    assert edit["action"] == "编辑" and edit["note"] == NOTE and edit["author"].startswith(f"{EDITOR_NAME}（editor#")
    assert history[-1]["version"] == 1 and history[-1]["can_roll_back"]
    assert sum(r["served"] for r in history) == 1


def test_roll_back_restores_the_old_answer_for_citizens(report: dict, system: System):
    rollback = step(report, "rollback")
    assert "已立即生效" in rollback["message"] and rollback["answer_is_original"]
    assert rollback["history_top"]["action"] == "回滚" and rollback["history_top"]["served"]
    served = step(report, "public_after_rollback")
    assert served["answered"] and served["entry_id"] == ENTRY and served["answer"] == step(report, "original_answer")
    now = httpx.get(f"{system.api_url}/api/kb/search", params={"q": QUESTION}).json()
    assert now["answer"] == step(report, "original_answer")


def test_unsaved_text_survives_a_reload_until_discarded(report: dict):
    reload = step(report, "reload")
    assert "已恢复上次未保存的修改" in reload["notice"] and reload["who"].startswith("当前编辑")
    assert reload["answer"] == UNSAVED_TEXT and "居住证" in reload["title"]
    assert reload["answer_after_discard"] == step(report, "original_answer") and reload["backup_left"] is None
    assert any("未保存的修改" in d["message"] for d in report["dialogs"])


def test_entry_created_from_an_unanswered_question(report: dict, system: System):
    u = step(report, "unanswered")
    question = report["unanswered_question"]
    assert re.match(r"未答问题（\d+）", u["tab"]) and int(u["count"]) >= 1 and question in u["question"]
    assert u["question_prefilled"] == u["question"] and question in u["banner"] and "被问" in u["banner"]
    assert f"已新建草稿 {NEW_ENTRY_ID}" in u["saved"] and u["status"] == "草稿"
    assert u["history"][0]["note"].startswith("由未答问题") and u["history"][0]["author"].startswith(EDITOR_NAME)
    assert u["still_listed"] == 0
    entry = httpx.get(f"{system.api_url}/api/kb/entries/{NEW_ENTRY_ID}",
                      headers={"Authorization": f"Bearer {report['token']}"}).json()
    assert entry["status"] == "draft" and entry["question"] == u["question"]


def test_an_answer_a_citizen_found_unhelpful_becomes_a_counter_example_from_the_list(report: dict):
    u = step(report, "unhelpful")
    assert u["feedback_status"] == 200 and u["kind"] == "答复没帮助"
    assert u["still_listed"] == 0 and u["question"] in u["counter_examples"]
    assert u["unpublished_changes"] is False  # published at once
    assert any("加为条目" in d["message"] and "反例" in d["message"] for d in report["dialogs"])


def test_a_concurrent_edit_is_refused_without_losing_the_text(report: dict):
    conflict = step(report, "conflict")
    assert conflict["other_save_status"] == 200
    assert "已更新到第 2 版" in conflict["form_error"] and "保留" in conflict["form_error"]
    assert conflict["tags_kept"] == "动物园，开放时间" and "第 2 版" in conflict["rebased"]
    assert "已保存第 3 版" in conflict["saved"]
    # saved on top of the other editor's version: both changes are in the entry
    assert conflict["tags"] == "动物园，开放时间" and conflict["source"] == "北京动物园官网"


def test_import_shows_row_errors_and_export_downloads(report: dict, system: System):
    imported = step(report, "import")
    assert "未导入" in imported["result"] and "1 处错误" in imported["result"]
    assert imported["error_rows"] == [["第 2 行", "editor-ui-import-bad", "答案", "必填"]]
    r = httpx.get(f"{system.api_url}/api/kb/entries/editor-ui-import-ok",
                  headers={"Authorization": f"Bearer {report['token']}"})
    assert r.status_code == 404, "a refused import still created an entry"
    exported = step(report, "export")
    assert exported["filename"].endswith(".json") and exported["entries"] >= 200
    assert {ENTRY, NEW_ENTRY_ID} <= set(exported["ids"]) and "已导出" in exported["message"]


def test_no_script_errors_and_a_screenshot(report: dict):
    step(report, "export")
    assert report["ok"], report.get("error")
    assert not report["page_errors"], report["page_errors"]
    # the refusals the session provokes on purpose: the wrong tokens (401), the invalid save and import (422) and
    # the save that met a concurrent edit (409)
    unexpected = [r for r in report["failed_responses"]
                  if not (r["status"] == 401 and "/api/kb/" in r["url"])
                  and not (r["status"] == 422 and re.search(r"/api/kb/entries(/[^/?]+|/import\?.*)$", r["url"]))
                  and not (r["status"] == 409 and r["url"].endswith(f"/api/kb/entries/{NEW_ENTRY_ID}"))]
    assert not unexpected, report["failed_responses"]
    # Chromium logs every refused fetch as a console error; anything else is a script problem
    assert all("status of 4" in e["text"] for e in report["console_errors"]), report["console_errors"]
    assert len(report["screenshots"]) == 2
    for path in report["screenshots"]:
        assert Path(path).stat().st_size > 10_000, path
