"""Internal messages between the service's agents (JSON on `hearth.credits` and `hearth.edges`)."""

from __future__ import annotations

from typing import Literal

import msgspec


class MemberCommand(msgspec.Struct, frozen=True, omit_defaults=True):
    """Work for one member, sent to the partition that owns the member's state.

    credit: the target's side of an interaction; decay: check the score at `t` (a scheduled
    tier drop); verdict: the collusion verdict of the graph agent (None clears it); erase: delete
    everything stored about the member (agents/erasure.py), in order with its other commands.
    """

    kind: Literal["credit", "decay", "verdict", "erase"]
    community: str
    member: str
    t: float
    id: str = ""
    action: str = ""
    counterpart: str | None = None
    verdict: tuple[int, float] | None = None

    def key(self) -> bytes:
        return f"{self.community}/{self.member}".encode()


class Edge(msgspec.Struct, frozen=True):
    """A credit-bearing interaction from `giver` to `receiver`, for the collusion graph.

    Edges are sent in batches: each message on `hearth.edges` is a JSON array of edges.
    """

    community: str
    giver: str
    receiver: str
    t: float
    id: str  # the event's id: edges may be sent twice after a crash


command_encoder = msgspec.json.Encoder()
command_decoder = msgspec.json.Decoder(MemberCommand)
edge_decoder = msgspec.json.Decoder(list[Edge])  # edges travel in batches
