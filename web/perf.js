// The Performance page of the admin UI: which statements take the time
// (pg_stat_statements, by the service's own names, with their plans), the
// requests that were slow and where their time went, what runs in the
// database now (with a cancel), and the schema's health. Loaded after
// app.js and users.js, whose api(), $, text(), flash(), formatDate(),
// lineChart(), barChart(), push(), formatValue(), confirmAction(),
// backOff(), problemText(), BACKGROUND and state it uses. Everything the
// server sends is shown as text (textContent), never as markup.
"use strict";

const PERF_LIMIT = 50; // statements listed
const PERF_BARS = 10; // of which the chart compares
const HEALTH_EVERY_MS = 30000; // the schema's health changes slowly: polled this often

const perf = {
  queries: [],
  sort: "total_ms", // of calls, total_ms, mean_ms; always largest first
  available: true,
  dbTime: [], // {t, v}: the top statements' milliseconds per second, sampled while the page is open
  lastTotal: null, // {t, ms}: the previous sample's sum of total_ms
  slowOpen: new Set(), // request ids whose statements are unfolded (kept across refreshes)
  healthAt: 0, // Date.now() of the last schema health read
  planning: null, // the statement the plan dialog is about
};

const ms = (v) => (v === null || v === undefined ? "—" : formatValue(Number(v), "ms"));
const count = (v) => (v === null || v === undefined ? "—" : Number(v).toLocaleString("en"));
const percent = (r) => (r === null || r === undefined ? "—" : `${(r * 100).toFixed(1)} %`);
const seconds = (v) => (v === null || v === undefined ? "—" : `${Number(v).toFixed(1)} s`);

function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let v = Number(n), i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}

function cell(value, cls) {
  return text("td", value, cls);
}

// A section's error line: the problem's detail, or nothing.
function sectionError(id, e) {
  const el = $(id);
  el.textContent = e ? problemText(e) : "";
  el.hidden = !e;
}

// A load of one section failed: quiet for a background poll the service
// turned away (503), shown in the section otherwise.
function failed(id, e, background) {
  if (e.status === 401) return;
  if (background && backOff(e, "perf-state")) return;
  sectionError(id, e);
}

// ---- Server-Timing ---------------------------------------------------------

// "auth;dur=0.2, db;dur=3.1" -> [["auth", 0.2], ["db", 3.1]]
function serverTiming(header) {
  return (header || "").split(",").map((part) => {
    const m = /^\s*([\w-]+)\s*(?:;.*?dur=([\d.]+))?/.exec(part);
    return m ? [m[1], Number(m[2] || 0)] : null;
  }).filter(Boolean);
}

function showTiming(headers) {
  const t = serverTiming(headers.get("Server-Timing"));
  $("perf-timing").textContent = t.length
    ? "Where the statements list's own time went (Server-Timing): " + t.map(([k, v]) => `${k} ${ms(v)}`).join(" · ")
    : "";
}

// ---- top statements ----------------------------------------------------------

// One section's GET: its answer rendered, or its error shown (quietly for
// a background poll). True when it loaded.
async function loadSection(path, errorId, headers, render) {
  try {
    const r = await api("GET", path, undefined, headers);
    sectionError(errorId, null);
    render(r);
    return true;
  } catch (e) {
    failed(errorId, e, headers === BACKGROUND);
    return false;
  }
}

const loadQueries = (headers) => loadSection(`/admin/queries?limit=${PERF_LIMIT}`, "pf-queries-error", headers, (r) => {
  showTiming(r.headers);
  perf.available = r.body.available;
  perf.queries = r.body.items;
  sampleDbTime();
  renderQueries(r.body);
});

