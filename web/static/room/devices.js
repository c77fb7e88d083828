// The device check before entering: camera and microphone, the level meter, the device lists.
import { $, state, strings, t } from "./page.js";

let meterStop = null;
// The camera and microphone being opened (a slow phone takes seconds): entering waits for it,
// or the room would get this person without sound or picture.
let devicesOpening = Promise.resolve();

export function openDevices() {
  devicesOpening = openDevicesNow();
  return devicesOpening;
}

// Entering the room: once the devices are open, the level meter stops.
export async function devicesOpened() {
  await devicesOpening;
  if (meterStop) meterStop();
}

// Camera and microphone together; failing that the microphone alone, then the camera alone: a
// person whose camera is blocked, missing or busy still joins with their voice, and one with
// neither joins to watch and listen.
async function openDevicesNow() {
  const camera = $("camera").value;
  const microphone = $("microphone").value;
  if (state.localStream) state.localStream.getTracks().forEach((track) => track.stop());
  state.localStream = null;
  if (!navigator.mediaDevices) { showDevices("insecure"); return; } // plain HTTP, not on this computer
  const audio = microphone ? { deviceId: { exact: microphone } } : true;
  const video = { width: { ideal: 640 }, height: { ideal: 480 }, ...(camera ? { deviceId: { exact: camera } } : {}) };
  let failure = "";
  for (const wanted of [{ audio, video }, { audio }, { video }]) {
    try {
      state.localStream = await navigator.mediaDevices.getUserMedia(wanted);
      break;
    } catch (error) {
      failure = failure || error.name;
    }
  }
  showDevices(failure);
  if (!state.localStream) return;
  $("preview").srcObject = state.localStream;
  watchLevel(state.localStream);
  await listDevices();
}

// Why a device could not be had, in words a resident understands (a getUserMedia error name).
function deviceReason(failure) {
  const name = { SecurityError: "NotAllowedError", AbortError: "NotReadableError" }[failure] || failure;
  return t(`join.why.${strings[`join.why.${name}`] ? name : "other"}`, { error: failure });
}

// The device check's message, help and buttons for what was opened (`failure`: "" when all was).
function showDevices(failure) {
  const hasAudio = Boolean(state.localStream?.getAudioTracks().length);
  const hasVideo = Boolean(state.localStream?.getVideoTracks().length);
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
    const current = state.localStream?.getTracks().find((track) => track.kind === kind.slice(0, 5))?.getSettings().deviceId;
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

$("camera").addEventListener("change", openDevices);
$("device-retry").addEventListener("click", openDevices);
$("microphone").addEventListener("change", openDevices);
