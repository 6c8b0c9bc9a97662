"""Identical client questions in flight: one resolution, worked out in the first asker's
task; cancelling that task, or abandoning them all (simulated world)."""

from __future__ import annotations

import asyncio
import random

import dns.message
import dns.rcode

from poisonproof.lab.world import start_world
from poisonproof.net.base import Via
from poisonproof.net.sim import Link, Simulation
from poisonproof.resolver.defenses import preset
from poisonproof.resolver.frontend import Frontend, Question
from poisonproof.resolver.hints import load_root_hints
from poisonproof.resolver.iterator import Answer, Resolver, ResolverConfig
from poisonproof.resolver.outgoing import Entropy
from poisonproof.server.resolver_server import ResolverServer

RESOLVER = ("10.53.0.1", 53)
CLIENT = ("10.99.0.1", 40000)
NAME = "www.bank.example."


def ask_together(tmp_path, askers: int, cancel: str | None = None):
    """`askers` tasks resolving NAME at once; `cancel`: None, "first" (the first asker's
    task, once its resolution is on the wire) or "abandon" (`ResolverServer.abandon`).
    Returns (each task's answer or "cancelled", upstream queries sent, what is left)."""
    sim = Simulation(seed=3, default_link=Link(latency=0.015))

    async def main():
        net = sim.network
        world = await start_world(net, 53)
        hints = tmp_path / "hints"
        hints.write_text(world.root_hints_text())
        resolver = Resolver(
            clock=net.clock,
            hints=load_root_hints(hints),
            defenses=preset("default"),
            entropy=Entropy(random.Random(3)),
            config=ResolverConfig(query_localhost=True),
        )
        server = ResolverServer(net, Frontend(resolver, ("10.99.0.0/16",)), [RESOLVER])
        await server.start()
        wire = dns.message.make_query(NAME, "A").to_wire()
        questions = [server.frontend.receive(wire, CLIENT, Via.UDP) for _ in range(askers)]
        assert all(isinstance(q, Question) for q in questions)
        tasks = [asyncio.ensure_future(server.resolve(q)) for q in questions]  # type: ignore[arg-type]
        await asyncio.sleep(0.02)  # the first query is on its way to the root
        assert server.driver.sent >= 1
        if cancel == "first":
            tasks[0].cancel()
        elif cancel == "abandon":
            server.abandon()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        outcome = ["cancelled" if isinstance(d, asyncio.CancelledError) else d for d in done]
        left = (len(server._inflight), len(server._working))
        await server.stop(quiet=True)
        await world.stop()
        return outcome, server.driver.sent, left

    try:
        return sim.run(main())
    finally:
        sim.close()


def address(answer: object) -> str:
    assert isinstance(answer, Answer) and answer.rcode == dns.rcode.NOERROR
    return answer.answer[-1][0].address  # type: ignore[attr-defined]


def test_identical_questions_share_one_resolution(tmp_path):
    alone, sent_alone, _ = ask_together(tmp_path, 1)
    together, sent_together, left = ask_together(tmp_path, 3)
    assert [address(a) for a in together] == [address(alone[0])] * 3
    assert sent_together == sent_alone  # the two later askers sent nothing
    assert left == (0, 0)


def test_the_others_still_get_their_answer_when_the_first_asker_is_cancelled(tmp_path):
    outcome, _, left = ask_together(tmp_path, 3, cancel="first")
    assert outcome[0] == "cancelled"
    assert address(outcome[1]) == address(outcome[2]) == "192.0.2.80"
    assert left == (0, 0)


def test_abandon_cancels_the_resolution_and_everyone_waiting_for_it(tmp_path):
    outcome, _, left = ask_together(tmp_path, 3, cancel="abandon")
    assert outcome == ["cancelled"] * 3
    assert left == (0, 0)
