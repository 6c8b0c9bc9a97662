"""The lab world: zone data, the question list, a walk from the root, and `up`/`down`.

The walk runs on the host's loopback on a free high port (every server on that port);
`up`/`down` run on port 53 inside a fresh user+network+PID namespace (`unshare -rnpf`),
so the host's port 53 is never touched and anything left behind dies with the namespace.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.zone
import pytest

from poisonproof.auth.zones import ServedZone, load_zone
from poisonproof.lab.world import (
    LAYOUT,
    LOOPBACK,
    WORLD_ZONE_DIR,
    World,
    bind_failure_message,
    lab_world,
    start_world,
    world_down,
)
from poisonproof.net.real import RealNetwork
from tests.conftest import free_port, require_tool

Record = tuple[str, str, int, str]  # owner, type, TTL, rdata (lower-case text)
Outcome = tuple[str, frozenset[Record], tuple[str, int] | None]  # rcode, records, negative SOA

INTERESTING = [
    ("www.bank.example.", "A"),
    ("www.bank.example.", "AAAA"),
    ("bank.example.", "MX"),
    ("bank.example.", "TXT"),
    ("mail.bank.example.", "AAAA"),  # NODATA
    ("portal.bank.example.", "A"),  # portal -> login -> www
    ("online.bank.example.", "A"),  # -> bank.cdn.net -> edge.cdn.net
    ("careers.bank.example.", "AAAA"),  # -> www.news.org -> news.cdn.net -> edge.cdn.net
    ("img7.cdn.bank.example.", "A"),  # wildcard
    ("x.branch.bank.example.", "TXT"),  # wildcard, TTL 600
    ("hq.branch.bank.example.", "A"),  # exact name beats the wildcard
    ("corp.bank.example.", "A"),  # empty non-terminal: NODATA
    ("floor3.corp.bank.example.", "TXT"),  # empty non-terminal
    ("mx.bank.example.", "A"),  # NXDOMAIN: attacker.example's MX target
    ("attacker.example.", "MX"),
    ("lure.attacker.example.", "A"),
    ("mailhost.net.", "MX"),
    ("mx1.mailhost.net.", "AAAA"),
    ("autoconfig.mailhost.net.", "A"),  # autoconfig -> webmail -> www
    ("www.glueless.org.", "A"),  # glueless: ns1.cdn.net resolved first
    ("mirror.glueless.org.", "A"),
    ("www.eu.shop.com.", "AAAA"),  # sub-delegation
    ("europe.shop.com.", "A"),  # CNAME into the delegated child
    ("assets.cdn.net.", "A"),  # cdn.net -> eu.shop.com
    ("checkout.eu.shop.com.", "AAAA"),  # eu.shop.com -> shop.com
    ("basket.shop.com.", "A"),
    ("images.shop.com.", "A"),  # -> wildcard in cdn.net
    ("archive.news.org.", "A"),  # -> glueless.org
    ("nope.blog.news.org.", "AAAA"),  # wildcard
    ("a.root-servers.lab.", "A"),
    ("lab.", "TXT"),
    (".", "NS"),
    ("com.", "SOA"),
    ("nx-tld.", "A"),  # NXDOMAIN from the root
    ("nothing.example.", "A"),
]


# -- zone data and the description ---------------------------------------------------


def test_every_zone_file_loads_and_is_served() -> None:
    files = sorted(p.name for p in WORLD_ZONE_DIR.glob("*.zone"))
    served = sorted({f for spec in LAYOUT for f in spec.zone_files})
    assert files == served
    for name in files:
        zone = load_zone(WORLD_ZONE_DIR / name)
        assert zone.soa is not None
        assert str(zone.origin) == (name.removesuffix(".zone") + ".").replace("root.", ".")


def test_layout_agrees_with_the_zone_data() -> None:
    """Each server's name is an NS of every zone it serves, and glue points at it."""
    world = lab_world()
    by_name = {dns.name.from_text(s.name): s.address for s in world.servers}
    zones = world.load_zones()
    for server in world.servers:
        ip = ipaddress.IPv4Address(server.address)
        assert ip in LOOPBACK and ip != ipaddress.IPv4Address("127.0.0.1")
        assert server.address not in ("127.0.0.53", "127.0.0.54")  # systemd-resolved
        for file_name in server.zone_files:
            served = zones[file_name]
            ns = served.zone.get_rdataset(served.origin, "NS")
            assert dns.name.from_text(server.name) in {r.target for r in ns}, file_name
    for served in zones.values():
        for name, node in served.zone.nodes.items():
            for rdataset in node.rdatasets:
                if rdataset.rdtype != dns.rdatatype.A:
                    continue
                for rdata in rdataset:
                    if ipaddress.IPv4Address(rdata.address) in LOOPBACK:
                        assert by_name.get(name) == rdata.address, (served.source, name)
    assert len({s.address for s in world.servers}) == len(world.servers)


