// The join page and the mediation room: device check, signaling, slots, chat.
// Protocol: signaling/PROTOCOL.md. No build step, no external scripts.

const config = JSON.parse(document.getElementById("room-config").textContent);
const strings = config.strings;
const $ = (id) => document.getElementById(id);
const MAX_VIDEO_BITRATE = 600_000; // bits/s: enough for 640x480 talking heads

function t(key, values = {}) {
  let text = strings[key] || key;
  for (const [name, value] of Object.entries(values)) text = text.replace(`{${name}}`, value);
  return text;
}

// ---------------------------------------------------------------- device check

let localStream = null;
let meterStop = null;

async function openDevices() {
  const camera = $("camera").value;
  const microphone = $("microphone").value;
  if (localStream) localStream.getTracks().forEach((track) => track.stop());
  try {
    localStream = await navigator.mediaDevices.getUserMedia({
      audio: microphone ? { deviceId: { exact: microphone } } : true,
      video: { width: { ideal: 640 }, height: { ideal: 480 }, ...(camera ? { deviceId: { exact: camera } } : {}) },
    });
    $("device-error").hidden = true;
  } catch (error) {
    localStream = null;
    $("device-error").textContent = t("join.no_device", { error: error.name });
    $("device-error").hidden = false;
    return;
  }
  $("preview").srcObject = localStream;
  watchLevel(localStream);
  await listDevices();
}

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [kind, select] of [["videoinput", $("camera")], ["audioinput", $("microphone")]]) {
    const current = localStream?.getTracks().find((track) => track.kind === kind.slice(0, 5))?.getSettings().deviceId;
    select.replaceChildren(...devices.filter((d) => d.kind === kind).map((d, n) => {
      const option = new Option(d.label || `${kind} ${n + 1}`, d.deviceId);
      option.selected = d.deviceId === current;
      return option;
    }));
  }
}

function watchLevel(stream) {
  if (meterStop) meterStop();
  if (!stream.getAudioTracks().length) return;
  const context = new AudioContext();
  const analyser = context.createAnalyser();
  context.createMediaStreamSource(stream).connect(analyser);
  const data = new Uint8Array(analyser.fftSize);
  let running = true;
  const tick = () => {
    if (!running) return;
    analyser.getByteTimeDomainData(data);
    let peak = 0;
    for (const value of data) peak = Math.max(peak, Math.abs(value - 128) / 128);
    $("level").value = peak;
    requestAnimationFrame(tick);
  };
  tick();
  meterStop = () => { running = false; context.close(); };
}

// ---------------------------------------------------------------- room

let socket = null;
let pc = null;
let slotCount = 0;
let people = new Map();
let slots = [];
let me = null;
let leaving = false;

function status(text) { $("status").textContent = text; }

function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

