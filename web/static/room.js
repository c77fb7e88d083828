// The join page and the mediation room: device check, signaling, slots, chat.
// Protocol: signaling/PROTOCOL.md. No build step, no external scripts.

const config = JSON.parse(document.getElementById("room-config").textContent);
const strings = config.strings;
const $ = (id) => document.getElementById(id);
const MAX_VIDEO_BITRATE = 600_000; // bits/s: enough for 640x480 talking heads
// The camera goes in two simulcast layers; the server sends each person the one that fits their
// link and the size they show it at (a weak phone link gets the small one). Keep in step with
// signaling/media/bandwidth.py (MAX_VIDEO_BPS, SMALL_LAYER_BPS). Each layer says its frame rate: with
// a cap on the small one alone, Chromium held the large one to it too (15 fps of a camera's 30).
const CAMERA_LAYERS = [
  { rid: "l", scaleResolutionDownBy: 2, maxBitrate: 50_000, maxFramerate: 15 },
  { rid: "h", maxBitrate: MAX_VIDEO_BITRATE, maxFramerate: 30 },
];
// Refusals that reconnecting cannot cure: the link is bad, revoked or expired.
const FATAL = new Set(["invite_401", "invite_403", "invite_404", "invite_410", "not_found", "unsupported_codec"]);

function t(key, values = {}) {
  let text = strings[key] || key;
  for (const [name, value] of Object.entries(values)) text = text.replace(`{${name}}`, value);
  return text;
}

// ---------------------------------------------------------------- device check

let localStream = null;
let meterStop = null;
// The camera and microphone being opened (a slow phone takes seconds): entering waits for it,
// or the room would get this person without sound or picture.
let devicesOpening = Promise.resolve();

function openDevices() {
  devicesOpening = openDevicesNow();
  return devicesOpening;
}

// Camera and microphone together; failing that the microphone alone, then the camera alone: a
// person whose camera is blocked, missing or busy still joins with their voice, and one with
// neither joins to watch and listen.
async function openDevicesNow() {
  const camera = $("camera").value;
  const microphone = $("microphone").value;
  if (localStream) localStream.getTracks().forEach((track) => track.stop());
  localStream = null;
  if (!navigator.mediaDevices) { showDevices("insecure"); return; } // plain HTTP, not on this computer
  const audio = microphone ? { deviceId: { exact: microphone } } : true;
  const video = { width: { ideal: 640 }, height: { ideal: 480 }, ...(camera ? { deviceId: { exact: camera } } : {}) };
  let failure = "";
  for (const wanted of [{ audio, video }, { audio }, { video }]) {
    try {
      localStream = await navigator.mediaDevices.getUserMedia(wanted);
      break;
    } catch (error) {
      failure = failure || error.name;
    }
  }
  showDevices(failure);
  if (!localStream) return;
  $("preview").srcObject = localStream;
  watchLevel(localStream);
  await listDevices();
}

// Why a device could not be had, in words a resident understands (a getUserMedia error name).
function deviceReason(failure) {
  const name = { SecurityError: "NotAllowedError", AbortError: "NotReadableError" }[failure] || failure;
  return t(`join.why.${strings[`join.why.${name}`] ? name : "other"}`, { error: failure });
}

