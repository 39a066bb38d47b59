// The paints' CSV export and import in the admin UI. Loaded after app.js,
// whose $, text(), flash(), loadFirstPage(), ApiError and state it uses.
// Export: a link to /admin/paints/export.csv with the list's current
// filters and order (the browser downloads it, streamed). Import: a dialog
// that sends the chosen file as it is (text/csv) for a dry run, shows the
// report (counts, then every error by line), and applies it only once the
// dry run found nothing wrong. Everything the server sends is shown as
// text (textContent), never as markup.
"use strict";

const IMPORT_MAX_BYTES = 8 * 1024 * 1024; // the route's bound (nginx and the service)
const IMPORT_ERRORS_SHOWN = 200; // of the report's errors (it lists up to 1,000)

const importer = { file: null, checked: null }; // the chosen file; its dry run's report

// The export's address: the list's filters and order, no page.
function exportUrl() {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(state.filters)) if (v !== "") p.set(k, v);
  p.set("sort", state.sort);
  return "/admin/paints/export.csv?" + p.toString();
}

// POST the file to the import route (dryRun: only check it): the report,
// or an ApiError whose body is the problem (a 422's has the report too).
async function sendImport(file, dryRun) {
  const headers = { "Content-Type": "text/csv" };
  if (state.csrf) headers["X-CSRF-Token"] = state.csrf;
  const r = await fetch("/admin/paints/import" + (dryRun ? "?dry_run=1" : ""), {
    method: "POST", headers, body: file, credentials: "same-origin", cache: "no-store",
  });
  if (r.status === 401) {
    showLogin();
    throw new ApiError(401, { detail: "please log in" });
  }
  const body = await r.text();
  let data = null;
  try { data = body ? JSON.parse(body) : null; } catch (_) { data = { detail: body }; }
  if (!r.ok) throw new ApiError(r.status, data, Number(r.headers.get("Retry-After")) || null);
  return data;
}

function importStatus(message, isError) {
  const el = $("import-status");
  el.textContent = message || "";
  el.className = isError ? "field-error" : "muted";
}

// The report's counts and its errors, in the dialog.
function showReport(rep) {
  const counts = $("import-counts");
  counts.replaceChildren();
  const items = [
    ["lines", rep.rows], ["to create", rep.create], ["to update", rep.update],
    ["unchanged", rep.unchanged], ["errors", rep.error_count],
  ];
  for (const [label, n] of items) {
    const li = document.createElement("li");
    li.append(text("strong", Number(n || 0).toLocaleString("en")), " " + label);
    if (label === "errors" && n) li.className = "bad";
    counts.append(li);
  }
  counts.hidden = false;
  const errors = rep.errors || [];
  const body = $("import-errors").querySelector("tbody");
  body.replaceChildren();
  for (const e of errors.slice(0, IMPORT_ERRORS_SHOWN)) {
    const tr = document.createElement("tr");
    tr.append(text("td", e.line === undefined || e.line === null ? "" : String(e.line), "num"),
      text("td", e.field || ""), text("td", e.message || ""));
    body.append(tr);
  }
  $("import-errors").hidden = errors.length === 0;
  const more = (rep.error_count || 0) - Math.min(errors.length, IMPORT_ERRORS_SHOWN);
  $("import-more").textContent = more > 0 ? `and ${more.toLocaleString("en")} more` : "";
}

function resetImport() {
  importer.file = null;
  importer.checked = null;
  $("import-file").value = "";
  $("import-counts").hidden = true;
  $("import-errors").hidden = true;
  $("import-more").textContent = "";
  $("import-apply").disabled = true;
  importStatus("Choose a CSV file with the export's columns; it is checked before anything changes.");
}

// A refusal as one line, and the report or the problem's line when there is one.
function importProblem(e) {
  const b = e.body || {};
  if (e.status === 422 && b.errors) {
    showReport(b);
    return `${b.error_count || b.errors.length} line(s) have errors: nothing was changed.`;
  }
  if (e.status === 413) return "The file is too large (at most 8 MiB and 20,000 lines).";
  if (e.status === 415) return "The file must be CSV in UTF-8.";
  if (e.status === 503) return `The server is busy: try again in ${e.retryAfter || 1} s.`;
  const where = b.line ? ` (line ${b.line})` : "";
  const cols = b.errors && typeof b.errors === "object" && !Array.isArray(b.errors)
    ? " " + Object.entries(b.errors).map(([k, m]) => `${k}: ${m}`).join("; ") : "";
  return (b.message || e.message) + where + cols;
}

async function checkImport() {
  const file = $("import-file").files[0];
  resetImportReport();
  if (!file) return;
  if (file.size > IMPORT_MAX_BYTES) {
    importStatus(`${file.name} is ${(file.size / 1048576).toFixed(1)} MiB: the largest import is 8 MiB.`, true);
    return;
  }
  importer.file = file;
  importStatus(`Checking ${file.name}…`);
  try {
    const rep = await sendImport(file, true);
    importer.checked = rep;
    showReport(rep);
    const changes = (rep.create || 0) + (rep.update || 0);
    if (rep.error_count) {
      importStatus("Fix the lines below and choose the file again: an import with errors changes nothing.", true);
    } else if (!changes) {
      importStatus("Nothing to change: every line matches the catalogue already.");
    } else {
      importStatus(`Ready: ${changes.toLocaleString("en")} paint(s) will change, in one go.`);
      $("import-apply").disabled = false;
    }
  } catch (e) {
    importStatus(importProblem(e), true);
  }
}

function resetImportReport() {
  importer.checked = null;
  $("import-counts").hidden = true;
  $("import-errors").hidden = true;
  $("import-more").textContent = "";
  $("import-apply").disabled = true;
}

async function applyImport(ev) {
  ev.preventDefault();
  if (!importer.file || !importer.checked || importer.checked.error_count) return;
  $("import-apply").disabled = true;
  importStatus("Importing…");
  try {
    const rep = await sendImport(importer.file, false);
    showReport(rep);
    const done = `Imported: ${rep.create} created, ${rep.update} updated, ${rep.unchanged} unchanged` +
      (rep.import_id ? ` (import #${rep.import_id} in the audit trail).` : ".");
    importStatus(done);
    flash(done);
    importer.checked = null;
    loadFirstPage();
  } catch (e) {
    // The file may have changed on the server's side since the dry run (a version moved): shown as sent.
    importStatus(importProblem(e), true);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  // The link takes the list's filters when it is followed, not when they change.
  $("export-csv").addEventListener("click", () => { $("export-csv").href = exportUrl(); });
  $("import-open").addEventListener("click", () => { resetImport(); $("import-dialog").showModal(); });
  $("import-file").addEventListener("change", checkImport);
  $("import-form").addEventListener("submit", applyImport);
  $("import-close").addEventListener("click", () => $("import-dialog").close());
});