// The sum of the listed statements' total time, as a rate since the last
// look (ms of statement time per second). A reset (or a statement leaving
// the list) makes the sum fall: that interval is skipped.
function sampleDbTime() {
  const now = Date.now();
  const sum = perf.queries.reduce((a, q) => a + (Number(q.total_ms) || 0), 0);
  const last = perf.lastTotal;
  perf.lastTotal = perf.available ? { t: now, ms: sum } : null;
  if (last && sum >= last.ms && now > last.t) push(perf.dbTime, (sum - last.ms) / ((now - last.t) / 1000));
  const latest = perf.dbTime[perf.dbTime.length - 1];
  $("pf-dbtime").textContent = !perf.available ? "not available"
    : latest ? `${formatValue(latest.v, "ms")} per s` : "measuring…";
  lineChart("c-dbtime", perf.dbTime, { unit: "ms", title: "ms per second", label: "Statement time per second" });
}

function sortedQueries() {
  const k = perf.sort;
  return perf.queries.slice().sort((a, b) => (Number(b[k]) || 0) - (Number(a[k]) || 0));
}

function renderQueryRow(q) {
  const tr = document.createElement("tr");
  tr.dataset.queryid = String(q.queryid);
  if (q.name) tr.dataset.name = q.name;
  const name = q.name ? text("code", q.name) : text("span", "other", "muted");
  const first = document.createElement("td");
  first.className = "name";
  first.append(name);
  const sql = cell(q.query, "sql");
  sql.title = q.query;
  const actions = document.createElement("td");
  actions.className = "actions";
  if (q.name) { // only the service's own statements have a plan to ask for
    const b = text("button", "Plan", "pf-plan");
    b.type = "button";
    b.setAttribute("aria-label", `Plan of ${q.name}`);
    b.addEventListener("click", () => openPlan(q));
    actions.append(b);
  }
  tr.append(first, cell(count(q.calls), "num"), cell(ms(q.total_ms), "num"), cell(ms(q.mean_ms), "num"),
    cell(ms(q.max_ms), "num"), cell(count(q.rows), "num"), cell(percent(q.hit_ratio), "num"), sql, actions);
  return tr;
}

function renderQueries(body) {
  $("pf-unavailable").hidden = body.available;
  $("pf-queries-body").hidden = !body.available;
  $("pf-reset").disabled = !body.available;
  if (!body.available) {
    $("pf-reason").textContent = body.reason || "";
    $("pf-how").textContent = body.how_to_enable || "";
    return;
  }
  const items = sortedQueries();
  $("pf-queries").tBodies[0].replaceChildren(...items.map(renderQueryRow));
  for (const b of document.querySelectorAll("#pf-queries th .sort")) {
    b.setAttribute("aria-sort", b.dataset.sort === perf.sort ? "descending" : "none");
  }
  const top = perf.queries.slice().sort((a, b) => b.total_ms - a.total_ms).slice(0, PERF_BARS);
  barChart("c-top", top.map((q) => ({ label: q.name || q.query.replace(/\s+/g, " "), v: Number(q.total_ms) || 0 })),
    { unit: "ms", title: "total time since the statistics were reset (ms)", label: "Total time of the top statements" });
}

function onQuerySort(ev) {
  perf.sort = ev.currentTarget.dataset.sort;
  renderQueries({ available: perf.available });
}

async function resetQueries() {
  const yes = await confirmAction("Empty the statement statistics (pg_stat_statements) of the whole " +
    "database server? Every figure starts again from zero; the reset is recorded in the audit trail.",
  "Reset statistics", "Keep them");
  if (!yes) return;
  try {
    await api("POST", "/admin/queries/reset");
    perf.lastTotal = null;
    flash("Statement statistics reset.");
    loadQueries({});
  } catch (e) {
    if (e.status !== 401) sectionError("pf-queries-error", e);
  }
}

// ---- plans -------------------------------------------------------------------

function openPlan(q) {
  perf.planning = q;
  $("plan-title").textContent = `Plan of ${q.name}`;
  // pg_stat_statements' text (constants may show as $n too): the server
  // knows how many parameters the statement takes, and says so when asked wrong
  $("plan-query").textContent = q.query;
  $("plan-params").value = "";
  $("plan-analyze").checked = false;
  $("plan-output").hidden = true;
  showError("plan-error", "");
  $("plan-dialog").showModal();
  $("plan-params").focus();
}

