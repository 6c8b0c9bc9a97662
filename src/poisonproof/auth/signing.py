"""Signing zones with dnspython (`dns.dnssec.sign_zone`) and handing the DS to the parent.

Owns: KSK/ZSK generation and storage (PEM files, reused on re-signing so the DS stays
stable), signing with NSEC or NSEC3, writing the signed master file and the DS records.
Must never: serve or validate; the engine serves what this writes, the resolver validates.
"""

from __future__ import annotations

import datetime
import functools
from dataclasses import dataclass
from pathlib import Path

import dns.dnssec
import dns.dnssectypes
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.DNSKEY
import dns.rrset
import dns.zone
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from poisonproof.auth.zones import load_zone

ALGORITHMS = {
    "RSASHA256": dns.dnssec.Algorithm.RSASHA256,
    "ECDSAP256SHA256": dns.dnssec.Algorithm.ECDSAP256SHA256,
    "ED25519": dns.dnssec.Algorithm.ED25519,
}
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class SigningResult:
    signed_path: Path
    ds_path: Path
    ds_records: list[str]
    key_tags: dict[str, int]


def generate_key(algorithm: str) -> PrivateKey:
    if algorithm == "RSASHA256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "ECDSAP256SHA256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "ED25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unsupported algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")


def _load_or_create(path: Path, algorithm: str) -> PrivateKey:
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(
            key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
        ):
            raise ValueError(f"{path}: not an RSA, ECDSA or Ed25519 private key")
        return key
    key = generate_key(algorithm)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return key


def _sign_with_nsec3(
    zone: dns.zone.Zone,
    keys: list[tuple[PrivateKey, dns.rdtypes.ANY.DNSKEY.DNSKEY]],
    inception: datetime.datetime,
    expiration: datetime.datetime,
    iterations: int,
    salt: str,
    opt_out: bool,
) -> None:
    """NSEC3 signing (RFC 5155 §7.1); dnspython's `sign_zone` signs only with NSEC.

    Every RRset is still signed by dnspython's `default_rrset_signer`; this builds only
    the hashed chain: one NSEC3 per authoritative name and empty non-terminal.
    """
    origin = zone.origin
    assert origin is not None
    signer = functools.partial(
        dns.dnssec.default_rrset_signer,
        signer=origin,
        ksks=[k for k in keys if k[1].flags & 1],
        zsks=[k for k in keys if not k[1].flags & 1],
        inception=inception,
        expiration=expiration,
        origin=origin,
    )
    salt_hex = salt or "-"
    flags = 1 if opt_out else 0
    with zone.writer() as txn:
        soa = txn.get(origin, dns.rdatatype.SOA)
        assert soa is not None
        for _, dnskey in keys:
            txn.add(origin, soa.ttl, dnskey)
        txn.add(
            origin,
            soa.ttl,
            dns.rdata.from_text(
                dns.rdataclass.IN, dns.rdatatype.NSEC3PARAM, f"1 0 {iterations} {salt_hex}"
            ),
        )
        chain_types: dict[dns.name.Name, set[int]] = {}
        delegation: dns.name.Name | None = None
        for name in sorted(txn.iterate_names()):
            if delegation is not None and name.is_subdomain(delegation):
                continue  # glue and occluded data are not signed and not in the chain
            node = txn.get_node(name)
            assert node is not None
            types = {rdataset.rdtype for rdataset in node.rdatasets}
            is_cut = dns.rdatatype.NS in types and name != origin
            delegation = name if is_cut else None
            if is_cut and opt_out and dns.rdatatype.DS not in types:
                continue  # an insecure delegation is covered by an opt-out span
            signed = False
            for rdataset in list(node.rdatasets):
                if is_cut and rdataset.rdtype != dns.rdatatype.DS:
                    continue
                signer(txn, dns.rrset.from_rdata(name, rdataset.ttl, *rdataset))
                signed = True
            chain_types[name] = types | ({dns.rdatatype.RRSIG} if signed else set())
            ancestor = name
            while ancestor != origin:
                ancestor = ancestor.parent()
                chain_types.setdefault(ancestor, set())  # empty non-terminals
        hashed = sorted(
            (dns.dnssec.nsec3_hash(name, salt or None, iterations, 1).lower(), types)
            for name, types in chain_types.items()
        )
        ttl = min(soa.ttl, soa[0].minimum)
        for index, (digest, types) in enumerate(hashed):
            next_digest = hashed[(index + 1) % len(hashed)][0]
            bitmap = " ".join(dns.rdatatype.to_text(t) for t in sorted(types))
            rdata = dns.rdata.from_text(
                dns.rdataclass.IN,
                dns.rdatatype.NSEC3,
                f"1 {flags} {iterations} {salt_hex} {next_digest.upper()} {bitmap}",
            )
            owner = dns.name.Name((digest.encode(), *origin.labels))
            rrset = dns.rrset.from_rdata(owner, ttl, rdata)
            txn.add(rrset)
            signer(txn, rrset)


