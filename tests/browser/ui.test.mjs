// The admin UI in a real headless Chromium (Debian's package), driven by
// playwright-core, against the test stack that tests/run.py started.
// Env: BASE_URL, ADMIN_PASSWORD, STACK_DIR, ARTIFACTS (screenshots),
// DATABASE_URL (the service's role, for rows made in SQL).
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { deflateSync } from "node:zlib";
import { chromium } from "playwright-core";

const BASE = process.env.BASE_URL;
const PASSWORD = process.env.ADMIN_PASSWORD;
const STACK_DIR = process.env.STACK_DIR;
const ARTIFACTS = process.env.ARTIFACTS || "tests/artifacts";
const REFRESH_MS = 5000;
// Answers the tests provoke on purpose; Chromium logs each as a console error.
const EXPECTED = /Failed to load resource: the server responded with a status of (400|401|403|409|412|413|415|422|503)/;

let browser, page;
const problems = [];

async function shot(name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: `${ARTIFACTS}/${name}.png`, fullPage: false });
}

// A session straight through the API: a function (method, path, payload,
// contentType) -> {status, headers, body}. A refused login fails the test
// with what the database says of the admin account.
async function apiLogin(username, password) {
  const r = await fetch(`${BASE}/auth/login`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Origin: BASE },
    body: JSON.stringify({ username, password }),
  });
  const body = await r.json();
  if (r.status !== 200) assert.fail(`${username}'s API login answered ${r.status} ${JSON.stringify(body)}\n${adminFacts()}`);
  const cookie = r.headers.get("set-cookie").split(";")[0];
  // payload: JSON, or bytes (a Buffer) sent as they are with contentType
  return async (method, path, payload, contentType) => {
    const h = { Cookie: cookie };
    if (method !== "GET") Object.assign(h, { Origin: BASE, "X-CSRF-Token": body.csrf_token });
    const raw = payload instanceof Uint8Array;
    if (payload !== undefined) h["Content-Type"] = raw ? contentType || "application/octet-stream" : "application/json";
    const res = await fetch(BASE + path, { method, headers: h, body: raw ? payload : payload && JSON.stringify(payload) });
    return { status: res.status, headers: res.headers, body: res.status === 204 ? null : await res.json() };
  };
}

// Another admin, as another person would be: an account of its own, made
// on first use, so the tests that change the admin's password (the Users
// page) leave it alone.
const OTHER = { username: `ui-other-${Date.now()}`, password: `other-admin-password-${Date.now()}`, made: false };

async function apiSession() {
  if (!OTHER.made) {
    const admin = await apiLogin("admin", PASSWORD);
    const r = await admin("POST", "/admin/users", { username: OTHER.username, password: OTHER.password, is_admin: true });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    OTHER.made = true;
  }
  return apiLogin(OTHER.username, OTHER.password);
}

// What the database says of the admin account: to tell, when a login
// fails, a changed password from a disabled account or a throttle.
function adminFacts() {
  try {
    return psql("SELECT 'admin: ' || json_build_object('id', id, 'disabled', disabled, 'is_admin', is_admin, " +
      "'updated_at', updated_at, 'last_login_at', last_login_at, 'hash', left(password_hash, 30)) " +
      "FROM users WHERE username = 'admin' UNION ALL " +
      "(SELECT 'audit: ' || json_build_object('at', at, 'action', action, 'actor', actor) " +
      " FROM audit_log WHERE entity = 'user' AND entity_id = (SELECT id FROM users WHERE username = 'admin') " +
      " ORDER BY id DESC LIMIT 6) UNION ALL " +
      "(SELECT 'failures: ' || json_build_object('key', key, 'failures', failures) FROM login_failures " +
      " ORDER BY failures DESC LIMIT 4)");
  } catch (e) {
    return `(the database could not be asked: ${e.message})`;
  }
}

// Lines of nginx's access log for list requests that were answered 304.
function list304s() {
  const log = readFileSync(`${STACK_DIR}/log/nginx-access.log`, "utf8");
  return log.split("\n").filter((l) => l.includes('"GET /admin/paints?') && / 304 /.test(l)).length;
}

function listRequests() {
  const log = readFileSync(`${STACK_DIR}/log/nginx-access.log`, "utf8");
  return log.split("\n").filter((l) => l.includes('"GET /admin/paints?')).length;
}

// Run sql as the service's database role; its output, trimmed.
function psql(sql) {
  return execFileSync("psql", [process.env.DATABASE_URL, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", sql],
    { encoding: "utf8" }).trim();
}

// A psql session of the service's role, fed SQL on stdin: its stdout and
// stderr so far, and a promise of its exit.
function psqlSession() {
  const p = spawn("psql", [process.env.DATABASE_URL, "-qAtX"], { stdio: ["pipe", "pipe", "pipe"] });
  const s = { p, out: "", err: "", exited: new Promise((resolve) => p.on("exit", resolve)) };
  p.stdout.on("data", (d) => { s.out += d; });
  p.stderr.on("data", (d) => { s.err += d; });
  return s;
}

async function until(what, fn, timeoutMs = 20000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const cells = (col) => page.$$eval(`#paints tbody tr td:nth-child(${col})`, (tds) => tds.map((t) => t.textContent));

before(async () => {
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 860 } });
  page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error" && !EXPECTED.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("dialog", (d) => d.dismiss()); // no alert()/confirm() expected: <dialog> is used
});

after(async () => {
  await browser?.close();
  rmSync(IMAGE_DIR, { recursive: true, force: true });
});

test("an anonymous visitor gets the login page", async () => {
  await page.goto(BASE + "/");
  await page.waitForSelector("#login-view:not([hidden])");
  assert.equal(await page.isVisible("#paints-view"), false);
  await page.fill("#login-username", "admin");
  await page.fill("#login-password", "not the password");
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#login-error:not([hidden])");
  await shot("01-login-error");
});

