// The host's record pane in the room (templates/join.html): the record (调解笔录) autosaves every
// few seconds and survives a reload, a reconnect or a move to another node (it is kept on the
// server); the room's own dated entries are listed above it; the host marks each party's
// identity document as checked on camera.
import { $, config, t } from "./page.js";

const base = `/api/join/${config.token}`;
const SAVE_EVERY_MS = 3000;
const text = $("record-text");
let revision = 0, saved = "", saving = false;

async function call(method, url, body) {
  const response = await fetch(url, {
    method, headers: { "Content-Type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.message || data.error || response.statusText);
  return data;
}

function show(record) {
  $("record-entries").replaceChildren(...record.entries.map((entry) => {
    const item = document.createElement("li");
    item.textContent = `${entry.local} ${entry.text}`;
    return item;
  }));
  const select = $("identity-party");
  const chosen = select.value;
  select.replaceChildren(...record.parties.map((party) => new Option(party.name, party.participant_id)));
  if (chosen) select.value = chosen;
  $("identity-list").replaceChildren(...record.parties.map((party) => {
    const item = document.createElement("li");
    item.dataset.participant = party.participant_id;
    item.textContent = party.identity
      ? `${party.name}：${t("room.identity_done")} · ${party.identity.number_last4}`
      : `${party.name}：—`;
    return item;
  }));
}

async function load() {
  const record = await call("GET", `${base}/record`);
  if (text.value === saved) {  // nothing typed since the last save: take the server's text
    text.value = record.text;
    saved = record.text;
    revision = record.revision;
  }
  show(record);
}

async function save() {
  if (saving || text.value === saved) return;
  saving = true;
  const value = text.value;
  try {
    const result = await call("PUT", `${base}/record`, { text: value, revision });
    revision = result.revision;
    saved = value;
    $("record-status").textContent = `${t("room.record_saved")} ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    $("record-status").textContent = error.message;
  } finally {
    saving = false;
  }
}

$("identity-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await call("POST", `${base}/identity/${$("identity-party").value}`,
      { document_type: $("identity-type").value, number: $("identity-number").value });
    $("identity-number").value = "";
    await load();
  } catch (error) { $("record-status").textContent = error.message; }
});
load().catch((error) => { $("record-status").textContent = error.message; });
setInterval(() => { save().then(load).catch(() => {}); }, SAVE_EVERY_MS);
