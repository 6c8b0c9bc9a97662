"""A storm of malformed packets never kills the server, and it keeps answering correctly."""

from __future__ import annotations

import random
import socket
import struct

import dns.message
import dns.rcode
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonproof.auth.engine import AuthEngine
from poisonproof.auth.zones import load_zones
from poisonproof.net.base import Via
from poisonproof.net.real import SystemClock

STORM_SIZE = 100_000
VALID = [
    dns.message.make_query(name, rdtype, use_edns=edns).to_wire()
    for name, rdtype, edns in [
        ("www.bank.example", "A", -1),
        ("x.cdn.bank.example", "A", 0),
        ("bank.example", "MX", 0),
        ("nope.bank.example", "TXT", -1),
        ("portal.bank.example", "A", 0),
    ]
]


def malformed(rng: random.Random) -> bytes:
    """One hostile packet: random bytes, a truncated or mutated valid query, or a crafted trap."""
    base = rng.choice(VALID)
    kind = rng.randrange(6)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 600))
    if kind == 1:
        return base[: rng.randrange(0, len(base))]
    if kind == 2:
        packet = bytearray(base)
        for _ in range(rng.randrange(1, 6)):
            packet[rng.randrange(len(packet))] = rng.randrange(256)
        return bytes(packet)
    if kind == 3:  # absurd section counts
        counts = struct.pack("!4H", *(rng.choice([0, 1, 2, 255, 65535]) for _ in range(4)))
        return base[:4] + counts + base[12:]
    if kind == 4:  # a compression pointer to itself: a label loop
        return base[:12] + b"\xc0\x0c" + b"\x00\x01\x00\x01"
    return base + rng.randbytes(rng.randrange(1, 40))  # trailing junk


def test_engine_never_raises_and_replies_are_well_formed(zone_dir):
    engine = AuthEngine(load_zones([str(zone_dir / "bank.example.zone")]), SystemClock())
    rng = random.Random(2008)
    for _ in range(20_000):
        packet = malformed(rng)
        reply = engine.handle(packet, ("192.0.2.1", 1), Via.UDP)
        if reply is not None:
            assert reply[:2] == packet[:2] and reply[2] & 0x80  # same ID, QR set
    assert engine.stats["servfail_internal"] == 0
    assert engine.stats["formerr"] > 0


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=700))
def test_any_bytes_give_a_reply_or_nothing(data):
    engine = _ENGINE
    reply = engine.handle(data, ("192.0.2.1", 1), Via.UDP)
    if reply is not None:
        assert len(reply) >= 12 and reply[:2] == data[:2] and reply[2] & 0x80


_ENGINE: AuthEngine


def setup_module() -> None:
    global _ENGINE
    from poisonproof.demo import ZONE_DIR

    _ENGINE = AuthEngine(load_zones([str(ZONE_DIR / "bank.example.zone")]), SystemClock())


def ask(sock: socket.socket, address, name: str) -> dns.message.Message:
    """Ask until answered: the storm may fill the server's socket buffer and drop a query."""
    message = dns.message.make_query(name, "A")
    query = message.to_wire()
    for _ in range(10):
        sock.sendto(query, address)
        try:
            while True:
                data = sock.recv(65535)
                # the reply to a junk packet may carry the same ID: the question must match
                if data[:2] != query[:2] or len(data) <= 12:
                    continue
                try:
                    reply = dns.message.from_wire(data)
                except Exception:
                    continue
                if reply.question == message.question:
                    return reply
        except TimeoutError:
            continue
    raise AssertionError(f"{name}: no answer after 10 tries")


def test_storm_of_100k_malformed_packets_over_udp(bank_server):
    rng = random.Random(53)
    address = (bank_server.host, bank_server.port)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        for sent in range(STORM_SIZE):
            sock.sendto(malformed(rng), address)
            if sent % 100 == 99:  # pace the storm and check the answers stay right
                reply = ask(sock, address, "www.bank.example")
                assert reply.answer[0][0].address == "192.0.2.80"
        assert bank_server.proc.poll() is None, bank_server.log
        reply = ask(sock, address, "nope.bank.example")
        assert reply.rcode() == dns.rcode.NXDOMAIN
    assert "Traceback" not in bank_server.log
