"""Resolver settings from TOML and flags, with errors that name the key."""

from __future__ import annotations

import pytest

from poisonproof.net.real import SystemClock
from poisonproof.resolver.defenses import TxidStrategy
from poisonproof.server.settings import Settings, SettingsError


def test_flags_override_the_file(tmp_path):
    config = tmp_path / "resolver.toml"
    config.write_text(
        'listen = ["127.0.0.1:5399"]\ndefenses = "2008"\nqname-minimisation = "on"\n'
        'min-ttl = 5\nallow = ["10.0.0.0/8"]\n'
    )
    settings = Settings.load(config, {"defenses": "default", "port_pool": 16})
    assert settings.listen_addresses() == [("127.0.0.1", 5399)]
    defenses = settings.build_defenses()
    assert defenses.txid is TxidStrategy.CSPRNG and defenses.port_pool == 16
    assert defenses.qname_minimisation is True
    frontend = settings.build(SystemClock())
    assert frontend.allowed(("10.1.2.3", 1)) and not frontend.allowed(("127.0.0.1", 1))
    assert frontend.resolver.cache.min_ttl == 5


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("no-such-key = 1\n", "unknown setting 'no-such-key'"),
        ('ipv4 = "maybe"\n', "ipv4: expected on or off"),
        ('min-ttl = "x"\n', "min-ttl: expected a number"),
        ('defenses = "bogus"\n', "unknown defenses preset 'bogus'"),
        ('listen = ["localhost:53"]\n', "listen: 'localhost:53'"),
        ("listen = [\n", "resolver.toml"),
        ('allow = ["not-a-net"]\n', "allow: 'not-a-net'"),
        ('root-hints = "/nonexistent"\n', "root-hints: /nonexistent: cannot read"),
    ],
)
def test_errors_name_the_setting(tmp_path, text, words):
    config = tmp_path / "resolver.toml"
    config.write_text(text)
    with pytest.raises(SettingsError, match=words.replace("(", r"\(")):
        settings = Settings.load(config, {})
        settings.listen_addresses()
        settings.build(SystemClock())


def test_query_port_holds_every_upstream_query_to_one_port(tmp_path):
    settings = Settings.load(None, {"query_port": 33333, "defenses": "default"})
    defenses = settings.build_defenses()
    assert defenses.port_pool == 1 and defenses.fixed_port == 33333
    with pytest.raises(SettingsError, match="query-port"):
        Settings.load(None, {"query_port": 53}).build_defenses()


def test_the_zone_fetch_limit_is_a_setting(tmp_path):
    config = tmp_path / "resolver.toml"
    config.write_text("zone-fetch-rate = 50\n")
    resolver = Settings.load(config, {}).build(SystemClock()).resolver
    assert resolver.config.zone_fetch_rate == 50.0
    off = Settings.load(config, {"zone_fetch_rate": 0}).build(SystemClock()).resolver
    assert off.config.zone_fetch_rate == 0.0
    with pytest.raises(SettingsError, match="zone-fetch-rate"):
        Settings.load(None, {"zone_fetch_rate": -1}).build(SystemClock())
