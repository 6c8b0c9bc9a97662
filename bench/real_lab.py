"""The real-packet lab against theory and the simulated lab, per target.

For each target held to one query port (our resolver with the 2008 preset, Unbound and
BIND 9 with a fixed `query-source` port) runs Kaminsky trials with real spoofed datagrams
in network namespaces, each trial ending at the first window in which a forged reply was
accepted (the race itself), and compares the median number of windows with RFC 5452 §7
(P_s = R·W / (N·P·I), P = 1) at the rate sent and at the rate the target's socket
actually delivered, and with the simulated lab at the same rate and window. Also runs
each target to the end of a budget to show whether the delegation was taken over.
Writes the figures between `<!-- bench:real begin/end -->` markers in BENCHMARKS.md.

Usage: python bench/real_lab.py [--trials N] [--rate R] [--window W] [--write BENCHMARKS.md]
Must never: send outside the lab's own namespaces (the attacker refuses other targets).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

from sections import write_section as write_named

from poisonproof.lab.arena import ArenaParams
from poisonproof.lab.attacks import AttackName, AttackParams
from poisonproof.lab.real_mode import RealSetting, run_real_trials
from poisonproof.lab.theory import ID_SPACE, median_attempts
from poisonproof.lab.trials import Setting, run_trials, summarize

TARGETS = ("poisonproof", "unbound", "bind9")


def median_ci(values: list[float]) -> tuple[float, float]:
    """95% interval of the median from order statistics (binomial, normal approximation)."""
    ordered = sorted(values)
    n = len(ordered)
    half = 1.96 * math.sqrt(n) / 2
    low = max(0, math.floor(n / 2 - half))
    high = min(n - 1, math.ceil(n / 2 + half))
    return ordered[low], ordered[high]


def race(target: str, trials: int, rate: float, window: float) -> dict[str, object]:
    setting = RealSetting(
        target=target,
        defenses="2008",
        window=window,
        rate=rate,
        budget_packets=10**9,
        budget_seconds=120,
        stop_at_first_win=True,
    )
    started = time.perf_counter()
    results = run_real_trials(setting, trials, first_seed=1000)
    wins = [r.reasons["first_win_attempt"] for r in results if r.reasons["first_win_attempt"] > 0]
    sent = sum(r.packets for r in results)
    delivered = sum(r.reasons["udp_delivered_to_target"] for r in results)
    dropped = sum(r.reasons["udp_dropped_rcvbuf"] for r in results)
    # the datagrams the namespace delivered include the trial's own few real replies
    delivered_share = min(1.0, delivered / sent) if sent else 0.0
    per_window = rate * window
    p_sent = per_window / ID_SPACE
    p_delivered = p_sent * delivered_share
    median = statistics.median(wins) if wins else math.inf
    # every window raced is a Bernoulli trial: P_s by maximum likelihood (wins / windows),
    # with the geometric distribution's standard error p·sqrt((1-p)/wins)
    raced = sum(wins) + sum(r.attempts for r in results if r.reasons["first_win_attempt"] <= 0)
    p_hat = len(wins) / raced if raced else 0.0
    spread = 1.96 * math.sqrt((1 - p_hat) / len(wins)) if wins else 1.0
    p_low, p_high = p_hat * max(0.0, 1 - spread), min(1.0, p_hat * (1 + spread))
    windows = [json.loads(r.note)["measured_window_s"] for r in results]
    return {
        "target": target,
        "trials": trials,
        "raced_to_win": len(wins),
        "median_windows": median,
        "ci": median_ci([float(w) for w in wins]) if wins else (math.inf, math.inf),
        "windows_raced": raced,
        "p_measured": p_hat,
        "p_ci": (p_low, p_high),
        "p_sent": p_sent,
        "p_delivered": p_delivered,
        "median_from_p": median_attempts(p_hat) if p_hat else math.inf,
        "predicted_sent": median_attempts(p_sent),
        "predicted_delivered": median_attempts(p_delivered),
        "delivered_share": delivered_share,
        "dropped": dropped,
        "sent": sent,
        "window_source": json.loads(results[0].note)["window_source"],
        "measured_window": statistics.median(w for w in windows if w),
        "wall_s": round(time.perf_counter() - started, 1),
    }


def takeover(target: str, rate: float, window: float, budget: int) -> dict[str, object]:
    setting = RealSetting(
        target=target,
        defenses="2008",
        window=window,
        rate=rate,
        budget_packets=budget,
        budget_seconds=120,
    )
    (result,) = run_real_trials(setting, 1, first_seed=2000)
    return {
        "target": target,
        "poisoned": result.success,
        "victim_sees": result.victim_sees,
        "attempts": result.attempts,
        "answers_accepted": result.reasons["forged_answers_accepted"],
        "delegation_kept": result.reasons["forged_answer_delegation_kept"],
    }


def simulated(trials: int, rate: float, window: float) -> float:
    setting = Setting(
        AttackName.KAMINSKY,
        "2008",
        ArenaParams(servers=1, window=window),
        AttackParams(rate=rate, budget_packets=10**9, budget_time=10**6),
        port_pool=1,
    )
    summary = summarize(setting, list(run_trials(setting, trials, 0)))
    return float(summary.median_attempts or math.inf)


def markdown(
    rows: list[dict[str, object]], takeovers: list[dict[str, object]], sim: float, args: object
) -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    a = args
    lines = [
        "<!-- bench:real begin -->",
        "## The real-packet lab: spoofed datagrams in network namespaces",
        "",
        f"Command: `.venv/bin/python bench/real_lab.py --trials {a.trials} --rate {a.rate:g} "  # type: ignore[attr-defined]
        f"--window {a.window:g} --write BENCHMARKS.md` (commit {commit}, "  # type: ignore[attr-defined]
        f"{time.strftime('%Y-%m-%d', time.gmtime())}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, kernel {platform.release()}).",
        "",
        "Each target is held to one query port (ours: `--query-port`, the `2008` preset; "
        "Unbound: `outgoing-port-permit`; BIND 9: `query-source port`). The victim's server "
        "holds each answer for the window (this kernel has no netem); the attacker floods "
        f"{a.rate * a.window:,.0f} forged replies per window through a raw socket, paced at "  # type: ignore[attr-defined]
        f"{a.rate:,.0f}/s. "  # type: ignore[attr-defined]
        "A trial ends at the first window in which a forged reply was accepted (the "
        "trigger's answer carried the attacker's address). RFC 5452 §7 with P = 1: "
        "P_s = R·W/(N·I); at the rate sent, and at the share the target's socket delivered "
        "(the rest was dropped for a full receive buffer: /proc/net/snmp RcvbufErrors).",
        "",
        "| target | trials | median windows to win | 95% CI | RFC 5452 (sent) | "
        "RFC 5452 (delivered) | measured/predicted (delivered) | simulated lab | "
        "delivered | window (source) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        ci = r["ci"]
        ratio = float(r["median_windows"]) / float(r["predicted_delivered"])  # type: ignore[arg-type]
        lines.append(
            f"| {r['target']} | {r['trials']} | {r['median_windows']} | {ci[0]:g}-{ci[1]:g} | "  # type: ignore[index]
            f"{r['predicted_sent']:g} | {r['predicted_delivered']:g} | {ratio:.2f} | {sim:g} | "
            f"{float(r['delivered_share']):.0%} | {float(r['measured_window']):.3f} s "  # type: ignore[arg-type]
            f"({r['window_source']}) |"
        )
    lines += [
        "",
        "The same trials as a per-window success rate: every window raced is one Bernoulli "
        "trial, so P_s = wins / windows raced (maximum likelihood; 95% interval from the "
        "geometric distribution's standard error), beside RFC 5452's P_s, and the median "
        "windows it implies (ceil(log 0.5 / log(1 - P_s))).",
        "",
        "| target | wins / windows raced | P_s measured (95% CI) | RFC 5452 P_s (sent / "
        "delivered) | measured / RFC (delivered) | median windows implied | simulated lab |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        low, high = r["p_ci"]  # type: ignore[misc]
        lines.append(
            f"| {r['target']} | {r['raced_to_win']} / {r['windows_raced']} | "
            f"{float(r['p_measured']):.4f} ({low:.4f}-{high:.4f}) | "
            f"{float(r['p_sent']):.4f} / {float(r['p_delivered']):.4f} | "  # type: ignore[arg-type]
            f"{float(r['p_measured']) / float(r['p_delivered']):.2f} | "  # type: ignore[arg-type]
            f"{r['median_from_p']:g} | {sim:g} |"
        )
    lines += [
        "",
        "Then one trial per target to the end of its budget: is the delegation taken over?",
        "",
        "| target | forged answers accepted | delegation taken over | what the victim then gets |",
        "|---|---:|:---:|---|",
    ]
    for t in takeovers:
        lines.append(
            f"| {t['target']} | {t['answers_accepted']} in {t['attempts']} windows | "
            f"{'yes' if t['poisoned'] else 'no (forged answer accepted, delegation kept)'} | "
            f"www.bank.example → {', '.join(t['victim_sees']) or '-'} |"  # type: ignore[arg-type]
        )
    lines.append("<!-- bench:real end -->")
    return "\n".join(lines)


def write_section(path: Path, text: str) -> None:
    write_named(path, "real", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--rate", type=float, default=20_000)
    parser.add_argument("--window", type=float, default=0.1)
    parser.add_argument("--budget", type=int, default=400_000)
    parser.add_argument("--targets", nargs="*", default=list(TARGETS))
    parser.add_argument("--write", type=Path)
    parser.add_argument("--sim-trials", type=int, default=400)
    args = parser.parse_args()
    rows = []
    for target in args.targets:
        rows.append(race(target, args.trials, args.rate, args.window))
        print(json.dumps(rows[-1], default=str), flush=True)
    takeovers = [takeover(t, args.rate, args.window, args.budget) for t in args.targets]
    for t in takeovers:
        print(json.dumps(t), flush=True)
    sim = simulated(args.sim_trials, args.rate, args.window)
    text = markdown(rows, takeovers, sim, args)
    print(text)
    if args.write:
        write_section(args.write, text)


if __name__ == "__main__":
    main()
