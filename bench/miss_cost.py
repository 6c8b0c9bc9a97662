"""Benchmark: the cost of a cold resolution, to compare two versions of the miss path.

Owns: resolving resolver_bench's cold names (`cold_names()`, 60 lab-world questions) with a
fresh `serve`-configured resolver per run, all in one process beside the lab world: on the
simulated network (default) or on real loopback sockets (`--network real`, inside a private
user+network+PID namespace made with resolver_bench's `run_in_namespace`). It prints the
thread CPU per name (lowest and median over the runs after the first); with
`--instructions` it re-runs itself under valgrind's callgrind and prints the instructions
executed per name, world and client included, counted only over the measured runs (the
first run, which loads modules and fills memos, is not counted). Instruction counts repeat
to about 0.3% from run to run where CPU time on this VM moves by 30%: use them to tell
whether a change to the miss path made it cheaper, and the cold bench
(`resolver_bench.py --only cold`) to see what that does to latency.
Must never: send a packet off loopback or outside the namespace it made (the real network
runs only inside it), or write to any file.

Run: `.venv/bin/python bench/miss_cost.py [--network sim|real] [--runs 4] [--instructions]`.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import dns.message
from resolver_bench import (
    INNER_ENV,
    BenchError,
    check_namespace,
    cold_names,
    run_as_script,
    run_in_namespace,
)

from poisonproof.lab.world import start_world
from poisonproof.net.base import Network
from poisonproof.net.real import RealNetwork
from poisonproof.net.real import run as run_real
from poisonproof.net.sim import Simulation
from poisonproof.server.resolver_server import ResolverServer
from poisonproof.server.settings import Settings

COUNTING_ENV = "POISONPROOF_MISS_COST_COUNTING"
"""Set for the copy of this script run under callgrind (collection toggled around runs)."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--network", choices=("sim", "real"), default="sim")
    parser.add_argument(
        "--runs", type=int, default=4, help="fresh resolvers, each asked every name (>= 2)"
    )
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions under callgrind"
    )
    args = parser.parse_args(argv)
    if args.runs < 2:
        parser.error("--runs must be at least 2 (the first run is not measured)")
    return args


def callgrind(pid: int, on: bool) -> None:
    """Turn callgrind's collection on or off in process `pid` (this one)."""
    control = shutil.which("callgrind_control")
    if control is None:
        raise BenchError("callgrind_control is not installed (Debian: apt-get install valgrind)")
    subprocess.run(
        [control, "-i", "on" if on else "off", str(pid)], capture_output=True, check=True
    )


async def resolve_all(
    network: Network, runs: int, counting: bool, address_of: Callable[[int], tuple[str, int]]
) -> list[float]:
    """CPU ms per name of each run after the first (a fresh resolver per run)."""
    world = await start_world(network, 53)
    queries = [dns.message.make_query(name, rdtype).to_wire() for name, rdtype in cold_names()]
    per_name: list[float] = []
    with tempfile.TemporaryDirectory(prefix="miss-cost-") as tmp:
        hints = Path(tmp) / "root.hints"
        hints.write_text(world.root_hints_text())
        try:
            for run in range(runs):
                address = address_of(run)
                settings = Settings.load(
                    None,
                    {
                        "root_hints": str(hints),
                        "listen": [f"{address[0]}:{address[1]}"],
                        "query_localhost": True,
                    },
                )
                server = ResolverServer(network, settings.build(network.clock), [address])
                await server.start()
                gc.collect()
                if counting and run == 1:
                    callgrind(os.getpid(), True)
                started = time.thread_time()
                for query in queries:
                    await network.udp_exchange(query, address, timeout=5)
                if run:
                    per_name.append((time.thread_time() - started) * 1000 / len(queries))
                await server.stop(quiet=True)
            if counting:
                callgrind(os.getpid(), False)
        finally:
            await world.stop()
    return per_name


def measure(args: argparse.Namespace, counting: bool) -> list[float]:
    """CPU ms per name of each measured run, on the network `args` names."""
    if args.network == "sim":
        sim = Simulation(seed=1, trace=False)
        try:
            return sim.run(
                resolve_all(
                    sim.network, args.runs, counting, lambda run: (f"127.0.1.{run + 2}", 53)
                )
            )
        finally:
            sim.close()
    check_namespace()
    return run_real(
        resolve_all(RealNetwork(), args.runs, counting, lambda run: ("127.0.0.1", 5300 + run))
    )


def count_instructions(argv: list[str], args: argparse.Namespace) -> int:
    """This script again under callgrind; instructions per name over the measured runs."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise BenchError("valgrind is not installed (Debian: apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="miss-cost-cg-") as tmp:
        done = subprocess.run(
            [
                valgrind,
                "--tool=callgrind",
                "--instr-atstart=no",
                "--trace-children=yes",
                f"--callgrind-out-file={tmp}/callgrind.%p",
                sys.executable,
                str(Path(__file__).resolve()),
                *[a for a in argv if a != "--instructions"],
            ],
            env={**os.environ, COUNTING_ENV: "1", "PYTHONHASHSEED": "0"},
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
    if done.returncode != 0:
        raise BenchError(f"the run under callgrind failed:\n{done.stdout}\n{done.stderr}")
    collected = [
        int(line.rsplit(None, 1)[1].replace(",", ""))
        for line in done.stderr.splitlines()
        if "Collected :" in line
    ]
    names = (args.runs - 1) * len(cold_names())
    per_name = sum(collected) / names
    print(
        f"{args.network} network: {per_name / 1e6:.3f} M instructions per cold name "
        f"(world and client included; {args.runs - 1} runs of {len(cold_names())} names)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    counting = COUNTING_ENV in os.environ
    if args.instructions and not counting:
        return count_instructions(argv, args)
    if args.network == "real" and INNER_ENV not in os.environ:
        return run_in_namespace(argv, 1800, Path(__file__))
    per_name = measure(args, counting)
    if not counting:
        print(
            f"{args.network} network: CPU ms per cold name (world and client included), "
            f"lowest {min(per_name):.3f}, median {statistics.median(per_name):.3f} "
            f"over {len(per_name)} runs"
        )
    return 0


if __name__ == "__main__":
    run_as_script("miss_cost", main)
