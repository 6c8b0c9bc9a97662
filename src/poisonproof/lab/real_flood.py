"""Honest traffic under a real spoofed flood: does the resolver keep serving, stay clean,
and notice?

Owns: one run in the real-packet lab — a fresh target, honest clients asking steadily
from the client namespace (`real_honest`), and at the same time the attacker flooding
forged referrals at the spoofer's full rate (no pacing) onto the port of every upstream
query, learned through a side channel (the victim server's query log: the worst case,
as SAD DNS infers ports); then the honest clients' score, whether the victim zone was
taken over, and the target's own counters (unwanted replies, spoofing alarms).
Must never: send outside the lab's namespaces, or run without its time and packet bounds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from poisonproof.lab.arena import REAL_WWW
from poisonproof.lab.real_mode import ATTACKER, FIXED_PORT, RESOLVER, RealArena, RealSetting
from poisonproof.lab.targets import TargetError


@dataclass
class FloodReport:
    target: str
    defenses: str
    seconds: float
    forged_sent: int
    forged_per_second: float
    windows: int
    honest: dict[str, object]
    poisoned: bool
    victim_sees: list[str]
    target_counters: dict[str, int] = field(default_factory=dict)
    udp_delivered: int = 0
    udp_dropped: int = 0


ALARM_COUNTERS = ("unwanted_replies", "spoof_alarms", "case_mismatches", "near_misses")


def run_flood(
    target: str = "poisonproof",
    defenses: str = "default",
    *,
    seconds: float = 10.0,
    honest_rate: float = 30.0,
    budget_packets: int = 5_000_000,
    window: float = 0.1,
    seed: int = 0,
) -> FloodReport:
    weakened = defenses != "default"
    setting = RealSetting(
        target=target,
        weakened=weakened,
        defenses=defenses,
        window=window,
        rate=10_000_000.0,  # as fast as the spoofer goes: each window's share at once
        budget_packets=budget_packets,
        budget_seconds=seconds,
        tell_port=False,
        paced=False,
    )
    with (
        tempfile.TemporaryDirectory(prefix="poisonproof-flood-") as tmp,
        RealArena(setting, Path(tmp)) as arena,
    ):
        resolver = arena.target(seed)
        resolver.start()
        try:
            before = arena.udp_received()
            honest_job = {
                "resolver": RESOLVER,
                "seconds": seconds,
                "rate": honest_rate,
                "seed": seed,
                "real_www": REAL_WWW,
                "attacker_ns": ATTACKER,
            }
            honest = arena.net.popen(
                "client",
                [sys.executable, "-m", "poisonproof.lab.real_honest", json.dumps(honest_job)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            job = {
                **arena.attacker_job(seed),
                "port": FIXED_PORT if weakened else None,
                "port_oracle": str(arena.victim_log),
                "paced": False,
                "rate": 2_000_000.0,  # the per-window share: rate x window, sent at once
            }
            started = time.monotonic()
            done = arena.net.run(
                "attacker",
                [sys.executable, "-m", "poisonproof.lab.real_attacker", json.dumps(job)],
                timeout=seconds + 60,
                capture_output=True,
            )
            elapsed = time.monotonic() - started
            out, err = honest.communicate(timeout=seconds + 30)
            if done.returncode != 0:
                raise RuntimeError(f"the attacker failed: {done.stderr.decode()[-2000:]}")
            if honest.returncode != 0:
                raise RuntimeError(f"the honest clients failed: {err.decode()[-2000:]}")
            attack = json.loads(done.stdout.decode().strip().splitlines()[-1])
            score = json.loads(out.decode().strip().splitlines()[-1])
            after = arena.udp_received()
            try:
                counters = resolver.stats()
            except TargetError:
                counters = {}
        finally:
            resolver.stop()
    return FloodReport(
        target=target,
        defenses=defenses,
        seconds=round(elapsed, 2),
        forged_sent=attack["packets"],
        forged_per_second=round(attack["packets"] / max(attack["flood_seconds"], 1e-9)),
        windows=attack["attempts"],
        honest=score,
        poisoned=bool(attack["success"]) or ATTACKER in attack["victim_sees"],
        victim_sees=attack["victim_sees"],
        target_counters={k: v for k, v in counters.items() if k in ALARM_COUNTERS},
        udp_delivered=after[0] - before[0],
        udp_dropped=after[1] - before[1],
    )
