"""The raw-socket spoofer: where it may send, and what really arrives on loopback."""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Iterator

import dns.message
import dns.name
import dns.rrset
import pytest

from poisonproof.lab.spoofer import (
    FloodStats,
    ReplyTemplate,
    Spoofer,
    UnsafeTarget,
    check_target,
)
from tests.conftest import REQUIRE_TOOLS

FORGED = ("127.0.0.53", 53)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)


# --- where forged traffic may go (no privileges needed) ---


@pytest.mark.parametrize("address", ["8.8.8.8", "192.168.1.1", "10.53.0.2", "2001:db8::1"])
def test_check_target_refuses_everything_but_loopback(address: str) -> None:
    with pytest.raises(UnsafeTarget, match=address.replace(".", r"\.")) as info:
        check_target(address)
    assert "loopback" in str(info.value)


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.53", "127.255.0.9", "::1"])
def test_check_target_accepts_loopback(address: str) -> None:
    check_target(address)


def test_check_target_asks_allowed_for_anything_else() -> None:
    asked: list[str] = []

    def owns(address: str) -> bool:
        asked.append(address)
        return address == "10.53.0.2"

    check_target("10.53.0.2", owns)
    with pytest.raises(UnsafeTarget, match="8.8.8.8"):
        check_target("8.8.8.8", owns)
    assert asked == ["10.53.0.2", "8.8.8.8"]


@pytest.mark.parametrize("address", ["localhost", "example.com", "", "127.0.0.1:53"])
def test_check_target_refuses_names_and_junk(address: str) -> None:
    with pytest.raises(UnsafeTarget):
        check_target(address, lambda _: True)


def test_spoofer_refuses_unsafe_target_or_source_before_opening_a_socket() -> None:
    with pytest.raises(UnsafeTarget, match="8.8.8.8"):
        Spoofer(FORGED, "8.8.8.8")
    # ICMP errors and answers would go to the forged source: it is checked too.
    with pytest.raises(UnsafeTarget, match="192.0.2.1"):
        Spoofer(("192.0.2.1", 53), "127.0.0.1")
    with pytest.raises(ValueError, match="IPv4"):
        Spoofer(FORGED, "::1")


def make_template(name: str = "www.bank.example.") -> ReplyTemplate:
    query = dns.message.make_query(name, "A")
    reply = dns.message.make_response(query)
    reply.answer.append(dns.rrset.from_text(name, 300, "IN", "A", "6.6.6.6"))
    return ReplyTemplate(reply.to_wire())


def test_template_validation() -> None:
    template = make_template()
    assert template.name_length == len(dns.name.from_text("www.bank.example.").to_wire())
    with pytest.raises(ValueError):
        ReplyTemplate(b"\0" * 11)
    with pytest.raises(ValueError):
        ReplyTemplate(template.payload, id_offset=len(template.payload) - 1)
    with pytest.raises(ValueError):
        ReplyTemplate(template.payload[:20])  # the question name is cut short


# --- real packets on loopback (need CAP_NET_RAW) ---


@pytest.fixture
def spoofer() -> Iterator[Spoofer]:
    try:
        spoofer = Spoofer(FORGED, "127.0.0.1")
    except PermissionError as error:
        message = f"raw sockets are not permitted here ({error}); run as root"
        if REQUIRE_TOOLS:
            pytest.fail(message)
        pytest.skip(message)
    with spoofer:
        yield spoofer


