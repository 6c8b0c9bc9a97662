"""Every scenario of the Deckard corpus parses, and its entries make sense to the matcher."""

from __future__ import annotations

import dns.message
import pytest

from poisonproof.replay.match import (
    build_query,
    build_reply,
    compare_answer,
    entry_message,
    select_entry,
)
from poisonproof.replay.rpl import StepKind, parse_file
from tests.replay.corpus import DEFAULT_DIR, corpus_names, require_corpus


@pytest.mark.parametrize("name", corpus_names() or ["<corpus missing>"])
def test_scenario_parses(name: str) -> None:
    path = require_corpus() / name
    scenario = parse_file(path)
    assert scenario.title
    assert scenario.steps, "a scenario without steps tests nothing"
    assert [s.id for s in scenario.steps] == sorted({s.id for s in scenario.steps})
    for step in scenario.steps:
        if step.kind in (StepKind.QUERY, StepKind.CHECK_ANSWER):
            assert step.entry is not None
    # Lazy config helpers must not raise on any corpus header.
    config = scenario.config
    config.trust_anchor_records()
    _ = (config.query_minimization, config.harden_glue, config.do_ip4, config.do_ip6)
    _ = (config.do_not_query_localhost, config.override_time, config.features)


@pytest.mark.parametrize("name", corpus_names() or ["<corpus missing>"])
def test_entries_replay_cleanly(name: str) -> None:
    """Each range entry with a question answers a query for that question (itself or an
    earlier entry of its range does), its reply parses, QUERY steps build, and every
    CHECK_ANSWER entry accepts its own message."""
    scenario = parse_file(require_corpus() / name)
    for rng in scenario.ranges:
        for entry in rng.entries:
            if not entry.question:
                continue
            question = entry.question[0]
            query = dns.message.make_query(question.name, question.rdtype, want_dnssec=True)
            wire = query.to_wire()
            assert select_entry(rng.entries, query, wire) is not None, entry.line
            reply = build_reply(entry, query)
            if reply is not None:
                parsed = dns.message.from_wire(reply)
                if "copy_id" in entry.adjust:
                    assert parsed.id == query.id
    for step in scenario.steps:
        assert step.entry is not None or step.kind not in (StepKind.QUERY, StepKind.CHECK_ANSWER)
        if step.kind is StepKind.QUERY and step.entry is not None and step.entry.raw is None:
            dns.message.from_wire(build_query(step.entry, 4242))
        if step.kind is StepKind.CHECK_ANSWER and step.entry is not None:
            own = dns.message.from_wire(entry_message(step.entry, 1).to_wire())
            assert compare_answer(step.entry, own) is None, step.line


def test_workplace_corpus_is_complete() -> None:
    """The workplace copy holds Deckard's whole resolver set (191 scenarios)."""
    if require_corpus() != DEFAULT_DIR:
        pytest.skip("POISONPROOF_DECKARD_DIR points at another corpus")
    assert len(corpus_names()) >= 191
