"""Interop: a real Unbound resolves names through a hierarchy of our authoritative servers.

root (127.53.0.1) -> example. (127.53.0.2/.3) -> bank.example. (127.53.0.4) and
attacker.example. (127.53.0.66), the bundled lab zones, all on port 53 because Unbound
follows referrals to port 53 only. So the whole world runs in a fresh user+network
namespace made by `unshare -rn` (see unbound_world.py): nothing leaves its loopback, and
the host's port 53 (perhaps a system Unbound) is never touched.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_tool
from tests.interop.namespace import run_json_in_namespace

HELPER = Path(__file__).with_name("unbound_world.py")
TIMEOUT = 45  # seconds for the whole world: start, resolve, dump, stop


def run_world(tmp_path: Path, questions: list[tuple[str, str]]) -> dict[str, Any]:
    ip = require_tool("ip")
    unbound = require_tool("unbound")
    checkconf = require_tool("unbound-checkconf")
    control = require_tool("unbound-control")
    args = [
        "--workdir", str(tmp_path),
        "--unbound", unbound,
        "--unbound-checkconf", checkconf,
        "--unbound-control", control,
        "--ip", ip,
        *(f"{name}/{rdtype}" for name, rdtype in questions),
    ]  # fmt: skip
    return run_json_in_namespace(HELPER, args, TIMEOUT, "the Unbound world")


def records(reply: dict[str, Any], section: str = "answer") -> list[tuple[str, str, str]]:
    return [(r["name"].lower(), r["type"], r["rdata"].lower()) for r in reply[section]]


def assert_recursive_noerror(reply: dict[str, Any]) -> None:
    assert reply["rcode"] == "NOERROR", reply
    assert "RA" in reply["flags"], reply
    assert "AA" not in reply["flags"], reply  # Unbound's answer, not ours passed through


@pytest.mark.interop
@pytest.mark.timeout(60)
def test_unbound_resolves_through_our_hierarchy(tmp_path: Path) -> None:
    missing = f"nx-{uuid.uuid4().hex[:12]}.bank.example."
    questions = [
        ("www.bank.example.", "A"),
        ("portal.bank.example.", "A"),
        (missing, "A"),
        ("img.cdn.bank.example.", "A"),
        ("attacker.example.", "MX"),
    ]
    world = run_world(tmp_path, questions)
    context = f"\nunbound log:\n{world['unbound_log']}"
    www, portal, nx, wildcard, mx = world["replies"]

    assert_recursive_noerror(www)
    assert records(www) == [("www.bank.example.", "A", "192.0.2.80")], context

    assert_recursive_noerror(portal)
    assert records(portal) == [
        ("portal.bank.example.", "CNAME", "login.bank.example."),
        ("login.bank.example.", "CNAME", "www.bank.example."),
        ("www.bank.example.", "A", "192.0.2.80"),
    ], context

    assert nx["rcode"] == "NXDOMAIN", (nx, context)
    assert "RA" in nx["flags"] and "AA" not in nx["flags"], nx
    assert nx["answer"] == [], nx
    soa = [r for r in nx["authority"] if r["type"] == "SOA"]
    assert [r["name"] for r in soa] == ["bank.example."], nx  # RFC 2308 negative answer

    assert_recursive_noerror(wildcard)
    assert records(wildcard) == [("img.cdn.bank.example.", "A", "192.0.2.99")], context

    assert_recursive_noerror(mx)
    assert records(mx) == [("attacker.example.", "MX", "10 mx.bank.example.")], context

    # Unbound really walked our servers: each level of the hierarchy was asked.
    asked = world["server_queries"]
    assert asked["127.53.0.1"] > 0, asked  # root
    assert asked["127.53.0.2"] + asked["127.53.0.3"] > 0, asked  # example. (either NS)
    assert asked["127.53.0.4"] > 0, asked  # bank.example.
    assert asked["127.53.0.66"] > 0, asked  # attacker.example.

    # ... and cached what they said (unbound-control dump_cache over its local socket).
    assert world["cache_dump_rc"] == 0, world["cache_dump"]
    cache = world["cache_dump"].lower()
    assert "www.bank.example.\t" in cache and "192.0.2.80" in cache, cache
    assert "attacker.example.\t" in cache and "mx.bank.example." in cache, cache
    assert world["unbound_rc"] == 0, context
