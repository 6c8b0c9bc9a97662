"""The whole Deckard corpus replayed against our resolver; failures must be the known ones."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from poisonproof.replay.corpus import FileResult, replay
from tests.replay.corpus import require_corpus

KNOWN = Path(__file__).with_name("known_failures.txt")


def known_failures() -> dict[str, str]:
    entries = {}
    for line in KNOWN.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, reason = line.partition("\t")
            assert reason.strip(), f"{name}: a known failure needs its reason"
            entries[name] = reason
    return entries


@pytest.fixture(scope="module")
def corpus_results() -> tuple[list[FileResult], float]:
    directory = require_corpus()
    started = time.perf_counter()
    results = replay([directory])
    return results, time.perf_counter() - started


def test_only_known_failures_fail(corpus_results):
    results, _ = corpus_results
    known = known_failures()
    failing = {r.name: r for r in results if not r.passed}
    unexpected = {
        name: f"[{r.first_failure.label}] step {r.first_failure.step}: {r.first_failure.reason}"
        for name, r in failing.items()
        if name not in known
    }
    now_passing = sorted(name for name in known if name not in failing)
    assert not unexpected, f"scenarios failing that are not in {KNOWN.name}: {unexpected}"
    assert not now_passing, f"listed in {KNOWN.name} but passing now, remove them: {now_passing}"


def test_targets_of_the_conformance_issue(corpus_results):
    results, elapsed = corpus_results
    by_prefix: dict[str, list[FileResult]] = {}
    for result in results:
        by_prefix.setdefault(result.name.split("_")[0], []).append(result)
    iterator = by_prefix["iter"]
    passed = sum(r.passed for r in iterator)
    assert passed >= 0.9 * len(iterator), f"{passed} of {len(iterator)} iter_ scenarios pass"
    for family in ("fwd", "black", "world"):
        failed = [r.name for r in by_prefix[family] if not r.passed]
        assert not failed, f"every {family}_ scenario must pass; failing: {failed}"
    dnssec = by_prefix["val"] + by_prefix["nsec"] + by_prefix["nsec3"]
    secure = sum(r.passed for r in dnssec)
    assert secure >= 0.85 * len(dnssec), f"{secure} of {len(dnssec)} DNSSEC scenarios pass"
    assert elapsed < 120, f"the corpus took {elapsed:.0f}s (must stay under two minutes)"
