"""The ablation rows switch exactly one defense, and the two ends behave as claimed."""

from __future__ import annotations

import dataclasses

from poisonproof.lab.ablation import (
    SEQUENTIAL_ROW,
    SWITCHES,
    estimate,
    markdown,
    rows,
    run_ablation,
)
from poisonproof.lab.arena import ArenaParams
from poisonproof.lab.attacks import AttackName, AttackParams
from poisonproof.resolver.defenses import DEFAULT, PRE_2008


def test_rows_switch_exactly_one_defense_each_way():
    table = dict(rows())
    assert len(table) == 3 + 2 * len(SWITCHES)
    counted = dataclasses.asdict(table[SEQUENTIAL_ROW])
    assert {k for k, v in counted.items() if v != dataclasses.asdict(PRE_2008)[k]} == {"txid"}
    for label, fields in SWITCHES.items():
        added = dataclasses.asdict(table[f"2008 + {label}"])
        removed = dataclasses.asdict(table[f"default - {label}"])
        base_old, base_new = dataclasses.asdict(PRE_2008), dataclasses.asdict(DEFAULT)
        assert {k for k in added if added[k] != base_old[k]} <= set(fields)
        assert {k for k in removed if removed[k] != base_new[k]} <= set(fields)


def test_estimates_grow_with_each_randomization():
    arena, params = ArenaParams(), AttackParams(rate=100_000)
    old = estimate(PRE_2008, AttackName.KAMINSKY, arena, params)
    with_ports = estimate(
        dataclasses.replace(PRE_2008, port_pool=0), AttackName.KAMINSKY, arena, params
    )
    assert old < 1 < with_ports < estimate(DEFAULT, AttackName.KAMINSKY, arena, params)


def test_2008_falls_and_default_stands(monkeypatch):
    import poisonproof.lab.ablation as ablation

    monkeypatch.setattr(ablation, "rows", lambda: [("2008", PRE_2008), ("default", DEFAULT)])
    monkeypatch.setattr(ablation, "dnssec_rows", lambda arena: [])  # test_dnssec_attacks
    table = run_ablation(trials=1, budget=400_000)
    old, new = table
    assert old.cells[0].successes == 1 and old.stops == []
    assert new.stops == [a.value for a in ablation.ATTACKS]
    text = markdown(table, 1, 400_000, "test")
    assert "| default |" in text and "0/1" in text
