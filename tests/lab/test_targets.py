"""Real resolvers as targets (`poisonproof.lab.targets`): configurations, then each
installed one started for real, stock and weakened, against the lab world.

The live tests run this file as a helper INSIDE a fresh user + network namespace
(`unshare -rn`, as tests/interop does), because third-party resolvers follow referrals to
port 53 only: there the lab world is served on 127.0.0.x:53 in-process, with every
authoritative server recording the source port of each query it receives (the evidence
that a weakened target sends from one port), the target is started on 127.0.0.1:53 and
asked, and one JSON document comes back per target. The helper refuses to run in the
host's namespace.

    python -m tests.lab.test_targets TARGET WORKDIR    # (what the tests run, namespaced)
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import dns.rcode
import dns.rdatatype
import dns.zone
import pytest

from poisonproof.lab.targets import (
    BINARIES,
    DEFAULT_FIXED_PORT,
    TARGETS,
    Target,
    TargetError,
    TargetSpec,
    find_binary,
    lab_forward_zones,
    parse_metrics,
    parse_udp_counters,
    supports_weakened,
    target_binary,
    udp_counters,
    unbound_knows_option,
    world_of_hints,
)
from poisonproof.lab.world import WORLD_ZONE_DIR, lab_world

REPO = Path(__file__).resolve().parents[2]
HELPER_TIMEOUT = 60.0
LISTEN = "127.0.0.1"
WARM = [  # from the root down: every delegation of the way is learnt
    ("www.bank.example.", "A"),
    ("mail.bank.example.", "A"),
    ("www.shop.com.", "A"),
    ("bank.example.", "MX"),
]
FRESH = [  # then one upstream query each, as a Kaminsky attacker's trigger makes
    ("kaminsky-1.bank.example.", "A"),
    ("kaminsky-2.bank.example.", "A"),
    ("kaminsky-3.bank.example.", "A"),
]
HOLDS_ONE_PORT = {"poisonproof", "unbound", "bind9", "dnsmasq"}
"""Weakened, every upstream query leaves from one port. PowerDNS falls back to a kernel
port while the fixed one is still bound by the previous query of a referral chain."""
CACHE_DUMPS = {"unbound", "bind9", "pdns-recursor", "dnsmasq"}
OWN_RECEIVE_COUNT = {"bind9", "pdns-recursor"}


def real_address(name: str) -> str:
    """The A record the world's zone file gives `name` (the truth a target must return)."""
    zone = dns.zone.from_file(str(WORLD_ZONE_DIR / "bank.example.zone"), relativize=False)
    rdataset = zone.find_rdataset(name, dns.rdatatype.A)
    return next(iter(rdataset)).address


# -- configurations (no process started) ------------------------------------------------


def spec(name: str, weakened: bool, tmp_path: Path, **kwargs: Any) -> TargetSpec:
    hints = tmp_path / "root.hints"
    if not hints.exists():
        hints.write_text(lab_world().root_hints_text())
    return TargetSpec(name=name, weakened=weakened, listen="10.53.0.9", root_hints=hints, **kwargs)


WEAKENED_LINES = {
    "poisonproof": ['defenses = "2008"'],
    "unbound": [
        'outgoing-port-avoid: "0-65535"',
        f"outgoing-port-permit: {DEFAULT_FIXED_PORT}",
        "use-caps-for-id: no",
    ],
    "bind9": [f"query-source address * port {DEFAULT_FIXED_PORT};"],
    "knot-resolver": ["option('NO_0X20', true)"],
    "pdns-recursor": [
        f"udp-source-port-min={DEFAULT_FIXED_PORT}",
        f"udp-source-port-max={DEFAULT_FIXED_PORT}",
        "spoof-nearmiss-max=0",
    ],
    "dnsmasq": [f"query-port={DEFAULT_FIXED_PORT}"],
}