test("logging in shows the seeded catalogue with swatches", async () => {
  await page.fill("#login-password", PASSWORD);
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#paints tbody tr");
  assert.equal((await cells(2)).length, 50);
  const colour = await page.$eval("#paints tbody tr .swatch", (s) => getComputedStyle(s).backgroundColor);
  assert.match(colour, /^rgb\(/);
  await page.waitForFunction(() => Number(document.getElementById("total").textContent.replace(/,/g, "")) >= 10000);
  await shot("02-paints");
});

test("filters and sorting", async () => {
  await page.waitForSelector('#f-brand option[value="Golden"]', { state: "attached" });
  await page.selectOption("#f-brand", "Golden");
  await page.click("#filters button[type=submit]");
  await page.waitForFunction(() => [...document.querySelectorAll("#paints tbody tr td:nth-child(3)")]
    .every((td) => td.textContent === "Golden"));
  assert.ok((await cells(3)).length > 0);
  await page.click('th .sort[data-sort="price"]');
  await page.waitForSelector('th .sort[data-sort="price"][aria-sort="ascending"]');
  await page.waitForFunction(() => {
    const p = [...document.querySelectorAll("#paints tbody tr td:nth-child(8)")].map((t) => Number(t.textContent));
    return p.length > 1 && p.every((v, i) => i === 0 || p[i - 1] <= v);
  });
  await page.click('th .sort[data-sort="price"]');
  await page.waitForSelector('th .sort[data-sort="price"][aria-sort="descending"]');
  await page.waitForFunction(() => {
    const p = [...document.querySelectorAll("#paints tbody tr td:nth-child(8)")].map((t) => Number(t.textContent));
    return p.length > 1 && p.every((v, i) => i === 0 || p[i - 1] >= v);
  });
  const brands = await cells(3);
  assert.ok(brands.every((b) => b === "Golden"));
  await shot("03-filtered-sorted");
  await page.click("#f-reset");
  await page.waitForFunction(() => new Set([...document.querySelectorAll("#paints tbody tr td:nth-child(3)")]
    .map((t) => t.textContent)).size > 1);
  await page.click('th .sort[data-sort="created_at"]'); // back to newest first
  await page.click('th .sort[data-sort="created_at"]');
  await page.waitForSelector('th .sort[data-sort="created_at"][aria-sort="descending"]');
  // keyset pagination: "Load more" appends the next 50
  await page.click("#more");
  await page.waitForFunction(() => document.querySelectorAll("#paints tbody tr").length === 100);
  await page.click("#f-reset");
  await page.waitForFunction(() => document.querySelectorAll("#paints tbody tr").length === 50);
});

const NAME = "Browser Test Crimson " + Date.now();
let paintId;

test("creating a paint: client-side errors first, then saved", async () => {
  await page.click("#new-paint");
  await page.waitForSelector("#editor[open]");
  await page.fill("#p-name", "   ");
  await page.fill("#p-price", "1.234");
  await page.fill("#p-color_preview", "#12345");
  await page.click("#save-paint");
  await page.waitForSelector("#e-name:not(:empty)");
  assert.match(await page.textContent("#e-price"), /2 decimals/);
  assert.match(await page.textContent("#e-color_preview"), /#RRGGBB/);
  assert.equal(await page.getAttribute("#p-name", "aria-invalid"), "true");
  await shot("04-form-errors");
  await page.fill("#p-name", NAME);
  await page.fill("#p-brand", "UI Test");
  await page.fill("#p-price", "12.34");
  await page.fill("#p-stock", "5");
  await page.fill("#p-color_preview", "#A01020");
  const swatch = await page.$eval("#p-swatch", (s) => getComputedStyle(s).backgroundColor);
  assert.equal(swatch, "rgb(160, 16, 32)"); // the live preview follows the field
  await page.click("#save-paint");
  await page.waitForSelector("#editor", { state: "hidden" });
  await page.waitForSelector(`#paints tbody tr:has-text("${NAME}")`);
  paintId = Number(await page.getAttribute(`#paints tbody tr:has-text("${NAME}")`, "data-id"));
  assert.ok(paintId > 0);
});

test("server-side errors appear next to their field", async () => {
  const row = `#paints tbody tr[data-id="${paintId}"]`;
  await page.click(`${row} button:has-text("Edit")`);
  await page.waitForSelector("#editor[open]");
  // caught in the page: no request is sent
  await page.fill("#p-image_url", "https://example.com/has space.png");
  await page.click("#save-paint");
  await page.waitForSelector("#e-image_url:not(:empty)");
  await page.fill("#p-image_url", "https://example.com/ok.png");
  // a rule only the server checks (control characters): its 422 lands by the field
  await page.fill("#p-name", "Bell\u0007Name");
  await page.click("#save-paint");
  await page.waitForFunction(() => /control characters/.test(document.getElementById("e-name").textContent));
  assert.equal(await page.getAttribute("#p-name", "aria-invalid"), "true");
  await page.click("#cancel-edit");
  await page.waitForSelector("#editor", { state: "hidden" });
});

test("an edit conflicting with another admin's is shown, and reload recovers", async () => {
  const other = await apiSession();
  const row = `#paints tbody tr[data-id="${paintId}"]`;
  await page.click(`${row} button:has-text("Edit")`);
  await page.waitForSelector("#editor[open]");
  const r = await other("PATCH", `/admin/paints/${paintId}`, { description: "changed elsewhere" });
  assert.equal(r.status, 200);
  await page.fill("#p-stock", "9");
  await page.click("#save-paint");
  await page.waitForSelector("#conflict:not([hidden])");
  assert.match(await page.textContent("#conflict"), /changed by someone else/);
  await shot("05-conflict");
  await page.click("#conflict-reload");
  await page.waitForSelector("#conflict", { state: "hidden" });
  assert.equal(await page.inputValue("#p-description"), "changed elsewhere");
  await page.fill("#p-stock", "9");
  await page.click("#save-paint");
  await page.waitForSelector("#editor", { state: "hidden" });
  const now = await other("GET", `/admin/paints/${paintId}`);
  assert.equal(now.body.stock, 9);
  assert.equal(now.body.description, "changed elsewhere");
});

test("stock buttons use the atomic stock route", async () => {
  const row = `#paints tbody tr[data-id="${paintId}"]`;
  await page.click(`${row} button[aria-label^="Add one"]`);
  await page.waitForFunction((sel) => document.querySelector(sel + " td.stock").textContent === "10", row);
  await page.click(`${row} button[aria-label^="Remove one"]`);
  await page.click(`${row} button[aria-label^="Remove one"]`);
  await page.waitForFunction((sel) => document.querySelector(sel + " td.stock").textContent === "8", row);
});

test("the editor shows the paint's history: who, when, field old → new", async () => {
  const row = `#paints tbody tr[data-id="${paintId}"]`;
  await page.click(`${row} button:has-text("Edit")`);
  await page.waitForSelector("#editor[open]");
  await page.waitForSelector("#history-list li.history-entry");
  const entries = await page.$$eval("#history-list > li", (lis) => lis.map((li) => li.textContent));
  // newest first: the stock buttons' last change, by the admin
  assert.match(entries[0], /admin/);
  assert.match(entries[0], /stock/);
  assert.match(entries[0], /stock\s*9\s*→\s*8/);
  // the other admin's edit, by name
  assert.ok(entries.some((t) => /patch/.test(t) && t.includes(OTHER.username) &&
    /description.*→\s*changed elsewhere/.test(t)), entries.join("\n"));
  assert.ok(entries.some((t) => /put/.test(t) && /stock.*→\s*9/.test(t)), entries.join("\n"));
  assert.match(entries[entries.length - 1], /create/);
  assert.equal(entries.length, 6); // create, patch, put, three stock changes: no entry for the 422s
  await shot("08-paint-history");
  await page.click("#cancel-edit");
  await page.waitForSelector("#editor", { state: "hidden" });
});

test("auto-refresh costs 304s while nothing changes and picks up a change", async () => {
  await page.waitForTimeout(REFRESH_MS + 1000); // one poll takes in the earlier changes
  const before304 = list304s();
  await page.waitForTimeout(REFRESH_MS * 2 + 1500);
  assert.ok(list304s() - before304 >= 2, "unchanged polls were not answered 304");
  const other = await apiSession();
  const firstId = Number(await page.getAttribute("#paints tbody tr", "data-id"));
  const current = (await other("GET", `/admin/paints/${firstId}`)).body;
  await other("PATCH", `/admin/paints/${firstId}`, { stock: current.stock + 7 });
  await page.waitForFunction(([id, stock]) =>
    document.querySelector(`#paints tbody tr[data-id="${id}"] td.stock`)?.textContent === String(stock),
  [firstId, current.stock + 7], { timeout: REFRESH_MS * 2 + 2000 });
});

test("a hidden tab stops polling", async () => {
  await page.evaluate(() => {
    Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
    document.dispatchEvent(new Event("visibilitychange"));
  });
  const before = listRequests();
  await page.waitForTimeout(REFRESH_MS * 2 + 1000);
  assert.equal(listRequests(), before);
  await page.evaluate(() => {
    Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "visible" });
    document.dispatchEvent(new Event("visibilitychange"));
  });
});

test("deleting asks first, then removes the paint", async () => {
  const row = `#paints tbody tr[data-id="${paintId}"]`;
  await page.click(`${row} button:has-text("Delete")`);
  await page.waitForSelector("#confirm[open]");
  await shot("06-confirm-delete");
  await page.click("#confirm button[value=no]");
  assert.ok(await page.isVisible(row));
  await page.click(`${row} button:has-text("Delete")`);
  await page.click("#confirm-yes");
  await page.waitForSelector(row, { state: "detached" });
  const other = await apiSession();
  assert.equal((await other("GET", `/admin/paints/${paintId}`)).status, 404);
});

test("the dashboard shows pool, cache, requests and alerts", async () => {
  await page.click("#tab-dashboard");
  await page.waitForFunction(() => /in use/.test(document.getElementById("d-pool").textContent));
  assert.match(await page.textContent("#d-cache"), /%|Redis down/);
  assert.ok((await page.$$("#d-indicators li")).length >= 5);
  assert.match(await page.textContent("#d-admission"), /at the database/);
  assert.match(await page.textContent("#d-admission-detail"), /turned away: queue delay \d+/);
  await page.waitForTimeout(REFRESH_MS + 500); // a second sample draws the charts
  assert.ok(await page.$("#c-pool polyline"));
  assert.ok(await page.$("#c-admission polyline"));
  await shot("07-dashboard");
  await page.click("#tab-paints");
});

test("the list's poll is marked as background; a 503 on it is quiet, and polling goes on", async () => {
  await page.waitForSelector("#paints-view:not([hidden])");
  const marks = [];
  const busy = async (route) => {
    marks.push(route.request().headers()["x-request-purpose"] || "");
    await route.fulfill({
      status: 503, headers: { "Retry-After": "1", "Content-Type": "application/problem+json" },
      body: JSON.stringify({ title: "Service Unavailable", status: 503, detail: "the service is busy" }),
    });
  };
  const isList = (url) => url.pathname === "/admin/paints";
  await page.route(isList, busy);
  await page.waitForFunction(() => /busy/.test(document.getElementById("refresh-state").textContent),
    null, { timeout: 3 * REFRESH_MS });
  assert.deepEqual([...new Set(marks)], ["background"]);
  assert.equal(await page.isVisible("#flash"), false, "no error shown for a background refresh");
  assert.ok(await page.isVisible("#paints tbody tr"), "the list stays as it was");
  await shot("07b-busy-poll");
  await page.unroute(isList, busy);
  await page.waitForFunction(() => /checked/.test(document.getElementById("refresh-state").textContent),
    null, { timeout: 4 * REFRESH_MS });
});

