"""The spoofability audit in the real-packet lab: our resolver, stock and held to one port."""

from __future__ import annotations

import pytest

from poisonproof.lab.audit import porttest_grade, run_audit, spread, to_html
from tests.conftest import require_namespace_lab


def test_spread_and_grades() -> None:
    assert spread([33333] * 10).bits == 0 and porttest_grade(0.0) == "POOR"
    uniform = spread(list(range(1024, 65536, 64)))
    assert uniform.bits > 15.5 and porttest_grade(uniform.stdev) == "GREAT"
    assert spread([5, 6, 7, 8, 9]).sequential
    assert porttest_grade(1000.0) == "GOOD"


@pytest.fixture(scope="module")
def lab() -> None:
    require_namespace_lab()


@pytest.mark.timeout(300)
def test_audit_of_our_resolver_stock_and_weakened(lab) -> None:
    stock = run_audit("poisonproof", lookups=60, budget=60_000)
    assert stock.queries_seen >= 55
    assert stock.ports.distinct >= 50 and stock.porttest == "GREAT"
    assert stock.case_randomized > 0.9 and stock.cookies > 0.9
    assert stock.bits_total > 40
    assert [c["outcome"] for c in stock.report_card] == ["survived", "survived"]
    page = to_html(stock)
    assert "data:image/png;base64," in page and "Report card" in page

    weak = run_audit("poisonproof", weakened=True, lookups=60, attacks=False)
    assert weak.ports.distinct == 1 and weak.porttest == "POOR"
    assert weak.case_randomized == 0.0 and weak.bits_total <= 16.5
    assert weak.expected_time_to_poison_s < stock.expected_time_to_poison_s / 1e6
