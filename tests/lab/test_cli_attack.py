"""`poisonproof lab attack`: the option spellings and JSON fields scripts rely on."""

from __future__ import annotations

import json
import subprocess
import sys


def attack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "poisonproof", "lab", "attack", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_json_fields_and_records(tmp_path):
    out = tmp_path / "runs.jsonl"
    args = [
        "kaminsky",
        "--defenses",
        "2008",
        "--rate",
        "100000",
        "--window",
        "0.1",
        "--servers",
        "1",
        "--ttl",
        "300",
        "--port-pool",
        "1",
        "--trials",
        "3",
        "--seed",
        "7",
        "--budget",
        "5000000",
        "--out",
        str(out),
        "--json",
    ]
    first = attack(*args)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    for field in (
        "trials",
        "successes",
        "median_packets",
        "median_time_s",
        "ci_time_s",
        "predicted_median_time_s",
    ):
        assert field in summary
    assert summary["trials"] == 3 and summary["successes"] == 3
    assert len(out.read_text().splitlines()) == 3
    again = attack(*args)  # resumes: every trial is already recorded
    assert json.loads(again.stdout)["median_time_s"] == summary["median_time_s"]
    assert len(out.read_text().splitlines()) == 3


def test_bad_names_are_clear_errors():
    bad_attack = attack("teleport")
    assert bad_attack.returncode == 2 and "unknown attack 'teleport'" in bad_attack.stdout
    bad_preset = attack("kaminsky", "--defenses", "2099")
    assert bad_preset.returncode == 2 and "unknown defenses preset" in bad_preset.stdout
    warp = attack("kaminsky", "--mode", "warp")
    assert warp.returncode == 2 and "--mode is sim or real" in warp.stdout
    real = attack("birthday", "--mode", "real", "--signed")
    assert real.returncode == 2 and "on an unsigned arena" in real.stdout
