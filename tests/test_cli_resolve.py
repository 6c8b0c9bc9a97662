"""`poisonproof resolve --trace` over real sockets through a signed lab world.

The world is served by `lab world up --signed` on loopback (one zone left unsigned, one
with a DS for a key it does not publish); the resolver validates from the world's trust
anchor file and its trace shows the validation path.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from poisonproof.lab.world import world_down
from tests.conftest import free_port


@pytest.fixture(scope="module")
def signed_world(tmp_path_factory: pytest.TempPathFactory):
    base = "127.78.0.0"
    port = free_port("127.78.0.2")
    state_dir = tmp_path_factory.mktemp("world") / "state"
    command = [sys.executable, "-m", "poisonproof.lab.world_cli", "up", "--json"]
    options = ["--port", str(port), "--address-base", base, "--state-dir", str(state_dir)]
    breaking = ["--signed", "--unsigned", "news.org", "--break", "bank.example=wrong-key"]
    done = subprocess.run(
        [*command, *options, *breaking], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    try:
        yield json.loads(done.stdout)
    finally:
        world_down(state_dir)


def _resolve(state: dict, name: str, rdtype: str = "A") -> dict:
    command = [
        sys.executable,
        "-m",
        "poisonproof",
        "resolve",
        name,
        rdtype,
        "--json",
        "--root-hints",
        state["root_hints"],
        "--query-localhost",
        "on",
        "--upstream-port",
        str(state["port"]),
        "--trust-anchor-file",
        state["trust_anchor"],
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _validator_lines(result: dict) -> list[str]:
    return [
        f"{e['question']}: {e['outcome']}" for e in result["trace"] if e["server"] == "validator"
    ]


@pytest.mark.timeout(120)
def test_secure_insecure_and_bogus_through_real_sockets(signed_world: dict) -> None:
    secure = _resolve(signed_world, "www.shop.com.")
    assert secure["rcode"] == "NOERROR" and secure["security"] == "secure"
    lines = _validator_lines(secure)
    assert any(line.startswith(". DNSKEY: secure") for line in lines), lines
    assert any("signed by" in line for line in lines), lines

    missing = _resolve(signed_world, "nothing-here.example.")
    assert missing["rcode"] == "NXDOMAIN" and missing["security"] == "secure"

    insecure = _resolve(signed_world, "www.news.org.")
    assert insecure["rcode"] == "NOERROR" and insecure["security"] == "insecure"
    assert any("unsigned delegation" in line for line in _validator_lines(insecure))

    bogus = _resolve(signed_world, "www.bank.example.")
    assert bogus["security"] == "bogus"
    assert bogus["bogus"][0] == 9  # EDE 9: DNSKEY missing (the DS matches no key)
    assert any("bank.example. DNSKEY: bogus" in line for line in _validator_lines(bogus))
