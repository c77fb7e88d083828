"""Benchmark: a party's Chromium whose link changes in the middle of a mediation, as a phone's
does: its downlink falls to 300, 200 and 100 kbit/s and comes back, its uplink falls to 300
kbit/s, it loses 5% of its packets at random; each phase timed from the moment the link changes.

The server as shipped (`tiaojie serve`, its media workers one per core) on this machine; the host (1920-wide window)
and an expert in Chromium on the machine's own network; the party in a Chromium on a phone-sized
page (390x844, device pixel ratio 3: the large simulcast layer is wanted) that runs in a network
namespace joined by a veth pair. Downlink: a tbf qdisc on the host side (250 ms queue); uplink:
one on the namespace side; loss: nftables rules dropping 5% of the packets at random both ways
(this kernel has no netem, so no delay or jitter can be added; a machine without `nft` skips
that phase). Every second the script reads WebRTC statistics from the pages, and prints per
phase, for the party: each remote video's frame rate and width, seconds frozen, the share of each
voice concealed (lost or late), the first 5 s apart (frozen, concealed), the time to adapt (the
first second from which every video the server sends plays at 8 fps or more, one it holds back
on a link too weak for it shown so on its tile, and every voice has under 3% concealed for 3 s
in a row) and, when the link comes back, the time until it gets the host's
large layer again; for the others: what the host receives of the expert and of the party (width,
frame rate), and of the party's voice. The fake cameras run at 30 fps (`--camera-fps`), as a
phone's; it prints what each page sends per simulcast layer (width, frame rate). On 2 cores,
three Chromium encoders share the CPU: with 30-fps cameras their small layers come out at 7-8 fps
(15 at 20 fps), which bounds what a party on a weak link can see.

Needs root for the namespace and the qdiscs (ip, tc); it says so and stops otherwise.

Each run is done twice, quiet and then with `stress-ng --cpu N` beside the server (`--cpu-load`,
default 2: 0 leaves the loaded run out), each on a fresh server and browsers, and the figures are
printed side by side at the end with loaded / quiet. Both runs also count the seconds in which
the host's or the expert's page (their links are perfect) showed a slow-network notice of its own,
or in which any page showed either of them as on a slow network.

    .venv/bin/python bench/weak_link_browser.py [--phase-seconds 20] [--only down300,up300] [--camera-fps 30] [--cpu-load 2]
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.async_api import Browser, Page, async_playwright  # noqa: E402

from bench.shipped import STAFF, book_session, cpu_hog, node  # noqa: E402
from tests.needs import CHROMIUM  # noqa: E402
from tests.web.browser import DESKTOP_PAGE, FLAGS, KEEP_PEER_CONNECTIONS, PHONE_PAGE, until  # noqa: E402
from tests.web.netns import Namespace  # noqa: E402

NS, HOST_IF, NS_IF = "tj-weak", "tj-host", "tj-weak0"
HOST_IP, NS_IP = "10.77.0.1", "10.77.0.2"
SETTLE_S = 10


def camera_flags(fps: int) -> list[str]:
    """Chromium's flags with its fake camera at this frame rate (by default it runs at 20)."""
    return [flag for flag in FLAGS if not flag.startswith("--use-fake-device")] + [
        f"--use-fake-device-for-media-stream=fps={fps}"]

# Per person shown on the page (by the name on their tile): what arrives of their video and
# voice; and what the page itself sends (bytes per simulcast layer, its uplink estimate).
SAMPLE = """async () => {
  const pc = window.peerConnections[window.peerConnections.length - 1];
  const out = { people: {}, layers: {}, sending: {}, available: null,
                notice: document.getElementById("link-notice").hidden ? "" : document.getElementById("link-text").textContent };
  if (!pc) return out;
  const transceivers = pc.getTransceivers();
  const byTrack = {};
  const stats = await pc.getStats();
  for (const r of stats.values()) {
    if (r.type === "inbound-rtp" && r.trackIdentifier) byTrack[r.trackIdentifier] = r;
    if (r.type === "outbound-rtp" && r.kind === "video" && r.rid) {
      out.layers[r.rid] = r.bytesSent;
      out.sending[r.rid] = `${r.frameWidth || 0}w ${r.framesPerSecond || 0} fps (${r.qualityLimitationReason || "none"})`;
    }
    if (r.type === "candidate-pair" && r.nominated && r.state === "succeeded") out.available = r.availableOutgoingBitrate || null;
  }
  for (const tile of document.querySelectorAll("#grid .tile[data-slot]")) {
    const n = Number(tile.dataset.slot);
    const name = tile.querySelector("figcaption").textContent.split(" · ")[0].split("（")[0];
    const video = byTrack[transceivers[4 + 2 * n].receiver.track.id] || {};
    const audio = byTrack[transceivers[3 + 2 * n].receiver.track.id] || {};
    const shown = tile.querySelector("video");
    const caption = tile.querySelector("figcaption").textContent;
    out.people[name] = { frames: video.framesDecoded || 0, width: video.frameWidth || 0,
                         tile: `${Math.round(shown.clientWidth * devicePixelRatio)}x${Math.round(shown.clientHeight * devicePixelRatio)}`,
                         frozen: video.totalFreezesDuration || 0, held: tile.classList.contains("held"),
                         slow: caption.includes("对方网络较慢"),
                         concealed: audio.concealedSamples || 0,
                         samples: audio.totalSamplesReceived || 0 };
  }
  return out;
}"""

