"""`poisonproof lab attack NAME ...`: run trials of one attack setting and report them.

Owns: the attack command's options (the spellings scripts rely on: --rate, --window,
--servers, --ttl, --port-pool, --trials, --seed, --budget; --signed and
--unsigned-victim for a DNSSEC-signed arena; `--defenses PRESET+dnssec` for a preset
with validation switched on), live progress, the results table beside RFC 5452's
prediction, `--json`, the JSONL record file, and `--explain`.
`--mode real` hands over to `cli_real` (network namespaces, real spoofed packets).
Must never: send packets itself.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from poisonproof.lab.arena import ArenaParams
from poisonproof.lab.attacks import AttackName, AttackParams
from poisonproof.lab.trials import Setting, defenses_named, run_trials, summarize


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "never"
    return f"{value:,.3f}{unit}" if value < 1000 else f"{value:,.0f}{unit}"


def lab_attack(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(a.value for a in AttackName)}.")],
    defenses: Annotated[
        str,
        typer.Option(help="Defense preset (2008, default, no-...); PRESET+dnssec validates."),
    ] = "2008",
    mode: Annotated[
        str, typer.Option(help="sim (simulated network) or real (namespaces, spoofed packets).")
    ] = "sim",
    target: Annotated[
        str, typer.Option(help="--mode real: the resolver attacked (poisonproof, unbound, ...).")
    ] = "poisonproof",
    weakened: Annotated[
        bool, typer.Option(help="--mode real: hold the target to one query port (2008).")
    ] = True,
    budget_seconds: Annotated[
        float, typer.Option(help="--mode real: wall seconds per trial before giving up.")
    ] = 60.0,
    pcap: Annotated[
        Path | None, typer.Option(help="--mode real: capture each trial into DIR/trial-N.pcap.")
    ] = None,
    rate: Annotated[float, typer.Option(help="Forged replies per second.")] = 100_000.0,
    window: Annotated[
        float, typer.Option(help="Race window in seconds (RTT to the victim's servers).")
    ] = 0.1,
    servers: Annotated[int, typer.Option(help="Authoritative servers of the victim zone.")] = 1,
    ttl: Annotated[int, typer.Option(help="TTL of the victim zone's records.")] = 300,
    port_pool: Annotated[
        int | None, typer.Option(help="Resolver source ports (overrides the preset).")
    ] = None,
    trials: Annotated[int, typer.Option(help="Trials (seeds seed .. seed+trials-1).")] = 10,
    seed: Annotated[int, typer.Option(help="First seed.")] = 0,
    budget: Annotated[
        int, typer.Option(help="Forged replies per trial before giving up.")
    ] = 20_000_000,
    budget_time: Annotated[
        float, typer.Option(help="Simulated seconds per trial before giving up.")
    ] = 3600.0,
    per_packet: Annotated[
        bool, typer.Option(help="Send every guess as its own datagram (slow).")
    ] = False,
    duplicates: Annotated[
        int, typer.Option(help="Identical triggers per attempt (birthday).")
    ] = 100,
    out: Annotated[
        Path | None, typer.Option(help="Append each trial to this JSONL file (resumes).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    explain: Annotated[bool, typer.Option(help="Narrate the first trial as a timeline.")] = False,
    signed: Annotated[
        bool,
        typer.Option(
            help="Sign the arena's zones (root, TLD, bank.example; not the attacker's) "
            "and give the resolver the root trust anchor."
        ),
    ] = False,
    unsigned_victim: Annotated[
        bool,
        typer.Option(help="With --signed: leave bank.example unsigned (no DS: insecure)."),
    ] = False,
) -> None:
    """Run an attack on the simulated lab network and compare with RFC 5452."""
    console = Console(stderr=as_json)
    try:
        attack = AttackName(name)
    except ValueError:
        console.print(
            f"[red]error:[/] unknown attack {name!r}; choose one of "
            f"{', '.join(a.value for a in AttackName)}"
        )
        raise typer.Exit(2) from None
    try:
        validates = defenses_named(defenses).dnssec
    except ValueError as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    if unsigned_victim and not signed:
        console.print("[red]error:[/] --unsigned-victim needs --signed (the other zones signed)")
        raise typer.Exit(2)
    if mode not in ("sim", "real"):
        console.print(f"[red]error:[/] --mode is sim or real, not {mode!r}")
        raise typer.Exit(2)
    if mode == "real":
        from poisonproof.lab.cli_real import run_real, unprivileged_rerun
        from poisonproof.lab.real_mode import REAL_ATTACKS, RealSetting

        if attack.value not in REAL_ATTACKS or signed:
            console.print(
                f"[red]error:[/] --mode real runs {', '.join(REAL_ATTACKS)}, on an unsigned arena"
            )
            raise typer.Exit(2)

        unprivileged_rerun(console)
        run_real(
            RealSetting(
                attack=attack.value,
                target=target,
                weakened=weakened,
                defenses=defenses,
                servers=servers,
                window=window,
                ttl=ttl,
                duplicates=duplicates,
                rate=rate,
                budget_packets=budget,
                budget_seconds=budget_seconds,
                pcap_dir=str(pcap) if pcap is not None else "",
            ),
            trials,
            seed,
            out,
            as_json,
        )
        return
    if rate <= 0 or window <= 0 or servers < 1 or trials < 1 or ttl < 1:
        console.print(
            "[red]error:[/] --rate, --window, --servers, --ttl and --trials must be positive"
        )
        raise typer.Exit(2)
    if signed and not validates:
        console.print(
            f"note: the {defenses!r} preset does not validate DNSSEC; the signatures are "
            f"not checked ({defenses}+dnssec checks them)"
        )
    setting = Setting(
        attack,
        defenses,
        ArenaParams(
            servers=servers,
            window=window,
            ttl=ttl,
            signed=signed,
            victim_signed=not unsigned_victim,
        ),
        AttackParams(
            rate=rate,
            budget_packets=budget,
            budget_time=budget_time,
            per_packet=per_packet,
            duplicates=duplicates,
        ),
        port_pool=port_pool,
    )
    if explain:
        from poisonproof.lab.explain import explain as narrate

        for line in narrate(setting, seed):
            console.print(line, highlight=False, markup=False)
        return
    zones_note = f" ({setting.arena.dnssec_label})" if signed else ""
    results = []
    with Progress(
        TextColumn(f"{attack.value} vs {defenses}{zones_note}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=as_json,
    ) as progress:
        task = progress.add_task("trials", total=trials, status="")
        for result in run_trials(setting, trials, seed, out):
            results.append(result)
            won = sum(r.success for r in results)
            progress.update(task, advance=1, status=f"{won} poisoned")
    summary = summarize(setting, results)
    if as_json:
        print(json.dumps({"setting": setting.key(), **summary.to_json()}, indent=2, default=str))
        return
    table = Table(
        title=f"{attack.value} against the {defenses!r} resolver{zones_note}", show_lines=False
    )
    for column in ("", "measured", "RFC 5452"):
        table.add_column(column, justify="right")
    table.add_row(
        "success",
        f"{summary.successes}/{summary.trials}",
        f"P_s = {summary.predicted_p_success:.3g} per window",
    )
    table.add_row(
        "median attempts", _fmt(summary.median_attempts), _fmt(summary.predicted_median_attempts)
    )
    ci = summary.ci_time_s
    ci_text = f" (95% CI {_fmt(ci[0])}-{_fmt(ci[1])})" if ci else ""
    table.add_row(
        "median time to poison",
        _fmt(summary.median_time_s, " s") + ci_text,
        _fmt(summary.predicted_median_time_s, " s"),
    )
    table.add_row("median forged replies", _fmt(summary.median_packets), "")
    if summary.ratio is not None:
        table.add_row("measured / predicted", f"{summary.ratio:.2f}", "")
    table.add_row("wall time", f"{summary.wall_time_s:.2f} s", "")
    console.print(table)
    refused: dict[str, int] = {}
    for r in results:
        for key, count in r.reasons.items():
            refused[key] = refused.get(key, 0) + count
    dnssec = {k: refused.pop(k) for k in list(refused) if k.startswith("dnssec_")}
    if refused:
        console.print(f"forged replies refused by the resolver's checks (all trials): {refused}")
    if dnssec:
        console.print(
            "DNSSEC validation (all trials): forged data found bogus and not served "
            f"(SERVFAIL to clients): {dnssec}"
        )
    if out is not None:
        console.print(f"records: {out}")
