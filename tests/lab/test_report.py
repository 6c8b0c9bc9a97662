"""Reports from trial records: plots, a self-contained page, rendered in headless Chromium."""

from __future__ import annotations

import base64
import re
import struct
import subprocess

import pytest

from poisonproof.lab.arena import ArenaParams
from poisonproof.lab.attacks import AttackName, AttackParams
from poisonproof.lab.report import ReportError, build_report
from poisonproof.lab.trials import Setting, run_trials
from tests.conftest import require_tool


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    path = tmp_path_factory.mktemp("records") / "results.jsonl"
    arena = ArenaParams()
    for defenses, trials, budget in (("2008", 4, 10**7), ("default", 1, 200_000)):
        setting = Setting(AttackName.KAMINSKY, defenses, arena, AttackParams(budget_packets=budget))
        list(run_trials(setting, trials, 0, path))
    return path


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_page_holds_both_plots_and_the_table(records, tmp_path):
    page = build_report(records, tmp_path / "report")
    text = page.read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(images) == 2
    for image in images:
        width, height = png_size(base64.b64decode(image))
        assert width > 300 and height > 200
    assert "kaminsky vs 2008" in text and "kaminsky vs default" in text
    assert "4/4" in text and "0/1" in text


def test_chromium_renders_the_page(records, tmp_path):
    chromium = require_tool("chromium")
    page = build_report(records, tmp_path / "report")
    shot = tmp_path / "shot.png"
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1200,1600",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.exists(), result.stderr[-2000:]
    width, height = png_size(shot.read_bytes())
    assert (width, height) == (1200, 1600)
    assert shot.stat().st_size > 30_000  # a blank page compresses to a few kB


def test_bad_records_are_named(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"setting": {}, "result": {}}\nnot json\n')
    with pytest.raises(ReportError, match=r"bad.jsonl:1: not a trial record"):
        build_report(bad, tmp_path / "out")
