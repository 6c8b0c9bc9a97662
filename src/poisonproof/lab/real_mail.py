"""The mail service of the real-packet lab: the indirect trigger of the 2008 press scenario.

Runs in the lab's `mail` namespace (`python -m poisonproof.lab.real_mail --listen IP:PORT
--resolver IP`). A datagram naming a domain stands for "send mail to someone@domain" (as
a web service's sign-up form would): the service asks the lab's resolver for the
domain's MX, then for the address of each mail exchanger, exactly as an MTA does. The
attacker never needs to query the resolver itself; it only makes this service look up
names of its choosing.
Must never: ask a resolver outside the lab (`check_target`), or block on one lookup: each
datagram is handled in its own short-lived thread with bounded timeouts.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
import threading

import dns.exception
import dns.message
import dns.query
import dns.rdatatype

from poisonproof.lab.netns import LAB_SUBNET
from poisonproof.lab.spoofer import check_target

LOOKUP_TIMEOUT = 3.0
MAX_DOMAIN = 253


def _in_lab(address: str) -> bool:
    return ipaddress.ip_address(address) in LAB_SUBNET


def deliver(domain: str, resolver: str, timeout: float = LOOKUP_TIMEOUT) -> list[str]:
    """Look up `domain`'s MX, then each exchanger's address; the exchangers asked."""
    try:
        reply = dns.query.udp(dns.message.make_query(domain, "MX"), resolver, timeout=timeout)
    except (dns.exception.DNSException, OSError):
        return []
    exchangers = [
        mx.exchange.to_text()  # type: ignore[attr-defined]
        for rrset in reply.answer
        if rrset.rdtype == dns.rdatatype.MX
        for mx in rrset
    ]
    for exchanger in exchangers:
        try:
            dns.query.udp(dns.message.make_query(exchanger, "A"), resolver, timeout=timeout)
        except (dns.exception.DNSException, OSError):
            continue
    return exchangers


def serve(listen: tuple[str, int], resolver: str) -> None:
    check_target(resolver, _in_lab)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(listen)
    while True:
        data, _peer = sock.recvfrom(1024)
        domain = data.decode("ascii", "replace").strip()
        if not domain or len(domain) > MAX_DOMAIN:
            continue
        threading.Thread(target=deliver, args=(domain, resolver), daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m poisonproof.lab.real_mail")
    parser.add_argument("--listen", required=True, help="IP:PORT to take 'mail' datagrams on")
    parser.add_argument("--resolver", required=True, help="the lab resolver's address")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    try:
        serve((host, int(port)), args.resolver)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
