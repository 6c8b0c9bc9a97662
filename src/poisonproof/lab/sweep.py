"""Parameter grids: every combination of a TOML grid, trials spread over processes.

Owns: reading a grid file (what attack, which defenses, which values of each parameter,
how many trials, where the records go), expanding it to settings, running their trials on
a local process pool or, given a scheduler address, on a Dask cluster, and appending each
trial's record as its chunk finishes — a sweep that is stopped resumes where it was.
Must never: lose a finished trial, or run a setting's seed twice into the same file.
"""

from __future__ import annotations

import itertools
import json
import os
import tomllib
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from poisonproof.lab.arena import ArenaParams
from poisonproof.lab.attacks import AttackName, AttackParams, TrialResult
from poisonproof.lab.trials import Setting, _load, defenses_named, run_trials

CHUNK = 25
GRID_KEYS = {"port_pool", "servers", "window", "rate", "ttl", "budget", "defenses", "attack"}


class GridError(Exception):
    """A grid file that cannot be swept; the message names the file and the key."""


@dataclass(frozen=True)
class Grid:
    settings: list[Setting]
    trials: int
    seed: int
    out: Path


def _values(raw: Any) -> list[Any]:
    return list(raw) if isinstance(raw, list) else [raw]


def load_grid(path: Path) -> Grid:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as error:
        raise GridError(f"{path}: cannot read: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise GridError(f"{path}: {error}") from None
    grid = dict(data.get("grid", {}))
    unknown = set(grid) - GRID_KEYS
    if unknown:
        raise GridError(f"{path}: unknown grid keys: {', '.join(sorted(unknown))}")
    attacks = _values(grid.get("attack", data.get("attack", "kaminsky")))
    defenses = _values(grid.get("defenses", data.get("defenses", "2008")))
    for name in attacks:
        if name not in {a.value for a in AttackName}:
            raise GridError(
                f"{path}: attack {name!r} is not one of {[a.value for a in AttackName]}"
            )
    for name in defenses:
        try:
            defenses_named(name)
        except ValueError:
            raise GridError(f"{path}: defenses {name!r} is not a preset") from None
    axes = {
        "port_pool": _values(grid.get("port_pool", [None])),
        "servers": _values(grid.get("servers", 1)),
        "window": _values(grid.get("window", 0.1)),
        "rate": _values(grid.get("rate", 100_000.0)),
        "ttl": _values(grid.get("ttl", 300)),
        "budget": _values(grid.get("budget", 10_000_000)),
    }
    settings = [
        Setting(
            AttackName(attack),
            preset_name,
            ArenaParams(servers=int(servers), window=float(window), ttl=int(ttl)),
            AttackParams(rate=float(rate), budget_packets=int(budget)),
            port_pool=None if pool is None else int(pool),
        )
        for attack, preset_name, pool, servers, window, rate, ttl, budget in itertools.product(
            attacks, defenses, *axes.values()
        )
    ]
    out = Path(data.get("out", path.with_suffix(".jsonl")))
    if not out.is_absolute():
        out = path.parent / out
    return Grid(settings, int(data.get("trials", 50)), int(data.get("seed", 0)), out)


def _chunk(setting: Setting, first: int, count: int) -> list[dict[str, object]]:
    return [r.to_json() for r in run_trials(setting, count, first)]


def _runs(seeds: list[int]) -> Iterator[tuple[int, int]]:
    """(first seed, count) of each run of consecutive seeds, at most CHUNK long."""
    start = 0
    while start < len(seeds):
        end = start + 1
        while end < len(seeds) and end - start < CHUNK and seeds[end] == seeds[end - 1] + 1:
            end += 1
        yield seeds[start], end - start
        start = end


def _jobs(grid: Grid) -> Iterator[tuple[Setting, int, int]]:
    for setting in grid.settings:
        done = _load(grid.out, setting.key())
        missing = [s for s in range(grid.seed, grid.seed + grid.trials) if s not in done]
        for first, count in _runs(missing):
            yield setting, first, count


def run_grid(
    grid: Grid,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Run every missing trial; return how many ran. Records are appended as chunks end."""
    jobs = list(_jobs(grid))
    total = sum(count for _, _, count in jobs)
    finished = 0
    grid.out.parent.mkdir(parents=True, exist_ok=True)

    def record(setting: Setting, results: list[dict[str, object]]) -> None:
        nonlocal finished
        with grid.out.open("a") as handle:
            for result in results:
                handle.write(json.dumps({"setting": setting.key(), "result": result}) + "\n")
        finished += len(results)
        if progress is not None:
            progress(finished, total)

    if scheduler is not None:
        try:
            from dask.distributed import Client
            from dask.distributed import as_completed as dask_completed
        except ImportError:
            raise GridError(
                "--scheduler needs dask.distributed: pip install 'dask[distributed]'"
            ) from None
        client = Client(scheduler)
        try:
            futures = {
                client.submit(_chunk, s, first, count, pure=False): s for s, first, count in jobs
            }
            for future in dask_completed(futures):
                record(futures[future], future.result())
        finally:
            client.close()
        return finished
    with ProcessPoolExecutor(workers or os.cpu_count() or 1) as pool:
        futures = {pool.submit(_chunk, s, first, count): s for s, first, count in jobs}
        for future in as_completed(futures):
            record(futures[future], future.result())
    return finished


__all__ = ["Grid", "GridError", "load_grid", "run_grid", "TrialResult"]