// The number in a line such as "1,234": 1234.
const num = (t) => Number(String(t).replace(/[^\d]/g, ""));

test("the brand, family and type pick lists are the facets, with their counts", async () => {
  await page.waitForSelector("#paints-view:not([hidden])");
  const other = await apiSession();
  const all = (await other("GET", "/admin/paints/facets")).body;
  await page.waitForFunction((n) => document.getElementById("matching").textContent.replace(/,/g, "") === String(n),
    all.total);
  const labels = (id) => page.$$eval(`#${id} option`, (os) => os.map((o) => [o.value, o.textContent]));
  const options = await labels("f-brand");
  const shown = new Map(options);
  for (const v of all.brand.filter((x) => x.value)) assert.equal(shown.get(v.value), `${v.value} (${v.count.toLocaleString("en-US")})`);
  // "any" first; past 200 brands (the suite's own make many) a last "… more" entry
  assert.deepEqual(options[0], ["", "any"]);
  assert.equal(Boolean(all.more && all.more.brand), options.at(-1)[1].startsWith("… more"));
  // picking a family: the brands counted under it, the family's own list unchanged (disjunctive)
  await page.selectOption("#f-family", "Blue");
  const blue = (await other("GET", "/admin/paints/facets?color_family=Blue")).body;
  await page.waitForFunction((n) => document.getElementById("matching").textContent.replace(/,/g, "") === String(n),
    blue.total);
  const golden = blue.brand.find((x) => x.value === "Golden");
  assert.equal(new Map(await labels("f-brand")).get("Golden"), `Golden (${golden.count})`);
  assert.deepEqual((await labels("f-family")).slice(1).map(([v]) => v),
    all.color_family.filter((x) => x.value).map((x) => x.value));
  assert.equal(await page.inputValue("#f-family"), "Blue");
  // "N shown of M matching (T in all)"
  const line = (await page.textContent("#count-line")).replace(/\s+/g, " ");
  assert.match(line, /^ ?50 shown of [\d,]+ matching \([\d,]+ in all\)/);
  assert.equal(num(await page.textContent("#matching")), blue.total);
  assert.ok(num(await page.textContent("#total")) >= all.total - 5);
  // the facets' polls are background requests, revalidated with If-None-Match
  const polls = [];
  const seen = (req) => {
    if (new URL(req.url()).pathname === "/admin/paints/facets") polls.push(req.headers());
  };
  page.on("request", seen);
  await page.waitForTimeout(REFRESH_MS + 1000);
  page.off("request", seen);
  assert.ok(polls.length >= 1);
  assert.ok(polls.every((h) => h["x-request-purpose"] === "background" && h["if-none-match"]), JSON.stringify(polls));
  await shot("24-facets-pick-lists");
  await page.click("#f-reset");
  await page.waitForFunction(() => document.getElementById("f-family").value === "");
});

test("low stock: the filter, the badge on low rows, the dashboard's panel and its link", async () => {
  const other = await apiSession();
  const brand = "Low UI " + Date.now();
  const made = [];
  for (const [name, stock, own] of [["Almost Gone Ochre", 1, null], ["Reorder Teal", 12, 20], ["Plenty Umber", 40, 20]]) {
    const r = await other("POST", "/admin/paints", { name, brand, stock, low_stock_threshold: own });
    assert.equal(r.status, 201);
    made.push(r.body);
  }
  assert.deepEqual(made.map((p) => p.low_stock), [true, true, false]);
  await page.fill("#f-q", brand);
  await page.selectOption("#f-stock", "low");
  await page.waitForFunction(() => document.querySelectorAll("#paints tbody tr").length === 2);
  const rows = await page.$$eval("#paints tbody tr", (trs) => trs.map((tr) => [tr.className, tr.querySelector(".badge")?.textContent]));
  assert.deepEqual(rows, [["low", "Low stock"], ["low", "Low stock"]]);
  assert.equal(num(await page.textContent("#matching")), 2);
  await shot("25-low-stock-filter");
  await page.selectOption("#f-stock", "");
  await page.waitForFunction(() => document.querySelectorAll("#paints tbody tr").length === 3);
  assert.equal(await page.$(`#paints tbody tr[data-id="${made[2].id}"] .badge`), null);
  // the editor has the paint's own threshold
  await page.click(`#paints tbody tr[data-id="${made[1].id}"] button:has-text("Edit")`);
  await page.waitForSelector("#editor[open]");
  assert.equal(await page.inputValue("#p-low_stock_threshold"), "20");
  await page.fill("#p-low_stock_threshold", "-3");
  await page.click("#save-paint");
  await page.waitForSelector("#e-low_stock_threshold:not(:empty)");
  await page.click("#cancel-edit");
  await page.click("#f-reset");
  // the dashboard: how many are low (as sampled), the lowest, and a link to the filtered list
  await page.click("#tab-dashboard");
  const low = await (async () => {
    let m;
    await until("the low-stock sample", async () => {
      m = (await other("GET", "/admin/metrics")).body.low_stock;
      return m.count !== null;
    });
    return m;
  })();
  await page.waitForFunction(() => /^[\d,]+ low$/.test(document.getElementById("d-low").textContent));
  assert.ok(num(await page.textContent("#d-low")) > 0);
  const items = await page.$$eval("#d-low-list li", (lis) => lis.map((li) => li.textContent));
  assert.equal(items.length, Math.min(10, low.count));
  assert.ok(items.every((t) => /\d+ \/ \d+$/.test(t)), items.join("|"));
  await page.evaluate(() => document.getElementById("d-low-section").scrollIntoView());
  await shot("26-dashboard-low-stock");
  await page.click("#d-low-link");
  await page.waitForSelector("#paints-view:not([hidden])");
  assert.equal(await page.inputValue("#f-stock"), "low");
  await page.waitForFunction(() => {
    const trs = [...document.querySelectorAll("#paints tbody tr")];
    return trs.length > 0 && trs.every((tr) => tr.querySelector(".badge"));
  });
  await page.click("#f-reset");
  await page.waitForFunction(() => document.querySelectorAll("#paints tbody tr").length === 50);
  await page.click('th .sort[data-sort="created_at"]');
  await page.click('th .sort[data-sort="created_at"]');
  await page.waitForSelector('th .sort[data-sort="created_at"][aria-sort="descending"]');
});

test("keyboard only: tab to the filters and submit with Enter", async () => {
  await page.focus("#f-q");
  await page.keyboard.type("cobalt");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => [...document.querySelectorAll("#paints tbody tr")].length > 0 &&
    [...document.querySelectorAll("#paints tbody tr")].every((tr) => /cobalt/i.test(tr.textContent)));
  const unlabelled = await page.$$eval("input, select, textarea", (els) =>
    els.filter((e) => !e.labels || e.labels.length === 0).map((e) => e.id));
  assert.deepEqual(unlabelled, []);
});

let uiUser; // made on the Users page below

test("the Users page: create a user, see it listed, disable it", async () => {
  await page.click("#tab-users");
  await page.waitForSelector("#users-view:not([hidden])");
  await page.waitForSelector('#users tbody tr[data-username="admin"]');
  assert.equal(await page.getAttribute("#tab-users", "aria-current"), "page");
  // the policy is checked before sending, and the server's refusal is shown as sent
  await page.fill("#u-username", "ui-user");
  await page.fill("#u-password", "too-short");
  await page.click("#create-user");
  await page.waitForSelector("#user-form-error:not([hidden])");
  assert.match(await page.textContent("#user-form-error"), /at least 12 characters/);
  await page.fill("#u-username", "admin");
  await page.fill("#u-password", "a-long-enough-password");
  await page.click("#create-user");
  await page.waitForFunction(() => /already exists/.test(document.getElementById("user-form-error").textContent));
  const name = uiUser = "ui-" + Date.now();
  await page.fill("#u-username", name);
  await page.fill("#u-password", "a-long-enough-password");
  await page.click("#create-user");
  const row = `#users tbody tr[data-username="${name}"]`;
  await page.waitForSelector(row);
  assert.equal(await page.isVisible("#user-form-error"), false);
  assert.match(await page.textContent(row), /active/);
  assert.match(await page.textContent(row), /never/);
  await page.click(`${row} button.u-disable`);
  await page.waitForFunction((sel) => /disabled/.test(document.querySelector(sel).textContent), row);
  assert.equal(await page.textContent(`${row} button.u-disable`), "Enable");
  await shot("08-users");
});

