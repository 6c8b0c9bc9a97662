"""AuthServer's lab features on the simulated network: the held answer and the query log."""

from __future__ import annotations

import io
import json
from pathlib import Path

import dns.message
import dns.rcode
import pytest

from poisonproof.net.sim import Link, Simulation
from poisonproof.server.auth_server import AuthServer

ZONE = """$ORIGIN bank.example.
$TTL 300
@ SOA ns hostmaster 1 1800 900 604800 300
@ NS ns
ns A 10.53.0.3
www A 192.0.2.80
"""
SERVER = ("10.53.0.3", 53)
CLIENT = ("10.53.0.2", 33333)


def _exchange(
    tmp_path: Path, delay: float, log: io.StringIO | None
) -> tuple[float, dns.message.Message]:
    zone = tmp_path / "bank.zone"
    zone.write_text(ZONE)
    sim = Simulation(seed=1, default_link=Link(latency=0.01))

    async def main() -> tuple[float, dns.message.Message]:
        net = sim.network
        server = AuthServer(
            net, [f"bank.example.={zone}"], [SERVER], answer_delay=delay, query_log=log
        )
        await server.start()
        query = dns.message.make_query("wWw.BaNk.example.", "A", use_edns=0, payload=1232)
        query.id = 4242
        started = net.clock.monotonic()
        wire, _ = await net.udp_exchange(query.to_wire(), SERVER, timeout=5, source=CLIENT)
        elapsed = net.clock.monotonic() - started
        await server.stop(quiet=True)
        return elapsed, dns.message.from_wire(wire)

    result = sim.run(main())
    sim.close()
    return result


def test_answers_are_held_for_the_configured_delay(tmp_path: Path) -> None:
    prompt, reply = _exchange(tmp_path, 0.0, None)
    held, held_reply = _exchange(tmp_path, 0.25, None)
    assert reply.rcode() == held_reply.rcode() == dns.rcode.NOERROR
    assert prompt == pytest.approx(0.02, abs=0.005)  # two link latencies
    assert held == pytest.approx(0.27, abs=0.005)  # plus the held quarter second


def test_the_query_log_records_what_the_resolver_sent(tmp_path: Path) -> None:
    log = io.StringIO()
    _exchange(tmp_path, 0.0, log)
    (record,) = [json.loads(line) for line in log.getvalue().splitlines()]
    assert record["source"] == "10.53.0.2" and record["port"] == 33333
    assert record["id"] == 4242 and record["qname"] == "wWw.BaNk.example."
    assert record["edns"] == 0 and record["payload"] == 1232 and record["cookie"] is False


def test_a_negative_delay_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="delay"):
        _exchange(tmp_path, -1.0, None)


def test_the_query_log_does_not_parse_a_compression_bomb(tmp_path: Path) -> None:

    from poisonproof.net.base import Via
    from poisonproof.server.auth_server import AuthServer as Server
    from tests.resolver.test_abuse import bomb

    zone = tmp_path / "bank.zone"
    zone.write_text(ZONE)
    log = io.StringIO()
    server = Server(Simulation(seed=1).network, [f"bank.example.={zone}"], [SERVER], query_log=log)
    server._log_query(bomb(response=False), CLIENT, Via.UDP)  # dnspython: seconds of work
    (record,) = [json.loads(line) for line in log.getvalue().splitlines()]
    assert "too costly" in record["error"] and "qname" not in record
