"""Signaling and media, in three parts, each importing only those below it:

- `signaling.session`: one participant's WebSocket (the route's handler);
- `signaling.cluster`: processes and nodes: the hub in this process or the media workers,
  placement of rooms on nodes, ICE servers;
- `signaling.room`: the room application (membership, lobby, caucus, moderation, messages);
- `signaling.media`: the media engine (aiortc peers, forwarding, congestion control), which
  knows nothing of mediation; the room speaks to it through `signaling.media.router`.
"""