test("disabling or demoting yourself is refused with the reason shown (409)", async () => {
  const me = '#users tbody tr[data-username="admin"]';
  await page.click(`${me} button.u-disable`);
  await page.waitForSelector("#users-error:not([hidden])");
  assert.match(await page.textContent("#users-error"), /cannot disable yourself/);
  await shot("09-users-409");
  await page.click(`${me} button.u-admin`);
  await page.waitForFunction(() => /your own admin rights/.test(document.getElementById("users-error").textContent));
  assert.match(await page.textContent(me), /active/);
  assert.match(await page.textContent(me), /admin/);
});

test("the Users page shows every user, past the list's first page", async () => {
  const prefix = "uipage" + Date.now();
  psql(`INSERT INTO users (username, password_hash) SELECT '${prefix}-' || i, 'not-a-hash' ` +
    "FROM generate_series(1, 260) i"); // more than one page of 200, in SQL: no hashing
  try {
    await page.click("#tab-paints");
    await page.click("#tab-users");
    await page.waitForFunction((p) => document.querySelectorAll(`#users tbody tr[data-username^="${p}-"]`).length === 260,
      prefix);
    const total = Number(psql("SELECT count(*) FROM users"));
    assert.ok(total > 260);
    assert.equal((await page.$$("#users tbody tr")).length, total);
  } finally {
    psql(`DELETE FROM users WHERE username LIKE '${prefix}-%'`);
  }
});

test("resetting a password and changing my own", async () => {
  const row = `#users tbody tr[data-username="${uiUser}"]`;
  await page.click(`${row} button.u-reset`);
  await page.waitForSelector("#reset-dialog[open]");
  await page.fill("#reset-password", "short");
  await page.click("#reset-save");
  await page.waitForSelector("#reset-error:not([hidden])");
  await page.fill("#reset-password", "another-long-password");
  await page.click("#reset-save");
  await page.waitForSelector("#reset-dialog", { state: "hidden" });
  // my own password: a wrong current one is refused, then changed and changed back
  await page.click("#change-password");
  await page.waitForSelector("#password-dialog[open]");
  await page.fill("#pw-current", "not-my-password");
  await page.fill("#pw-new", "a-brand-new-password");
  await page.click("#pw-save");
  await page.waitForFunction(() => /current password is wrong/.test(document.getElementById("pw-error").textContent));
  await shot("10-change-password");
  for (const [from, to] of [[PASSWORD, "a-brand-new-password"], ["a-brand-new-password", PASSWORD]]) {
    await page.fill("#pw-current", from);
    await page.fill("#pw-new", to);
    await page.click("#pw-save");
    await page.waitForSelector("#password-dialog", { state: "hidden" });
    if (to !== PASSWORD) await page.click("#change-password");
  }
  // still logged in, with a working CSRF token: a write goes through
  await page.click(`${row} button.u-logout`);
  await page.waitForFunction(() => /logged out everywhere/.test(document.getElementById("flash").textContent));
  await page.click("#tab-paints");
});

test("resetting my own password asks for my current one, then logs me out", async () => {
  await page.click("#tab-users");
  const me = '#users tbody tr[data-username="admin"]';
  await page.waitForSelector(me);
  await page.click(`${me} button.u-reset`);
  await page.waitForSelector("#reset-dialog[open] #reset-current:visible");
  await page.fill("#reset-current", "not-my-password");
  await page.fill("#reset-password", "a-patched-password");
  await page.click("#reset-save");
  await page.waitForFunction(() => /current password is wrong/.test(document.getElementById("reset-error").textContent));
  await shot("11-reset-own-password");
  await page.fill("#reset-current", PASSWORD);
  await page.click("#reset-save");
  await page.waitForSelector("#login-view:not([hidden])");
  await page.fill("#login-username", "admin");
  await page.fill("#login-password", "a-patched-password");
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#paints tbody tr");
  // back to the suite's password, through "Change my password"
  await page.click("#change-password");
  await page.waitForSelector("#password-dialog[open]");
  await page.fill("#pw-current", "a-patched-password");
  await page.fill("#pw-new", PASSWORD);
  await page.click("#pw-save");
  await page.waitForSelector("#password-dialog", { state: "hidden" });
  await apiLogin("admin", PASSWORD); // the suite's password logs in again
  // another user's reset still asks for no current password
  await page.click("#tab-users");
  await page.click(`#users tbody tr[data-username="${uiUser}"] button.u-reset`);
  await page.waitForSelector("#reset-dialog[open]");
  assert.equal(await page.isVisible("#reset-current"), false);
  await page.click("#reset-cancel");
  await page.click("#tab-paints");
});

// ---- the Performance page (issue 27) ------------------------------------------

// A statement's calls over every row of its name: a dynamic statement
// (the list with and without each filter) has one row per shape.
const callsOf = (name) => page.$$eval(`#pf-queries tbody tr[data-name="${name}"] td:nth-child(2)`,
  (tds) => tds.length ? tds.reduce((n, td) => n + Number(td.textContent.replace(/,/g, "")), 0) : null)
  .catch(() => null);

// Click "Refresh" until fn (in the page) holds: a slow request joins the
// shared list just after its answer.
async function refreshUntil(what, fn, arg, timeoutMs = 20000) {
  await until(what, async () => {
    await page.click("#perf-refresh");
    await page.waitForTimeout(400);
    return page.evaluate(fn, arg);
  }, timeoutMs);
}

test("the Performance page: reset asks first, then the service's statements by name", async () => {
  const other = await apiSession();
  for (let i = 0; i < 4; i++) assert.equal((await other("GET", `/admin/paints?q=perf-${Date.now()}-${i}`)).status, 200);
  await page.click("#tab-performance");
  await page.waitForSelector("#performance-view:not([hidden])");
  assert.equal(await page.getAttribute("#tab-performance", "aria-current"), "page");
  await page.waitForSelector('#pf-queries tbody tr[data-name="paints_list"]');
  const before = await callsOf("paints_list");
  assert.ok(before >= 4, `paints_list calls before the reset: ${before}`);
  // Server-Timing of the page's own request is shown
  assert.match(await page.textContent("#perf-timing"), /auth .*db \d.* total \d/);
  await page.click("#pf-reset");
  await page.waitForSelector("#confirm[open]");
  assert.match(await page.textContent("#confirm-text"), /pg_stat_statements/);
  await page.click("#confirm-no");
  await page.waitForSelector("#confirm", { state: "hidden" });
  await page.click("#pf-reset");
  await page.click("#confirm-yes");
  await page.waitForFunction(() => /statistics reset/.test(document.getElementById("flash").textContent));
  for (let i = 0; i < 3; i++) assert.equal((await other("GET", `/admin/paints?q=perf-${Date.now()}-${i}`)).status, 200);
  for (const id of [17, 170, 1700, 4711, 9001]) assert.equal((await other("GET", `/admin/paints/${id}`)).status, 200);
  await refreshUntil("paints_list and paint_get listed", () =>
    ["paints_list", "paint_get"].every((n) => document.querySelector(`#pf-queries tbody tr[data-name="${n}"]`)));
  const after = await callsOf("paints_list");
  assert.ok(after >= 3 && after < before, `paints_list calls: ${before} before the reset, ${after} after`);
  // largest first by the column chosen
  await page.click('#pf-queries th .sort[data-sort="calls"]');
  await page.waitForSelector('#pf-queries th .sort[data-sort="calls"][aria-sort="descending"]');
  const calls = await page.$$eval("#pf-queries tbody tr td:nth-child(2)", (tds) =>
    tds.map((t) => Number(t.textContent.replace(/,/g, ""))));
  assert.ok(calls.length > 1 && calls.every((v, i) => i === 0 || calls[i - 1] >= v), calls.join(" "));
  // the bar chart of total time: bars, and an axis in ms
  assert.ok((await page.$$("#c-top rect.bar")).length >= 2);
  const ticks = await page.$$eval("#c-top text", (ts) => ts.map((t) => t.textContent));
  assert.ok(ticks.some((t) => /^\d[\d.]* m?s$/.test(t) && t !== "0 ms"), ticks.join(" | "));
  assert.ok(ticks.includes("paints_list"), ticks.join(" | "));
  await shot("12-performance");
});

