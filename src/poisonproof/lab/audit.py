"""The spoofability audit of a resolver: what its upstream queries give away, and which
attacks it survives.

Owns: starting the target (one of `targets.TARGETS`) in the real-packet lab, making it
look up N fresh names in a zone whose server records every query (source port, ID, name
case, EDNS payload, cookie; the TLD's log shows QNAME minimisation), estimating the bits
an off-path attacker must guess (port and ID spread, 0x20), grading the port spread on
DNS-OARC's porttest scale, a port-versus-ID scatter plot, RFC 5452's estimate of the time
to poison at a stated attacker rate, and a report card from real attacks at a fixed budget.
Must never: audit or attack anything outside the lab's own namespaces.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import random
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from poisonproof.lab.attacks import TrialResult
from poisonproof.lab.real_mode import RESOLVER, RealArena, RealSetting
from poisonproof.lab.theory import ID_SPACE

PORTTEST_GREAT = 3980.0
PORTTEST_GOOD = 296.0
"""DNS-OARC porttest's grades of the standard deviation of source ports."""


@dataclass
class Spread:
    count: int
    distinct: int
    low: int
    high: int
    stdev: float
    bits: float
    """log2 of the spread a uniform draw with this standard deviation covers (≤ 16)."""
    sequential: bool = False


def spread(values: list[int]) -> Spread:
    if not values:
        return Spread(0, 0, 0, 0, 0.0, 0.0)
    stdev = statistics.pstdev(values) if len(values) > 1 else 0.0
    width = stdev * math.sqrt(12)  # a uniform range of this width has this deviation
    bits = min(16.0, math.log2(width)) if width > 1 else 0.0
    steps = {(b - a) % ID_SPACE for a, b in zip(values, values[1:], strict=False)}
    return Spread(
        len(values),
        len(set(values)),
        min(values),
        max(values),
        round(stdev, 1),
        round(bits, 2),
        sequential=len(values) > 2 and len(steps) == 1,
    )


def porttest_grade(stdev: float) -> str:
    if stdev >= PORTTEST_GREAT:
        return "GREAT"
    if stdev >= PORTTEST_GOOD:
        return "GOOD"
    return "POOR"


@dataclass
class AuditReport:
    target: str
    weakened: bool
    lookups: int
    queries_seen: int
    ports: Spread
    ids: Spread
    porttest: str
    case_randomized: float
    """Share of queries whose name had mixed case (0x20)."""
    case_bits: float
    edns_payloads: list[int]
    cookies: float
    qname_minimisation: bool
    bits_total: float
    rate: float
    window: float
    p_success_per_window: float
    expected_time_to_poison_s: float
    report_card: list[dict[str, object]] = field(default_factory=list)
    scatter_png: str = ""
    """The port/ID scatter plot, base64 PNG."""


def _letters(name: str) -> int:
    return sum(c.isalpha() for c in name.split(".")[0])


def observe(arena: RealArena, lookups: int, seed: int) -> tuple[list[dict[str, object]], bool]:
    """Make the target look up `lookups` fresh names; the attacker zone's log entries."""
    rng = random.Random(seed)
    names = [f"audit{rng.getrandbits(40):010x}.attacker.example." for _ in range(lookups)]
    script = (
        "import sys, dns.message, dns.query\n"
        "for n in sys.argv[1:]:\n"
        "    try:\n"
        f"        dns.query.udp(dns.message.make_query(n, 'A'), {RESOLVER!r}, timeout=2)\n"
        "    except Exception:\n"
        "        pass\n"
    )
    for start in range(0, len(names), 50):
        arena.net.run(
            "client",
            [sys.executable, "-c", script, *names[start : start + 50]],
            timeout=200,
            capture_output=True,
        )
    wanted = {n.lower() for n in names}
    records = [
        json.loads(line)
        for line in arena.attacker_log.read_text().splitlines()
        if json.loads(line).get("qname", "").lower() in wanted
    ]
    tld = (
        [json.loads(line) for line in arena.tld_log.read_text().splitlines()]
        if (arena.tld_log.exists())
        else []
    )
    # minimised: the TLD was asked about attacker.example itself (NS or A, RFC 9156), never
    # about the full names
    minimised = any(r.get("qname", "").lower() == "attacker.example." for r in tld) and not any(
        r.get("qname", "").lower() in wanted for r in tld
    )
    return records, minimised


