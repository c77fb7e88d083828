// The participant list (参加人员) and, for the host, moderation: admit, mute, ask to unmute,
// remove, and choosing whom a caucus takes aside.
import { send } from "./connection.js";
import { $, config, isHost, label, state, strings, t } from "./page.js";

// The participant list is sent again whenever anyone's state changes: an entry whose person and
// view are unchanged is kept as it is, so a button being pressed (准入 as someone unmutes) is not
// swapped for a copy under the pointer, and a caucus tick stays ticked.
export function renderPeople() {
  const list = $("people");
  const kept = new Map([...list.children].map((item) => [item.dataset.key, item]));
  const items = state.listed.map((person) => {
    const key = JSON.stringify([config.lang, isHost, state.me, state.picking, person]);
    const item = kept.get(key) || personItem(person);
    item.dataset.key = key;
    return item;
  });
  const wanted = new Set(items);
  for (const item of [...list.children]) if (!wanted.has(item)) item.remove();
  items.forEach((item, n) => { if (list.children[n] !== item) list.insertBefore(item, list.children[n] || null); });
}

function personItem(person) {
  const item = document.createElement("li");
  const who = document.createElement("span");
  who.className = "who";
  const flags = [];
  if (person.audio_muted) flags.push(t("room.muted"));
  if (person.hand_raised) flags.push(`✋ ${t("room.hand_raised")}`);
  if (person.reconnecting) flags.push(t("room.reconnecting_person"));
  // One's own entry says "your network", not "the other side's" (the notice above says what to do).
  if (person.weak_link) flags.push(t(person.peer_id === state.me ? "room.my_link_weak" : "room.their_link_weak"));
  if (person.problem && isHost) flags.push(strings[`room.problem.${person.problem}`] || person.problem);
  who.textContent = [label(person), ...flags].join(" · ");
  item.append(who);
  if (!person.admitted) { item.classList.add("waiting"); who.dataset.waiting = `（${t("room.waiting")}）`; }
  if (isHost && person.peer_id !== state.me) {
    if (state.picking && person.admitted) {
      const box = document.createElement("input");
      box.type = "checkbox";
      box.value = person.peer_id;
      box.className = "caucus-pick";
      box.setAttribute("aria-label", `${t("room.caucus_start")}: ${person.name}`);
      item.prepend(box);
    }
    // 移出 stands apart from the others (at the end of the row, in red), and asks how.
    const actions = person.admitted
      ? [["room.mute_them", "mute"], ["room.ask_unmute", "ask_unmute"], ["room.remove", "remove"]]
      : [["room.admit", "admit"], ["room.remove", "remove"]];
    for (const [key, action] of actions) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = t(key);
      button.dataset.action = action;
      if (action === "remove") button.className = "danger apart";
      button.setAttribute("aria-label", `${t(key)}: ${person.name}`);
      button.addEventListener("click", () => (action === "remove" ? askRemove(person) : moderate(action, person)));
      item.append(button);
    }
  }
  return item;
}

function moderate(action, person, extra = {}) {
  send({ type: "moderate", action, peer_id: person.peer_id, ...extra });
}

function toggleCaucus() {
  if ($("caucus").dataset.active) { send({ type: "moderate", action: "caucus_end" }); return; }
  if (!state.picking) {
    state.picking = true;
    $("caucus-hint").hidden = false;
    renderPeople();
    return;
  }
  const chosen = [...document.querySelectorAll(".caucus-pick:checked")].map((box) => box.value);
  state.picking = false;
  $("caucus-hint").hidden = true;
  if (chosen.length) send({ type: "moderate", action: "caucus_start", peer_ids: chosen });
  renderPeople();
}

// Remove someone for now (their link opens the lobby again) or for good (their link is revoked).
function askRemove(person) {
  const dialog = $("remove-dialog");
  $("remove-question").textContent = t("room.remove_question", { name: person.name });
  dialog.returnValue = "";
  dialog.onclose = () => {
    if (dialog.returnValue) moderate("remove", person, { revoke: dialog.returnValue === "revoke" });
  };
  dialog.showModal();
}

$("caucus").addEventListener("click", toggleCaucus);