test("a plan of paint_get with its parameter", async () => {
  await page.click('#pf-queries tbody tr[data-name="paint_get"] button.pf-plan');
  await page.waitForSelector("#plan-dialog[open]");
  try {
    assert.match(await page.textContent("#plan-query"), /FROM paints WHERE id = \$1/);
    await page.click("#plan-run"); // no parameter: the server's 400 is shown
    await page.waitForFunction(() => /takes 1 parameter/.test(document.getElementById("plan-error").textContent));
    await page.fill("#plan-params", "17");
    await page.click("#plan-run");
    await page.waitForSelector("#plan-output:not([hidden])");
    const plan = await page.textContent("#plan-output");
    assert.match(plan, /Index Scan using \w+ on paints/);
    assert.doesNotMatch(plan, /actual/);
    await page.check("#plan-analyze");
    await page.click("#plan-run");
    await page.waitForFunction(() => /actual [\d.]+ ms/.test(document.getElementById("plan-output").textContent));
    assert.match(await page.textContent("#plan-output"), /Execution time: [\d.]+ ms/);
    await shot("13-plan");
  } finally {
    await page.click("#plan-close");
  }
  await page.waitForSelector("#plan-dialog", { state: "hidden" });
});

test("without pg_stat_statements the page says so, with how to enable it", async () => {
  const missing = (route) => route.fulfill({
    status: 200, headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ available: false, reason: "pg_stat_statements must be loaded via shared_preload_libraries",
      how_to_enable: "Add pg_stat_statements to shared_preload_libraries, restart, CREATE EXTENSION pg_stat_statements", items: [] }),
  });
  const isQueries = (url) => url.pathname === "/admin/queries";
  await page.route(isQueries, missing);
  try {
    await page.click("#perf-refresh");
    await page.waitForSelector("#pf-unavailable:not([hidden])");
    assert.match(await page.textContent("#pf-unavailable"), /pg_stat_statements is not available/);
    assert.match(await page.textContent("#pf-how"), /CREATE EXTENSION pg_stat_statements/);
    assert.equal(await page.isVisible("#pf-queries"), false);
    assert.equal(await page.isDisabled("#pf-reset"), true);
  } finally {
    await page.unroute(isQueries, missing);
  }
  await page.click("#perf-refresh");
  await page.waitForSelector("#pf-queries tbody tr[data-name]");
  assert.equal(await page.isVisible("#pf-unavailable"), false);
});

test("slow requests: the threshold and an empty state, then a request slowed by a lock", async () => {
  const none = (route) => route.fulfill({
    status: 200, headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ threshold_ms: 500, kept: 200, source: "this process", process_total: 0, items: [] }),
  });
  const isSlow = (url) => url.pathname === "/admin/slow";
  await page.route(isSlow, none);
  try {
    await page.click("#perf-refresh");
    await page.waitForFunction(() => /No request has been slower than 500 ms/.test(document.getElementById("pf-slow-empty").textContent));
    assert.equal(await page.isVisible("#pf-slow-empty"), true);
    assert.equal(await page.isVisible("#pf-slow"), false);
    assert.match(await page.textContent("#pf-slow-meta"), /slower than 500 ms/);
    assert.match(await page.textContent("#pf-slow-meta"), /Redis is not in use/);
  } finally {
    await page.unroute(isSlow, none);
  }
  // a write that waits 1.5 s for a lock on paints
  const other = await apiSession();
  const paint = (await other("POST", "/admin/paints", { name: "Slow " + Date.now(), stock: 1 })).body;
  const lock = psqlSession();
  lock.p.stdin.write("BEGIN; LOCK TABLE paints IN ACCESS EXCLUSIVE MODE; SELECT 'locked';\n");
  await until("the lock on paints", () => lock.out.includes("locked"));
  const write = other("PATCH", `/admin/paints/${paint.id}`, { stock: 5 });
  await new Promise((r) => setTimeout(r, 1500));
  lock.p.stdin.end("COMMIT;\n");
  await lock.exited;
  const r = await write;
  assert.equal(r.status, 200);
  const rid = r.headers.get("x-request-id");
  const row = `#pf-slow tbody tr[data-request-id="${rid}"]`;
  await refreshUntil("the slow request listed", (sel) => Boolean(document.querySelector(sel)), row);
  const t = await page.textContent(row);
  assert.match(t, /PATCH \/admin\/paints\/\d+/);
  assert.match(t, /paints\.patch/);
  const slowest = await page.textContent(`${row} td:nth-child(10)`);
  assert.match(slowest, /^paint_/);
  await page.click(`${row} summary`);
  const waited = await page.$$eval(`${row} ol.statements li.slowest`, (lis) =>
    lis.map((li) => [li.textContent, Number(li.dataset.ms)]));
  assert.ok(waited.some(([x, ms]) => x.startsWith(slowest) && ms >= 1000 && /\d s /.test(x)), JSON.stringify(waited));
  assert.match(await page.textContent("#pf-slow-meta"), /slower than 500 ms/);
  assert.match(await page.textContent("#pf-slow-meta"), /all the service's processes/);
  await shot("14-slow-requests");
});

test("activity lists the database's sessions; cancel asks first, and never for this request", async () => {
  const tag = "ui-sleep-" + Date.now();
  const sleeper = psqlSession();
  sleeper.p.stdin.end(`SELECT pg_sleep(60) /* ${tag} */;\n`);
  try {
    await refreshUntil("the sleeping statement listed", (tg) =>
      [...document.querySelectorAll("#pf-activity tbody tr")].some((tr) => tr.textContent.includes(tg)), tag);
    const mine = await page.$$eval("#pf-activity tbody tr.me", (trs) => trs.map((tr) => tr.textContent));
    assert.equal(mine.length, 1);
    assert.match(mine[0], /this request/);
    assert.equal(await page.$("#pf-activity tbody tr.me button"), null);
    const row = `#pf-activity tbody tr:has-text("${tag}")`;
    const pid = await page.getAttribute(row, "data-pid");
    await page.click(`${row} button.pf-cancel`);
    await page.waitForSelector("#confirm[open]");
    assert.match(await page.textContent("#confirm-text"), new RegExp(`backend ${pid}`));
    await page.click("#confirm-no");
    await page.waitForTimeout(500);
    assert.equal(sleeper.p.exitCode, null, "kept running after “Keep it running”");
    await page.click(`${row} button.pf-cancel`);
    await page.click("#confirm-yes");
    await sleeper.exited;
    assert.match(sleeper.err, /canceling statement due to user request/);
    await page.waitForFunction(() => /Cancelled the statement/.test(document.getElementById("flash").textContent));
  } finally {
    sleeper.p.kill();
  }
});

test("the schema's health: hit ratio, tables with dead rows and vacuum, indexes, replication", async () => {
  await page.waitForSelector('#pf-tables tbody tr[data-table="paints"]');
  assert.match(await page.textContent("#pf-hit"), /^\d+(\.\d)? %$/);
  assert.match(await page.textContent("#pf-database"), /Database size/);
  const paints = await page.textContent('#pf-tables tbody tr[data-table="paints"]');
  assert.match(paints, /\d+,\d{3}/); // live rows: the seeded catalogue
  assert.ok((await page.$$("#pf-unused li")).length >= 1);
  assert.match(await page.textContent("#pf-replication"), /No replica streams/);
  await page.click("#tab-paints");
});

test("the dashboard's charts have axes with units and a time range", async () => {
  await page.click("#tab-dashboard");
  await page.waitForSelector("#c-latency circle.last");
  const texts = async (id) => page.$$eval(`#${id} text`, (ts) => ts.map((t) => t.textContent));
  const latency = await texts("c-latency");
  assert.ok(latency.some((t) => /^\d[\d.]* m?s$/.test(t) && t !== "0 ms"), latency.join(" | "));
  assert.ok(latency.includes("now") && latency.includes("last 5 min") && latency.includes("−5 min"), latency.join(" | "));
  assert.ok((await texts("c-cache")).includes("100 %"));
  assert.ok((await texts("c-rate")).some((t) => / \/s$/.test(t)));
  assert.match(await page.getAttribute("#c-pool", "aria-label"), /Connections in use, last 5 min: now \d+/);
  await shot("15-dashboard-axes");
  await page.click("#tab-paints");
});

test("Export CSV downloads exactly the list's current filter", async () => {
  await page.click("#f-reset");
  await page.waitForSelector('#f-brand option[value="Golden"]', { state: "attached" });
  await page.selectOption("#f-brand", "Golden");
  await page.click("#filters button[type=submit]");
  await page.waitForFunction(() => [...document.querySelectorAll("#paints tbody tr td:nth-child(3)")]
    .every((td) => td.textContent === "Golden"));
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#export-csv")]);
  assert.match(download.suggestedFilename(), /^paints-\d{8}-\d{6}\.csv$/);
  const csv = readFileSync(await download.path(), "utf8").replace(/^\uFEFF/, "");
  const lines = csv.split("\r\n").filter((l) => l !== "");
  assert.match(lines[0], /^id,name,brand,color_code,/);
  const brandCol = lines[0].split(",").indexOf("brand");
  // the seeded names and brands hold no commas or quotes: a plain split reads them
  assert.ok(lines.slice(1).every((l) => l.split(",")[brandCol] === "Golden"));
  assert.equal(lines.length - 1, Number(psql("SELECT count(*) FROM paints WHERE brand = 'Golden'")));
  await page.click("#f-reset");
});

