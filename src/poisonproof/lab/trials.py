"""Many trials of one attack setting: JSONL records as they end, resume, summary, theory.

Owns: running trials for consecutive seeds, appending each result to a JSONL file the
moment it ends (an interrupted run resumes at the first missing seed), and summarizing
them beside RFC 5452's prediction: success rate, median packets and simulated time to
poison with a distribution-free confidence interval for the median.
Must never: keep results only in memory; reports are built from the records.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from poisonproof.lab.arena import ArenaParams, ZoneFiles, with_port_pool
from poisonproof.lab.attacks import (
    PREDICT_WINDOW,
    AttackName,
    AttackParams,
    TrialResult,
    run_trial,
)
from poisonproof.lab.flood import ID_SPACE
from poisonproof.lab.theory import Attempt, median_attempts
from poisonproof.resolver.defenses import (
    EPHEMERAL_PORTS,
    PRESETS,
    Defenses,
    TxidStrategy,
    preset,
)

SETTLE = 0.001
"""Seconds the attacker waits after a window before checking (see `attacks.run_attack`)."""
WITH_DNSSEC = "+dnssec"
"""`PRESET+dnssec`: the preset with DNSSEC validation switched on (e.g. `2008+dnssec`:
the pre-2008 resolver that validates; it matters only in a signed arena)."""


def defenses_named(name: str) -> Defenses:
    """A preset by name, or `PRESET+dnssec`; ValueError naming the known ones otherwise."""
    base = name.removesuffix(WITH_DNSSEC)
    if base != name and base in PRESETS:
        return dataclasses.replace(preset(base), dnssec=True)
    if name in PRESETS:
        return preset(name)
    raise ValueError(
        f"unknown defenses preset {name!r}; known: {', '.join(PRESETS)} "
        f"(each also as PRESET{WITH_DNSSEC}, with DNSSEC validation on)"
    )


@dataclass(frozen=True)
class Setting:
    attack: AttackName
    defenses: str
    arena: ArenaParams
    attack_params: AttackParams
    port_pool: int | None = None

    def defenses_value(self) -> Defenses:
        return with_port_pool(defenses_named(self.defenses), self.port_pool)

    def key(self) -> dict[str, object]:
        return {
            "attack": self.attack.value,
            "defenses": self.defenses,
            "port_pool": self.port_pool,
            **self.arena.key(),
            "rate": self.attack_params.rate,
            "budget_packets": self.attack_params.budget_packets,
            "budget_time": self.attack_params.budget_time,
            "per_packet": self.attack_params.per_packet,
            "duplicates": self.attack_params.duplicates,
        }

    def theory(self) -> Attempt:
        return attempt_of(self.attack, self.defenses_value(), self.arena, self.attack_params)

    def seconds_per_attempt(self) -> float:
        return seconds_per_attempt(self.attack, self.arena, self.attack_params, self.theory())


def attempt_of(
    attack: AttackName, defenses: Defenses, arena: ArenaParams, params: AttackParams
) -> Attempt:
    """RFC 5452's numbers for one attempt of `attack` on a resolver with `defenses`."""
    pool = defenses.port_pool or (EPHEMERAL_PORTS[1] - EPHEMERAL_PORTS[0] + 1)
    ids = ID_SPACE  # the attackers but one guess IDs uniformly
    rate = params.rate
    if attack is AttackName.PREDICT:
        # it floods only the predicted window: a counted-up ID is in it, a random one
        # with odds window / 65,536 (the same P_s as guessing them all, up to a cap)
        ids = PREDICT_WINDOW if defenses.txid is TxidStrategy.SEQUENTIAL else ID_SPACE
        rate = min(rate, arena.servers * pool * PREDICT_WINDOW / arena.window)
    identical = 1
    if attack is AttackName.BIRTHDAY and not defenses.merge_duplicates:
        identical = params.duplicates
    return Attempt(
        identical=identical,
        rate=rate,
        window=arena.window,
        servers=arena.servers,
        ports=pool,
        ids=ids,
        case_bits=16 if defenses.case_randomization else 0,  # ~letters of x<hex>.bank.example
    )


