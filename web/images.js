// A paint's image in the admin UI (#28): the editor's Image section shows
// the paint's current image, previews a chosen file locally (an object URL,
// revoked once it is uploaded, replaced or the editor closes: the CSP's
// img-src allows blob: for it), uploads it as it is (POST
// /admin/paints/{id}/image, the file as the body, the editor's ETag as
// If-Match) and removes the image (DELETE). The service is the judge of
// what an image is: the checks here (type, size) only spare a pointless
// upload, and its refusals' detail is shown as sent, by the controls.
// Loaded after app.js, whose api(), $, state, renderTable(), loadHistory()
// and STORED_IMAGE it uses; its hook there: fillForm() dispatches
// "editor:filled" on the document (an opened editor, a reloaded paint).
"use strict";

const IMAGE_MAX_BYTES = 10 * 1024 * 1024; // the route's bound (nginx and the service)
const IMAGE_TYPES = ["image/png", "image/jpeg", "image/webp"];

const imaging = {
  file: null, // the chosen file, once it passed the checks here
  previewUrl: null, // its object URL (revoked by clearChosen)
  busy: false, // an upload or removal in flight
};

function imageStatus(message, isError) {
  const el = $("image-status");
  el.textContent = message || "";
  el.className = isError ? "error" : "muted";
}

const fmtBytes = (n) => n >= 1048576 ? `${(n / 1048576).toFixed(1)} MiB`
  : n >= 1024 ? `${Math.round(n / 1024)} KiB` : `${n} bytes`;

// Forget the chosen file and its preview.
function clearChosen() {
  if (imaging.previewUrl) URL.revokeObjectURL(imaging.previewUrl);
  imaging.previewUrl = null;
  imaging.file = null;
  $("image-file").value = "";
  $("image-preview").removeAttribute("src");
  $("image-chosen").hidden = true;
}

// The section for the paint being edited (state.editing; null: a new
// paint, which has no id to upload to yet): its image and what can be done.
// Only a stored image is shown: an image_url of another site is not
// fetched from here (the admin's browser would call on any host an edit
// named), only said.
function renderImage() {
  const p = state.editing;
  const url = p ? p.image_url : "";
  const stored = STORED_IMAGE.test(url || "");
  const img = $("image-current");
  if (stored) {
    if (img.getAttribute("src") !== url) img.src = url;
    img.alt = `Image of ${p.name}`;
  } else {
    img.removeAttribute("src");
  }
  img.hidden = !stored;
  $("image-none").hidden = stored;
  $("image-none").textContent = url ? "An image of another site (its URL above), not shown here" : "No image";
  $("image-caption").textContent = stored ? "Current" : "";
  $("image-unsaved").hidden = Boolean(p);
  $("image-file").disabled = !p || imaging.busy;
  $("image-upload").disabled = !p || !imaging.file || imaging.busy;
  $("image-remove").disabled = !p || !url || imaging.busy;
  $("image-box").setAttribute("aria-busy", imaging.busy ? "true" : "false");
}

// A file was chosen (or the choice cleared): check it, preview it.
function onChooseImage() {
  const f = $("image-file").files[0];
  if (imaging.previewUrl) URL.revokeObjectURL(imaging.previewUrl);
  imaging.previewUrl = null;
  imaging.file = null;
  $("image-chosen").hidden = true;
  let problem = null;
  // An empty type (an extension the browser does not know) goes as
  // application/octet-stream: the service decides by the content.
  if (f && f.type && !IMAGE_TYPES.includes(f.type)) problem = `${f.name} is ${f.type}: choose a PNG, JPEG or WebP image.`;
  else if (f && f.size > IMAGE_MAX_BYTES) problem = `${f.name} is ${fmtBytes(f.size)}: an image may be at most 10 MiB.`;
  else if (f && f.size === 0) problem = `${f.name} is empty.`;
  if (problem) {
    $("image-file").value = "";
    imageStatus(problem, true);
  } else if (f) {
    imaging.file = f;
    imaging.previewUrl = URL.createObjectURL(f);
    const prev = $("image-preview");
    prev.src = imaging.previewUrl;
    prev.alt = `Preview of ${f.name}`;
    $("image-chosen-caption").textContent = `Chosen: ${f.name} (${fmtBytes(f.size)}), not uploaded yet`;
    $("image-chosen").hidden = false;
    imageStatus("Upload it to make it this paint's image.");
  } else {
    imageStatus("");
  }
  renderImage();
}

// The paint as a write answered it (r: api()'s answer): in the list, and
// in the editor if it still edits that paint.
function applyImageWrite(r, message) {
  const p = r.body;
  const i = state.items.findIndex((x) => x.id === p.id);
  if (i >= 0) {
    state.items[i] = p;
    renderTable();
  }
  if (!$("editor").open || !state.editing || state.editing.id !== p.id) return; // the editor moved on
  state.editing = p;
  state.editingEtag = r.headers.get("ETag");
  $("p-image_url").value = p.image_url; // Save sends the field: it must not undo this write
  $("conflict").hidden = true;
  imageStatus(message);
  loadHistory(p.id);
}

// A refused upload or removal as one sentence for the status line.
function imageProblem(e) {
  if (e.status === 412) {
    $("conflict").hidden = false; // the editor's "changed by someone else" with its Reload
    $("conflict-reload").focus();
    return "This paint was changed by someone else since you opened it: reload it, then try again.";
  }
  if (e.status === 503) return `The server is busy: try again in ${e.retryAfter || 1} s.`;
  if (e.status === 404) return "This paint no longer exists.";
  return e.message; // 413, 415, 422…: the service's detail, written for people
}

const ifMatch = () => state.editingEtag ? { "If-Match": state.editingEtag } : {};

// Run write (an api() call for the paint being edited) with the controls
// disabled meanwhile; its answer updates the list and the editor.
async function imageWrite(progress, done, write) {
  imaging.busy = true;
  renderImage();
  imageStatus(progress);
  try {
    const r = await write();
    applyImageWrite(r, done);
    return true;
  } catch (e) {
    imageStatus(imageProblem(e), true);
    return false;
  } finally {
    imaging.busy = false;
    renderImage();
  }
}

async function uploadImage() {
  const p = state.editing, f = imaging.file;
  if (!p || !f || imaging.busy) return;
  const ok = await imageWrite("Uploading…", `Uploaded ${f.name}.`,
    () => api("POST", `/admin/paints/${p.id}/image`, f, ifMatch()));
  if (ok && imaging.file === f) {
    clearChosen();
    renderImage();
  }
}

async function removeImage() {
  const p = state.editing;
  if (!p || !p.image_url || imaging.busy) return;
  await imageWrite("Removing the image…", "The image was removed.",
    () => api("DELETE", `/admin/paints/${p.id}/image`, undefined, ifMatch()));
}

document.addEventListener("DOMContentLoaded", () => {
  $("image-file").addEventListener("change", onChooseImage);
  $("image-upload").addEventListener("click", uploadImage);
  $("image-remove").addEventListener("click", removeImage);
  $("image-current").addEventListener("error", () => {
    if ($("image-current").getAttribute("src")) $("image-caption").textContent = "Current: it could not be loaded";
  });
  $("image-preview").addEventListener("error", () => {
    if (imaging.file) $("image-chosen-caption").textContent += " (this browser cannot show it)";
  });
  $("editor").addEventListener("close", () => {
    clearChosen();
    imageStatus("");
  });
  document.addEventListener("editor:filled", renderImage);
});
