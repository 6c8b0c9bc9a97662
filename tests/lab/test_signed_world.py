"""The signed lab world: signatures, DS at each parent, the deliberate failures, delv.

Two worlds are signed once per module: `secure` (every zone signed) and `broken`
(news.org unsigned, bank.example with a DS for the wrong key, mailhost.net with expired
signatures, shop.com without a DS at com.). delv (bind9-dnsutils) is a validating stub:
it sends every query, RD set, to the one server it is given, so for it one `AuthServer`
holding every signed zone of a world stands in for a recursive resolver in front of it.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import subprocess
import sys
from pathlib import Path

import dns.asyncquery
import dns.dnssec
import dns.message
import dns.name
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest

from poisonproof.lab.signed_world import (
    BOGUS,
    INSECURE,
    SECURE,
    Breakage,
    SignedWorld,
    parse_breakage,
    sign_world,
)
from poisonproof.lab.world import lab_world, world_down
from poisonproof.net.real import RealNetwork
from poisonproof.server.auth_server import AuthServer
from tests.conftest import free_port, require_tool

BROKEN = {
    "bank.example.": Breakage.WRONG_KEY,
    "mailhost.net.": Breakage.EXPIRED_SIGNATURE,
    "shop.com.": Breakage.MISSING_DS,
}
UNSIGNED = "news.org."


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> SignedWorld:
    return sign_world(lab_world(), tmp_path_factory.mktemp("secure"))


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> SignedWorld:
    return sign_world(
        lab_world(),
        tmp_path_factory.mktemp("broken"),
        unsigned={"news.org"},  # without the final dot: both spellings work
        broken=BROKEN,
    )


def load(path: Path) -> dns.zone.Zone:
    return dns.zone.from_file(str(path), relativize=False)


def origin_of(zone: dns.zone.Zone) -> dns.name.Name:
    assert zone.origin is not None
    return zone.origin


def dnskeys(zone: dns.zone.Zone) -> dns.rdataset.Rdataset:
    keys = zone.get_rdataset(origin_of(zone), "DNSKEY")
    assert keys is not None
    return keys


def validate_zone(zone: dns.zone.Zone, now: float | None = None) -> set[str]:
    """Validate every authoritative RRset against the zone's DNSKEY; return the types seen.

    Delegation NS and glue are not signed (RFC 4035 §2.2) and must carry no RRSIG.
    """
    origin = origin_of(zone)
    keys = {origin: dnskeys(zone)}
    cuts = {
        name
        for name, node in zone.nodes.items()
        if name != origin and node.get_rdataset(zone.rdclass, dns.rdatatype.NS)
    }
    seen: set[str] = set()
    for name, node in zone.nodes.items():
        below_cut = any(name.is_subdomain(cut) and name != cut for cut in cuts)
        for rdataset in node.rdatasets:
            if rdataset.rdtype == dns.rdatatype.RRSIG:
                continue
            sigs = node.get_rdataset(zone.rdclass, dns.rdatatype.RRSIG, rdataset.rdtype)
            at_cut = name in cuts and rdataset.rdtype not in (
                dns.rdatatype.DS,
                dns.rdatatype.NSEC,
            )
            if below_cut or at_cut:
                assert sigs is None, (name, rdataset.rdtype)
                continue
            assert sigs is not None, (name, dns.rdatatype.to_text(rdataset.rdtype))
            rrset = dns.rrset.from_rdata(name, rdataset.ttl, *rdataset)
            rrsigs = dns.rrset.from_rdata(name, sigs.ttl, *sigs)
            dns.dnssec.validate(rrset, rrsigs, keys, now=now)
            seen.add(dns.rdatatype.to_text(rdataset.rdtype))
    return seen


def ksk(zone: dns.zone.Zone) -> dns.rdata.Rdata:
    (key,) = [k for k in dnskeys(zone) if k.flags == 257]
    return key


def ds_at_parent(world: SignedWorld, origin: str) -> dns.rdataset.Rdataset | None:
    parent = world.zone(origin).parent
    assert parent is not None
    return load(world.zone(parent).path).get_rdataset(origin, "DS")


# -- the signed zones ------------------------------------------------------------------


def test_every_rrset_of_every_zone_validates(secure: SignedWorld) -> None:
    assert len(secure.zones) == len(lab_world().zone_files) == 14
    for zone in secure.zones.values():
        assert zone.expected == SECURE and zone.signed
        seen = validate_zone(load(zone.path))
        assert {"SOA", "NS", "DNSKEY", zone.denial} <= seen, zone.origin
        if zone.nsec3:
            assert "NSEC3PARAM" in seen and "NSEC" not in seen
    assert "DS" in validate_zone(load(secure.zone(".").path))


def test_algorithms_and_denial_are_mixed(secure: SignedWorld) -> None:
    algorithms, denials = {}, {}
    for origin, zone in secure.zones.items():
        loaded = load(zone.path)
        (alg,) = {k.algorithm for k in dnskeys(loaded)}
        algorithms[origin] = dns.dnssec.algorithm_to_text(alg)
        nsec3 = loaded.get_rdataset(origin, "NSEC3PARAM") is not None
        nsec = loaded.get_rdataset(origin, "NSEC") is not None
        assert nsec3 != nsec, origin
        denials[origin] = "NSEC3" if nsec3 else "NSEC"
        assert (algorithms[origin], denials[origin]) == (zone.algorithm, zone.denial)
    assert algorithms["."] == algorithms["com."] == "RSASHA256"
    assert {a for o, a in algorithms.items() if o not in (".", "com.")} == {"ECDSAP256SHA256"}
    assert {o for o, d in denials.items() if d == "NSEC3"} == {"com.", "net.", "bank.example."}
    assert denials["."] == denials["example."] == "NSEC"


def test_each_parent_holds_the_ds_of_its_childs_ksk(secure: SignedWorld) -> None:
    for origin, zone in secure.zones.items():
        if zone.parent is None:
            continue
        ds = ds_at_parent(secure, origin)
        assert ds is not None, origin
        child_ksk = ksk(load(zone.path))
        assert dns.dnssec.make_ds(origin, child_ksk, "SHA256") in ds, origin
    assert secure.zone("eu.shop.com").parent == "shop.com."
    assert secure.zone("lab.").parent == "."


def test_trust_anchor_files_name_the_root_ksk(secure: SignedWorld) -> None:
    root_ksk = ksk(load(secure.zone(".").path))
    expected = dns.dnssec.make_ds(".", root_ksk, "SHA256")
    anchors = dns.zone.from_file(
        str(secure.trust_anchor), origin=dns.name.root, relativize=False, check_origin=False
    )
    assert list(anchors.get_rdataset(".", "DS")) == [expected]
    bind = secure.trust_anchor_bind.read_text()
    tag, alg, digest_type, digest = expected.to_text().split()
    assert "trust-anchors {" in bind
    assert f'. static-ds {tag} {alg} {digest_type} "{digest}";' in bind


def test_signing_again_reuses_the_keys(secure: SignedWorld) -> None:
    again = sign_world(lab_world(), secure.zone_dir)
    assert again.root_ds == secure.root_ds
    assert again.zone("bank.example").key_tags == secure.zone("bank.example").key_tags


# -- the deliberate failures -----------------------------------------------------------


def test_expectations_of_the_broken_world(broken: SignedWorld) -> None:
    expected = {o: z.expected for o, z in broken.zones.items()}
    assert expected == {
        ".": SECURE,
        "com.": SECURE,
        "example.": SECURE,
        "lab.": SECURE,
        "net.": SECURE,
        "org.": SECURE,
        "attacker.example.": SECURE,
        "bank.example.": BOGUS,
        "cdn.net.": SECURE,
        "glueless.org.": SECURE,
        "mailhost.net.": BOGUS,
        "news.org.": INSECURE,
        "shop.com.": INSECURE,
        "eu.shop.com.": INSECURE,  # below an insecure zone
    }
    for origin, zone in broken.zones.items():
        if zone.signed and zone.breakage is not Breakage.EXPIRED_SIGNATURE:
            validate_zone(load(zone.path))  # the other zones are still whole
        assert zone.breakage is BROKEN.get(origin)


def test_unsigned_zone_has_no_signatures_and_no_ds(broken: SignedWorld) -> None:
    zone = broken.zone(UNSIGNED)
    assert not zone.signed and zone.denial is None and not zone.ds_at_parent
    loaded = load(zone.path)
    for _, node in loaded.nodes.items():
        types = {r.rdtype for r in node.rdatasets}
        assert not types & {dns.rdatatype.RRSIG, dns.rdatatype.DNSKEY, dns.rdatatype.NSEC}
    assert ds_at_parent(broken, UNSIGNED) is None
    # ... and org. proves the DS absent with a signed NSEC at the delegation
    org = load(broken.zone("org.").path)
    nsec = org.get_rdataset(UNSIGNED, "NSEC")
    assert nsec is not None
    assert "NS" in nsec[0].to_text() and " DS" not in nsec[0].to_text()


def test_expired_signatures_fail_now_and_passed_while_valid(broken: SignedWorld) -> None:
    zone = load(broken.zone("mailhost.net").path)
    with pytest.raises(dns.dnssec.ValidationFailure):
        validate_zone(zone)
    sig = zone.get_rdataset("www.mailhost.net.", "RRSIG", "A")
    assert sig is not None
    inception = sig[0].inception
    now = datetime.datetime.now(datetime.UTC).timestamp()
    assert sig[0].expiration < now
    validate_zone(zone, now=inception + 60)  # nothing else is wrong with them
    assert ds_at_parent(broken, "mailhost.net.") is not None  # the chain reaches them


def test_missing_ds_leaves_a_signed_child_insecure(broken: SignedWorld) -> None:
    zone = broken.zone("shop.com")
    assert zone.signed and zone.expected == INSECURE and not zone.ds_at_parent
    validate_zone(load(zone.path))
    assert ds_at_parent(broken, "shop.com.") is None


def test_wrong_key_ds_matches_no_dnskey_of_the_child(broken: SignedWorld) -> None:
    ds = ds_at_parent(broken, "bank.example.")
    assert ds is not None and len(ds) == 1
    keys = dnskeys(load(broken.zone("bank.example").path))
    made = {dns.dnssec.make_ds("bank.example.", k, "SHA256") for k in keys}
    assert not made & set(ds)
    assert broken.zone("bank.example").ds_at_parent[0].endswith(ds[0].to_text())


def test_bad_options_are_refused(tmp_path: Path) -> None:
    world = lab_world()
    with pytest.raises(ValueError, match="not a zone of the lab world"):
        sign_world(world, tmp_path, unsigned={"nowhere.example"})
    with pytest.raises(ValueError, match="not both"):
        sign_world(world, tmp_path, unsigned={"shop.com"}, broken=BROKEN)
    with pytest.raises(ValueError, match="trust anchor"):
        sign_world(world, tmp_path, unsigned={"."})
    with pytest.raises(ValueError, match="no parent"):
        sign_world(world, tmp_path, broken={".": Breakage.MISSING_DS})
    assert parse_breakage("Bank.Example=wrong-key") == ("bank.example.", Breakage.WRONG_KEY)
    assert parse_breakage(".=expired") == (".", Breakage.EXPIRED_SIGNATURE)
    for bad in ("bank.example", "bank.example=stale", "=expired"):
        with pytest.raises(ValueError):
            parse_breakage(bad)
    assert not any(tmp_path.iterdir())  # refused before writing anything


# -- served: `lab world up --signed`, and delv validating through the world -----------


@pytest.mark.timeout(60)
def test_up_signed_serves_the_signed_world(tmp_path: Path) -> None:
    base = "127.77.0.0"
    port = free_port("127.77.0.2")
    state_dir = tmp_path / "state"
    command = [sys.executable, "-m", "poisonproof.lab.world_cli", "up", "--json"]
    options = ["--port", str(port), "--address-base", base, "--state-dir", str(state_dir)]
    breaking = ["--unsigned", "news.org", "--break", "bank.example=wrong-key"]
    try:
        done = subprocess.run(
            [*command, *options, *breaking], capture_output=True, text=True, timeout=40
        )
        assert done.returncode == 0, done.stderr
        state = json.loads(done.stdout)
        assert state["signed"] is True
        anchor = Path(state["trust_anchor"])
        assert anchor.is_file() and Path(state["trust_anchor_bind"]).is_file()
        zones = {z["origin"]: z for z in state["dnssec"]["zones"]}
        assert zones["bank.example."]["expected"] == BOGUS
        assert zones["news.org."]["algorithm"] is None

        async def ask(server: str, name: str, rdtype: str) -> dns.message.Message:
            query = dns.message.make_query(name, rdtype, want_dnssec=True)
            return await dns.asyncquery.udp(query, server, timeout=2, port=port)

        async def main() -> None:
            root = state["root_servers"][0]
            keys = await ask(root, ".", "DNSKEY")
            (dnskey,) = [r for r in keys.answer if r.rdtype == dns.rdatatype.DNSKEY]
            anchors = [line for line in anchor.read_text().splitlines() if " DS " in line]
            root_ksk = next(k for k in dnskey if k.flags == 257)
            assert anchors[0].endswith(dns.dnssec.make_ds(".", root_ksk, "SHA256").to_text())
            referral = await ask(root, "www.bank.example.", "A")
            ds = next(r for r in referral.authority if r.rdtype == dns.rdatatype.DS)
            sig = next(r for r in referral.authority if r.rdtype == dns.rdatatype.RRSIG)
            dns.dnssec.validate(ds, sig, {dns.name.root: dnskey})
            glue = {r[0].address for r in referral.additional if r.rdtype == dns.rdatatype.A}
            assert "127.77.0.15" in glue  # relocated, then signed
            example = await ask("127.77.0.15", "www.bank.example.", "A")
            bank_ds = next(r for r in example.authority if r.rdtype == dns.rdatatype.DS)
            bank = await ask("127.77.0.20", "bank.example.", "DNSKEY")
            (bank_keys,) = [r for r in bank.answer if r.rdtype == dns.rdatatype.DNSKEY]
            made = {dns.dnssec.make_ds("bank.example.", k, "SHA256") for k in bank_keys}
            assert not made & set(bank_ds)  # wrong-key, as asked
            news = await ask("127.77.0.33", "news.org.", "SOA")
            assert not [r for r in news.answer if r.rdtype == dns.rdatatype.RRSIG]

        asyncio.run(main())
        listing = subprocess.run(
            [*command[:-1], *options], capture_output=True, text=True, timeout=20
        )
        assert "trust anchor:" in listing.stdout and "wrong-key -> bogus" in listing.stdout
    finally:
        world_down(state_dir)
    assert not state_dir.exists()


DELV_CASES = [
    # (world, name, type, what delv must say)
    ("secure", "www.bank.example.", "A", "; fully validated"),
    ("secure", "nx.bank.example.", "A", "; negative response, fully validated"),  # NSEC3
    ("secure", "nx.example.", "TXT", "; negative response, fully validated"),  # NSEC
    ("secure", "checkout.eu.shop.com.", "AAAA", "; fully validated"),
    ("broken", "www.bank.example.", "A", "resolution failed"),  # wrong key
    ("broken", "www.mailhost.net.", "A", "resolution failed"),  # expired
    ("broken", "checkout.shop.com.", "A", "; unsigned answer"),  # missing DS
    ("broken", "sports.news.org.", "A", "; unsigned answer"),  # unsigned
    ("broken", "edge.cdn.net.", "A", "; fully validated"),
]


@pytest.mark.interop
@pytest.mark.timeout(60)
def test_delv_validates_through_the_signed_world(secure: SignedWorld, broken: SignedWorld) -> None:
    delv = require_tool("delv")
    worlds = {"secure": secure, "broken": broken}
    ports = {name: free_port() for name in worlds}

    async def run_delv(world: str, name: str, rdtype: str) -> str:
        anchor = worlds[world].trust_anchor_bind
        proc = await asyncio.create_subprocess_exec(
            delv,
            "@127.0.0.1",
            "-p",
            str(ports[world]),
            "-a",
            str(anchor),
            "+root",
            name,
            rdtype,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
        return out.decode(errors="replace")

    async def main() -> list[str]:
        servers = []
        try:
            for name, world in worlds.items():
                files = [str(z.path) for z in world.zones.values()]
                server = AuthServer(RealNetwork(), files, [("127.0.0.1", ports[name])])
                await server.start()
                servers.append(server)
            outputs = await asyncio.gather(*(run_delv(w, n, t) for w, n, t, _ in DELV_CASES))
        finally:
            for server in servers:
                await server.stop(quiet=True)
        wrong = []
        for (world, name, rdtype, want), out in zip(DELV_CASES, outputs, strict=True):
            first = out.strip().splitlines()
            if want not in out or (want.startswith(";") and want not in first[:2]):
                wrong.append(f"{world} {name} {rdtype}: want {want!r}, got:\n{out}")
        return wrong

    wrong = asyncio.run(main())
    assert not wrong, "\n".join(wrong)
