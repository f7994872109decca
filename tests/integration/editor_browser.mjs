// Drives the knowledge-base editors' page (/editor, api/static/editor.*) in headless Chromium the way an editor
// would, against the real services, and prints one JSON report on stdout. tests/integration/test_editor_browser.py
// starts the servers, creates the editor token and an unanswered question, runs this script and asserts on the
// report; the script itself only acts and records what a person would see (plus what the public self-query
// endpoint serves citizens at each point).
//
//   node editor_browser.mjs --url http://127.0.0.1:8000/editor --token jsjb_… --entry residence-permit-apply
//        --search 居住证 --question 居住证怎么办理 --unanswered 北京动物园几点开门 --download-dir DIR
//        [--screenshot a.png] [--chromium /usr/bin/chromium] [--timeout-ms 60000]
//
// The session: the page asks for a token (empty and wrong tokens are refused with a message); the editor logs in,
// searches, opens the entry, empties the answer and saves (the API's validation error is shown on the field, the
// rest of the form is kept), writes a new answer, loses the token (the save is refused, the login panel comes back,
// the form keeps the new answer), logs in again and saves; previews the draft; publishes (the public endpoint now
// serves the new answer); reads the history; rolls back to version 1 (served again); types without saving and
// reloads the page (the text comes back), then discards it; opens the unanswered question; creates an entry from it
// (and meets a concurrent edit by someone else: refused, text kept, saved on top of theirs)
// and creates an entry from it; imports a file with a bad row (row errors shown, nothing imported); exports JSON.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

function parseArgs(argv) {
  const args = { screenshots: [], chromium: "/usr/bin/chromium", timeoutMs: 60000 };
  const names = { "--url": "url", "--token": "token", "--entry": "entry", "--search": "search", "--question": "question",
    "--unanswered": "unanswered", "--download-dir": "downloadDir", "--chromium": "chromium" };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i];
    const value = argv[i + 1];
    if (key === "--screenshot") args.screenshots.push(value);
    else if (key === "--timeout-ms") args.timeoutMs = Number(value);
    else if (names[key]) args[names[key]] = value;
    else throw new Error(`unknown argument ${key}`);
  }
  for (const k of ["url", "token", "entry", "search", "question", "unanswered", "downloadDir"]) {
    if (!args[k]) throw new Error(`--${k} is required`);
  }
  return args;
}

const args = parseArgs(process.argv.slice(2));
const T = args.timeoutMs;
const ORIGIN = new URL(args.url).origin;
const NEW_ANSWER = "【编辑台测试】持有效身份证件和居住登记信息，到居住地派出所或通过“北京通”线上申领居住证。";
const NOTE = "更新办理渠道";
const NEW_ENTRY_ID = "editor-ui-from-unanswered";
const UNSAVED_TEXT = "【编辑台测试】还没保存的修改";
const NEW_ENTRY_ANSWER = "【编辑台测试】开放时间以官方公告为准，旺季与淡季不同。";

const report = { ok: false, url: args.url, steps: {}, dialogs: [], console_errors: [], page_errors: [],
  failed_responses: [], screenshots: [], timings_ms: {} };
const t0 = Date.now();
const mark = (name) => { report.timings_ms[name] = Date.now() - t0; };

let context = null;
let page = null;
const userDataDir = mkdtempSync(join(tmpdir(), "jsjb-editor-chromium-"));

const tid = (id) => page.locator(`[data-testid="${id}"]`);
async function text(id) { return ((await tid(id).first().textContent()) || "").trim(); }
async function visible(id) { return tid(id).first().isVisible(); }
async function value(name) { return page.locator(`[data-testid="field-${name}"]`).inputValue(); }

// Waits until the element shows text matching `re` (visible); returns the text.
async function waitText(id, re, what) {
  try {
    await page.waitForFunction(([sel, source]) => {
      const node = document.querySelector(sel);
      return node && !node.hidden && new RegExp(source).test(node.textContent || "");
    }, [`[data-testid="${id}"]`, re.source], { timeout: T });
  } catch (err) {
    throw new Error(`${what}: [data-testid=${id}] never showed /${re.source}/; it shows ${JSON.stringify(await text(id))}`);
  }
  return text(id);
}

// What citizens are served now for the question (the public self-query endpoint, no login).
async function publicAnswer(question) {
  const r = await fetch(`${ORIGIN}/api/kb/search?q=${encodeURIComponent(question)}`);
  const body = await r.json();
  return { status: r.status, answered: body.answered, entry_id: body.entry_id, answer: body.answer, version: body.version };
}