class Receiver:
    """A UDP socket on 127.0.0.1 with a large buffer, drained by a thread."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.3)
        self.port: int = self.sock.getsockname()[1]
        self.got: list[tuple[bytes, tuple[str, int]]] = []
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while True:
            try:
                self.got.append(self.sock.recvfrom(4096))
            except TimeoutError:
                return

    def wait(self, count: int) -> list[tuple[bytes, tuple[str, int]]]:
        self._thread.join(10)
        self.sock.close()
        assert len(self.got) == count
        return self.got


def test_flood_delivers_forged_replies(spoofer: Spoofer) -> None:
    receiver = Receiver()
    ids = random.Random(5452).sample(range(65536), 5000)
    name = dns.name.from_text("x7f3.bank.example.")
    template = make_template("abcd.bank.example.")
    stats = spoofer.flood(
        template,
        [receiver.port],
        ids,
        qname=name.to_wire(),
        max_packets=10_000,
        max_seconds=5,
    )
    assert stats.packets == 5000  # the IDs ran out first
    assert stats.errors == 0
    assert stats.syscalls == 5  # 5000 packets in batches of 1024
    got = receiver.wait(5000)
    assert {source for _, source in got} == {FORGED}
    assert sorted(int.from_bytes(data[:2], "big") for data, _ in got) == sorted(ids)
    for data, _ in got[:50]:
        message = dns.message.from_wire(data)
        assert message.question[0].name == name
        assert message.answer[0].name == name  # compressed: points at the question
        assert message.answer[0][0].address == "6.6.6.6"
        assert len(data) == len(template.payload)


def test_ports_cycle_fastest(spoofer: Spoofer) -> None:
    first, second = Receiver(), Receiver()
    stats = spoofer.flood(
        make_template(), [first.port, second.port], [7, 8, 9], max_packets=100, max_seconds=5
    )
    assert stats.packets == 6
    for receiver in (first, second):
        assert [int.from_bytes(d[:2], "big") for d, _ in receiver.wait(3)] == [7, 8, 9]


def test_sendto_fallback_sends_the_same(spoofer: Spoofer) -> None:
    receiver = Receiver()
    with Spoofer(FORGED, "127.0.0.1", use_sendmmsg=False, batch=64) as slow:
        assert not slow.fast
        stats = slow.flood(
            make_template(), [receiver.port], range(200), max_packets=300, max_seconds=5
        )
    assert (stats.packets, stats.syscalls, stats.errors) == (200, 200, 0)
    got = receiver.wait(200)
    assert [int.from_bytes(d[:2], "big") for d, _ in got] == list(range(200))
    assert {source for _, source in got} == {FORGED}


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_packet_limit_stops_an_endless_flood(spoofer: Spoofer) -> None:
    stats = spoofer.flood(
        make_template(), [closed_port()], iter(int, 1), max_packets=2500, max_seconds=5
    )
    assert (stats.packets, stats.syscalls, stats.errors) == (2500, 3, 0)


def test_time_limit_stops_an_endless_flood(spoofer: Spoofer) -> None:
    stats = spoofer.flood(
        make_template(), [closed_port()], iter(int, 1), max_packets=10**12, max_seconds=0.3
    )
    assert 0.3 <= stats.seconds < 1.0
    assert 0 < stats.packets < 10**12
    check_stats(stats, spoofer.batch)


def check_stats(stats: FloodStats, batch: int) -> None:
    assert stats.rate == pytest.approx(stats.packets / stats.seconds)
    assert stats.errors == 0
    assert -(-stats.packets // batch) == stats.syscalls


def test_flood_arguments_are_checked(spoofer: Spoofer) -> None:
    template = make_template()
    with pytest.raises(ValueError, match="same-length"):
        spoofer.flood(template, [53], [1], qname=b"\x01a\x00", max_packets=1, max_seconds=1)
    with pytest.raises(ValueError, match="0..65535"):
        spoofer.flood(template, [closed_port()], [70000], max_packets=1, max_seconds=1)
    with pytest.raises(ValueError, match="finite"):
        spoofer.flood(template, [53], [1], max_packets=1, max_seconds=float("inf"))
    with pytest.raises(ValueError, match="ports"):
        spoofer.flood(template, [], [1], max_packets=1, max_seconds=1)
    spoofer.close()
    with pytest.raises(ValueError, match="closed"):
        spoofer.flood(template, [53], [1], max_packets=1, max_seconds=1)