def test_questions_are_many_distinct_and_deterministic() -> None:
    world = lab_world()
    questions = world.questions()
    assert len(questions) >= 500
    assert len(set(questions)) == len(questions)
    assert questions == lab_world().questions()
    assert questions == lab_world("127.77.0.0").questions()
    assert questions != world.questions(seed=1)
    for name, rdtype in questions:
        assert name.endswith(".") and name == name.lower()
        dns.rdatatype.from_text(rdtype)

    # ... and their answers are varied (judged from the zone data alone).
    oracle = Oracle(world)
    kinds: Counter[str] = Counter()
    for name, rdtype in questions:
        rcode, records, _ = oracle.resolve(name, rdtype)
        types = Counter(r[1] for r in records)
        owners = {r[0] for r in records}
        if rcode == "NXDOMAIN":
            kinds["nxdomain"] += 1
        elif not records:
            kinds["nodata"] += 1
        else:
            kinds["answer"] += 1
            kinds[f"answer {rdtype}"] += rdtype in types
        if types["CNAME"] >= 2:
            kinds["cname chain"] += 1
        if (
            types["CNAME"]
            and len({oracle.zone_for(dns.name.from_text(o)).origin for o in owners}) > 1
        ):
            kinds["cross-zone cname"] += 1
    for kind, at_least in {
        "nxdomain": 100,
        "nodata": 200,
        "answer": 150,
        "answer A": 40,
        "answer AAAA": 20,
        "answer MX": 8,
        "answer TXT": 20,
        "cname chain": 20,
        "cross-zone cname": 20,
    }.items():
        assert kinds[kind] >= at_least, (kind, kinds)


def test_root_hints_are_a_zone_file_naming_the_root_servers() -> None:
    for base in ("127.0.0.0", "127.77.0.0"):
        world = lab_world(base)
        hints = dns.zone.from_text(
            world.root_hints_text(), origin=dns.name.root, relativize=False, check_origin=False
        )
        ns = hints.get_rdataset(dns.name.root, "NS")
        roots = {dns.name.from_text(s.name): s.address for s in world.root_servers}
        assert {r.target for r in ns} == set(roots) and len(roots) == 2
        for name, address in roots.items():
            assert [r.address for r in hints.get_rdataset(name, "A")] == [address]
            assert address.startswith(base.rsplit(".", 2)[0])


def test_relocated_zones_move_only_server_addresses() -> None:
    moved = lab_world("127.77.0.0")
    assert moved.server("ns1.bank.example.").address == "127.77.0.20"
    text = moved.zone_text("example.zone")
    assert "127.77.0.20" in text and "127.0.0." not in text
    assert moved.zone_text("bank.example.zone").count("192.0.2.80") == 1


def test_the_world_never_leaves_loopback() -> None:
    with pytest.raises(ValueError, match="outside 127.0.0.0/8"):
        lab_world("10.0.0.0")
    with pytest.raises(ValueError, match="outside 127.0.0.0/8"):
        lab_world("127.255.255.200")  # + 66 leaves 127/8
    with pytest.raises(ValueError, match="left for clients"):
        lab_world("126.255.255.255")  # + 2 is 127.0.0.1
    with pytest.raises(ValueError):
        asyncio.run(start_world(RealNetwork(), 0))


def test_eacces_explains_the_unprivileged_way() -> None:
    error = OSError(errno.EACCES, "cannot listen on 127.0.0.2#53: Permission denied")
    message = bind_failure_message(error, 53)
    assert "Permission denied" in message
    assert "CAP_NET_BIND_SERVICE" in message and "root" in message
    assert "unshare -rn" in message and "ip link set lo up" in message