async function historyRows() {
  return page.locator('[data-testid="history-row"]').evaluateAll((rows) => rows.map((r) => ({
    version: Number(r.dataset.version),
    action: r.querySelector('[data-testid="history-action"]').textContent,
    author: r.querySelector('[data-testid="history-author"]').textContent,
    note: r.querySelector('[data-testid="history-note"]').textContent,
    served: r.textContent.includes("线上"),
    can_roll_back: !!r.querySelector('[data-testid="history-rollback"]'),
  })));
}

async function screenshot() {
  for (const path of args.screenshots) {
    try {
      await page.screenshot({ path, fullPage: true });
      report.screenshots.push(path);
    } catch (e) {
      report.console_errors.push({ text: `screenshot ${path} failed: ${e.message}` });
    }
  }
}

async function main() {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: args.chromium,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
    viewport: { width: 1280, height: 1000 },
    locale: "zh-CN",
    acceptDownloads: true,
  });
  page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(T);
  page.on("dialog", async (d) => { report.dialogs.push({ type: d.type(), message: d.message() }); await d.accept(); });
  page.on("console", (msg) => { if (msg.type() === "error") report.console_errors.push({ text: msg.text() }); });
  page.on("pageerror", (err) => report.page_errors.push(String(err && err.stack || err)));
  page.on("response", (r) => { if (r.status() >= 400) report.failed_responses.push({ status: r.status(), url: r.url() }); });

  // 1. the page asks for a token; an empty and a wrong one are refused with a message
  const resp = await page.goto(args.url, { waitUntil: "domcontentloaded" });
  const load = { http_status: resp ? resp.status() : null, title: await page.title(),
    login_visible: await visible("login-panel"), app_visible: await page.locator("#app").isVisible() };
  await tid("login-button").click();
  load.empty_token_error = await waitText("login-error", /令牌/, "empty token");
  await tid("token-input").fill("jsjb_this-is-not-a-valid-token");
  await tid("login-button").click();
  load.wrong_token_error = await waitText("login-error", /无效/, "wrong token");
  load.app_visible_after_wrong_token = await page.locator("#app").isVisible();
  report.steps.load = load;
  mark("login_refused");

  // 2. login with the editor's token
  await tid("token-input").fill(args.token);
  await tid("login-button").click();
  const login = { who: await waitText("who", /当前编辑/, "login") };
  await page.locator('[data-testid="result"]').first().waitFor();
  login.login_visible = await visible("login-panel");
  login.results_after_login = await page.locator('[data-testid="result"]').count();
  login.total_text = await text("search-total");
  login.token_in_session_storage = await page.evaluate(() => !!sessionStorage.getItem("jsjb-editor-token"));
  login.token_in_local_storage = await page.evaluate(() => Object.keys(localStorage).length > 0);
  report.steps.login = login;
  mark("logged_in");

  // 3. search (published only) and open the entry
  await tid("search-input").fill(args.search);
  await tid("search-status").selectOption("published");
  await tid("search-button").click();
  await page.waitForFunction((q) => {
    const rows = [...document.querySelectorAll('[data-testid="result"]')];
    return rows.length > 0 && rows.every((r) => r.textContent.includes("已发布")) && rows.some((r) => r.textContent.includes(q));
  }, args.search, { timeout: T });
  const search = {
    results: await page.locator('[data-testid="result"]').evaluateAll((rows) => rows.map((r) => ({
      id: r.dataset.entryId, text: r.textContent }))),
    total_text: await text("search-total"),
  };
  await page.locator(`[data-testid="result"][data-entry-id="${args.entry}"] button`).click();
  await tid("entry-form").waitFor();
  await page.waitForFunction(() => document.querySelector('[data-testid="history-row"]'), null, { timeout: T });
  search.opened = { title: await text("entry-title"), status: await text("entry-status"), version: await text("entry-version"),
    question: await value("question"), answer: await value("answer"), department: await value("department"),
    id_disabled: await tid("field-id").isDisabled(), history: await historyRows() };
  report.steps.search = search;
  const originalAnswer = search.opened.answer;
  report.steps.public_before = await publicAnswer(args.question);
  mark("opened");

  // 4. an invalid save: the API's validation error is shown on the field; nothing typed is lost
  await tid("field-note").fill(NOTE);
  await tid("field-answer").fill("");
  await tid("save-draft").click();
  const invalid = { form_error: await waitText("form-error", /失败/, "validation error") };
  invalid.field_error = await text("field-error-answer");
  invalid.note_kept = await value("note");
  invalid.question_kept = await value("question");
  report.steps.invalid = invalid;

  // 5. a new answer; the token is lost (revoked/mistyped): the save is refused, the form keeps the text
  await tid("field-answer").fill(NEW_ANSWER);
  await page.evaluate(() => sessionStorage.setItem("jsjb-editor-token", "jsjb_revoked-token"));
  await tid("save-draft").click();
  const lost = { form_error: await waitText("form-error", /令牌/, "save with a bad token") };
  lost.login_visible = await visible("login-panel");
  lost.login_error = await text("login-error");
  lost.answer_kept = await value("answer");
  lost.note_kept = await value("note");
  await tid("token-input").fill(args.token);
  await tid("login-button").click();
  lost.notice_after_login = await waitText("notice", /重新登录/, "re-login");
  lost.answer_after_login = await value("answer");
  await tid("save-draft").click();
  lost.saved = await waitText("form-ok", /已保存第/, "save after re-login");
  lost.pending_banner = await text("pending-banner");
  lost.status = await text("entry-status");
  report.steps.token_lost = lost;
  report.steps.public_after_save = await publicAnswer(args.question);
  mark("saved");

  // 6. preview the draft as the bot would answer
  await tid("preview-input").fill(args.question);
  await tid("preview-drafts").check();
  await tid("preview-button").click();
  await page.waitForFunction((a) => (document.querySelector('[data-testid="preview-answer"]') || {}).textContent === a,
    NEW_ANSWER, { timeout: T }).catch(() => {});
  report.steps.preview_draft = { meta: await text("preview-meta"), answer: await text("preview-answer") };

  // 7. publish: citizens get the new answer at once
  await tid("publish").click();
  const publish = { message: await waitText("form-ok", /已发布第/, "publish") };
  publish.status = await text("entry-status");
  publish.pending_banner_visible = await visible("pending-banner");
  report.steps.publish = publish;
  report.steps.public_after_publish = await publicAnswer(args.question);
  await tid("preview-drafts").uncheck();
  await tid("preview-button").click();
  await page.waitForFunction(() => /已发布/.test((document.querySelector('[data-testid="preview-meta"]') || {}).textContent || ""),
    null, { timeout: T }).catch(() => {});
  report.steps.preview_published = { meta: await text("preview-meta"), answer: await text("preview-answer") };
  mark("published");

  // 8. history: who, when, why
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid="history-row"]').length >= n,
    search.opened.history.length + 2, { timeout: T });
  report.steps.history = await historyRows();

  // 9. roll back to version 1: served again at once
  await page.locator('[data-testid="history-row"][data-version="1"] [data-testid="history-rollback"]').click();
  const rollback = { message: await waitText("form-ok", /已回滚到第 1 版/, "rollback") };
  rollback.answer_field = await value("answer");
  rollback.answer_is_original = rollback.answer_field === originalAnswer;
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid="history-row"]').length >= n,
    report.steps.history.length + 1, { timeout: T });
  rollback.history_top = (await historyRows())[0];
  report.steps.rollback = rollback;
  report.steps.public_after_rollback = await publicAnswer(args.question);
  report.steps.original_answer = originalAnswer;
  mark("rolled_back");

  // 10. unsaved text survives a reload of the page (kept in this tab's sessionStorage); "重新载入" discards it
  await tid("field-answer").fill(UNSAVED_TEXT);
  await page.reload({ waitUntil: "domcontentloaded" });
  const reload = { notice: await waitText("notice", /已恢复/, "restore after reload") };
  reload.who = await text("who");
  reload.title = await text("entry-title");
  reload.answer = await value("answer");
  await tid("reload-entry").click();
  await page.waitForFunction((a) => document.querySelector('[data-testid="field-answer"]').value === a, originalAnswer,
    { timeout: T }).catch(() => {});
  reload.answer_after_discard = await value("answer");
  reload.backup_left = await page.evaluate(() => sessionStorage.getItem("jsjb-editor-unsaved"));
  report.steps.reload = reload;

  // 11. the unanswered questions, and one entry created from one of them
  await tid("tab-unanswered").click();
  const row = page.locator('[data-testid="unanswered-row"]', { hasText: args.unanswered });
  await row.first().waitFor();
  const unanswered = { tab: await text("tab-unanswered"), total: await text("unanswered-total"),
    question: await row.first().locator('[data-testid="unanswered-question"]').textContent(),
    count: await row.first().locator('[data-testid="unanswered-count"]').textContent() };
  await row.first().locator('[data-testid="create-from-unanswered"]').click();
  await tid("entry-form").waitFor();
  unanswered.banner = await text("from-unanswered");
  unanswered.question_prefilled = await value("question");
  unanswered.title = await text("entry-title");
  await tid("field-id").fill(NEW_ENTRY_ID);
  await tid("field-answer").fill(NEW_ENTRY_ANSWER);
  await tid("save-draft").click();
  unanswered.saved = await waitText("form-ok", /已新建草稿/, "create from unanswered");
  unanswered.status = await text("entry-status");
  unanswered.version = await text("entry-version");
  await page.waitForFunction(() => {
    const rows = document.querySelectorAll('[data-testid="history-row"]');
    return rows.length === 1 && rows[0].dataset.version === "1";
  }, null, { timeout: T }).catch(() => {});
  unanswered.history = await historyRows();

  // meanwhile someone else saves that entry: this editor's save is refused (409) and the form keeps the text;
  // "以最新版本为基础，保留我的修改" takes the other version as the base and the save goes through
  const other = await fetch(`${ORIGIN}/api/kb/entries/${NEW_ENTRY_ID}`, { method: "PATCH",
    headers: { Authorization: `Bearer ${args.token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ source: "北京动物园官网", note: "另一位编辑的修改", expected_version: 1 }) });
  const conflict = { other_save_status: other.status };
  await tid("field-tags").fill("动物园，开放时间");
  await tid("save-draft").click();
  conflict.form_error = await waitText("form-error", /已更新到第 2 版/, "conflicting save");
  conflict.tags_kept = await value("tags");
  await tid("rebase").click();
  conflict.rebased = await waitText("form-ok", /已改为基于第 2 版/, "rebase");
  await tid("save-draft").click();
  conflict.saved = await waitText("form-ok", /已保存第/, "save after rebase");
  conflict.tags = await value("tags");
  conflict.source = await value("source");
  report.steps.conflict = conflict;

  await tid("tab-unanswered").click();
  await page.waitForFunction((q) => ![...document.querySelectorAll('[data-testid="unanswered-row"]')]
    .some((r) => r.textContent.includes(q)), args.unanswered, { timeout: T }).catch(() => {});
  unanswered.still_listed = await row.count();
  report.steps.unanswered = unanswered;
  mark("from_unanswered");

  // 11b. a citizen found an answer unhelpful (the bot's 没帮助): listed with the entry; "加为反例" (confirmed) adds
  // the question to that entry's counter-examples and publishes
  const UNHELPFUL = "居住证的事儿找谁问比较靠谱啊";
  const posted = await fetch(`${ORIGIN}/api/kb/feedback`, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ question: UNHELPFUL, entry_id: args.entry, helpful: false }) });
  const unhelpful = { feedback_status: posted.status };
  await tid("unanswered-refresh").click();
  const unhelpfulRow = page.locator('[data-testid="unanswered-row"]', { hasText: UNHELPFUL });
  await unhelpfulRow.first().waitFor({ timeout: T });
  unhelpful.kind = await unhelpfulRow.first().locator('[data-testid="unanswered-kind"]').textContent();
  await unhelpfulRow.first().locator('[data-testid="counter-from-unanswered"]').click();
  await page.waitForFunction((q) => ![...document.querySelectorAll('[data-testid="unanswered-row"]')]
    .some((r) => r.textContent.includes(q)), UNHELPFUL, { timeout: T }).catch(() => {});
  unhelpful.still_listed = await unhelpfulRow.count();
  const entry = await (await fetch(`${ORIGIN}/api/kb/entries/${args.entry}`,
    { headers: { Authorization: `Bearer ${args.token}` } })).json();
  unhelpful.counter_examples = entry.counter_examples;
  unhelpful.unpublished_changes = entry.unpublished_changes;
  unhelpful.question = UNHELPFUL;
  report.steps.unhelpful = unhelpful;

  // 12. bulk import of a file with a bad row: row-level errors shown, nothing imported
  await tid("tab-transfer").click();
  const rows = [{ id: "editor-ui-import-ok", question: "编辑台导入的问题？", answer: "编辑台导入的答案。" },
    { id: "editor-ui-import-bad", question: "缺少答案的问题？" }];
  await tid("import-file").setInputFiles({ name: "条目.json", mimeType: "application/json",
    buffer: Buffer.from(JSON.stringify(rows)) });
  await tid("import-button").click();
  const imported = { result: await waitText("import-result", /错误/, "import") };
  imported.error_rows = await page.locator('[data-testid="import-error-row"]').evaluateAll((trs) =>
    trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent)));
  report.steps.import = imported;

  // 13. export JSON (a download)
  await tid("export-format").selectOption("json");
  const [download] = await Promise.all([page.waitForEvent("download", { timeout: T }), tid("export-button").click()]);
  const path = join(args.downloadDir, download.suggestedFilename());
  await download.saveAs(path);
  const exported = JSON.parse(readFileSync(path, "utf-8"));
  report.steps.export = { filename: download.suggestedFilename(), entries: exported.length,
    ids: exported.map((e) => e.id).filter((id) => id.startsWith("editor-ui-") || id === args.entry),
    message: await waitText("export-result", /已导出/, "export") };
  mark("done");

  await tid("tab-entries").click();
  await screenshot();
  report.ok = true;
}

try {
  await main();
} catch (err) {
  report.error = String(err && err.stack || err);
  if (page) await screenshot();
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(report) + "\n");
