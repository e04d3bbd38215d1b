"""The gateway's access rules, without sockets: networks per park, one source per MN, takeover after silence."""

from __future__ import annotations

import pytest

from ingest.hj212 import access
from ingest.hj212.access import Access, Peer, Refusal
from schemas.registry import parse_networks


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def peer(address: str, closed: list[str]) -> Peer:
    return Peer(address=address, close=lambda: closed.append(address))


def test_a_parks_networks_admit_their_addresses_only() -> None:
    gate = Access(Clock())
    nets = parse_networks(["10.20.0.0/16", "192.0.2.7"])
    gate.networks = {f"MN{i}": nets for i in range(6)}
    closed: list[str] = []
    assert gate.admit("MN0", peer("10.20.3.4", closed)).refused is None
    assert gate.admit("MN1", peer("::ffff:10.20.9.9", closed)).refused is None, "IPv4 seen by a dual-stack listener"
    assert gate.admit("MN2", peer("192.0.2.7", closed)).refused is None
    refused = gate.admit("MN3", peer("10.21.0.1", closed))
    assert refused.refused is Refusal.NETWORK_NOT_ALLOWED and "10.21.0.1" in refused.message
    assert gate.admit("MN4", peer("", closed)).refused is Refusal.NETWORK_NOT_ALLOWED
    assert gate.admit("OTHER", peer("203.0.113.1", closed)).refused is None, "no networks set: any"
    gate.networks["MN5"] = ()
    assert gate.admit("MN5", peer("10.20.3.4", closed)).refused is Refusal.NETWORK_NOT_ALLOWED, "unusable: none"


def test_addresses_are_compared_canonically() -> None:
    assert access.canonical_address("::ffff:10.0.0.1") == "10.0.0.1"
    assert access.canonical_address("2001:DB8::1") == "2001:db8::1"
    assert access.canonical_address("not an address") == "not an address"


def test_one_source_per_mn_until_it_falls_silent() -> None:
    clock = Clock()
    gate = Access(clock)
    closed: list[str] = []
    station, forger, same_host = peer("10.0.0.1", closed), peer("10.0.0.66", closed), peer("10.0.0.1", closed)
    assert gate.admit("MN1", station) == access.Admission()
    clock.now += access.TAKEOVER_SILENCE - 1
    refused = gate.admit("MN1", forger)
    assert refused.refused is Refusal.MN_CONNECTED_ELSEWHERE and "10.0.0.1" in refused.message
    assert gate.admit("MN1", same_host).refused is None, "a second connection of the same host is the same logger"
    assert gate.admit("MN1", station).refused is None and closed == []

    clock.now += access.TAKEOVER_SILENCE
    took = gate.admit("MN1", forger)
    assert took.refused is None and took.previous_source == "10.0.0.1", "silent long enough: taken over, noted"
    assert closed == ["10.0.0.1"], "the silent connection is closed"
    assert gate.admit("MN1", forger).previous_source is None, "noted once"


def test_a_closed_connection_frees_its_mns() -> None:
    gate = Access(Clock())
    closed: list[str] = []
    first = peer("10.0.0.1", closed)
    gate.admit("MN1", first)
    gate.admit("MN2", first)
    gate.release(first)
    moved = gate.admit("MN1", peer("10.0.0.2", closed))
    assert moved.refused is None and moved.previous_source == "10.0.0.1" and closed == []


def test_remembered_sources_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(access, "SOURCES_REMEMBERED", 3)
    gate = Access(Clock())
    for i in range(10):
        p = peer(f"10.0.0.{i}", [])
        gate.admit(f"MN{i}", p)
        gate.release(p)
    assert list(gate._sources) == ["MN7", "MN8", "MN9"]


def test_bad_networks_are_named() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33' is not an IP network"):
        parse_networks(["10.0.0.0/8", "10.0.0.0/33"])
