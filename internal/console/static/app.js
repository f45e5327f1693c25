// thingif console: a small single-page app on the thing-if REST API. The
// token lives in sessionStorage (gone with the tab) and goes in an
// Authorization header on every call, the inspector stream included
// (fetch, not EventSource, which cannot send headers: no token in a URL).
"use strict";

const $ = (sel) => document.querySelector(sel);
const session = {
  get app() { return sessionStorage.getItem("app") || ""; },
  get token() { return sessionStorage.getItem("token") || ""; },
  get who() { return sessionStorage.getItem("who") || ""; },
  get admin() { return sessionStorage.getItem("admin") === "1"; },
};
let timers = [];
let streams = [];

function stopAll() {
  timers.forEach(clearInterval);
  timers = [];
  streams.forEach((c) => c.abort());
  streams = [];
}

function showError(msg) {
  const e = $("#error");
  e.textContent = msg || "";
  e.hidden = !msg;
}

function el(tag, attrs, ...kids) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") n.className = v; else n.setAttribute(k, v);
  }
  for (const k of kids) n.append(k instanceof Node ? k : String(k ?? ""));
  return n;
}

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + session.token };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
  if (!r.ok) {
    const code = data && data.errorCode ? data.errorCode + ": " : "";
    const msg = data && data.message ? data.message : r.statusText;
    const err = new Error(r.status + " " + code + msg);
    err.status = r.status;
    throw err;
  }
  return data;
}

const appPath = () => "/thing-if/apps/" + encodeURIComponent(session.app);
const target = (id) => appPath() + "/targets/thing:" + encodeURIComponent(id);

// --- sign in ---------------------------------------------------------------

function modeChanged() {
  const user = document.querySelector("input[name=mode]:checked").value === "user";
  document.querySelectorAll(".user-only").forEach((n) => (n.hidden = !user));
  document.querySelectorAll(".admin-only").forEach((n) => (n.hidden = user));
}

async function signIn(ev) {
  ev.preventDefault();
  showError("");
  const app = $("#app").value.trim();
  const user = document.querySelector("input[name=mode]:checked").value === "user";
  const body = user
    ? { grant_type: "password", username: $("#username").value, password: $("#password").value }
    : { grant_type: "client_credentials", client_id: app, client_secret: $("#key").value };
  try {
    const r = await fetch("/api/apps/" + encodeURIComponent(app) + "/oauth2/token", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(r.status + " " + (data.errorCode || "") + " " + (data.message || data.error_description || ""));
    sessionStorage.setItem("app", app);
    sessionStorage.setItem("token", data.access_token);
    sessionStorage.setItem("admin", user ? "0" : "1");
    sessionStorage.setItem("who", user ? $("#username").value : "admin of " + app);
    $("#key").value = ""; $("#password").value = "";
    location.hash = "#things";
    route();
  } catch (e) {
    showError("Sign-in failed: " + e.message);
  }
}

function signOut() {
  ["app", "token", "admin", "who"].forEach((k) => sessionStorage.removeItem(k));
  location.hash = "";
  route();
}

// --- things list -------------------------------------------------------------

let nextKey = "";
let listing = 0; // the newest listing; an older one's answer is dropped

// loadThings shows the first page of the app's things (or, with more, the
// next one), searched on the server by the search box's text: a search
// covers every thing of the app, not only the page shown.
async function loadThings(more) {
  const tbody = $("#things tbody");
  const mine = more ? listing : ++listing;
  let q = "?bestEffortLimit=50";
  const search = $("#filter").value.trim();
  if (search) q += "&search=" + encodeURIComponent(search);
  if (more && nextKey) q += "&paginationKey=" + encodeURIComponent(nextKey);
  try {
    const page = await api("GET", appPath() + "/things" + q);
    if (mine !== listing) return;
    if (!more) tbody.textContent = "";
    for (const t of page.things) {
      const tr = el("tr", { class: "link", "data-thing": t.thingID },
        el("td", {}, el("code", {}, t.thingID)), el("td", {}, t.vendorThingID),
        el("td", {}, t.thingType || ""), el("td", {}, t.firmwareVersion || ""), el("td", {}, t.owner || ""));
      tr.addEventListener("click", () => openThing(t.thingID));
      tbody.append(tr);
    }
    nextKey = page.nextPaginationKey || "";
    $("#more").hidden = !nextKey;
  } catch (e) { showError(e.message); }
}

// searchThings runs the search once typing pauses.
let searchTimer = 0;
function searchThings() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => loadThings(false), 250);
}

