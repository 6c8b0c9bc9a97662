"""The least a Python DNS process can do per cold name: one upstream round trip, relayed.

Owns: a UDP relay on uvloop for `bench/cold_floor.py`. Each client query goes, with a fresh
transaction ID drawn by `secrets`, from a fresh socket bound to a random loopback port
(as a resolver's upstream query does) to one fixed upstream server; the first reply
carrying that ID goes back to the client with the client's ID. It reads no DNS beyond the
ID: no question, cache, iteration or checks. So its latency on a cold name is the floor
under any resolver written in Python on this machine that needs one upstream query for
that name (the interpreter waking, its sockets, the event loop), not an answer anyone
should use.
Must never: relay to or listen on anything but loopback, keep more than `MAX_WAITING`
queries waiting (a client's query beyond that is dropped), or keep a socket open longer
than `TIMEOUT` seconds.

Run: `python bench/python_relay.py --listen 127.0.0.1:5300 --upstream 127.0.0.2:53`.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import secrets
import socket
import sys

import uvloop

TIMEOUT = 2.0
MAX_WAITING = 1000
PORTS = range(1024, 65536)


def loopback_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` with an IPv4 loopback HOST; argparse's error otherwise."""
    host, _, port = text.rpartition(":")
    try:
        if not ipaddress.IPv4Address(host).is_loopback:
            raise ValueError(f"{host} is not a loopback address")
        number = int(port)
        if not 0 < number < 65536:
            raise ValueError(f"port {port} is not in 1..65535")
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None
    return host, number


class Relay:
    def __init__(
        self, loop: asyncio.AbstractEventLoop, listen: socket.socket, upstream: tuple[str, int]
    ) -> None:
        self.loop = loop
        self.listen = listen
        self.upstream = upstream
        self.waiting = 0

    def client_readable(self) -> None:
        while True:
            try:
                query, client = self.listen.recvfrom(4096)
            except BlockingIOError:
                return
            if len(query) >= 12 and self.waiting < MAX_WAITING:
                self.forward(query, client)

    def forward(self, query: bytes, client: tuple[str, int]) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:
            sock.bind((self.listen.getsockname()[0], PORTS[secrets.randbelow(len(PORTS))]))
            relay_id = secrets.token_bytes(2)
            sock.sendto(relay_id + query[2:], self.upstream)
        except OSError:
            sock.close()  # a port in use: the client asks again, as from any resolver
            return
        self.waiting += 1
        fd = sock.fileno()

        def done() -> None:
            timer.cancel()
            self.loop.remove_reader(fd)
            sock.close()
            self.waiting -= 1

        def readable() -> None:
            try:
                reply = sock.recv(4096)
            except OSError:
                return
            if reply[:2] == relay_id:
                done()
                self.listen.sendto(query[:2] + reply[2:], client)

        timer = self.loop.call_later(TIMEOUT, done)
        self.loop.add_reader(fd, readable)


async def serve(listen: tuple[str, int], upstream: tuple[str, int]) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind(listen)
    loop = asyncio.get_running_loop()
    loop.add_reader(sock.fileno(), Relay(loop, sock, upstream).client_readable)
    await asyncio.Event().wait()  # until the bench kills the process


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--listen", type=loopback_address, required=True)
    parser.add_argument("--upstream", type=loopback_address, required=True)
    args = parser.parse_args(argv)
    uvloop.run(serve(args.listen, args.upstream))


if __name__ == "__main__":
    sys.exit(main())
