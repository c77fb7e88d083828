"""A network namespace joined to this machine by a veth pair, and a Chromium that runs inside
it: a participant on a network of its own (a phone's), for the network-change test and the
weak-link benchmark. Needs root and iproute2."""
from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

from tests.needs import CHROMIUM


def sh(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True)


@dataclasses.dataclass(frozen=True)
class Namespace:
    """The namespace `name`; this machine is `host_ip` on `host_if`, the namespace `ns_ip` on `ns_if`."""

    name: str
    host_if: str
    ns_if: str
    host_ip: str
    ns_ip: str

    def create(self) -> None:
        self.remove()
        sh("ip", "netns", "add", self.name)
        sh("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        sh("ip", "link", "set", self.ns_if, "netns", self.name)
        sh("ip", "addr", "add", f"{self.host_ip}/24", "dev", self.host_if)
        sh("ip", "link", "set", self.host_if, "up")
        self.run("ip", "addr", "add", f"{self.ns_ip}/24", "dev", self.ns_if)
        self.run("ip", "link", "set", self.ns_if, "up")
        self.run("ip", "link", "set", "lo", "up")

    def run(self, *command: str) -> None:
        """A command inside the namespace."""
        sh("ip", "netns", "exec", self.name, *command)

    def shape(self, kbps: int | None) -> None:
        """Limit what reaches the namespace to kbps (tbf, a 250 ms queue), or lift the limit."""
        subprocess.run(["tc", "qdisc", "del", "dev", self.host_if, "root"], capture_output=True)
        if kbps is not None:
            sh("tc", "qdisc", "add", "dev", self.host_if, "root", "tbf", "rate", f"{kbps}kbit", "burst", "6kb",
               "latency", "250ms")

    def remove(self) -> None:
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    def chromium(self, folder: Path) -> Path:
        """An executable that starts Debian's Chromium inside the namespace (for Playwright)."""
        wrapper = folder / f"chromium-in-{self.name}"
        wrapper.write_text(f"#!/bin/sh\nexec ip netns exec {self.name} {CHROMIUM} \"$@\"\n")
        wrapper.chmod(0o755)
        return wrapper
