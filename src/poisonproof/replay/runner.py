"""Running one scenario against our resolver on the simulated network.

Owns: building the resolver a scenario's config asks for (root hint from `stub-addr`,
QNAME minimisation, glue hardening, address families, forwarding), the scripted servers
(every address nobody else listens on is answered from the scenario's RANGE entries for
the current step), and walking the STEPs: QUERY, CHECK_ANSWER, TIME_PASSES, REPLY,
CHECK_OUT_QUERY. The result names the first step that failed and why.
Must never: open a socket (everything is simulated) or change the resolver's rules for
a scenario; only its configuration, as an operator would.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import dns.message
import dns.name
import dns.rrset

from poisonproof.net.base import Address, ExchangeTimeout, Via
from poisonproof.net.sim import Link, Simulation
from poisonproof.replay.match import build_query, build_reply, compare_answer, select_entry
from poisonproof.replay.rpl import Scenario, StepKind, parse_file
from poisonproof.resolver.anchors import TrustAnchors
from poisonproof.resolver.cache import Cache
from poisonproof.resolver.defenses import DEFAULT
from poisonproof.resolver.frontend import Frontend
from poisonproof.resolver.hints import RootHints
from poisonproof.resolver.iterator import Resolver, ResolverConfig
from poisonproof.resolver.outgoing import Entropy
from poisonproof.server.resolver_server import ResolverServer

RESOLVER: Address = ("127.127.127.127", 53)
CLIENT_HOST = "127.127.127.1"
ANSWER_WAIT = 60.0
"""Virtual seconds a CHECK_ANSWER waits for the resolver's reply."""
DEFAULT_EPOCH = 1_767_225_600.0


@dataclass(frozen=True)
class Outcome:
    scenario: str
    qmin: bool
    passed: bool
    step: int | None = None
    reason: str = ""
    seconds: float = 0.0

    @property
    def label(self) -> str:
        return f"qmin {'on' if self.qmin else 'off'}"


@dataclass
class _Run:
    scenario: Scenario
    step: int = 0
    unanswered: list[tuple[bytes, asyncio.Future[bytes | None]]] = field(default_factory=list)
    """Queries no RANGE answered, waiting for a REPLY step: (query, its reply to come)."""
    sent: list[tuple[bytes, Address]] = field(default_factory=list)


def qmin_settings(scenario: Scenario) -> list[bool]:
    """Deckard runs each scenario with QNAME minimisation on and off unless it pins it."""
    if scenario.config.get("query-minimization") is not None:
        return [scenario.config.query_minimization]
    return [True, False]


SCENARIO_UDP_PAYLOAD = 4096


def run_file(path: str | Path, seed: int = 0) -> list[Outcome]:
    scenario = parse_file(path)
    return [run_scenario(scenario, qmin, seed) for qmin in qmin_settings(scenario)]


def run_scenario(scenario: Scenario, qmin: bool, seed: int = 0) -> Outcome:
    name = Path(scenario.path).name
    started = time.perf_counter()
    config = scenario.config
    sim = Simulation(
        seed=seed,
        epoch=float(config.override_time or DEFAULT_EPOCH),
        default_link=Link(latency=0.001),
        trace=False,
    )
    try:
        step, reason = sim.run(_play(sim, scenario, qmin, seed))  # type: ignore[misc]
    except Exception as error:  # a broken scenario or a bug: reported, never fatal
        step, reason = None, f"error: {type(error).__name__}: {error}"
    finally:
        sim.close()
    return Outcome(name, qmin, reason == "", step, reason, round(time.perf_counter() - started, 4))


def _resolver(sim: Simulation, scenario: Scenario, qmin: bool, seed: int) -> Resolver:
    config = scenario.config
    stub = config.stub_addr or "193.0.14.129"
    hint_name = dns.name.from_text(config.stub_name or "k.root-servers.net.")
    hints = RootHints(
        dns.rrset.from_text(dns.name.root, 3_600_000, "IN", "NS", hint_name.to_text()),
        {hint_name: [stub.split("@")[0]]},
    )
    forwarders = tuple(
        (dns.name.root, ((address.split("@")[0], 53),)) for address in config.forward_addrs
    )
    anchors = TrustAnchors()
    anchors.add_text(config.trust_anchors, source=f"{scenario.path}: trust-anchor")
    for insecure in config.domain_insecure:
        anchors.add_insecure(insecure)
    defenses = dataclasses.replace(
        DEFAULT,
        qname_minimisation=qmin,
        bailiwick=config.harden_glue,
        cookies=False,
        dnssec=bool(anchors),
    )
    features = config.features
    cache = Cache(
        sim.network.clock,
        min_ttl=int(features.get("min_ttl", "0").split()[0]),
        max_ttl=int(features.get("max_ttl", "86400").split()[0]),
    )
    return Resolver(
        anchors=anchors,
        cache=cache,
        clock=sim.network.clock,
        hints=hints,
        defenses=defenses,
        entropy=Entropy(random.Random(seed)),
        config=ResolverConfig(
            query_localhost=True,
            ipv4=config.do_ip4,
            ipv6=config.do_ip6,
            forwarders=forwarders,
        ),
    )


