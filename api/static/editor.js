// 知识库编辑台: the editors' page over the knowledge-base API (/api/kb, api/routes/knowledge.py).
// Plain browser JavaScript, no build step and nothing loaded from elsewhere. The editor's bearer token lives in
// sessionStorage (this tab only). Nothing the editor typed is thrown away on an error: the form is only refilled
// from the server after a successful action or when the editor asks for it, and unsaved edits are also kept in
// sessionStorage so a reload or a new login brings them back.
(function () {
  "use strict";

  const TOKEN_KEY = "jsjb-editor-token";
  const UNSAVED_KEY = "jsjb-editor-unsaved";
  const PAGE_SIZE = 20;
  const CONTENT_FIELDS = ["question", "alternatives", "answer", "department", "region", "source", "effective_from",
    "review_by", "expires_on", "tags", "counter_examples"];
  const LINE_FIELDS = ["alternatives", "counter_examples"]; // one item per line
  const FIELD_LABELS = {
    id: "编号", question: "标准问", alternatives: "相似问", answer: "答案", department: "责任部门", region: "地区",
    source: "来源", effective_from: "生效日期", review_by: "复核日期", expires_on: "有效期至", tags: "标签",
    counter_examples: "反例问法",
    note: "修改说明", status: "状态", version: "版本", question_text: "问题",
  };
  const STATUS_LABELS = { draft: "草稿", published: "已发布", archived: "已归档" };
  const ACTION_LABELS = {
    seed: "初始数据", create: "新建", edit: "编辑", publish: "发布", unpublish: "撤下", archive: "归档",
    restore: "恢复", rollback: "回滚", import: "导入",
  };
  const DECLINE_TEXT = "抱歉，知识库中暂未找到可以直接回答该问题的内容。市民会看到相关问题，并被建议拨打12345热线由人工解答。";

  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const tid = (id) => $(`[data-testid="${id}"]`);

  const state = {
    me: null,
    entry: null, // the entry as last returned by the server
    base: null, // the form's content as loaded: a save sends only the fields the editor changed since
    mode: "none", // "none" | "new" | "edit"
    fromUnanswered: null, // the unanswered question a new entry answers
    dirty: false,
    leaving: false,
    offset: 0,
    total: 0,
  };

  // ------------------------------------------------------------------------------------------ helpers

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function show(node, text, cls) {
    if (!node) return;
    if (text === null || text === undefined || text === "") {
      node.hidden = true;
      node.textContent = "";
      return;
    }
    node.textContent = text;
    if (cls) node.className = cls;
    node.hidden = false;
  }

  function fmtTime(iso) {
    if (!iso) return "";
    const d = new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(iso) ? iso : iso + "Z");
    if (Number.isNaN(d.getTime())) return iso;
    return d.toLocaleString("zh-CN", { timeZone: "Asia/Shanghai", hour12: false, year: "numeric", month: "2-digit",
      day: "2-digit", hour: "2-digit", minute: "2-digit" });
  }

  function fieldLabel(name) { return FIELD_LABELS[name] || name; }
  function statusLabel(s) { return STATUS_LABELS[s] || s || ""; }

  // ------------------------------------------------------------------------------------------ API

  class ApiError extends Error {
    constructor(status, message, fieldErrors, payload) {
      super(message);
      this.status = status;
      this.fieldErrors = fieldErrors || [];
      this.payload = payload;
    }
  }

  const PYDANTIC_MESSAGES = [
    [/date|日期/i, "日期格式应为 YYYY-MM-DD"],
    [/at least|too_short|min_length/i, "不能为空"],
    [/at most|too_long|max_length/i, "内容过长"],
    [/integer|int_/i, "应为整数"],
    [/list/i, "应为文字列表"],
    [/missing|required/i, "必填"],
  ];

  function translatePydantic(item) {
    const text = `${item.type || ""} ${item.msg || ""}`;
    for (const [re, msg] of PYDANTIC_MESSAGES) if (re.test(text)) return msg;
    return "格式不正确";
  }

  function errorFrom(status, payload) {
    const detail = payload && payload.detail !== undefined ? payload.detail : payload;
    if (status === 401) {
      return new ApiError(401, "令牌无效、已吊销或未提供：请重新输入编辑令牌。您填写的内容仍保留在页面上。");
    }
    if (status === 403) {
      const why = typeof detail === "string" ? detail : "";
      return new ApiError(403, `此令牌无权使用知识库编辑功能（需要 editor 或 admin 角色）。${why}`);
    }
    if (status === 422 && detail && typeof detail === "object" && !Array.isArray(detail) && detail.errors) {
      const errors = detail.errors.map((e) => ({ field: e.field, message: e.message }));
      return new ApiError(422, `有 ${errors.length} 处需要修改：` + errors.map((e) => `${fieldLabel(e.field)}：${e.message}`)
        .join("；"), errors, payload);
    }
    if (status === 422 && Array.isArray(detail)) {
      const errors = detail.map((e) => ({ field: String((e.loc || []).slice(-1)[0] || ""), message: translatePydantic(e) }));
      return new ApiError(422, `有 ${errors.length} 处需要修改：` + errors.map((e) => `${fieldLabel(e.field)}：${e.message}`)
        .join("；"), errors, payload);
    }
    if (typeof detail === "string" && detail) {
      if (status === 409) {
        return new ApiError(409, `${detail.replace(/，?请刷新后重试$/, "")}。您填写的内容仍保留在表单中。`, [], payload);
      }
      return new ApiError(status, detail, [], payload);
    }
    if (status >= 500) return new ApiError(status, `服务器出错（HTTP ${status}），请稍后重试。您填写的内容仍保留在页面上。`);
    return new ApiError(status, `请求失败（HTTP ${status}）`, [], payload);
  }

  async function api(method, path, opts) {
    opts = opts || {};
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) throw new ApiError(401, "尚未登录：请先输入编辑令牌。您填写的内容仍保留在页面上。");
    const headers = { Authorization: `Bearer ${token}` };
    let body;
    if (opts.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.json);
    } else if (opts.body !== undefined) {
      headers["Content-Type"] = opts.contentType || "application/octet-stream";
      body = opts.body;
    }
    let resp;
    try {
      resp = await fetch(path, { method, headers, body, cache: "no-store" });
    } catch (err) {
      throw new ApiError(0, "无法连接服务器，请检查网络后重试。您填写的内容仍保留在页面上。");
    }
    if (opts.raw && resp.ok) return resp;
    let payload = null;
    const text = await resp.text();
    if (text) {
      try { payload = JSON.parse(text); } catch (err) { payload = text; }
    }
    if (resp.ok || (opts.okStatuses || []).includes(resp.status)) return payload;
    const error = errorFrom(resp.status, payload);
    if (error.status === 401) needLogin(error.message);
    throw error;
  }

  const q = (params) => {
    const sp = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "" && v !== false) sp.set(k, v);
    const s = sp.toString();
    return s ? `?${s}` : "";
  };
  const enc = encodeURIComponent;

  // ------------------------------------------------------------------------------------------ login

  const notice = tid("notice");

  function needLogin(message) {
    $("#login").hidden = false;
    show(tid("login-error"), message);
    tid("token-input").value = "";
    tid("token-input").focus();
  }

  async function login(token) {
    sessionStorage.setItem(TOKEN_KEY, token);
    try {
      const me = await api("GET", "/api/kb/me");
      state.me = me;
    } catch (err) {
      if (err.status === 401 || err.status === 403) sessionStorage.removeItem(TOKEN_KEY);
      needLogin(err.status === 401 ? "令牌无效或已吊销，请检查后重新输入（应以 jsjb_ 开头）。" : err.message);
      return false;
    }
    show(tid("login-error"), "");
    $("#login").hidden = true;
    const who = tid("who");
    who.textContent = `当前编辑：${state.me.name}（${state.me.role}）`;
    who.hidden = false;
    $("#logout").hidden = false;
    const firstLogin = $("#app").hidden;
    $("#app").hidden = false;
    if (firstLogin) {
      restoreUnsaved();
      search(0);
      loadUnanswered();
    } else {
      show(notice, "已重新登录。您填写的内容都还在，请再点一次刚才的按钮完成操作。", "ed-notice");
    }
    return true;
  }

  $("#login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const token = tid("token-input").value.trim();
    if (!token) {
      show(tid("login-error"), "请先粘贴编辑令牌。");
      return;
    }
    login(token);
  });

  $("#logout").addEventListener("click", () => {
    if (state.dirty && !confirm("有未保存的修改，退出后仍保留在本标签页中，下次登录时恢复。确定退出吗？")) return;
    sessionStorage.removeItem(TOKEN_KEY);
    state.leaving = true; // asked already: no second "leave the page?" prompt
    location.reload();
  });

  // ------------------------------------------------------------------------------------------ tabs

  function switchTab(name) {
    for (const b of $$(".ed-tabs [data-tab]")) b.classList.toggle("active", b.dataset.tab === name);
    for (const p of $$("[data-pane]")) p.hidden = p.dataset.pane !== name;
    if (name === "unanswered") loadUnanswered();
  }
  for (const b of $$(".ed-tabs [data-tab]")) b.addEventListener("click", () => switchTab(b.dataset.tab));

  // ------------------------------------------------------------------------------------------ search

  async function search(offset) {
    const params = {
      q: tid("search-input").value.trim(), status: tid("search-status").value,
      pending_only: tid("search-pending").checked ? "true" : "", limit: PAGE_SIZE, offset,
    };
    const list = tid("results");
    try {
      const data = await api("GET", `/api/kb/entries${q(params)}`);
      state.offset = offset;
      state.total = data.total;
      list.replaceChildren(...data.items.map(resultItem));
      tid("search-total").textContent = data.total ? `共 ${data.total} 条` : "没有找到符合条件的条目";
      const page = Math.floor(offset / PAGE_SIZE) + 1;
      const pages = Math.max(1, Math.ceil(data.total / PAGE_SIZE));
      $("#page-info").textContent = `第 ${page} / ${pages} 页`;
      $("#page-prev").disabled = offset <= 0;
      $("#page-next").disabled = offset + PAGE_SIZE >= data.total;
    } catch (err) {
      tid("search-total").textContent = `搜索失败：${err.message}`;
    }
  }

  function resultItem(item) {
    const pending = item.unpublished_changes ? el("span", { class: "ed-badge ed-warn", text: "有未发布修改" }) : null;
    return el("li", { "data-testid": "result", "data-entry-id": item.id, class: state.entry && state.entry.id === item.id ? "current" : null },
      el("button", { type: "button", onclick: () => openEntry(item.id) },
        el("span", { class: "ed-result-q", text: item.question }),
        el("span", { class: "ed-result-meta" },
          el("span", { class: `ed-badge ed-${item.status}`, text: statusLabel(item.status) }), pending,
          ` ${item.id} · 第${item.current_version}版${item.department ? " · " + item.department : ""}`)));
  }

  $("#search-form").addEventListener("submit", (ev) => { ev.preventDefault(); search(0); });
  tid("search-status").addEventListener("change", () => search(0));
  tid("search-pending").addEventListener("change", () => search(0));
  $("#page-prev").addEventListener("click", () => search(Math.max(0, state.offset - PAGE_SIZE)));
  $("#page-next").addEventListener("click", () => search(state.offset + PAGE_SIZE));

  // ------------------------------------------------------------------------------------------ the entry form

  const form = $("#entry-form");
  const input = (name) => form.elements.namedItem(name);

  function clearFieldErrors() {
    for (const f of $$(".ed-field", form)) f.classList.remove("ed-invalid");
    for (const e of $$(".ed-field-error", form)) e.remove();
    show(tid("form-error"), "");
  }

  function showFormError(err, what) {
    show(tid("form-ok"), "");
    let message = `${what}失败：${err.message}`;
    if (err.fieldErrors && err.fieldErrors.length) {
      const unplaced = [];
      for (const fe of err.fieldErrors) {
        const field = $(`.ed-field[data-field="${CSS.escape(String(fe.field))}"]`, form);
        if (!field) { unplaced.push(fe); continue; }
        field.classList.add("ed-invalid");
        field.append(el("span", { class: "ed-field-error", "data-testid": `field-error-${fe.field}`, text: fe.message }));
      }
      message = `${what}失败：有 ${err.fieldErrors.length} 处需要修改（见标红的字段）。您填写的内容没有丢失。`
        + (unplaced.length ? " " + unplaced.map((e) => `${fieldLabel(e.field)}：${e.message}`).join("；") : "");
    }
    show(tid("form-error"), message);
    if (err.status === 409 && state.mode === "edit" && state.entry) {
      // someone saved the entry meanwhile: take their version as the base, keep this editor's text in the form
      tid("form-error").append(" 可以：", el("button", { type: "button", class: "ed-small", "data-testid": "rebase",
        onclick: () => rebase(state.entry.id) }, "以最新版本为基础，保留我的修改"),
        " 然后对照版本历史再保存；或点“重新载入”放弃自己的修改。");
    }
    const bad = $(".ed-invalid input, .ed-invalid textarea", form);
    if (bad) bad.focus();
  }

  async function rebase(id) {
    try {
      const latest = await api("GET", `/api/kb/entries/${enc(id)}`);
      state.entry = latest;
      renderHeader();
      loadHistory();
      setDirty(true);
      show(tid("form-error"), "");
      show(tid("form-ok"), `已改为基于第 ${latest.current_version} 版；您的修改仍在表单中。请对照下方版本历史确认后再保存。`);
    } catch (err) {
      showFormError(err, "载入最新版本");
    }
  }

  function ok(message) {
    show(tid("form-error"), "");
    show(tid("form-ok"), message);
    show(notice, ""); // an earlier notice (re-login, restored edits) is settled by this success
    show(tid("preview-result"), ""); // a preview taken before this change may no longer hold
  }

  function fillForm(content) {
    for (const name of CONTENT_FIELDS) {
      let v = content[name];
      if (LINE_FIELDS.includes(name)) v = (v || []).join("\n");
      else if (name === "tags") v = (v || []).join("，");
      input(name).value = v === null || v === undefined ? "" : v;
    }
  }

  function readForm() {
    const lines = (s) => s.split(/\r?\n/).map((x) => x.trim()).filter(Boolean);
    const out = {};
    for (const name of CONTENT_FIELDS) {
      const raw = input(name).value;
      if (LINE_FIELDS.includes(name)) out[name] = lines(raw);
      else if (name === "tags") out[name] = raw.split(/[,，、;；\n]/).map((x) => x.trim()).filter(Boolean);
      else if (["effective_from", "review_by", "expires_on"].includes(name)) out[name] = raw || null;
      else out[name] = raw.trim();
    }
    return out;
  }

  function renderHeader() {
    const e = state.entry;
    const title = tid("entry-title");
    const badge = tid("entry-status");
    const version = tid("entry-version");
    const pending = tid("pending-banner");
    if (state.mode === "new") {
      title.textContent = state.fromUnanswered ? "新建条目（来自未答问题）" : "新建条目";
      badge.textContent = "未保存";
      badge.className = "ed-badge ed-new";
      version.textContent = "";
      show(pending, "");
    } else if (e) {
      title.textContent = e.question;
      badge.textContent = statusLabel(e.status);
      badge.className = `ed-badge ed-${e.status}`;
      version.textContent = `编号 ${e.id} · 当前第 ${e.current_version} 版` +
        (e.published_version ? ` · 线上第 ${e.published_version} 版` : " · 未上线");
      show(pending, e.unpublished_changes
        ? `有尚未发布的修改：市民目前看到的是第 ${e.published_version} 版。点“发布”后生效。` : "");
    }
    const status = e && state.mode === "edit" ? e.status : "new";
    $("[data-action=publish]", form).disabled = status === "archived";
    $("[data-action=unpublish]", form).hidden = status !== "published";
    $("[data-action=archive]", form).hidden = status === "archived" || status === "new";
    $("[data-action=restore]", form).hidden = status !== "archived";
    $("[data-action=reload]", form).hidden = status === "new";
    tid("save-draft").disabled = status === "archived";
    input("id").disabled = state.mode !== "new";
    const from = tid("from-unanswered");
    if (state.mode === "new" && state.fromUnanswered) {
      const u = state.fromUnanswered;
      show(from, `来自未答问题 #${u.id}：“${u.question}”（被问 ${u.count} 次）。填写答案后点“保存草稿”，即创建草稿并把该问题标为已解决。`);
    } else show(from, "");
  }

  function showForm() {
    $("#no-entry").hidden = true;
    form.hidden = false;
    $("#history-box").hidden = state.mode !== "edit";
  }

  function setDirty(dirty) {
    state.dirty = dirty;
    if (dirty) {
      const backup = {
        mode: state.mode, id: state.mode === "edit" && state.entry ? state.entry.id : null,
        base_version: state.entry ? state.entry.current_version : null, from_unanswered: state.fromUnanswered,
        base: state.base,
        values: Object.fromEntries(["id", "note", ...CONTENT_FIELDS].map((n) => [n, input(n).value])),
      };
      sessionStorage.setItem(UNSAVED_KEY, JSON.stringify(backup));
    } else {
      sessionStorage.removeItem(UNSAVED_KEY);
    }
  }

  form.addEventListener("input", () => setDirty(true));

  function confirmDiscard() {
    return !state.dirty || confirm("当前条目有未保存的修改，确定放弃这些修改吗？");
  }

  function loadEntryIntoForm(entry) {
    state.entry = entry;
    state.mode = "edit";
    state.fromUnanswered = null;
    clearFieldErrors();
    input("id").value = entry.id;
    input("note").value = "";
    fillForm(entry);
    state.base = readForm();
    setDirty(false);
    renderHeader();
    showForm();
    if (!tid("preview-input").value) tid("preview-input").value = entry.question;
    for (const li of $$("[data-testid=result]")) li.classList.toggle("current", li.dataset.entryId === entry.id);
  }

  async function openEntry(id, opts) {
    opts = opts || {};
    if (!opts.force && !confirmDiscard()) return null;
    show(tid("form-ok"), "");
    try {
      const entry = await api("GET", `/api/kb/entries/${enc(id)}`);
      loadEntryIntoForm(entry);
      loadHistory();
      return entry;
    } catch (err) {
      show(notice, `无法打开条目 ${id}：${err.message}`, "ed-notice ed-bad");
      return null;
    }
  }

  function newEntry(fromUnanswered) {
    if (!confirmDiscard()) return;
    state.entry = null;
    state.base = null;
    state.mode = "new";
    state.fromUnanswered = fromUnanswered || null;
    clearFieldErrors();
    show(tid("form-ok"), "");
    input("id").value = "";
    input("note").value = "";
    fillForm({ region: "北京市", question: fromUnanswered ? fromUnanswered.question : "" });
    setDirty(false);
    renderHeader();
    showForm();
    (fromUnanswered ? input("answer") : input("question")).focus();
  }

  $("#new-entry").addEventListener("click", () => newEntry(null));

  // Saves the form: a new entry (or one answering an unanswered question) or a new version of the open one.
  // Returns the entry, or null on an error (shown; the form keeps what was typed).
  async function save() {
    clearFieldErrors();
    const content = readForm();
    const note = input("note").value.trim();
    try {
      if (state.mode === "new") {
        const id = input("id").value.trim() || undefined;
        let entry;
        if (state.fromUnanswered) {
          entry = await api("POST", `/api/kb/unanswered/${state.fromUnanswered.id}/entry`, { json: { id, ...content } });
          loadUnanswered();
        } else {
          entry = await api("POST", "/api/kb/entries", { json: { id, note, ...content } });
        }
        loadEntryIntoForm(entry);
        loadHistory();
        search(state.offset);
        ok(`已新建草稿 ${entry.id}（第 ${entry.current_version} 版）。草稿不会提供给市民，发布后生效。`);
        return entry;
      }
      // only what this editor changed: a concurrent edit of other fields (after "rebase") is kept
      const changes = {};
      for (const name of CONTENT_FIELDS) {
        if (!state.base || JSON.stringify(content[name]) !== JSON.stringify(state.base[name])) changes[name] = content[name];
      }
      const entry = await api("PATCH", `/api/kb/entries/${enc(state.entry.id)}`,
        { json: { ...changes, note, expected_version: state.entry.current_version } });
      const changed = entry.changed;
      loadEntryIntoForm(entry);
      loadHistory();
      search(state.offset);
      if (!changed) ok("没有改动，无需保存。");
      else if (entry.status === "published") {
        ok(`已保存第 ${entry.current_version} 版（尚未发布，市民仍看到第 ${entry.published_version} 版）。`);
      } else ok(`已保存第 ${entry.current_version} 版（${statusLabel(entry.status)}）。`);
      return entry;
    } catch (err) {
      showFormError(err, "保存");
      return null;
    }
  }

  form.addEventListener("submit", (ev) => { ev.preventDefault(); save(); });

  async function statusAction(action) {
    const labels = { publish: "发布", unpublish: "撤下", archive: "归档", restore: "恢复" };
    const label = labels[action];
    if (action === "archive" && !confirm("归档后该条目不再提供给市民，确定归档吗？")) return;
    if (action === "unpublish" && !confirm("撤下后市民将看不到该条目，确定撤下吗？")) return;
    let saved = null;
    if (action === "publish" && (state.mode === "new" || state.dirty)) {
      saved = await save(); // publish what is on the screen
      if (!saved) return;
    }
    clearFieldErrors();
    const note = saved ? "" : input("note").value.trim();
    const body = { note };
    if (action === "publish") body.expected_version = state.entry.current_version;
    try {
      const entry = await api("POST", `/api/kb/entries/${enc(state.entry.id)}/${action}`, { json: body });
      if (state.dirty) {
        // keep what the editor typed since (never overwrite unsaved text); only the status changes
        state.entry = entry;
        renderHeader();
      } else {
        loadEntryIntoForm(entry);
      }
      loadHistory();
      search(state.offset);
      if (!entry.changed) ok(`无需${label}：条目已是${statusLabel(entry.status)}状态。`);
      else if (action === "publish") ok(`${saved ? "已保存并" : "已"}发布第 ${entry.published_version} 版，市民现在看到的就是这一版。`);
      else if (action === "unpublish") ok("已撤下，条目回到草稿状态，市民不再看到它。");
      else if (action === "archive") ok("已归档，市民不再看到它。");
      else ok("已恢复为草稿。");
    } catch (err) {
      showFormError(err, label);
    }
  }

  for (const b of $$("[data-action]", form)) {
    b.addEventListener("click", () => {
      if (b.dataset.action === "reload") {
        if (state.entry && confirmDiscard()) openEntry(state.entry.id, { force: true });
      } else statusAction(b.dataset.action);
    });
  }

  // ------------------------------------------------------------------------------------------ history

  async function loadHistory() {
    if (!state.entry) return;
    const id = state.entry.id;
    const table = tid("history");
    const body = $("tbody", table);
    tid("version-view").hidden = true;
    if (table.dataset.entry !== id) body.replaceChildren(); // never show another entry's versions
    table.dataset.entry = id;
    try {
      const versions = await api("GET", `/api/kb/entries/${enc(id)}/history`);
      versions.sort((a, b) => b.version - a.version);
      body.replaceChildren(...versions.map((v) => historyRow(id, v)));
    } catch (err) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: 8, text: `无法读取历史：${err.message}` })));
    }
  }

  function historyRow(id, v) {
    const current = state.entry && v.version === state.entry.current_version;
    return el("tr", { "data-testid": "history-row", "data-version": v.version, class: v.served ? "served" : null },
      el("td", {}, `第${v.version}版`, v.served ? el("span", { class: "ed-badge ed-published", text: "线上" }) : null),
      el("td", { "data-testid": "history-action", text: ACTION_LABELS[v.action] || v.action }),
      el("td", { text: statusLabel(v.status) }),
      el("td", { "data-testid": "history-author", text: v.author }),
      el("td", { text: fmtTime(v.created_at) }),
      el("td", { "data-testid": "history-note", text: v.note || "" }),
      el("td", { text: (v.changed_fields || []).map(fieldLabel).join("、") }),
      el("td", { class: "ed-nowrap" },
        el("button", { type: "button", class: "ed-small", "data-testid": "history-view", onclick: () => viewVersion(v) }, "查看"),
        current ? null : el("button", { type: "button", class: "ed-small", "data-testid": "history-rollback",
          onclick: () => rollback(id, v.version) }, "回滚到此版")));
  }

  function viewVersion(v) {
    const c = v.content || {};
    const lines = CONTENT_FIELDS.map((n) => {
      let val = c[n];
      if (Array.isArray(val)) val = val.join(" | ");
      return `${fieldLabel(n)}：${val === null || val === undefined ? "" : val}`;
    });
    const view = tid("version-view");
    view.textContent = `第${v.version}版（${ACTION_LABELS[v.action] || v.action}，${v.author}，${fmtTime(v.created_at)}）\n` + lines.join("\n");
    view.hidden = false;
  }

  async function rollback(id, version) {
    const published = state.entry && state.entry.status === "published";
    const msg = `确定把条目回滚到第 ${version} 版的内容吗？将生成一个新版本` + (published ? "，并立即提供给市民。" : "。")
      + (state.dirty ? "\n表单中未保存的修改将被替换。" : "");
    if (!confirm(msg)) return;
    try {
      const entry = await api("POST", `/api/kb/entries/${enc(id)}/rollback`,
        { json: { version, note: input("note").value.trim() } });
      loadEntryIntoForm(entry);
      loadHistory();
      search(state.offset);
      ok(`已回滚到第 ${version} 版的内容（生成第 ${entry.current_version} 版）` +
        (entry.status === "published" ? "，已立即生效。" : "。"));
    } catch (err) {
      showFormError(err, "回滚");
    }
  }

  // ------------------------------------------------------------------------------------------ preview

  $("#preview-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = tid("preview-result");
    const question = tid("preview-input").value.trim();
    if (!question) { show(out, "请先输入一个问题。", "ed-preview ed-bad"); return; }
    try {
      const r = await api("POST", "/api/kb/preview", { json: { question, include_drafts: tid("preview-drafts").checked } });
      out.replaceChildren();
      out.className = "ed-preview";
      if (r.answered) {
        out.append(
          el("div", { class: "ed-preview-meta", "data-testid": "preview-meta" },
            `会回答：条目 ${r.entry_id} · 第${r.version}版 · 置信度 ${r.score}`,
            r.draft ? el("span", { class: "ed-badge ed-draft", text: "未发布内容" }) : el("span", { class: "ed-badge ed-published", text: "已发布" })),
          el("div", { class: "ed-preview-answer", "data-testid": "preview-answer", text: r.answer }),
          r.department ? el("div", { class: "ed-muted", text: `责任部门：${r.department}` }) : null,
          r.source ? el("div", { class: "ed-muted", text: `来源：${r.source}` }) : null);
      } else {
        out.append(el("div", { class: "ed-preview-meta", "data-testid": "preview-meta", text: `不会直接回答（最高置信度 ${r.score}）` }),
          el("div", { class: "ed-preview-answer", "data-testid": "preview-answer", text: DECLINE_TEXT }));
      }
      if (r.suggestions && r.suggestions.length) {
        out.append(el("div", { class: "ed-muted", text: "相关问题：" }),
          el("ul", { class: "ed-suggestions" }, ...r.suggestions.map((s) => el("li", {},
            el("button", { type: "button", class: "ed-link", onclick: () => openEntry(s.entry_id) }, s.question),
            ` （${s.entry_id}，${s.score}）`))));
      }
      out.hidden = false;
    } catch (err) {
      show(out, `预览失败：${err.message}`, "ed-preview ed-bad");
    }
  });

  // ------------------------------------------------------------------------------------------ unanswered

  async function loadUnanswered() {
    const body = $("tbody", tid("unanswered"));
    const includeResolved = tid("unanswered-resolved").checked;
    try {
      const data = await api("GET", `/api/kb/unanswered${q({ include_resolved: includeResolved ? "true" : "", limit: 200 })}`);
      tid("unanswered-total").textContent = `共 ${data.total} 个问题`;
      const open = includeResolved ? data.items.filter((i) => !i.resolved_entry_id).length : data.total;
      tid("tab-unanswered").textContent = open ? `未答问题（${open}）` : "未答问题";
      body.replaceChildren(...data.items.map(unansweredRow));
      if (!data.items.length) body.append(el("tr", {}, el("td", { colspan: 6, class: "ed-muted", text: "暂无未答问题。" })));
    } catch (err) {
      tid("unanswered-total").textContent = `读取失败：${err.message}`;
    }
  }

  function unansweredRow(item) {
    return el("tr", { "data-testid": "unanswered-row", "data-id": item.id },
      el("td", { "data-testid": "unanswered-question", text: item.question }),
      el("td", { "data-testid": "unanswered-kind", text: item.kind === "unhelpful" ? "答复没帮助" : "未能回答" }),
      el("td", { "data-testid": "unanswered-count", text: item.count }),
      el("td", { text: fmtTime(item.last_seen) }),
      el("td", {}, item.best_entry_id
        ? el("button", { type: "button", class: "ed-link", onclick: () => { switchTab("entries"); openEntry(item.best_entry_id); } },
          item.best_score === null ? item.best_entry_id
            : `${item.best_entry_id}（${Number(item.best_score).toFixed(2)}）`) : ""),
      el("td", { text: item.resolved_entry_id ? `已由 ${item.resolved_entry_id} 处理` : "待处理" }),
      el("td", { class: "ed-nowrap" }, item.resolved_entry_id ? null : [
        el("button", { type: "button", class: "ed-small", "data-testid": "create-from-unanswered",
          onclick: () => { switchTab("entries"); newEntry(item); } }, "据此新建条目"),
        el("button", { type: "button", class: "ed-small", "data-testid": "resolve-unanswered",
          onclick: () => resolveUnanswered(item) }, "已有条目可答"),
        item.best_entry_id ? el("button", { type: "button", class: "ed-small", "data-testid": "counter-from-unanswered",
          title: "该条目不回答这个问题：加为它的反例并立即发布，助手不再用它回答此类问题",
          onclick: () => counterExampleFromUnanswered(item) }, "加为反例") : null,
      ].filter(Boolean).reduce((frag, n) => { frag.append(n); return frag; }, document.createDocumentFragment())));
  }

  async function resolveUnanswered(item) {
    const id = prompt("由哪个条目回答？请输入条目编号：", item.best_entry_id || "");
    if (!id) return;
    try {
      await api("POST", `/api/kb/unanswered/${item.id}/resolve`, { json: { entry_id: id.trim() } });
      loadUnanswered();
    } catch (err) {
      tid("unanswered-total").textContent = `标记失败：${err.message}`;
    }
  }

  async function counterExampleFromUnanswered(item) {
    if (!confirm(`把“${item.question}”加为条目 ${item.best_entry_id} 的反例并立即发布？`)) return;
    try {
      await api("POST", `/api/kb/unanswered/${item.id}/counter-example`, { json: { publish: true } });
      loadUnanswered();
    } catch (err) {
      tid("unanswered-total").textContent = `添加反例失败：${err.message}`;
    }
  }

  tid("unanswered-refresh").addEventListener("click", loadUnanswered);
  tid("unanswered-resolved").addEventListener("change", loadUnanswered);

  // ------------------------------------------------------------------------------------------ import / export

  const IMPORT_TYPES = {
    csv: "text/csv", json: "application/json",
    xlsx: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
  };

  $("#import-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const errorBox = tid("import-error");
    const result = tid("import-result");
    const table = tid("import-errors");
    show(errorBox, "");
    show(result, "");
    table.hidden = true;
    const file = tid("import-file").files[0];
    if (!file) { show(errorBox, "请先选择要导入的文件（CSV、XLSX 或 JSON）。"); return; }
    const fmt = (file.name.split(".").pop() || "").toLowerCase();
    if (!IMPORT_TYPES[fmt]) { show(errorBox, `不支持的文件类型“.${fmt}”：请选择 CSV、XLSX 或 JSON 文件。`); return; }
    const params = {
      format: fmt, dry_run: tid("import-dry").checked ? "true" : "", partial: tid("import-partial").checked ? "true" : "",
      publish: tid("import-publish").checked ? "true" : "",
    };
    let report;
    try {
      const data = await file.arrayBuffer();
      report = await api("POST", `/api/kb/entries/import${q(params)}`,
        { body: data, contentType: IMPORT_TYPES[fmt], okStatuses: [422] });
    } catch (err) {
      show(errorBox, `导入失败：${err.message}`);
      return;
    }
    const errors = report.errors || [];
    let summary;
    if (report.dry_run) {
      summary = errors.length ? `校验完成：共 ${report.rows} 行，有 ${errors.length} 处错误（见下表），未做任何修改。`
        : `校验通过：共 ${report.rows} 行，可以导入（本次未做任何修改）。`;
    } else if (report.applied) {
      summary = `导入完成：共 ${report.rows} 行，新建 ${report.created.length} 条，更新 ${report.updated.length} 条，`
        + `未变 ${report.unchanged.length} 条，发布 ${report.published.length} 条。`
        + (errors.length ? `另有 ${errors.length} 处错误的行未导入（见下表）。` : "");
    } else {
      summary = `未导入：共 ${report.rows} 行，有 ${errors.length} 处错误（见下表），所有行均未导入。请修改文件后重新导入，或勾选“有错误行时仍导入其余正确的行”。`;
    }
    show(result, summary, errors.length && !report.applied ? "ed-error" : "ed-ok");
    if (errors.length) {
      $("tbody", table).replaceChildren(...errors.map((e) => el("tr", { "data-testid": "import-error-row" },
        el("td", { text: `第 ${e.row} 行` }), el("td", { text: e.id || "" }),
        el("td", { text: fieldLabel(e.field) }), el("td", { text: e.message }))));
      table.hidden = false;
    }
    if (report.applied) search(0);
  });

  $("#export-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = tid("export-result");
    const fmt = tid("export-format").value;
    try {
      const resp = await api("GET", `/api/kb/entries/export${q({ format: fmt, status: tid("export-status").value })}`, { raw: true });
      const blob = await resp.blob();
      const day = new Date().toISOString().slice(0, 10).replace(/-/g, "");
      const name = `knowledge_base-${day}.${fmt}`;
      const url = URL.createObjectURL(blob);
      const a = el("a", { href: url, download: name });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      show(out, `已导出 ${name}（${Math.max(1, Math.round(blob.size / 1024))} KB）。`, "ed-ok");
    } catch (err) {
      show(out, `导出失败：${err.message}`, "ed-error");
    }
  });

  // ------------------------------------------------------------------------------------------ unsaved work

  async function restoreUnsaved() {
    let backup = null;
    try { backup = JSON.parse(sessionStorage.getItem(UNSAVED_KEY) || "null"); } catch (err) { backup = null; }
    if (!backup || !backup.values) return;
    if (backup.mode === "edit" && backup.id) {
      try {
        state.entry = await api("GET", `/api/kb/entries/${enc(backup.id)}`);
      } catch (err) {
        return;
      }
      state.mode = "edit";
      loadHistory();
    } else {
      state.entry = null;
      state.mode = "new";
    }
    state.fromUnanswered = backup.from_unanswered || null;
    state.base = backup.base || null;
    if (backup.mode === "edit" && state.entry) state.entry.current_version = backup.base_version || state.entry.current_version;
    for (const [name, value] of Object.entries(backup.values)) if (input(name)) input(name).value = value;
    renderHeader();
    showForm();
    setDirty(true);
    show(notice, "已恢复上次未保存的修改，请检查后保存。", "ed-notice");
  }

  window.addEventListener("beforeunload", (ev) => {
    if (state.dirty && !state.leaving) { ev.preventDefault(); ev.returnValue = ""; }
  });

  // ------------------------------------------------------------------------------------------ start

  renderHeader();
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) login(saved);
  else tid("token-input").focus();

  window.JSJBEditor = { state };
})();