def test_eacces_is_found_below_uvloops_errnoless_error() -> None:
    """uvloop raises OSError("could not bind ...") from the PermissionError; AuthServer
    re-raises that with errno None and strerror None."""
    try:
        try:
            raise OSError("could not bind to local_addr") from PermissionError(
                errno.EACCES, "Permission denied"
            )
        except OSError as inner:
            raise OSError(inner.errno, f"cannot listen on 127.0.0.2#53: {inner.strerror}") from None
    except OSError as outer:
        message = bind_failure_message(outer, 53)
    assert message.startswith("cannot listen on 127.0.0.2#53: Permission denied. ")
    assert "unshare -rn" in message


def test_down_when_not_up_says_so(tmp_path: Path) -> None:
    result = world_down(tmp_path / "never-up")
    assert not result.was_up and "not up" in result.message
    assert not (tmp_path / "never-up").exists()


# -- walking the running world from the root -----------------------------------------


class Oracle:
    """What iterating through the world must give, computed from the zone files alone."""

    def __init__(self, world: World) -> None:
        self.zones: list[ServedZone] = list(world.load_zones().values())
        self.addresses = world.address_map()

    def zone_for(self, name: dns.name.Name) -> ServedZone:
        """Every delegation of the world has its child zone: the deepest origin rules."""
        return max(
            (z for z in self.zones if name.is_subdomain(z.origin)),
            key=lambda z: len(z.origin.labels),
        )

    def resolve(self, qname: str, qtype: str) -> Outcome:
        name = dns.name.from_text(qname)
        rdtype = dns.rdatatype.from_text(qtype)
        records: set[Record] = set()
        for _ in range(16):
            served = self.zone_for(name)
            node = served.node(name)
            if node is None and name not in served.names:
                closest = name.parent()
                while closest not in served.names:
                    closest = closest.parent()
                node = served.node(dns.name.Name((b"*", *closest.labels)))
                if node is None:
                    return "NXDOMAIN", frozenset(records), self._negative(served)
            rdataset = node.get_rdataset(dns.rdataclass.IN, rdtype) if node else None
            if rdataset is not None:
                records |= {self._record(name, rdataset, r) for r in rdataset}
                return "NOERROR", frozenset(records), None
            cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME) if node else None
            if cname is None:
                return "NOERROR", frozenset(records), self._negative(served)
            records.add(self._record(name, cname, cname[0]))
            name = cname[0].target
        raise AssertionError(f"CNAME loop at {qname}")

    def _record(self, owner: dns.name.Name, rdataset: Any, rdata: Any) -> Record:
        text = rdata.to_text().lower()
        text = self.addresses.get(text, text)
        return (owner.to_text().lower(), dns.rdatatype.to_text(rdataset.rdtype), rdataset.ttl, text)

    @staticmethod
    def _negative(served: ServedZone) -> tuple[str, int]:
        return (served.origin.to_text().lower(), served.negative_ttl)


def _records(section: list[Any]) -> set[Record]:
    return {
        (
            rrset.name.to_text().lower(),
            dns.rdatatype.to_text(rrset.rdtype),
            rrset.ttl,
            r.to_text().lower(),
        )
        for rrset in section
        for r in rrset
    }


class Walker:
    """A minimal iterative resolver without a cache: referrals, glueless NS, CNAMEs."""

    def __init__(self, roots: list[str], port: int) -> None:
        self.roots = roots
        self.port = port
        self.queries = 0

    async def ask(self, server: str, name: dns.name.Name, rdtype: str) -> dns.message.Message:
        query = dns.message.make_query(name, rdtype, use_edns=0, payload=1232)
        query.flags &= ~dns.flags.RD
        self.queries += 1
        reply = await dns.asyncquery.udp(query, server, timeout=2, port=self.port)
        assert not reply.flags & dns.flags.TC, (server, name, rdtype)
        return reply

    async def resolve(self, qname: str, qtype: str, depth: int = 0) -> Outcome:
        assert depth < 4, f"glueless recursion too deep at {qname}"
        name = dns.name.from_text(qname)
        records: set[Record] = set()
        for _ in range(12):  # CNAMEs leaving the zone: start again from the root
            servers = self.roots
            for _ in range(10):  # referrals
                reply = await self.ask(servers[0], name, qtype)
                if reply.flags & dns.flags.AA or reply.rcode() != dns.rcode.NOERROR:
                    break
                cut = next(r for r in reply.authority if r.rdtype == dns.rdatatype.NS)
                assert name.is_subdomain(cut.name), (name, cut)
                glue = {r.name: r for r in reply.additional if r.rdtype == dns.rdatatype.A}
                servers = [a.address for ns in cut if ns.target in glue for a in glue[ns.target]]
                if not servers:  # glueless: resolve a name server's address first
                    target = sorted(ns.target for ns in cut)[0]
                    _, found, _ = await self.resolve(target.to_text(), "A", depth + 1)
                    servers = [r[3] for r in found if r[1] == "A"]
                    assert servers, f"cannot resolve {target} for {cut.name}"
            else:
                raise AssertionError(f"referral loop for {qname}")
            records |= _records(reply.answer)
            soa = [r for r in reply.authority if r.rdtype == dns.rdatatype.SOA]
            negative = (soa[0].name.to_text().lower(), soa[0].ttl) if soa else None
            rcode = dns.rcode.to_text(reply.rcode())
            if rcode != "NOERROR":
                return rcode, frozenset(records), negative
            final = name
            cnames = {r.name: r[0].target for r in reply.answer if r.rdtype == dns.rdatatype.CNAME}
            while final in cnames and qtype != "CNAME":
                final = cnames[final]
            wanted = dns.rdatatype.from_text(qtype)
            if any(r.name == final and r.rdtype == wanted for r in reply.answer):
                return rcode, frozenset(records), None
            if final == name:  # NODATA
                return rcode, frozenset(records), negative
            name = final
        raise AssertionError(f"CNAME chain too long at {qname}")


