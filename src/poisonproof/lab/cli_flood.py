"""`poisonproof lab flood`: honest clients under a real spoofed flood, scored.

Owns: the command's options, the unprivileged re-run, and printing the `FloodReport`
(a table, or `--json`); exits 1 when the honest success rate falls below `--min-success`
or the victim zone is taken over (so scripts and CI can hold a resolver to it).
Must never: send packets itself (`real_flood` and the attacker do).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated

import typer
from rich.console import Console

from poisonproof.lab.cli_real import unprivileged_rerun
from poisonproof.lab.real_flood import run_flood


def lab_flood(
    target: Annotated[str, typer.Option(help="The resolver (poisonproof, unbound, ...).")] = (
        "poisonproof"
    ),
    defenses: Annotated[
        str, typer.Option(help="default (stock), or 2008: held to one port, no defenses.")
    ] = "default",
    seconds: Annotated[float, typer.Option(help="How long the flood and the clients run.")] = 10.0,
    honest_rate: Annotated[float, typer.Option(help="Honest questions per second.")] = 30.0,
    budget: Annotated[int, typer.Option(help="Forged replies at most.")] = 5_000_000,
    min_success: Annotated[
        float, typer.Option(help="Exit 1 below this share of honest questions answered right.")
    ] = 0.999,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A spoofed flood at full rate onto every upstream query's port while honest clients
    ask (real packets in network namespaces; root, or a user namespace)."""
    console = Console(stderr=True)
    if not 0 < seconds <= 600 or honest_rate <= 0 or budget < 1:
        console.print(
            "[red]error:[/] --seconds must be in (0, 600], --honest-rate and --budget > 0"
        )
        raise typer.Exit(2)
    unprivileged_rerun(console)
    report = run_flood(
        target, defenses, seconds=seconds, honest_rate=honest_rate, budget_packets=budget
    )
    honest = report.honest
    success = float(honest["success"])  # type: ignore[arg-type]
    if as_json:
        print(json.dumps(dataclasses.asdict(report), indent=2))
    else:
        out = Console(highlight=False)
        out.print(
            f"{target} ({defenses}): {report.forged_sent:,} forged replies in {report.seconds} s "
            f"({report.forged_per_second:,}/s sent; the target's namespace delivered "
            f"{report.udp_delivered:,} datagrams, dropped {report.udp_dropped:,})"
        )
        out.print(
            f"honest: {honest['right']}/{honest['asked']} right ({success:.2%}), "
            f"{honest['wrong']} wrong, {honest['unanswered']} unanswered"
        )
        out.print(
            f"poisoned: {'YES' if report.poisoned else 'no'}; counters: {report.target_counters}"
        )
    if success < min_success or report.poisoned:
        raise typer.Exit(1)
