"""The audit of a resolver already running on loopback (`poisonproof audit --target IP:PORT`).

Real processes: our resolver (one port, and stock) and Unbound with a stub zone, asked
through the probe servers on loopback; the attacks send real spoofed datagrams on lo.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import pytest

from poisonproof.lab.audit_loopback import (
    ZONE,
    AuditSetupError,
    ProbeAddresses,
    parse_target,
    run_loopback_audit,
)
from poisonproof.lab.spoofer import UnsafeTarget
from tests.conftest import REQUIRE_TOOLS, free_port, require_tool

PROBE = ProbeAddresses.on("127.55", 53)


@pytest.fixture(autouse=True)
def _root() -> None:
    if os.geteuid() != 0:
        message = "the probe servers bind port 53 and the attacks need a raw socket: root"
        if REQUIRE_TOOLS:
            pytest.fail(message)
        pytest.skip(message)


def _wait_answering(port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # Unbound answers localhost. itself (a default local zone): no upstream query
            query = dns.message.make_query("localhost.", "A")
            dns.query.udp(query, "127.0.0.1", port=port, timeout=0.3)
            return
        except Exception:
            time.sleep(0.1)
    raise AssertionError(f"nothing answers on 127.0.0.1:{port}")


def _wait_ready(log: Path, timeout: float = 15) -> None:
    """Until serve logs that it listens (asking it would start a resolution upstream)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "ready:" in log.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise AssertionError(f"serve did not start: {log.read_text(errors='replace')[-2000:]}")


def _ours(tmp_path: Path, *flags: str) -> Iterator[int]:
    hints = tmp_path / "hints"
    hints.write_text(PROBE.root_hints())
    port = free_port()
    argv = [sys.executable, "-m", "poisonproof", "serve", "--listen", f"127.0.0.1:{port}"]
    argv += ["--root-hints", str(hints), "--query-localhost", "on", *flags]
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_ready(tmp_path / "serve.log")
        yield port
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            log_text = (tmp_path / "serve.log").read_text(errors="replace")[-3000:]
            raise AssertionError(f"serve did not stop on SIGTERM within 30 s: {log_text}") from None


@pytest.fixture
def one_port(tmp_path: Path) -> Iterator[int]:
    yield from _ours(tmp_path, "--defenses", "2008", "--query-port", "33335")


@pytest.fixture
def stock(tmp_path: Path) -> Iterator[int]:
    # the probe's root is unsigned: validation from the IANA anchor would call it bogus
    yield from _ours(tmp_path, "--insecure", ".")


def test_only_loopback_resolvers_are_audited() -> None:
    assert parse_target("127.0.0.1:5353") == ("127.0.0.1", 5353)
    for outside in ("8.8.8.8:53", "192.168.1.1:53", "10.53.0.53:53"):
        with pytest.raises(AuditSetupError, match="loopback"):
            run_loopback_audit(outside, lookups=1, attacks=False, addresses=PROBE)
    for bad in ("127.0.0.1", "127.0.0.1:0", "localhost:53"):
        with pytest.raises(AuditSetupError, match="IP:PORT"):
            parse_target(bad)
    with pytest.raises(UnsafeTarget):
        ProbeAddresses.on("10.0", 53)


def test_no_resolver_at_the_address_is_said_plainly() -> None:
    with pytest.raises(AuditSetupError, match="no resolver answers"):
        run_loopback_audit(f"127.0.0.1:{free_port()}", lookups=3, attacks=False, addresses=PROBE)


@pytest.mark.timeout(240)
def test_a_one_port_resolver_on_loopback_is_graded_poor_and_poisoned(one_port: int) -> None:
    # 10,000 guesses per 0.2 s window against one port: ~15% per window, 40 windows
    report = run_loopback_audit(
        f"127.0.0.1:{one_port}",
        lookups=40,
        rate=50_000,
        window=0.2,
        budget=400_000,
        addresses=PROBE,
    )
    assert report.queries_seen >= 40
    assert report.ports.distinct == 1 and report.porttest == "POOR"
    assert report.case_randomized == 0.0 and report.cookies == 0.0
    assert not report.qname_minimisation
    assert report.bits_total <= 16.5
    outcomes = {c["attack"]: str(c["outcome"]) for c in report.report_card}
    assert outcomes["kaminsky (referral)"].startswith("poisoned after"), outcomes
    # the forged answer carries the NS set; our 2008 preset takes the delegation too
    assert outcomes["kaminsky (answer)"].startswith("poisoned after"), outcomes


@pytest.mark.timeout(240)
def test_the_stock_resolver_on_loopback_is_graded_great_and_survives(stock: int) -> None:
    report = run_loopback_audit(
        f"127.0.0.1:{stock}", lookups=40, rate=20_000, window=0.1, budget=40_000, addresses=PROBE
    )
    assert report.ports.distinct >= 35 and report.porttest == "GREAT"
    assert report.case_randomized > 0.9 and report.cookies > 0.9
    assert report.qname_minimisation
    assert report.bits_total > 30
    assert [c["outcome"] for c in report.report_card] == ["survived", "survived"]


@pytest.mark.interop
@pytest.mark.timeout(240)
def test_unbound_through_a_stub_zone(tmp_path: Path) -> None:
    unbound = require_tool("unbound")
    port = free_port()
    config = tmp_path / "unbound.conf"
    config.write_text(
        "server:\n"
        f"    interface: 127.0.0.1\n    port: {port}\n    do-daemonize: no\n"
        f'    username: ""\n    chroot: ""\n    directory: "{tmp_path}"\n'
        f'    pidfile: "{tmp_path}/unbound.pid"\n    use-syslog: no\n    logfile: ""\n'
        '    do-not-query-localhost: no\n    module-config: "iterator"\n'
        f"stub-zone:\n    name: {ZONE}\n    stub-addr: {PROBE.probe}@{PROBE.port}\n"
    )
    process = subprocess.Popen(
        [unbound, "-d", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_answering(port)
        report = run_loopback_audit(f"127.0.0.1:{port}", lookups=30, budget=20_000, addresses=PROBE)
    finally:
        process.terminate()
        process.wait(10)
    assert report.ports.distinct >= 25 and report.porttest == "GREAT"
    assert [c["outcome"] for c in report.report_card] == ["survived", "survived"]