// One line per plan node, indented by depth, with its conditions.
function planLines(node, depth, out) {
  const pad = "   ".repeat(depth) + (depth ? "-> " : "");
  let line = pad + [node["Node Type"], node["Index Name"] && `using ${node["Index Name"]}`,
    node["Relation Name"] && `on ${node["Relation Name"]}`].filter(Boolean).join(" ");
  line += `  (cost ${node["Startup Cost"]}..${node["Total Cost"]}, rows ${node["Plan Rows"]})`;
  if ("Actual Total Time" in node) {
    line += `  (actual ${node["Actual Total Time"]} ms, rows ${node["Actual Rows"]}, loops ${node["Actual Loops"]})`;
  }
  out.push(line);
  for (const k of ["Index Cond", "Recheck Cond", "Hash Cond", "Merge Cond", "Join Filter", "Filter", "Sort Key"]) {
    if (node[k]) out.push(`${" ".repeat(pad.length + 3)}${k}: ${Array.isArray(node[k]) ? node[k].join(", ") : node[k]}`);
  }
  for (const child of node.Plans || []) planLines(child, depth + 1, out);
}

function planText(plan) {
  const out = [];
  for (const p of plan || []) {
    if (p.Plan) planLines(p.Plan, 0, out);
    if ("Planning Time" in p) out.push(`Planning time: ${p["Planning Time"]} ms`);
    if ("Execution Time" in p) out.push(`Execution time: ${p["Execution Time"]} ms`);
  }
  return out.join("\n");
}

async function onPlan(ev) {
  ev.preventDefault();
  const q = perf.planning;
  const lines = $("plan-params").value.split("\n");
  while (lines.length && lines[lines.length - 1] === "") lines.pop(); // a trailing newline is no parameter
  const p = new URLSearchParams();
  for (const v of lines) p.append("param", v);
  p.set("analyze", $("plan-analyze").checked ? "true" : "false");
  showError("plan-error", "");
  $("plan-output").hidden = true;
  try {
    const r = await api("GET", `/admin/queries/${encodeURIComponent(q.name)}/plan?${p}`);
    if (perf.planning !== q) return; // the dialog moved on
    $("plan-output").textContent = planText(r.body.plan);
    $("plan-output").hidden = false;
  } catch (e) {
    if (e.status !== 401) showError("plan-error", problemText(e)); // 400, 404, 422 say why
  }
}

// ---- slow requests -------------------------------------------------------------

const loadSlow = (headers) => loadSection("/admin/slow", "pf-slow-error", headers, (r) => renderSlow(r.body));

function statementsDetails(s) {
  const d = document.createElement("details");
  d.open = perf.slowOpen.has(s.request_id);
  d.addEventListener("toggle", () => {
    if (d.open) perf.slowOpen.add(s.request_id); else perf.slowOpen.delete(s.request_id);
  });
  const n = s.statements.length + s.statements_not_listed;
  d.append(text("summary", `${n} statement${n === 1 ? "" : "s"}`));
  const list = document.createElement("ol");
  list.className = "statements";
  for (const st of s.statements) {
    const li = document.createElement("li");
    li.append(text("code", st.name), ` ${ms(st.ms)} `, text("span", `at +${ms(st.at_ms)}`, "muted"));
    li.dataset.ms = String(st.ms);
    if (st.name === s.slowest_statement) li.className = "slowest";
    list.append(li);
  }
  d.append(list);
  if (s.statements_not_listed) d.append(text("p", `and ${s.statements_not_listed} more not listed`, "muted"));
  return d;
}

