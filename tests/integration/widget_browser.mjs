// Drives the chat page (api/static/widget.js) in headless Chromium the way a citizen would, against the real
// servers, and prints one JSON report on stdout. tests/integration/test_widget_browser.py starts the servers,
// runs this script and asserts on the report; the script itself only observes and records.
//
//   node widget_browser.mjs --url http://127.0.0.1:8000/ --screenshot a.png [--screenshot b.png]
//                           [--chromium /usr/bin/chromium] [--timeout-ms 90000]
//
// The conversation: the page loads and greets; a complaint is typed (user bubble, typing indicator, bot answer);
// the intake questions are answered up to the contact question; the page is reloaded (history still shown, the bot
// still expects the contact answer); the connection is dropped (status shows reconnecting, then 在线 again) and
// at the read-back the citizen clicks 需要修改 and types a corrected address (the read-back comes again); the
// confirmation sent after the reconnect is answered with a work-order number; then a consultation asks
// "这个回答对您有帮助吗？". Wherever the bot offers quick-reply buttons for an answer, a button is clicked instead of
// typing; every turn records how many buttons were left on the page right after sending.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

function parseArgs(argv) {
  const args = { url: null, screenshots: [], chromium: "/usr/bin/chromium", timeoutMs: 90000 };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i];
    const value = argv[i + 1];
    if (key === "--url") { args.url = value; i++; }
    else if (key === "--screenshot") { args.screenshots.push(value); i++; }
    else if (key === "--chromium") { args.chromium = value; i++; }
    else if (key === "--timeout-ms") { args.timeoutMs = Number(value); i++; }
    else throw new Error(`unknown argument ${key}`);
  }
  if (!args.url) throw new Error("--url is required");
  return args;
}

const args = parseArgs(process.argv.slice(2));
const T = args.timeoutMs;
const SEL = {
  status: '[data-testid="connection-status"]',
  bot: '[data-testid="bot-message"]',
  user: '[data-testid="user-message"]',
  typing: '[data-testid="typing"]',
  input: '[data-testid="chat-input"]',
  quick: '[data-testid="quick-reply"]',
};
const ONLINE = "在线";
const COMPLAINT = "我家楼下饭馆的油烟太大了，每天中午晚上呛得没法开窗，在朝阳区望京西园三区";
const DESCRIPTION = "饭馆排油烟的管子正对着我家窗户，每天中午晚上呛得没法开窗";
const ADDRESS = "朝阳区望京西园三区";
const CONSULTATION = "居住证怎么办理";

// Recorded in the page from the first moment: typing-indicator visibility changes and new chat rows, in order.
// Mutation callbacks run once per task; the widget shows/hides the indicator at most once per task, so reading the
// state in the callback gives each change.
function pageRecorder() {
  window.__jsjbEvents = [];
  let lastTyping = null;
  const observer = new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === "attributes" && r.target.dataset && r.target.dataset.testid === "typing") {
        const visible = !r.target.hidden;
        if (visible !== lastTyping) {
          lastTyping = visible;
          window.__jsjbEvents.push({ t: performance.now(), kind: "typing", visible });
        }
      }
      if (r.type === "childList") {
        r.addedNodes.forEach((n) => {
          const id = n.dataset && n.dataset.testid;
          if (id === "bot-message" || id === "user-message") {
            window.__jsjbEvents.push({ t: performance.now(), kind: id === "bot-message" ? "bot" : "user",
              text: n.querySelector(".jsjb-bubble") ? n.querySelector(".jsjb-bubble").textContent : n.textContent });
          }
        });
      }
    }
  });
  observer.observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ["hidden"] });
}

const report = {
  ok: false,
  url: args.url,
  steps: {},
  quick_replies: { offered: [], clicked: [] },
  transcript: [],
  console_errors: [],
  failed_responses: [],
  page_errors: [],
  screenshots: [],
  timings_ms: {},
};
const t0 = Date.now();
const mark = (name) => { report.timings_ms[name] = Date.now() - t0; };

let context = null;
let page = null;
const userDataDir = mkdtempSync(join(tmpdir(), "jsjb-widget-chromium-"));

