"""Benchmark: where cold-resolution latency goes, beside the floor for any Python process.

Owns: re-running itself in a private user+network+PID namespace with the lab world (as
bench/resolver_bench.py does, with its functions), and there asking resolver_bench's cold
names (`cold_names()`, 50 ms apart) of fresh resolvers, in alternating turns:
1. on loopback as the resolver bench does: ours and Unbound, and `bench/python_relay.py`,
   which relays each query to a root server in one round trip and reads no DNS, so its
   latency is the least any Python process on this machine spends on a name needing one
   upstream query; each resolver's latencies are also split by how many upstream queries
   the name took (0, 1, 2, 3+), so one upstream round trip of ours is compared with one
   of Unbound's;
2. with every answer of the world's servers held `--rtt-ms` (an Internet-like round trip
   to authoritative servers; `AuthServer.answer_delay`), ours and Unbound.
It prints both tables; with `--write FILE`, its own section of that file (`bench:cold-floor`).
It judges no target (resolver_bench's cold median is the one that counts) and exits 0
unless something could not run.
Must never: run outside the namespace it made, leave a process it started running, touch
another section of BENCHMARKS.md, or print a figure it did not measure in this run.

Run: `.venv/bin/python bench/cold_floor.py [--rtt-ms 10] [--write BENCHMARKS.md]`.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

from auth_bench import HOST, BenchError, Server, cpu_seconds, free_port, sigterm_as_exit
from resolver_bench import (
    COLD_PAUSE,
    COLD_TURNS,
    INNER_ENV,
    WORLD_PORT,
    Cold,
    WorldThread,
    ask_each,
    check_namespace,
    cold_names,
    cold_run,
    lab_bench,
    pooled,
    responds,
    run_as_script,
    run_in_namespace,
)
from sections import write_section

from poisonproof.lab.targets import TargetError

RELAY = "python relay"
RESOLVERS = ("poisonproof", "unbound")
BUCKETS = (0, 1, 2, 3)
"""Upstream queries per name; the last bucket holds that many and more."""

BUDGET = 900.0
"""Seconds the whole run may take (about 3 minutes here) before it is stopped."""

Names = list[tuple[str, str]]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rtt-ms", type=float, default=10.0, help="hold each world answer this long (ms)"
    )
    parser.add_argument("--write", type=Path, help="also write its section of this Markdown file")
    args = parser.parse_args(argv)
    if not 0 < args.rtt_ms <= 200:
        parser.error("--rtt-ms must be more than 0 and at most 200")
    return args


def relay_run(workdir: Path, world: WorldThread, names: Names, turn: int) -> Cold:
    """A fresh `python_relay.py` to the first root server, asked each name in turn."""
    port = free_port()
    root = world.running.world.root_servers[0].address
    script = Path(__file__).resolve().parent / "python_relay.py"
    relay = Server(
        RELAY,
        [
            sys.executable,
            str(script),
            "--listen",
            f"{HOST}:{port}",
            "--upstream",
            f"{root}:{WORLD_PORT}",
        ],
        port,
        workdir / f"relay-{turn}.log",
    )
    relay.start(lambda: responds(port))
    try:
        before = cpu_seconds(relay.pid)
        answered, upstream = ask_each(port, names, world, COLD_PAUSE)
        return Cold(RELAY, answered, upstream, cpu_seconds(relay.pid) - before)
    finally:
        relay.stop()


def turns(runners: dict[str, Callable[[int], Cold]], label: str, warm_up: bool) -> dict[str, Cold]:
    """Each runner COLD_TURNS times in alternating order (A B C, C B A, ...), pooled; with
    `warm_up`, one unmeasured run of each first."""
    order = list(runners)
    if warm_up:
        for name in order:
            runners[name](-1)
    runs: dict[str, list[Cold]] = {name: [] for name in order}
    for turn in range(COLD_TURNS):
        for name in order if turn % 2 == 0 else order[::-1]:
            print(f"{label}: {name} (turn {turn + 1}/{COLD_TURNS}) ...", flush=True)
            runs[name].append(runners[name](turn))
    return {name: pooled(done) for name, done in runs.items()}


def hold_answers(world: WorldThread, seconds: float) -> None:
    """Every world server holds each answer `seconds` before sending it (0: at once)."""
    for server in world.running.auth_servers:
        server.answer_delay = seconds


def by_upstream(cold: Cold) -> dict[int, list[float]]:
    """Latencies (s) of the answered names, by upstream queries (the last bucket: more too)."""
    buckets: dict[int, list[float]] = {bucket: [] for bucket in BUCKETS}
    for latency, upstream in zip(cold.answered, cold.upstream, strict=True):
        if latency is not None:
            buckets[min(upstream, BUCKETS[-1])].append(latency)
    return buckets


def cell(latencies: list[float]) -> str:
    if not latencies:
        return "-"
    return f"{statistics.median(latencies) * 1000:.2f} ({len(latencies)})"


def loopback_table(colds: dict[str, Cold]) -> list[str]:
    heads = " | ".join(
        f"{bucket}{'+' if bucket == BUCKETS[-1] else ''} upstream" for bucket in BUCKETS
    )
    lines = [
        f"| process | median ms | upstream / name | failed | CPU ms / name | {heads} |",
        "|---|---:|---:|---:|---:|" + "---:|" * len(BUCKETS),
    ]
    for name, cold in colds.items():
        buckets = by_upstream(cold)
        lines.append(
            f"| {name} | {cold.median * 1000:.2f} | {cold.upstream_per_name:.2f} "
            f"| {cold.failed} | {cold.cpu_ms_per_name:.2f} | "
            + " | ".join(cell(buckets[bucket]) for bucket in BUCKETS)
            + " |"
        )
    return lines


def rtt_table(colds: dict[str, Cold]) -> list[str]:
    unbound = colds["unbound"].median
    lines = [
        "| resolver | median ms | median / Unbound | upstream / name | failed |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, cold in colds.items():
        lines.append(
            f"| {name} | {cold.median * 1000:.2f} | {cold.median / unbound:.2f} "
            f"| {cold.upstream_per_name:.2f} | {cold.failed} |"
        )
    return lines


def findings(loopback: dict[str, Cold]) -> list[str]:
    """What the loopback figures say about resolver_bench's 1.2x cold-median target."""
    ours, unbound, relay = loopback["poisonproof"], loopback["unbound"], loopback[RELAY]
    one_ours = by_upstream(ours)[1]
    one_unbound = by_upstream(unbound)[1]
    limit = 1.2 * unbound.median
    floor = relay.median
    lines = [
        f"- Unbound's median name took {unbound.median * 1000:.2f} ms; 1.2x that is "
        f"{limit * 1000:.2f} ms. The relay, one upstream round trip and nothing else, took "
        f"{floor * 1000:.2f} ms ({floor / unbound.median:.2f}x Unbound's median), leaving "
        f"{(limit - floor) * 1000:.2f} ms for everything a resolver does on a name beyond "
        "that round trip (parse, look up the delegation, check and scrub the reply, cache, "
        "answer), the 50 ms idle before each name included.",
    ]
    if one_ours and one_unbound:
        ours_one = statistics.median(one_ours)
        lines.append(
            f"- Names that took one upstream query: ours {ours_one * 1000:.2f} ms, Unbound "
            f"{statistics.median(one_unbound) * 1000:.2f} ms, the relay "
            f"{floor * 1000:.2f} ms: ours spends {(ours_one - floor) * 1000:.2f} ms beyond "
            "the round trip."
        )
    return lines


