"""Who may send as an MN through the gateway: the park's networks, one live connection per MN, a new source noted."""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from schemas.registry import Network

# A logger sends real-time data every 30-60 s (docs/reference/hj212.md): a connection of its MN
# silent for two minutes has lost its logger (a 4G link that changed address, a reboot whose old
# socket the network never closed), and a new connection may take the MN over. A forger can
# only take over an MN whose logger has fallen silent, and the takeover is recorded.
TAKEOVER_SILENCE = 120.0
# The last source address remembered per MN (a bound on memory; a registry has fewer loggers).
SOURCES_REMEMBERED = 100_000


class Refusal(StrEnum):
    """Why the gateway refused a frame; the ingest keeps it as a dead letter (refused_by_gateway)."""

    NETWORK_NOT_ALLOWED = "network_not_allowed"
    MN_CONNECTED_ELSEWHERE = "mn_connected_elsewhere"


@dataclass(eq=False)
class Peer:
    """One TCP connection: its address, when it last sent, and how to close it."""

    address: str
    close: Callable[[], None]
    last_frame_at: float = 0.0
    mns: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Admission:
    """The answer for one frame: refused with a reason, or admitted (noting a changed source)."""

    refused: Refusal | None = None
    message: str = ""
    previous_source: str | None = None  # set when the MN now sends from another address


def _host(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # a dual-stack listener sees IPv4 loggers as ::ffff:a.b.c.d
    return ip


def canonical_address(address: str) -> str:
    """One spelling per host: an IPv4 logger seen by a dual-stack listener as ::ffff:a.b.c.d is a.b.c.d."""
    host = _host(address)
    return str(host) if host is not None else address


class Access:
    """The gateway's per-MN rules and the MN → connection bindings of this process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.networks: dict[str, tuple[Network, ...]] = {}  # MN → allowed networks; absent: any
        self._live: dict[str, Peer] = {}
        self._sources: OrderedDict[str, str] = OrderedDict()

    def admit(self, mn: str, peer: Peer) -> Admission:
        """Decide on a frame `peer` sent as `mn`; binds the MN to the peer when admitted."""
        now = self._clock()
        allowed = self.networks.get(mn)
        if allowed is not None:  # () is a park whose networks could not be read: none allowed
            host = _host(peer.address)
            if host is None or not any(host in net for net in allowed):
                return Admission(
                    Refusal.NETWORK_NOT_ALLOWED,
                    f"MN {mn} sent from {peer.address}, outside its park's networks "
                    f"({', '.join(str(n) for n in allowed)})",
                )
        live = self._live.get(mn)
        if live is not None and live is not peer and live.address != peer.address:
            # From the same address, a second connection is the same logger (one that connects
            # per upload, or a reconnect before the old socket timed out): both may send.
            if now - live.last_frame_at < TAKEOVER_SILENCE:
                return Admission(
                    Refusal.MN_CONNECTED_ELSEWHERE,
                    f"MN {mn} sent from {peer.address} while connected from {live.address}",
                )
            live.close()  # the logger came back from a new address; the old connection is dead
        self._live[mn] = peer
        peer.mns.add(mn)
        peer.last_frame_at = now
        previous = self._sources.get(mn)
        self._sources[mn] = peer.address
        self._sources.move_to_end(mn)
        while len(self._sources) > SOURCES_REMEMBERED:
            self._sources.popitem(last=False)
        return Admission(previous_source=previous if previous not in (None, peer.address) else None)

    def release(self, peer: Peer) -> None:
        """The connection closed: its MNs are free."""
        for mn in peer.mns:
            if self._live.get(mn) is peer:
                del self._live[mn]