async function statusText() { return (await page.locator(SEL.status).textContent()) || ""; }
async function messages(selector) {
  return page.locator(selector).evaluateAll((rows) => rows.map((r) => {
    const b = r.querySelector(".jsjb-bubble");
    return (b ? b.textContent : r.textContent) || "";
  }));
}
async function events() { return page.evaluate(() => window.__jsjbEvents.slice()); }

async function waitForStatus(predicate, what) {
  const started = Date.now();
  const seen = [];
  while (Date.now() - started < T) {
    const s = await statusText();
    if (seen[seen.length - 1] !== s) seen.push(s);
    if (predicate(s)) return seen;
    await page.waitForTimeout(50);
  }
  throw new Error(`status never became ${what}; seen: ${JSON.stringify(seen)}`);
}

// Waits until the bot has answered after `before` bot rows: at least one new row, then no further row for `quietMs`.
async function waitForBotTurn(before, quietMs = 1500) {
  try {
    await page.waitForFunction(([sel, n]) => document.querySelectorAll(sel).length > n, [SEL.bot, before],
      { timeout: T });
  } catch (err) {
    throw new Error(`no answer from the bot within ${T / 1000} s (connection status: ${await statusText()}): `
      + "Rasa's bot_uttered never reached the page");
  }
  let count = await page.locator(SEL.bot).count();
  let since = Date.now();
  while (Date.now() - since < quietMs) {
    await page.waitForTimeout(200);
    const now = await page.locator(SEL.bot).count();
    if (now !== count) { count = now; since = Date.now(); }
  }
  const all = await messages(SEL.bot);
  return all.slice(before);
}

async function lastBotButtons() {
  return page.evaluate(([botSel, quickSel]) => {
    const rows = document.querySelectorAll(botSel);
    const last = rows[rows.length - 1];
    return last ? [...last.querySelectorAll(quickSel)].map((b) => b.textContent) : [];
  }, [SEL.bot, SEL.quick]);
}

async function lastBotPayloads() {
  return page.evaluate(([botSel, quickSel]) => {
    const rows = document.querySelectorAll(botSel);
    const last = rows[rows.length - 1];
    return last ? [...last.querySelectorAll(quickSel)].map((b) => b.dataset.payload) : [];
  }, [SEL.bot, SEL.quick]);
}

// One citizen turn: click the quick reply that matches `want` when the bot offers buttons, else type `text`.
// Returns what a person would notice.
async function say(text, { want = null, step = null } = {}) {
  const botBefore = await page.locator(SEL.bot).count();
  const userBefore = await page.locator(SEL.user).count();
  const evBefore = (await events()).length;
  const buttons = await lastBotButtons();
  const turn = { sent: text, via: "typed", buttons_offered: buttons };
  if (buttons.length) {
    const lastBot = (await messages(SEL.bot)).pop();
    const payloads = await lastBotPayloads();
    report.quick_replies.offered.push({ step, prompt: lastBot, buttons, payloads });
    const index = buttons.findIndex((b) => want && want.test(b));
    if (index >= 0) {
      const choice = buttons[index];
      await page.locator(SEL.bot).last().locator(SEL.quick).nth(index).click();
      turn.sent = choice;
      turn.payload = payloads[index];
      turn.via = "quick-reply";
      turn.buttons_left_after_click = await page.locator(SEL.quick).count();
      report.quick_replies.clicked.push({ step, title: choice, payload: payloads[index] });
    }
  }
  if (turn.via === "typed") {
    await page.locator(SEL.input).fill(text);
    await page.locator(SEL.input).press("Enter");
    turn.input_cleared = (await page.locator(SEL.input).inputValue()) === "";
  }
  turn.buttons_left_after_send = await page.locator(SEL.quick).count();
  turn.step = step;
  const users = await messages(SEL.user);
  turn.user_bubble = users.length > userBefore ? users[users.length - 1] : null;
  turn.replies = await waitForBotTurn(botBefore);
  turn.typing_visible_after_answer = await page.locator(SEL.typing).isVisible();
  // order of what the page showed during this turn: user bubble, indicator on, indicator off, bot bubble
  turn.page_events = (await events()).slice(evBefore).map((e) =>
    e.kind === "typing" ? `typing:${e.visible ? "on" : "off"}` : e.kind);
  // read from the page's own record, not sampled with isVisible() after sending: a fast answer (~20 ms) can hide
  // the indicator again before a sample taken a few browser round trips later
  const sentAt = turn.page_events.indexOf("user");
  turn.typing_visible_right_after_send = sentAt >= 0 && turn.page_events[sentAt + 1] === "typing:on";
  turn.buttons_on_answer = await lastBotButtons();
  report.transcript.push(...(turn.user_bubble ? [`市民：${turn.user_bubble}`] : []), ...turn.replies.map((r) => `助手：${r}`));
  return turn;
}

