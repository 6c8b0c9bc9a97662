"""The lab's agreement with RFC 5452 over a grid of settings, and its speed.

Runs Kaminsky (referral variant) against the 2008 resolver with the port pool overridden,
for a grid that varies the port pool (1..1024), the number of the victim's servers (1..3)
and the race window (two values); many trials per setting on a process pool; compares the
measured median time to poison (with a 95% interval) with RFC 5452's prediction; and
measures forged replies per CPU second in batched mode and the wall time of one 2008 trial.
Writes the figures into BENCHMARKS.md between `<!-- bench:lab ... -->` markers.

Usage: python bench/lab_sweep.py [--trials N] [--write BENCHMARKS.md] [--only-pool P ...]
Must never: run against anything but the simulated network.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from sections import write_section as write_named

from poisonproof.lab.arena import ArenaParams, ZoneFiles
from poisonproof.lab.attacks import AttackName, AttackParams, run_trial
from poisonproof.lab.trials import Setting, run_trials, summarize
from poisonproof.resolver.defenses import preset

GRID = [
    # (port pool, servers, window, rate): rate chosen so a trial takes ~20-60 windows
    (1, 1, 0.10, 20_000),
    (4, 1, 0.10, 80_000),
    (16, 2, 0.05, 1_000_000),
    (64, 1, 0.05, 2_000_000),
    (256, 3, 0.10, 12_000_000),
    (1024, 2, 0.05, 60_000_000),
]


def setting_for(pool: int, servers: int, window: float, rate: float) -> Setting:
    return Setting(
        AttackName.KAMINSKY,
        "2008",
        ArenaParams(servers=servers, window=window),
        AttackParams(rate=rate, budget_packets=10**12, budget_time=10**7),
        port_pool=pool,
    )


def run_chunk(args: tuple[tuple[int, int, float, float], int, int]) -> list[dict[str, object]]:
    point, first, count = args
    setting = setting_for(*point)
    return [r.to_json() for r in run_trials(setting, count, first)]


def sweep(
    trials: int, workers: int, grid: list[tuple[int, int, float, float]] = GRID
) -> list[dict[str, object]]:
    rows = []
    for point in grid:
        setting = setting_for(*point)
        chunks = [(point, first, min(50, trials - first)) for first in range(0, trials, 50)]
        started = time.perf_counter()
        with ProcessPoolExecutor(workers) as pool:
            records = [r for chunk in pool.map(run_chunk, chunks) for r in chunk]
        from poisonproof.lab.attacks import TrialResult

        results = [TrialResult(**r) for r in records]  # type: ignore[arg-type]
        summary = summarize(setting, results)
        ci = summary.ci_time_s or (float("nan"), float("nan"))
        predicted = summary.predicted_median_time_s
        rows.append(
            {
                "pool": point[0],
                "servers": point[1],
                "window": point[2],
                "rate": point[3],
                "trials": summary.trials,
                "successes": summary.successes,
                "p_s": summary.predicted_p_success,
                "median_s": summary.median_time_s,
                "ci": ci,
                "predicted_s": predicted,
                "ratio": summary.ratio,
                "ci_in_band": 0.85 * predicted <= ci[0] and ci[1] <= 1.15 * predicted,
                "wall_s": round(time.perf_counter() - started, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def speed() -> dict[str, float]:
    arena = ArenaParams(servers=1, window=0.1)
    zones = ZoneFiles(arena)
    try:
        cpu = time.process_time()
        result = run_trial(
            AttackName.KAMINSKY,
            preset("default"),
            "default",
            arena,
            AttackParams(rate=100_000_000, budget_packets=2_000_000_000),
            1,
            zones,
        )
        forged_per_cpu_s = result.packets / (time.process_time() - cpu)
        walls = []
        for seed in range(20):
            r = run_trial(
                AttackName.KAMINSKY,
                preset("2008"),
                "2008",
                arena,
                AttackParams(rate=100_000),
                seed,
                zones,
            )
            assert r.success
            walls.append(r.wall_time)
    finally:
        zones.cleanup()
    return {
        "forged_per_cpu_second": forged_per_cpu_s,
        "trial_wall_median_s": statistics.median(walls),
        "trial_wall_max_s": max(walls),
    }


def markdown(rows: list[dict[str, object]], figures: dict[str, float], trials: int) -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    lines = [
        "<!-- bench:lab begin -->",
        "## Poisoning lab: measured against RFC 5452, and its speed",
        "",
        f"Command: `.venv/bin/python bench/lab_sweep.py --trials {trials} --write BENCHMARKS.md` "
        f"(commit {commit}, {time.strftime('%Y-%m-%d', time.gmtime())}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}).",
        "",
        "Kaminsky (forged referral) against the `2008` resolver with its port pool overridden;",
        "the attacker knows the pool and the victim's servers and guesses (server, port, ID)",
        "without repeating itself within a window. Prediction: RFC 5452 §7,",
        "P_s = R·W / (N·P·I), median attempts = ⌈ln ½ / ln(1 − P_s)⌉, times the attempt's length.",
        "",
        "| port pool P | servers N | window W | rate R/s | P_s | trials "
        "| median time to poison | 95% CI | RFC 5452 | measured/predicted | CI within ±15% |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in rows:
        ci = r["ci"]
        lines.append(
            f"| {r['pool']} | {r['servers']} | {r['window']} | {r['rate']:,.0f} | {r['p_s']:.4f} | "
            f"{r['trials']} | {r['median_s']:.3f} s | {ci[0]:.3f}-{ci[1]:.3f} s | "  # type: ignore[index]
            f"{r['predicted_s']:.3f} s | {r['ratio']:.3f} | {'yes' if r['ci_in_band'] else 'no'} |"
        )
    within = sum(1 for r in rows if abs(float(r["ratio"]) - 1) <= 0.15)  # type: ignore[arg-type]
    lines += [
        "",
        f"{within} of {len(rows)} measured medians are within ±15% of RFC 5452. The 95% interval",
        "of a median from n geometric trials spans about ±(2/ln 2)·0.98/√n — ±11.5%",
        "at 600 trials — and times come in whole attempts, so most intervals still reach past",
        "the ±15% band: more trials (≈2,000 per setting) are needed for the band criterion.",
        "",
        f"Speed (batched floods): {figures['forged_per_cpu_second']:,.0f} simulated forged "
        "replies per CPU second (Kaminsky against `default`, 10^8 replies/s for 2·10^9 "
        "replies, none matching); one 2008-preset Kaminsky trial to success: median "
        f"{figures['trial_wall_median_s']:.3f} s wall, slowest of 20 "
        f"{figures['trial_wall_max_s']:.3f} s.",
        "<!-- bench:lab end -->",
    ]
    return "\n".join(lines)


def write_section(path: Path, text: str) -> None:
    write_named(path, "lab", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=600)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--write", type=Path)
    parser.add_argument(
        "--only-pool",
        type=int,
        action="append",
        help="run only the grid settings with this port pool (repeatable); prints, writes nothing",
    )
    args = parser.parse_args()
    if args.only_pool:
        grid = [point for point in GRID if point[0] in args.only_pool]
        sweep(args.trials, args.workers, grid)
        return
    figures = speed()
    print(json.dumps(figures), flush=True)
    rows = sweep(args.trials, args.workers)
    text = markdown(rows, figures, args.trials)
    print(text)
    if args.write:
        write_section(args.write, text)


if __name__ == "__main__":
    main()
