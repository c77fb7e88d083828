// My own controls: microphone, camera, audio only, hand, screen share, leaving, and the host's
// recording and end buttons; the notice about my own link.
import { finish, send } from "./connection.js";
import { $, state, t } from "./page.js";
import { renderTiles } from "./tiles.js";

let cameraBeforeAudioOnly = true;
let handRaised = false;

// My own link, as the server measures it: a notice with the way out (audio only) while it is
// weak, and while I chose audio only, the way back.
export function showLink() {
  const { link, audioOnly } = state;
  const weak = link.downlink === "weak" || link.uplink === "weak";
  $("link-notice").hidden = !weak && !audioOnly;
  $("link-text").textContent = audioOnly ? t("room.audio_only_chosen")
    : link.downlink === "weak" ? t("room.link_down_weak") : t("room.link_up_weak");
  $("audio-only").textContent = audioOnly ? t("room.audio_only_stop") : t("room.audio_only_start");
}

function toggleAudioOnly() {
  state.audioOnly = !state.audioOnly;
  const camera = state.localStream?.getVideoTracks()[0];
  if (state.audioOnly) cameraBeforeAudioOnly = Boolean(camera?.enabled);
  if (camera && (state.audioOnly || cameraBeforeAudioOnly)) {
    setTrack("video", !state.audioOnly);
    send({ type: "mute", video: state.audioOnly });
  }
  send({ type: "audio_only", on: state.audioOnly });
  showLink();
}

export function showRecording(active) {
  $("recording").hidden = !active;
  $("record").textContent = active ? t("room.record_stop") : t("room.record_start");
  $("record").dataset.active = active ? "1" : "";
}

async function toggleShare() {
  if (state.screenStream) {
    state.screenStream.getTracks().forEach((track) => track.stop());
    state.screenStream = null;
    if (state.screenTransceiver) await state.screenTransceiver.sender.replaceTrack(null);
    send({ type: "screen", active: false });
    $("share").textContent = t("room.share");
    return;
  }
  try {
    state.screenStream = await navigator.mediaDevices.getDisplayMedia({ video: true });
  } catch (error) {
    return; // the person chose not to share
  }
  const track = state.screenStream.getVideoTracks()[0];
  track.addEventListener("ended", () => { if (state.screenStream) toggleShare(); });
  if (state.screenTransceiver) await state.screenTransceiver.sender.replaceTrack(track);
  send({ type: "screen", active: true });
  $("share").textContent = t("room.stop_share");
}

export function setTrack(kind, enabled) {
  const track = kind === "audio" ? state.localStream?.getAudioTracks()[0] : state.localStream?.getVideoTracks()[0];
  if (track) track.enabled = enabled;
  const button = $(kind === "audio" ? "toggle-audio" : "toggle-video");
  if (kind === "audio") button.textContent = enabled ? t("room.mute") : t("room.unmute");
  else {
    button.textContent = enabled ? t("room.camera_off") : t("room.camera_on");
    renderTiles(); // my own tile shows my name while my camera is off
  }
}

function toggle(kind) {
  const track = kind === "audio" ? state.localStream?.getAudioTracks()[0] : state.localStream?.getVideoTracks()[0];
  if (!track) return;
  setTrack(kind, !track.enabled);
  send({ type: "mute", [kind]: !track.enabled });
}

function leave() {
  if (!window.confirm(t("room.confirm_leave"))) return;
  send({ type: "leave" });
  finish(t("room.left"));
}

$("toggle-audio").addEventListener("click", () => toggle("audio"));
$("toggle-video").addEventListener("click", () => toggle("video"));
$("leave").addEventListener("click", leave);
$("toggle-hand").addEventListener("click", () => {
  handRaised = !handRaised;
  $("toggle-hand").textContent = handRaised ? t("room.hand_down") : t("room.hand");
  send({ type: "hand", raised: handRaised });
});
$("audio-only").addEventListener("click", toggleAudioOnly);
$("share").addEventListener("click", toggleShare);
$("record").addEventListener("click", () => {
  send({ type: "moderate", action: $("record").dataset.active ? "recording_stop" : "recording_start" });
});
$("end").addEventListener("click", () => {
  if (window.confirm(t("room.confirm_end"))) send({ type: "moderate", action: "end" });
});