function answerFor(prompt) {
  if (/保密/.test(prompt)) return { text: "不需要", want: /不需要|否|不/ };
  if (/电话|匿名|联系/.test(prompt)) return { contact: true };
  if (/哪个区|什么位置|地址/.test(prompt)) return { text: ADDRESS };
  if (/发生了什么|具体情况|描述/.test(prompt)) return { text: DESCRIPTION };
  if (/确认/.test(prompt)) return { confirm: true };
  return null;
}

async function screenshot() {
  for (const path of args.screenshots) {
    try {
      await page.screenshot({ path, fullPage: true });
      report.screenshots.push(path);
    } catch (e) {
      report.console_errors.push(`screenshot ${path} failed: ${e.message}`);
    }
  }
}

async function main() {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: args.chromium,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 900, height: 1100 },
    locale: "zh-CN",
  });
  report.browser_version = context.browser() ? context.browser().version() : null;
  page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(T);
  await page.addInitScript(pageRecorder);
  let offlinePhase = false;
  page.on("console", (msg) => {
    if (msg.type() === "error") report.console_errors.push({ text: msg.text(), during_offline: offlinePhase });
  });
  page.on("pageerror", (err) => report.page_errors.push(String(err && err.stack || err)));
  page.on("response", (r) => { if (r.status() >= 400) report.failed_responses.push(`${r.status()} ${r.url()}`); });

  // 1. the page loads, connects and greets
  const resp = await page.goto(args.url, { waitUntil: "domcontentloaded" });
  mark("page_loaded");
  const load = { http_status: resp ? resp.status() : null, title: await page.title() };
  load.socket_url = await page.locator('script[src$="widget.js"]').getAttribute("data-socket-url");
  load.status_initial = await statusText();
  load.status_seen = await waitForStatus((s) => s === ONLINE, ONLINE);
  mark("online");
  load.greeting = await waitForBotTurn(0);
  mark("greeted");
  load.session_id = await page.evaluate(() => window.JSJBChat.sessionId());
  report.steps.load = load;

  // 2. a complaint: the user's bubble, the typing indicator while the bot works, the bot's answer
  const complaint = await say(COMPLAINT, { step: "complaint" });
  mark("complaint_answered");
  report.steps.complaint = complaint;

  // 3. the intake questions up to the contact question
  const intake = [];
  let prompt = complaint.replies.join("\n");
  for (let i = 0; i < 6 && !(answerFor(prompt) || {}).contact; i++) {
    const a = answerFor(prompt);
    if (!a || !a.text) throw new Error(`unexpected question before the contact question: ${prompt}`);
    const turn = await say(a.text, { want: a.want, step: `intake_${i}` });
    intake.push(turn);
    prompt = turn.replies.join("\n");
  }
  report.steps.intake = intake;
  report.steps.contact_question = prompt;
  if (!(answerFor(prompt) || {}).contact) throw new Error(`the bot never asked for a contact: ${prompt}`);

  // 4. reload: the conversation is still on the page and the bot still expects the contact answer
  const beforeReload = { bot: await messages(SEL.bot), user: await messages(SEL.user) };
  await page.reload({ waitUntil: "domcontentloaded" });
  mark("reloaded");
  const reload = {
    bot_before: beforeReload.bot.length, user_before: beforeReload.user.length,
    bot_after: await messages(SEL.bot), user_after: await messages(SEL.user),
    session_id: await page.evaluate(() => window.JSJBChat.sessionId()),
  };
  reload.status_seen = await waitForStatus((s) => s === ONLINE, ONLINE);
  await page.waitForTimeout(1500); // a second greeting would arrive now
  reload.bot_count_after_online = await page.locator(SEL.bot).count();
  reload.same_messages = JSON.stringify(reload.bot_after) === JSON.stringify(beforeReload.bot)
    && JSON.stringify(reload.user_after) === JSON.stringify(beforeReload.user);
  reload.bot_after = reload.bot_after.length;
  reload.user_after = reload.user_after.length;
  reload.answer = await say("匿名", { want: /匿名/, step: "contact_after_reload" });
  mark("contact_answered");
  report.steps.reload = reload;

  // further questions (e.g. confidentiality when a phone number was given) up to the confirmation
  prompt = reload.answer.replies.join("\n");
  report.steps.after_reload = [];
  for (let i = 0; i < 3 && !(answerFor(prompt) || {}).confirm; i++) {
    const a = answerFor(prompt);
    if (!a || !a.text) break;
    const turn = await say(a.text, { want: a.want, step: `after_reload_${i}` });
    report.steps.after_reload.push(turn);
    prompt = turn.replies.join("\n");
  }
  report.steps.confirmation_question = prompt;
  report.steps.readback_buttons = await lastBotButtons();

  // 4b. at the read-back the citizen wants a change: 需要修改, then the corrected address; the read-back comes again
  const change = await say("需要修改", { want: /修改/, step: "readback_change" });
  report.steps.readback_change = change;
  const corrected = await say("地址是朝阳区望京西园三区5号楼", { step: "readback_corrected" });
  report.steps.readback_corrected = corrected;
  report.steps.readback_buttons_again = corrected.buttons_on_answer;

  // 5. the connection drops: status shows it; after the reconnect a message is answered
  const reconnect = { session_id_before: await page.evaluate(() => window.JSJBChat.sessionId()) };
  offlinePhase = true;
  await context.setOffline(true);
  await page.evaluate(() => window.JSJBChat.socket.io.engine.close());
  reconnect.status_seen_offline = await waitForStatus((s) => /重连|断开|重试/.test(s), "reconnecting");
  await page.waitForTimeout(2500); // reconnect attempts fail while offline
  reconnect.status_while_offline = await statusText();
  reconnect.offline_class = await page.locator(".jsjb-chat.jsjb-offline").count() === 1;
  await context.setOffline(false);
  reconnect.status_seen_back = await waitForStatus((s) => s === ONLINE, ONLINE);
  offlinePhase = false;
  mark("reconnected");
  reconnect.session_id_after = await page.evaluate(() => window.JSJBChat.sessionId());
  reconnect.answer = await say("确认", { want: /确认|是|正确|提交/, step: "confirm_after_reconnect" });
  mark("confirmed");
  report.steps.reconnect = reconnect;

  // 6. a consultation: the bot answers from the knowledge base and asks whether it helped
  const consult = await say(CONSULTATION, { step: "consultation" });
  report.steps.consultation = consult;
  if (/帮助/.test(consult.replies.join("\n"))) {
    report.steps.consultation_feedback = await say("有帮助，谢谢", { want: /有帮助|是|有用|满意/, step: "kb_feedback" });
  }
  mark("done");
  report.final = { status: await statusText(), bot: await page.locator(SEL.bot).count(),
    user: await page.locator(SEL.user).count(), typing_visible: await page.locator(SEL.typing).isVisible() };
  await screenshot();
  report.ok = true;
}

try {
  await main();
} catch (err) {
  report.error = String(err && err.stack || err);
  if (page) {
    try {
      report.final = { status: await statusText(), bot: await messages(SEL.bot), user: await messages(SEL.user) };
    } catch { /* page gone */ }
    await screenshot();
  }
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(report) + "\n");