def _sample(world: World, count: int) -> list[tuple[str, str]]:
    questions = world.questions()
    return INTERESTING + random.Random(7).sample(questions, count)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("base", ["127.0.0.0", "127.77.0.0"])
def test_walking_from_the_root_gives_the_zone_data(base: str, tmp_path: Path) -> None:
    port = free_port()

    async def main() -> tuple[list[str], int, dict[str, int]]:
        running = await start_world(RealNetwork(), port, base, zone_workdir=tmp_path / "zones")
        try:
            world = running.world
            # every server answers authoritatively for each zone it serves
            for info in running.servers:
                for origin in info.zones:
                    query = dns.message.make_query(origin, "SOA")
                    reply = await dns.asyncquery.udp(query, info.address, timeout=2, port=port)
                    assert reply.flags & dns.flags.AA and reply.answer, (info, origin)
            walker = Walker([a for a, _ in running.root_addresses], port)
            oracle = Oracle(world)
            wrong = []
            for qname, qtype in _sample(world, 120):
                got = await walker.resolve(qname, qtype)
                want = oracle.resolve(qname, qtype)
                if got != want:
                    wrong.append(f"{qname} {qtype}:\n  got  {got}\n  want {want}")
            return wrong, walker.queries, running.query_counts()
        finally:
            await running.stop()

    wrong, queries, counts = asyncio.run(main())
    assert not wrong, "\n".join(wrong)
    assert queries > 300
    assert all(n > 0 for n in counts.values()), counts  # every server was walked to
    assert not (tmp_path / "zones").exists() or base != "127.0.0.0"


# -- up / down as processes ------------------------------------------------------------

NAMESPACE_SCRIPT = textwrap.dedent(
    """
    import json, os, socket, subprocess, sys, time
    from pathlib import Path
    import dns.flags, dns.message, dns.query

    ip, state_dir = sys.argv[1], sys.argv[2]
    assert sorted(n for _, n in socket.if_nameindex()) == ["lo"], "not a private namespace"
    assert os.getpid() == 1, "not a private PID namespace"
    subprocess.run([ip, "link", "set", "lo", "up"], check=True, timeout=10)
    cli = [sys.executable, "-m", "poisonproof.lab.world_cli"]
    result = {}

    def run(*args):
        done = subprocess.run([*cli, *args, "--state-dir", state_dir],
                              capture_output=True, text=True, timeout=30)
        return {"rc": done.returncode, "out": done.stdout, "err": done.stderr}

    def walk(name, rdtype, server):
        for _ in range(6):
            query = dns.message.make_query(name, rdtype)
            query.flags &= ~dns.flags.RD
            reply = dns.query.udp(query, server, port=53, timeout=2)
            if reply.flags & dns.flags.AA:
                return [r.to_text() for r in reply.answer]
            server = reply.additional[0][0].address
        return None

    try:
        result["up"] = run("up", "--json")
        state = json.loads(result["up"]["out"])
        result["state"] = state
        result["files"] = sorted(os.listdir(state_dir))
        result["hints"] = Path(state["root_hints"]).read_text()
        result["answer"] = walk("www.bank.example.", "A", state["root_servers"][0])
        result["up_again"] = run("up", "--json")
        result["up_table"] = run("up")
        result["down"] = run("down")
        pid = state["pid"]
        # we are PID 1 here: the detached world was re-parented to us; collect its status
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                break
            time.sleep(0.02)
        else:
            raise SystemExit("the world process did not exit after down")
        exists = os.path.isdir(state_dir)
        result["after_down_files"] = sorted(os.listdir(state_dir)) if exists else None
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind((state["root_servers"][0], 53))  # port 53 is free again
        probe.close()
        result["down_again"] = run("down")
    finally:
        if "down" not in result:
            run("down")
    print(json.dumps(result))
    """
)


