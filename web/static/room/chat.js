// The room's chat; a host may also write to one person waiting in the lobby.
import { send } from "./connection.js";
import { $, config, isHost, state, t } from "./page.js";

// A host writes to everyone, or to one person waiting in the lobby (who cannot read the room's chat).
export function renderChatTargets() {
  if (!isHost) return;
  const select = $("chat-to");
  const chosen = select.value;
  const waiting = state.listed.filter((person) => !person.admitted && person.peer_id !== state.me);
  select.replaceChildren(new Option(t("room.chat_everyone"), ""),
    ...waiting.map((person) => new Option(t("room.chat_to_waiting", { name: person.name }), person.peer_id)));
  select.value = waiting.some((person) => person.peer_id === chosen) ? chosen : "";
  select.hidden = !waiting.length;
}

export function addChat(message) {
  const item = document.createElement("li");
  const time = new Date(message.at * 1000).toLocaleTimeString();
  const who = `${message.name}（${config.labels[message.role] || message.role}）`;
  // Between a person in the lobby and the hosts: marked, and a host's answer says to whom.
  const waiting = message.lobby && message.from !== message.lobby ? ` → ${state.people.get(message.lobby)?.name || ""}` : "";
  const where = message.lobby ? `［${t("room.chat_lobby")}］` : "";
  item.textContent = `${time} ${where}${who}${waiting}：${message.text}`;
  item.classList.toggle("lobby", Boolean(message.lobby));
  $("chat").append(item);
  $("chat").scrollTop = $("chat").scrollHeight;
}

// Where to write: the room, or (a host) a person in the lobby.
export function chatPlaceholder(admitted) {
  $("chat-text").placeholder = t(admitted ? "room.chat_placeholder" : "room.chat_placeholder_lobby");
}

$("chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("chat-text").value.trim();
  const to = $("chat-to").value;
  if (text) send({ type: "chat", text, ...(to ? { to } : {}) });
  $("chat-text").value = "";
});
