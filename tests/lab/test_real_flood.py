"""Honest clients under a real spoofed flood (network namespaces, real datagrams).

The flood runs at the spoofer's full rate onto the port of every upstream query (told by
a side channel: the worst case). The `default` resolver keeps answering every honest
question right, is not poisoned and raises its spoofing alarm; the `2008` resolver under
the same flood is taken over (the same measurement can fail).
"""

from __future__ import annotations

import pytest

from poisonproof.lab.real_flood import run_flood
from poisonproof.lab.real_mode import ATTACKER
from tests.conftest import require_namespace_lab


@pytest.fixture(scope="module", autouse=True)
def _lab_possible() -> None:
    require_namespace_lab()


@pytest.mark.timeout(200)
def test_the_default_resolver_keeps_serving_under_a_spoofed_flood() -> None:
    report = run_flood("poisonproof", "default", seconds=10, honest_rate=30)
    honest = report.honest
    assert honest["asked"] >= 250
    assert honest["right"] / honest["asked"] >= 0.999, honest
    assert not report.poisoned and report.victim_sees == ["192.0.2.80"]
    assert report.forged_sent > 100_000
    counters = report.target_counters
    assert counters["unwanted_replies"] >= 10_000, counters  # the alarm's threshold
    assert counters["spoof_alarms"] >= 1, counters


@pytest.mark.timeout(200)
def test_the_2008_resolver_is_taken_over_by_the_same_flood() -> None:
    report = run_flood("poisonproof", "2008", seconds=10, honest_rate=30)
    assert report.poisoned
    # fresh names in the victim zone now resolve through the attacker's delegation
    # (www's real answer may still be cached: it is not asked again during the run)
    honest = report.honest
    assert honest["wrong"] > 0 and ATTACKER in " ".join(honest["examples"]), honest
    assert report.target_counters.get("spoof_alarms", 0) == 0  # no alarm in 2008


def test_the_command_refuses_an_unbounded_run() -> None:
    from typer.testing import CliRunner

    from poisonproof.cli import app

    result = CliRunner().invoke(app, ["lab", "flood", "--seconds", "0"])
    assert result.exit_code == 2 and "--seconds must be in (0, 600]" in result.output
