// Paint Studio admin UI: plain JavaScript, no framework, no inline code
// (the Content-Security-Policy allows scripts and styles from this site only).
"use strict";

const REFRESH_MS = 5000;
const DASH_POINTS = 60; // five minutes of 5-second samples
const CHART_WINDOW_MS = DASH_POINTS * REFRESH_MS; // the time the charts show
// The header that marks a request as a background refresh: when the
// database is saturated the service turns these away first (503 with
// Retry-After), and the UI just polls again later.
const BACKGROUND = { "X-Request-Purpose": "background" };

const state = {
  csrf: null,
  user: null,
  sort: "-created_at",
  filters: {},
  items: [],
  cursor: null,
  firstPageEtag: null,
  facetsEtag: null, // the facets' ETag, for facetsQuery
  facetsQuery: null,
  editing: null, // the paint being edited (null: creating)
  editingEtag: null,
  timer: null,
  view: "paints",
  quietUntil: 0, // no background refresh before this time (Date.now()): the service said it is busy
  history: { pool: [], cache: [], rate: [], latency: [], admission: [] }, // {t, v} samples
};

const $ = (id) => document.getElementById(id);

// ---- API ---------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body, retryAfter) {
    super((body && (body.detail || body.title)) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
    this.retryAfter = retryAfter; // seconds, from a 503's Retry-After (null without)
  }
}

async function api(method, path, body, headers = {}) {
  const h = Object.assign({}, headers);
  const init = { method, headers: h, credentials: "same-origin", cache: "no-store" };
  if (body instanceof Blob) { // a file sent as it is (images.js): its own type unless headers name one
    if (!h["Content-Type"]) h["Content-Type"] = body.type || "application/octet-stream";
    init.body = body;
  } else if (body !== undefined) {
    h["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (method !== "GET" && state.csrf) h["X-CSRF-Token"] = state.csrf;
  const r = await fetch(path, init);
  if (r.status === 401 && path !== "/auth/login") {
    showLogin();
    throw new ApiError(401, { detail: "please log in" });
  }
  if (r.status === 304 || r.status === 204) return { status: r.status, headers: r.headers, body: null };
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = { detail: text }; }
  if (!r.ok) throw new ApiError(r.status, data, Number(r.headers.get("Retry-After")) || null);
  return { status: r.status, headers: r.headers, body: data };
}

function flash(message) {
  const f = $("flash");
  f.textContent = message;
  f.hidden = !message;
  if (message) setTimeout(() => { if (f.textContent === message) f.hidden = true; }, 4000);
}

// ---- views -------------------------------------------------------------

function showLogin() {
  stopRefresh();
  state.user = null;
  state.csrf = null;
  $("nav").hidden = true;
  for (const v of VIEWS) $(v + "-view").hidden = true;
  $("login-view").hidden = false;
  $("login-username").focus();
}

// The pages: each a section "<view>-view" and a tab "tab-<view>".
const VIEWS = ["paints", "dashboard", "users", "performance"];

function showView(view) {
  state.view = view;
  $("login-view").hidden = true;
  $("nav").hidden = false;
  $("tab-performance").hidden = !(state.user && state.user.is_admin);
  for (const v of VIEWS) {
    $(v + "-view").hidden = view !== v;
    $("tab-" + v).setAttribute("aria-current", view === v ? "page" : "false");
  }
  if (view === "paints") loadFirstPage();
  else if (view === "users") loadUsers();
  else if (view === "performance") refreshPerformance(); // perf.js
  else refreshDashboard();
  startRefresh();
}

async function start() {
  try {
    const me = await api("GET", "/auth/me");
    state.user = me.body.user;
    state.csrf = me.body.csrf_token;
    $("whoami").textContent = state.user.username;
    showView("paints");
    loadStatsTotal();
  } catch (e) {
    if (e.status !== 401) flash(e.message);
  }
}

// ---- login -------------------------------------------------------------

async function onLogin(ev) {
  ev.preventDefault();
  const err = $("login-error");
  err.hidden = true;
  try {
    const r = await api("POST", "/auth/login", {
      username: $("login-username").value, password: $("login-password").value,
    });
    state.csrf = r.body.csrf_token;
    state.user = r.body.user;
    $("login-password").value = "";
    $("whoami").textContent = state.user.username;
    showView("paints");
    loadStatsTotal();
  } catch (e) {
    err.textContent = e.status === 429 ? "Too many attempts: wait a while and try again."
      : e.status === 401 ? "Wrong username or password." : e.message;
    err.hidden = false;
  }
}

async function onLogout() {
  try { await api("POST", "/auth/logout"); } catch (_) { /* the session is gone either way */ }
  showLogin();
}

// ---- the paints table --------------------------------------------------

// The list's filters as query parameters (the list, its facets and the export share them).
function filterParams() {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(state.filters)) if (v !== "" && v !== undefined) p.set(k, v);
  return p;
}

