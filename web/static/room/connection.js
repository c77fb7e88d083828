// The signaling socket and the peer connection: joining (through the site's address, or the
// node that holds the room), rejoining after a drop, and the media of one connection.
// Protocol: signaling/PROTOCOL.md.
import { showLink } from "./controls.js";
import { $, config, notice, setPhase, state, status, t } from "./page.js";
import { renderTiles, viewSent } from "./tiles.js";

const MAX_VIDEO_BITRATE = 600_000; // bits/s: enough for 640x480 talking heads
// The camera goes in two simulcast layers; the server sends each person the one that fits their
// link and the size they show it at (a weak phone link gets the small one). Keep in step with
// signaling/media/bandwidth.py (MAX_VIDEO_BPS, SMALL_LAYER_BPS). Each layer says its frame rate: with
// a cap on the small one alone, Chromium held the large one to it too (15 fps of a camera's 30).
const CAMERA_LAYERS = [
  { rid: "l", scaleResolutionDownBy: 2, maxBitrate: 50_000, maxFramerate: 15 },
  { rid: "h", maxBitrate: MAX_VIDEO_BITRATE, maxFramerate: 30 },
];
const REJOIN_AFTER_MS = 3000; // media gone this long: join again at once (see "connectionstatechange")
const ROOM_POLL_MS = 30_000; // the host may open the room early: ask again at least this often
// Where to join: this site's address, or once (after "moved") the node that holds the room.
const ENTRY_URL = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/rooms/${config.session_id}`;
// A node cut off from its database may take a join and never answer it: after this long without
// a word, drop that socket and join again through the site's address (another node, if need be).
// Long enough for a busy server's slow answer (a shorter wait cut it off and started again).
const JOIN_REPLY_MS = 10_000;

let handler = () => {};
let movedTo = null;
let moves = 0; // "moved" messages since the last join: the first is followed at once, later ones after a pause
let joinTimer = null;
let retryMs = 1000;
let rejoinTimer = null;
// While the room is not open yet: when it opens (ms since the epoch), so the page waits and then joins.
let opensAt = 0;
let iceServers = [];

export function send(message) {
  if (state.socket && state.socket.readyState === WebSocket.OPEN) state.socket.send(JSON.stringify(message));
}

// Join; every message but the connection's own goes to `onMessage`.
export function start(onMessage) {
  handler = onMessage;
  connect();
}

// A dropped connection is a fresh WebSocket and a fresh peer connection from the same link:
// the server keeps the seat (admitted, muted, caucus) for a while and resumes it. Every
// reconnection goes through the site's address, so a room whose node died is placed again.
function connect() {
  const url = movedTo || ENTRY_URL;
  movedTo = null;
  const socket = new WebSocket(url);
  state.socket = socket;
  socket.onopen = () => {
    send({ type: "join", token: config.token });
    clearTimeout(joinTimer);
    joinTimer = setTimeout(() => { movedTo = null; rejoin(); }, JOIN_REPLY_MS);
  };
  socket.onmessage = (event) => {
    clearTimeout(joinTimer);  // the node answers
    receive(JSON.parse(event.data));
  };
  socket.onclose = () => { clearTimeout(joinTimer); reconnect(); };
}

async function receive(message) {
  switch (message.type) {
    case "config":
      iceServers = message.ice_servers;
      break;
    case "moved": // the room is on another node: join there (signaling/PROTOCOL.md)
      moves += 1;
      movedTo = message.url;
      break;
    case "answer":
      await answered(message.sdp);
      break;
    default:
      await handler(message);
  }
}

// Join again now with a fresh socket and peer connection. The old socket is dropped, not
// waited for: after a network change its TCP connection is dead, and its close would take as
// long as the browser's closing handshake timeout.
export function rejoin() {
  const old = state.socket;
  state.socket = null;
  if (old) {
    old.onclose = null;
    old.onmessage = null;
    old.close();
  }
  reconnect(true);
}

// Join again: at once where the server said so (it is up: its media worker restarted, or the
// room is going elsewhere), else after a wait that grows while nothing answers.
function reconnect(now = false) {
  if (state.leaving) return;
  if (state.pc) { state.pc.close(); state.pc = null; }
  // Nothing of the old connection stays on the page: its tracks have ended.
  state.slots = [];
  state.pausedVideo = new Set();
  state.notShown = new Set();
  state.link = { downlink: "good", uplink: "good" }; // the new connection is judged afresh
  showLink();
  renderTiles();
  if (now || (movedTo && moves <= 1)) { connect(); return; }
  if (opensAt) {
    setTimeout(connect, Math.max(1000, Math.min(opensAt - Date.now() + 500, ROOM_POLL_MS)));
    return;
  }
  status(t("room.reconnecting"));
  setTimeout(connect, retryMs);
  retryMs = Math.min(retryMs * 2, 4000); // keeps trying: a room whose node died is back within seconds
}

// The room took me in: the next drop starts again from a short wait.
export function joined() {
  moves = 0;
  retryMs = 1000;
  if (opensAt) { opensAt = 0; notice(""); }
}

// "12月2日周三 15:00" in the office's zone.
function officeTime(iso) {
  return new Intl.DateTimeFormat(config.lang === "en" ? "en-GB" : "zh-CN", {
    timeZone: config.timezone, month: "long", day: "numeric", weekday: "short", hour: "2-digit", minute: "2-digit", hour12: false,
  }).format(new Date(iso));
}

export function waitForRoom(opens) {
  if (!opens) { finish(t("room.room_over")); return; }
  opensAt = Date.parse(opens);
  status("");
  notice(t("room.opens_at", { time: officeTime(opens), zone: config.zone }), "waiting");
}

// The end of my time in the room: left, ended or removed.
export function finish(text) {
  state.leaving = true;
  setPhase("over");
  if (state.socket) state.socket.close();
  if (state.pc) state.pc.close();
  if (state.localStream) state.localStream.getTracks().forEach((track) => track.stop());
  $("grid").replaceChildren();
  $("voices").replaceChildren();
  $("link-notice").hidden = true;
  $("host-controls").hidden = true;
  status("");
  notice(text);
}

export async function startMedia() {
  const pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
  state.pc = pc;
  const { localStream } = state;
  const audio = localStream?.getAudioTracks()[0];
  const video = localStream?.getVideoTracks()[0];
  // The layout the server expects: my audio, my video, my screen share, then (audio, video)
  // per receive slot.
  pc.addTransceiver(audio || "audio", { direction: "sendonly", streams: localStream ? [localStream] : [] });
  const videoTransceiver = pc.addTransceiver(video || "video", {
    direction: "sendonly", streams: localStream ? [localStream] : [],
    sendEncodings: CAMERA_LAYERS.map((layer) => ({ ...layer })),
  });
  state.screenTransceiver = pc.addTransceiver("video", { direction: "sendonly", sendEncodings: [{ maxBitrate: MAX_VIDEO_BITRATE }] });
  if (state.screenStream) await state.screenTransceiver.sender.replaceTrack(state.screenStream.getVideoTracks()[0]);
  for (let n = 0; n < state.slotCount; n += 1) {
    pc.addTransceiver("audio", { direction: "recvonly" });
    pc.addTransceiver("video", { direction: "recvonly" });
  }
  for (const transceiver of pc.getTransceivers()) preferCodec(transceiver);
  // Trickle ICE: the offer goes at once and each candidate after it as it is found, so that
  // the server answers while this browser is still gathering.
  pc.addEventListener("icecandidate", ({ candidate }) => {
    if (candidate && state.pc === pc) {
      send({ type: "candidate", candidate: candidate.candidate, sdpMid: candidate.sdpMid, sdpMLineIndex: candidate.sdpMLineIndex });
    }
  });
  await pc.setLocalDescription(await pc.createOffer());
  send({ type: "offer", sdp: pc.localDescription.sdp });
  capBitrate(videoTransceiver.sender);
  viewSent("");
}

async function answered(sdp) {
  const { pc } = state;
  await pc.setRemoteDescription({ type: "answer", sdp });
  pc.addEventListener("connectionstatechange", () => {
    if (!state.pc) return;
    clearTimeout(rejoinTimer);
    if (state.pc.connectionState === "failed") rejoin();
    // A phone that switched networks (Wi-Fi to 4G): the server cannot restart ICE, so join
    // again with a new connection after a few seconds without media, rather than wait ~30 s
    // for "failed". The seat is kept meanwhile (admitted, muted, caucus).
    else if (state.pc.connectionState === "disconnected") {
      rejoinTimer = setTimeout(() => { if (state.pc?.connectionState === "disconnected") rejoin(); }, REJOIN_AFTER_MS);
    }
  });
  status("");
}

function preferCodec(transceiver) {
  const kind = transceiver.receiver.track.kind;
  const wanted = kind === "video" ? "video/vp8" : "audio/opus";
  const codecs = RTCRtpReceiver.getCapabilities(kind).codecs.filter((c) => c.mimeType.toLowerCase() === wanted);
  if (codecs.length && transceiver.setCodecPreferences) transceiver.setCodecPreferences(codecs);
}

async function capBitrate(sender) {
  const parameters = sender.getParameters();
  if (!parameters.encodings || !parameters.encodings.length) parameters.encodings = [{}];
  // One encoding: a browser without simulcast sends its camera as the large layer.
  const layers = parameters.encodings.length === 1 ? [CAMERA_LAYERS[CAMERA_LAYERS.length - 1]] : CAMERA_LAYERS;
  parameters.encodings.forEach((encoding, n) => {
    if (layers[n]) encoding.maxBitrate = layers[n].maxBitrate;
  });
  try { await sender.setParameters(parameters); } catch (error) { /* older browsers: sendEncodings already asked */ }
}

// Back online (or on another network): if the media connection is not up, join again now.
window.addEventListener("online", () => {
  if (state.pc && state.pc.connectionState !== "connected") rejoin();
});
