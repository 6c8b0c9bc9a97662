"""Reports built from trial records (JSONL), never from memory: PNG plots and one page.

Owns: reading the records a run or sweep appended, grouping them by setting, and drawing
(1) the share of trials poisoned within x forged replies beside RFC 5452's curve
P_cs = 1 − (1 − P_s)^(x / (R·W)), and (2) the median time to poison per defense setting on a
log scale (measured where trials succeeded, RFC 5452's estimate where none did); then a
self-contained HTML page (plots inlined) with the summary table.
Must never: rerun trials; a report shows exactly what the records hold.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import fields
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from poisonproof.lab.arena import ArenaParams  # noqa: E402
from poisonproof.lab.attacks import AttackName, AttackParams, TrialResult  # noqa: E402
from poisonproof.lab.trials import Setting, Summary, summarize  # noqa: E402


class ReportError(Exception):
    """Records that cannot be reported on; the message names the file and line."""


def load_records(path: Path) -> dict[str, tuple[Setting, list[TrialResult]]]:
    """Records grouped by setting (key: the setting's JSON)."""
    groups: dict[str, tuple[Setting, list[TrialResult]]] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise ReportError(f"{path}: cannot read: {error.strerror or error}") from None
    names = {f.name for f in fields(TrialResult)}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            key = record["setting"]
            result = TrialResult(**{k: v for k, v in record["result"].items() if k in names})
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ReportError(f"{path}:{number}: not a trial record ({error})") from None
        group_key = json.dumps(key, sort_keys=True)
        if group_key not in groups:
            groups[group_key] = (_setting(key), [])
        groups[group_key][1].append(result)
    if not groups:
        raise ReportError(f"{path}: no trial records")
    return groups


def _setting(key: dict[str, object]) -> Setting:
    arena = ArenaParams(
        servers=int(key["arena_servers"]),  # type: ignore[arg-type]
        window=float(key["arena_window"]),  # type: ignore[arg-type]
        ttl=int(key["arena_ttl"]),  # type: ignore[arg-type]
        client_latency=float(key["arena_client_latency"]),  # type: ignore[arg-type]
        attacker_latency=float(key["arena_attacker_latency"]),  # type: ignore[arg-type]
        signed=bool(key.get("arena_signed", False)),
        victim_signed=bool(key.get("arena_victim_signed", True)),
    )
    params = AttackParams(
        rate=float(key["rate"]),  # type: ignore[arg-type]
        budget_packets=int(key["budget_packets"]),  # type: ignore[arg-type]
        budget_time=float(key["budget_time"]),  # type: ignore[arg-type]
        per_packet=bool(key["per_packet"]),
        duplicates=int(key.get("duplicates", 100)),  # type: ignore[arg-type]
    )
    pool = key.get("port_pool")
    return Setting(
        AttackName(str(key["attack"])),
        str(key["defenses"]),
        arena,
        params,
        port_pool=None if pool is None else int(pool),  # type: ignore[arg-type]
    )


def _label(setting: Setting) -> str:
    pool = f", pool {setting.port_pool}" if setting.port_pool else ""
    zones = f", zones {setting.arena.dnssec_label}" if setting.arena.signed else ""
    return (
        f"{setting.attack.value} vs {setting.defenses}{pool}{zones}, "
        f"N={setting.arena.servers}, "
        f"W={setting.arena.window * 1000:.0f} ms, R={setting.attack_params.rate:,.0f}/s"
    )


def plot_success_vs_packets(
    groups: dict[str, tuple[Setting, list[TrialResult]]], out: Path
) -> Path:
    figure, axes = plt.subplots(figsize=(8, 5))
    for setting, results in groups.values():
        won = sorted(r.packets for r in results if r.success)
        if not won:
            continue
        n = len(results)
        xs = [0, *won]
        ys = [0.0, *[(i + 1) / n for i in range(len(won))]]
        line = axes.step(xs, ys, where="post", label=f"measured: {_label(setting)}")[0]
        p_s = setting.theory().p_success
        per_window = setting.attack_params.rate * setting.arena.window
        top = max(won) * 1.2
        grid = [top * i / 200 for i in range(201)]
        theory = [1 - (1 - p_s) ** (x / per_window) if p_s < 1 else 1.0 for x in grid]
        axes.plot(grid, theory, linestyle="--", color=line.get_color(), label="RFC 5452 P_cs")
    axes.set_xlabel("forged replies sent")
    axes.set_ylabel("share of trials poisoned")
    axes.set_title("Success probability vs forged replies")
    axes.set_ylim(0, 1.02)
    axes.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    path = out / "success_vs_packets.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_time_per_defense(summaries: list[tuple[Setting, Summary]], out: Path) -> Path:
    figure, axes = plt.subplots(figsize=(8, max(3.0, 0.45 * len(summaries) + 1.5)))
    labels, values, measured = [], [], []
    for setting, summary in summaries:
        zones = f" ({setting.arena.dnssec_label})" if setting.arena.signed else ""
        labels.append(f"{setting.attack.value} / {setting.defenses}{zones}")
        if summary.median_time_s is not None:
            values.append(summary.median_time_s)
            measured.append(True)
        else:
            values.append(summary.predicted_median_time_s)
            measured.append(False)
    finite = [v for v in values if math.isfinite(v)] or [1.0]
    values = [v if math.isfinite(v) else max(finite) * 10 for v in values]
    colors = ["tab:red" if m else "tab:gray" for m in measured]
    axes.barh(labels, values, color=colors, hatch=None)
    axes.set_xscale("log")
    axes.set_xlabel("median time to poison (s, log scale): red measured, grey RFC 5452 estimate")
    axes.set_title("Time to poison per attack and defense setting")
    figure.tight_layout()
    path = out / "time_per_defense.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _inline(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def build_report(records: Path, out: Path) -> Path:
    """Write the two PNGs and `report.html` into `out`; return the page's path."""
    groups = load_records(records)
    out.mkdir(parents=True, exist_ok=True)
    summaries = [(setting, summarize(setting, results)) for setting, results in groups.values()]
    first = plot_success_vs_packets(groups, out)
    second = plot_time_per_defense(summaries, out)
    rows = []
    for setting, s in summaries:
        measured = "-" if s.median_time_s is None else f"{s.median_time_s:.3f} s"
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(v))}</td>"
                for v in (
                    _label(setting),
                    f"{s.successes}/{s.trials}",
                    measured,
                    f"{s.predicted_median_time_s:.3g} s",
                    f"{s.predicted_p_success:.3g}",
                )
            )
            + "</tr>"
        )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>poisonproof lab report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:70em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:.3em .6em}}
img{{max-width:100%;display:block;margin:1em 0}}</style></head><body>
<h1>poisonproof lab report</h1>
<p>From {html.escape(str(records))}: {sum(s.trials for _, s in summaries)} trials in
{len(summaries)} settings. Predictions: RFC 5452 §7.</p>
<table><tr><th>setting</th><th>poisoned</th><th>median time</th><th>RFC 5452 median</th>
<th>P_s per window</th></tr>
{"".join(rows)}
</table>
<h2>Success probability vs forged replies</h2>
{_inline(first)}
<h2>Time to poison per defense setting</h2>
{_inline(second)}
</body></html>
"""
    path = out / "report.html"
    path.write_text(page)
    return path


__all__ = ["ReportError", "build_report", "load_records"]
