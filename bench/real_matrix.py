"""Every target x every real-packet attack, stock and held to one port, at a fixed budget.

For each resolver of `poisonproof.lab.targets.TARGETS`, in its stock configuration and
weakened (one query port where the software allows), runs every real-mode attack
(`real_mode.REAL_ATTACKS`: Kaminsky with a referral and with the SEED Labs answer,
birthday, mail, forwarder, classic) with real spoofed datagrams in network namespaces,
one trial each at a fixed packet budget, and records: poisoned (the victim then gets the
attacker's address), forged answers accepted but the delegation kept, or survived.
Writes a table between `<!-- bench:matrix begin/end -->` markers in BENCHMARKS.md (and
prints it for the README).

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

from poisonproof.lab.real_mode import REAL_ATTACKS, RealSetting, run_real_trials
from poisonproof.lab.targets import TARGETS, supports_weakened


def outcome(target: str, weakened: bool, attack: str, args: argparse.Namespace) -> str:
    setting = RealSetting(
        attack=attack,
        target=target,
        weakened=weakened,
        defenses="2008" if weakened else "default",
        window=args.window,
        rate=args.rate,
        budget_packets=args.budget,
        budget_seconds=90,
        tell_port=weakened,
        duplicates=args.duplicates,
    )
    try:
        (result,) = run_real_trials(setting, 1, first_seed=3000)
    except Exception as error:  # a target that cannot run here is a result to show
        return f"error: {str(error).splitlines()[0][:80]}"
    accepted = result.reasons.get("forged_answers_accepted", 0)
    if result.success:
        return f"**poisoned** ({result.packets:,} packets)"
    if accepted and attack != "classic":
        return f"accepted {accepted}, delegation kept"
    if attack == "classic":
        return f"survived ({result.attempts} try: TTL {setting.ttl} s)"
    return "survived"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=20_000)
    parser.add_argument("--window", type=float, default=0.1)
    parser.add_argument("--targets", nargs="*", default=list(TARGETS))
    parser.add_argument("--attacks", nargs="*", default=list(REAL_ATTACKS))
    parser.add_argument("--duplicates", type=int, default=20)
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
        f"{platform.release()}). Real spoofed datagrams in network namespaces, "
        f"{args.rate * args.window:,.0f} forged replies per {args.window:g} s window "
        f"(paced at {args.rate:g}/s), {args.budget:,} at most, one trial per cell. "
        "*kaminsky*: a fresh name under bank.example and a forged referral with glue; "
        "*kaminsky-answer*: the SEED Labs reply (an authoritative answer plus "
        "bank.example's NS set); *birthday*: the same triggered by "
        f"{args.duplicates} identical questions; *mail*: the lookup made by the lab's mail "
        "service for the MX of the attacker's domain; *forwarder*: MaginotDNS, forged "
        "answers from the target's conditional forwarder (corp.example) carrying "
        "bank.example's NS set; *classic*: www.bank.example itself, one try per TTL. "
        "Stock targets are attacked on the one port the attacker learns through its own zone.",
        "",
        "| target | configuration | " + " | ".join(args.attacks) + " |",
        "|---|---|" + "---|" * len(args.attacks),
    ]
    for target in args.targets:
        for weakened in (False, True):
            can, how = supports_weakened(target)
            if weakened and not can:
                dashes = " - |" * len(args.attacks)
                lines.append(f"| {target} | one port: not possible ({how}) |{dashes}")
                continue
            cells = [outcome(target, weakened, attack, args) for attack in args.attacks]
            label = "one query port" if weakened else "stock"
            lines.append(f"| {target} | {label} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    lines.append("<!-- bench:matrix end -->")
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_named(args.write, "matrix", text)


if __name__ == "__main__":
    main()
