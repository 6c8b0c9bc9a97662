"""Parameter grids on a process pool, with records that resume."""

from __future__ import annotations

import json

import pytest

from poisonproof.lab.sweep import GridError, _runs, load_grid, run_grid


def test_runs_of_seeds():
    assert list(_runs([0, 1, 2, 5, 6, 9])) == [(0, 3), (5, 2), (9, 1)]
    assert list(_runs(list(range(60)))) == [(0, 25), (25, 25), (50, 10)]


def test_grid_runs_every_combination_and_resumes(tmp_path):
    grid_file = tmp_path / "grid.toml"
    grid_file.write_text(
        'attack = "kaminsky"\ntrials = 3\nout = "sweep.jsonl"\n'
        '[grid]\ndefenses = ["2008"]\nport_pool = [1, 2]\nwindow = [0.05, 0.1]\nrate = 200000\n'
    )
    grid = load_grid(grid_file)
    assert len(grid.settings) == 4
    assert run_grid(grid, workers=2) == 12
    records = [json.loads(line) for line in grid.out.read_text().splitlines()]
    assert len(records) == 12 and all(r["result"]["success"] for r in records)
    assert run_grid(grid, workers=2) == 0  # everything is recorded: nothing runs again


def test_bad_grids_name_the_problem(tmp_path):
    grid_file = tmp_path / "grid.toml"
    grid_file.write_text("[grid]\nspeed = [1]\n")
    with pytest.raises(GridError, match="unknown grid keys: speed"):
        load_grid(grid_file)
    grid_file.write_text('attack = "teleport"\n')
    with pytest.raises(GridError, match="attack 'teleport'"):
        load_grid(grid_file)


def test_grid_on_a_dask_cluster(tmp_path):
    """The same sweep through a real Dask scheduler (a local cluster of 2 processes)."""
    from dask.distributed import LocalCluster

    grid_file = tmp_path / "grid.toml"
    grid_file.write_text(
        'trials = 2\n[grid]\ndefenses = "2008"\nrate = 200000\nport_pool = [1, 2]\n'
    )
    grid = load_grid(grid_file)
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        assert run_grid(grid, scheduler=cluster.scheduler_address) == 4
    assert len(grid.out.read_text().splitlines()) == 4
