"""The demo: a lab DNS hierarchy on loopback, walked from the root like `dig +trace`.

Owns: starting the bundled lab zones (root, example., bank.example., attacker.example.)
as authoritative servers on 127.53.0.x, walking referrals from the root for a few names,
and printing each hop. Must never: send outside loopback.
(Until the poisoning lab lands, this is what `make demo` shows.)
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
from rich.console import Console
from rich.table import Table

from poisonproof.net.base import Address
from poisonproof.net.real import RealNetwork
from poisonproof.server.auth_server import AuthServer

ZONE_DIR = Path(str(resources.files("poisonproof") / "data" / "zones"))

LAB_SERVERS: dict[str, list[str]] = {
    "127.53.0.1": ["root.zone", "lab.zone"],
    "127.53.0.2": ["example.zone"],
    "127.53.0.3": ["example.zone"],
    "127.53.0.4": ["bank.example.zone"],
    "127.53.0.66": ["attacker.example.zone"],
}
ROOT_SERVER = "127.53.0.1"
QUESTIONS = [
    ("www.bank.example.", "A"),
    ("PoRtAl.BaNk.ExAmPlE.", "A"),
    ("x7f3.bank.example.", "A"),
    ("img.cdn.bank.example.", "A"),
    ("attacker.example.", "MX"),
]


async def start_lab_servers(network: RealNetwork, port: int) -> list[AuthServer]:
    servers = []
    for ip, files in LAB_SERVERS.items():
        server = AuthServer(network, [str(ZONE_DIR / f) for f in files], [(ip, port)])
        await server.start()
        servers.append(server)
    return servers


async def trace(
    network: RealNetwork, qname: str, qtype: str, port: int
) -> list[tuple[str, str, str]]:
    """Follow referrals from the root; return (server, rcode/flags, summary) per hop."""
    hops: list[tuple[str, str, str]] = []
    server: Address = (ROOT_SERVER, port)
    for _ in range(8):
        query = dns.message.make_query(qname, qtype, use_edns=0)
        query.flags &= ~dns.flags.RD
        wire = await network.udp_exchange(query.to_wire(), server, timeout=2.0)
        reply = dns.message.from_wire(wire[0])
        flags = dns.flags.to_text(reply.flags & (dns.flags.AA | dns.flags.TC))
        status = f"{dns.rcode.to_text(reply.rcode())} {flags}".strip()
        if reply.answer or reply.rcode() != dns.rcode.NOERROR or reply.flags & dns.flags.AA:
            shown = reply.answer or reply.authority
            hops.append((server[0], status, "\n".join(r.to_text() for r in shown)))
            return hops
        glue = {r.name: r[0].address for r in reply.additional if r.rdtype == dns.rdatatype.A}
        cut = reply.authority[0]
        hops.append(
            (
                server[0],
                status,
                f"referral to {cut.name} via {', '.join(str(n.target) for n in cut)}",
            )
        )
        next_ip = next((glue[n.target] for n in cut if n.target in glue), None)
        if next_ip is None:
            hops.append((server[0], "stop", "no glue to follow"))
            return hops
        server = (next_ip, port)
    return hops


async def run_demo(port: int) -> None:
    console = Console()
    network = RealNetwork()
    servers = await start_lab_servers(network, port)
    try:
        for qname, qtype in QUESTIONS:
            table = Table(title=f"{qname} {qtype}", show_lines=True)
            table.add_column("server")
            table.add_column("status")
            table.add_column("reply")
            for server, status, summary in await trace(network, qname, qtype, port):
                table.add_row(f"{server}#{port}", status, summary)
            console.print(table)
    finally:
        for server in servers:
            await server.stop(quiet=True)
