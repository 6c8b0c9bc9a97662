"""Every target x every real-packet attack, stock and held to one port, at a fixed budget.

For each resolver of `poisonproof.lab.targets.TARGETS`, in its stock configuration and
weakened (one query port where the software allows), runs the Kaminsky attack with real
spoofed datagrams in network namespaces with both forgeries (a referral with glue; the
SEED Labs answer with an NS set), one trial each at a fixed packet budget, and records:
poisoned (the victim then gets the attacker's address), forged answers accepted but the
delegation kept, or survived. Writes a table between `<!-- bench:matrix begin/end -->`
markers in BENCHMARKS.md (and prints it for the README).

Usage: python bench/real_matrix.py [--budget N] [--rate R] [--window W] [--write BENCHMARKS.md]
Must never: send outside the lab's own namespaces.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
from pathlib import Path

from sections import write_section as write_named

from poisonproof.lab.real_mode import RealSetting, run_real_trials
from poisonproof.lab.targets import TARGETS, supports_weakened


def outcome(target: str, weakened: bool, forgery: str, args: argparse.Namespace) -> str:
    setting = RealSetting(
        target=target,
        weakened=weakened,
        defenses="2008" if weakened else "default",
        window=args.window,
        rate=args.rate,
        budget_packets=args.budget,
        budget_seconds=90,
        tell_port=weakened,
        forgery=forgery,
    )
    try:
        (result,) = run_real_trials(setting, 1, first_seed=3000)
    except Exception as error:  # a target that cannot run here is a result to show
        return f"error: {str(error).splitlines()[0][:80]}"
    accepted = result.reasons.get("forged_answers_accepted", 0)
    if result.success:
        return f"**poisoned** ({result.packets:,} packets)"
    if accepted:
        return f"accepted {accepted}, delegation kept"
    return "survived"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=20_000)
    parser.add_argument("--window", type=float, default=0.1)
    parser.add_argument("--targets", nargs="*", default=list(TARGETS))
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    lines = [
        "<!-- bench:matrix begin -->",
        "## Real packets: every target against every attack",
        "",
        f"Command: `.venv/bin/python bench/real_matrix.py --budget {args.budget} --rate "
        f"{args.rate:g} --window {args.window:g} --write BENCHMARKS.md` (commit {commit}, "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}, {os.cpu_count()} CPUs, kernel "
        f"{platform.release()}). One trial per cell: Kaminsky with real spoofed datagrams, "
        f"{args.rate * args.window:,.0f} forged replies per {args.window:g} s window, "
        f"{args.budget:,} at most. *referral*: a delegation of bank.example with glue; "
        "*answer*: the SEED Labs reply (an authoritative answer plus bank.example's NS set). "
        "Stock targets are attacked on the one port the attacker learns through its own zone.",
        "",
        "| target | configuration | referral | answer |",
        "|---|---|---|---|",
    ]
    for target in args.targets:
        for weakened in (False, True):
            can, how = supports_weakened(target)
            if weakened and not can:
                lines.append(f"| {target} | one port: not possible ({how}) | - | - |")
                continue
            cells = [outcome(target, weakened, f, args) for f in ("referral", "answer")]
            label = "one query port" if weakened else "stock"
            lines.append(f"| {target} | {label} | {cells[0]} | {cells[1]} |")
            print(lines[-1], flush=True)
    lines.append("<!-- bench:matrix end -->")
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_named(args.write, "matrix", text)


if __name__ == "__main__":
    main()