PARTY = Namespace(NS, HOST_IF, NS_IF, HOST_IP, NS_IP)
HOST_NAME, EXPERT_NAME, PARTY_NAME = STAFF, "王律师", "张建军"
ADAPTED_FPS, ADAPTED_CONCEALED, ADAPTED_RUN_S = 8.0, 0.03, 3


@dataclasses.dataclass(frozen=True)
class Phase:
    """The party's link for a while: limits in kbit/s (None: unlimited) and a share lost both ways."""

    name: str
    down_kbps: int | None = None
    up_kbps: int | None = None
    loss: float = 0.0


PHASES = [Phase("down300", down_kbps=300), Phase("down200", down_kbps=200), Phase("down100", down_kbps=100),
          Phase("up300", up_kbps=300), Phase("loss5", loss=0.05)]
UNLIMITED = Phase("unlimited")


def set_link(phase: Phase) -> None:
    """Apply a phase's link to the party's namespace (replacing the last one)."""
    PARTY.shape(phase.down_kbps)
    subprocess.run(["ip", "netns", "exec", NS, "tc", "qdisc", "del", "dev", NS_IF, "root"], capture_output=True)
    if phase.up_kbps is not None:
        PARTY.run("tc", "qdisc", "add", "dev", NS_IF, "root", "tbf", "rate", f"{phase.up_kbps}kbit", "burst", "6kb",
                  "latency", "250ms")
    for inside in (False, True) if shutil.which("nft") else ():  # (without nft the loss phase is left out)
        prefix = ["ip", "netns", "exec", NS] if inside else []
        subprocess.run([*prefix, "nft", "delete", "table", "ip", "tjbench"], capture_output=True)
        if phase.loss:
            device = NS_IF if inside else HOST_IF
            rules = (f"table ip tjbench {{\n chain out {{\n  type filter hook postrouting priority 0;\n"
                     f"  oifname \"{device}\" numgen random mod 1000 < {int(phase.loss * 1000)} drop\n }}\n}}\n")
            subprocess.run([*prefix, "nft", "-f", "-"], input=rules.encode(), check=True, capture_output=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def link_of(session: dict[str, Any], kind: str, port: str, host: str) -> str:
    url = [p for p in session["participants"] if p["kind"] == kind][0]["join_url"]
    return f"http://{host}:{port}/join/{url.rsplit('/', 1)[1]}"


async def open_page(browser: Browser, url: str, device: dict[str, Any]) -> Page:
    context = await browser.new_context(locale="zh-CN", **device)
    await context.add_init_script(KEEP_PEER_CONNECTIONS)
    page = await context.new_page()
    await page.goto(url)
    await until(page, "document.querySelector('#preview').videoWidth > 0", 30)
    await page.click("#enter")
    return page


Samples = list[dict[str, Any]]


def per_second(samples: Samples, who: str, start: int, end: int) -> list[tuple[float, int, float, float, bool]]:
    """Each second's (frame rate, width, seconds frozen, share of the voice concealed, whether the
    server holds the video back: the page says so on the tile) of one person as seen."""
    out = []
    for before, after in zip(samples[start:end], samples[start + 1:end + 1]):
        b, a = before["people"].get(who), after["people"].get(who)
        if not a or not b:
            out.append((0.0, 0, 1.0, 1.0, False))
            continue
        samples_got = a["samples"] - b["samples"]
        out.append((float(a["frames"] - b["frames"]), a["width"], a["frozen"] - b["frozen"],
                    (a["concealed"] - b["concealed"]) / samples_got if samples_got > 0 else 1.0, a["held"]))
    return out


def seen(samples: Samples, who: str, start: int, end: int) -> dict[str, float]:
    """What one person looked and sounded like over samples start..end."""
    b, a = samples[start]["people"].get(who), samples[end]["people"].get(who)
    seconds = end - start
    if not a or not b:
        return {"fps": 0.0, "width": 0, "frozen": float(seconds), "concealed": 1.0, "held": False}
    got = a["samples"] - b["samples"]
    return {"fps": (a["frames"] - b["frames"]) / seconds, "width": a["width"], "frozen": a["frozen"] - b["frozen"],
            "concealed": (a["concealed"] - b["concealed"]) / got if got > 0 else 1.0, "held": a["held"]}


def adapted_after(seconds: list[list[tuple[float, int, float, float, bool]]]) -> float | None:
    """The first second from which every person's video that the server sends plays at
    ADAPTED_FPS or more (a video it holds back, the page showing so, counts as adapted) with
    under ADAPTED_CONCEALED of their voice concealed, ADAPTED_RUN_S seconds in a row."""
    run = 0
    for n in range(len(seconds[0])):
        good = all((person[n][0] >= ADAPTED_FPS or person[n][4]) and person[n][3] < ADAPTED_CONCEALED for person in seconds)
        run = run + 1 if good else 0
        if run == ADAPTED_RUN_S:
            return float(n + 1 - ADAPTED_RUN_S)
    return None


def large_again_after(samples: Samples, start: int, end: int, width: int) -> float | None:
    """Seconds until the party gets the host's video at this width again."""
    for n in range(start, end + 1):
        person = samples[n]["party"]["people"].get(HOST_NAME)
        if person and person["width"] >= width:
            return float(n - start)
    return None


async def sample(pages: dict[str, Page]) -> dict[str, Any]:
    return {kind: await page.evaluate(SAMPLE) for kind, page in pages.items()}


async def measure(pages: dict[str, Page], seconds: int) -> list[dict[str, Any]]:
    """A sample of every page now and then once a second."""
    out = []
    started = asyncio.get_running_loop().time()
    for n in range(seconds + 1):
        out.append(await sample(pages))
        await asyncio.sleep(max(0.0, started + n + 1 - asyncio.get_running_loop().time()))
    return out


def show_phase(phase: Phase, during: Samples, after: Samples, base_width: int) -> tuple[list[str], dict[str, float | None]]:
    """A phase's lines, and its figures for the quiet/loaded table."""
    party = [{"people": s["party"]["people"]} for s in during]
    host = [{"people": s["host"]["people"]} for s in during]
    end = len(during) - 1
    others = [name for name in (HOST_NAME, EXPERT_NAME) if name in during[-1]["party"]["people"]]
    views = {name: seen(party, name, 0, end) for name in others}
    first5 = {name: seen(party, name, 0, min(5, end)) for name in others}
    then = {name: seen(party, name, min(5, end - 1), end) for name in others}  # (the issue's "then")
    adapt = adapted_after([per_second(party, name, 0, end) for name in others]) if others else None
    recovered = large_again_after(after, 0, len(after) - 1, base_width)
    of_expert, of_party = seen(host, EXPERT_NAME, 0, end), seen(host, PARTY_NAME, 0, end)
    host_first = [per_second(host, PARTY_NAME, 0, end)]
    party_watchable = adapted_after(host_first)
    each = ", ".join(f"{name} {v['fps']:.1f} fps {v['width']}w" + (" (then held back)" if v["held"] else "")
                     for name, v in views.items())
    frozen = max((v["frozen"] for v in views.values()), default=float(end))
    concealed = max((v["concealed"] for v in views.values()), default=1.0)
    lines = [
        f"{phase.name:8s} party sees: {each}; frozen {frozen:.1f} s "
        f"(first 5 s {max(v['frozen'] for v in first5.values()):.1f}); voices concealed "
        f"{concealed:.1%} (first 5 s {max(v['concealed'] for v in first5.values()):.1%}); "
        f"adapted after {_s(adapt)}; host's large layer back {_s(recovered)} after the link returned",
        f"{'':8s} after the first 5 s: " + ", ".join(f"{name} {v['fps']:.1f} fps" for name, v in then.items())
        + f"; voices concealed {max(v['concealed'] for v in then.values()):.1%}",
        f"{'':8s} host sees: expert {of_expert['width']}w {of_expert['fps']:.1f} fps; party {of_party['width']}w "
        f"{of_party['fps']:.1f} fps, frozen {of_party['frozen']:.1f} s, its voice concealed {of_party['concealed']:.1%}, "
        f"party watchable (>= {ADAPTED_FPS:.0f} fps, voice < 3%) after {_s(party_watchable)}",
        f"{'':8s} sending at its end: " + "; ".join(f"{who} {during[-1][who]['sending']}" for who in during[-1]),
    ]
    host_view = views.get(HOST_NAME, {"fps": 0.0, "width": 0})
    figures: dict[str, float | None] = {
        "party sees host, fps": host_view["fps"], "party sees host, width": host_view["width"],
        "party: frozen s": frozen, "party: voices concealed %": 100 * concealed, "party: adapted after s": adapt,
        "host's large layer back after s": recovered, "host sees expert, width": of_expert["width"],
        "host sees expert, fps": of_expert["fps"], "host sees party, fps": of_party["fps"]}
    return lines, figures


def false_notices(samples: Samples, start: int = 0) -> tuple[int, int, list[str]]:
    """Seconds in which the host's or the expert's page (both on perfect links) showed its own
    slow-network notice, those in which any page showed the host or the expert as on a slow
    network (对方网络较慢 on their tile), and when (the second from `start`, the page, what it said)."""
    own = shown = 0
    when = []
    for n, s in enumerate(samples):
        told = [f"{who}: {s[who]['notice'][:12]}" for who in ("host", "expert") if s[who]["notice"]]
        seen = [f"{page} sees {name} slow" for page, got in s.items() for name, person in got["people"].items()
                if name in (HOST_NAME, EXPERT_NAME) and person.get("slow")]
        own, shown = own + bool(told), shown + bool(seen)
        if told or seen:
            when.append(f"{start + n}s {'; '.join(told + seen)}")
    return own, shown, when


def _runs(when: list[str]) -> list[str]:
    """The notices' seconds, those in a row with the same text as one line ("12-17s host: ...")."""
    lines: list[list[Any]] = []
    for entry in when:
        second, text = entry.split("s ", 1)
        if lines and lines[-1][2] == text and lines[-1][1] == int(second) - 1:
            lines[-1][1] = int(second)
        else:
            lines.append([int(second), int(second), text])
    return [f"{a}-{b}s {text}" if a != b else f"{a}s {text}" for a, b, text in lines]


def _s(value: float | None) -> str:
    return "never" if value is None else f"{value:.0f} s"


async def run(phases: list[Phase], seconds: int, recovery_s: int, camera_fps: int, cpu_load: int) -> dict[str, Any]:
    """One run on a fresh server (with stress-ng --cpu cpu_load beside it when > 0): its printed
    lines and its figures per phase."""
    out: dict[str, Any] = {"lines": [], "figures": {}}

    def say(line: str) -> None:
        out["lines"].append(line)
        print(line, flush=True)

    with tempfile.TemporaryDirectory() as folder, cpu_hog(cpu_load):
        PARTY.create()
        wrapper = PARTY.chromium(Path(folder))
        port = free_port()
        try:
            with node(Path(folder), port, base_url=f"http://{HOST_IP}:{port}", host="0.0.0.0") as (url, _):
                session = book_session(url, EXPERT_NAME, [PARTY_NAME, "李秀兰"])
                async with async_playwright() as playwright:
                    office = await playwright.chromium.launch(executable_path=CHROMIUM, args=camera_flags(camera_fps))
                    phone = await playwright.chromium.launch(
                        executable_path=str(wrapper), args=camera_flags(camera_fps) + [f"--unsafely-treat-insecure-origin-as-secure=http://{HOST_IP}:{port}"])
                    pages = {
                        "host": await open_page(office, link_of(session, "host", str(port), "127.0.0.1"),
                                                {"viewport": {"width": 1920, "height": 1080}, "device_scale_factor": 1}),
                        "expert": await open_page(office, link_of(session, "expert", str(port), "127.0.0.1"), DESKTOP_PAGE),
                        "party": await open_page(phone, link_of(session, "party", str(port), HOST_IP), PHONE_PAGE),
                    }
                    await pages["host"].click(f"#people button[aria-label='准入: {PARTY_NAME}']", timeout=30000)
                    everything = await measure(pages, SETTLE_S)
                    base = await measure(pages, 5)
                    everything += base
                    width = base[-1]["party"]["people"].get(HOST_NAME, {}).get("width", 0)
                    starts: list[str] = []
                    out["figures"]["unlimited"] = {
                        "party sees host, width": width,
                        "host sees expert, width": base[-1]["host"]["people"].get(EXPERT_NAME, {}).get("width", 0),
                        "host sees expert, fps": seen([{"people": s["host"]["people"]} for s in base], EXPERT_NAME, 0, 5)["fps"]}
                    say(f"settled on an unlimited link: the party gets the host's video {width} wide; cameras at "
                        f"{camera_fps} fps; each phase {seconds} s, then {recovery_s} s unlimited")
                    # (what each sends per simulcast layer, and what limits it: a busy machine's
                    # encoders scale their layers down, whatever the links carry)
                    say("sending: " + "; ".join(f"{who} {base[-1][who]['sending']}" for who in pages))
                    say("shown (device pixels): " + "; ".join(
                        f"{who}: " + ", ".join(f"{name} {p['tile']}" for name, p in base[-1][who]["people"].items())
                        for who in pages))
                    for phase in phases:
                        if phase.loss and not shutil.which("nft"):
                            say(f"{phase.name:8s} skipped: no nft (nftables) on this machine")
                            continue
                        starts.append(f"{phase.name} {len(everything)}s")
                        set_link(phase)
                        during = await measure(pages, seconds)
                        set_link(UNLIMITED)
                        after = await measure(pages, recovery_s)
                        everything += during + after
                        lines, out["figures"][phase.name] = show_phase(phase, during, after, width)
                        for line in lines:
                            say(line)
                    own, shown, when = false_notices(everything)
                    out["figures"]["unlimited"].update({"false notices: own page, s": own, "false notices: tiles, s": shown})
                    say(f"host and expert (perfect links) over {len(everything)} s: their own slow-network notice "
                        f"shown {own} s; shown to anyone as on a slow network {shown} s")
                    if when:
                        say(f"  (the seconds counted from the first sample; the phases began at: {', '.join(starts)})")
                    for line in _runs(when):
                        say(f"  {line}")
                    await office.close()
                    await phone.close()
        finally:
            PARTY.remove()
    return out


def side_by_side(quiet: dict[str, Any], loaded: dict[str, Any], cpu_load: int) -> None:
    """The two runs' figures in one table, with loaded / quiet where both are numbers."""
    print(f"\n{'figure':<46} {'quiet':>9} {f'--cpu {cpu_load}':>9} {'ratio':>7}")
    for phase, figures in quiet["figures"].items():
        print(phase)
        for name, value in figures.items():
            other = loaded["figures"].get(phase, {}).get(name)
            ratio = f"x{other / value:.2f}" if isinstance(value, int | float) and isinstance(other, int | float) and value else ""
            print(f"  {name:<44} {_f(value):>9} {_f(other):>9} {ratio:>7}")


def _f(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase-seconds", type=int, default=20)
    parser.add_argument("--recovery-seconds", type=int, default=25)
    parser.add_argument("--only", default=",".join(p.name for p in PHASES), help="phases, comma-separated")
    parser.add_argument("--camera-fps", type=int, default=30, help="the fake cameras' frame rate (a phone's: 30)")
    parser.add_argument("--cpu-load", type=int, default=2,
                        help="stress-ng --cpu workers beside the server in the second run (0: the quiet run alone)")
    args = parser.parse_args()
    if os.geteuid() != 0 or not shutil.which("tc") or not shutil.which("ip"):
        sys.exit("this benchmark needs root, ip and tc (a network namespace and tbf qdiscs)")
    chosen = [p for p in PHASES if p.name in args.only.split(",")]
    print("quiet:", flush=True)
    quiet = asyncio.run(run(chosen, args.phase_seconds, args.recovery_seconds, args.camera_fps, 0))
    if args.cpu_load:
        print(f"\nwith stress-ng --cpu {args.cpu_load} beside the server:", flush=True)
        loaded = asyncio.run(run(chosen, args.phase_seconds, args.recovery_seconds, args.camera_fps, args.cpu_load))
        side_by_side(quiet, loaded, args.cpu_load)


if __name__ == "__main__":
    main()