def scatter(records: list[dict[str, object]]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    axes.scatter([r["port"] for r in records], [r["id"] for r in records], s=6)
    axes.set_xlim(0, 65535)
    axes.set_ylim(0, 65535)
    axes.set_xlabel("source port")
    axes.set_ylabel("transaction ID")
    axes.set_title("upstream queries: port vs ID (a good resolver fills the square)")
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def analyse(
    target: str,
    weakened: bool,
    lookups: int,
    records: list[dict[str, object]],
    minimised: bool,
    rate: float,
    window: float,
) -> AuditReport:
    """The report's figures from the upstream queries the probe zone's server logged."""
    ports = spread([int(r["port"]) for r in records])  # type: ignore[call-overload]
    ids = spread([int(r["id"]) for r in records])  # type: ignore[call-overload]
    names = [str(r["qname"]) for r in records]
    mixed = [n for n in names if n != n.lower() and n != n.upper()]
    case_share = len(mixed) / len(names) if names else 0.0
    case_bits = statistics.mean(_letters(n) for n in names) if case_share > 0.5 else 0.0
    total = ports.bits + (0.0 if ids.sequential else ids.bits) + case_bits
    p_s = min(1.0, rate * window / 2**total) if total else 1.0
    expected = window / p_s if p_s > 0 else math.inf
    return AuditReport(
        target=target,
        weakened=weakened,
        lookups=lookups,
        queries_seen=len(records),
        ports=ports,
        ids=ids,
        porttest=porttest_grade(ports.stdev),
        case_randomized=round(case_share, 3),
        case_bits=round(case_bits, 1),
        edns_payloads=sorted({int(r["payload"]) for r in records if r.get("payload")}),  # type: ignore[call-overload]
        cookies=round(sum(bool(r.get("cookie")) for r in records) / max(1, len(records)), 3),
        qname_minimisation=minimised,
        bits_total=round(total, 2),
        rate=rate,
        window=window,
        p_success_per_window=p_s,
        expected_time_to_poison_s=expected,
        scatter_png=scatter(records) if records else "",
    )


def card(attack: str, result: TrialResult, expected: float) -> dict[str, object]:
    """One report-card row from one real trial."""
    return {
        "attack": attack,
        "outcome": (f"poisoned after {result.packets:,} packets" if result.success else "survived"),
        "packets": result.packets,
        "windows": result.attempts,
        "forged_answers_accepted": result.reasons["forged_answers_accepted"],
        "rfc5452_time_to_poison_s": expected,
    }


def run_audit(
    target: str,
    *,
    weakened: bool = False,
    lookups: int = 200,
    rate: float = 20_000.0,
    window: float = 0.1,
    budget: int = 200_000,
    seed: int = 0,
    attacks: bool = True,
) -> AuditReport:
    setting = RealSetting(
        target=target,
        weakened=weakened,
        defenses="2008" if weakened else "default",
        window=window,
        rate=rate,
        budget_packets=budget,
        budget_seconds=60,
        tell_port=False,
    )
    with (
        tempfile.TemporaryDirectory(prefix="poisonproof-audit-") as tmp,
        RealArena(setting, Path(tmp)) as arena,
    ):
        resolver = arena.target(seed)
        resolver.start()
        try:
            records, minimised = observe(arena, lookups, seed)
        finally:
            resolver.stop()
        report = analyse(target, weakened, lookups, records, minimised, rate, window)
        if attacks:
            for forgery in ("referral", "answer"):
                arena.setting = RealSetting(**{**asdict(setting), "forgery": forgery})
                result = arena.run_trial(seed + 1)
                report.report_card.append(
                    card(f"kaminsky ({forgery})", result, report.expected_time_to_poison_s)
                )
    return report


def to_html(report: AuditReport) -> str:
    r = report
    rows = "".join(
        f"<tr><td>{html.escape(str(c['attack']))}</td><td>{html.escape(str(c['outcome']))}</td>"
        f"<td>{c['windows']}</td><td>{c['forged_answers_accepted']}</td></tr>"
        for c in r.report_card
    )
    image = (
        f'<img alt="port vs ID" src="data:image/png;base64,{r.scatter_png}">'
        if r.scatter_png
        else ""
    )
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>poisonproof audit: {html.escape(r.target)}</title></head><body>
<h1>Spoofability audit: {html.escape(r.target)}{" (weakened)" if r.weakened else ""}</h1>
<p>{r.queries_seen} upstream queries seen for {r.lookups} lookups.</p>
<table border="1">
<tr><th>source ports</th><td>{r.ports.distinct} distinct, {r.ports.low}-{r.ports.high},
 std dev {r.ports.stdev} ({r.porttest}), ~{r.ports.bits} bits</td></tr>
<tr><th>transaction IDs</th><td>std dev {r.ids.stdev}, ~{r.ids.bits} bits
 {"(sequential!)" if r.ids.sequential else ""}</td></tr>
<tr><th>0x20 case</th><td>{r.case_randomized:.0%} of queries, ~{r.case_bits} bits</td></tr>
<tr><th>EDNS payload</th><td>{r.edns_payloads}</td></tr>
<tr><th>cookies</th><td>{r.cookies:.0%}</td></tr>
<tr><th>QNAME minimisation</th><td>{"yes" if r.qname_minimisation else "no"}</td></tr>
<tr><th>bits to guess</th><td>{r.bits_total}</td></tr>
<tr><th>RFC 5452 at {r.rate:,.0f} forged replies/s, {r.window} s window</th>
<td>P_s = {r.p_success_per_window:.3g} per window; expected time to poison
 {r.expected_time_to_poison_s:,.1f} s</td></tr>
</table>
{image}
<h2>Report card (real spoofed packets, fixed budget)</h2>
<table border="1"><tr><th>attack</th><th>result</th><th>windows</th>
<th>forged answers accepted</th></tr>{rows}</table>
</body></html>
"""


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="poisonproof audit")
    parser.add_argument("--target", required=True)
    parser.add_argument("--weakened", action="store_true")
    parser.add_argument("--lookups", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20_000.0)
    parser.add_argument("--window", type=float, default=0.1)
    parser.add_argument("--budget", type=int, default=200_000)
    parser.add_argument("--no-attacks", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--html", type=Path)
    parser.add_argument("--probe-net", default="127.53")
    parser.add_argument("--probe-port", type=int, default=53)
    args = parser.parse_args(argv)
    try:
        if ":" in args.target:  # IP:PORT: a resolver already running on loopback
            from poisonproof.lab.audit_loopback import ProbeAddresses, run_loopback_audit

            report = run_loopback_audit(
                args.target,
                lookups=args.lookups,
                rate=args.rate,
                window=args.window,
                budget=args.budget,
                attacks=not args.no_attacks,
                addresses=ProbeAddresses.on(args.probe_net, args.probe_port),
            )
        else:
            report = run_audit(
                args.target,
                weakened=args.weakened,
                lookups=args.lookups,
                rate=args.rate,
                window=args.window,
                budget=args.budget,
                attacks=not args.no_attacks,
            )
    except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.html:
        args.html.write_text(to_html(report))
    data = asdict(report)
    data.pop("scatter_png")
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        print(
            f"{report.target}: ports {report.ports.distinct} distinct, std dev "
            f"{report.ports.stdev} ({report.porttest}); IDs ~{report.ids.bits} bits; 0x20 "
            f"{report.case_randomized:.0%}; cookies {report.cookies:.0%}; qmin "
            f"{'yes' if report.qname_minimisation else 'no'}; {report.bits_total} bits to guess; "
            f"RFC 5452: {report.expected_time_to_poison_s:,.1f} s to poison at "
            f"{report.rate:,.0f}/s"
        )
        for card in report.report_card:
            print(f"  {card['attack']}: {card['outcome']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