function enterRoom() {
  if (meterStop) meterStop();
  $("invitation").hidden = true;
  $("device-check").hidden = true;
  $("room").hidden = false;
  status(t("room.connecting"));
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws/rooms/${config.session_id}`);
  socket.onopen = () => send({ type: "join", token: config.token });
  socket.onmessage = (event) => handle(JSON.parse(event.data));
  socket.onclose = () => { if (!leaving) status(t("room.reconnecting")); };
}

async function handle(message) {
  switch (message.type) {
    case "joined":
      me = message.peer_id;
      slotCount = message.slots;
      await startMedia(message.ice_servers || []);
      break;
    case "answer":
      await pc.setRemoteDescription({ type: "answer", sdp: message.sdp });
      status("");
      break;
    case "participants":
      people = new Map(message.participants.map((p) => [p.peer_id, p]));
      renderPeople();
      renderTiles();
      break;
    case "slots":
      slots = message.slots;
      renderTiles();
      break;
    case "chat":
      addChat(message);
      break;
    case "error":
      status(message.code === "room_closed" ? t("room.room_closed") : t("room.error", { message: message.message }));
      break;
  }
}

async function startMedia(iceServers) {
  pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
  const audio = localStream?.getAudioTracks()[0];
  const video = localStream?.getVideoTracks()[0];
  // The layout the server expects: my audio, my video, then (audio, video) per receive slot.
  pc.addTransceiver(audio || "audio", { direction: "sendonly", streams: localStream ? [localStream] : [] });
  const videoTransceiver = pc.addTransceiver(video || "video", {
    direction: "sendonly", streams: localStream ? [localStream] : [],
    sendEncodings: [{ maxBitrate: MAX_VIDEO_BITRATE }],
  });
  for (let n = 0; n < slotCount; n += 1) {
    pc.addTransceiver("audio", { direction: "recvonly" });
    pc.addTransceiver("video", { direction: "recvonly" });
  }
  for (const transceiver of pc.getTransceivers()) preferCodec(transceiver);
  await pc.setLocalDescription(await pc.createOffer());
  await gatheringDone(pc, 3000);
  send({ type: "offer", sdp: pc.localDescription.sdp });
  capBitrate(videoTransceiver.sender);
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
  parameters.encodings[0].maxBitrate = MAX_VIDEO_BITRATE;
  try { await sender.setParameters(parameters); } catch (error) { /* older browsers: sendEncodings already asked */ }
}

function gatheringDone(connection, timeoutMs) {
  if (connection.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { connection.removeEventListener("icegatheringstatechange", check); resolve(); };
    const check = () => { if (connection.iceGatheringState === "complete") done(); };
    connection.addEventListener("icegatheringstatechange", check);
    setTimeout(done, timeoutMs);
  });
}

function label(person) {
  return `${person.name}（${config.labels[person.role] || person.role}）`;
}

function renderTiles() {
  const grid = $("grid");
  const wanted = [];
  if (localStream) wanted.push({ key: "me", stream: localStream, text: `${t("room.you")} · ${config.you.display_name}`, muted: true });
  if (pc) {
    const transceivers = pc.getTransceivers();
    slots.forEach((peerId, n) => {
      if (!peerId || !people.has(peerId)) return;
      const stream = new MediaStream([transceivers[2 + 2 * n].receiver.track, transceivers[3 + 2 * n].receiver.track]);
      const person = people.get(peerId);
      wanted.push({ key: `slot-${n}-${peerId}`, stream, text: label(person) + (person.audio_muted ? ` · ${t("room.muted")}` : ""), muted: false });
    });
  }
  const keep = new Set(wanted.map((w) => w.key));
  for (const tile of [...grid.children]) if (!keep.has(tile.dataset.key)) tile.remove();
  for (const item of wanted) {
    let tile = grid.querySelector(`[data-key="${item.key}"]`);
    if (!tile) {
      tile = document.createElement("figure");
      tile.className = "tile";
      tile.dataset.key = item.key;
      const videoElement = document.createElement("video");
      videoElement.autoplay = true;
      videoElement.playsInline = true;
      videoElement.muted = item.muted;
      videoElement.srcObject = item.stream;
      const caption = document.createElement("figcaption");
      caption.className = "name";
      tile.append(videoElement, caption);
      grid.append(tile);
    }
    tile.querySelector("figcaption").textContent = item.text;
    tile.querySelector("video").setAttribute("aria-label", item.text);
  }
}

function renderPeople() {
  $("people").replaceChildren(...[...people.values()].map((person) => {
    const item = document.createElement("li");
    item.textContent = label(person) + (person.audio_muted ? ` · ${t("room.muted")}` : "");
    return item;
  }));
}

function addChat(message) {
  const item = document.createElement("li");
  const time = new Date(message.at * 1000).toLocaleTimeString();
  item.textContent = `${time} ${message.name}（${config.labels[message.role] || message.role}）：${message.text}`;
  $("chat").append(item);
  $("chat").scrollTop = $("chat").scrollHeight;
}

function toggle(kind) {
  const track = kind === "audio" ? localStream?.getAudioTracks()[0] : localStream?.getVideoTracks()[0];
  if (!track) return;
  track.enabled = !track.enabled;
  const button = $(kind === "audio" ? "toggle-audio" : "toggle-video");
  if (kind === "audio") button.textContent = track.enabled ? t("room.mute") : t("room.unmute");
  else button.textContent = track.enabled ? t("room.camera_off") : t("room.camera_on");
  send({ type: "mute", [kind]: !track.enabled });
}

function leave() {
  leaving = true;
  send({ type: "leave" });
  if (socket) socket.close();
  if (pc) pc.close();
  if (localStream) localStream.getTracks().forEach((track) => track.stop());
  $("grid").replaceChildren();
  status(t("room.left"));
}

// ---------------------------------------------------------------- wiring

$("camera").addEventListener("change", openDevices);
$("microphone").addEventListener("change", openDevices);
$("enter").addEventListener("click", enterRoom);
$("toggle-audio").addEventListener("click", () => toggle("audio"));
$("toggle-video").addEventListener("click", () => toggle("video"));
$("leave").addEventListener("click", leave);
$("chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("chat-text").value.trim();
  if (text) send({ type: "chat", text });
  $("chat-text").value = "";
});
openDevices();
