"""`poisonproof serve` on the real network, iterating through the lab world, asked with dig."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time

import dns.edns
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.conftest import require_tool

pytestmark = pytest.mark.interop


@pytest.fixture
def resolver(start_resolver_process, world_thread, tmp_path):
    return start_resolver_process(
        *world_thread.serve_args(tmp_path),
    )


def dig(server, *args: str) -> str:
    result = subprocess.run(
        [
            require_tool("dig"),
            f"@{server.host}",
            "-p",
            str(server.port),
            "+time=5",
            "+tries=1",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def answer_lines(out: str) -> list[list[str]]:
    if "ANSWER SECTION:" not in out:
        return []
    section = out.split("ANSWER SECTION:")[1].split("\n\n")[0]
    return [line.split() for line in section.strip().splitlines()]


def test_answers_from_the_network_then_from_the_cache(resolver):
    first = dig(resolver, "www.bank.example", "A")
    assert "status: NOERROR" in first and " ra" in first.split("flags:")[1].split(";")[0]
    ((name, ttl, _, rtype, address),) = answer_lines(first)
    assert (name, rtype, address) == ("www.bank.example.", "A", "192.0.2.80")
    assert int(ttl) == 30
    time.sleep(2.1)
    second = dig(resolver, "www.bank.example", "A")
    ((_, cached_ttl, _, _, _),) = answer_lines(second)
    assert int(cached_ttl) <= 28  # decreasing in the cache


def test_record_types_chains_and_negative_answers(resolver):
    assert [row[4] for row in answer_lines(dig(resolver, "www.bank.example", "AAAA"))] == [
        "2001:db8::80"
    ]
    mx = sorted(" ".join(row[4:]) for row in answer_lines(dig(resolver, "bank.example", "MX")))
    assert mx == ["10 mail.bank.example.", "20 mx1.mailhost.net."]
    chain = answer_lines(dig(resolver, "portal.bank.example", "A"))
    assert [row[3] for row in chain] == ["CNAME", "CNAME", "A"] and chain[-1][4] == "192.0.2.80"
    nx = dig(resolver, "x7f3.bank.example", "A")
    assert "status: NXDOMAIN" in nx and "SOA" in nx.split("AUTHORITY SECTION:")[1]
    nodata = dig(resolver, "mail.bank.example", "TXT")
    assert "status: NOERROR" in nodata and "ANSWER: 0" in nodata
    cross = answer_lines(dig(resolver, "online.bank.example", "A"))
    assert [row[0] for row in cross][:2] == ["online.bank.example.", "bank.cdn.net."]


def test_clients_outside_the_acl_are_refused(start_resolver_process, world_thread, tmp_path):
    closed = start_resolver_process(
        *world_thread.serve_args(tmp_path),
        "--allow",
        "192.0.2.0/24",
    )
    reply = dns.query.udp(
        dns.message.make_query("www.bank.example", "A", use_edns=0),
        closed.host,
        port=closed.port,
        timeout=5,
    )
    assert reply.rcode() == dns.rcode.REFUSED
    ede = [o for o in reply.options if o.otype == dns.edns.OptionType.EDE]
    assert ede and ede[0].code == 18  # Prohibited


def test_tcp_and_case_echo(resolver):
    reply = dns.query.tcp(
        dns.message.make_query("WwW.BaNk.ExAmPlE", "A"),
        resolver.host,
        port=resolver.port,
        timeout=5,
    )
    assert reply.question[0].name.to_text() == "WwW.BaNk.ExAmPlE."
    assert reply.answer[0].name.to_text() == "WwW.BaNk.ExAmPlE."


def test_unreachable_upstream_is_servfail_with_ede(start_resolver_process, tmp_path):
    hints = tmp_path / "dead.hints"
    hints.write_text(". 3600 NS a.dead.\na.dead. 3600 A 127.0.0.99\n")
    dead = start_resolver_process(
        "--root-hints", str(hints), "--upstream-port", "9", "--query-localhost", "on"
    )
    reply = dns.query.udp(
        dns.message.make_query("www.bank.example", "A", use_edns=0),
        dead.host,
        port=dead.port,
        timeout=30,
    )
    assert reply.rcode() == dns.rcode.SERVFAIL
    assert [o for o in reply.options if o.otype == dns.edns.OptionType.EDE]


def test_sigterm_answers_in_flight_queries_and_exits_0(resolver):
    results: list[int] = []

    def ask(i: int) -> None:
        q = dns.message.make_query(f"n{i}.news.org", "A")
        results.append(dns.query.udp(q, resolver.host, port=resolver.port, timeout=10).rcode())

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    time.sleep(0.01)
    resolver.signal(signal.SIGTERM)
    for t in threads:
        t.join(15)
    assert resolver.proc.wait(15) == 0
    assert results and all(r in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN) for r in results)
    assert re.search(r"stopped after \d+ client queries", resolver.log)