def seconds_per_attempt(
    attack: AttackName, arena: ArenaParams, params: AttackParams, attempt: Attempt
) -> float:
    """Simulated seconds one attempt of `attack` takes (see `attacks.run_attack`)."""
    latency = arena.attacker_latency
    flooding = arena.window
    extra = arena.ttl if attack is AttackName.CLASSIC else 0.0
    if attack is AttackName.PREDICT:
        # its probe reaching the attacker's own server, then a flood that stops when the
        # predicted window is covered
        extra = 2 * latency
        flooding = min(flooding, attempt.guesses / params.rate)
    if attack is AttackName.MAIL:
        # mail to the service, its MX lookup reaching the attacker's server, the MX answer
        # and the A lookup: before the window opens
        extra = 4 * arena.client_latency + latency
    return flooding + 3 * latency + SETTLE + extra


@dataclass(frozen=True)
class Summary:
    trials: int
    successes: int
    median_packets: float | None
    median_time_s: float | None
    ci_time_s: tuple[float, float] | None
    median_attempts: float | None
    predicted_p_success: float
    predicted_median_attempts: float
    predicted_median_time_s: float
    wall_time_s: float

    @property
    def ratio(self) -> float | None:
        if self.median_time_s is None or not math.isfinite(self.predicted_median_time_s):
            return None
        return self.median_time_s / self.predicted_median_time_s

    def to_json(self) -> dict[str, object]:
        out = dataclasses.asdict(self)
        out["ratio"] = self.ratio
        return out


def median_ci(values: list[float], z: float = 1.96) -> tuple[float, float] | None:
    """A distribution-free ~95% interval for the median (binomial order statistics)."""
    n = len(values)
    if n < 3:
        return None
    ordered = sorted(values)
    half = z * math.sqrt(n) / 2
    low = max(0, math.floor(n / 2 - half) - 1)
    high = min(n - 1, math.ceil(n / 2 + half))
    return ordered[low], ordered[high]


def _median_with_failures(values: list[float], failures: int) -> float | None:
    """The median, counting failed trials as 'longer than anything seen' (censored)."""
    ordered = sorted(values) + [math.inf] * failures
    if not ordered:
        return None
    middle = statistics.median_low(ordered)
    return None if math.isinf(middle) else middle


def summarize(setting: Setting, results: list[TrialResult]) -> Summary:
    won = [r for r in results if r.success]
    failures = len(results) - len(won)
    times = [r.sim_time for r in won]
    attempt = setting.theory()
    p_s = attempt.p_success
    predicted_attempts = median_attempts(p_s)
    ci = median_ci(times + [math.inf] * failures) if won else None
    return Summary(
        trials=len(results),
        successes=len(won),
        median_packets=_median_with_failures([float(r.packets) for r in won], failures),
        median_time_s=_median_with_failures(times, failures),
        ci_time_s=ci if ci is None or math.isfinite(ci[1]) else (ci[0], math.inf),
        median_attempts=_median_with_failures([float(r.attempts) for r in won], failures),
        predicted_p_success=p_s,
        predicted_median_attempts=predicted_attempts,
        predicted_median_time_s=predicted_attempts * setting.seconds_per_attempt(),
        wall_time_s=round(sum(r.wall_time for r in results), 3),
    )


def _load(path: Path, key: dict[str, object]) -> dict[int, TrialResult]:
    done: dict[int, TrialResult] = {}
    if not path.exists():
        return done
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by an interruption: that trial runs again
        if record.get("setting") != key:
            continue
        fields = {f.name for f in dataclasses.fields(TrialResult)}
        result = TrialResult(**{k: v for k, v in record["result"].items() if k in fields})
        done[result.seed] = result
    return done


def run_trials(
    setting: Setting,
    trials: int,
    seed: int,
    out: Path | None = None,
    progress: Callable[[TrialResult], None] | None = None,
) -> Iterator[TrialResult]:
    """Yield each trial's result (from the JSONL file when it already holds it)."""
    key = setting.key()
    done = _load(out, key) if out is not None else {}
    zones = ZoneFiles(setting.arena)
    try:
        for trial_seed in range(seed, seed + trials):
            if trial_seed in done:
                result = done[trial_seed]
            else:
                result = run_trial(
                    setting.attack,
                    setting.defenses_value(),
                    setting.defenses,
                    setting.arena,
                    setting.attack_params,
                    trial_seed,
                    zones,
                )
                if out is not None:
                    with out.open("a") as handle:
                        handle.write(
                            json.dumps({"setting": key, "result": result.to_json()}) + "\n"
                        )
            if progress is not None:
                progress(result)
            yield result
    finally:
        zones.cleanup()