async def _play(
    sim: Simulation, scenario: Scenario, qmin: bool, seed: int
) -> tuple[int | None, str]:
    net = sim.network
    run = _Run(scenario)

    def scripted(
        data: bytes, src: Address, dst: Address, via: Via
    ) -> bytes | None | asyncio.Future[bytes | None]:
        try:
            query = dns.message.from_wire(data)
        except Exception:
            return None
        run.sent.append((data, dst))
        chosen = scenario.select_range(run.step, dst[0])
        entry = None
        if chosen is not None:
            entry = select_entry(chosen.entries, query, data, tcp=via is Via.TCP)
        if entry is None:
            waiting: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
            run.unanswered.append((data, waiting))
            return waiting  # a later REPLY step may answer it
        return build_reply(entry, query)

    net.fallback = scripted
    resolver = _resolver(sim, scenario, qmin, seed)
    # the scenarios were written when resolvers answered UDP up to 4096 bytes
    frontend = Frontend(resolver, ("0.0.0.0/0", "::/0"), udp_payload=SCENARIO_UDP_PAYLOAD)
    server = ResolverServer(net, frontend, [RESOLVER])
    await server.start()
    pending: asyncio.Task[tuple[bytes, Address]] | None = None
    queries: list[asyncio.Task[tuple[bytes, Address]]] = []
    client_port = 40000
    try:
        for step in scenario.steps:
            kind = step.kind
            if kind is not StepKind.CHECK_ANSWER or pending is None:
                # Deckard answers a client query within its QUERY step: the resolver's
                # upstream queries for it see that step's ranges until the answer is in
                run.step = step.id
            if kind is StepKind.QUERY:
                assert step.entry is not None
                client_port = 40001 + (client_port - 40000) % 20000
                wire = build_query(step.entry, msg_id=step.id & 0xFFFF)
                pending = asyncio.ensure_future(
                    net.udp_exchange(
                        wire, RESOLVER, timeout=ANSWER_WAIT, source=(CLIENT_HOST, client_port)
                    )
                )
                queries.append(pending)
                await asyncio.sleep(0)
            elif kind is StepKind.CHECK_ANSWER:
                assert step.entry is not None
                if pending is None:
                    return step.id, "CHECK_ANSWER without a QUERY before it"
                try:
                    wire, _ = await pending
                except ExchangeTimeout:
                    return step.id, f"no answer within {ANSWER_WAIT:.0f}s"
                pending = None
                run.step = step.id
                reply = dns.message.from_wire(wire)
                mismatch = compare_answer(step.entry, reply, reply_wire=wire)
                if mismatch is not None:
                    return step.id, mismatch
            elif kind is StepKind.TIME_PASSES:
                await asyncio.sleep(step.elapse or 0)
            elif kind is StepKind.REPLY:
                assert step.entry is not None
                await asyncio.sleep(0.01)
                if not run.unanswered:
                    return step.id, "REPLY: the resolver sent no query to answer"
                data, waiting = run.unanswered.pop(0)
                if not waiting.done():
                    waiting.set_result(build_reply(step.entry, dns.message.from_wire(data)))
            elif kind is StepKind.CHECK_OUT_QUERY:
                assert step.entry is not None
                await asyncio.sleep(0.01)
                if not run.sent:
                    return step.id, "CHECK_OUT_QUERY: the resolver sent no query"
                data, _ = run.sent[-1]
                mismatch = compare_answer(step.entry, dns.message.from_wire(data))
                if mismatch is not None:
                    return step.id, f"outgoing query: {mismatch}"
        return None, ""
    finally:
        for _, waiting in run.unanswered:
            if not waiting.done():
                waiting.set_result(None)
        for query in queries:
            query.cancel()
        await asyncio.gather(*queries, return_exceptions=True)
        server.abandon()
        await server.stop(quiet=True)
