"""The real `poisonproof auth` process, driven with dig, kdig and dnspython over loopback."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.conftest import free_port, require_tool

pytestmark = pytest.mark.interop


def dig(server, *args: str) -> str:
    tool = require_tool("dig")
    result = subprocess.run(
        [tool, f"@{server.host}", "-p", str(server.port), "+norec", "+time=2", "+tries=1", *args],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def kdig(server, *args: str) -> str:
    tool = require_tool("kdig")
    result = subprocess.run(
        [tool, f"@{server.host}", "-p", str(server.port), "+norec", "+time=2", "+retry=0", *args],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def test_dig_answer_nxdomain_wildcard_cname(bank_server):
    out = dig(bank_server, "www.bank.example", "A")
    assert "status: NOERROR" in out and " aa" in out.split("flags:")[1].split(";")[0]
    assert "192.0.2.80" in out
    nx = dig(bank_server, "x7f3.bank.example", "A")
    assert "status: NXDOMAIN" in nx
    assert "AUTHORITY: 1" in nx and "SOA" in nx.split("AUTHORITY SECTION:")[1]
    assert "192.0.2.99" in dig(bank_server, "a.cdn.bank.example", "+short")
    chain = dig(bank_server, "portal.bank.example", "+short").split()
    assert chain == ["login.bank.example.", "www.bank.example.", "192.0.2.80"]


def test_dig_referral_with_glue(start_auth, zone_dir):
    tld = start_auth(
        "--zone", str(zone_dir / "example.zone"), "--listen", f"127.0.0.1:{free_port()}"
    )
    out = dig(tld, "www.bank.example", "A")
    assert "ANSWER: 0" in out and " aa" not in out.split("flags:")[1].split(";")[0]
    authority = out.split("AUTHORITY SECTION:")[1].split("ADDITIONAL SECTION:")[0]
    assert "bank.example.\t\t86400\tIN\tNS\tns1.bank.example." in authority
    assert "ns1.bank.example.\t86400\tIN\tA\t127.53.0.4" in out.split("ADDITIONAL SECTION:")[1]


def test_dig_truncation_then_tcp_retry(bank_server):
    truncated = dig(bank_server, "big.bank.example", "TXT", "+noedns", "+ignore")
    assert " tc" in truncated.split("flags:")[1].split(";")[0]
    retried = dig(bank_server, "big.bank.example", "TXT", "+noedns")
    assert "Truncated, retrying in TCP mode" in retried
    assert "ANSWER: 5" in retried
    over_tcp = kdig(bank_server, "+tcp", "big.bank.example", "TXT")
    assert "ANSWER: 5" in over_tcp


def test_kdig_edns_do_and_badvers(bank_server):
    out = kdig(bank_server, "+edns=0", "+bufsize=4096", "+dnssec", "www.bank.example", "A")
    assert "Version: 0; flags: do; UDP size: 1232 B" in out
    bad = kdig(bank_server, "+edns=1", "www.bank.example", "A")
    assert "BADVERS" in bad


def test_query_name_case_is_echoed_byte_for_byte(bank_server):
    import socket

    query = dns.message.make_query("WwW.BaNk.eXaMpLe", "A").to_wire()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(query, (bank_server.host, bank_server.port))
        reply = sock.recv(4096)
    question_end = 12 + len(b"\x03WwW\x04BaNk\x07eXaMpLe\x00") + 4
    assert reply[12:question_end] == query[12:question_end]


def test_dnspython_udp_and_tcp_pipelined(bank_server):
    query = dns.message.make_query("mail.bank.example", "A")
    reply = dns.query.udp(query, bank_server.host, port=bank_server.port, timeout=2)
    assert reply.answer[0][0].address == "192.0.2.25"
    reply = dns.query.tcp(query, bank_server.host, port=bank_server.port, timeout=2)
    assert reply.answer[0][0].address == "192.0.2.25"
    assert (
        dns.query.udp(
            dns.message.make_query("www.example.com", "A"),
            bank_server.host,
            port=bank_server.port,
            timeout=2,
        ).rcode()
        == dns.rcode.REFUSED
    )


def test_sighup_reload_keeps_old_zone_on_error(start_auth, zone_dir, tmp_path):
    zone = tmp_path / "bank.example.zone"
    shutil.copy(zone_dir / "bank.example.zone", zone)
    server = start_auth("--zone", str(zone), "--listen", f"127.0.0.1:{free_port()}")
    assert "192.0.2.80" in dig(server, "www.bank.example", "+short")
    zone.write_text(
        zone.read_text().replace("192.0.2.80", "192.0.2.81").replace("2026112901", "2026112902")
    )
    server.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "192.0.2.81" not in dig(server, "www.bank.example", "+short"):
        assert time.monotonic() < deadline, server.log
        time.sleep(0.1)
    assert "reloaded" in server.log
    zone.write_text(zone.read_text() + "broken A not-an-address\n")
    server.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "reload failed" not in server.log:
        assert time.monotonic() < deadline, server.log
        time.sleep(0.1)
    assert f"{zone}:" in server.log  # the error names the file and line
    assert "192.0.2.81" in dig(server, "www.bank.example", "+short")
    assert server.stop() == 0
    assert "stopped" in server.log


def test_broken_zone_refuses_to_start(tmp_path):
    import sys

    zone = tmp_path / "broken.zone"
    zone.write_text("$ORIGIN b.\n$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 10.0.0\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "poisonproof",
            "auth",
            "--zone",
            str(zone),
            "--listen",
            "127.0.0.1:0",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert f"{zone}:5:" in result.stderr


def test_bad_listen_address_is_a_clear_error(zone_dir):
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "poisonproof",
            "auth",
            "--zone",
            str(zone_dir / "bank.example.zone"),
            "--listen",
            "localhost:99999",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "is not an IP address" in result.stderr


def test_do_flag_is_echoed_with_dnspython(bank_server):
    query = dns.message.make_query("www.bank.example", "A", want_dnssec=True)
    reply = dns.query.udp(query, bank_server.host, port=bank_server.port, timeout=2)
    assert reply.ednsflags & dns.flags.DO


def test_queries_keep_being_answered_during_reloads(start_auth, zone_dir):
    import threading

    server = start_auth(
        "--zone", str(zone_dir / "bank.example.zone"), "--listen", f"127.0.0.1:{free_port()}"
    )
    failures: list[str] = []
    done = threading.Event()

    def client() -> None:
        query = dns.message.make_query("www.bank.example", "A")
        for _ in range(1500):
            try:
                reply = dns.query.udp(query, server.host, port=server.port, timeout=2)
                if reply.answer[0][0].address != "192.0.2.80":
                    failures.append(reply.to_text())
            except Exception as error:  # a timeout is a dropped query
                failures.append(repr(error))
        done.set()

    thread = threading.Thread(target=client)
    thread.start()
    reloads = 0
    while not done.wait(0.05):
        server.signal(signal.SIGHUP)
        reloads += 1
    thread.join()
    assert reloads >= 3 and failures == []
    assert server.log.count("reloaded") >= 3