function recent() {
  try { return JSON.parse(localStorage.getItem("recent:" + session.app) || "[]"); } catch (_) { return []; }
}

function showRecent() {
  const ul = $("#recent");
  ul.textContent = "";
  for (const id of recent()) {
    const a = el("a", { href: "#thing/" + encodeURIComponent(id) }, id);
    ul.append(el("li", {}, a));
  }
}

function openThing(id) {
  location.hash = "#thing/" + encodeURIComponent(id);
}

// --- one thing ---------------------------------------------------------------

function fmtTime(ms) { return ms ? new Date(ms).toLocaleString() : ""; }

async function loadInfo(id) {
  const t = await api("GET", appPath() + "/things/" + encodeURIComponent(id));
  const rows = [["thing ID", t.thingID], ["vendorThingID", t.vendorThingID], ["type", t.thingType || "—"],
    ["firmware version", t.firmwareVersion || "—"], ["owner", t.owner || "—"], ["layout", t.layoutPosition],
    ["created", fmtTime(t.created)], ["properties", JSON.stringify(t.thingProperties || {})]];
  const tb = $("#thing-info tbody");
  tb.textContent = "";
  for (const [k, v] of rows) tb.append(el("tr", {}, el("th", {}, k), el("td", {}, el("code", {}, v))));
  const ids = recent().filter((x) => x !== t.thingID);
  ids.unshift(t.thingID);
  localStorage.setItem("recent:" + session.app, JSON.stringify(ids.slice(0, 20)));
  return t;
}

async function loadState(id) {
  try {
    const s = await api("GET", target(id) + "/states");
    $("#state").textContent = JSON.stringify(s, null, 2);
    $("#state-time").textContent = "at " + new Date().toLocaleTimeString();
  } catch (e) {
    $("#state").textContent = e.status === 404 ? "no state uploaded yet" : e.message;
  }
}

async function loadConnection(id) {
  const n = $("#thing-online");
  try {
    const r = await fetch("/console/api/connection?app=" + encodeURIComponent(session.app) + "&thing=" + encodeURIComponent(id),
      { headers: { Authorization: "Bearer " + session.token } });
    const c = await r.json();
    if (!r.ok || (c.subscribed == null && c.nodes === undefined)) { n.textContent = "unknown"; n.dataset.state = "unknown"; return; }
    if (c.nodes !== undefined) {
      // Several nodes: the nodes that hold a connection of the thing.
      const nodes = c.nodes || [];
      n.textContent = c.nodes == null ? "unknown" : nodes.length ? "online, connected on node " + nodes.join(", ") : "offline";
      n.dataset.state = c.nodes == null ? "unknown" : nodes.length ? "online" : "offline";
      return;
    }
    n.textContent = c.subscribed > 0 ? "online, " + c.subscribed + (c.subscribed === 1 ? " connection" : " connections") + " subscribed to its commands" : "offline";
    n.dataset.state = c.subscribed > 0 ? "online" : "offline";
  } catch (_) { n.textContent = "unknown"; n.dataset.state = "unknown"; }
}

async function loadCommands(id) {
  try {
    const page = await api("GET", target(id) + "/commands?bestEffortLimit=20");
    const tb = $("#commands tbody");
    tb.textContent = "";
    const cmds = (page.commands || []).slice().sort((a, b) => b.created - a.created);
    for (const c of cmds) {
      tb.append(el("tr", { "data-command": c.commandID },
        el("td", {}, el("code", {}, c.commandID)),
        el("td", {}, el("span", { class: "state " + c.commandState }, c.commandState)),
        el("td", {}, el("code", {}, (c.schema ? c.schema + " v" + c.schemaVersion + " " : "") + JSON.stringify(c.actions))),
        el("td", {}, el("code", {}, c.actionResults ? JSON.stringify(c.actionResults) : "")),
        el("td", {}, fmtTime(c.created))));
    }
  } catch (e) { showError(e.message); }
}

