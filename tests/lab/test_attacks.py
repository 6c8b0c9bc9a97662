"""The attacks on the simulated network: they poison the 2008 resolver, not the default one,
agree with RFC 5452, and the batched flood agrees with sending every packet."""

from __future__ import annotations

import math
import statistics

import pytest

from poisonproof.lab.arena import ATTACKER_IP, REAL_WWW, ArenaParams, ZoneFiles
from poisonproof.lab.attacks import PREDICT_WINDOW, AttackName, AttackParams, run_trial
from poisonproof.lab.trials import Setting, run_trials, summarize
from poisonproof.resolver.defenses import preset

ARENA = ArenaParams(servers=1, window=0.1, ttl=300)


@pytest.fixture(scope="module")
def zones():
    files = ZoneFiles(ARENA)
    yield files
    files.cleanup()


@pytest.mark.parametrize("attack", [AttackName.KAMINSKY, AttackName.KAMINSKY_ANSWER])
def test_kaminsky_poisons_the_2008_resolver(zones, attack):
    result = run_trial(attack, preset("2008"), "2008", ARENA, AttackParams(rate=100_000), 3, zones)
    assert result.success and result.victim_sees == [ATTACKER_IP]
    assert result.attempts < 60 and result.wall_time < 5
    assert result.reasons["near_misses"] > 0  # the losing guesses did land, and were refused


@pytest.mark.parametrize("attack", [AttackName.KAMINSKY, AttackName.KAMINSKY_ANSWER])
def test_the_default_resolver_survives_the_same_budget(zones, attack):
    budget = AttackParams(rate=100_000, budget_packets=3_000_000)
    result = run_trial(attack, preset("default"), "default", ARENA, budget, 3, zones)
    assert not result.success and result.victim_sees == [REAL_WWW]
    assert result.packets == 3_000_000
    assert result.reasons.get("nearmiss_tcp_retries", 0) > 0  # near misses sent it to TCP


def test_forged_answer_variant_is_scrubbed_even_if_it_wins():
    """Without port/ID/case randomization but with scrubbing, variant (b) wins the race and
    still poisons nothing: its NS/A override is not believed."""
    zones = ZoneFiles(ARENA)
    try:
        weak = preset("2008")
        import dataclasses

        scrubbing = dataclasses.replace(weak, bailiwick=True, credibility=True)
        params = AttackParams(rate=200_000, budget_packets=600_000)
        result = run_trial(
            AttackName.KAMINSKY_ANSWER, scrubbing, "2008+scrub", ARENA, params, 5, zones
        )
        assert not result.success and result.victim_sees == [REAL_WWW]
    finally:
        zones.cleanup()


def test_batched_and_per_packet_floods_give_the_same_trials(zones):
    params = AttackParams(rate=20_000)
    for seed in range(4):
        batched = run_trial(AttackName.KAMINSKY, preset("2008"), "2008", ARENA, params, seed, zones)
        per_packet = run_trial(
            AttackName.KAMINSKY,
            preset("2008"),
            "2008",
            ARENA,
            AttackParams(rate=20_000, per_packet=True),
            seed,
            zones,
        )
        assert (batched.success, batched.attempts, batched.packets) == (
            per_packet.success,
            per_packet.attempts,
            per_packet.packets,
        )
        assert batched.sim_time == pytest.approx(per_packet.sim_time)


def test_measured_median_agrees_with_rfc_5452():
    setting = Setting(
        AttackName.KAMINSKY, "2008", ArenaParams(servers=2, window=0.05), AttackParams(rate=100_000)
    )
    results = list(run_trials(setting, 120, 100))
    summary = summarize(setting, results)
    assert summary.successes == summary.trials
    predicted = summary.predicted_median_attempts
    attempts = statistics.median(r.attempts for r in results)
    assert abs(attempts / predicted - 1) < 0.25, (attempts, predicted)
    # the attempts are geometric: their mean is 1/P_s
    mean = statistics.mean(r.attempts for r in results)
    assert abs(mean * summary.predicted_p_success - 1) < 0.25
    assert not math.isinf(summary.predicted_median_time_s)


@pytest.mark.parametrize(("merge", "expected"), [(False, 20), (True, 1)])
def test_birthday_triggers_become_many_queries_unless_merged(zones, merge, expected):
    """The birthday attack needs many outstanding identical queries; merging leaves one."""
    import asyncio
    import dataclasses

    from poisonproof.lab.arena import build_arena
    from poisonproof.net.sim import Simulation

    defenses = dataclasses.replace(preset("2008"), merge_duplicates=merge)
    sim = Simulation(seed=1, trace=False)

    async def main() -> int:
        arena = await build_arena(sim, ARENA, defenses, zones, 1)
        await arena.ask("www.bank.example")
        before = arena.resolver.stats.get("upstream_udp", 0)
        for _ in range(20):
            arena.send_query("birthday.bank.example.")
        await asyncio.sleep(1)
        after = arena.resolver.stats.get("upstream_udp", 0)
        await arena.stop()
        return after - before

    try:
        assert sim.run(main()) == expected
    finally:
        sim.close()