function renderSlowRow(s) {
  const tr = document.createElement("tr");
  tr.dataset.requestId = s.request_id;
  const at = new Date(s.at);
  const when = text("time", isNaN(at) ? s.at : at.toISOString().slice(0, 19).replace("T", " "));
  when.dateTime = s.at;
  when.title = s.at;
  const whenCell = document.createElement("td");
  whenCell.append(when);
  const req = document.createElement("td");
  req.className = "request";
  req.append(text("span", `${s.method} ${s.path}`), text("span", ` ${s.route}`, "muted"));
  req.title = `request id ${s.request_id}`;
  const status = cell(s.shed ? `${s.status} (shed: ${s.shed})` : String(s.status), s.status >= 500 ? "fail" : "");
  const slowest = document.createElement("td");
  if (s.slowest_statement) slowest.append(text("code", s.slowest_statement)); else slowest.textContent = "—";
  const details = document.createElement("td");
  details.append(statementsDetails(s));
  tr.append(whenCell, req, status, cell(ms(s.total_ms), "num"), cell(ms(s.auth_ms), "num"),
    cell(ms(s.queue_ms), "num"), cell(ms(s.pool_wait_ms), "num"), cell(ms(s.db_ms), "num"),
    cell(ms(s.cache_ms), "num"), slowest, details);
  return tr;
}

function renderSlow(body) {
  const threshold = formatValue(Number(body.threshold_ms), "ms");
  const shared = body.source === "all processes";
  $("pf-slow-count").textContent = count(body.items.length);
  $("pf-slow-threshold").textContent = `slower than ${threshold}, ` +
    (shared ? "from every process" : "from the answering process only");
  $("pf-slow-meta").textContent = `Requests slower than ${threshold} (SLOW_REQUEST_MS), newest first: ` +
    (shared ? `the last ${body.kept} of all the service's processes (shared through Redis).`
            : `Redis is not in use, so this is the answering process's own list (its last ${body.kept}).`);
  const empty = body.items.length === 0;
  $("pf-slow-empty").textContent = empty ? `No request has been slower than ${threshold}.` : "";
  $("pf-slow-empty").hidden = !empty;
  $("pf-slow-wrap").hidden = empty;
  $("pf-slow").tBodies[0].replaceChildren(...body.items.map(renderSlowRow));
}

// ---- activity ---------------------------------------------------------------------

const loadActivity = (headers) => loadSection("/admin/activity", "pf-activity-error", headers, (r) =>
  $("pf-activity").tBodies[0].replaceChildren(...r.body.items.map(renderActivityRow)));

function renderActivityRow(a) {
  const tr = document.createElement("tr");
  tr.dataset.pid = String(a.pid);
  if (a.this_request) tr.className = "me";
  const waiting = a.wait_event ? `${a.wait_event_type}: ${a.wait_event}` : "—";
  const query = document.createElement("td");
  query.className = "sql";
  if (a.statement) query.append(text("code", a.statement), " ");
  query.append(a.query || "");
  query.title = a.query || "";
  const actions = document.createElement("td");
  actions.className = "actions";
  if (a.this_request) {
    actions.append(text("span", "this request", "muted"));
  } else if (a.backend_type === "client backend") {
    const b = text("button", "Cancel", "pf-cancel");
    b.type = "button";
    b.setAttribute("aria-label", `Cancel the statement of backend ${a.pid}`);
    b.addEventListener("click", () => cancelBackend(a));
    actions.append(b);
  }
  tr.append(cell(String(a.pid), "num"), cell(a.user || "—"), cell(a.application || "—"),
    cell(a.client_addr || "local"), cell(a.backend_type || "—"), cell(a.state || "—"), cell(waiting),
    cell(seconds(a.query_seconds), "num"), cell(seconds(a.transaction_seconds), "num"), query, actions);
  return tr;
}

async function cancelBackend(a) {
  const what = a.query ? `: “${a.query.length > 120 ? a.query.slice(0, 119) + "…" : a.query}”` : "";
  const yes = await confirmAction(`Cancel the running statement of backend ${a.pid} ` +
    `(${a.user || "?"}, ${a.application || "no application"})${what}? Its client gets an error; ` +
    "the cancel is recorded in the audit trail.", "Cancel statement", "Keep it running");
  if (!yes) return;
  try {
    await api("POST", `/admin/activity/${encodeURIComponent(a.pid)}/cancel`);
    flash(`Cancelled the statement of backend ${a.pid}.`);
  } catch (e) {
    if (e.status !== 401) sectionError("pf-activity-error", e); // 403, 404 say why
  }
  loadActivity({});
}

// ---- schema health -------------------------------------------------------------