@pytest.mark.parametrize("name", TARGETS)
def test_config_serves_the_lab_and_weakens_only_when_asked(name: str, tmp_path: Path) -> None:
    stock = Target(spec(name, False, tmp_path), tmp_path / "stock").config_text()
    weak = Target(spec(name, True, tmp_path), tmp_path / "weak").config_text()
    for text in (stock, weak):
        assert "10.53.0.9" in text
        assert str(tmp_path) in text  # logs, pid, cache, hints under the caller's paths
        if name != "dnsmasq":  # dnsmasq forwards per zone instead of iterating
            assert str(tmp_path / "root.hints") in text
        if name not in ("knot-resolver", "dnsmasq"):  # kresd: view ACL; dnsmasq: 1 address
            assert "127.0.0.0/8" in text and "10.53.0.0/16" in text
        assert "daemonize: yes" not in text and "chroot" not in text.replace('chroot: ""', "")
    for line in WEAKENED_LINES[name]:
        assert line in weak, line
        assert line not in stock, line
    assert "33333" not in stock


def test_each_config_lets_the_software_reach_loopback_servers(tmp_path: Path) -> None:
    texts = {n: Target(spec(n, False, tmp_path), tmp_path / n).config_text() for n in TARGETS}
    assert "do-not-query-localhost: no" in texts["unbound"]
    assert "option('ALLOW_LOCAL', true)" in texts["knot-resolver"]
    assert "\ndont-query=\n" in texts["pdns-recursor"]
    assert "query_localhost = true" in texts["poisonproof"]
    assert "dnssec-validation no;" in texts["bind9"]
    assert "trust_anchors.remove('.')" in texts["knot-resolver"]
    assert "dnssec=off" in texts["pdns-recursor"]


@pytest.mark.parametrize("name", ["unbound", "bind9"])
def test_the_softwares_own_checker_accepts_both_configs(name: str, tmp_path: Path) -> None:
    from tests.conftest import require_tool

    checker = {"unbound": "unbound-checkconf", "bind9": "named-checkconf"}[name]
    require_tool(find_binary(checker) or checker)
    extra: tuple[str, ...] = ()
    if name == "unbound" and unbound_knows_option("iter-scrub-promiscuous"):
        extra = ("iter-scrub-promiscuous: no",)  # Debian's CVE-2025-11411 switch
    for weakened in (False, True):
        target = Target(spec(name, weakened, tmp_path, extra=extra), tmp_path / str(weakened))
        target.check_config()
    broken = Target(spec(name, False, tmp_path, extra=("no-such-option: 1;",)), tmp_path / "x")
    with pytest.raises(TargetError, match="rejects"):
        broken.check_config()


FORWARDING_LINES = {
    "poisonproof": ['forward = ["corp.example=10.53.2.1:53"]'],
    "unbound": ["forward-zone:", '    name: "corp.example"', "    forward-addr: 10.53.2.1@53"],
    "bind9": ['zone "corp.example" { type forward; forward only; forwarders { 10.53.2.1; }; };'],
    "knot-resolver": [
        "policy.add(policy.suffix(policy.FORWARD({'10.53.2.1@53'}), {todname('corp.example.')}))"
    ],
    "pdns-recursor": ["forward-zones-recurse=corp.example=10.53.2.1:53"],
    "dnsmasq": ["server=/corp.example/10.53.2.1#53"],
}


@pytest.mark.parametrize("name", TARGETS)
def test_conditional_forwarding_in_every_config(name: str, tmp_path: Path) -> None:
    forwarders = (("corp.example", ("10.53.2.1",)),)
    text = Target(spec(name, False, tmp_path, forwarders=forwarders), tmp_path).config_text()
    plain = Target(spec(name, False, tmp_path), tmp_path / "plain").config_text()
    for line in FORWARDING_LINES[name]:
        assert line in text, line
    assert "corp.example" not in plain


def test_forwarding_configs_pass_the_softwares_own_checkers(tmp_path: Path) -> None:
    from tests.conftest import require_tool

    forwarders = (("corp.example", ("10.53.2.1",)),)
    for name, checker in (("unbound", "unbound-checkconf"), ("bind9", "named-checkconf")):
        require_tool(find_binary(checker) or checker)
        Target(spec(name, True, tmp_path, forwarders=forwarders), tmp_path / name).check_config()


