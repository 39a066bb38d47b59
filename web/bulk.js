// Bulk edits of the paints list (POST /admin/paints/bulk and its undo): a
// checkbox in each row's swatch cell, "select all shown" in the header,
// "select all N matching" (the list's current filter, sent as the bulk
// edit's filter), and a dialog that previews one change (its count and a
// sample, before → after), then applies it and offers Undo. The history
// panel offers Undo for a bulk entry too.
// Loaded after app.js, whose api(), $, text(), flash(), state,
// loadFirstPage(), loadStatsTotal() and confirmAction() it uses. Its hooks
// there: renderTable() dispatches "paints:rendered" on the document, and
// renderHistoryEntry() asks bulkHistoryAction(entry) for a button.
// Everything is built with DOM calls and textContent: no markup from data.
"use strict";

const BULK_MAX = 10000; // the service's limit (BULK_MAX_PAINTS)

const bulk = {
  ids: new Set(), // the paints selected one by one
  filter: null, // the filter selected whole (every matching paint), or null
  matching: null, // how many paints the current filter matches (null: unknown)
  matchingKey: null, // the filter that count is for
  previewed: null, // the body last previewed: Apply sends exactly it
  lastOp: null, // the applied edit's operation id, for Undo
};

// The fields a bulk edit changes: how the value is typed.
const BULK_FIELDS = [
  ["price", "price"], ["stock", "whole"], ["name", "text"], ["brand", "text"],
  ["color_code", "text"], ["color_type", "text"], ["color_family", "text"],
  ["color_preview", "text"], ["image_url", "text"], ["description", "text"],
];

// A new element: attributes (properties when the name is a property), then children.
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k in e && k !== "list") e[k] = v;
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

// A checkbox in a label whose words only screen readers get (every input has a label).
function checkLabel(box, words) {
  return el("label", {}, box, el("span", { className: "visually-hidden" }, words));
}

// The list's current filters, empty ones left out (the bulk edit's filter).
function currentFilter() {
  const f = {};
  for (const [k, v] of Object.entries(state.filters)) if (v !== "") f[k] = v;
  return f;
}

// ---- the selection ----------------------------------------------------------

function selectionSize() {
  return bulk.filter ? bulk.matching : bulk.ids.size;
}

function renderBar() {
  const n = selectionSize();
  $("bulk-selected").textContent = bulk.filter
    ? `All ${n} paints matching the filter are selected`
    : n ? `${n} selected` : "No paint selected";
  const m = bulk.matching;
  const all = $("bulk-all-matching");
  all.textContent = m === null ? "Select all matching" : `Select all ${m} matching`;
  all.disabled = bulk.filter !== null || m === null || m === 0 || m > BULK_MAX;
  all.title = m > BULK_MAX ? `A bulk edit changes at most ${BULK_MAX} paints: narrow the filter` : "";
  $("bulk-clear").disabled = !n;
  $("bulk-edit").disabled = !n;
  const head = $("bulk-all-shown");
  const shown = state.items.map((p) => p.id);
  head.checked = bulk.filter !== null || (shown.length > 0 && shown.every((id) => bulk.ids.has(id)));
  head.indeterminate = !head.checked && shown.some((id) => bulk.ids.has(id));
}

// After every render of the table: a checkbox in each row's first cell.
function decorateRows() {
  for (const tr of $("paints").tBodies[0].rows) {
    const id = Number(tr.dataset.id);
    const name = tr.querySelector("td.name")?.textContent || String(id);
    const box = el("input", { type: "checkbox", className: "bulk-pick" });
    box.checked = bulk.filter !== null || bulk.ids.has(id);
    box.disabled = bulk.filter !== null;
    box.addEventListener("change", () => {
      if (box.checked) bulk.ids.add(id);
      else bulk.ids.delete(id);
      renderBar();
    });
    tr.cells[0].prepend(checkLabel(box, `Select ${name}`), " ");
  }
  const key = JSON.stringify(currentFilter());
  if (key !== bulk.matchingKey) {
    if (bulk.filter) clearSelection();
    countMatching(key);
  }
  renderBar();
}

// How many paints the filter matches: the list's page when it is the whole
// list, else a preview of a change that cannot be refused for its bounds
// (it writes nothing; over the limit its 422 gives the count).
async function countMatching(key) {
  bulk.matchingKey = key;
  bulk.matching = state.cursor ? null : state.items.length;
  if (!state.cursor) return;
  const body = { filter: JSON.parse(key), set: { description: "" } };
  let n = null;
  try {
    n = (await api("POST", "/admin/paints/bulk?preview=1", body)).body.matched;
  } catch (e) {
    if (e.status === 422 && typeof e.body.count === "number") n = e.body.count;
  }
  if (bulk.matchingKey !== key) return; // the filter moved on
  bulk.matching = n;
  renderBar();
}

function clearSelection() {
  bulk.ids.clear();
  bulk.filter = null;
  for (const b of document.querySelectorAll("#paints .bulk-pick")) {
    b.checked = false;
    b.disabled = false;
  }
  renderBar();
}