def bench(args: argparse.Namespace) -> int:
    """Inside the namespace: both parts; prints (and writes) the section."""
    check_namespace()
    names = cold_names()
    with lab_bench("cold-floor-") as (workdir, _, hints, world):

        def resolver(name: str) -> Callable[[int], Cold]:
            def run(turn: int) -> Cold:
                try:
                    return cold_run(name, workdir, hints, world, names, turn)
                except TargetError as error:
                    raise BenchError(str(error)) from None

            return run

        runners = {name: resolver(name) for name in RESOLVERS}
        relay = {RELAY: lambda turn: relay_run(workdir, world, names, turn)}
        loopback = turns({**runners, **relay}, "loopback", warm_up=True)
        hold_answers(world, args.rtt_ms / 1000)
        try:
            delayed = turns(runners, f"answers held {args.rtt_ms:g} ms", warm_up=False)
        finally:
            hold_answers(world, 0.0)
    body = section(args, names, loopback, delayed)
    print()
    print(body)
    if args.write:
        write_section(args.write, "cold-floor", body)
        print(f"\nwrote the cold-floor section of {args.write}")
    return 0


def section(
    args: argparse.Namespace, names: Names, loopback: dict[str, Cold], delayed: dict[str, Cold]
) -> str:
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = " ".join([".venv/bin/python bench/cold_floor.py", *sys.argv[1:]])
    return "\n".join(
        [
            "## Cold resolution: where the time goes, and the floor for Python",
            "",
            f"Run of {when}: `{command}` (the machine of the sections above, in a private "
            "namespace with the lab world). The same "
            f"{len(names)} cold names as the resolver bench, {COLD_TURNS} fresh runs per "
            "process in alternating order after one unmeasured run of each, 50 ms between "
            "names. The **python relay** (`bench/python_relay.py`) is not a resolver: it "
            "sends each query from a fresh random port to a root server and relays the "
            "reply, reading nothing but the ID, so it is what one upstream round trip costs "
            "a Python process on uvloop here. Cells: median ms (names) of the names that took "
            "that many upstream queries.",
            "",
            *loopback_table(loopback),
            "",
            *findings(loopback),
            "",
            f"With every answer of the world's servers held {args.rtt_ms:g} ms (an "
            "Internet-like round trip to authoritative servers; resolvers fresh again, the "
            "same names):",
            "",
            *rtt_table(delayed),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    given = argv if argv is not None else sys.argv[1:]
    args = parse_args(given)
    if INNER_ENV not in os.environ:
        with sigterm_as_exit():
            return run_in_namespace(given, BUDGET, Path(__file__))
    with sigterm_as_exit():  # as PID 1 of its namespace it ignores signals it does not handle
        return bench(args)


if __name__ == "__main__":
    run_as_script("cold_floor", main)