def test_a_fixed_port_of_ones_choosing(tmp_path: Path) -> None:
    text = Target(spec("unbound", True, tmp_path, fixed_port=4444), tmp_path).config_text()
    assert "outgoing-port-permit: 4444" in text
    assert TargetSpec("bind9", True, LISTEN, tmp_path, fixed_port=4444).source_port == 4444
    assert TargetSpec("bind9", False, LISTEN, tmp_path, fixed_port=4444).source_port is None
    # ours picks its one port at start-up; kresd cannot hold one
    assert TargetSpec("poisonproof", True, LISTEN, tmp_path).source_port is None
    assert TargetSpec("knot-resolver", True, LISTEN, tmp_path).source_port is None


def test_upstream_port_other_than_53(tmp_path: Path) -> None:
    for name in ("unbound", "knot-resolver", "pdns-recursor"):
        with pytest.raises(TargetError, match="port 53 only"):
            Target(spec(name, False, tmp_path, upstream_port=5300), tmp_path).config_text()
    bind = Target(spec("bind9", False, tmp_path, upstream_port=5300), tmp_path).config_text()
    assert "port 5300;" in bind
    dnsmasq = Target(spec("dnsmasq", False, tmp_path, upstream_port=5300), tmp_path)
    assert "server=/bank.example/127.0.0.20#5300" in dnsmasq.config_text()
    ours = Target(spec("poisonproof", False, tmp_path, upstream_port=5300), tmp_path)
    assert "upstream_port = 5300" in ours.config_text()


def test_dnsmasq_forwards_each_zone_of_a_moved_world(tmp_path: Path) -> None:
    world = lab_world("127.77.0.0")
    hints = tmp_path / "moved.hints"
    hints.write_text(world.root_hints_text())
    assert world_of_hints(hints).address_base == "127.77.0.0"
    zones = dict(lab_forward_zones(world))
    assert zones["."] == ("127.77.0.2", "127.77.0.3")
    assert zones["bank.example."] == ("127.77.0.20", "127.77.0.21")
    text = Target(TargetSpec("dnsmasq", False, LISTEN, hints), tmp_path).config_text()
    assert "server=127.77.0.2#53" in text  # the root: the default
    assert "server=/bank.example/127.77.0.21#53" in text
    (tmp_path / "other.hints").write_text(". 1 NS x.\nx. 1 A 127.9.9.9\n")
    with pytest.raises(ValueError, match="lab world"):
        world_of_hints(tmp_path / "other.hints")
    other = TargetSpec("dnsmasq", False, LISTEN, tmp_path / "other.hints")
    with pytest.raises(TargetError, match="forward_zones"):
        Target(other, tmp_path).config_text()
    given = dataclasses.replace(other, forward_zones=(("bank.example.", ("10.53.0.20",)),))
    assert "server=/bank.example/10.53.0.20#53" in Target(given, tmp_path).config_text()


def test_trust_anchor_turns_validation_on(tmp_path: Path) -> None:
    anchor = tmp_path / "ta.ds"
    anchor.write_text(
        ". 3600 IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n"
    )
    texts = {
        n: Target(spec(n, False, tmp_path, trust_anchor=anchor), tmp_path / n).config_text()
        for n in TARGETS
    }
    assert '"." static-ds 20326 8 2 "e06d44b8' in texts["bind9"]
    assert "dnssec-validation yes;" in texts["bind9"]
    assert f'trust-anchor-file: "{anchor}"' in texts["unbound"]
    assert f"trust_anchors.add_file('{anchor}', true)" in texts["knot-resolver"]
    assert "dnssec=validate" in texts["pdns-recursor"]
    assert "trust-anchor=.,20326,8,2,e06d44b8" in texts["dnsmasq"]
    assert f'trust_anchor_file = "{anchor}"' in texts["poisonproof"]


def test_spec_is_checked() -> None:
    with pytest.raises(ValueError, match="unknown target"):
        TargetSpec("powerdns", False, LISTEN, Path("h"))
    with pytest.raises(ValueError, match="IPv4"):
        TargetSpec("unbound", False, "::1", Path("h"))
    with pytest.raises(ValueError, match="port"):
        TargetSpec("unbound", False, LISTEN, Path("h"), port=0)