async function loadTriggers(id) {
  try {
    const page = await api("GET", target(id) + "/triggers?bestEffortLimit=100");
    const tb = $("#triggers tbody");
    tb.textContent = "";
    for (const tr of page.triggers || []) {
      const path = target(id) + "/triggers/" + encodeURIComponent(tr.triggerID);
      const act = async (method, suffix) => {
        showError("");
        try { await api(method, path + suffix); } catch (e) { showError(e.message); }
        loadTriggers(id);
      };
      const toggle = el("button", { type: "button", class: "toggle" }, tr.disabled ? "Enable" : "Disable");
      toggle.addEventListener("click", () => act("PUT", tr.disabled ? "/enable" : "/disable"));
      const del = el("button", { type: "button", class: "delete" }, "Delete");
      del.addEventListener("click", () => act("DELETE", ""));
      const does = tr.command ? JSON.stringify(tr.command.actions) : tr.serverCode ? "server code " + JSON.stringify(tr.serverCode) : "";
      tb.append(el("tr", { "data-trigger": tr.triggerID },
        el("td", {}, el("code", {}, tr.triggerID)),
        el("td", { class: "trigger-state" }, tr.disabled ? "disabled" + (tr.disabledReason ? " (" + tr.disabledReason + ")" : "") : "enabled"),
        el("td", {}, el("code", {}, JSON.stringify(tr.predicate))),
        el("td", {}, el("code", {}, does)),
        el("td", {}, toggle, " ", del)));
    }
  } catch (e) { showError(e.message); }
}

async function createTrigger(id, ev) {
  ev.preventDefault();
  showError("");
  let body;
  try { body = JSON.parse($("#trigger-body").value); } catch (e) { showError("The trigger is not JSON: " + e.message); return; }
  try {
    await api("POST", target(id) + "/triggers", body);
    loadTriggers(id);
  } catch (e) { showError("Create trigger failed: " + e.message); }
}

// --- history chart -----------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, text) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
  if (text !== undefined) n.textContent = text;
  return n;
}

function fieldValue(obj, field) {
  let v = obj;
  for (const part of field.split(".")) { if (v == null) return undefined; v = v[part]; }
  return typeof v === "boolean" ? Number(v) : v;
}

async function drawChart(id, ev) {
  ev.preventDefault();
  showError("");
  const alias = $("#chart-alias").value.trim(), field = $("#chart-field").value.trim();
  const to = Date.now(), from = to - Number($("#chart-range").value);
  const grouped = $("#chart-grouped").checked;
  const query = { clause: { type: "withinTimeRange", lowerLimit: from, upperLimit: to }, grouped };
  if (grouped) query.aggregations = [{ type: "MEAN", putAggregationInto: "mean", field, fieldType: "DECIMAL" }];
  let points = [];
  try {
    const path = target(id) + "/states/aliases/" + encodeURIComponent(alias) + "/query";
    const headers = { Authorization: "Bearer " + session.token, "Content-Type": "application/vnd.kii.TraitStateQueryRequest+json" };
    let key = "";
    for (let page = 0; page < 20; page++) {
      const body = { query, bestEffortLimit: 1000 };
      if (key) body.paginationKey = key;
      const r = await fetch(path, { method: "POST", headers, body: JSON.stringify(body) });
      const data = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error(r.status + " " + (data.errorCode || "") + ": " + (data.message || ""));
      if (grouped) {
        for (const g of data.groupedResults || []) {
          const a = (g.aggregations || [])[0];
          if (a && a.value != null) points.push([g.range.from, a.value]);
        }
      } else {
        for (const o of data.results || []) {
          const v = fieldValue(o, field);
          if (typeof v === "number") points.push([o._created, v]);
        }
      }
      key = data.nextPaginationKey || "";
      if (!key) break;
    }
  } catch (e) { showError("History: " + e.message); return; }
  points.sort((a, b) => a[0] - b[0]);
  plot($("#chart"), points, from, to, alias + "." + field + (grouped ? " (mean)" : ""));
}

