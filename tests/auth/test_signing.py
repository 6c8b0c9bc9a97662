"""Signing with `poisonproof zone sign` and serving the signed zone with DO set."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from poisonproof.auth.engine import AuthEngine
from poisonproof.auth.signing import sign_zone_file
from poisonproof.auth.zones import load_zones
from poisonproof.net.base import Via
from poisonproof.net.real import SystemClock

ORIGIN = dns.name.from_text("bank.example.")


def signed_engine(tmp_path: Path, zone_dir: Path, **options) -> tuple[AuthEngine, dict]:
    source = tmp_path / "bank.example.zone"
    shutil.copy(zone_dir / "bank.example.zone", source)
    result = sign_zone_file(source, **options)
    engine = AuthEngine(load_zones([str(result.signed_path)]), SystemClock())
    dnskey = engine.zones.find(ORIGIN).zone.get_rdataset(ORIGIN, dns.rdatatype.DNSKEY)
    keys = {ORIGIN: dnskey}
    return engine, {"keys": keys, "result": result}


def ask_do(engine: AuthEngine, name: str, rdtype: str) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, want_dnssec=True)
    return dns.message.from_wire(engine.handle(query.to_wire(), ("127.0.0.1", 1), Via.TCP))


def validate_section(section, keys) -> set[str]:
    """Validate every RRset in `section` against its RRSIG; return the validated types."""
    sigs = {(r.name, r.covers): r for r in section if r.rdtype == dns.rdatatype.RRSIG}
    validated = set()
    for rrset in section:
        if rrset.rdtype == dns.rdatatype.RRSIG:
            continue
        sig = sigs[(rrset.name, rrset.rdtype)]
        dns.dnssec.validate(rrset, sig, keys)
        validated.add(dns.rdatatype.to_text(rrset.rdtype))
    return validated


@pytest.mark.parametrize("algorithm", ["ECDSAP256SHA256", "RSASHA256"])
def test_nsec_signed_answers_validate(tmp_path, zone_dir, algorithm):
    engine, info = signed_engine(tmp_path, zone_dir, algorithm=algorithm)
    keys = info["keys"]
    answer = ask_do(engine, "www.bank.example.", "A")
    assert validate_section(answer.answer, keys) == {"A"}
    nx = ask_do(engine, "x7f3.bank.example.", "A")
    assert nx.rcode() == dns.rcode.NXDOMAIN
    assert validate_section(nx.authority, keys) >= {"SOA", "NSEC"}
    covering = [r for r in nx.authority if r.rdtype == dns.rdatatype.NSEC]
    qname = dns.name.from_text("x7f3.bank.example.")
    assert any(r.name < qname < r[0].next or r[0].next == ORIGIN for r in covering)
    nodata = ask_do(engine, "mail.bank.example.", "AAAA")
    (nsec,) = [r for r in nodata.authority if r.rdtype == dns.rdatatype.NSEC]
    assert nsec.name == dns.name.from_text("mail.bank.example.")
    assert dns.rdatatype.AAAA not in {t for w in nsec[0].windows for t in _bitmap_types(w)}
    dnskey = ask_do(engine, "bank.example.", "DNSKEY")
    assert validate_section(dnskey.answer, keys) == {"DNSKEY"}
    plain = dns.message.from_wire(
        engine.handle(
            dns.message.make_query("www.bank.example.", "A").to_wire(), ("127.0.0.1", 1), Via.TCP
        )
    )
    assert all(r.rdtype != dns.rdatatype.RRSIG for r in plain.answer)


def _bitmap_types(window) -> list[int]:
    number, bitmap = window
    return [
        number * 256 + i * 8 + bit
        for i, byte in enumerate(bitmap)
        for bit in range(8)
        if byte & (0x80 >> bit)
    ]


def test_nsec3_signed_nxdomain_has_closest_encloser_proof(tmp_path, zone_dir):
    engine, info = signed_engine(tmp_path, zone_dir, nsec3=True, nsec3_salt="c0ffee")
    served = engine.zones.find(ORIGIN)
    assert served.nsec3_param is not None and served.nsec3_hashes
    nx = ask_do(engine, "x7f3.bank.example.", "A")
    assert nx.rcode() == dns.rcode.NXDOMAIN
    nsec3 = [r for r in nx.authority if r.rdtype == dns.rdatatype.NSEC3]
    owners = {r.name.labels[0].decode().lower() for r in nsec3}
    assert served.nsec3_hash(ORIGIN) in owners  # matches the closest encloser
    assert validate_section(nx.authority, info["keys"]) >= {"SOA", "NSEC3"}
    wildcard = ask_do(engine, "img.cdn.bank.example.", "A")
    assert validate_section(wildcard.answer, info["keys"]) == {"A"}
    sig = next(r for r in wildcard.answer if r.rdtype == dns.rdatatype.RRSIG)
    assert sig[0].labels == 3  # RRSIG of *.cdn.bank.example: the label count shows expansion


def test_ds_file_matches_the_served_ksk(tmp_path, zone_dir):
    engine, info = signed_engine(tmp_path, zone_dir)
    ds_line = info["result"].ds_path.read_text().split()
    ksk = next(k for k in info["keys"][ORIGIN] if k.flags == 257)
    expected = dns.dnssec.make_ds(ORIGIN, ksk, "SHA256")
    assert " ".join(ds_line[4:]).lower() == expected.to_text().lower()


def test_zone_sign_cli_reuses_keys(tmp_path, zone_dir):
    source = tmp_path / "bank.example.zone"
    shutil.copy(zone_dir / "bank.example.zone", source)
    command = [sys.executable, "-m", "poisonproof", "zone", "sign", str(source), "--nsec3"]
    first = subprocess.run(command, capture_output=True, text=True, check=True)
    second = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "IN DS" in first.stdout
    ds = [line for line in first.stdout.splitlines() if "IN DS" in line]
    assert ds == [line for line in second.stdout.splitlines() if "IN DS" in line]
    assert (tmp_path / "bank.example.zone.signed").exists()
    bad = subprocess.run([*command[:-1], "--algorithm", "MD5"], capture_output=True, text=True)
    assert bad.returncode != 0 and "unsupported algorithm" in bad.stderr
