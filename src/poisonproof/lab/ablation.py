"""The ablation table, both ways: the 2008 resolver plus each single defense, and the
default resolver minus each single defense, against every attack of the lab; then the
2008 resolver with DNSSEC validation alone, in a signed arena, with the victim zone
signed and unsigned.

Owns: the rows (which defense is switched, which zones are signed), running each attack
against each row within a budget, and per row: successes, measured time to poison where
it is within reach, the RFC 5452 estimate where it is not, and which attacks the row
stops.
Must never: hide a row's failure to stop an attack; every trial counts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from poisonproof.lab.arena import ArenaParams, ZoneFiles
from poisonproof.lab.attacks import AttackName, AttackParams, TrialResult, run_trial
from poisonproof.lab.theory import median_attempts
from poisonproof.lab.trials import attempt_of, seconds_per_attempt
from poisonproof.resolver.defenses import DEFAULT, PRE_2008, Defenses, TxidStrategy

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
SEQUENTIAL_ROW = "2008, IDs counted up"
"""The 2008 resolver with BIND 4/8's ID counter instead of a 16-bit PRNG: what the
`predict` attacker exploits (the other attackers guess IDs uniformly)."""

DNSSEC_ROWS: dict[str, bool] = {
    "2008 + DNSSEC, victim zone signed": True,
    "2008 + DNSSEC, victim zone unsigned": False,
}
"""Label -> whether bank.example is signed. Root, TLD and (or not) the victim zone are
signed, the resolver has the root trust anchor; the attacker's zones are never signed."""
ATTACKS = (
    AttackName.KAMINSKY,
    AttackName.KAMINSKY_ANSWER,
    AttackName.BIRTHDAY,
    AttackName.MAIL,
    AttackName.FORWARDER,
    AttackName.PREDICT,
)


def rows() -> list[tuple[str, Defenses]]:
    """('2008', ...), the 2008 resolver counting its IDs up, ('2008 + X', ...) for each X,
    ('default', ...), ('default - X', ...)."""
    counted_up = dataclasses.replace(PRE_2008, txid=TxidStrategy.SEQUENTIAL)
    out = [("2008", PRE_2008), (SEQUENTIAL_ROW, counted_up)]
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


def dnssec_rows(arena: ArenaParams) -> list[tuple[str, Defenses, ArenaParams]]:
    """The 2008 resolver validating DNSSEC, in the signed variants of `arena`."""
    validating = dataclasses.replace(PRE_2008, dnssec=True)
    return [
        (label, validating, dataclasses.replace(arena, signed=True, victim_signed=victim))
        for label, victim in DNSSEC_ROWS.items()
    ]


def estimate(
    defenses: Defenses, attack: AttackName, arena: ArenaParams, params: AttackParams
) -> float:
    """RFC 5452's median time to poison for this row (seconds; inf when P_s is 0)."""
    attempt = attempt_of(attack, defenses, arena, params)
    return median_attempts(attempt.p_success) * seconds_per_attempt(attack, arena, params, attempt)


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
    only: str | None = None,
) -> list[Row]:
    """Every row of `rows()` in `arena`, then those of `dnssec_rows()` in its signed
    variants; with `only`, just the rows whose label contains it (case-insensitive)."""
    params = AttackParams(rate=rate, budget_packets=budget, duplicates=20)
    planned = [(label, defenses, arena) for label, defenses in rows()]
    planned += dnssec_rows(arena)
    if only is not None:
        planned = [row for row in planned if only.lower() in row[0].lower()]
    zones: dict[ArenaParams, ZoneFiles] = {}
    table = []
    try:
        for label, defenses, row_arena in planned:
            if row_arena not in zones:
                zones[row_arena] = ZoneFiles(row_arena)
            cells = []
            for attack in ATTACKS:
                results = []
                for seed in range(trials):
                    result = run_trial(
                        attack, defenses, label, row_arena, params, seed, zones[row_arena]
                    )
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
                        estimate(defenses, attack, row_arena, params),
                    )
                )
            table.append(Row(label, cells))
    finally:
        for files in zones.values():
            files.cleanup()
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
        "near-miss TCP, the alarm and DNSSEC: those stop an attack without changing P_s).",
        "The DNSSEC rows run in a signed arena (root, TLD and, or not, bank.example signed;",
        "the resolver holds the root trust anchor; the attacker's zones are unsigned).",
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
