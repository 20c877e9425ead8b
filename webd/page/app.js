// app.js — the ai-peer web view: rooms, live messages, posting, invites.
// Everything it shows comes over one WebSocket from webd. Names, times and
// errors go into the DOM with textContent only; a message's text arrives as
// HTML that webd rendered with cmark in safe mode (no raw HTML, no
// javascript: links), and the Content-Security-Policy forbids inline script
// besides.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const state = {
    ws: null,
    me: null,
    rooms: new Map(),        // id -> {id, name, mode, encrypted, synced}
    unread: new Map(),       // id -> count
    current: null,           // open room id
    tools: [],               // discovered tool names
    jobs: new Map(),         // id -> job
    retry: 500,
    outbox: [],              // requests made while reconnecting
  };
  window.aipWeb = state;     // for the tests (and the curious)

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function status(text, isError) {
    const s = $("status");
    s.textContent = text || "";
    s.className = isError ? "error" : "";
  }

  function send(req) {
    if (state.ws && state.ws.readyState === WebSocket.OPEN)
      state.ws.send(JSON.stringify(req));
    else
      state.outbox.push(req);
  }

  // ---------------------------------------------------------------- rooms

  function modeLabel(room) {
    if (room.mode === "lan") return "LAN";
    if (room.mode === "public") return "public";
    return "local";
  }

  function renderRooms() {
    const list = $("rooms");
    list.textContent = "";
    const rooms = Array.from(state.rooms.values());
    rooms.sort((a, b) => (b.created_at || "").localeCompare(a.created_at || ""));
    for (const room of rooms) {
      const li = el("li", room.id === state.current ? "room active" : "room");
      li.dataset.room = room.id;
      li.appendChild(el("span", "room-name", room.name || room.id));
      const badges = el("span", "badges");
      badges.appendChild(el("span", "badge mode-" + modeLabel(room).toLowerCase(), modeLabel(room)));
      if (room.encrypted) badges.appendChild(el("span", "badge lock", "encrypted"));
      const n = state.unread.get(room.id) || 0;
      if (n > 0) badges.appendChild(el("span", "badge unread", String(n)));
      li.appendChild(badges);
      li.addEventListener("click", () => openRoom(room.id));
      list.appendChild(li);
    }
  }

  function openRoom(id) {
    state.current = id;
    state.unread.set(id, 0);
    const room = state.rooms.get(id) || { id: id, name: id };
    $("room-name").textContent = room.name || id;
    const badges = $("room-badges");
    badges.textContent = "";
    badges.appendChild(el("span", "badge", modeLabel(room)));
    if (room.encrypted) badges.appendChild(el("span", "badge lock", "end-to-end encrypted"));
    badges.appendChild(el("span", "room-id", id));
    $("room-actions").hidden = false;
    $("composer").hidden = false;
    $("messages").textContent = "";
    $("messages").dataset.room = id;
    renderRooms();
    send({ op: "open", room: id });
  }

  // ------------------------------------------------------------- messages

  function fmtTime(iso) {
    const d = new Date(iso);
    return isNaN(d) ? "" : d.toLocaleTimeString();
  }

  function usageText(u) {
    if (!u) return "";
    const parts = [];
    if (u.input_tokens !== undefined) parts.push("in " + u.input_tokens);
    if (u.output_tokens !== undefined) parts.push("out " + u.output_tokens);
    if (u.cache_read_tokens) parts.push("cache read " + u.cache_read_tokens);
    if (u.cache_write_tokens) parts.push("cache write " + u.cache_write_tokens);
    if (u.cost_usd !== undefined) parts.push("$" + Number(u.cost_usd).toFixed(4));
    if (u.duration_ms !== undefined) parts.push((u.duration_ms / 1000).toFixed(1) + " s");
    if (u.model) parts.push(u.model);
    return parts.join(" · ");
  }

  // The server's safe HTML; links open elsewhere and tell nothing
  function setBody(body, html) {
    body.innerHTML = html;
    for (const a of body.querySelectorAll("a")) {
      a.rel = "noopener noreferrer nofollow";
      a.target = "_blank";
    }
  }

  function messageElement(m) {
    let div = document.querySelector('#messages .msg[data-id="' + CSS.escape(m.id) + '"]');
    const fresh = !div;
    if (fresh) div = el("div");
    div.className = "msg type-" + (m.type || "message") + " peer-" + (m.peer_type || "human");
    if (state.me && m.peer_id === state.me.id) div.className += " mine";
    div.dataset.id = m.id;
    div.textContent = "";
    const meta = el("div", "meta");
    meta.appendChild(el("span", "name", m.peer_name || m.peer_id || "?"));
    if (m.peer_type === "ai" && m.peer_tool) meta.appendChild(el("span", "tool", m.peer_tool));
    meta.appendChild(el("span", "time", fmtTime(m.created_at)));
    div.appendChild(meta);
    const body = el("div", "body");
    setBody(body, m.html || "");
    div.appendChild(body);
    const u = usageText(m.usage);
    if (u) div.appendChild(el("div", "usage", u));
    return { div: div, fresh: fresh };
  }

  function atBottom() {
    const box = $("messages");
    return box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  }

  function addMessage(m) {
    const stick = atBottom();
    const { div, fresh } = messageElement(m);
    div.dataset.at = m.created_at || "";
    if (fresh) {
      // In the room's order (created_at, then id), whatever order events came in
      const box = $("messages");
      let next = null;
      for (let e = box.lastElementChild; e; e = e.previousElementSibling) {
        if (!e.dataset.at || e.dataset.at < div.dataset.at ||
            (e.dataset.at === div.dataset.at && e.dataset.id < div.dataset.id)) break;
        next = e;
      }
      box.insertBefore(div, next);
    }
    if (stick) $("messages").scrollTop = $("messages").scrollHeight;
  }

  function onProgress(p) {
    if (p.room !== state.current || !p.msg_id) return;
    let div = document.querySelector('#messages .msg[data-id="' + CSS.escape(p.msg_id) + '"]');
    if (div && !div.classList.contains("streaming")) return;   // the answer is in
    const stick = atBottom();
    if (!div) {
      div = el("div", "msg streaming peer-ai");
      div.dataset.id = p.msg_id;
      const meta = el("div", "meta");
      meta.appendChild(el("span", "name", p.tool));
      meta.appendChild(el("span", "tool", "writing…"));
      div.appendChild(meta);
      div.appendChild(el("div", "body"));
      div.appendChild(el("div", "progress"));
      $("messages").appendChild(div);
    }
    if (p.html !== undefined) setBody(div.querySelector(".body"), p.html);
    div.querySelector(".progress").textContent =
      p.tool + " is writing… " + p.bytes + " bytes, " + Math.round(p.elapsed_ms / 1000) + " s";
    if (stick) $("messages").scrollTop = $("messages").scrollHeight;
  }

  // ----------------------------------------------------------------- jobs

  function renderJobs() {
    const box = $("jobs");
    box.textContent = "";
    for (const job of state.jobs.values()) {
      const line = el("div", "job job-" + job.state);
      line.dataset.job = job.id;
      line.dataset.kind = job.kind;
      line.appendChild(el("span", "what", job.what));
      line.appendChild(el("span", "state", job.state === "running" ? " … running" :
                                            job.state === "done" ? " ✓ done" : " ✗ " + (job.error || "failed")));
      box.appendChild(line);
    }
  }

  function onJob(job) {
    state.jobs.set(job.id, job);
    renderJobs();
    if (job.state === "failed") status(job.what + ": " + job.error, true);
    if (job.state !== "running" && job.room && job.kind !== "discuss") openRoom(job.room);
    if (job.state !== "running")
      setTimeout(() => { state.jobs.delete(job.id); renderJobs(); }, 20000);
  }

  function onExport(e) {
    const type = e.format === "md" ? "text/markdown" : "application/json";
    const url = URL.createObjectURL(new Blob([e.content], { type: type }));
    const a = el("a");
    a.href = url;
    a.download = e.filename;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    status("exported " + e.filename);
  }

  // ---------------------------------------------------------------- tools

  function renderTools() {
    const select = $("invite-tool");
    select.textContent = "";
    for (const t of state.tools) {
      const o = el("option", "", t);
      o.value = t;
      select.appendChild(o);
    }
    for (const id of ["quick-tools", "discuss-tools"]) {
      const box = $(id);
      box.textContent = "";
      for (const t of state.tools) {
        const label = el("label", "tool-choice");
        const box2 = el("input");
        box2.type = "checkbox";
        box2.value = t;
        label.appendChild(box2);
        label.appendChild(document.createTextNode(" " + t));
        box.appendChild(label);
      }
      if (!state.tools.length) box.appendChild(el("span", "small", "no AI tools found on PATH"));
    }
  }

  function picked(id) {
    return Array.from($(id).querySelectorAll("input:checked")).map((i) => i.value);
  }

  // ------------------------------------------------------------ WebSocket

  const handlers = {
    hello(d) {
      state.me = d.me;
      $("me").textContent = d.me.name;
    },
    rooms(d) {
      state.rooms.clear();
      for (const r of d.rooms) state.rooms.set(r.id, r);
      renderRooms();
    },
    room(d) {
      if (!state.rooms.has(d.room.id)) {
        state.rooms.set(d.room.id, d.room);
        renderRooms();
      }
    },
    history(d) {
      if (d.room !== state.current) return;
      $("messages").textContent = "";
      for (const m of d.messages) addMessage(m);
      $("messages").scrollTop = $("messages").scrollHeight;
    },
    message(d) {
      const m = d.message;
      if (m.room_id === state.current) addMessage(m);
      else if (!(state.me && m.peer_id === state.me.id)) {
        state.unread.set(m.room_id, (state.unread.get(m.room_id) || 0) + 1);
        renderRooms();
      }
    },
    progress: onProgress,
    tools(d) {
      state.tools = d.tools.map((t) => t.tool);
      renderTools();
    },
    sent() {
      status("");
    },
    job: onJob,
    export: onExport,
    error(d) {
      status(d.message, true);
    },
  };

  function connect() {
    const ws = new WebSocket("ws://" + location.host + "/ws");
    state.ws = ws;
    ws.onopen = () => {
      state.retry = 500;
      $("conn").textContent = "live";
      $("conn").className = "conn live";
      if (state.current) send({ op: "open", room: state.current });
      for (const req of state.outbox.splice(0)) send(req);
    };
    ws.onmessage = (ev) => {
      let d;
      try { d = JSON.parse(ev.data); } catch (e) { return; }
      const h = handlers[d.type];
      if (h) h(d);
    };
    ws.onclose = () => {
      $("conn").textContent = "reconnecting…";
      $("conn").className = "conn";
      // A logged-out browser (webd restarted) goes back to the login note
      fetch("/api/session", { credentials: "same-origin" }).then((r) => {
        if (r.status === 401) {
          $("app").hidden = true;
          $("login-msg").textContent = "Logged out (the web view restarted). Run 'ai-peer web' for a new link.";
          $("login").hidden = false;
        } else {
          setTimeout(connect, state.retry);
          state.retry = Math.min(state.retry * 2, 10000);
        }
      }).catch(() => {
        setTimeout(connect, state.retry);
        state.retry = Math.min(state.retry * 2, 10000);
      });
    };
  }

  // ---------------------------------------------------------------- forms

  $("composer").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = $("text").value;
    if (!text.trim() || !state.current) return;
    send({ op: "send", room: state.current, text: text });
    $("text").value = "";
  });
  $("text").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("invite").addEventListener("click", () => {
    const tool = $("invite-tool").value;
    if (tool && state.current) send({ op: "invite", room: state.current, tool: tool });
  });
  $("discuss-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    send({ op: "discuss", room: state.current, tools: picked("discuss-tools"),
           rounds: parseInt($("discuss-rounds").value, 10) || 2 });
  });
  $("quick-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    send({ op: "quick", question: $("quick-question").value, tools: picked("quick-tools") });
    $("quick-question").value = "";
  });
  $("join-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const req = { op: "join", link: $("join-link").value.trim() };
    const pw = $("join-password").value;
    if (pw) req.password = pw;
    send(req);
    // The password is not kept in the page either
    $("join-password").value = "";
    $("join-link").value = "";
  });
  $("new-room").addEventListener("click", () => {
    const name = prompt("Name of the new room");
    if (name) send({ op: "create", name: name });
  });
  $("export-md").addEventListener("click", () => send({ op: "export", room: state.current, format: "md" }));
  $("export-json").addEventListener("click", () => send({ op: "export", room: state.current, format: "json" }));

  $("app").hidden = false;
  connect();
})();
