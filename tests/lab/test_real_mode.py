"""The real-packet lab end to end: namespaces, real servers, real spoofed datagrams.

Bounded: each trial stops at its packet and time budget. Our resolver held to one port
(the 2008 weakness) is poisoned; the same resolver with its defaults is not, and the
attacker refuses any resolver outside the lab.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from poisonproof.lab.real_attacker import AttackerJob, run
from poisonproof.lab.real_mode import (
    ATTACKER,
    FIXED_PORT,
    RealSetting,
    bank_server,
    run_real_trials,
)
from poisonproof.lab.spoofer import UnsafeTarget
from tests.conftest import require_namespace_lab, require_tool


@pytest.fixture(scope="module", autouse=True)
def _lab_possible() -> None:
    require_namespace_lab()


@pytest.mark.timeout(240)
def test_a_one_port_resolver_is_poisoned_with_real_spoofed_packets(tmp_path) -> None:
    tshark = require_tool("tshark")
    # 20,000 guesses per 200 ms window against one port: P_s ~ 0.3 per window before
    # socket-buffer losses; 40 windows leave a miss probability below 1e-4
    setting = RealSetting(
        defenses="2008",
        window=0.2,
        rate=100_000,
        budget_packets=800_000,
        budget_seconds=90,
        pcap_dir=str(tmp_path),
    )
    (result,) = run_real_trials(setting, 1, first_seed=7)
    assert result.success and result.victim_sees == [ATTACKER]
    note = json.loads(result.note)
    assert note["window_source"] in ("answer-delay", "netem")
    assert note["measured_window_s"] >= 0.2
    assert result.reasons["udp_delivered_to_target"] > 0
    # the capture holds the forged datagrams: the victim's server as source, the port
    shown = f"ip.src == {bank_server(0)} && udp.dstport == {FIXED_PORT}"
    shown += " && dns.flags.response == 1 && !icmp"
    forged = subprocess.run(
        [tshark, "-r", str(tmp_path / "trial-7.pcap"), "-c", "5000", "-Y", shown],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert forged.returncode == 0 and len(forged.stdout.splitlines()) >= 20


@pytest.mark.timeout(240)
def test_the_default_resolver_survives_the_same_flood() -> None:
    setting = RealSetting(
        defenses="default",
        weakened=False,
        window=0.2,
        rate=100_000,
        budget_packets=200_000,
        budget_seconds=60,
        tell_port=False,
    )
    (result,) = run_real_trials(setting, 1, first_seed=7)
    assert not result.success and ATTACKER not in result.victim_sees


def test_the_attacker_refuses_a_resolver_outside_the_lab(tmp_path) -> None:
    job = AttackerJob(
        resolver="8.8.8.8",
        victim_servers=("10.53.1.1",),
        attacker=ATTACKER,
        attacker_log=str(tmp_path / "log"),
        port=33333,
        rate=1000,
        window=0.1,
        budget_packets=10,
        budget_seconds=1,
        seed=0,
    )
    with pytest.raises(UnsafeTarget, match="8.8.8.8"):
        run(job)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("attack", ["mail", "forwarder", "birthday"])
def test_the_other_attacks_poison_a_one_port_resolver_with_real_packets(attack: str) -> None:
    # mail: the lookup is made by the lab's mail service, the flood timed by the MX question
    # reaching the attacker's server; forwarder: forged answers from the conditional
    # forwarder's address carry the victim zone's NS set; birthday: 20 identical questions
    # in flight (the 2008 preset does not merge them)
    setting = RealSetting(
        attack=attack,
        defenses="2008",
        window=0.2,
        rate=50_000,
        duplicates=20,
        budget_packets=600_000,
        budget_seconds=90,
    )
    (result,) = run_real_trials(setting, 1, first_seed=11)
    assert result.attack == attack
    assert result.success and result.victim_sees == [ATTACKER], result
    assert result.reasons["udp_delivered_to_target"] > 0


@pytest.mark.timeout(120)
def test_classic_gets_one_try_per_ttl() -> None:
    # www itself is raced; once its real answer is cached the next try must wait out the
    # TTL, which does not fit the budget: one attempt, one window of forged answers
    setting = RealSetting(
        attack="classic",
        defenses="2008",
        window=0.1,
        rate=1_000,
        ttl=300,
        budget_packets=100_000,
        budget_seconds=20,
    )
    (result,) = run_real_trials(setting, 1, first_seed=5)
    assert result.attempts == 1 and result.packets == 100
    # 100 guesses of 65,536 IDs: won once in ~650 runs; otherwise the TTL stopped it
    assert result.success or "TTL" in json.loads(result.note)["attacker_note"]


def test_real_mode_names_the_attacks_it_runs() -> None:
    with pytest.raises(ValueError, match="mail"):
        RealSetting(attack="fragmentation")


@pytest.mark.timeout(240)
def test_the_command_runs_inside_an_unprivileged_user_namespace(tmp_path) -> None:
    # the path a user who is not root takes: the command re-runs itself as root of a new
    # user namespace, where the namespaces, the raw socket and port 53 are its own
    import os
    import sys

    from poisonproof.lab.cli_real import FORCE_USERNS
    from poisonproof.lab.netns import userns_available

    usable, why = userns_available()
    assert usable, why
    out = tmp_path / "trials.jsonl"
    argv = [sys.executable, "-m", "poisonproof", "lab", "attack", "kaminsky", "--mode", "real"]
    argv += ["--rate", "50000", "--window", "0.2", "--budget", "600000", "--trials", "1"]
    argv += ["--budget-seconds", "90", "--out", str(out), "--json"]
    done = subprocess.run(
        argv, env={**os.environ, FORCE_USERNS: "1"}, capture_output=True, text=True, timeout=200
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "user namespace" in done.stderr
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert json.loads(record["note"])["lab_mode"] == "userns"
    assert record["success"] and record["victim_sees"] == [ATTACKER]
