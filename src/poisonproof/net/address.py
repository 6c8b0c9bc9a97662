"""Parsing `IP:PORT` address specs as users write them on the command line.

Owns: `127.0.0.1:5300`, `[::1]:5300`, `::1` and bare IPs (port 53) into an `Address`.
Must never: resolve host names (a DNS server must not depend on DNS to start).
"""

from __future__ import annotations

import ipaddress

from poisonproof.net.base import Address

DNS_PORT = 53


def parse_address(spec: str, default_port: int = DNS_PORT) -> Address:
    """Parse `spec`; raise ValueError with a message naming what is wrong."""
    text = spec.strip()
    host, port_text = text, ""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError(f"{spec!r}: missing ']' after an IPv6 address")
        if rest and not rest.startswith(":"):
            raise ValueError(f"{spec!r}: expected ':PORT' after ']'")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{spec!r}: {host!r} is not an IP address") from None
    if not port_text:
        return (host, default_port)
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{spec!r}: port {port_text!r} is not a number from 0 to 65535")
    return (host, int(port_text))
