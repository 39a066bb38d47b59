// The Users page and the "change my password" dialog of the admin UI.
// Loaded after app.js, whose api(), $, text(), flash(), formatDate(),
// showView() and state it uses. Every refusal of the server (422 policy,
// 409 "you cannot disable yourself", "last enabled admin") is shown as sent.
"use strict";

const users = { items: [], resetting: null, loads: 0 };
const USERS_PAGE = 200; // the list's largest page
const encoder = new TextEncoder();

// The server's password policy, checked before sending (the server decides).
function passwordProblem(username, password) {
  if ([...password].length < 12) return "the password must have at least 12 characters";
  if (encoder.encode(password).length > 256) return "the password must have at most 256 bytes";
  if (username && password.toLowerCase() === username.toLowerCase()) return "the password must not be the username";
  return null;
}

// A problem+json error as one line: its detail, then each field's message.
function problemText(e) {
  const errors = (e.body && e.body.errors) || {};
  const fields = Object.entries(errors).filter(([, m]) => m !== e.message)
    .map(([k, m]) => `${k}: ${m}`);
  return [e.message, ...fields].join(" · ");
}

function showError(id, message) {
  const el = $(id);
  el.textContent = message || "";
  el.hidden = !message;
}

const isMe = (u) => Boolean(state.user) && u.id === state.user.id;

// Every user: the list comes in keyset pages, followed by next_cursor to
// the end. A load started later wins over one still under way.
async function loadUsers() {
  const load = ++users.loads;
  try {
    let items = [], cursor = null;
    do {
      const q = new URLSearchParams({ limit: String(USERS_PAGE) });
      if (cursor) q.set("cursor", cursor);
      const page = (await api("GET", `/admin/users?${q}`)).body;
      if (load !== users.loads) return;
      items = items.concat(page.items);
      cursor = page.next_cursor;
    } while (cursor);
    users.items = items;
    renderUsers();
  } catch (e) {
    if (e.status !== 401) showError("users-error", problemText(e));
  }
}

function renderUsers() {
  const rows = users.items.map((u) => {
    const tr = document.createElement("tr");
    tr.dataset.username = u.username;
    if (isMe(u)) tr.className = "me";
    tr.append(text("td", u.username), text("td", u.is_admin ? "admin" : "—"),
      text("td", u.disabled ? "disabled" : "active", u.disabled ? "fail" : ""),
      text("td", formatDate(u.created_at)),
      text("td", u.last_login_at ? formatDate(u.last_login_at) : "never"),
      text("td", String(u.active_sessions), "num"));
    const td = document.createElement("td");
    td.className = "actions";
    const button = (label, cls, fn) => {
      const b = text("button", label, cls);
      b.type = "button";
      b.addEventListener("click", fn);
      td.append(b);
    };
    button(u.is_admin ? "Remove admin" : "Make admin", "u-admin", () => patchUser(u, { is_admin: !u.is_admin }));
    button(u.disabled ? "Enable" : "Disable", "u-disable", () => patchUser(u, { disabled: !u.disabled }));
    button("Reset password", "u-reset", () => openReset(u));
    button("Log out everywhere", "u-logout", () => endSessions(u));
    tr.append(td);
    return tr;
  });
  $("users").querySelector("tbody").replaceChildren(...rows);
}

async function patchUser(u, change) {
  showError("users-error", "");
  try {
    await api("PATCH", `/admin/users/${u.id}`, change);
    flash(`${u.username} updated.`);
  } catch (e) {
    if (e.status === 401) return;
    showError("users-error", problemText(e)); // a 409 says why (yourself, the last admin)
  }
  loadUsers();
}

async function endSessions(u) {
  showError("users-error", "");
  try {
    await api("DELETE", `/admin/users/${u.id}/sessions`);
    flash(`${u.username} is logged out everywhere.`);
  } catch (e) {
    if (e.status !== 401) showError("users-error", problemText(e));
  }
  loadUsers(); // logging yourself out everywhere lands on the login page
}

async function onCreateUser(ev) {
  ev.preventDefault();
  const username = $("u-username").value.trim();
  const password = $("u-password").value;
  const local = !/^[A-Za-z0-9._-]{1,64}$/.test(username)
    ? "username: 1-64 characters of A-Z a-z 0-9 . _ -" : passwordProblem(username, password);
  showError("user-form-error", local);
  if (local) return;
  try {
    await api("POST", "/admin/users", { username, password, is_admin: $("u-admin").checked });
    $("user-form").reset();
    flash(`${username} created.`);
    loadUsers();
  } catch (e) {
    if (e.status !== 401) showError("user-form-error", problemText(e));
  }
}

// Your own row asks for your current password too (the server requires it).
function openReset(u) {
  const mine = isMe(u);
  users.resetting = u;
  $("reset-title").textContent = mine ? "Set my password" : `Reset the password of ${u.username}`;
  $("reset-note").textContent = mine
    ? "Every session of yours ends, this one too: log in again with the new password."
    : "The user's sessions end: they log in again with the new password.";
  $("reset-current").hidden = $("reset-current").labels[0].hidden = !mine;
  $("reset-current").value = "";
  $("reset-password").value = "";
  showError("reset-error", "");
  $("reset-dialog").showModal();
  $(mine ? "reset-current" : "reset-password").focus();
}

async function onReset(ev) {
  ev.preventDefault();
  const u = users.resetting;
  const password = $("reset-password").value;
  const mine = isMe(u);
  const body = mine ? { password, current_password: $("reset-current").value } : { password };
  const local = mine && !body.current_password ? "current_password: is required to change your own password"
    : passwordProblem(u.username, password);
  showError("reset-error", local);
  if (local) return;
  try {
    await api("PATCH", `/admin/users/${u.id}`, body);
    $("reset-dialog").close();
    if (mine) { // this session ended with the others
      showLogin();
      flash("Password changed: log in with the new one.");
      return;
    }
    flash(`New password set for ${u.username}; their sessions ended.`);
    loadUsers();
  } catch (e) {
    if (e.status !== 401) showError("reset-error", problemText(e));
  }
}

function openPasswordDialog() {
  $("password-form").reset();
  showError("pw-error", "");
  $("password-dialog").showModal();
  $("pw-current").focus();
}

async function onChangePassword(ev) {
  ev.preventDefault();
  const current = $("pw-current").value;
  const next = $("pw-new").value;
  const local = passwordProblem(state.user && state.user.username, next);
  showError("pw-error", local);
  if (local) return;
  try {
    const r = await api("POST", "/auth/password", { current_password: current, new_password: next });
    state.csrf = r.body.csrf_token; // a fresh session: its cookie came with the answer
    $("password-form").reset();
    $("password-dialog").close();
    flash("Password changed; your other sessions were logged out.");
    if (state.view === "users") loadUsers();
  } catch (e) {
    if (e.status !== 401) showError("pw-error", problemText(e));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("tab-users").addEventListener("click", () => showView("users"));
  $("user-form").addEventListener("submit", onCreateUser);
  $("reset-form").addEventListener("submit", onReset);
  $("reset-cancel").addEventListener("click", () => $("reset-dialog").close());
  $("change-password").addEventListener("click", openPasswordDialog);
  $("password-form").addEventListener("submit", onChangePassword);
  $("pw-cancel").addEventListener("click", () => $("password-dialog").close());
});