function plot(box, points, from, to, label) {
  box.textContent = "";
  if (points.length === 0) { box.append(el("p", { class: "muted" }, "no values of " + label + " in this range")); return; }
  const W = 900, H = 220, L = 50, R = 10, T = 10, B = 30;
  let lo = Math.min(...points.map((p) => p[1])), hi = Math.max(...points.map((p) => p[1]));
  if (lo === hi) { lo -= 1; hi += 1; }
  const x = (t) => L + ((t - from) / (to - from)) * (W - L - R);
  const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": label });
  s.append(svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }), svg("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }));
  for (const v of [lo, (lo + hi) / 2, hi]) s.append(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, +v.toFixed(2)));
  for (const t of [from, (from + to) / 2, to]) s.append(svg("text", { x: x(t), y: H - 8, "text-anchor": "middle" }, new Date(t).toLocaleTimeString()));
  s.append(svg("polyline", { points: points.map((p) => x(p[0]) + "," + y(p[1])).join(" "), class: "line" }));
  for (const p of points.length <= 200 ? points : []) s.append(svg("circle", { cx: x(p[0]), cy: y(p[1]), r: 2.5, class: "dot" }));
  box.append(el("p", { class: "muted", id: "chart-label" }, label + ": " + points.length + " values"), s);
}

let sentID = "";

async function pollSent(id) {
  if (!sentID) return;
  try {
    const c = await api("GET", target(id) + "/commands/" + encodeURIComponent(sentID));
    const s = $("#sent-state");
    s.textContent = c.commandState;
    s.className = "state " + c.commandState;
  } catch (e) { showError(e.message); }
}

async function sendCommand(id, ev) {
  ev.preventDefault();
  showError("");
  let actions;
  try { actions = JSON.parse($("#actions").value); } catch (e) { showError("Actions are not JSON: " + e.message); return; }
  const body = { actions };
  if (document.querySelector("input[name=form]:checked").value === "v1") {
    body.schema = $("#schema").value;
    body.schemaVersion = Number($("#schema-version").value);
  }
  try {
    const r = await api("POST", target(id) + "/commands", body);
    sentID = r.commandID;
    $("#sent-id").textContent = sentID;
    $("#sent-state").textContent = "SENDING";
    $("#sent-state").className = "state SENDING";
    loadCommands(id);
  } catch (e) { showError("Send failed: " + e.message); }
}

function formChanged() {
  const v1 = document.querySelector("input[name=form]:checked").value === "v1";
  document.querySelector(".v1-only").hidden = !v1;
  $("#actions").value = v1 ? '[{"turnPower":{"power":true}}]' : '[{"LampAlias":[{"turnPower":true}]}]';
}

async function showThing(id) {
  $("#thing-id").textContent = id;
  $("#inspector-thing").textContent = "";
  $("#inspect-filter").value = "";
  delete $("#inspector-thing").dataset.filter;
  sentID = "";
  $("#sent-id").textContent = "none";
  $("#sent-state").textContent = "";
  let t;
  try { t = await loadInfo(id); } catch (e) { showError(e.message); return; }
  id = t.thingID;
  loadState(id); loadCommands(id);
  loadConnection(id);
  timers.push(setInterval(() => { loadState(id); loadConnection(id); }, 2000));
  timers.push(setInterval(() => { loadCommands(id); pollSent(id); }, 1000));
  $("#command-form").onsubmit = (ev) => sendCommand(id, ev);
  $("#trigger-form").onsubmit = (ev) => createTrigger(id, ev);
  $("#chart-form").onsubmit = (ev) => drawChart(id, ev);
  $("#chart").textContent = "";
  loadTriggers(id);
  inspect("thing=" + encodeURIComponent(id), $("#inspector-thing"), $("#inspect-status"), () => { loadCommands(id); pollSent(id); });
}

// --- the inspector -------------------------------------------------------------

function describe(e) {
  const parts = [];
  if (e.kind === "REQUEST") {
    parts.push(e.method + " " + e.path + " → " + e.status + " in " + e.durationMs.toFixed(2) + " ms");
  }
  if (e.topic) parts.push("topic " + e.topic);
  if (e.packetID) parts.push("id " + e.packetID);
  if (e.kind === "REQUEST" || e.kind === "PUSH") parts.push("qos " + e.qos);
  if (e.detail) parts.push(e.detail);
  parts.push("client " + e.client + (e.remote ? " from " + e.remote : ""));
  return parts.join(" · ");
}

