"""The shipped systemd units: systemd-analyze accepts them and `serve` accepts their flags."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_tool

UNITS = Path(__file__).resolve().parents[2] / "contrib" / "systemd"


def exec_start() -> list[str]:
    text = (UNITS / "poisonproof.service").read_text().replace("\\\n", " ")
    (line,) = [x for x in text.splitlines() if x.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart="))


def test_service_flags_are_serve_flags():
    argv = exec_start()
    assert argv[1] == "serve"
    result = subprocess.run(
        [sys.executable, "-m", "poisonproof", *argv[1:], "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_systemd_analyze_verifies_the_units(tmp_path):
    analyze = require_tool("systemd-analyze")
    executable = Path(sys.executable).with_name("poisonproof")
    if not executable.exists():
        pytest.skip("the poisonproof console script is not installed beside python")
    for unit in ("poisonproof.socket", "poisonproof.service"):
        text = (UNITS / unit).read_text().replace("/usr/local/bin/poisonproof", str(executable))
        (tmp_path / unit).write_text(text)
    result = subprocess.run(
        [
            analyze,
            "verify",
            "--man=no",
            *(str(tmp_path / u) for u in ("poisonproof.socket", "poisonproof.service")),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