test("Import CSV: a dry run lists every bad line and changes nothing; a good file applies", async () => {
  const stamp = Date.now();
  const bad = `${ARTIFACTS}/import-bad.csv`, good = `${ARTIFACTS}/import-good.csv`;
  mkdirSync(ARTIFACTS, { recursive: true });
  writeFileSync(bad, "name,brand,color_code,price,stock,description\n" +
    `Import Bad ${stamp},Browser Brand,BB-${stamp}-1,abc,3,\n` +
    `Import Bad ${stamp} 2,Browser Brand,BB-${stamp}-2,4.50,-5,"two\nlines"\n` +
    `Import Good ${stamp},Browser Brand,BB-${stamp}-3,4.50,5,\n`);
  writeFileSync(good, "name,brand,color_code,price,stock\n" +
    `Imported Teal ${stamp},Browser Brand,BB-${stamp}-4,7.25,3\n`);
  const count = () => Number(psql(`SELECT count(*) FROM paints WHERE color_code LIKE 'BB-${stamp}-%'`));
  await page.click("#f-reset"); // the whole catalogue, newest first

  await page.click("#import-open");
  await page.waitForSelector("#import-dialog[open]");
  assert.equal(await page.isDisabled("#import-apply"), true);
  await page.setInputFiles("#import-file", bad);
  await page.waitForSelector("#import-errors:not([hidden]) tbody tr");
  const rows = await page.$$eval("#import-errors tbody tr", (trs) => trs.map((tr) =>
    [...tr.children].map((td) => td.textContent)));
  // line 2: the price; line 3 (its description spans lines 3-4): the stock
  assert.deepEqual(rows.map((r) => [r[0], r[1]]), [["2", "price"], ["3", "stock"]]);
  assert.match(await page.textContent("#import-status"), /changes nothing/);
  assert.equal(await page.isDisabled("#import-apply"), true);
  assert.equal(count(), 0);
  await shot("22-import-errors");

  await page.setInputFiles("#import-file", good);
  await page.waitForFunction(() => /Ready: 1 paint/.test(document.getElementById("import-status").textContent));
  assert.match(await page.textContent("#import-counts"), /1 to create/);
  assert.equal(count(), 0); // the dry run wrote nothing
  await page.click("#import-apply");
  await page.waitForFunction(() => /Imported: 1 created/.test(document.getElementById("import-status").textContent));
  assert.equal(count(), 1);
  const op = psql(`SELECT operation_id FROM audit_log WHERE entity = 'paint' AND entity_id =
    (SELECT id FROM paints WHERE color_code = 'BB-${stamp}-4')`);
  assert.match(await page.textContent("#import-status"), new RegExp(`import #${op} `));
  await shot("23-import-applied");
  await page.click("#import-close");
  // the list, reloaded after the import, has the new paint first (newest first; stock 3 is
  // low: the name's cell also has the badge)
  await page.waitForFunction((n) => document.querySelector("#paints tbody tr td:nth-child(2)")
    ?.textContent.startsWith(n), `Imported Teal ${stamp}`);
});

// Show only the paints of brand b in the list (the other filters cleared).
async function filterBrand(b) {
  if (!await page.isVisible("#paints-view")) await page.click("#tab-paints");
  await page.fill("#f-q", "");
  // a fresh list and facets (the other pick lists cleared): the brand just made is among them
  await page.click("#f-reset");
  await page.waitForSelector(`#f-brand option[value="${b}"]`, { state: "attached" });
  await page.selectOption("#f-brand", b);
  await page.click("#filters button[type=submit]");
  await page.waitForFunction((brand) => {
    const tds = [...document.querySelectorAll("#paints tbody tr td:nth-child(3)")];
    return tds.length > 0 && tds.every((td) => td.textContent === brand);
  }, b);
}

