// What every part of the room page shares: its configuration and strings, its elements, the
// status and notice lines, and the call's state (one object, read and changed by every module).
export const config = JSON.parse(document.getElementById("room-config").textContent);
export const strings = config.strings;
export const $ = (id) => document.getElementById(id);
export const isHost = config.you.kind === "host";

export const state = {
  localStream: null, // my camera and microphone (devices.js)
  socket: null,
  pc: null,
  slotCount: 0,
  people: new Map(),
  listed: [],
  slots: [],
  pausedVideo: new Set(), // slots whose video the server holds back: my link cannot carry every video
  notShown: new Set(), // slots whose video is not sent: only the latest speakers' are (last-N)
  link: { downlink: "good", uplink: "good" }, // the server's word on my own links
  audioOnly: false, // I asked for voices only (and send no picture)
  me: null,
  leaving: false,
  picking: false, // the host is choosing whom a caucus takes aside
  screenStream: null,
  screenTransceiver: null,
  noticeKind: "",
};

export function t(key, values = {}) {
  let text = strings[key] || key;
  for (const [name, value] of Object.entries(values)) text = text.replace(`{${name}}`, value);
  return text;
}

export function status(text) { $("status").textContent = text; }

// What the room offers now (app.css shows the controls, people and chat only "in" the room):
// "waiting" before the first join (the room not open yet), "in", "over" once left or ended.
export function setPhase(phase) { $("room").dataset.phase = phase; }

// A signaling error in the reader's language, by its code (signaling/PROTOCOL.md).
export function errorText(message) {
  return strings[`room.code.${message.code}`] || strings["room.code.other"];
}

// One notice line: the lobby and the caucus notices follow the room's state; others stay.
export function notice(text, kind = "info") {
  state.noticeKind = text ? kind : "";
  $("notice").textContent = text || "";
  $("notice").hidden = !text;
}

export function label(person) {
  return `${person.name}（${config.labels[person.role] || person.role}）`;
}
