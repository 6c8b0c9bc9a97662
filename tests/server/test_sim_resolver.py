"""The unchanged resolver and authoritative servers on the simulated network."""

from __future__ import annotations

import random

import dns.message
import dns.rcode

from poisonproof.lab.world import start_world
from poisonproof.net.sim import Link, Simulation
from poisonproof.resolver.defenses import preset
from poisonproof.resolver.frontend import Frontend
from poisonproof.resolver.hints import load_root_hints
from poisonproof.resolver.iterator import Resolver, ResolverConfig
from poisonproof.resolver.outgoing import Entropy
from poisonproof.server.resolver_server import ResolverServer

RESOLVER = ("10.53.0.1", 53)
CLIENT = ("10.99.0.1", 40000)
QUESTIONS = [
    ("www.bank.example", "A"),
    ("portal.bank.example", "A"),
    ("europe.shop.com", "AAAA"),
    ("nothere.bank.example", "A"),
    ("www.glueless.org", "A"),
    ("www.bank.example", "A"),
]


def run_world(seed: int, tmp_path, defenses: str = "default"):
    sim = Simulation(seed=seed, default_link=Link(latency=0.015, jitter=0.003))

    async def main():
        net = sim.network
        world = await start_world(net, 53)
        hints = tmp_path / f"hints{seed}"
        hints.write_text(world.root_hints_text())
        resolver = Resolver(
            clock=net.clock,
            hints=load_root_hints(hints),
            defenses=preset(defenses),
            entropy=Entropy(random.Random(seed)),
            config=ResolverConfig(query_localhost=True),
        )
        server = ResolverServer(net, Frontend(resolver, ("10.99.0.0/16",)), [RESOLVER])
        await server.start()
        answers = []
        for index, (name, rdtype) in enumerate(QUESTIONS):
            query = dns.message.make_query(name, rdtype)
            query.id = index  # the client's IDs are part of the trace too
            wire, _ = await net.udp_exchange(query.to_wire(), RESOLVER, timeout=10, source=CLIENT)
            answers.append(dns.message.from_wire(wire))
        await server.stop(quiet=True)
        await world.stop()
        return answers

    answers = sim.run(main())
    sim.close()
    return sim, answers


def test_resolver_answers_through_the_simulated_world(tmp_path):
    sim, answers = run_world(1, tmp_path)
    rcodes = [a.rcode() for a in answers]
    assert rcodes == [0, 0, 0, dns.rcode.NXDOMAIN, 0, 0]
    assert answers[0].answer[0][0].address == "192.0.2.80"
    assert answers[2].answer[-1][0].address == "2001:db8:e0::211"
    assert answers[5].answer[0].ttl <= answers[0].answer[0].ttl  # from the cache
    assert sim.loop.time() < 30  # a few virtual seconds


def test_same_seed_same_trace_other_seed_other_trace(tmp_path):
    first, _ = run_world(5, tmp_path)
    again, _ = run_world(5, tmp_path)
    other, _ = run_world(6, tmp_path)
    trace = [(p.time, p.src, p.dst, p.data) for p in first.network.packets]
    assert trace == [(p.time, p.src, p.dst, p.data) for p in again.network.packets]
    assert trace != [(p.time, p.src, p.dst, p.data) for p in other.network.packets]


def test_trace_saved_as_pcap(tmp_path):
    sim, _ = run_world(2, tmp_path)
    path = tmp_path / "world.pcap"
    count = sim.network.write_pcap(path)
    assert count == len(sim.network.packets) > 20
    assert path.read_bytes()[:4] == bytes.fromhex("d4c3b2a1")  # pcap magic, little-endian