const fmtCount = (n) => Number(n).toLocaleString("en-US");

function listUrl(cursor) {
  const p = filterParams();
  p.set("sort", state.sort);
  p.set("limit", "50");
  if (cursor) p.set("cursor", cursor);
  return "/admin/paints?" + p.toString();
}

function text(tag, value, cls) {
  const el = document.createElement(tag);
  el.textContent = value;
  if (cls) el.className = cls;
  return el;
}

function formatDate(iso) {
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toISOString().slice(0, 16).replace("T", " ");
}

// A stored image's address (what an upload sets image_url to), and its thumbnail's.
const STORED_IMAGE = /^\/images\/[0-9a-f]{64}\.webp$/;
const thumbUrl = (url) => STORED_IMAGE.test(url || "") ? url.replace(/\.webp$/, ".thumb.webp") : null;

function renderRow(p) {
  const tr = document.createElement("tr");
  tr.dataset.id = String(p.id);
  const sw = document.createElement("td");
  sw.className = "visual";
  const chip = document.createElement("span");
  chip.className = "swatch";
  chip.style.backgroundColor = p.color_preview; // CSSOM: allowed by the CSP
  chip.title = p.color_preview;
  // The thumbnail of a stored image (none for an external URL: the list
  // loads only this site's images); the slot keeps its size without one,
  // so every row has the same height.
  const slot = document.createElement("span");
  slot.className = "thumb-slot";
  const thumb = thumbUrl(p.image_url);
  if (thumb) {
    const img = document.createElement("img");
    img.className = "thumb";
    img.src = thumb;
    img.alt = p.name;
    img.width = 40;
    img.height = 40;
    img.loading = "lazy";
    img.decoding = "async";
    slot.append(img);
  }
  sw.append(chip, slot);
  const name = text("td", p.name, "name");
  if (p.low_stock) {
    tr.classList.add("low");
    const badge = text("span", "Low stock", "badge");
    badge.title = `stock at or below ${p.low_stock_threshold === null ? "the default threshold" : p.low_stock_threshold}`;
    name.append(badge);
  }
  tr.append(sw, name, text("td", p.brand), text("td", p.color_code),
    text("td", p.color_type), text("td", p.color_family), text("td", String(p.stock), "num stock"),
    text("td", Number(p.price).toFixed(2), "num"), text("td", formatDate(p.created_at)),
    text("td", formatDate(p.updated_at)));
  const actions = document.createElement("td");
  actions.className = "actions";
  const mk = (label, aria, fn) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.setAttribute("aria-label", `${aria} ${p.name}`);
    b.addEventListener("click", fn);
    return b;
  };
  actions.append(
    mk("−", "Remove one of", () => changeStock(p, -1)),
    mk("+", "Add one of", () => changeStock(p, 1)),
    mk("Edit", "Edit", () => openEditor(p)),
    mk("Delete", "Delete", () => deletePaint(p)));
  tr.append(actions);
  return tr;
}

function renderTable() {
  const body = $("paints").tBodies[0];
  body.replaceChildren(...state.items.map(renderRow));
  $("count").textContent = fmtCount(state.items.length);
  $("more").hidden = !state.cursor;
  for (const b of document.querySelectorAll("#paints th .sort")) {
    const key = b.dataset.sort;
    b.setAttribute("aria-sort", state.sort === key ? "ascending" : state.sort === "-" + key ? "descending" : "none");
  }
  document.dispatchEvent(new Event("paints:rendered")); // bulk.js: the selection column
}

async function loadFirstPage() {
  try {
    const r = await api("GET", listUrl(null));
    state.items = r.body.items;
    state.cursor = r.body.next_cursor;
    state.firstPageEtag = r.headers.get("ETag");
    renderTable();
    loadFacets();
  } catch (e) {
    if (e.status !== 401) flash(e.message);
  }
}

