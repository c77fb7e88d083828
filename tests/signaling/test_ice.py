"""ICE server configuration and TURN REST credentials."""
from __future__ import annotations

import base64
import hashlib
import hmac

from signaling.cluster.ice import ice_servers, turn_credentials


def test_turn_rest_credentials_match_coturn_convention() -> None:
    username, credential = turn_credentials("s3cret", "p12", now=1_800_000_000, ttl_s=3600)
    assert username == "1800003600:p12"
    expected = base64.b64encode(hmac.new(b"s3cret", b"1800003600:p12", hashlib.sha1).digest()).decode()
    assert credential == expected


def test_ice_servers_list() -> None:
    assert ice_servers((), (), "", "p1", 0, 60) == []
    servers = ice_servers(("stun:turn.example.cn:3478",), ("turn:turn.example.cn:3478?transport=udp",), "k", "p1", 100, 60)
    assert servers[0] == {"urls": ["stun:turn.example.cn:3478"]}
    assert servers[1]["urls"] == ["turn:turn.example.cn:3478?transport=udp"] and servers[1]["username"] == "160:p1"
    assert ice_servers((), ("turn:x",), "", "p1", 0, 60) == []  # no secret, no TURN