function onAllShown(ev) {
  if (bulk.filter) return clearSelection();
  for (const p of state.items) {
    if (ev.target.checked) bulk.ids.add(p.id);
    else bulk.ids.delete(p.id);
  }
  for (const b of document.querySelectorAll("#paints .bulk-pick")) b.checked = ev.target.checked;
  renderBar();
}

function onAllMatching() {
  bulk.filter = currentFilter();
  bulk.ids.clear();
  for (const b of document.querySelectorAll("#paints .bulk-pick")) {
    b.checked = true;
    b.disabled = true;
  }
  renderBar();
}

// ---- the dialog -------------------------------------------------------------

function bulkError(message) {
  $("bulk-error").textContent = message || "";
  $("bulk-error").hidden = !message;
}

// A refusal as one line: its detail, each field's message, the paints it names.
function bulkProblem(e) {
  const parts = [e.message];
  for (const [k, m] of Object.entries(e.body.errors || {})) parts.push(`${k}: ${m}`);
  const ids = e.body.out_of_bounds || e.body.unknown;
  if (ids) parts.push(`paints ${ids.join(", ")}${e.body.count > ids.length ? ", …" : ""}`);
  return parts.join(" · ");
}

// The change the dialog describes, or null with the reason shown.
function bulkBody() {
  const field = $("bulk-field").value;
  const op = $("bulk-op").value;
  const raw = $("bulk-value").value.trim();
  const kind = BULK_FIELDS.find(([f]) => f === field)[1];
  let value = $("bulk-value").value;
  if (kind === "whole") {
    if (!/^-?\d+$/.test(raw)) return bulkError("Enter a whole number."), null;
    value = Number(raw);
  } else if (kind === "price") {
    if (!/^-?\d+(\.\d{1,2})?$/.test(raw)) return bulkError("Enter a price with at most 2 decimals."), null;
    value = Number(raw);
  }
  const body = bulk.filter ? { filter: bulk.filter } : { ids: [...bulk.ids] };
  body[op] = { [field]: value };
  return body;
}

function resetPreview() {
  bulk.previewed = null;
  $("bulk-apply").disabled = true;
  $("bulk-preview").hidden = true;
  bulkError("");
}

function onFieldChange() {
  const kind = BULK_FIELDS.find(([f]) => f === $("bulk-field").value)[1];
  const add = $("bulk-op").querySelector("option[value=add]");
  add.disabled = kind === "text";
  if (add.disabled) $("bulk-op").value = "set";
  resetPreview();
}

function openBulkDialog() {
  const n = selectionSize();
  $("bulk-target").textContent = bulk.filter
    ? `All ${n} paints matching the filter ${JSON.stringify(bulk.filter)}`
    : `${n} selected ${n === 1 ? "paint" : "paints"}`;
  $("bulk-result").hidden = true;
  $("bulk-undo").hidden = true;
  for (const id of ["bulk-field", "bulk-op", "bulk-value", "bulk-preview-btn"]) $(id).disabled = false;
  resetPreview();
  onFieldChange();
  $("bulk-dialog").showModal();
  $("bulk-value").focus();
}

const shownValue = (v) => (v === null || v === undefined ? "∅" : typeof v === "number" ? String(v) : v);

async function onPreview() {
  resetPreview();
  const body = bulkBody();
  if (!body) return;
  try {
    const o = (await api("POST", "/admin/paints/bulk?preview=1", body)).body;
    const field = Object.keys(body.set || body.add)[0];
    $("bulk-preview-count").textContent = `${o.count} of ${o.matched} paints would change` +
      (o.unchanged ? ` (${o.unchanged} already have this value)` : "") +
      (o.matched > o.sample.length ? `; the first ${o.sample.length}:` : ":");
    $("bulk-sample").tBodies[0].replaceChildren(...o.sample.map((p) => el("tr", { className: "bulk-sample-row" },
      text("td", p.name), text("td", p.brand),
      text("td", shownValue(p.before[field]), "num"), text("td", shownValue(p.after[field]), "num"))));
    $("bulk-preview").hidden = false;
    bulk.previewed = body;
    $("bulk-apply").disabled = o.count === 0;
  } catch (e) {
    bulkError(bulkProblem(e));
  }
}

async function onApply() {
  if (!bulk.previewed) return;
  $("bulk-apply").disabled = true;
  try {
    const o = (await api("POST", "/admin/paints/bulk", bulk.previewed)).body;
    bulk.lastOp = o.id;
    $("bulk-result").textContent = `Changed ${o.count} ${o.count === 1 ? "paint" : "paints"}` +
      (o.unchanged ? `, ${o.unchanged} unchanged` : "") + (o.id ? ` (operation ${o.id}).` : ".");
    $("bulk-result").hidden = false;
    $("bulk-undo").hidden = !o.id;
    $("bulk-undo").disabled = false;
    for (const id of ["bulk-field", "bulk-op", "bulk-value", "bulk-preview-btn"]) $(id).disabled = true;
    $("bulk-preview").hidden = true;
    afterBulkWrite();
  } catch (e) {
    bulkError(bulkProblem(e));
  }
}