// The facets of the current filters: the pick lists' values with their
// counts, and how many paints match. Polled like the list, with
// If-None-Match (an unchanged answer is a 304).
async function loadFacets(background = false) {
  const query = filterParams().toString();
  const headers = Object.assign({}, background ? BACKGROUND : {},
    state.facetsEtag && state.facetsQuery === query ? { "If-None-Match": state.facetsEtag } : {});
  try {
    const r = await api("GET", "/admin/paints/facets?" + query, undefined, headers);
    if (r.status === 304 || filterParams().toString() !== query) return; // unchanged, or the filters moved on
    state.facetsEtag = r.headers.get("ETag");
    state.facetsQuery = query;
    renderFacets(r.body);
  } catch (e) {
    if (!(background && backOff(e)) && e.status !== 401) $("matching").textContent = "?";
  }
}

// Fill each pick list (select.facet) with its facet's values, "Citadel (312)",
// keeping the value picked even when nothing matches it now.
function renderFacets(f) {
  $("matching").textContent = fmtCount(f.total);
  for (const sel of document.querySelectorAll("select.facet")) {
    const facet = sel.dataset.facet;
    const picked = state.filters[facet] || "";
    const values = f[facet].filter((v) => v.value !== ""); // "" cannot be picked (the filter needs 1 character)
    const opts = [new Option("any", "")];
    for (const v of values) opts.push(new Option(`${v.value} (${fmtCount(v.count)})`, v.value));
    if (picked && !values.some((v) => v.value === picked)) opts.push(new Option(`${picked} (0)`, picked));
    if (f.more[facet]) {
      const more = new Option("… more: narrow the other filters", "");
      more.disabled = true;
      opts.push(more);
    }
    sel.replaceChildren(...opts);
    sel.value = picked;
  }
}

async function loadMore() {
  if (!state.cursor) return;
  try {
    const r = await api("GET", listUrl(state.cursor));
    state.items = state.items.concat(r.body.items);
    state.cursor = r.body.next_cursor;
    renderTable();
  } catch (e) {
    flash(e.message);
  }
}

async function loadStatsTotal(background = false) {
  try {
    const r = await api("GET", "/admin/paints/stats", undefined, background ? BACKGROUND : {});
    $("total").textContent = fmtCount(r.body.total);
  } catch (_) { /* the total is a nicety */ }
}

// A background refresh turned away because the database is saturated
// (503): say so quietly and skip the refreshes until Retry-After (at least
// one tick) has passed; the page's line stateId says so. true when e was that.
function backOff(e, stateId = "refresh-state") {
  if (e.status !== 503) return false;
  state.quietUntil = Date.now() + Math.max((e.retryAfter || 1) * 1000, REFRESH_MS);
  $(stateId).textContent = "· the server is busy: checking again shortly";
  return true;
}

// Poll the first page with If-None-Match: an unchanged list costs a 304.
async function refreshList() {
  if (state.items.length > 50) return; // the user paged on: do not yank the list away
  const headers = Object.assign({}, BACKGROUND,
    state.firstPageEtag ? { "If-None-Match": state.firstPageEtag } : {});
  try {
    const r = await api("GET", listUrl(null), undefined, headers);
    $("refresh-state").textContent = "· checked " + new Date().toLocaleTimeString();
    loadFacets(true); // a write elsewhere may change the counts but not this page
    if (r.status === 304) return;
    state.items = r.body.items;
    state.cursor = r.body.next_cursor;
    state.firstPageEtag = r.headers.get("ETag");
    renderTable();
    loadStatsTotal(true);
  } catch (e) { backOff(e); /* otherwise: try again next tick */ }
}

// A background refresh of the current view, unless the service asked for quiet.
function refreshNow() {
  if (Date.now() < state.quietUntil) return;
  if (state.view === "paints") refreshList();
  else if (state.view === "dashboard") refreshDashboard(true);
  else if (state.view === "performance") refreshPerformance(true);
}

function startRefresh() {
  stopRefresh();
  state.timer = setInterval(() => {
    if (document.visibilityState !== "visible") return;
    refreshNow();
  }, REFRESH_MS);
}

function stopRefresh() {
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
}

function onFilter(ev) {
  if (ev) ev.preventDefault();
  const stock = $("f-stock").value;
  state.filters = {
    q: $("f-q").value.trim(), brand: $("f-brand").value,
    color_family: $("f-family").value, color_type: $("f-type").value,
    in_stock: stock === "low" ? "" : stock, low_stock: stock === "low" ? "true" : "",
  };
  loadFirstPage();
}