def test_supports_weakened_says_how_or_why_not() -> None:
    for name in TARGETS:
        can, how = supports_weakened(name)
        assert how
        assert can == (name != "knot-resolver")
    assert "outgoing-port-permit" in supports_weakened("unbound")[1]
    assert "query-source" in supports_weakened("bind9")[1]
    assert "query-port" in supports_weakened("dnsmasq")[1]
    assert "cannot" in supports_weakened("knot-resolver")[1]


def test_udp_counters() -> None:
    snmp = (
        "Ip: Forwarding DefaultTTL\nIp: 1 64\n"
        "Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n"
        "Udp: 10 1 3 12 3 0\n"
    )
    assert parse_udp_counters(snmp)["RcvbufErrors"] == 3
    mine = udp_counters()
    assert {"InDatagrams", "RcvbufErrors", "InErrors"} <= set(mine)
    through = udp_counters(subprocess.Popen)  # the same namespace, read by `cat`
    assert through["InDatagrams"] >= mine["InDatagrams"]


def test_parse_metrics() -> None:
    text = (
        "# HELP poisonproof_spoof_alarms_total x\n# TYPE poisonproof_spoof_alarms_total counter\n"
        "poisonproof_spoof_alarms_total 3.0\n"
        "# HELP poisonproof_events_total x\n# TYPE poisonproof_events_total counter\n"
        'poisonproof_events_total{event="bogus"} 2.0\n'
        "# HELP poisonproof_upstream_queries_total x\n"
        "# TYPE poisonproof_upstream_queries_total counter\n"
        'poisonproof_upstream_queries_total{protocol="tcp"} 7.0\n'
    )
    assert parse_metrics(text) == {"spoof_alarms": 3, "bogus": 2, "upstream_queries.tcp": 7}


def test_a_target_that_does_not_start_says_why(tmp_path: Path) -> None:
    target = Target(spec("poisonproof", False, tmp_path, extra=("no_such_key = 1",)), tmp_path)
    with pytest.raises(TargetError, match=r"(?s)poisonproof \(stock\) exited .*no-such-key"):
        target.start(timeout=20)
    target.stop()  # idempotent
    target.stop()


