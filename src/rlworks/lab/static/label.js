// The labelling page: fetch the next pair, show it, send the answer (key or button), repeat.
// Text is set with textContent only (completions are untrusted). While an answer is in flight
// further keys are ignored, so a held or double-pressed key cannot answer the next pair blindly.
"use strict";

const $ = (id) => document.getElementById(id);
let current = null; // the pair on screen: {id, shown, ...}
let busy = false;

function showError(message) {
  $("error-text").textContent = message;
  $("error").hidden = false;
}

function showProgress(p) {
  const el = $("progress");
  el.textContent = `${p.labelled} of ${p.total} labelled, ${p.skipped} skipped`;
  el.dataset.labelled = p.labelled;
  el.dataset.skipped = p.skipped;
  el.dataset.total = p.total;
}

function setBusy(value) {
  busy = value;
  document.querySelectorAll("[data-choice]").forEach((b) => { b.disabled = value; });
}

async function getJSON(url, options) {
  const res = await fetch(url, options);
  let body = {};
  try { body = await res.json(); } catch (e) { body = {error: `${res.status} ${res.statusText}`}; }
  if (!res.ok) throw new Error(body.error || `${res.status} ${res.statusText}`);
  return body;
}

async function loadNext() {
  const data = await getJSON("/label/api/next", {cache: "no-store"});
  showProgress(data.progress);
  if (data.done) {
    current = null;
    $("pair").hidden = true;
    $("done").hidden = false;
    document.body.dataset.state = "done";
    return;
  }
  current = data;
  $("prompt").textContent = data.prompt;
  $("left").textContent = data.left;
  $("right").textContent = data.right;
  $("pair").dataset.id = data.id;
  $("pair").dataset.shown = data.shown;
  $("pair").hidden = false;
  $("done").hidden = true;
  document.body.dataset.state = "pair";
}

async function answer(choice) {
  if (busy || current === null) return;
  setBusy(true);
  try {
    const body = JSON.stringify({id: current.id, choice, shown: current.shown});
    await getJSON("/label/api/answer", {method: "POST", headers: {"Content-Type": "application/json"}, body});
    $("error").hidden = true;
  } catch (e) {
    showError(`answer not saved: ${e.message}`);
  }
  try {
    await loadNext();
  } catch (e) {
    showError(`cannot load the next pair: ${e.message}`);
  } finally {
    setBusy(false);
  }
}

document.addEventListener("keydown", (ev) => {
  if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.repeat) return;
  const key = ev.key.toLowerCase();
  if (["1", "2", "t", "s"].includes(key)) {
    ev.preventDefault();
    answer(key);
  }
});
document.querySelectorAll("[data-choice]").forEach((b) => b.addEventListener("click", () => answer(b.dataset.choice)));
$("error-close").addEventListener("click", () => { $("error").hidden = true; });

loadNext().catch((e) => showError(`cannot load a pair: ${e.message}`));
