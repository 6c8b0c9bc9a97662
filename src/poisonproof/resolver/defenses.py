"""Which hardening against forged answers is on: a frozen `Defenses` value and its presets.

Owns: the knobs (TXID strategy, source-port pool, 0x20, scrubbing, credibility ranks,
query merging, near-miss TCP retry, unwanted-reply alarm, cookies, DNSSEC, QNAME
minimisation), the presets `default` and `2008`, and one ablation per defense.
Must never: act on the knobs; the resolver reads them, the lab turns them.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass


class TxidStrategy(enum.Enum):
    CSPRNG = "csprng"
    """16 bits from `secrets` (unpredictable)."""
    RANDOM16 = "random16"
    """16 bits from a seeded non-cryptographic PRNG, as many pre-2008 resolvers did."""
    SEQUENTIAL = "sequential"
    """ID + 1 per query: predictable (BIND 4/8 era)."""


EPHEMERAL_PORTS = (1024, 65535)
"""The full pool: every unprivileged port (64,512 ports, ~15.98 bits)."""


@dataclass(frozen=True)
class Defenses:
    txid: TxidStrategy = TxidStrategy.CSPRNG
    port_pool: int = 0
    """Source ports to draw from: 0 = the full ephemeral range; 1 = one fixed port."""
    fixed_port: int = 0
    """With `port_pool` 1: this port (0: one chosen at start-up and then kept)."""
    case_randomization: bool = True
    """0x20: random case in the query name; the reply must echo it exactly."""
    bailiwick: bool = True
    """Drop records outside the queried server's zone; referrals only downward."""
    forwarder_bailiwick: bool = True
    """Scrub a forwarder's answers against the forwarded zone too (the MaginotDNS fix);
    off, records for any zone in them enter the cache shared with recursion."""
    credibility: bool = True
    """RFC 2181 §5.4.1 ranks: glue/additional never replaces authoritative data."""
    merge_duplicates: bool = True
    """Identical outstanding upstream queries share one exchange (anti-birthday)."""
    nearmiss_tcp: bool = True
    """A reply with the right source but wrong ID/case makes the resolver retry over TCP."""
    unwanted_threshold: int = 10_000
    """Unwanted replies per zone before the alarm (0 = never alarm)."""
    cookies: bool = True
    """RFC 7873/9018 client cookies; a cookie-speaking server's reply must echo ours."""
    dnssec: bool = True
    """DNSSEC validation from the resolver's trust anchors (none configured: nothing to
    validate, answers stay unchecked)."""
    qname_minimisation: bool = True

    def describe(self) -> str:
        """`name=value` for every field that differs from `default`."""
        base = Defenses()
        changed = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value != getattr(base, f.name):
                shown = value.value if isinstance(value, enum.Enum) else value
                changed.append(f"{f.name}={shown}")
        return ", ".join(changed) or "default"


DEFAULT = Defenses()

PRE_2008 = Defenses(
    txid=TxidStrategy.RANDOM16,
    port_pool=1,
    case_randomization=False,
    bailiwick=False,
    forwarder_bailiwick=False,
    credibility=False,
    merge_duplicates=False,
    nearmiss_tcp=False,
    unwanted_threshold=0,
    cookies=False,
    dnssec=False,
    qname_minimisation=False,
)
"""What a resolver did before the 2008 patches: a fixed source port, a 16-bit ID, and
whatever records the reply carried."""

_ABLATIONS: dict[str, dict[str, object]] = {
    "no-random-txid": {"txid": TxidStrategy.SEQUENTIAL},
    "no-port-randomization": {"port_pool": 1},
    "no-0x20": {"case_randomization": False},
    "no-bailiwick": {"bailiwick": False},
    "no-forwarder-bailiwick": {"forwarder_bailiwick": False},
    "no-credibility": {"credibility": False},
    "no-merge": {"merge_duplicates": False},
    "no-nearmiss-tcp": {"nearmiss_tcp": False},
    "no-unwanted-alarm": {"unwanted_threshold": 0},
    "no-cookies": {"cookies": False},
    "no-qname-minimisation": {"qname_minimisation": False},
    "no-dnssec": {"dnssec": False},
}

PRESETS: dict[str, Defenses] = {
    "default": DEFAULT,
    "2008": PRE_2008,
    "2008-sequential": dataclasses.replace(PRE_2008, txid=TxidStrategy.SEQUENTIAL),
    **{name: dataclasses.replace(DEFAULT, **changes) for name, changes in _ABLATIONS.items()},  # type: ignore[arg-type]
}


def preset(name: str) -> Defenses:
    """The preset called `name`; ValueError listing the known ones otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown defenses preset {name!r}; known: {', '.join(PRESETS)}") from None
