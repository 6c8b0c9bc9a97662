"""Reference DNS servers for the resolver benchmark: Twisted Names and dnslib, from a cache.

Owns: serving, with Twisted Names (a `CacheResolver` behind `DNSServerFactory`) or with
dnslib (`DNSServer` and a resolver that copies stored records into each reply), the
answers our resolver gave for the benchmark's query file (read from a JSON file of
"qname qtype" -> reply in hex), on 127.0.0.1:PORT over UDP, single process; writing a
ready file once listening. These are what each framework does for a cached answer: parse
the query, look it up, build and render the reply with its own message classes.
Must never: resolve anything or answer a name that is not in the file (REFUSED/NXDOMAIN
as the framework does), or listen beyond loopback.

Run: `python bench/reference_dns.py twisted|dnslib PORT ANSWERS.json READY_FILE`.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Any


def load_answers(path: Path) -> dict[tuple[str, str], bytes]:
    """(lower-case qname, upper-case type) -> reply wire."""
    answers = {}
    for key, value in json.loads(path.read_text()).items():
        qname, qtype = key.split()
        answers[(qname.lower(), qtype.upper())] = bytes.fromhex(value)
    return answers


def serve_twisted(port: int, answers: dict[tuple[str, str], bytes], ready: Path) -> None:
    from twisted.internet import reactor
    from twisted.names import cache, dns, server

    entries: dict[Any, Any] = {}
    now = time.time()
    for (qname, qtype), wire in answers.items():
        message = dns.Message()
        message.fromStr(wire)
        query = dns.Query(qname.rstrip("."), dns.REV_TYPES[qtype], dns.IN)
        entries[query] = (now, (message.answers, message.authority, message.additional))
    resolver = cache.CacheResolver(cache=entries)
    factory = server.DNSServerFactory(caches=[resolver], verbose=0)
    protocol = dns.DNSDatagramProtocol(factory)
    reactor.listenUDP(port, protocol, interface="127.0.0.1")  # type: ignore[attr-defined]
    reactor.callWhenRunning(lambda: ready.write_text(f"127.0.0.1 {port}\n"))  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


def serve_dnslib(port: int, answers: dict[tuple[str, str], bytes], ready: Path) -> None:
    from dnslib import QTYPE, RCODE, DNSRecord
    from dnslib.server import BaseResolver, DNSLogger, DNSServer

    stored = {key: DNSRecord.parse(wire) for key, wire in answers.items()}

    class FromCache(BaseResolver):  # type: ignore[misc]
        def resolve(self, request: Any, handler: Any) -> Any:
            reply = request.reply()
            key = (str(request.q.qname).lower(), QTYPE[request.q.qtype])
            found = stored.get(key)
            if found is None:
                reply.header.rcode = RCODE.REFUSED
                return reply
            reply.header.rcode = found.header.rcode
            for rr in found.rr:
                reply.add_answer(rr)
            for rr in found.auth:
                reply.add_auth(rr)
            return reply

    logger = DNSLogger(logf=lambda _s: None)
    dns_server = DNSServer(FromCache(), port=port, address="127.0.0.1", logger=logger)
    ready.write_text(f"127.0.0.1 {port}\n")
    dns_server.start()  # serves in this thread until SIGTERM


def main(argv: list[str]) -> int:
    kind, port, answers_file, ready = argv[0], int(argv[1]), Path(argv[2]), Path(argv[3])
    answers = load_answers(answers_file)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if kind == "twisted":
        serve_twisted(port, answers, ready)
    elif kind == "dnslib":
        serve_dnslib(port, answers, ready)
    else:
        print(f"unknown server {kind!r}: twisted or dnslib", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
