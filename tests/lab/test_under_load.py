"""Under load and attack, on the simulated network (virtual time, seeded): a random-subdomain
("water torture") flood and a spoofed-reply flood, each while honest clients keep asking.

What must hold: the cache stays within its configured bound, the victim zone's servers
get no more than the per-zone fetch limit lets through, honest questions for other zones
are all answered; under the spoofed flood at the lab's full rate the `default` preset
answers >= 99.9% of honest questions correctly, is never poisoned, and raises the
unwanted-reply (spoofing) alarm."""

from __future__ import annotations

import asyncio
import random

import dns.name
import dns.rdatatype
import pytest

from poisonproof.lab.arena import (
    ATTACKER_IP,
    REAL_WWW,
    RESOLVER_IP,
    ArenaParams,
    ZoneFiles,
    bank_server_ip,
    build_arena,
)
from poisonproof.lab.attacks import AttackName, forger, poisoned
from poisonproof.lab.flood import Flood, GuessSpace
from poisonproof.lab.guesses import GuessSequence
from poisonproof.net.sim import Simulation
from poisonproof.resolver.defenses import EPHEMERAL_PORTS, preset
from poisonproof.resolver.fetchlimit import ZoneFetchLimiter

ARENA = ArenaParams(servers=1, window=0.1, ttl=300)
HONEST = [  # (name, type, what a right answer holds): other zones, and the victim's own
    ("a.nic.example", "A", "192.5.6.30"),
    ("ns.attacker.example", "A", ATTACKER_IP),
    ("intranet.corp.example", "A", "10.1.1.80"),
    ("mail.bank.example", "A", "192.0.2.25"),
    ("www.bank.example", "A", REAL_WWW),
]


@pytest.fixture(scope="module")
def zones():
    files = ZoneFiles(ARENA)
    yield files
    files.cleanup()


def right(reply, expected: str) -> bool:
    return reply is not None and any(
        r.address == expected
        for rrset in reply.answer
        if rrset.rdtype == dns.rdatatype.A
        for r in rrset
    )


async def honest_clients(arena, until: float, every: float, names=HONEST) -> list[bool]:
    """Ask the honest names in turn every `every` virtual seconds until `until`; each
    question is its own task (a slow answer does not hold up the next question)."""
    tasks = []
    i = 0
    while arena.now < until:
        name, rdtype, expected = names[i % len(names)]

        async def one(name=name, rdtype=rdtype, expected=expected) -> bool:
            return right(await arena.ask(name, rdtype), expected)

        tasks.append(asyncio.ensure_future(one()))
        i += 1
        await arena.sim_sleep(every)
    return list(await asyncio.gather(*tasks))


# -- water torture ----------------------------------------------------------------------------

FLOOD_QPS = 1_000
FLOOD_SECONDS = 2.0
CACHE_BOUND = 200
ZONE_FETCH_RATE = 100.0
"""Upstream queries per second per zone, configured low so the flood is 10x the limit."""


def test_random_subdomain_flood(zones):
    sim = Simulation(seed=11, trace=False)
    rng = random.Random(11)

    async def main() -> dict[str, object]:
        arena = await build_arena(sim, ARENA, preset("default"), zones, 11)
        resolver = arena.resolver
        resolver.cache.max_entries = CACHE_BOUND
        limiter = resolver.fetch_limit = ZoneFetchLimiter(ZONE_FETCH_RATE)
        bank = next(s for s in arena.servers if s.listen == [(bank_server_ip(0), 53)])
        try:
            for name, rdtype, _ in HONEST:
                await arena.ask(name, rdtype)  # warm: every zone's delegation is cached
            bank_before = bank.engine.stats["queries"]
            start = arena.now
            peak = 0

            async def flood() -> int:
                sent = 0
                while arena.now - start < FLOOD_SECONDS:
                    for _ in range(25):
                        arena.send_query(f"{rng.getrandbits(48):012x}.bank.example")
                        sent += 1
                    await arena.sim_sleep(25 / FLOOD_QPS)
                return sent

            async def watch() -> int:
                nonlocal peak
                while arena.now - start < FLOOD_SECONDS + 1:
                    peak = max(peak, len(resolver.cache))
                    await arena.sim_sleep(0.05)
                return peak

            flood_task = asyncio.ensure_future(flood())
            watch_task = asyncio.ensure_future(watch())
            honest = await honest_clients(arena, start + FLOOD_SECONDS, 0.02)
            sent = await flood_task
            await watch_task
            await arena.sim_sleep(2)
            honest += await honest_clients(arena, arena.now + 0.2, 0.02)  # and after it
            return {
                "sent": sent,
                "to_victim": bank.engine.stats["queries"] - bank_before,
                "seconds": arena.now - start,
                "peak": peak,
                "honest": honest,
                "limited": resolver.stats.get("zone_fetch_limited", 0),
                "rate": limiter.rate,
                "burst": limiter.burst,
                "frontend_cache": len(arena.frontend.answers._entries),
                "inflight": len(arena.resolver_server._inflight),
            }
        finally:
            await arena.stop()

    try:
        out = sim.run(main())
    finally:
        sim.close()
    print(out | {"honest": f"{sum(out['honest'])}/{len(out['honest'])}"})
    assert out["sent"] >= FLOOD_QPS * FLOOD_SECONDS * 0.95
    # memory: the cache never holds more than its bound, nothing else piles up
    assert 0 < out["peak"] <= CACHE_BOUND
    assert out["inflight"] == 0
    # the frontend's replay cache has its own bound (100,000); it holds only what was answered
    assert out["frontend_cache"] <= out["to_victim"] + len(HONEST)
    # the victim's servers: at most the zone's burst plus its rate for the time it ran
    assert out["to_victim"] <= out["burst"] + out["rate"] * out["seconds"]
    assert out["to_victim"] < out["sent"] / 2 and out["limited"] > 0
    # honest clients: every question answered right, the victim's cached name included
    assert len(out["honest"]) >= 90 and all(out["honest"])