const loadHealth = (headers) => loadSection("/admin/database", "pf-health-error", headers, (r) => {
  perf.healthAt = Date.now();
  renderHealth(r.body);
});

function lastOf(manual, auto) {
  const m = manual ? Date.parse(manual) : 0, a = auto ? Date.parse(auto) : 0;
  if (!m && !a) return "never";
  return m >= a ? formatDate(manual) : `${formatDate(auto)} (auto)`;
}

function renderTableRow(t) {
  const tr = document.createElement("tr");
  tr.dataset.table = t.table;
  const perScan = t.seq_scans ? Math.round(t.seq_rows_read / t.seq_scans) : null;
  tr.append(cell(t.table, "name"), cell(count(t.live_rows), "num"), cell(count(t.dead_rows), "num"),
    cell(percent(t.dead_ratio), t.dead_ratio > 0.2 ? "num fail" : "num"), cell(count(t.seq_scans), "num"),
    cell(count(perScan), "num"), cell(count(t.index_scans), "num"),
    cell(lastOf(t.last_vacuum, t.last_autovacuum)), cell(lastOf(t.last_analyze, t.last_autoanalyze)),
    cell(bytes(t.size_bytes), "num"));
  return tr;
}

function listOrNone(id, items, none, line) {
  $(id).replaceChildren(...(items.length ? items.map((x) => text("li", line(x)))
    : [text("li", none, "pass")]));
}

function renderHealth(body) {
  const d = body.database || {};
  $("pf-hit").textContent = percent(d.buffer_hit_ratio);
  $("pf-db-detail").textContent = `${count(d.blocks_hit)} blocks from memory, ${count(d.blocks_read)} from disk`;
  const facts = [["Database size", bytes(d.size_bytes)], ["Commits", count(d.commits)],
    ["Rollbacks", count(d.rollbacks)], ["Deadlocks", count(d.deadlocks)], ["Temporary files", bytes(d.temp_bytes)]];
  $("pf-database").replaceChildren(...facts.map(([k, v]) => {
    const div = document.createElement("div");
    div.append(text("dt", k), text("dd", v));
    return div;
  }));
  $("pf-tables").tBodies[0].replaceChildren(...body.tables.map(renderTableRow));
  listOrNone("pf-seqscans", body.large_table_seq_scans, "None.", (t) =>
    `${t.table}: ${count(t.seq_scans)} scans, ${count(Math.round(t.seq_rows_read / t.seq_scans))} rows read each`);
  listOrNone("pf-unused", body.unused_indexes, "None.", (x) => `${x.index} on ${x.table} (${bytes(x.size_bytes)})`);
  listOrNone("pf-replication", body.replication, "No replica streams from this server.", (r) =>
    `${r.name || r.client_addr || "replica"} (${r.state}): ${seconds(r.replay_lag_seconds)} behind, ` +
    `${bytes(r.replay_lag_bytes)} to replay`);
}

// ---- the page ---------------------------------------------------------------------

// Every section; background: a timer's refresh (marked so the service may
// turn it away first when busy), in which the schema's health is read
// only every HEALTH_EVERY_MS.
async function refreshPerformance(background = false) {
  const headers = background ? BACKGROUND : {};
  const loads = [loadQueries(headers), loadSlow(headers), loadActivity(headers)];
  if (!background || Date.now() - perf.healthAt >= HEALTH_EVERY_MS) loads.push(loadHealth(headers));
  const ok = await Promise.all(loads);
  if (ok.every(Boolean)) $("perf-state").textContent = "· checked " + new Date().toLocaleTimeString();
}

document.addEventListener("DOMContentLoaded", () => {
  $("tab-performance").addEventListener("click", () => showView("performance"));
  $("perf-refresh").addEventListener("click", () => refreshPerformance());
  $("pf-reset").addEventListener("click", resetQueries);
  for (const b of document.querySelectorAll("#pf-queries th .sort")) b.addEventListener("click", onQuerySort);
  $("plan-form").addEventListener("submit", onPlan);
  $("plan-close").addEventListener("click", () => $("plan-dialog").close());
});
