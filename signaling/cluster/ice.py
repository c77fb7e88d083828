"""ICE servers for browsers: STUN, and TURN with time-limited credentials.

The TURN credentials follow the TURN REST convention that coturn implements with
`use-auth-secret` / `static-auth-secret`: the user name is "<expiry unix time>:<user>" and the
password is base64(HMAC-SHA1(secret, user name)), so the server never stores TURN passwords and a
leaked credential stops working at its expiry.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any


def turn_credentials(secret: str, user: str, now: float, ttl_s: int) -> tuple[str, str]:
    """A (username, credential) pair valid for ttl_s seconds from now."""
    username = f"{int(now) + ttl_s}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers(
    stun_urls: tuple[str, ...], turn_urls: tuple[str, ...], turn_secret: str, user: str, now: float, ttl_s: int,
) -> list[dict[str, Any]]:
    """The iceServers list for RTCPeerConnection, as JSON."""
    servers: list[dict[str, Any]] = []
    if stun_urls:
        servers.append({"urls": list(stun_urls)})
    if turn_urls and turn_secret:
        username, credential = turn_credentials(turn_secret, user, now, ttl_s)
        servers.append({"urls": list(turn_urls), "username": username, "credential": credential})
    return servers
