// The room's videos and voices: one tile per shown video (mine first), one <audio> per voice,
// and how large each tile is shown, told to the server so that a small tile gets the small layer.
import { send } from "./connection.js";
import { $, config, label, state, t } from "./page.js";

let lastView = "";
let viewTimer = null;

// What the page shows and plays is bound to the current connection's tracks: after a
// reconnection (a network drop, a media worker restart, a move to another node) every element
// gets the new connection's, and none keeps an ended track of the old one.
function bind(element, tracks) {
  const current = element.srcObject ? element.srcObject.getTracks() : [];
  if (current.length !== tracks.length || current.some((track, n) => track !== tracks[n])) {
    element.srcObject = tracks.length ? new MediaStream(tracks) : null;
  }
}

// Every slot's voice plays in an <audio> element of its own, so that a voice is heard whether
// or not its video is shown (last-N: video of the latest speakers only).
function renderVoices(transceivers) {
  const voices = $("voices");
  const wanted = new Map();
  state.slots.forEach((slotKey, n) => {
    if (slotKey && !slotKey.includes("#") && state.people.has(slotKey) && n < state.slotCount) wanted.set(`voice-${n}`, n);
  });
  for (const element of [...voices.children]) if (!wanted.has(element.dataset.key)) element.remove();
  for (const [key, n] of wanted) {
    let element = voices.querySelector(`[data-key="${key}"]`);
    if (!element) {
      element = document.createElement("audio");
      element.autoplay = true;
      element.dataset.key = key;
      voices.append(element);
    }
    bind(element, [transceivers[3 + 2 * n].receiver.track]);
  }
}

export function renderTiles() {
  const grid = $("grid");
  const wanted = [];
  const { localStream, pc } = state;
  if (localStream) {
    const camera = localStream.getVideoTracks()[0];
    wanted.push({ key: "me", tracks: localStream.getVideoTracks(), text: `${t("room.you")} · ${config.you.display_name}`,
                  voice: !camera?.enabled });
  }
  const transceivers = pc ? pc.getTransceivers() : [];
  if (pc) {
    state.slots.forEach((slotKey, n) => {
      if (!slotKey) return;
      if (n >= state.slotCount) { console.debug("slot out of range", n, slotKey); return; }
      const [peerId, screen] = slotKey.split("#");
      const person = state.people.get(peerId);
      if (!person) return;
      const cameraOff = !screen && person.video_muted;
      const voiceOnly = state.notShown.has(slotKey) || cameraOff;
      const flags = [];
      if (!screen && person.audio_muted) flags.push(t("room.muted"));
      if (cameraOff) flags.push(t("room.no_video"));
      if (state.pausedVideo.has(slotKey)) flags.push(t("room.video_held"));
      else if (state.notShown.has(slotKey)) flags.push(t("room.voice_only"));
      if (!screen && person.weak_link) flags.push(t("room.their_link_weak"));
      const name = screen ? t("room.screen_of", { name: label(person) }) : label(person);
      wanted.push({ key: `slot-${n}-${slotKey}`, slot: n, tracks: [transceivers[4 + 2 * n].receiver.track],
                    text: [name, ...flags].join(" · "), held: state.pausedVideo.has(slotKey), voice: voiceOnly });
    });
  }
  renderVoices(transceivers);
  const keep = new Set(wanted.map((w) => w.key));
  for (const tile of [...grid.children]) if (!keep.has(tile.dataset.key)) tile.remove();
  for (const item of wanted) {
    let tile = grid.querySelector(`[data-key="${item.key}"]`);
    if (!tile) {
      tile = document.createElement("figure");
      tile.className = "tile";
      tile.dataset.key = item.key;
      if (item.slot !== undefined) tile.dataset.slot = item.slot;
      const videoElement = document.createElement("video");
      videoElement.autoplay = true;
      videoElement.playsInline = true;
      videoElement.muted = true; // voices play in their own <audio> elements
      const caption = document.createElement("figcaption");
      caption.className = "name";
      tile.append(videoElement, caption);
      grid.append(tile);
    }
    bind(tile.querySelector("video"), item.tracks);
    tile.querySelector("figcaption").textContent = item.text;
    tile.classList.toggle("held", Boolean(item.held));
    tile.classList.toggle("voice", Boolean(item.voice));
    tile.querySelector("video").setAttribute("aria-label", item.text);
  }
  reportView();
}

// What the server was last told of the tiles' sizes ("" for a new connection: tell it again).
export function viewSent(view) { lastView = view; }

// How large each slot's video is shown (device pixels), so that the server sends a small tile the
// small layer. Sent when it changes, at most every half second.
function reportView() {
  if (viewTimer) return;
  viewTimer = setTimeout(() => {
    viewTimer = null;
    if (!state.socket || state.socket.readyState !== WebSocket.OPEN || !state.pc) return;
    const ratio = window.devicePixelRatio || 1;
    const pixels = Array.from({ length: state.slotCount }, () => null);
    for (const tile of document.querySelectorAll(".tile[data-slot]")) {
      const video = tile.querySelector("video");
      pixels[Number(tile.dataset.slot)] = Math.round(video.clientWidth * video.clientHeight * ratio * ratio);
    }
    const view = JSON.stringify(pixels);
    if (view !== lastView) {
      lastView = view;
      send({ type: "view", pixels });
    }
  }, 500);
}
new ResizeObserver(reportView).observe($("grid"));

// The speaker's tiles are marked.
export function markSpeaker(peerId) {
  for (const tile of document.querySelectorAll(".tile")) {
    tile.classList.toggle("speaking", tile.dataset.key.endsWith(`-${peerId}`));
  }
}