// shown reports whether an inspector row passes the filter of its box
// (any of the space-separated words, case-insensitive).
function shown(box, row) {
  const f = box.dataset.filter || "";
  if (!f) return true;
  const text = row.textContent.toLowerCase();
  return f.split(/\s+/).some((w) => w && text.includes(w));
}

function refilter(box, value) {
  box.dataset.filter = value.trim().toLowerCase();
  for (const row of box.children) row.hidden = !shown(box, row);
}

function addEvent(box, e) {
  const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
  const row = el("div", { class: "ev " + e.kind, "data-kind": e.kind },
    el("span", { class: "t" }, new Date(e.time).toISOString().slice(11, 23) + " "),
    el("span", { class: "k" }, e.kind), " ", describe(e));
  if (e.body) row.append("\n", el("span", { class: "b" }, "  ▸ " + e.body));
  if (e.answer) row.append("\n", el("span", { class: "b" }, "  ◂ " + e.answer));
  row.hidden = !shown(box, row);
  box.append(row);
  while (box.childElementCount > 2000) box.firstElementChild.remove();
  if (atBottom) box.scrollTop = box.scrollHeight;
}

async function inspect(query, box, status, onEvent) {
  const ctl = new AbortController();
  streams.push(ctl);
  const url = "/console/api/inspect?app=" + encodeURIComponent(session.app) + "&" + query;
  while (!ctl.signal.aborted) {
    try {
      const r = await fetch(url, { headers: { Authorization: "Bearer " + session.token }, signal: ctl.signal });
      if (!r.ok) {
        const d = await r.json().catch(() => ({}));
        status.textContent = "not available: " + r.status + " " + (d.errorCode || "");
        return;
      }
      status.textContent = "live";
      status.dataset.live = "1";
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let event = "message", data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) event = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
          }
          if (event === "mqtt") { addEvent(box, JSON.parse(data)); if (onEvent) onEvent(); }
          else if (event === "dropped") box.append(el("div", { class: "ev note" }, data + " events dropped (the browser was slow)"));
        }
      }
    } catch (e) {
      if (ctl.signal.aborted) return;
    }
    status.textContent = "reconnecting…";
    delete status.dataset.live;
    await new Promise((res) => setTimeout(res, 2000));
  }
}

// --- routing -----------------------------------------------------------------

function show(view) {
  document.querySelectorAll(".view").forEach((v) => (v.hidden = v.id !== "view-" + view));
}

function route() {
  stopAll();
  showError("");
  const signedIn = session.token !== "";
  $("#nav").hidden = !signedIn;
  if (!signedIn) { show("signin"); return; }
  $("#who").textContent = session.who;
  $("#nav-onboarding").hidden = !session.admin;
  const h = decodeURIComponent(location.hash.slice(1));
  if (h.startsWith("thing/")) {
    show("thing");
    showThing(h.slice(6));
  } else if (h === "onboarding" && session.admin) {
    show("onboarding");
    $("#inspector-onboarding").textContent = "";
    inspect("broker=onboarding", $("#inspector-onboarding"), $("#onboard-status"));
  } else {
    show("things");
    $("#list-admin").hidden = !session.admin;
    $("#list-user").hidden = session.admin;
    showRecent();
    if (session.admin) loadThings(false);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("input[name=mode]").forEach((n) => n.addEventListener("change", modeChanged));
  document.querySelectorAll("input[name=form]").forEach((n) => n.addEventListener("change", formChanged));
  $("#signin-form").addEventListener("submit", signIn);
  $("#signout").addEventListener("click", signOut);
  $("#more").addEventListener("click", () => loadThings(true));
  $("#filter").addEventListener("input", searchThings);
  $("#inspect-filter").addEventListener("input", (ev) => refilter($("#inspector-thing"), ev.target.value));
  $("#inspect-clear").addEventListener("click", () => { $("#inspector-thing").textContent = ""; });
  $("#open-form").addEventListener("submit", (ev) => { ev.preventDefault(); openThing($("#open-id").value.trim()); });
  window.addEventListener("hashchange", route);
  route();
});