def test_fetch_limit_off_lets_the_flood_through(zones):
    """The same flood with the limit switched off: the victim gets every query (so the
    test above measures the limit, not something else)."""
    sim = Simulation(seed=12, trace=False)
    rng = random.Random(12)

    async def main() -> tuple[int, int]:
        arena = await build_arena(sim, ARENA, preset("default"), zones, 12)
        arena.resolver.fetch_limit = ZoneFetchLimiter(rate=0)
        bank = next(s for s in arena.servers if s.listen == [(bank_server_ip(0), 53)])
        try:
            await arena.ask("www.bank.example")
            before = bank.engine.stats["queries"]
            for _ in range(500):
                arena.send_query(f"{rng.getrandbits(48):012x}.bank.example")
                await arena.sim_sleep(1 / FLOOD_QPS)
            await arena.sim_sleep(2)
            return 500, bank.engine.stats["queries"] - before
        finally:
            await arena.stop()

    try:
        sent, to_victim = sim.run(main())
    finally:
        sim.close()
    assert to_victim >= sent  # one upstream query per flood query (at least)


# -- a spoofed flood at the lab's full rate, against the default preset ---------------------------

SPOOF_RATE = 100_000.0
"""Forged replies per second: the lab's full rate (`poisonproof attack --rate` default)."""
SPOOF_PACKETS = 1_000_000


async def port_aware_flood(arena, rng: random.Random) -> tuple[int, int, int]:
    """Kaminsky's forged referrals at the full rate, from the worst-case attacker who learns
    the resolver's source port of each query (a SAD DNS side channel) and so puts every
    guess on it, guessing only the ID: (packets, attempts, poisoned checks that held)."""
    net = arena.sim.network
    window = arena.params.window
    packets = attempts = poisonings = 0
    while packets < SPOOF_PACKETS:
        attempts += 1
        qname = dns.name.from_text(f"x{rng.getrandbits(40):010x}.bank.example.")
        arena.send_query(qname.to_text())
        await arena.sim_sleep(2 * arena.params.attacker_latency + 0.001)
        ports = tuple(sorted(port for port, _ in net.waiting_queries(RESOLVER_IP)))
        space = GuessSpace(tuple(arena.victim_servers), ports or (EPHEMERAL_PORTS[0],))
        flood = Flood(
            net,
            RESOLVER_IP,
            space,
            GuessSequence.random(space.size, rng),
            forger(AttackName.KAMINSKY, qname),
            origin=ATTACKER_IP,
            rate=SPOOF_RATE,
            latency=arena.params.attacker_latency,
        )
        await flood.run(min(int(SPOOF_RATE * window), SPOOF_PACKETS - packets))
        packets += flood.stats.sent
        await arena.sim_sleep(2 * arena.params.attacker_latency + 0.001)
        poisonings += poisoned(arena)
    return packets, attempts, poisonings


def test_spoofed_flood_against_the_default_preset(zones):
    sim = Simulation(seed=21, trace=False)
    rng = random.Random(21)

    async def main() -> dict[str, object]:
        arena = await build_arena(sim, ARENA, preset("default"), zones, 21)
        try:
            await arena.ask("www.bank.example")
            start = arena.now
            attack = asyncio.ensure_future(port_aware_flood(arena, rng))
            honest: list[bool] = []
            while not attack.done():
                honest += await honest_clients(arena, arena.now + 1.0, 0.01)
            packets, attempts, poisonings = attack.result()
            after = await arena.victim_view()
            return {
                "packets": packets,
                "attempts": attempts,
                "poisonings": poisonings + poisoned(arena),
                "seconds": round(arena.now - start, 1),
                "honest": honest,
                "victim_sees": after,
                "stats": {
                    k: arena.resolver.stats.get(k, 0)
                    for k in (
                        "spoof_alarms",
                        "unwanted_replies",
                        "near_misses",
                        "case_mismatches",
                        "nearmiss_tcp_retries",
                    )
                },
            }
        finally:
            await arena.stop()

    try:
        out = sim.run(main())
    finally:
        sim.close()
    print(out | {"honest": f"{sum(out['honest'])}/{len(out['honest'])}"})
    assert out["packets"] == SPOOF_PACKETS
    assert out["poisonings"] == 0 and out["victim_sees"] == [REAL_WWW]
    honest = out["honest"]
    assert len(honest) >= 1_000
    assert sum(honest) / len(honest) >= 0.999
    assert out["stats"]["spoof_alarms"] >= 1  # the unwanted-reply alarm fired
    assert out["stats"]["unwanted_replies"] >= 10_000