// The device check's message, help and buttons for what was opened (`failure`: "" when all was).
function showDevices(failure) {
  const hasAudio = Boolean(localStream?.getAudioTracks().length);
  const hasVideo = Boolean(localStream?.getVideoTracks().length);
  const what = hasAudio && hasVideo ? "" : hasAudio ? "no_camera" : hasVideo ? "no_microphone" : "no_devices";
  $("device-problem").hidden = !what;
  $("device-help").hidden = deviceReason(failure) !== deviceReason("NotAllowedError");
  $("device-retry").hidden = failure === "insecure";
  $("device-error").textContent = what ? deviceReason(failure) : "";
  $("device-fallback").textContent = what ? t(`join.${what}`) : "";
  $("preview").hidden = !hasVideo;
  $("enter").textContent = t(what ? `join.enter_${what}` : "join.enter");
  for (const [kind, has] of [["audio", hasAudio], ["video", hasVideo]]) {
    $(kind === "audio" ? "toggle-audio" : "toggle-video").disabled = !has;
  }
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
let pausedVideo = new Set(); // slots whose video the server holds back: my link cannot carry every video
let notShown = new Set(); // slots whose video is not sent: only the latest speakers' are (last-N)
let link = { downlink: "good", uplink: "good" }; // the server's word on my own links
let audioOnly = false; // I asked for voices only (and send no picture)
let cameraBeforeAudioOnly = true;
let me = null;
let leaving = false;
let listed = [];
let handRaised = false;
let picking = false;
let retryMs = 1000;
const REJOIN_AFTER_MS = 3000; // media gone this long: join again at once (see "connectionstatechange")
let rejoinTimer = null;
// While the room is not open yet: when it opens (ms since the epoch), so the page waits and then joins.
let opensAt = 0;
const ROOM_POLL_MS = 30_000; // the host may open the room early: ask again at least this often
let iceServers = [];
let screenTransceiver = null;
let screenStream = null;
const isHost = config.you.kind === "host";

function status(text) { $("status").textContent = text; }

// What the room offers now (app.css shows the controls, people and chat only "in" the room):
// "waiting" before the first join (the room not open yet), "in", "over" once left or ended.
function setPhase(phase) { $("room").dataset.phase = phase; }

let noticeKind = "";

// A signaling error in the reader's language, by its code (signaling/PROTOCOL.md).
function errorText(message) {
  return strings[`room.code.${message.code}`] || strings["room.code.other"];
}

// One notice line: the lobby and the caucus notices follow the room's state; others stay.
function notice(text, kind = "info") {
  noticeKind = text ? kind : "";
  $("notice").textContent = text || "";
  $("notice").hidden = !text;
}

function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

async function enterRoom() {
  $("invitation").hidden = true;
  $("device-check").hidden = true;
  $("room").hidden = false;
  $("host-controls").hidden = !isHost;
  status(t("room.connecting"));
  await devicesOpening;
  if (meterStop) meterStop();
  connect();
}

// Where to join: this site's address, or once (after "moved") the node that holds the room.
const ENTRY_URL = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/rooms/${config.session_id}`;
let movedTo = null;
let moves = 0; // "moved" messages since the last join: the first is followed at once, later ones after a pause
// A node cut off from its database may take a join and never answer it: after this long without
// a word, drop that socket and join again through the site's address (another node, if need be).
const JOIN_REPLY_MS = 6000;
let joinTimer = null;

// A dropped connection is a fresh WebSocket and a fresh peer connection from the same link:
// the server keeps the seat (admitted, muted, caucus) for a while and resumes it. Every
// reconnection goes through the site's address, so a room whose node died is placed again.
function connect() {
  const url = movedTo || ENTRY_URL;
  movedTo = null;
  socket = new WebSocket(url);
  socket.onopen = () => {
    send({ type: "join", token: config.token });
    clearTimeout(joinTimer);
    joinTimer = setTimeout(() => { movedTo = null; rejoin(); }, JOIN_REPLY_MS);
  };
  socket.onmessage = (event) => {
    clearTimeout(joinTimer);  // the node answers
    handle(JSON.parse(event.data));
  };
  socket.onclose = () => { clearTimeout(joinTimer); reconnect(); };
}

// Join again now with a fresh socket and peer connection. The old socket is dropped, not
// waited for: after a network change its TCP connection is dead, and its close would take as
// long as the browser's closing handshake timeout.
function rejoin() {
  const old = socket;
  socket = null;
  if (old) {
    old.onclose = null;
    old.onmessage = null;
    old.close();
  }
  reconnect();
}

function reconnect() {
  if (leaving) return;
  if (pc) { pc.close(); pc = null; }
  // Nothing of the old connection stays on the page: its tracks have ended.
  slots = [];
  pausedVideo = new Set();
  notShown = new Set();
  link = { downlink: "good", uplink: "good" }; // the new connection is judged afresh
  showLink();
  renderTiles();
  if (movedTo && moves <= 1) { connect(); return; }
  if (opensAt) {
    setTimeout(connect, Math.max(1000, Math.min(opensAt - Date.now() + 500, ROOM_POLL_MS)));
    return;
  }
  status(t("room.reconnecting"));
  setTimeout(connect, retryMs);
  retryMs = Math.min(retryMs * 2, 4000); // keeps trying: a room whose node died is back within seconds
}

// My own link, as the server measures it: a notice with the way out (audio only) while it is
// weak, and while I chose audio only, the way back.
function showLink() {
  const weak = link.downlink === "weak" || link.uplink === "weak";
  $("link-notice").hidden = !weak && !audioOnly;
  $("link-text").textContent = audioOnly ? t("room.audio_only_chosen")
    : link.downlink === "weak" ? t("room.link_down_weak") : t("room.link_up_weak");
  $("audio-only").textContent = audioOnly ? t("room.audio_only_stop") : t("room.audio_only_start");
}

function toggleAudioOnly() {
  audioOnly = !audioOnly;
  const camera = localStream?.getVideoTracks()[0];
  if (audioOnly) cameraBeforeAudioOnly = Boolean(camera?.enabled);
  if (camera && (audioOnly || cameraBeforeAudioOnly)) {
    setTrack("video", !audioOnly);
    send({ type: "mute", video: audioOnly });
  }
  send({ type: "audio_only", on: audioOnly });
  showLink();
}

// "12月2日周三 15:00" in the office's zone.
function officeTime(iso) {
  return new Intl.DateTimeFormat(config.lang === "en" ? "en-GB" : "zh-CN", {
    timeZone: config.timezone, month: "long", day: "numeric", weekday: "short", hour: "2-digit", minute: "2-digit", hour12: false,
  }).format(new Date(iso));
}

function waitForRoom(opens) {
  if (!opens) { finish(t("room.room_over")); return; }
  opensAt = Date.parse(opens);
  status("");
  notice(t("room.opens_at", { time: officeTime(opens), zone: config.zone }), "waiting");
}

// Why a link ended while its holder was in the room (a "removed" message's reason).
const ENDED_BECAUSE = { account_disabled: "room.account_disabled", cancelled: "room.session_cancelled" };

function finish(text) {
  leaving = true;
  setPhase("over");
  if (socket) socket.close();
  if (pc) pc.close();
  if (localStream) localStream.getTracks().forEach((track) => track.stop());
  $("grid").replaceChildren();
  $("voices").replaceChildren();
  $("link-notice").hidden = true;
  $("host-controls").hidden = true;
  status("");
  notice(text);
}

async function handle(message) {
  switch (message.type) {
    case "config":
      iceServers = message.ice_servers;
      break;
    case "moved": // the room is on another node: join there (signaling/PROTOCOL.md)
      moves += 1;
      movedTo = message.url;
      break;
    case "joined":
      setPhase("in");
      moves = 0;
      me = message.peer_id;
      slotCount = message.slots;
      retryMs = 1000;
      if (opensAt) { opensAt = 0; notice(""); }
      if (!message.admitted) notice(t("room.lobby"), "lobby");
      $("chat-text").placeholder = t(message.admitted ? "room.chat_placeholder" : "room.chat_placeholder_lobby");
      showRecording(message.recording);
      if (message.audio_muted) setTrack("audio", false);
      if (message.video_muted) setTrack("video", false);
      // Without a microphone or camera, others see that person as muted, not as silent or black.
      if (!localStream?.getAudioTracks().length && !message.audio_muted) send({ type: "mute", audio: true });
      if (!localStream?.getVideoTracks().length && !message.video_muted) send({ type: "mute", video: true });
      audioOnly = Boolean(message.audio_only);
      showLink();
      await startMedia(iceServers);
      break;
    case "answer":
      await pc.setRemoteDescription({ type: "answer", sdp: message.sdp });
      pc.addEventListener("connectionstatechange", () => {
        if (!pc) return;
        clearTimeout(rejoinTimer);
        if (pc.connectionState === "failed") rejoin();
        // A phone that switched networks (Wi-Fi to 4G): the server cannot restart ICE, so join
        // again with a new connection after a few seconds without media, rather than wait ~30 s
        // for "failed". The seat is kept meanwhile (admitted, muted, caucus).
        else if (pc.connectionState === "disconnected") {
          rejoinTimer = setTimeout(() => { if (pc?.connectionState === "disconnected") rejoin(); }, REJOIN_AFTER_MS);
        }
      });
      status("");
      break;
    case "participants":
      listed = message.participants;
      people = new Map(listed.map((p) => [p.peer_id, p]));
      if (message.caucus && message.in_caucus === false) notice(t("room.caucus_apart"), "caucus");
      else if (message.caucus) notice(t("room.caucus_on"), "caucus");
      else if (noticeKind === "caucus" || (noticeKind === "lobby" && people.get(me)?.admitted)) notice("");
      $("caucus").textContent = message.caucus ? t("room.caucus_end") : t("room.caucus_start");
      showRecording(message.recording);
      $("caucus").dataset.active = message.caucus ? "1" : "";
      renderPeople();
      renderChatTargets();
      renderTiles();
      break;
    case "lobby":
      notice(t("room.lobby"), "lobby");
      break;
    case "lobby_message":
      notice(`${t("room.lobby")} ${t("room.lobby_message", { text: message.text })}`, "lobby");
      break;
    case "admitted":
      notice("");
      $("chat-text").placeholder = t("room.chat_placeholder");
      break;
    case "force_mute":
      setTrack("audio", false);
      notice(t("room.force_muted"));
      break;
    case "unmute_request":
      if (window.confirm(t("room.unmute_request", { name: message.from }))) {
        setTrack("audio", true);
        send({ type: "mute", audio: false });
        notice("");
      }
      break;
    case "consent_request": {
      const agree = window.confirm(t("room.consent_request", { name: message.from }));
      send({ type: "consent", agree });
      break;
    }
    case "recording":
      showRecording(message.active);
      if (message.declined_by) notice(t("room.consent_declined", { name: message.declined_by }));
      else if (message.pending) notice(t("room.consent_pending"));
      else if (noticeKind === "info" && message.active) notice("");
      break;
    case "speaker":
      for (const tile of document.querySelectorAll(".tile")) {
        tile.classList.toggle("speaking", tile.dataset.key.endsWith(`-${message.peer_id}`));
      }
      break;
    case "removed":
      finish(t(message.reason ? ENDED_BECAUSE[message.reason] || "room.link_ended"
        : message.revoked ? "room.removed" : "room.removed_for_now"));
      break;
    case "ended":
      finish(t("room.ended"));
      break;
    case "slots":
      slots = message.slots;
      renderTiles();
      break;
    case "chat":
      addChat(message);
      break;
    case "link":
      link = { downlink: message.downlink, uplink: message.uplink };
      showLink();
      break;
    case "bandwidth":
      pausedVideo = new Set(message.paused || []);
      notShown = new Set(message.not_shown || []);
      if (message.audio_only) notice(t("room.audio_only"), "bandwidth");
      else if (pausedVideo.size) notice(t("room.fewer_videos"), "bandwidth");
      else if (noticeKind === "bandwidth") notice("");
      renderTiles();
      break;
    case "error":
      if (message.code === "ended") finish(t("room.ended"));
      else if (FATAL.has(message.code)) finish(t("room.error", { message: errorText(message) }));
      else if (message.code === "room_closed") waitForRoom(message.opens_at);
      else if (message.code === "media_restart" || message.code === "rejoin") { status(t(`room.code.${message.code}`)); rejoin(); }
      else status(t("room.error", { message: errorText(message) }));
      break;
  }
}

async function startMedia(iceServers) {
  pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
  const audio = localStream?.getAudioTracks()[0];
  const video = localStream?.getVideoTracks()[0];
  // The layout the server expects: my audio, my video, my screen share, then (audio, video)
  // per receive slot.
  pc.addTransceiver(audio || "audio", { direction: "sendonly", streams: localStream ? [localStream] : [] });
  const videoTransceiver = pc.addTransceiver(video || "video", {
    direction: "sendonly", streams: localStream ? [localStream] : [],
    sendEncodings: CAMERA_LAYERS.map((layer) => ({ ...layer })),
  });
  screenTransceiver = pc.addTransceiver("video", { direction: "sendonly", sendEncodings: [{ maxBitrate: MAX_VIDEO_BITRATE }] });
  if (screenStream) await screenTransceiver.sender.replaceTrack(screenStream.getVideoTracks()[0]);
  for (let n = 0; n < slotCount; n += 1) {
    pc.addTransceiver("audio", { direction: "recvonly" });
    pc.addTransceiver("video", { direction: "recvonly" });
  }
  for (const transceiver of pc.getTransceivers()) preferCodec(transceiver);
  // Trickle ICE: the offer goes at once and each candidate after it as it is found, so that
  // the server answers while this browser is still gathering.
  const connection = pc;
  pc.addEventListener("icecandidate", ({ candidate }) => {
    if (candidate && pc === connection) {
      send({ type: "candidate", candidate: candidate.candidate, sdpMid: candidate.sdpMid, sdpMLineIndex: candidate.sdpMLineIndex });
    }
  });
  await pc.setLocalDescription(await pc.createOffer());
  send({ type: "offer", sdp: pc.localDescription.sdp });
  capBitrate(videoTransceiver.sender);
  lastView = "";
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

// How large each slot's video is shown (device pixels), so that the server sends a small tile the
// small layer. Sent when it changes, at most every half second.
let lastView = "";
let viewTimer = null;
function reportView() {
  if (viewTimer) return;
  viewTimer = setTimeout(() => {
    viewTimer = null;
    if (!socket || socket.readyState !== WebSocket.OPEN || !pc) return;
    const ratio = window.devicePixelRatio || 1;
    const pixels = Array.from({ length: slotCount }, () => null);
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

// Back online (or on another network): if the media connection is not up, join again now.
window.addEventListener("online", () => {
  if (pc && pc.connectionState !== "connected") rejoin();
});

function label(person) {
  return `${person.name}（${config.labels[person.role] || person.role}）`;
}

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
  slots.forEach((slotKey, n) => {
    if (slotKey && !slotKey.includes("#") && people.has(slotKey) && n < slotCount) wanted.set(`voice-${n}`, n);
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

function renderTiles() {
  const grid = $("grid");
  const wanted = [];
  if (localStream) {
    const camera = localStream.getVideoTracks()[0];
    wanted.push({ key: "me", tracks: localStream.getVideoTracks(), text: `${t("room.you")} · ${config.you.display_name}`,
                  voice: !camera?.enabled });
  }
  const transceivers = pc ? pc.getTransceivers() : [];
  if (pc) {
    slots.forEach((slotKey, n) => {
      if (!slotKey) return;
      if (n >= slotCount) { console.debug("slot out of range", n, slotKey); return; }
      const [peerId, screen] = slotKey.split("#");
      const person = people.get(peerId);
      if (!person) return;
      const cameraOff = !screen && person.video_muted;
      const voiceOnly = notShown.has(slotKey) || cameraOff;
      const flags = [];
      if (!screen && person.audio_muted) flags.push(t("room.muted"));
      if (cameraOff) flags.push(t("room.no_video"));
      if (pausedVideo.has(slotKey)) flags.push(t("room.video_held"));
      else if (notShown.has(slotKey)) flags.push(t("room.voice_only"));
      if (!screen && person.weak_link) flags.push(t("room.their_link_weak"));
      const name = screen ? t("room.screen_of", { name: label(person) }) : label(person);
      wanted.push({ key: `slot-${n}-${slotKey}`, slot: n, tracks: [transceivers[4 + 2 * n].receiver.track],
                    text: [name, ...flags].join(" · "), held: pausedVideo.has(slotKey), voice: voiceOnly });
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

// The participant list is sent again whenever anyone's state changes: an entry whose person and
// view are unchanged is kept as it is, so a button being pressed (准入 as someone unmutes) is not
// swapped for a copy under the pointer, and a caucus tick stays ticked.
function renderPeople() {
  const list = $("people");
  const kept = new Map([...list.children].map((item) => [item.dataset.key, item]));
  const items = listed.map((person) => {
    const key = JSON.stringify([config.lang, isHost, me, picking, person]);
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
  if (person.weak_link) flags.push(t(person.peer_id === me ? "room.my_link_weak" : "room.their_link_weak"));
  if (person.problem && isHost) flags.push(strings[`room.problem.${person.problem}`] || person.problem);
  who.textContent = [label(person), ...flags].join(" · ");
  item.append(who);
  if (!person.admitted) { item.classList.add("waiting"); who.dataset.waiting = `（${t("room.waiting")}）`; }
  if (isHost && person.peer_id !== me) {
    if (picking && person.admitted) {
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
  if (!picking) {
    picking = true;
    $("caucus-hint").hidden = false;
    renderPeople();
    return;
  }
  const chosen = [...document.querySelectorAll(".caucus-pick:checked")].map((box) => box.value);
  picking = false;
  $("caucus-hint").hidden = true;
  if (chosen.length) send({ type: "moderate", action: "caucus_start", peer_ids: chosen });
  renderPeople();
}

// A host writes to everyone, or to one person waiting in the lobby (who cannot read the room's chat).
function renderChatTargets() {
  if (!isHost) return;
  const select = $("chat-to");
  const chosen = select.value;
  const waiting = listed.filter((person) => !person.admitted && person.peer_id !== me);
  select.replaceChildren(new Option(t("room.chat_everyone"), ""),
    ...waiting.map((person) => new Option(t("room.chat_to_waiting", { name: person.name }), person.peer_id)));
  select.value = waiting.some((person) => person.peer_id === chosen) ? chosen : "";
  select.hidden = !waiting.length;
}

function addChat(message) {
  const item = document.createElement("li");
  const time = new Date(message.at * 1000).toLocaleTimeString();
  const who = `${message.name}（${config.labels[message.role] || message.role}）`;
  // Between a person in the lobby and the hosts: marked, and a host's answer says to whom.
  const waiting = message.lobby && message.from !== message.lobby ? ` → ${people.get(message.lobby)?.name || ""}` : "";
  const where = message.lobby ? `［${t("room.chat_lobby")}］` : "";
  item.textContent = `${time} ${where}${who}${waiting}：${message.text}`;
  item.classList.toggle("lobby", Boolean(message.lobby));
  $("chat").append(item);
  $("chat").scrollTop = $("chat").scrollHeight;
}

function showRecording(active) {
  $("recording").hidden = !active;
  $("record").textContent = active ? t("room.record_stop") : t("room.record_start");
  $("record").dataset.active = active ? "1" : "";
}

async function toggleShare() {
  if (screenStream) {
    screenStream.getTracks().forEach((track) => track.stop());
    screenStream = null;
    if (screenTransceiver) await screenTransceiver.sender.replaceTrack(null);
    send({ type: "screen", active: false });
    $("share").textContent = t("room.share");
    return;
  }
  try {
    screenStream = await navigator.mediaDevices.getDisplayMedia({ video: true });
  } catch (error) {
    return; // the person chose not to share
  }
  const track = screenStream.getVideoTracks()[0];
  track.addEventListener("ended", () => { if (screenStream) toggleShare(); });
  if (screenTransceiver) await screenTransceiver.sender.replaceTrack(track);
  send({ type: "screen", active: true });
  $("share").textContent = t("room.stop_share");
}

function setTrack(kind, enabled) {
  const track = kind === "audio" ? localStream?.getAudioTracks()[0] : localStream?.getVideoTracks()[0];
  if (track) track.enabled = enabled;
  const button = $(kind === "audio" ? "toggle-audio" : "toggle-video");
  if (kind === "audio") button.textContent = enabled ? t("room.mute") : t("room.unmute");
  else {
    button.textContent = enabled ? t("room.camera_off") : t("room.camera_on");
    renderTiles(); // my own tile shows my name while my camera is off
  }
}

function toggle(kind) {
  const track = kind === "audio" ? localStream?.getAudioTracks()[0] : localStream?.getVideoTracks()[0];
  if (!track) return;
  setTrack(kind, !track.enabled);
  send({ type: "mute", [kind]: !track.enabled });
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

function leave() {
  if (!window.confirm(t("room.confirm_leave"))) return;
  send({ type: "leave" });
  finish(t("room.left"));
}

// ---------------------------------------------------------------- wiring

$("camera").addEventListener("change", openDevices);
$("device-retry").addEventListener("click", openDevices);
$("microphone").addEventListener("change", openDevices);
$("enter").addEventListener("click", enterRoom);
$("toggle-audio").addEventListener("click", () => toggle("audio"));
$("toggle-video").addEventListener("click", () => toggle("video"));
$("leave").addEventListener("click", leave);
$("toggle-hand").addEventListener("click", () => {
  handRaised = !handRaised;
  $("toggle-hand").textContent = handRaised ? t("room.hand_down") : t("room.hand");
  send({ type: "hand", raised: handRaised });
});
$("caucus").addEventListener("click", toggleCaucus);
$("audio-only").addEventListener("click", toggleAudioOnly);
$("share").addEventListener("click", toggleShare);
$("record").addEventListener("click", () => {
  send({ type: "moderate", action: $("record").dataset.active ? "recording_stop" : "recording_start" });
});
$("end").addEventListener("click", () => {
  if (window.confirm(t("room.confirm_end"))) send({ type: "moderate", action: "end" });
});
$("chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("chat-text").value.trim();
  const to = $("chat-to").value;
  if (text) send({ type: "chat", text, ...(to ? { to } : {}) });
  $("chat-text").value = "";
});
openDevices();