test("bulk edit: select the shown paints, preview, apply, undo", async () => {
  const other = await apiSession();
  const b = `BulkUI ${Date.now()}`;
  const ids = [];
  for (const [i, price] of [[1, 4], [2, 5], [3, 6]]) {
    ids.push((await other("POST", "/admin/paints", { name: `Bulk paint ${i}`, brand: b, price })).body.id);
  }
  await filterBrand(b);
  assert.equal(await page.textContent("#bulk-selected"), "No paint selected");
  assert.ok(await page.isDisabled("#bulk-edit"));
  await page.check(`#paints tbody tr[data-id="${ids[0]}"] .bulk-pick`);
  await page.waitForSelector("#bulk-selected:has-text('1 selected')");
  await page.check("#bulk-all-shown");
  await page.waitForSelector("#bulk-selected:has-text('3 selected')");
  assert.equal(await page.textContent("#bulk-all-matching"), "Select all 3 matching");
  await shot("16-bulk-selection");
  await page.click("#bulk-edit");
  await page.waitForSelector("#bulk-dialog[open]");
  await page.selectOption("#bulk-field", "price");
  await page.selectOption("#bulk-op", "set");
  await page.fill("#bulk-value", "5");
  await page.click("#bulk-preview-btn");
  await page.waitForSelector("#bulk-preview:not([hidden])");
  assert.match(await page.textContent("#bulk-preview-count"), /^2 of 3 paints would change \(1 already/);
  const sample = await page.$$eval("#bulk-sample tbody tr", (trs) => trs.map((tr) => tr.textContent));
  assert.equal(sample.length, 3);
  assert.ok(sample.some((t) => t.includes("Bulk paint 1") && /45$/.test(t)), sample.join(" | "));
  assert.equal(psql(`SELECT string_agg(price::text, ',' ORDER BY id) FROM paints WHERE brand = '${b}'`),
    "4.00,5.00,6.00"); // a preview writes nothing
  await shot("17-bulk-preview");
  await page.click("#bulk-apply");
  await page.waitForSelector("#bulk-result:has-text('Changed 2 paints, 1 unchanged')");
  assert.ok(await page.isVisible("#bulk-undo"));
  await page.waitForFunction(() => [...document.querySelectorAll("#paints tbody tr td:nth-child(8)")]
    .every((td) => td.textContent === "5.00"));
  await shot("18-bulk-applied");
  await page.click("#bulk-undo");
  await page.waitForSelector("#bulk-result:has-text('Undone: 2 paints restored')");
  await shot("19-bulk-undone");
  await page.click("#bulk-close");
  await page.waitForFunction(() => [...document.querySelectorAll("#paints tbody tr td:nth-child(8)")]
    .map((td) => td.textContent).sort().join() === "4.00,5.00,6.00");
  assert.equal(await page.textContent("#bulk-selected"), "No paint selected");
});

test("bulk edit: select all N matching past the first page, add to stock", async () => {
  const b = `BulkMany ${Date.now()}`;
  psql(`INSERT INTO paints (name, brand, stock) SELECT 'Many ' || g, '${b}', 1 FROM generate_series(1, 60) g`);
  await filterBrand(b);
  await page.waitForSelector("#bulk-all-matching:has-text('Select all 60 matching')");
  await page.click("#bulk-all-matching");
  await page.waitForSelector("#bulk-selected:has-text('All 60 paints matching the filter are selected')");
  assert.ok(await page.isChecked("#paints tbody tr .bulk-pick"));
  await page.click("#bulk-edit");
  await page.selectOption("#bulk-field", "stock");
  await page.selectOption("#bulk-op", "add");
  await page.fill("#bulk-value", "2");
  await page.click("#bulk-preview-btn");
  await page.waitForSelector("#bulk-preview-count:has-text('60 of 60 paints would change; the first 20')");
  assert.equal(await page.$$eval("#bulk-sample tbody tr", (trs) => trs.length), 20);
  await page.click("#bulk-apply");
  await page.waitForSelector("#bulk-result:has-text('Changed 60 paints')");
  await page.click("#bulk-close");
  assert.equal(psql(`SELECT sum(stock) FROM paints WHERE brand = '${b}'`), "180");
});

test("bulk edit: a refusal is shown, and the history's Undo restores a bulk edit", async () => {
  const other = await apiSession();
  const b = `BulkHist ${Date.now()}`;
  const id = (await other("POST", "/admin/paints", { name: "Bulk history", brand: b, stock: 1 })).body.id;
  await filterBrand(b);
  await page.check("#bulk-all-shown");
  await page.click("#bulk-edit");
  await page.selectOption("#bulk-field", "stock");
  await page.selectOption("#bulk-op", "add");
  await page.fill("#bulk-value", "-5");
  await page.click("#bulk-preview-btn");
  await page.waitForSelector("#bulk-error:not([hidden])");
  assert.match(await page.textContent("#bulk-error"), /1 paints would leave their field's bounds.*paints \d+/);
  await shot("20-bulk-refused");
  await page.click("#bulk-close");
  const op = (await other("POST", "/admin/paints/bulk", { ids: [id], set: { description: "bulk note" } })).body.id;
  await page.click(`#paints tbody tr[data-id="${id}"] button:has-text("Edit")`);
  await page.waitForSelector("#history-list .bulk-history-undo");
  assert.equal(await page.getAttribute("#history-list .bulk-history-undo", "aria-label"), `Undo bulk edit ${op}`);
  await shot("21-bulk-history");
  await page.click("#history-list .bulk-history-undo");
  await page.waitForSelector("#confirm[open]");
  await page.click("#confirm-yes");
  await page.waitForSelector("#flash:has-text('Undone: 1 paint restored')");
  assert.equal((await other("GET", `/admin/paints/${id}`)).body.description, "");
  await page.waitForSelector("#history-list li:has-text('undo')");
  await page.click("#cancel-edit");
});

// ---- images (#28) ---------------------------------------------------------

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type, data) {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([head, body, crc]);
}

// A w × h RGB PNG: a gradient from colour a (left) to b (right), darker downwards.
function png(w, h, a, b) {
  const raw = Buffer.alloc((w * 3 + 1) * h); // each row: filter 0, then RGB
  for (let y = 0; y < h; y++) {
    const shade = 1 - 0.5 * y / (h - 1);
    for (let x = 0; x < w; x++) {
      const t = x / (w - 1);
      for (let i = 0; i < 3; i++) raw[y * (w * 3 + 1) + 1 + x * 3 + i] = Math.round((a[i] + (b[i] - a[i]) * t) * shade);
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bits per sample
  ihdr[9] = 2; // RGB; compression, filter and interlace 0
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk("IHDR", ihdr), pngChunk("IDAT", deflateSync(raw)), pngChunk("IEND", Buffer.alloc(0))]);
}

const IMAGE_DIR = mkdtempSync(join(tmpdir(), "ui-images-"));
function imageFile(name, bytes) {
  const path = join(IMAGE_DIR, name);
  writeFileSync(path, bytes);
  return path;
}

const STORED = /^\/images\/[0-9a-f]{64}\.webp$/;
const IMG_BRAND = `ImagesUI ${Date.now()}`;
const imgPaints = {}; // made by the first images test: main, moss, sand, bare

// true once the img sel has loaded (naturalWidth > 0): its naturalWidth
async function loaded(sel) {
  await page.waitForFunction((s) => {
    const i = document.querySelector(s);
    return i && i.getAttribute("src") && i.complete && i.naturalWidth > 0;
  }, sel);
  return page.$eval(sel, (i) => i.naturalWidth);
}

async function openEditorOf(id) {
  await page.click(`#paints tbody tr[data-id="${id}"] button:has-text("Edit")`);
  await page.waitForSelector("#editor[open]");
  await page.waitForFunction(() => !document.getElementById("image-box").hasAttribute("aria-busy")
    || document.getElementById("image-box").getAttribute("aria-busy") === "false");
}

test("images: a chosen PNG is previewed, uploaded (Uploading… meanwhile), shown in the editor and as the list's thumbnail", async () => {
  const other = await apiSession();
  const mk = async (name, color_preview) =>
    (await other("POST", "/admin/paints", { name, brand: IMG_BRAND, color_preview, stock: 40 })).body;
  imgPaints.main = await mk("Image Ultramarine", "#1e3a8a");
  imgPaints.moss = await mk("Image Moss", "#3f6212");
  imgPaints.sand = await mk("Image Sand", "#d6b370");
  imgPaints.bare = await mk("Image None", "#888888");
  // two get theirs through the API, so the list shows a few
  for (const [p, a, b] of [[imgPaints.moss, [30, 70, 10], [170, 210, 90]], [imgPaints.sand, [130, 95, 40], [245, 225, 175]]]) {
    const r = await other("POST", `/admin/paints/${p.id}/image`, png(240, 180, a, b), "image/png");
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.match(r.body.image_url, STORED);
  }
  await filterBrand(IMG_BRAND);
  const id = imgPaints.main.id;
  const row = `#paints tbody tr[data-id="${id}"]`;
  assert.equal(await page.$(`${row} img`), null); // no image yet: no thumbnail

  await openEditorOf(id);
  assert.ok(await page.isVisible("#image-none"));
  assert.ok(await page.isDisabled("#image-upload"));
  assert.ok(await page.isDisabled("#image-remove"));
  assert.ok(await page.isHidden("#image-unsaved"));
  await page.setInputFiles("#image-file", imageFile("ultramarine.png", png(400, 300, [10, 30, 120], [90, 160, 250])));
  // the local preview, before anything is sent
  assert.equal(await loaded("#image-preview"), 400);
  assert.match(await page.getAttribute("#image-preview", "src"), /^blob:/);
  assert.match(await page.textContent("#image-chosen-caption"), /^Chosen: ultramarine\.png \(\d+ KiB\), not uploaded yet$/);
  assert.ok(await page.isVisible("#image-none")); // still none stored
  await page.locator("#image-box").scrollIntoViewIfNeeded();
  await shot("27-image-preview");

  // the upload, held back a moment: the controls are disabled and it says so
  let release;
  const held = new Promise((r) => { release = r; });
  const hold = async (route) => { await held; await route.continue(); };
  await page.route("**/admin/paints/*/image", hold);
  try {
    // keyboard only: from the file input, Tab reaches Upload and Enter presses it
    await page.focus("#image-file");
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement.id), "image-upload");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.getElementById("image-status").textContent === "Uploading…");
    assert.ok(await page.isDisabled("#image-upload"));
    assert.ok(await page.isDisabled("#image-file"));
    assert.equal(await page.getAttribute("#image-box", "aria-busy"), "true");
    release();
    await page.waitForFunction(() => document.getElementById("image-status").textContent === "Uploaded ultramarine.png.");
  } finally {
    release();
    await page.unroute("**/admin/paints/*/image", hold);
  }
  const src = await page.getAttribute("#image-current", "src");
  assert.match(src, STORED);
  assert.equal(await loaded("#image-current"), 400); // never enlarged
  assert.equal(await page.getAttribute("#image-current", "alt"), "Image of Image Ultramarine");
  assert.ok(await page.isHidden("#image-none"));
  assert.ok(await page.isHidden("#image-chosen")); // the preview is gone with its file
  assert.equal(await page.inputValue("#p-image_url"), src);
  assert.ok(await page.isEnabled("#image-remove"));
  assert.ok(await page.isDisabled("#image-upload"));
  const now = (await other("GET", `/admin/paints/${id}`)).body;
  assert.equal(now.image_url, src);
  assert.equal(now.version, imgPaints.main.version + 1);
  await page.waitForSelector("#history-list li:has-text('image_url')");
  await shot("28-image-uploaded");

  // Save afterwards: the editor has the new ETag (no conflict), and the field's stored address passes
  await page.fill("#p-stock", "41");
  await page.click("#save-paint");
  await page.waitForSelector("#editor", { state: "hidden" });
  const saved = (await other("GET", `/admin/paints/${id}`)).body;
  assert.equal(saved.stock, 41);
  assert.equal(saved.image_url, src);

  // the list: the thumbnail beside the swatch
  const thumb = `${row} img.thumb`;
  await page.waitForSelector(thumb);
  assert.equal(await page.getAttribute(thumb, "src"), src.replace(/\.webp$/, ".thumb.webp"));
  assert.equal(await loaded(thumb), 160); // the thumbnail's size: at most 160 px
  assert.equal(await page.getAttribute(thumb, "alt"), "Image Ultramarine");
  assert.equal(await page.getAttribute(thumb, "loading"), "lazy");
  assert.equal(await page.getAttribute(thumb, "width"), "40");
  assert.equal(await page.getAttribute(thumb, "height"), "40");
  const box = await page.$eval(thumb, (i) => [i.getBoundingClientRect().width, getComputedStyle(i).objectFit]);
  assert.deepEqual(box, [40, "cover"]);
  assert.match(await page.$eval(`${row} .swatch`, (s) => getComputedStyle(s).backgroundColor), /^rgb\(30, 58, 138\)$/);
  for (const p of [imgPaints.moss, imgPaints.sand]) await loaded(`#paints tbody tr[data-id="${p.id}"] img.thumb`);
  assert.equal(await page.$(`#paints tbody tr[data-id="${imgPaints.bare.id}"] img`), null);
  // rows with and without a thumbnail are the same height (within the half
  // pixel the first row's collapsed top border takes)
  const heights = await page.$$eval("#paints tbody tr", (trs) => trs.map((tr) => tr.getBoundingClientRect().height));
  assert.equal(heights.length, 4);
  assert.ok(Math.max(...heights) - Math.min(...heights) < 1, heights.join());
  await shot("29-list-thumbnails");
});