def test_ours_on_a_high_port_asked_through_popen(world_thread: Any, tmp_path: Path) -> None:
    """No namespace: the world on 127.0.0.x at a high port, ours told that port, and every
    question sent from a child process (as through `LabNet.popen`, whose namespaces this
    process cannot reach)."""
    from tests.conftest import free_port

    started: list[list[str]] = []

    def popen(argv: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        started.append(list(argv))
        return subprocess.Popen(list(argv), **kwargs)

    hints = world_thread.hints_file(tmp_path)
    target_spec = TargetSpec(
        "poisonproof", True, LISTEN, hints, port=free_port(), upstream_port=world_thread.port
    )
    with Target(target_spec, tmp_path / "ours", popen=popen) as target:
        assert not target.ask_from_here
        reply = target.ask("www.bank.example.")
        assert [r.address for s in reply.answer for r in s] == [real_address("www.bank.example.")]
    assert not target.running
    assert any("exchange" in argv for argv in started)


# -- live: each installed target in a private namespace ---------------------------------


def _require_target(name: str) -> None:
    from tests.conftest import require_tool

    require_tool("unshare")
    require_tool(target_binary(name) or BINARIES[name])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Any:
    results: dict[str, dict[str, Any]] = {}

    def run(name: str) -> dict[str, Any]:
        _require_target(name)
        if name not in results:
            from tests.interop.namespace import run_json_in_namespace

            workdir = tmp_path_factory.mktemp(f"target-{name}")
            results[name] = _run_module_in_namespace(name, workdir, run_json_in_namespace)
        return results[name]

    return run


def _run_module_in_namespace(name: str, workdir: Path, runner: Any) -> dict[str, Any]:
    """`unshare -rn python -m tests.lab.test_targets NAME WORKDIR`, from the repository."""
    shim = workdir / "run_helper.py"
    shim.write_text(
        "import runpy, sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "runpy.run_module('tests.lab.test_targets', run_name='__main__', alter_sys=True)\n"
    )
    return runner(shim, [name, str(workdir)], HELPER_TIMEOUT, f"the {name} target run")


def _variant(result: dict[str, Any], variant: str) -> dict[str, Any]:
    run = result[variant]
    assert "error" not in run, f"{variant}: {run['error']}"
    return run


@pytest.mark.interop
@pytest.mark.parametrize("name", TARGETS)
@pytest.mark.parametrize("variant", ["stock", "weakened"])
def test_target_resolves_the_victim(live: Any, name: str, variant: str) -> None:
    run = _variant(live(name), variant)
    assert run["answers"]["www.bank.example. A"] == [real_address("www.bank.example.")]
    assert run["rcodes"]["kaminsky-1.bank.example. A"] == "NXDOMAIN"
    assert run["start_seconds"] < 15


@pytest.mark.interop
@pytest.mark.parametrize("name", TARGETS)
def test_weakened_target_asks_from_one_port(live: Any, name: str) -> None:
    result = live(name)
    stock, weak = _variant(result, "stock"), _variant(result, "weakened")
    # stock: a random port per query (at least two different ones in a walk from the root)
    assert len(set(stock["warm_ports"] + stock["fresh_ports"])) > 1, stock
    assert len(weak["fresh_ports"]) >= len(FRESH)
    fixed = result["fixed_port"]
    if name == "knot-resolver":  # cannot be held to one port: still random
        assert len(set(weak["warm_ports"] + weak["fresh_ports"])) > 1
        return
    if name == "poisonproof":  # one port, chosen by the resolver at start-up
        assert len(set(weak["warm_ports"] + weak["fresh_ports"])) == 1, weak
        return
    assert set(weak["fresh_ports"]) == {fixed}, weak  # each trigger's query: the fixed port
    if name in HOLDS_ONE_PORT:
        assert set(weak["warm_ports"]) == {fixed}, weak
    else:  # pdns: most of a referral chain, the rest from kernel ports
        share = weak["warm_ports"].count(fixed) / len(weak["warm_ports"])
        assert share >= 0.5, weak


@pytest.mark.interop
@pytest.mark.parametrize("name", TARGETS)
def test_0x20_only_where_stock_does_it(live: Any, name: str) -> None:
    result = live(name)
    stock, weak = _variant(result, "stock"), _variant(result, "weakened")
    assert not weak["mixed_case"]  # no weakened target randomises case
    assert stock["mixed_case"] == (name in ("poisonproof", "knot-resolver"))


@pytest.mark.interop
@pytest.mark.parametrize("name", TARGETS)
def test_cache_dump_and_counters(live: Any, name: str) -> None:
    result = live(name)
    for variant in ("stock", "weakened"):
        run = _variant(result, variant)
        if name in CACHE_DUMPS:
            assert run["dump_mentions_bank"] is True, run
        else:
            assert run["dump_mentions_bank"] is None and run["why_no_dump"]
        counted = run["received_udp"]
        if name in OWN_RECEIVE_COUNT:
            # its own count of what it read: client queries and upstream replies
            assert counted >= len(WARM) + len(FRESH) + run["upstream_udp_queries"] // 2, run
            assert counted <= run["namespace_udp"]["InDatagrams"]
            assert run["unwanted_replies"] is not None
        else:
            assert counted is None
        assert run["namespace_udp"]["InDatagrams"] > run["upstream_udp_queries"]
        assert run["stats"], "its own counters"
        if name == "poisonproof":  # read from its Prometheus metrics
            assert run["stats"]["queries"] >= len(WARM) + len(FRESH), run["stats"]
            assert run["stats"]["upstream_queries.udp"] > 0, run["stats"]
    assert result["version"]
    assert result["notes"]
    if name == "unbound" and unbound_knows_option("iter-scrub-promiscuous"):
        assert "iter-scrub-promiscuous" in result["notes"]


# -- the helper (runs inside the namespace) ---------------------------------------------


def _check_private_namespace() -> None:
    interfaces = sorted(name for _, name in socket.if_nameindex())
    if interfaces != ["lo"]:
        sys.exit(f"refusing to run: interfaces {interfaces}; run inside `unshare -rn`")


def _mixed_case(qnames: list[str]) -> bool:
    return any(q != q.lower() and q != q.upper() for q in qnames)


def _one_variant(
    name: str, weakened: bool, workdir: Path, hints: Path, running: Any, qlog: Path
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    target_spec = TargetSpec(name, weakened, LISTEN, hints, fixed_port=DEFAULT_FIXED_PORT)
    target = Target(target_spec, workdir)

    def log_to(path: Path) -> Any:
        handle = path.open("w")
        for auth in running.auth_servers:
            auth.query_log = handle
        return handle

    def ports(path: Path) -> tuple[list[int], list[str]]:
        records = [json.loads(line) for line in path.read_text().splitlines()]
        udp = [r for r in records if r["via"] == "udp" and "qname" in r]
        return [r["port"] for r in udp], [r["qname"] for r in udp]

    before = udp_counters()
    warm_log = log_to(qlog.with_suffix(".warm"))
    try:
        started = time.monotonic()
        target.start(timeout=15)
        out["start_seconds"] = round(time.monotonic() - started, 2)
        out["answers"], out["rcodes"] = {}, {}
        for phase, questions in (("warm", WARM), ("fresh", FRESH)):
            if phase == "fresh":
                warm_log.close()
                warm_log = log_to(qlog.with_suffix(".fresh"))
            for qname, qtype in questions:
                reply = target.ask(qname, qtype)
                key = f"{qname} {qtype}"
                out["rcodes"][key] = dns.rcode.to_text(reply.rcode())
                out["answers"][key] = sorted(
                    r.to_text() for s in reply.answer if s.rdtype == dns.rdatatype.A for r in s
                )
        warm_log.close()
        dump = target.cache_dump()
        out["dump_mentions_bank"] = None if dump is None else "bank.example" in dump
        out["why_no_dump"] = target.why_no_dump
        stats = target.stats()
        out["stats"] = {k: v for k, v in stats.items() if not k.startswith("mem.")}
        out["received_udp"] = target.received_udp()
        out["unwanted_replies"] = target.unwanted_replies()
    except Exception as error:  # reported to the test, which fails with it
        out["error"] = f"{type(error).__name__}: {error}\n{target.log_tail(40)}"
    finally:
        target.stop()
        warm_log.close()
    after = udp_counters()
    out["namespace_udp"] = {k: after[k] - before[k] for k in after}
    warm_ports, warm_names = ports(qlog.with_suffix(".warm"))
    fresh_ports, fresh_names = (
        ports(qlog.with_suffix(".fresh")) if qlog.with_suffix(".fresh").exists() else ([], [])
    )
    out.update(warm_ports=warm_ports, fresh_ports=fresh_ports)
    out["upstream_udp_queries"] = len(warm_ports) + len(fresh_ports)
    out["mixed_case"] = _mixed_case(warm_names + fresh_names)
    out["qnames"] = warm_names + fresh_names
    return out


def _helper(name: str, workdir: Path) -> dict[str, Any]:
    from poisonproof.lab.targets import defaults_notes, target_version
    from poisonproof.lab.world import start_world
    from poisonproof.net.real import RealNetwork

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    running = asyncio.run_coroutine_threadsafe(start_world(RealNetwork(), 53), loop).result(30)
    hints = workdir / "root.hints"
    hints.write_text(running.root_hints_text())
    result: dict[str, Any] = {
        "version": target_version(name),
        "notes": defaults_notes(name),
        "fixed_port": DEFAULT_FIXED_PORT,
    }
    try:
        for variant, weakened in (("stock", False), ("weakened", True)):
            result[variant] = _one_variant(
                name, weakened, workdir / variant, hints, running, workdir / f"{variant}.qlog"
            )
    finally:
        asyncio.run_coroutine_threadsafe(running.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
    return result


def main() -> None:
    name, workdir = sys.argv[1], Path(sys.argv[2])
    _check_private_namespace()
    subprocess.run([find_binary("ip") or "ip", "link", "set", "lo", "up"], check=True, timeout=10)
    json.dump(_helper(name, workdir), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