// The list of what is low on stock (the dashboard's link): the filters
// cleared but that one.
function showLowStock(ev) {
  ev.preventDefault();
  $("filters").reset();
  $("f-stock").value = "low";
  state.filters = { low_stock: "true" };
  state.sort = "stock";
  showView("paints");
}

function onSort(ev) {
  const key = ev.currentTarget.dataset.sort;
  state.sort = state.sort === key ? "-" + key : key;
  loadFirstPage();
}

async function changeStock(p, delta) {
  try {
    const r = await api("POST", `/admin/paints/${p.id}/stock`, { delta });
    const i = state.items.findIndex((x) => x.id === p.id);
    if (i >= 0) state.items[i] = r.body;
    renderTable();
  } catch (e) {
    flash(e.status === 409 ? "Stock cannot go below 0." : e.message);
  }
}

// Ask with the #confirm dialog: true once the person chose yes (the
// button labelled yesLabel), false for no, Escape or closing it.
function confirmAction(message, yesLabel, noLabel) {
  const dlg = $("confirm");
  $("confirm-text").textContent = message;
  $("confirm-yes").textContent = yesLabel;
  $("confirm-no").textContent = noLabel;
  dlg.returnValue = "";
  dlg.showModal();
  return new Promise((resolve) => {
    dlg.addEventListener("close", () => resolve(dlg.returnValue === "yes"), { once: true });
  });
}

async function deletePaint(p) {
  if (!await confirmAction(`Delete “${p.name}”? This cannot be undone.`, "Delete", "Keep it")) return;
  try {
    await api("DELETE", `/admin/paints/${p.id}`);
    state.items = state.items.filter((x) => x.id !== p.id);
    renderTable();
    flash(`Deleted ${p.name}.`);
  } catch (e) {
    flash(e.message);
  }
}

// ---- the editor ---------------------------------------------------------

const FIELDS = ["name", "brand", "color_code", "color_type", "color_family", "color_preview",
  "stock", "low_stock_threshold", "price", "image_url", "description"];

