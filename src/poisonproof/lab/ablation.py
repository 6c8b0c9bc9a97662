"""The ablation table, both ways: the 2008 resolver plus each single defense, and the
default resolver minus each single defense, against every attack of the lab.

Owns: the rows (which defense is switched), running each attack against each row within
a budget, and per row: successes, measured time to poison where it is within reach, the
RFC 5452 estimate where it is not, and which attacks the row stops.
Must never: hide a row's failure to stop an attack; every trial counts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from poisonproof.lab.arena import ArenaParams, ZoneFiles
from poisonproof.lab.attacks import AttackName, AttackParams, TrialResult, run_trial
from poisonproof.lab.theory import Attempt, median_attempts
from poisonproof.lab.trials import SETTLE
from poisonproof.resolver.defenses import DEFAULT, EPHEMERAL_PORTS, PRE_2008, Defenses

SWITCHES: dict[str, tuple[str, ...]] = {
    "random TXID": ("txid",),
    "random ports": ("port_pool", "fixed_port"),
    "0x20": ("case_randomization",),
    "bailiwick scrubbing": ("bailiwick",),
    "forwarder scrubbing": ("forwarder_bailiwick",),
    "credibility ranks": ("credibility",),
    "query merging": ("merge_duplicates",),
    "near-miss TCP": ("nearmiss_tcp",),
    "unwanted-reply alarm": ("unwanted_threshold",),
    "cookies": ("cookies",),
}
ATTACKS = (
    AttackName.KAMINSKY,
    AttackName.KAMINSKY_ANSWER,
    AttackName.BIRTHDAY,
    AttackName.MAIL,
    AttackName.FORWARDER,
)


def rows() -> list[tuple[str, Defenses]]:
    """('2008', ...), ('2008 + X', ...) for each X, ('default', ...), ('default - X', ...)."""
    out = [("2008", PRE_2008)]
    for label, fields in SWITCHES.items():
        out.append(
            (
                f"2008 + {label}",
                dataclasses.replace(PRE_2008, **{f: getattr(DEFAULT, f) for f in fields}),
            )
        )
    out.append(("default", DEFAULT))
    for label, fields in SWITCHES.items():
        out.append(
            (
                f"default - {label}",
                dataclasses.replace(DEFAULT, **{f: getattr(PRE_2008, f) for f in fields}),
            )
        )
    return out


def estimate(
    defenses: Defenses, attack: AttackName, arena: ArenaParams, params: AttackParams
) -> float:
    """RFC 5452's median time to poison for this row (seconds; inf when P_s is 0)."""
    ports = defenses.port_pool or (EPHEMERAL_PORTS[1] - EPHEMERAL_PORTS[0] + 1)
    identical = (
        params.duplicates if attack is AttackName.BIRTHDAY and not defenses.merge_duplicates else 1
    )
    attempt = Attempt(
        rate=params.rate,
        window=arena.window,
        servers=arena.servers,
        ports=ports,
        identical=identical,
        case_bits=16 if defenses.case_randomization else 0,
    )
    per_attempt = arena.window + 3 * arena.attacker_latency + SETTLE
    return median_attempts(attempt.p_success) * per_attempt


@dataclass
class Cell:
    attack: str
    trials: int
    successes: int
    median_time_s: float | None
    estimate_s: float

    @property
    def stopped(self) -> bool:
        return self.successes == 0


@dataclass
class Row:
    label: str
    cells: list[Cell]

    @property
    def stops(self) -> list[str]:
        return [c.attack for c in self.cells if c.stopped]


def run_ablation(
    trials: int,
    budget: int,
    arena: ArenaParams = ArenaParams(),  # noqa: B008 - frozen
    rate: float = 100_000.0,
    progress: Callable[[str, str, TrialResult], None] | None = None,
) -> list[Row]:
    zones = ZoneFiles(arena)
    params = AttackParams(rate=rate, budget_packets=budget, duplicates=20)
    table = []
    try:
        for label, defenses in rows():
            cells = []
            for attack in ATTACKS:
                results = []
                for seed in range(trials):
                    result = run_trial(attack, defenses, label, arena, params, seed, zones)
                    results.append(result)
                    if progress is not None:
                        progress(label, attack.value, result)
                won = sorted(r.sim_time for r in results if r.success)
                median = won[len(won) // 2] if len(won) * 2 > len(results) else None
                cells.append(
                    Cell(
                        attack.value,
                        len(results),
                        len(won),
                        median,
                        estimate(defenses, attack, arena, params),
                    )
                )
            table.append(Row(label, cells))
    finally:
        zones.cleanup()
    return table


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value == float("inf"):
        return "never"
    if value >= 365.25 * 86400:
        return f"~{value / (365.25 * 86400):,.0f} years"
    if value >= 86400:
        return f"~{value / 86400:,.0f} days"
    return f"{value:,.2f} s"


def markdown(table: list[Row], trials: int, budget: int, command: str) -> str:
    attacks = [c.attack for c in table[0].cells]
    lines = [
        "# Ablation: which defense stops which attack",
        "",
        f"Command: `{command}` — {trials} trial(s) per cell, each with a budget of "
        f"{budget:,} forged replies at 100,000/s over a 100 ms window (simulated network).",
        "A cell shows poisoned trials, the measured median time to poison when most trials",
        "succeeded, else RFC 5452's median estimate for that row (which ignores scrubbing,",
        "near-miss TCP and the alarm: those stop an attack without changing P_s).",
        "",
        "| resolver | " + " | ".join(attacks) + " | stops |",
        "|---|" + "---|" * len(attacks) + "---|",
    ]
    for row in table:
        cells = []
        for c in row.cells:
            shown = (
                _seconds(c.median_time_s)
                if c.median_time_s is not None
                else f"est. {_seconds(c.estimate_s)}"
            )
            cells.append(f"{c.successes}/{c.trials}: {shown}")
        lines.append(
            f"| {row.label} | " + " | ".join(cells) + f" | {', '.join(row.stops) or '-'} |"
        )
    return "\n".join(lines) + "\n"