def test_indirect_trigger_through_the_mail_service(zones):
    """The resolver refuses the attacker, yet mail to the attacker's domain makes the mail
    service look up a victim-zone name, and that lookup is raced and poisoned."""
    import asyncio

    from poisonproof.lab.arena import build_arena
    from poisonproof.net.sim import Simulation

    mail_zones = ZoneFiles(ARENA)
    try:
        result = run_trial(
            AttackName.MAIL,
            preset("2008"),
            "2008",
            ARENA,
            AttackParams(rate=100_000),
            2,
            mail_zones,
        )
        assert result.success and result.victim_sees == [ATTACKER_IP]
        sim = Simulation(seed=2, trace=False)

        async def attacker_asks() -> int:
            arena = await build_arena(
                sim, ARENA, preset("2008"), mail_zones, 2, open_resolver=False
            )
            reply = await arena.ask("www.bank.example", source=ATTACKER_IP)
            await arena.stop()
            await asyncio.sleep(0)
            return reply.rcode() if reply is not None else -1

        try:
            assert sim.run(attacker_asks()) == 5  # REFUSED: not an open resolver
        finally:
            sim.close()
    finally:
        mail_zones.cleanup()


def test_forwarder_confusion_needs_forwarder_scrubbing(zones):
    """MaginotDNS class: with bailiwick scrubbing on the recursive path only, the direct
    Kaminsky attack fails but the same forgery through the forwarder path poisons."""
    import dataclasses

    recursion_only = dataclasses.replace(preset("2008"), bailiwick=True, forwarder_bailiwick=False)
    both = dataclasses.replace(recursion_only, forwarder_bailiwick=True)
    params = AttackParams(rate=100_000, budget_packets=1_500_000)
    direct = run_trial(AttackName.KAMINSKY, recursion_only, "x", ARENA, params, 4, zones)
    assert not direct.success
    confused = run_trial(AttackName.FORWARDER, recursion_only, "x", ARENA, params, 4, zones)
    assert confused.success and confused.victim_sees == [ATTACKER_IP]
    fixed = run_trial(AttackName.FORWARDER, both, "x", ARENA, params, 4, zones)
    assert not fixed.success and fixed.victim_sees == [REAL_WWW]


def test_predicting_a_counted_up_id_poisons_in_one_small_window(zones):
    """The pre-2008 resolver that counts its IDs up (BIND 4/8): the attacker reads the ID
    of a query to its own zone and needs at most one window of IDs after it."""
    params = AttackParams(rate=100_000)
    result = run_trial(
        AttackName.PREDICT, preset("2008-sequential"), "2008-sequential", ARENA, params, 1, zones
    )
    assert result.success and result.victim_sees == [ATTACKER_IP]
    assert result.attempts == 1 and result.packets <= PREDICT_WINDOW * ARENA.servers
    setting = Setting(AttackName.PREDICT, "2008-sequential", ARENA, params)
    assert setting.theory().p_success == 1.0
    assert result.sim_time == pytest.approx(setting.seconds_per_attempt(), rel=0.2)


def test_predicting_does_not_help_against_a_random_id(zones):
    """The same attacker against random IDs: its window holds the real ID one time in
    65,536 / PREDICT_WINDOW, so 40 windows leave the resolver clean (this seed; 2 seeds of
    the first 40 won within 40 windows, where RFC 5452 says 3.8%), and RFC 5452 agrees."""
    params = AttackParams(rate=100_000, budget_packets=40 * PREDICT_WINDOW)
    result = run_trial(AttackName.PREDICT, preset("2008"), "2008", ARENA, params, 0, zones)
    assert not result.success and result.victim_sees == [REAL_WWW]
    assert result.attempts == 40 and result.packets == 40 * PREDICT_WINDOW
    assert result.reasons["near_misses"] > 0  # its guesses landed, with wrong IDs
    setting = Setting(AttackName.PREDICT, "2008", ARENA, params)
    assert setting.theory().p_success == pytest.approx(PREDICT_WINDOW / 65536)


def test_batched_and_per_packet_floods_agree_on_a_predicted_window(zones):
    for defenses in ("2008-sequential", "2008"):
        runs = [
            run_trial(
                AttackName.PREDICT,
                preset(defenses),
                defenses,
                ARENA,
                AttackParams(rate=20_000, budget_packets=20 * PREDICT_WINDOW, per_packet=each),
                2,
                zones,
            )
            for each in (False, True)
        ]
        batched, per_packet = runs
        assert (batched.success, batched.attempts, batched.packets) == (
            per_packet.success,
            per_packet.attempts,
            per_packet.packets,
        )