// The server's rules, so most mistakes are caught before a round trip.
function validate(v) {
  const e = {};
  const len = (s) => [...s].length;
  if (!v.name.trim()) e.name = "is required";
  else if (len(v.name.trim()) > 200) e.name = "must be at most 200 characters";
  for (const [k, max] of [["brand", 100], ["color_type", 100], ["color_family", 100], ["color_code", 50]]) {
    if (len(v[k].trim()) > max) e[k] = `must be at most ${max} characters`;
  }
  if (len(v.description) > 5000) e.description = "must be at most 5000 characters";
  if (v.color_preview && !/^#[0-9a-fA-F]{6}$/.test(v.color_preview.trim())) e.color_preview = "must be a colour as #RRGGBB";
  const img = v.image_url.trim();
  if (img && !/^https?:\/\/[^\s/?#:][^\s]*$/i.test(img) && !STORED_IMAGE.test(img)) {
    e.image_url = "must be empty, an absolute http(s) URL or a stored image's address (/images/….webp)";
  }
  if (v.stock !== "" && !(/^\d+$/.test(v.stock) && Number(v.stock) <= 1000000)) e.stock = "must be a whole number from 0 to 1000000";
  const low = v.low_stock_threshold.trim();
  if (low !== "" && !(/^\d+$/.test(low) && Number(low) <= 1000000)) e.low_stock_threshold = "must be empty or a whole number from 0 to 1000000";
  if (v.price !== "" && !/^(0|[1-9]\d{0,7})(\.\d{1,2})?$/.test(v.price)) e.price = "must be a number ≥ 0 with at most 2 decimals, below 100000000";
  return e;
}

function showErrors(errors) {
  for (const f of FIELDS) {
    $("e-" + f).textContent = errors[f] || "";
    $("p-" + f).setAttribute("aria-invalid", errors[f] ? "true" : "false");
    if (errors[f]) $("p-" + f).setAttribute("aria-describedby", "e-" + f);
  }
  const first = FIELDS.find((f) => errors[f]);
  if (first) $("p-" + first).focus();
}

function updateSwatch() {
  const v = $("p-color_preview").value.trim();
  $("p-swatch").style.backgroundColor = /^#[0-9a-fA-F]{6}$/.test(v) ? v : "#cccccc";
}

function fillForm(p) {
  for (const f of FIELDS) {
    const v = p ? p[f] : "";
    $("p-" + f).value = v === undefined || v === null ? "" : f === "price" && p ? Number(v).toFixed(2) : String(v);
  }
  if (!p) $("p-color_preview").value = "#cccccc";
  updateSwatch();
  showErrors({});
  document.dispatchEvent(new Event("editor:filled")); // images.js: the Image section
}

async function openEditor(p) {
  $("conflict").hidden = true;
  $("form-error").hidden = true;
  state.editing = p;
  state.editingEtag = null;
  $("editor-title").textContent = p ? `Edit ${p.name}` : "New paint";
  if (p) {
    try {
      const r = await api("GET", `/admin/paints/${p.id}`);
      state.editing = r.body;
      state.editingEtag = r.headers.get("ETag");
    } catch (e) {
      flash(e.message);
      return;
    }
  }
  fillForm(state.editing);
  loadHistory(state.editing ? state.editing.id : null);
  $("editor").showModal();
  $("p-name").focus();
}

async function onSave(ev) {
  ev.preventDefault();
  const v = {};
  for (const f of FIELDS) v[f] = $("p-" + f).value;
  const errors = validate(v);
  showErrors(errors);
  if (Object.keys(errors).length) return;
  const body = {
    name: v.name.trim(), brand: v.brand.trim(), color_code: v.color_code.trim(),
    color_type: v.color_type.trim(), color_family: v.color_family.trim(),
    color_preview: v.color_preview.trim() || null, image_url: v.image_url.trim(),
    description: v.description, stock: v.stock === "" ? 0 : Number(v.stock),
    low_stock_threshold: v.low_stock_threshold.trim() === "" ? null : Number(v.low_stock_threshold.trim()),
  };
  // the price as typed: JSON.parse would turn "19.90" into 19.9, which is the same decimal
  body.price = v.price === "" ? 0 : Number(v.price);
  $("form-error").hidden = true;
  try {
    let r;
    if (state.editing) {
      r = await api("PUT", `/admin/paints/${state.editing.id}`, body,
        state.editingEtag ? { "If-Match": state.editingEtag } : {});
    } else {
      r = await api("POST", "/admin/paints", body);
    }
    $("editor").close();
    flash(`Saved ${r.body.name}.`);
    await loadFirstPage();
    loadStatsTotal();
  } catch (e) {
    if (e.status === 412) {
      $("conflict").hidden = false;
      $("conflict-reload").focus();
    } else if (e.status === 422 && e.body.errors) {
      showErrors(e.body.errors);
    } else {
      $("form-error").textContent = e.message;
      $("form-error").hidden = false;
    }
  }
}

async function onConflictReload() {
  if (!state.editing) return;
  try {
    const r = await api("GET", `/admin/paints/${state.editing.id}`);
    state.editing = r.body;
    state.editingEtag = r.headers.get("ETag");
    fillForm(state.editing);
    $("conflict").hidden = true;
    flash("Reloaded the current version: apply your change again.");
  } catch (e) {
    flash(e.message);
  }
}

// ---- paint history (the audit trail: GET /admin/audit?paint=<id>) ----------

const HISTORY_LIMIT = 20;

function historyValue(v) {
  if (v === null || v === undefined) return "∅";
  if (v === "") return "\"\"";
  return String(v);
}

function renderHistoryEntry(e) {
  const li = document.createElement("li");
  li.className = "history-entry";
  const head = document.createElement("div");
  const when = text("time", formatDate(e.at));
  when.dateTime = e.at;
  head.append(when, " ", text("strong", (e.actor && e.actor.username) || "?"), " ",
    text("span", e.action, "history-action"));
  const undo = typeof bulkHistoryAction === "function" && bulkHistoryAction(e); // bulk.js
  if (undo) head.append(" ", undo);
  const changes = document.createElement("ul");
  changes.className = "history-changes";
  for (const [field, c] of Object.entries(e.changes || {})) {
    const item = document.createElement("li");
    const before = text("span", historyValue(c.old), "history-old");
    const after = text("span", historyValue(c.new), "history-new");
    before.title = before.textContent;
    after.title = after.textContent;
    item.append(text("span", field, "history-field"), " ", before, " → ", after);
    changes.append(item);
  }
  li.append(head, changes);
  return li;
}

// Newest first; shown under the editor's form (hidden for a new paint).
async function loadHistory(paintId) {
  const list = $("history-list");
  list.replaceChildren();
  $("history").hidden = paintId === null;
  if (paintId === null) return;
  $("history-state").textContent = "Loading…";
  try {
    const r = await api("GET", `/admin/audit?paint=${encodeURIComponent(paintId)}&limit=${HISTORY_LIMIT}`);
    if (!state.editing || state.editing.id !== paintId) return; // the editor moved on
    list.replaceChildren(...r.body.items.map(renderHistoryEntry));
    $("history-state").textContent = r.body.items.length === 0 ? "No changes recorded."
      : r.body.next_cursor ? `The latest ${HISTORY_LIMIT} changes.` : "";
  } catch (e) {
    $("history-state").textContent = e.message;
  }
}

// ---- dashboard -----------------------------------------------------------

// ---- charts ------------------------------------------------------------------
// Small SVG charts with labelled axes, no library: lineChart draws samples
// over time (values with their unit up the side, the time range along the
// bottom), barChart compares named values. Labels are SVG text nodes.

const SVG_NS = "http://www.w3.org/2000/svg";
// The line charts' box in viewBox units (about CSS pixels in a dashboard card).
const LINE_BOX = { w: 220, h: 104, left: 44, right: 8, top: 14, bottom: 20 };

function svgEl(tag, attrs, content) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (content !== undefined) el.textContent = content;
  return el;
}

// The axis's top: the smallest of 1, 2, 2.5, 5 × 10^n at or above v (1 for none).
function niceCeil(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  return [1, 2, 2.5, 5, 10].map((m) => m * p).find((x) => x >= v * (1 - 1e-9));
}

// A figure with its unit, short enough for an axis: "250 ms", "1.5 s", "1.5k /s", "80 %".
function formatValue(v, unit) {
  const a = Math.abs(v);
  if (unit === "ms" && a >= 1000) return formatValue(v / 1000, "s");
  const n = a >= 1e6 ? `${+(v / 1e6).toFixed(1)}M` : a >= 1e3 ? `${+(v / 1e3).toFixed(1)}k`
    : Number.isInteger(v) ? String(v) : String(+v.toFixed(a < 10 ? 2 : 1));
  return unit ? `${n} ${unit}` : n;
}

// "5 min", "30 s"
function formatSpan(ms) {
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${+(s / 60).toFixed(1)} min` : `${s} s`;
}

// Draw samples ({t: Date.now() ms, v}) of the last opts.windowMs into the
// svg id: y from 0 to a round top (at least opts.max) with three ticks in
// opts.unit, x from the window's start to now, the latest sample marked.
// opts.label names the series for screen readers (the svg's aria-label).
function lineChart(id, samples, opts) {
  const { w, h, left, right, top, bottom } = LINE_BOX;
  const pw = w - left - right, ph = h - top - bottom;
  const now = Date.now();
  const span = opts.windowMs || CHART_WINDOW_MS;
  const shown = samples.filter((s) => now - s.t <= span && Number.isFinite(s.v));
  const high = shown.length ? Math.max(...shown.map((s) => s.v)) : 0;
  const axisTop = niceCeil(Math.max(opts.max || 0, high));
  const x = (t) => left + pw * (1 - (now - t) / span);
  const y = (v) => top + ph - (Math.max(0, Math.min(v, axisTop)) / axisTop) * ph;
  const parts = [];
  if (opts.title) parts.push(svgEl("text", { x: 2, y: 9, class: "axis-title" }, opts.title));
  for (const f of [0, 0.5, 1]) {
    const ty = top + ph - f * ph;
    parts.push(svgEl("line", { x1: left, x2: w - right, y1: ty, y2: ty, class: f ? "gridline" : "axis" }));
    parts.push(svgEl("text", { x: left - 3, y: ty + 3, "text-anchor": "end", class: "tick" },
      formatValue(axisTop * f, opts.unit)));
  }
  parts.push(svgEl("line", { x1: left, x2: left, y1: top, y2: top + ph, class: "axis" }));
  const range = formatSpan(span);
  parts.push(svgEl("text", { x: left, y: h - 5, class: "tick" }, `−${range}`));
  parts.push(svgEl("text", { x: left + pw / 2, y: h - 5, "text-anchor": "middle", class: "tick range" },
    `last ${range}`));
  parts.push(svgEl("text", { x: w - right, y: h - 5, "text-anchor": "end", class: "tick" }, "now"));
  parts.push(svgEl("polyline", {
    points: shown.map((s) => `${x(s.t).toFixed(1)},${y(s.v).toFixed(1)}`).join(" "),
  }));
  const last = shown[shown.length - 1];
  if (last) parts.push(svgEl("circle", { cx: x(last.t).toFixed(1), cy: y(last.v).toFixed(1), r: 2, class: "last" }));
  else parts.push(svgEl("text", { x: left + pw / 2, y: top + ph / 2, "text-anchor": "middle", class: "tick" }, "no data yet"));
  const svg = $(id);
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("aria-label", `${opts.label}, last ${range}` + (last
    ? `: now ${formatValue(last.v, opts.unit)}, highest ${formatValue(high, opts.unit)}` : ": no data yet"));
  svg.replaceChildren(...parts);
}

// Draw bars ([{label, v}], largest first) into the svg id: one row each, the
// label at its left, a value axis in opts.unit below with opts.title.
function barChart(id, bars, opts) {
  const w = 640, left = 150, right = 16, top = 4, row = 16, bottom = 30;
  const pw = w - left - right;
  const h = top + Math.max(bars.length, 1) * row + bottom;
  const axisTop = niceCeil(Math.max(0, ...bars.map((b) => b.v)));
  const parts = [];
  bars.forEach((b, i) => {
    const by = top + i * row;
    const name = b.label.length > 24 ? b.label.slice(0, 23) + "…" : b.label;
    parts.push(svgEl("text", { x: left - 4, y: by + row / 2 + 3, "text-anchor": "end", class: "tick" }, name));
    const bw = Math.max(1, (b.v / axisTop) * pw);
    const rect = svgEl("rect", { x: left, y: by + 2, width: bw.toFixed(1), height: row - 4, class: "bar" });
    rect.append(svgEl("title", {}, `${b.label}: ${formatValue(b.v, opts.unit)}`));
    parts.push(rect);
    parts.push(svgEl("text", { x: Math.min(left + bw + 3, w - right), y: by + row / 2 + 3, class: "tick value",
      "text-anchor": left + bw + 3 > w - right - 40 ? "end" : "start" }, formatValue(b.v, opts.unit)));
  });
  if (!bars.length) parts.push(svgEl("text", { x: left, y: top + row / 2 + 3, class: "tick" }, "no data yet"));
  const axisY = top + Math.max(bars.length, 1) * row;
  parts.push(svgEl("line", { x1: left, x2: w - right, y1: axisY, y2: axisY, class: "axis" }));
  parts.push(svgEl("line", { x1: left, x2: left, y1: top, y2: axisY, class: "axis" }));
  for (const f of [0, 0.5, 1]) {
    parts.push(svgEl("text", { x: left + f * pw, y: axisY + 11, class: "tick",
      "text-anchor": f === 0 ? "start" : f === 1 ? "end" : "middle" }, formatValue(axisTop * f, opts.unit)));
  }
  parts.push(svgEl("text", { x: left + pw / 2, y: h - 3, "text-anchor": "middle", class: "axis-title" }, opts.title));
  const svg = $(id);
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("aria-label", `${opts.label}: ` + (bars.length
    ? bars.map((b) => `${b.label} ${formatValue(b.v, opts.unit)}`).join(", ") : "no data yet"));
  svg.replaceChildren(...parts);
}

// Add a sample taken now; samples older than the charts' window go.
function push(series, value) {
  const now = Date.now();
  series.push({ t: now, v: value });
  while (series.length && now - series[0].t > CHART_WINDOW_MS) series.shift();
}

// The dashboard's figures; background: a timer's refresh, not the user's click.
async function refreshDashboard(background = false) {
  let m;
  try {
    m = (await api("GET", "/admin/metrics", undefined, background ? BACKGROUND : {})).body;
  } catch (e) {
    if (e.status !== 401 && !(background && backOff(e))) flash(e.message);
    return;
  }
  const h = state.history;
  push(h.pool, m.pool.checked_out);
  push(h.cache, m.cache.hit_rate_percent);
  push(h.rate, m.requests.rate_per_second);
  push(h.latency, m.indicators.query_p99.value);
  push(h.admission, m.admission.in_flight);
  $("d-pool").textContent = `${m.pool.checked_out} in use · ${m.pool.open} open / ${m.pool.max}`;
  $("d-cache").textContent = m.cache.up ? `${m.cache.hit_rate_percent.toFixed(1)} %` : "Redis down";
  $("d-rate").textContent = `${m.requests.rate_per_second.toFixed(2)} /s · ${m.requests.error_rate_percent.toFixed(1)} % errors`;
  $("d-latency").textContent = `${m.indicators.query_p99.value.toFixed(1)} ms`;
  lineChart("c-pool", h.pool, { max: m.pool.max, title: "connections", label: "Connections in use" });
  lineChart("c-cache", h.cache, { max: 100, unit: "%", title: "hit rate", label: "Cache hit rate" });
  lineChart("c-rate", h.rate, { unit: "/s", title: "requests per second", label: "Request rate" });
  lineChart("c-latency", h.latency, { unit: "ms", title: "query p99", label: "Query latency p99" });
  renderAdmission(m.admission);
  $("d-indicators").replaceChildren(...Object.entries(m.indicators).map(([k, i]) => {
    const li = document.createElement("li");
    li.textContent = `${k.replace(/_/g, " ")}: ${Number(i.value).toFixed(1)} ${i.unit} (target ${i.target}) — ${i.pass ? "pass" : "FAIL"}`;
    li.className = i.pass ? "pass" : "fail";
    return li;
  }));
  renderLowStock(m.low_stock);
  $("d-alerts").replaceChildren(...(m.alerts.length ? m.alerts.map((a) => {
    const li = document.createElement("li");
    li.className = "fail";
    li.textContent = `${a.alert}: ${Number(a.value).toFixed(1)} ${a.unit} (threshold ${a.threshold})`;
    return li;
  }) : [text("li", "No alerts.", "pass")]));
}

// The catalogue's low stock as the service last sampled it: how many, and the lowest.
function renderLowStock(low) {
  if (!low) return;
  $("d-low").textContent = low.count === null ? "not sampled yet" : `${fmtCount(low.count)} low`;
  $("d-low-meta").textContent = `at or below each paint's threshold (default ${low.default_threshold}` +
    `${low.default_threshold === 0 ? ": off" : ""})` + (low.count > low.lowest.length ? ` · the ${low.lowest.length} lowest:` : "");
  $("d-low-list").replaceChildren(...low.lowest.map((p) => {
    const li = document.createElement("li");
    li.append(text("span", p.brand ? `${p.name} (${p.brand})` : p.name),
      text("span", `${fmtCount(p.stock)} / ${fmtCount(p.threshold)}`, "num"));
    return li;
  }));
  $("d-low-link").hidden = !low.count;
}

// The admission gate in front of PostgreSQL: places taken of the limit,
// the queue, and what it turned away (503) by reason.
function renderAdmission(a) {
  const waiting = Object.values(a.queued).reduce((x, y) => x + y, 0);
  $("d-admission").textContent = a.mode === "off" ? `${a.in_flight} at the database · admission off`
    : `${a.in_flight} / ${a.limit} at the database · ${waiting} waiting`;
  const shed = Object.entries(a.shed).map(([k, n]) => `${k.replace(/_/g, " ")} ${n}`).join(" · ");
  $("d-admission-detail").textContent = `${a.mode}${a.overloaded ? ", shedding" : ""} · ` +
    `limit ${a.floor}–${a.ceiling} · no-load ${a.min_rtt_ms.toFixed(1)} ms, now ${a.sample_rtt_ms.toFixed(1)} ms · ` +
    `turned away: ${shed}`;
  lineChart("c-admission", state.history.admission,
    { max: a.ceiling, title: "requests at the database", label: "Requests at the database" });
}

// ---- wiring ----------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", onLogout);
  $("tab-paints").addEventListener("click", () => showView("paints"));
  $("tab-dashboard").addEventListener("click", () => showView("dashboard"));
  $("filters").addEventListener("submit", onFilter);
  $("f-reset").addEventListener("click", () => { state.filters = {}; setTimeout(loadFirstPage, 0); });
  for (const sel of document.querySelectorAll("#filters select")) sel.addEventListener("change", () => onFilter());
  $("d-low-link").addEventListener("click", showLowStock);
  for (const b of document.querySelectorAll("#paints th .sort")) b.addEventListener("click", onSort);
  $("more").addEventListener("click", loadMore);
  $("new-paint").addEventListener("click", () => openEditor(null));
  $("paint-form").addEventListener("submit", onSave);
  $("cancel-edit").addEventListener("click", () => $("editor").close());
  $("conflict-reload").addEventListener("click", onConflictReload);
  $("p-color_preview").addEventListener("input", updateSwatch);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && state.user) refreshNow();
  });
  start();
});
