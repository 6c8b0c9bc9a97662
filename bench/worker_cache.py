"""Benchmark: `serve --workers 2` with a private cache per worker beside one shared table.

Owns: re-running itself in a private user+network+PID namespace (as bench/resolver_bench.py
does, with its functions), where the lab world serves on port 53 of its own loopback;
starting `serve --workers 2 --worker-cache private` and `... --worker-cache shared`;
warming each with every name of resolver_bench's query file asked from 16 source ports
(counting the queries the world answers meanwhile); running dnsperf against them in
alternating turns (A B A B), counting upstream queries; and printing per mode the upstream
queries to warm, queries per second, CPU microseconds per query (all workers), and the
workers' memory (sum of RSS and of PSS: a page of the shared table counts in the RSS of
every worker that touched it, and once in the PSS sum).
With `--write FILE`, also its own section of that Markdown file (`bench:workers`).
Must never: run outside the private namespace it made, leave a process it started
running, touch another section of BENCHMARKS.md, or print a figure it did not measure in
this run.

Run: `.venv/bin/python bench/worker_cache.py [--duration 5] [--rounds 2] [--write BENCHMARKS.md]`.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from auth_bench import (
    BenchError,
    Run,
    Server,
    cpu_seconds,
    need,
    results_table,
    sigterm_as_exit,
)
from resolver_bench import (
    INNER_ENV,
    alternating_turns,
    check_namespace,
    lab_bench,
    ours,
    run_as_script,
    run_in_namespace,
    warm_workers,
)
from sections import write_section

from poisonproof.resolver.shared_answers import SLOTS, table_size
from poisonproof.server.workers import worker_pids

WORKERS = 2
MODES = ("private", "shared")
"""`serve --worker-cache` values, in turn order."""


@dataclass(frozen=True)
class Memory:
    rss_kb: int
    pss_kb: int


def status_kb(path: Path, field: str) -> int:
    """The value in kB of `field` (e.g. VmRSS, Pss) in a /proc status-like file."""
    for line in path.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise BenchError(f"no {field} in {path}")


def workers_memory(server: Server) -> Memory:
    pids = worker_pids(server.pid)
    rss = sum(status_kb(Path(f"/proc/{pid}/status"), "VmRSS") for pid in pids)
    pss = sum(status_kb(Path(f"/proc/{pid}/smaps_rollup"), "Pss") for pid in pids)
    return Memory(rss, pss)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="dnsperf -l per turn (s)")
    parser.add_argument("--rounds", type=int, default=2, help="turns per mode")
    parser.add_argument("--clients", type=int, default=4, help="dnsperf -c")
    parser.add_argument("--outstanding", type=int, default=100, help="dnsperf -q")
    parser.add_argument("--write", type=Path, help="also write its section of this Markdown file")
    return parser.parse_args(argv)


def per_worker_cpu(server: Server) -> list[float]:
    """utime+stime of each worker process of `server`, in PID order (s)."""
    return [cpu_seconds(pid) for pid in sorted(worker_pids(server.pid))]


def cpu_split(before: list[float], after: list[float]) -> str:
    """Each worker's share of the workers' CPU between two readings, e.g. `71/29`."""
    used = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(used) or 1.0
    return "/".join(f"{100 * u / total:.0f}" for u in sorted(used, reverse=True))


def summary(
    runs: list[Run],
    warming: dict[str, int],
    upstream: dict[str, int],
    memory: dict[str, Memory],
    split: dict[str, str],
) -> list[str]:
    lines = [
        "| worker cache | upstream queries to warm | queries/s | CPU µs/query (all workers) "
        "| CPU split across workers (%) | upstream during turns | workers' RSS | workers' PSS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode, server_name in zip(MODES, target_names(), strict=True):
        mine = [run for run in runs if run.target == server_name]
        qps = statistics.mean(run.qps for run in mine)
        cpu = statistics.mean(run.cpu_us_per_query for run in mine)
        lines.append(
            f"| {mode} | {warming[mode]} | {qps:,.0f} | {cpu:.1f} | {split[mode]} "
            f"| {upstream[mode]} "
            f"| {memory[mode].rss_kb / 1024:.1f} MB | {memory[mode].pss_kb / 1024:.1f} MB |"
        )
    lines += [
        "",
        f"The shared table is a file of {table_size(SLOTS) / 1e6:.1f} MB in /dev/shm "
        f"({SLOTS:,} slots), allocated when made; only the pages a worker touched count "
        "in its RSS.",
        "",
        "The kernel spreads dnsperf's 4 client sockets over the workers by a hash of their "
        "addresses, so each mode gets its own split (the CPU split column): the more "
        "evenly the queries are spread, the smaller each worker's batches (datagrams per "
        "wake-up), and the more CPU per query. Compare the CPU per query of the two modes "
        "only at similar splits.",
    ]
    return lines


def target_names() -> list[str]:
    return [f"poisonproof-{WORKERS}w-{mode}" for mode in MODES]


def bench(args: argparse.Namespace) -> int:
    """Inside the namespace: both modes, warmed and driven in turns; prints the results."""
    check_namespace()
    dnsperf = need("dnsperf", "/usr/bin/dnsperf")
    servers: dict[str, Server] = {}
    with sigterm_as_exit(), lab_bench("worker-cache-bench-") as (workdir, query_file, hints, world):
        try:
            warming: dict[str, int] = {}
            for mode in MODES:
                servers[mode] = ours(workdir, hints, WORKERS, mode)
                print(f"warming {servers[mode].name} ...", flush=True)
                warming[mode] = warm_workers(servers[mode], world)
            cpu_before = {mode: per_worker_cpu(server) for mode, server in servers.items()}
            turns = alternating_turns(list(servers.values()), world, dnsperf, query_file, args)
            runs = [run for run, _ in turns]
            mode_of = {server.name: mode for mode, server in servers.items()}
            upstream = dict.fromkeys(MODES, 0)
            for run, answered in turns:
                upstream[mode_of[run.target]] += answered
            memory = {mode: workers_memory(server) for mode, server in servers.items()}
            split = {
                mode: cpu_split(cpu_before[mode], per_worker_cpu(server))
                for mode, server in servers.items()
            }
        finally:
            for server in servers.values():
                server.stop()
    table = results_table(runs)
    lines = summary(runs, warming, upstream, memory, split)
    print()
    print("\n".join(table))
    print()
    print("\n".join(lines))
    if args.write:
        write_section(args.write, "workers", section(args, table, lines))
        print(f"\nwrote the workers section of {args.write}")
    return 0


def section(args: argparse.Namespace, table: list[str], lines: list[str]) -> str:
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = " ".join([".venv/bin/python bench/worker_cache.py", *sys.argv[1:]])
    return "\n".join(
        [
            f"## `serve --workers {WORKERS}`: a cache per worker, or one answer table shared",
            "",
            f"Run of {when}: `{command}` (the machine of the sections above; in a private "
            "namespace with the lab world, like the resolver bench). Both modes are warmed "
            "with every name of the resolver bench's query file asked from 16 source ports "
            "(so the kernel spreads them over both workers), then driven by dnsperf in "
            "turns (A B A B).",
            "",
            *lines,
            "",
            "<details><summary>every turn</summary>",
            "",
            *table,
            "",
            "</details>",
            "",
            "**Chosen: shared (the default of `--worker-cache`).** A cached query costs the "
            "same in both modes (a shared entry is taken into the worker's own cache on its "
            "first miss, so every later hit is a local one); a name is resolved about once "
            "instead of once per worker, so there are fewer upstream queries (fewer chances "
            "for an off-path forger) and a client whose queries reach another worker gets "
            "the cached answer instead of waiting for a resolution. The price is a fixed "
            "table in /dev/shm. What one worker's full path rendered (scrubbed and "
            "validated) is what the others serve: a poisoned reply would reach all workers, "
            "not 1/N of them, which is also true of a single process. `--worker-cache "
            "private` keeps one cache per process.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    given = argv if argv is not None else sys.argv[1:]
    args = parse_args(given)
    if INNER_ENV not in os.environ:
        budget = len(MODES) * args.rounds * (args.duration + 60) + 300
        with sigterm_as_exit():
            return run_in_namespace(given, budget, Path(__file__))
    with sigterm_as_exit():  # as PID 1 of its namespace it ignores signals it does not handle
        return bench(args)


if __name__ == "__main__":
    run_as_script("worker_cache", main)