def _namespace_tools() -> tuple[str, str]:
    unshare = require_tool("unshare")
    ip = require_tool("ip")
    probe = subprocess.run(
        [unshare, "-rnpf", "--mount-proc", "true"], capture_output=True, text=True, timeout=10
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot make user+net+pid namespaces here: {probe.stderr.strip()}")
    return unshare, ip


def _run_isolated(command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{command[:3]} did not finish in {timeout}s\n{err}\n{out}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


@pytest.mark.timeout(60)
def test_up_and_down_on_port_53_in_a_private_namespace(tmp_path: Path) -> None:
    unshare, ip = _namespace_tools()
    script = tmp_path / "in_namespace.py"
    script.write_text(NAMESPACE_SCRIPT)
    state_dir = tmp_path / "state"
    # -p -f --mount-proc: when the script (PID 1 there) exits, the kernel kills whatever
    # it left behind, so a failing test cannot leak a world.
    done = _run_isolated(
        [unshare, "-rnpf", "--mount-proc", sys.executable, str(script), ip, str(state_dir)], 40
    )
    assert done.returncode == 0, f"{done.stderr}\n{done.stdout}"
    result = json.loads(done.stdout)

    assert result["up"]["rc"] == 0, result["up"]
    state = result["state"]
    assert state["already_up"] is False and state["port"] == 53
    assert state["root_servers"] == ["127.0.0.2", "127.0.0.3"]
    assert len(state["servers"]) == len(LAYOUT)
    bank = next(s for s in state["servers"] if s["name"] == "ns1.bank.example.")
    assert bank["address"] == "127.0.0.20" and bank["port"] == 53
    assert [z["origin"] for z in bank["zones"]] == ["bank.example."]
    assert {"state.json", "root.hints", "world.log"} <= set(result["files"])
    assert "a.root-servers.lab." in result["hints"] and "127.0.0.2" in result["hints"]
    assert result["answer"] == ["www.bank.example. 30 IN A 192.0.2.80"]

    again = json.loads(result["up_again"]["out"])
    assert again["already_up"] is True and again["pid"] == state["pid"]
    assert result["up_table"]["rc"] == 0 and "already up" in result["up_table"]["out"]
    assert "127.0.0.20#53" in result["up_table"]["out"]

    assert result["down"]["rc"] == 0 and "stopped" in result["down"]["out"], result["down"]
    assert result["after_down_files"] is None  # state removed (the directory was ours)
    assert result["down_again"]["rc"] == 0 and "not up" in result["down_again"]["out"]


@pytest.mark.timeout(30)
def test_up_without_privilege_explains_unshare(tmp_path: Path) -> None:
    """In a user namespace that does not own the network namespace, port 53 is EACCES."""
    unshare = require_tool("unshare")
    start = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")
    if start.exists() and int(start.read_text()) <= 53:
        pytest.skip("port 53 is not privileged on this host; binding would succeed")
    if subprocess.run([unshare, "-r", "true"], capture_output=True, timeout=10).returncode:
        pytest.skip("cannot make user namespaces here")
    state_dir = tmp_path / "state"
    command = [unshare, "-r", sys.executable, "-m", "poisonproof.lab.world_cli", "up"]
    try:
        done = _run_isolated([*command, "--state-dir", str(state_dir)], 20)
    finally:
        world_down(state_dir)  # in case it did start after all
    assert done.returncode == 2, done
    message = " ".join(done.stderr.split())
    assert "Permission denied" in message, message
    assert "CAP_NET_BIND_SERVICE" in message and "unshare -rn" in message, message
    assert "ip link set lo up" in message, message
    assert not (state_dir / "state.json").exists()
