"""One trial told as a timeline a student can follow.

Owns: replaying a trial with the packet trace on and turning it into lines: who asked whom
for what (port, ID, the 0x20 spelling), when forged replies landed and how many, which
one matched and why, what the cache then held, what the honest client got; against
defenses, which check refused the forged replies (counts per reason), and in a signed
arena what DNSSEC validation refused (forged data found bogus, SERVFAIL to clients).
Must never: change the trial; it observes the same seed's run.
"""

from __future__ import annotations

import random

import dns.message
import dns.name
import dns.rdatatype

from poisonproof.lab.arena import ATTACKER_IP, CLIENT_IP, RESOLVER_IP, ZoneFiles, build_arena
from poisonproof.lab.attacks import AttackName, dnssec_refusals, run_attack
from poisonproof.lab.trials import Setting
from poisonproof.net.sim import Simulation

MAX_LINES = 60


def _describe(data: bytes) -> str:
    try:
        message = dns.message.from_wire(data)
    except Exception:
        return f"{len(data)} bytes (not DNS)"
    question = message.question[0] if len(message.question) else None
    what = "?" if question is None else f"{question.name} {dns.rdatatype.to_text(question.rdtype)}"
    if not message.flags & 0x8000:
        return f"query id={message.id} {what}"
    parts = [f"reply id={message.id} {what} rcode={message.rcode()}"]
    for section in ("answer", "authority", "additional"):
        records = getattr(message, section)
        if records:
            parts.append(
                f"{section}: "
                + "; ".join(
                    f"{r.name} {dns.rdatatype.to_text(r.rdtype)} {' '.join(x.to_text() for x in r)}"
                    for r in records
                )
            )
    return " | ".join(parts)


def explain(setting: Setting, seed: int) -> list[str]:
    """The timeline of trial `seed` of `setting` (same outcome as the measured trial)."""
    sim = Simulation(seed=seed, trace=True)
    zones = ZoneFiles(setting.arena)
    rng = random.Random(seed * 7919 + 17)
    lines: list[str] = []

    async def main() -> None:
        arena = await build_arena(sim, setting.arena, setting.defenses_value(), zones, seed)
        if setting.arena.signed:
            validating = "validates" if arena.resolver.validating else "does NOT validate"
            lines.append(
                f"DNSSEC: zones {setting.arena.dnssec_label} (the attacker's never); "
                f"the resolver {validating} from the root trust anchor"
            )
        await arena.ask("www.bank.example")
        warm = len(sim.network.packets)
        lines.append(
            f"t=0.000 warm-up: the resolver learned bank.example's servers ({warm} packets)"
        )
        success, attempts, packets, sim_time, refusals = await run_attack(
            arena, setting.attack, setting.attack_params, rng
        )
        who = {ATTACKER_IP: "attacker", RESOLVER_IP: "resolver", CLIENT_IP: "client"}
        for shown, packet in enumerate(sim.network.packets[warm:]):
            if shown >= MAX_LINES:
                lines.append("... (timeline cut; the counts below cover everything)")
                break
            src = f"{who.get(packet.src[0], packet.src[0])}:{packet.src[1]}"
            dst = f"{who.get(packet.dst[0], packet.dst[0])}:{packet.dst[1]}"
            t = packet.time - sim.network.clock.epoch
            mark = "FORGED " if packet.spoofed else ""
            lines.append(f"t={t:.4f} {mark}{src} -> {dst} {_describe(packet.data)}")
        lines.append(
            f"after {attempts} attempts and {packets:,} forged replies "
            f"({sim_time:.3f} simulated s): {'POISONED' if success else 'not poisoned'}"
        )
        stats = arena.resolver.stats
        counts = {
            k: stats[k]
            for k in (
                "near_misses",
                "case_mismatches",
                "nearmiss_tcp_retries",
                "spoof_alarms",
                "scrubbed_records",
                "unwanted_replies",
            )
            if stats.get(k)
        }
        lines.append(f"checks that refused forged replies: {counts or 'none'}")
        if arena.resolver.validating:
            held = refusals.get("dnssec_forged_delegation_bogus", 0)
            counts = dnssec_refusals(arena)
            lines.append(f"DNSSEC validation: {counts or 'refused nothing'}")
            if counts.get("dnssec_aggressive_nsec"):
                lines.append(
                    f"{counts['dnssec_aggressive_nsec']} question(s) were answered from the "
                    "victim zone's signed denial (RFC 8198) without asking its servers: "
                    "those triggers opened no race window"
                )
            if held:
                lines.append(
                    f"the resolver held the forged delegation in {held} attempt(s), but what "
                    "the attacker's server said through it was bogus (no valid signatures): "
                    "clients got SERVFAIL, never the attacker's address"
                )
        victim_zone = dns.name.from_text("bank.example.")
        ns = arena.resolver.cache.get(victim_zone, dns.rdatatype.NS, min_rank=1)  # type: ignore[arg-type]
        targets = ", ".join(str(r.target) for r in ns) if ns else "(none)"  # type: ignore[attr-defined]
        lines.append(f"cache now: bank.example NS -> {targets}")
        victim = await arena.victim_view()
        seen = ", ".join(victim) or "no answer"
        verdict = " (the attacker's address)" if ATTACKER_IP in victim else ""
        lines.append(f"honest client, after the real TTL: www.bank.example -> {seen}{verdict}")
        await arena.stop()

    try:
        sim.run(main())
    finally:
        sim.close()
        zones.cleanup()
    return lines


__all__ = ["explain", "AttackName"]