test("images: a text file named .png (415) and a truncated PNG (422) show the service's reason; too big or the wrong type is refused before sending", async () => {
  const other = await apiSession();
  const id = imgPaints.main.id;
  const before = (await other("GET", `/admin/paints/${id}`)).body;
  assert.match(before.image_url, STORED);
  const sent = [];
  const count = (r) => { if (r.method() === "POST" && /\/admin\/paints\/\d+\/image$/.test(r.url())) sent.push(r.url()); };
  page.on("request", count);
  try {
    await openEditorOf(id);
    await loaded("#image-current");

    // refused here: a type that is not an image's, and a file over 10 MiB
    await page.setInputFiles("#image-file", imageFile("notes.txt", "just words\n"));
    await page.waitForSelector("#image-status.error");
    assert.equal(await page.textContent("#image-status"), "notes.txt is text/plain: choose a PNG, JPEG or WebP image.");
    assert.ok(await page.isDisabled("#image-upload"));
    await page.setInputFiles("#image-file", imageFile("huge.png", Buffer.alloc(10 * 1024 * 1024 + 1)));
    await page.waitForFunction(() => /an image may be at most 10 MiB/.test(document.getElementById("image-status").textContent));
    assert.match(await page.textContent("#image-status"), /^huge\.png is 10\.0 MiB: /);
    assert.ok(await page.isDisabled("#image-upload"));
    assert.deepEqual(sent, []);

    // the service is the judge of the content: "bad.png" is called image/png by its name
    const bad = Buffer.from("not an image");
    await page.setInputFiles("#image-file", imageFile("bad.png", bad));
    await page.waitForSelector("#image-chosen:not([hidden])");
    await page.click("#image-upload");
    await page.waitForSelector("#image-status.error");
    const r415 = await other("POST", `/admin/paints/${id}/image`, bad, "image/png");
    assert.equal(r415.status, 415);
    assert.equal(await page.textContent("#image-status"), r415.body.detail);
    assert.equal(await page.getAttribute("#image-current", "src"), before.image_url); // the current image stays
    await page.locator("#image-box").scrollIntoViewIfNeeded();
    await shot("30-image-refused-415");

    // a PNG cut short: its header is fine, its pixels end early
    const whole = png(400, 300, [200, 40, 40], [250, 200, 60]);
    const cut = whole.subarray(0, Math.floor(whole.length * 0.6));
    await page.setInputFiles("#image-file", imageFile("cut.png", cut));
    await page.waitForFunction(() => !document.getElementById("image-status").classList.contains("error"));
    await page.click("#image-upload");
    await page.waitForSelector("#image-status.error");
    const r422 = await other("POST", `/admin/paints/${id}/image`, cut, "image/png");
    assert.equal(r422.status, 422);
    assert.equal(await page.textContent("#image-status"), r422.body.detail);
    await shot("31-image-refused-422");
    assert.equal(sent.length, 2); // the two the service judged, none of the two refused here
    await page.click("#cancel-edit");
    await page.waitForSelector("#editor", { state: "hidden" });
  } finally {
    page.off("request", count);
  }
  const after_ = (await other("GET", `/admin/paints/${id}`)).body;
  assert.equal(after_.image_url, before.image_url);
  assert.equal(after_.version, before.version); // nothing changed
});

test("images: an upload after another admin's edit is a 412 shown as the editor's conflict; Reload, then it goes through", async () => {
  const other = await apiSession();
  const id = imgPaints.moss.id;
  const old = (await other("GET", `/admin/paints/${id}`)).body.image_url;
  await openEditorOf(id);
  await loaded("#image-current");
  assert.equal(await page.getAttribute("#image-current", "src"), old);
  assert.equal((await other("PATCH", `/admin/paints/${id}`, { description: "changed elsewhere" })).status, 200);
  await page.setInputFiles("#image-file", imageFile("moss.png", png(300, 300, [20, 50, 10], [120, 180, 60])));
  await page.click("#image-upload");
  await page.waitForSelector("#conflict:not([hidden])");
  assert.match(await page.textContent("#image-status"), /changed by someone else/);
  assert.equal((await other("GET", `/admin/paints/${id}`)).body.image_url, old);
  await page.click("#conflict-reload");
  await page.waitForSelector("#conflict", { state: "hidden" });
  assert.equal(await page.inputValue("#p-description"), "changed elsewhere");
  assert.ok(await page.isEnabled("#image-upload")); // the chosen file is kept
  await page.click("#image-upload");
  await page.waitForFunction(() => document.getElementById("image-status").textContent === "Uploaded moss.png.");
  const now = (await other("GET", `/admin/paints/${id}`)).body;
  assert.match(now.image_url, STORED);
  assert.notEqual(now.image_url, old);
  assert.equal(now.description, "changed elsewhere");
  assert.equal(await page.getAttribute("#image-current", "src"), now.image_url);
  await page.click("#cancel-edit");
  await page.waitForSelector("#editor", { state: "hidden" });
  await page.waitForFunction(([sel, src]) => document.querySelector(sel)?.getAttribute("src") === src,
    [`#paints tbody tr[data-id="${id}"] img.thumb`, now.image_url.replace(/\.webp$/, ".thumb.webp")]);
});

test("images: Remove image leaves the paint without one, in the editor, the list and the API", async () => {
  const other = await apiSession();
  const id = imgPaints.main.id;
  const row = `#paints tbody tr[data-id="${id}"]`;
  const height = await page.$eval(row, (tr) => Math.round(tr.getBoundingClientRect().height));
  await openEditorOf(id);
  await loaded("#image-current");
  await page.click("#image-remove");
  await page.waitForFunction(() => document.getElementById("image-status").textContent === "The image was removed.");
  assert.ok(await page.isVisible("#image-none"));
  assert.equal(await page.textContent("#image-none"), "No image");
  assert.ok(await page.isHidden("#image-current"));
  assert.ok(await page.isDisabled("#image-remove"));
  assert.equal(await page.inputValue("#p-image_url"), "");
  await page.locator("#image-box").scrollIntoViewIfNeeded();
  await shot("32-image-removed");
  assert.equal((await other("GET", `/admin/paints/${id}`)).body.image_url, "");
  await page.click("#cancel-edit");
  await page.waitForSelector("#editor", { state: "hidden" });
  await page.waitForFunction((sel) => document.querySelector(sel) && !document.querySelector(sel + " img"), row);
  assert.equal(await page.$eval(row, (tr) => Math.round(tr.getBoundingClientRect().height)), height);
});

test("images: an image_url of another site is said, not fetched, in the editor and the list", async () => {
  const other = await apiSession();
  const id = imgPaints.bare.id;
  assert.equal((await other("PATCH", `/admin/paints/${id}`, { image_url: "https://example.com/elsewhere.png" })).status, 200);
  const asked = [];
  const note = (r) => { if (r.url().includes("example.com")) asked.push(r.url()); };
  page.on("request", note);
  try {
    await filterBrand(IMG_BRAND);
    assert.equal(await page.$(`#paints tbody tr[data-id="${id}"] img`), null);
    await openEditorOf(id);
    assert.ok(await page.isHidden("#image-current"));
    assert.match(await page.textContent("#image-none"), /another site/);
    assert.ok(await page.isEnabled("#image-remove"));
    await page.click("#cancel-edit");
    await page.waitForSelector("#editor", { state: "hidden" });
  } finally {
    page.off("request", note);
  }
  assert.deepEqual(asked, []);
});

test("images: a new paint's editor says to save it first, with no upload control enabled", async () => {
  await page.click("#new-paint");
  await page.waitForSelector("#editor[open]");
  assert.ok(await page.isVisible("#image-unsaved"));
  assert.match(await page.textContent("#image-unsaved"), /Save the paint first/);
  assert.ok(await page.isVisible("#image-none"));
  assert.ok(await page.isDisabled("#image-file"));
  assert.ok(await page.isDisabled("#image-upload"));
  assert.ok(await page.isDisabled("#image-remove"));
  await page.locator("#image-box").scrollIntoViewIfNeeded();
  await shot("33-image-new-paint");
  await page.click("#cancel-edit");
  await page.waitForSelector("#editor", { state: "hidden" });
});

test("logging out returns to the login page", async () => {
  await page.click("#logout");
  await page.waitForSelector("#login-view:not([hidden])");
  await page.goto(BASE + "/");
  await page.waitForSelector("#login-view:not([hidden])");
});

test("no console errors and no CSP violations during the run", async () => {
  assert.deepEqual(problems, []);
});
