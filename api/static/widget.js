/*
 * 接诉即办助手 chat widget — embeddable on any page:
 *   <script src="http://HOST:8000/static/vendor/socket.io.min.js"></script>
 *   <script src="http://HOST:8000/static/widget.js" data-socket-url="http://HOST:5005" data-mount="#chat"></script>
 * Talks to Rasa's socket.io channel (events user_uttered / bot_uttered), reconnects by itself, shows a typing
 * indicator while the assistant works, renders quick-reply buttons, and keeps the conversation across page reloads
 * (the session id lives in localStorage and Rasa's session_persistence is on).
 * Quick replies (Rasa `buttons`): a click sends the button's payload (an intent such as "/affirm") and shows its
 * title as the citizen's message; sending anything removes every offered set; after a reload only the last bot
 * message, if nothing was said after it, gets its buttons back.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var cfg = {
    socketUrl: (script && script.dataset.socketUrl) || (location.protocol + "//" + location.hostname + ":5005"),
    mount: (script && script.dataset.mount) || null,
    title: (script && script.dataset.title) || "12345 接诉即办助手",
    storageKey: "jsjb.chat.v1",
  };

  function loadState() {
    try { return JSON.parse(localStorage.getItem(cfg.storageKey)) || {}; } catch (e) { return {}; }
  }
  function saveState(state) {
    try { localStorage.setItem(cfg.storageKey, JSON.stringify(state)); } catch (e) { /* private mode */ }
  }
  function newSessionId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID().replace(/-/g, "");
    return (Date.now().toString(36) + Math.random().toString(36).slice(2)).slice(0, 32);
  }

  var state = loadState();
  if (!state.sessionId) { state.sessionId = newSessionId(); state.history = []; saveState(state); }
  state.history = state.history || [];

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  var root = el("div", "jsjb-chat");
  root.setAttribute("role", "region");
  root.setAttribute("aria-label", cfg.title);
  var header = el("div", "jsjb-header");
  header.appendChild(el("span", "jsjb-title", cfg.title));
  var status = el("span", "jsjb-status", "连接中…");
  status.setAttribute("data-testid", "connection-status");
  header.appendChild(status);
  var log = el("div", "jsjb-log");
  log.setAttribute("aria-live", "polite");
  log.setAttribute("data-testid", "chat-log");
  var typing = el("div", "jsjb-typing", "正在输入…");
  typing.setAttribute("data-testid", "typing");
  typing.hidden = true;
  var form = el("form", "jsjb-form");
  var input = el("textarea", "jsjb-input");
  input.rows = 2;
  input.placeholder = "请描述您的问题或诉求，按回车发送";
  input.setAttribute("data-testid", "chat-input");
  input.maxLength = 2000;
  var send = el("button", "jsjb-send", "发送");
  send.type = "submit";
  form.appendChild(input);
  form.appendChild(send);
  var restart = el("button", "jsjb-restart", "新对话");
  restart.type = "button";
  header.appendChild(restart);
  root.appendChild(header);
  root.appendChild(log);
  root.appendChild(typing);
  root.appendChild(form);
  (cfg.mount ? document.querySelector(cfg.mount) : document.body).appendChild(root);

  function scrollDown() { log.scrollTop = log.scrollHeight; }

  function renderMessage(msg, persist) {
    var row = el("div", "jsjb-msg jsjb-" + msg.from);
    row.setAttribute("data-testid", msg.from === "bot" ? "bot-message" : "user-message");
    var bubble = el("div", "jsjb-bubble", msg.text || "");
    row.appendChild(bubble);
    var buttons = (msg.buttons || []).filter(function (b) { return b && (b.title || b.payload); });
    if (buttons.length) {
      var bar = el("div", "jsjb-quick");
      bar.setAttribute("role", "group");
      bar.setAttribute("aria-label", "快捷回复");
      buttons.forEach(function (b) {
        var title = String(b.title || b.payload);
        var btn = el("button", "jsjb-quick-btn", title);
        btn.type = "button";
        btn.setAttribute("data-testid", "quick-reply");
        btn.setAttribute("data-payload", String(b.payload || title));
        // the payload (e.g. "/affirm") goes to Rasa, the citizen sees the title as what they said
        btn.addEventListener("click", function () { sendMessage(String(b.payload || title), title); });
        bar.appendChild(btn);
      });
      row.appendChild(bar);
    }
    log.appendChild(row);
    scrollDown();
    if (persist) {
      state.history.push(msg);
      if (state.history.length > 200) state.history = state.history.slice(-200);
      saveState(state);
    }
  }

  // After a reload, only the last message keeps its quick replies (earlier ones were answered already).
  state.history.forEach(function (m, i) {
    var last = i === state.history.length - 1;
    renderMessage({ from: m.from, text: m.text, buttons: last ? m.buttons : null }, false);
  });

  var typingTimer = null;
  function showTyping(on) {
    typing.hidden = !on;
    if (typingTimer) { clearTimeout(typingTimer); typingTimer = null; }
    if (on) typingTimer = setTimeout(function () { typing.hidden = true; }, 15000);
  }

  var pending = [];
  var ready = false; // true between Rasa's session_confirm and the next disconnect
  var socket = window.io(cfg.socketUrl, {
    path: "/socket.io",
    transports: ["websocket", "polling"],
    reconnection: true,
    reconnectionDelay: 500,
    reconnectionDelayMax: 5000,
  });

  // Messages go out only after session_confirm: Rasa routes its replies to the conversation's room, which this
  // connection joins on session_request (a new connection after every reconnect).
  socket.on("connect", function () {
    status.textContent = "连接中…";
    socket.emit("session_request", { session_id: state.sessionId });
  });
  socket.on("session_confirm", function () {
    ready = true;
    status.textContent = "在线";
    root.classList.remove("jsjb-offline");
    var queued = pending; pending = [];
    queued.forEach(function (m) { socket.emit("user_uttered", { message: m, session_id: state.sessionId }); });
    if (!state.history.length && !state.greeted) {
      state.greeted = true; saveState(state);
      socket.emit("user_uttered", { message: "/greet", session_id: state.sessionId });
      showTyping(true);
    }
  });
  socket.on("disconnect", function (reason) {
    ready = false;
    status.textContent = "连接已断开，正在重连…";
    root.classList.add("jsjb-offline");
    // socket.io does not reconnect by itself after a server-side disconnect; the user did not ask to leave
    if (reason === "io server disconnect") socket.connect();
  });
  socket.on("connect_error", function () {
    ready = false;
    status.textContent = "暂时连不上服务，正在重试…";
    root.classList.add("jsjb-offline");
  });
  socket.io.on("reconnect_attempt", function () { status.textContent = "正在重连…"; });

  socket.on("bot_uttered", function (data) {
    showTyping(false);
    // Rasa's socket.io channel sends buttons as quick_replies [{content_type, title, payload}]
    var buttons = (data.quick_replies || data.buttons || []).map(function (b) {
      return { title: b.title, payload: b.payload };
    });
    var text = data.text || "";
    if (!text && data.attachment) text = "[附件]";
    renderMessage({ from: "bot", text: text, buttons: buttons }, true);
  });

  // Quick replies answer the question they came with: once the citizen says anything (a click or typed text),
  // every offered set is gone, so an old button can never be sent out of context.
  function clearQuickReplies() {
    var bars = log.querySelectorAll(".jsjb-quick");
    for (var i = 0; i < bars.length; i++) bars[i].remove();
  }

  function sendMessage(payload, shown) {
    var text = (shown || payload || "").trim();
    if (!text || !(payload || "").trim()) return;
    clearQuickReplies();
    renderMessage({ from: "user", text: text }, true);
    showTyping(true);
    if (ready && socket.connected) {
      socket.emit("user_uttered", { message: payload, session_id: state.sessionId });
    } else {
      pending.push(payload);
    }
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    input.value = "";
    sendMessage(text);
  });
  input.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); form.requestSubmit(); }
  });
  restart.addEventListener("click", function () {
    state = { sessionId: newSessionId(), history: [] };
    saveState(state);
    log.innerHTML = "";
    pending = [];
    showTyping(false);
    // a fresh connection leaves the old conversation's room; its session_confirm greets the new conversation
    ready = false;
    socket.disconnect().connect();
  });

  window.JSJBChat = { sessionId: function () { return state.sessionId; }, send: sendMessage, socket: socket };
})();
