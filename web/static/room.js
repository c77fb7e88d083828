// The join page and the mediation room: what each message from the server does to the page.
// Its parts are in room/: page (configuration, strings, state), devices (the device check),
// connection (the socket and the peer connection), tiles (videos and voices), people (the
// participant list and moderation), chat, controls (my own buttons). No build step, no external
// scripts. Protocol: signaling/PROTOCOL.md.
import { addChat, chatPlaceholder, renderChatTargets } from "./room/chat.js";
import { finish, joined, rejoin, send, start, startMedia, waitForRoom } from "./room/connection.js";
import { setTrack, showLink, showRecording } from "./room/controls.js";
import { devicesOpened, openDevices } from "./room/devices.js";
import { $, errorText, isHost, notice, setPhase, state, status, t } from "./room/page.js";
import { renderPeople } from "./room/people.js";
import { markSpeaker, renderTiles } from "./room/tiles.js";

// Refusals that reconnecting cannot cure: the link is bad, revoked or expired.
const FATAL = new Set(["invite_401", "invite_403", "invite_404", "invite_410", "not_found", "unsupported_codec"]);
// Why a link ended while its holder was in the room (a "removed" message's reason).
const ENDED_BECAUSE = { account_disabled: "room.account_disabled", cancelled: "room.session_cancelled" };

async function enterRoom() {
  $("invitation").hidden = true;
  $("device-check").hidden = true;
  $("room").hidden = false;
  $("host-controls").hidden = !isHost;
  status(t("room.connecting"));
  await devicesOpened();
  start(handle);
}

async function handle(message) {
  switch (message.type) {
    case "joined": {
      setPhase("in");
      joined();
      state.me = message.peer_id;
      state.slotCount = message.slots;
      if (!message.admitted) notice(t("room.lobby"), "lobby");
      chatPlaceholder(message.admitted);
      showRecording(message.recording);
      if (message.audio_muted) setTrack("audio", false);
      if (message.video_muted) setTrack("video", false);
      // Without a microphone or camera, others see that person as muted, not as silent or black.
      const { localStream } = state;
      if (!localStream?.getAudioTracks().length && !message.audio_muted) send({ type: "mute", audio: true });
      if (!localStream?.getVideoTracks().length && !message.video_muted) send({ type: "mute", video: true });
      state.audioOnly = Boolean(message.audio_only);
      showLink();
      await startMedia();
      break;
    }
    case "participants":
      state.listed = message.participants;
      state.people = new Map(state.listed.map((p) => [p.peer_id, p]));
      if (message.caucus && message.in_caucus === false) notice(t("room.caucus_apart"), "caucus");
      else if (message.caucus) notice(t("room.caucus_on"), "caucus");
      else if (state.noticeKind === "caucus" || (state.noticeKind === "lobby" && state.people.get(state.me)?.admitted)) notice("");
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
      chatPlaceholder(true);
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
      else if (state.noticeKind === "info" && message.active) notice("");
      break;
    case "speaker":
      markSpeaker(message.peer_id);
      break;
    case "removed":
      finish(t(message.reason ? ENDED_BECAUSE[message.reason] || "room.link_ended"
        : message.revoked ? "room.removed" : "room.removed_for_now"));
      break;
    case "ended":
      finish(t("room.ended"));
      break;
    case "slots":
      state.slots = message.slots;
      renderTiles();
      break;
    case "chat":
      addChat(message);
      break;
    case "link":
      state.link = { downlink: message.downlink, uplink: message.uplink };
      showLink();
      break;
    case "server_busy": // (to hosts) the media server sheds video: nobody's network is to blame
      $("busy-notice").hidden = !message.busy;
      break;
    case "bandwidth":
      state.pausedVideo = new Set(message.paused || []);
      state.notShown = new Set(message.not_shown || []);
      if (message.audio_only) notice(t("room.audio_only"), "bandwidth");
      else if (state.pausedVideo.size) notice(t("room.fewer_videos"), "bandwidth");
      else if (state.noticeKind === "bandwidth") notice("");
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

$("enter").addEventListener("click", enterRoom);
openDevices();