// Undo operation op: the answer's summary as one line (throws the refusal).
async function undoBulk(op) {
  const o = (await api("POST", `/admin/paints/bulk/${encodeURIComponent(op)}/undo`)).body;
  let line = `Undone: ${o.count} ${o.count === 1 ? "paint" : "paints"} restored`;
  if (o.skipped_count) {
    line += `; ${o.skipped_count} left as they are, changed or deleted since: ` +
      o.skipped.map((s) => `${s.id} (${s.reason})`).join(", ");
  }
  afterBulkWrite();
  return line + ".";
}

async function onUndo() {
  $("bulk-undo").disabled = true;
  try {
    $("bulk-result").textContent = await undoBulk(bulk.lastOp);
    $("bulk-undo").hidden = true;
  } catch (e) {
    bulkError(bulkProblem(e));
  }
}

function afterBulkWrite() {
  bulk.matchingKey = null; // the counts may have moved
  clearSelection();
  loadFirstPage();
  loadStatsTotal();
}

// The history panel's hook: an Undo button for an entry of a bulk edit.
function bulkHistoryAction(entry) {
  if (entry.action !== "bulk" || !entry.operation_id) return null;
  const b = el("button", { type: "button", className: "bulk-history-undo" }, "Undo bulk edit");
  b.setAttribute("aria-label", `Undo bulk edit ${entry.operation_id}`);
  b.addEventListener("click", async () => {
    if (!await confirmAction(`Undo bulk edit ${entry.operation_id} for every paint it changed?`,
      "Undo", "Keep it")) return;
    try {
      flash(await undoBulk(entry.operation_id));
      if (state.editing) loadHistory(state.editing.id);
    } catch (e) {
      flash(bulkProblem(e));
    }
  });
  return b;
}

// ---- building and wiring ----------------------------------------------------

function buildBulkUi() {
  const bar = el("div", { id: "bulk-bar", className: "row bulk-bar" },
    el("span", { id: "bulk-selected", role: "status" }),
    el("span", {},
      el("button", { type: "button", id: "bulk-all-matching" }),
      " ", el("button", { type: "button", id: "bulk-clear" }, "Clear selection"),
      " ", el("button", { type: "button", id: "bulk-edit" }, "Bulk edit…")));
  document.querySelector("#paints-view .table-wrap").before(bar);
  const all = el("input", { type: "checkbox", id: "bulk-all-shown" });
  $("paints").tHead.rows[0].cells[0].prepend(checkLabel(all, "Select all shown paints"));

  const fields = el("select", { id: "bulk-field" }, ...BULK_FIELDS.map(([f]) => el("option", { value: f }, f)));
  const dlg = el("dialog", { id: "bulk-dialog", className: "wide" },
    el("form", { id: "bulk-form", method: "dialog", noValidate: true },
      el("h2", { id: "bulk-title" }, "Bulk edit"),
      el("p", { id: "bulk-target", className: "muted" }),
      el("div", { className: "fields" },
        el("label", { htmlFor: "bulk-field" }, "Field"), fields,
        el("label", { htmlFor: "bulk-op" }, "Change"),
        el("select", { id: "bulk-op" }, el("option", { value: "set" }, "set to"), el("option", { value: "add" }, "add")),
        el("label", { htmlFor: "bulk-value" }, "Value"), el("input", { id: "bulk-value", autocomplete: "off" })),
      el("p", { id: "bulk-error", className: "error", role: "alert", hidden: true }),
      el("div", { id: "bulk-preview", hidden: true },
        el("p", { id: "bulk-preview-count" }),
        el("div", { className: "table-wrap" }, el("table", { id: "bulk-sample" },
          el("thead", {}, el("tr", {}, text("th", "Name"), text("th", "Brand"), text("th", "Before"), text("th", "After"))),
          el("tbody")))),
      el("p", { id: "bulk-result", role: "status", hidden: true }),
      el("div", { className: "row end" },
        el("button", { type: "button", id: "bulk-close" }, "Close"),
        el("button", { type: "button", id: "bulk-undo", hidden: true }, "Undo"),
        el("button", { type: "button", id: "bulk-preview-btn" }, "Preview"),
        el("button", { type: "button", id: "bulk-apply", disabled: true }, "Apply"))));
  document.body.append(dlg);

  all.addEventListener("change", onAllShown);
  $("bulk-all-matching").addEventListener("click", onAllMatching);
  $("bulk-clear").addEventListener("click", clearSelection);
  $("bulk-edit").addEventListener("click", openBulkDialog);
  $("bulk-field").addEventListener("change", onFieldChange);
  $("bulk-op").addEventListener("change", resetPreview);
  $("bulk-value").addEventListener("input", resetPreview);
  $("bulk-preview-btn").addEventListener("click", onPreview);
  $("bulk-apply").addEventListener("click", onApply);
  $("bulk-undo").addEventListener("click", onUndo);
  $("bulk-close").addEventListener("click", () => dlg.close());
  document.addEventListener("paints:rendered", decorateRows);
  renderBar();
}

document.addEventListener("DOMContentLoaded", buildBulkUi);
