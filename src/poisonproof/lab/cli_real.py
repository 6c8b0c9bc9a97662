"""`poisonproof lab attack NAME --mode real`: trials with real spoofed packets.

Owns: turning the attack command's options into a `RealSetting`, live progress, the
results table beside RFC 5452's prediction at the measured packets per window, `--json`,
and appending each trial to the JSONL record file.
Must never: build namespaces or send packets itself (`real_mode` and the attacker do).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from poisonproof.lab.attacks import TrialResult
from poisonproof.lab.real_mode import RealSetting, run_real_trials
from poisonproof.lab.theory import Attempt, median_attempts


def predicted(setting: RealSetting) -> dict[str, float]:
    """RFC 5452 §7 for a one-port target: P_s = D·R·W / (N·P·I), P = 1 (D: identical
    questions in flight, the birthday attack's copies; N = 1 for the forwarder)."""
    attempt = Attempt(
        rate=setting.rate,
        window=setting.window,
        servers=1 if setting.attack == "forwarder" else setting.servers,
        identical=setting.duplicates if setting.attack == "birthday" else 1,
    )
    attempts = median_attempts(attempt.p_success)
    return {
        "p_success": attempt.p_success,
        "median_attempts": attempts,
        "median_packets": attempts * attempt.guesses,
    }


def summary(setting: RealSetting, results: list[TrialResult]) -> dict[str, object]:
    won = [r for r in results if r.success]
    notes = [json.loads(r.note) for r in results if r.note]
    windows = [n["measured_window_s"] for n in notes if n.get("measured_window_s")]
    delivered = [r.reasons.get("udp_delivered_to_target", -1) for r in results]
    dropped = [r.reasons.get("udp_dropped_rcvbuf", -1) for r in results]
    sent = sum(r.packets for r in results)
    theory = predicted(setting)
    return {
        "setting": setting.key(),
        "trials": len(results),
        "successes": len(won),
        "median_packets": statistics.median(r.packets for r in won) if won else None,
        "median_attempts": statistics.median(r.attempts for r in won) if won else None,
        "median_time_s": statistics.median(r.sim_time for r in won) if won else None,
        "predicted_p_success": theory["p_success"],
        "predicted_median_attempts": theory["median_attempts"],
        "predicted_median_packets": theory["median_packets"],
        "window_source": notes[0].get("window_source") if notes else None,
        "measured_window_s": statistics.median(windows) if windows else None,
        "packets_sent": sent,
        "datagrams_delivered_to_target": sum(delivered)
        if min(delivered, default=-1) >= 0
        else None,
        "datagrams_dropped_full_buffer": sum(dropped) if min(dropped, default=-1) >= 0 else None,
    }


RERUN_FLAG = "POISONPROOF_IN_USER_NAMESPACE"
FORCE_USERNS = "POISONPROOF_USERNS"
"""Set to 1: take the unprivileged path (a user namespace) even as root — what a user who
is not root gets, with the same program (tests use it)."""


def unprivileged_rerun(console: Console) -> None:
    """Not root: run this same command again as root of a user namespace (or say why not).

    Returns only when this process may build the lab itself (root, or already re-run)."""
    from poisonproof.lab.netns import LabNet, run_in_user_namespace, userns_available

    ok, why = LabNet.available()
    if os.environ.get(FORCE_USERNS) == "1" and not os.environ.get(RERUN_FLAG):
        ok = False
    if ok or os.environ.get(RERUN_FLAG):
        if not ok:
            console.print(f"[red]error:[/] the namespace lab cannot be built: {why}")
            raise typer.Exit(2)
        return
    usable, reason = userns_available()
    if not usable:
        console.print(f"[red]error:[/] the real-packet lab needs root or user namespaces: {reason}")
        raise typer.Exit(2)
    console.print("not root: running the real-packet lab inside an unprivileged user namespace")
    code = run_in_user_namespace(
        [sys.executable, "-m", "poisonproof", *sys.argv[1:]], env={**os.environ, RERUN_FLAG: "1"}
    )
    raise typer.Exit(code)


def run_real(
    setting: RealSetting, trials: int, seed: int, out: Path | None, as_json: bool
) -> dict[str, object]:
    console = Console(stderr=True)
    results: list[TrialResult] = []

    def record(result: TrialResult) -> None:
        results.append(result)
        if out is not None:
            with out.open("a") as handle:
                handle.write(json.dumps({**setting.key(), **result.to_json()}) + "\n")
        console.print(
            f"trial {result.seed}: {'poisoned' if result.success else 'survived'} after "
            f"{result.attempts} attempts, {result.packets:,} forged replies, "
            f"{result.sim_time:.2f} s",
            highlight=False,
        )

    run_real_trials(setting, trials, seed, on_result=record)
    result = summary(setting, results)
    if as_json:
        print(json.dumps(result, indent=2, default=str))
        return result
    table = Table(title=f"{setting.attack}, real packets, against {setting.target}")
    for column in ("", "measured", "RFC 5452"):
        table.add_column(column, justify="right")
    table.add_row(
        "success",
        f"{result['successes']}/{result['trials']}",
        f"P_s = {result['predicted_p_success']:.3g} per window",
    )
    table.add_row(
        "median attempts", str(result["median_attempts"]), str(result["predicted_median_attempts"])
    )
    table.add_row(
        "median forged replies",
        str(result["median_packets"]),
        str(result["predicted_median_packets"]),
    )
    table.add_row("median time to poison", f"{result['median_time_s']} s", "")
    table.add_row(
        "race window",
        f"{result['measured_window_s']} s ({result['window_source']})",
        f"{setting.window} s",
    )
    table.add_row(
        "forged sent / delivered / dropped (full buffer)",
        f"{result['packets_sent']:,} / {result['datagrams_delivered_to_target']} / "
        f"{result['datagrams_dropped_full_buffer']}",
        "",
    )
    Console().print(table)
    return result