def sign_zone_file(
    zone_path: str | Path,
    *,
    out: str | Path | None = None,
    ds_out: str | Path | None = None,
    key_dir: str | Path | None = None,
    algorithm: str = "ECDSAP256SHA256",
    nsec3: bool = False,
    nsec3_iterations: int = 0,
    nsec3_salt: str = "",
    nsec3_opt_out: bool = False,
    lifetime_days: int = 30,
    inception: datetime.datetime | None = None,
) -> SigningResult:
    """Sign the zone at `zone_path`; write `<zone>.signed` and `<zone>.ds` unless told where."""
    if algorithm not in ALGORITHMS:
        raise ValueError(
            f"unsupported algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}"
        )
    zone_path = Path(zone_path)
    served = load_zone(zone_path)
    zone = served.zone
    origin = served.origin
    label = origin.to_text(omit_final_dot=True) or "root"
    keys_at = Path(key_dir) if key_dir else zone_path.parent / "keys"
    dnskey_alg = ALGORITHMS[algorithm]
    keys: list[tuple[PrivateKey, dns.rdtypes.ANY.DNSKEY.DNSKEY]] = []
    tags: dict[str, int] = {}
    for role, flags in (("ksk", 257), ("zsk", 256)):
        private = _load_or_create(keys_at / f"{label}.{role}.pem", algorithm)
        dnskey = dns.dnssec.make_dnskey(private.public_key(), dnskey_alg, flags=flags)
        keys.append((private, dnskey))
        tags[role] = dns.dnssec.key_id(dnskey)
    start = inception or datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    expiration = start + datetime.timedelta(days=lifetime_days)
    if nsec3:
        _sign_with_nsec3(zone, keys, start, expiration, nsec3_iterations, nsec3_salt, nsec3_opt_out)
    else:
        with zone.writer() as txn:
            dns.dnssec.sign_zone(
                zone,
                txn=txn,
                keys=keys,  # type: ignore[arg-type]
                inception=start,
                expiration=expiration,
            )
    signed_path = Path(out) if out else zone_path.with_name(zone_path.name + ".signed")
    zone.to_file(str(signed_path), relativize=False, want_origin=True)
    ksk = keys[0][1]
    ds_records = [
        f"{origin.to_text()} {zone.get_rdataset(origin, dns.rdatatype.DNSKEY).ttl} IN DS "  # type: ignore[union-attr]
        f"{dns.dnssec.make_ds(origin, ksk, dns.dnssectypes.DSDigest.SHA256).to_text()}"
    ]
    ds_path = Path(ds_out) if ds_out else zone_path.with_name(zone_path.name + ".ds")
    ds_path.write_text("\n".join(ds_records) + "\n")
    return SigningResult(signed_path, ds_path, ds_records, tags)
