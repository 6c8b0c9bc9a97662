"""The simulated network and its virtual-time loop."""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest

from poisonproof.net.base import ExchangeTimeout, Via
from poisonproof.net.sim import Link, Simulation
from poisonproof.net.virtual_time import SimulationStalled, run_virtual
from tests.conftest import require_tool

SERVER = ("10.0.0.53", 53)


def echo(data: bytes, peer, via: Via) -> bytes:
    return b"re:" + data


def test_virtual_time_jumps_and_stalls_are_reported():
    async def hour() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(3600)
        return loop.time() - start

    started = time.perf_counter()
    assert run_virtual(hour()) == 3600
    assert time.perf_counter() - started < 1.0

    async def forever() -> None:
        await asyncio.Event().wait()

    with pytest.raises(SimulationStalled):
        run_virtual(forever())


def test_latency_is_exact_and_timeouts_are_virtual():
    sim = Simulation(default_link=Link(latency=0.05))

    async def main():
        net = sim.network
        await net.serve_udp(SERVER, echo)
        loop = asyncio.get_running_loop()
        start = loop.time()
        data, sender = await net.udp_exchange(b"q", SERVER, timeout=1)
        rtt = loop.time() - start
        with pytest.raises(ExchangeTimeout):
            await net.udp_exchange(b"q", ("10.0.0.99", 53), timeout=2.5)
        return data, sender, rtt, loop.time() - start

    data, sender, rtt, total = sim.run(main())
    assert (data, sender) == (b"re:q", SERVER)
    assert rtt == pytest.approx(0.1)
    assert total == pytest.approx(2.6)
    assert sim.network.stats.unreachable == 1


def test_loss_and_bandwidth():
    sim = Simulation(seed=3)
    sim.network.set_link("10.0.0.1", "10.0.0.2", Link(latency=0.0, loss=0.5))
    sim.network.set_link("10.0.0.1", "10.0.0.3", Link(latency=0.01, bandwidth=10_000))
    arrivals: list[float] = []

    def count(data, peer, via):
        arrivals.append(asyncio.get_running_loop().time())
        return None

    async def main():
        net = sim.network
        await net.serve_udp(("10.0.0.2", 53), count)
        await net.serve_udp(("10.0.0.3", 53), count)
        for _ in range(1000):
            net.send(("10.0.0.1", 4000), ("10.0.0.2", 53), b"x")
        await asyncio.sleep(1)
        lossy = len(arrivals)
        arrivals.clear()
        for _ in range(5):
            net.send(("10.0.0.1", 4000), ("10.0.0.3", 53), b"y" * 972)  # 1000 bytes with headers
        await asyncio.sleep(1)
        return lossy

    lossy = sim.run(main())
    assert 420 < lossy < 580
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert gaps == pytest.approx([0.1] * 4)  # serialization at 10 kB/s
    assert arrivals[0] == pytest.approx(1.0 + 0.1 + 0.01, abs=1e-6)


def test_injected_datagrams_reach_a_waiting_query_through_its_filter():
    class OnlyFromServer:
        def __init__(self):
            self.rejected = []

        def check(self, data, sender):
            return None if sender == SERVER and data == b"forged" else "nope"

        def reject(self, reason):
            self.rejected.append(reason)

    sim = Simulation()
    flt = OnlyFromServer()

    async def main():
        net = sim.network
        source = ("10.0.0.1", 33333)
        net.inject(("6.6.6.6", 53), source, b"junk", origin="6.6.6.6", delay=0.001)
        net.inject(SERVER, source, b"forged", origin="6.6.6.6", delay=0.002)
        return await net.udp_exchange(b"q", SERVER, timeout=1, source=source, reply_filter=flt)

    assert sim.run(main()) == (b"forged", SERVER)
    assert flt.rejected == ["nope"]
    spoofed = [p for p in sim.network.packets if p.spoofed]
    assert len(spoofed) == 2 and sim.network.stats.injected == 2


def test_tcp_exchange_and_refusal():
    sim = Simulation(default_link=Link(latency=0.02))

    async def main():
        net = sim.network
        await net.serve_tcp(SERVER, echo)
        loop = asyncio.get_running_loop()
        start = loop.time()
        reply = await net.tcp_exchange(b"t", SERVER, timeout=1)
        elapsed = loop.time() - start
        with pytest.raises(ConnectionRefusedError):
            await net.tcp_exchange(b"t", ("10.0.0.9", 53), timeout=1)
        return reply, elapsed

    reply, elapsed = sim.run(main())
    assert reply == b"re:t" and elapsed == pytest.approx(0.08)  # handshake + exchange


def test_pcap_opens_in_tshark(tmp_path):
    import dns.message

    sim = Simulation()

    def dns_echo(data, peer, via):
        query = dns.message.from_wire(data)
        return dns.message.make_response(query).to_wire()

    async def main():
        net = sim.network
        await net.serve_udp(SERVER, dns_echo)
        await net.serve_tcp(SERVER, dns_echo)
        query = dns.message.make_query("www.bank.example", "A").to_wire()
        await net.udp_exchange(query, SERVER, timeout=1)
        await net.tcp_exchange(query, SERVER, timeout=1)

    sim.run(main())
    path = tmp_path / "trace.pcap"
    assert sim.network.write_pcap(path) == 4
    out = subprocess.run(
        [
            require_tool("tshark"),
            "-r",
            str(path),
            "-T",
            "fields",
            "-e",
            "dns.qry.name",
            "-e",
            "udp.checksum.status",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("www.bank.example") == 4
