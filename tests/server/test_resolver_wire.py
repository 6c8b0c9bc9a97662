"""What our resolver's upstream queries look like on the wire, captured by a probe server.

A probe authoritative server for the root zone records the source port, ID and query-name
bytes of every query a real `poisonproof serve` process sends it, and answers through
our authoritative engine. Each client query for a fresh top-level name costs exactly one
upstream query (NXDOMAIN at the root), so N client queries give N samples.
"""

from __future__ import annotations

import math
import socket
import threading
from collections import Counter
from pathlib import Path

import dns.message
import dns.query
import pytest

from poisonproof.auth.engine import AuthEngine
from poisonproof.auth.zones import load_zones
from poisonproof.net.base import Via
from poisonproof.net.real import SystemClock
from tests.conftest import free_port

SAMPLES = 1000
PROBE_IP = "127.0.0.77"


class Probe:
    """A root server on loopback that records every datagram it answers."""

    def __init__(self, zone: Path) -> None:
        self.engine = AuthEngine(load_zones([str(zone)]), SystemClock())
        self.port = free_port(PROBE_IP)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((PROBE_IP, self.port))
        self.sock.settimeout(0.2)
        self.seen: list[tuple[int, int, bytes]] = []
        self.sources: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            self.seen.append((peer[1], query.id, query.question[0].name.to_wire()))
            self.sources.add(peer[0])
            reply = self.engine.handle(data, peer, Via.UDP)
            if reply is not None:
                self.sock.sendto(reply, peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def probe(tmp_path):
    zone = tmp_path / "root.zone"
    zone.write_text(
        f"$ORIGIN .\n$TTL 3600\n@ SOA a.probe. host.probe. 1 2 3 4 60\n@ NS a.probe.\n"
        f"a.probe. A {PROBE_IP}\n"
    )
    probe = Probe(zone)
    yield probe
    probe.close()


def start_resolver(start_resolver_process, probe, tmp_path, *extra: str):
    hints = tmp_path / "hints"
    hints.write_text(f". 3600 NS a.probe.\na.probe. 3600 A {PROBE_IP}\n")
    return start_resolver_process(
        "--root-hints",
        str(hints),
        "--upstream-port",
        str(probe.port),
        "--query-localhost",
        "on",
        *extra,
    )


def ask_fresh_names(resolver, count: int) -> None:
    for i in range(count):
        query = dns.message.make_query(f"probe{i}x.", "A")
        reply = dns.query.udp(query, resolver.host, port=resolver.port, timeout=5)
        assert reply.rcode() == 3  # NXDOMAIN from the probe root


def collision_entropy(values: list[int]) -> float:
    """Rényi-2 entropy estimated from colliding pairs (a lower bound when none collide)."""
    pairs = len(values) * (len(values) - 1) / 2
    collisions = sum(c * (c - 1) / 2 for c in Counter(values).values())
    return math.log2(pairs / max(collisions, 1.0))


def spread_entropy(values: list[int]) -> float:
    """DNS-OARC porttest style: log2 of the uniform range with this standard deviation."""
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return math.log2(max(std * math.sqrt(12), 1.0))


def test_default_preset_randomizes_port_id_and_case(start_resolver_process, probe, tmp_path):
    resolver = start_resolver(start_resolver_process, probe, tmp_path, "--defenses", "default")
    ask_fresh_names(resolver, SAMPLES)
    samples = [s for s in probe.seen if s[2] != b"\x00"]  # leave out the priming query
    assert len(samples) >= SAMPLES
    ports = [port for port, _, _ in samples]
    ids = [txid for _, txid, _ in samples]
    print(
        f"ports: H2 {collision_entropy(ports):.2f} bits, spread {spread_entropy(ports):.2f} bits;"
        f" ids: H2 {collision_entropy(ids):.2f} bits"
    )
    assert collision_entropy(ports) >= 14 and spread_entropy(ports) >= 14
    assert collision_entropy(ids) >= 14
    # IDs uniform over 16 bits: chi-square over 16 buckets of the top 4 bits (df=15, p>0.001)
    buckets = Counter(txid >> 12 for txid in ids)
    expected = len(ids) / 16
    chi2 = sum((buckets.get(b, 0) - expected) ** 2 / expected for b in range(16))
    assert chi2 < 37.7
    letters = [c for _, _, name in samples for c in name if chr(c).isalpha()]
    upper = sum(1 for c in letters if chr(c).isupper()) / len(letters)
    assert 0.45 < upper < 0.55
    mixed = sum(1 for _, _, n in samples if n != n.lower() and n != n.upper())
    assert mixed / len(samples) > 0.9


def test_2008_preset_uses_one_port_and_plain_case(start_resolver_process, probe, tmp_path):
    resolver = start_resolver(start_resolver_process, probe, tmp_path, "--defenses", "2008")
    ask_fresh_names(resolver, 200)
    ports = {port for port, _, _ in probe.seen}
    assert len(ports) == 1
    assert all(name == name.lower() for _, _, name in probe.seen)


def test_port_pool_of_16(start_resolver_process, probe, tmp_path):
    resolver = start_resolver(start_resolver_process, probe, tmp_path, "--port-pool", "16")
    ask_fresh_names(resolver, 300)
    assert len({port for port, _, _ in probe.seen}) == 16


def burst(resolver, name: str, count: int) -> None:
    """`count` identical queries, all sent before any answer is read."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        for _ in range(count):
            sock.sendto(dns.message.make_query(name, "A").to_wire(), (resolver.host, resolver.port))
        for _ in range(count):
            sock.recv(4096)


def test_identical_questions_in_flight_are_merged(start_resolver_process, probe, tmp_path):
    merged = start_resolver(start_resolver_process, probe, tmp_path, "--defenses", "default")
    burst(merged, "birthday1x.", 50)
    assert sum(1 for _, _, n in probe.seen if n.lower() == b"\x0abirthday1x\x00") == 1


def test_without_merging_a_burst_is_a_birthday_attack_surface(
    start_resolver_process, probe, tmp_path
):
    unmerged = start_resolver(start_resolver_process, probe, tmp_path, "--defenses", "no-merge")
    burst(unmerged, "birthday2x.", 50)
    assert sum(1 for _, _, n in probe.seen if n.lower() == b"\x0abirthday2x\x00") > 10


def test_outgoing_address_is_the_source_of_upstream_queries(
    start_resolver_process, probe, tmp_path
):
    resolver = start_resolver(
        start_resolver_process, probe, tmp_path, "--outgoing-address", "127.0.0.9"
    )
    ask_fresh_names(resolver, 3)
    assert probe.sources == {"127.0.0.9"}
