"""The resolver's UDP cache-hit fast path stays off dnspython (CI guard, no timing).

A `ResolverServer` runs in this process on a real loopback UDP socket, resolving from the
lab world. Once its cache is warm, many cache-hit queries (new IDs, mixed-case names) are
sent in bursts while dnspython's parser and renderer are wrapped with counters: every
reply must be right (ID, question case, answer) and the counters must stay at zero.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from poisonproof.net.real import RealNetwork
from poisonproof.net.udp_batch import BatchedUdpService
from poisonproof.server.resolver_server import ResolverServer
from poisonproof.server.settings import Settings
from poisonproof.wire import fast_parse, plain_render

NAMES = [
    ("mail.bank.example.", "A", dns.rcode.NOERROR),
    ("api.bank.example.", "AAAA", dns.rcode.NOERROR),
    ("bank.example.", "MX", dns.rcode.NOERROR),
    ("basket.shop.com.", "A", dns.rcode.NOERROR),
    ("sports.news.org.", "AAAA", dns.rcode.NOERROR),
    ("nosuch.news.org.", "A", dns.rcode.NXDOMAIN),
]
BURSTS = 40
BURST = 50  # queries in flight at once: the listener reads them in batches


def random_case(name: str, rng: random.Random) -> str:
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in name)


@contextmanager
def counting(calls: dict[str, int]) -> Iterator[None]:
    """Wrap the message parsers and renderers (ours and dnspython's) and the response
    builder with counters."""
    originals: list[tuple[Any, str, Any]] = [
        (fast_parse, "from_wire", fast_parse.from_wire),  # ours, in front of dnspython's
        (plain_render, "render_plain", plain_render.render_plain),  # ours, beside it
        (dns.message, "from_wire", dns.message.from_wire),
        (dns.message, "make_response", dns.message.make_response),
        (dns.message.Message, "to_wire", dns.message.Message.to_wire),
    ]

    def wrap(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            calls[name] = calls.get(name, 0) + 1
            return real(*args, **kwargs)

        return counted

    for owner, name, real in originals:
        setattr(owner, name, wrap(name, real))
    try:
        yield
    finally:
        for owner, name, real in originals:
            setattr(owner, name, real)


def exchange_burst(port: int, queries: list[bytes]) -> list[bytes]:
    """Send every query at once from one socket, then read as many replies."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        for query in queries:
            sock.sendto(query, ("127.0.0.1", port))
        return [sock.recvfrom(4096)[0] for _ in queries]


@pytest.fixture
def settings(world_thread, tmp_path) -> Settings:
    return Settings(
        listen=["127.0.0.1:0"],
        root_hints=str(world_thread.hints_file(tmp_path)),
        query_localhost=True,
        upstream_port=world_thread.port,
    )


def test_cache_hits_over_udp_never_touch_dnspython(settings: Settings) -> None:
    rng = random.Random(8)

    async def main() -> tuple[int, int, list[tuple[dns.message.Message, bytes]], dict]:
        network = RealNetwork()
        server = ResolverServer(network, settings.build(network.clock), settings.listen_addresses())
        await server.start()
        try:
            udp = server.services[0]
            assert isinstance(udp, BatchedUdpService)
            port = server.addresses[0][1]
            expected = {}
            for qname, qtype, rcode in NAMES:  # resolve, then a first cache hit
                for _ in range(2):
                    wire = dns.message.make_query(qname, qtype).to_wire()
                    (reply,) = await asyncio.to_thread(exchange_burst, port, [wire])
                    parsed = dns.message.from_wire(reply)
                    assert parsed.rcode() == rcode, (qname, qtype)
                expected[(qname, qtype)] = parsed
            hits_before = server.frontend.stats.get("cache_hits", 0)
            exchanges: list[tuple[dns.message.Message, bytes]] = []
            for _ in range(BURSTS):
                burst = []
                for query_id in rng.sample(range(65536), BURST):
                    qname, qtype, _ = rng.choice(NAMES)
                    query = dns.message.make_query(random_case(qname, rng), qtype)
                    query.id = query_id
                    burst.append(((qname, qtype), query, query.to_wire()))
                calls: dict[str, int] = {}
                with counting(calls):
                    replies = await asyncio.to_thread(exchange_burst, port, [b[2] for b in burst])
                assert calls == {}, f"the fast path parsed or rendered a message: {calls}"
                by_id = {int.from_bytes(r[:2], "big"): r for r in replies}
                exchanges += [(query, by_id[query.id]) for _, query, _ in burst]
                assert all(key in expected for key, _, _ in burst)
            hits = server.frontend.stats.get("cache_hits", 0) - hits_before
            calls = {}
            unusual = dns.message.make_query("mail.bank.example.", "A", use_edns=0).to_wire()
            with counting(calls):  # the counters see the full path: a query it must parse
                await asyncio.to_thread(exchange_burst, port, [unusual])
            rendered = calls.get("to_wire", 0) + calls.get("render_plain", 0)
            assert calls.get("from_wire", 0) >= 1 and rendered >= 1, calls
            return hits, udp.datagrams, exchanges, expected
        finally:
            await server.stop(quiet=True)

    hits, datagrams, exchanges, expected = asyncio.run(main())
    assert hits == BURSTS * BURST
    assert datagrams >= BURSTS * BURST
    for query, reply_wire in exchanges:
        reply = dns.message.from_wire(reply_wire)
        assert reply.id == query.id
        name_wire = query.question[0].name.to_wire()
        assert reply_wire[12 : 12 + len(name_wire)] == name_wire  # the client's case, exactly
        key = (
            query.question[0].name.to_text().lower(),
            dns.rdatatype.to_text(query.question[0].rdtype),
        )
        want = expected[key]
        assert reply.rcode() == want.rcode()
        assert [r.to_rdataset() for r in reply.answer] == [r.to_rdataset() for r in want.answer]
        assert [r.name for r in reply.authority] == [r.name for r in want.authority]
        assert all(r.ttl <= w.ttl for r, w in zip(reply.answer, want.answer, strict=True))
