"""systemd integration: socket activation (sd_listen_fds) and readiness notification.

Owns: reading the LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES protocol (descriptors from 3 on,
meant for this process only; the variables are then removed so children do not inherit
them), telling UDP from TCP sockets, serving them as UDP+TCP services, and sd_notify
(READY=1, RELOADING=1, STOPPING=1) when NOTIFY_SOCKET is set.
Must never: bind an address itself, or take descriptors meant for another process (the
LISTEN_PID check).
"""

from __future__ import annotations

import os
import socket
from collections.abc import MutableMapping

from poisonproof.net.base import MessageHandler, Network, Service, TcpLimits

SD_LISTEN_FDS_START = 3


def listen_fds(environ: MutableMapping[str, str] | None = None) -> list[socket.socket]:
    """The sockets systemd passed to this process (none when not socket-activated)."""
    env = os.environ if environ is None else environ
    pid, count = env.get("LISTEN_PID"), env.get("LISTEN_FDS")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        env.pop(name, None)
    if pid is None or count is None:
        return []
    try:
        if int(pid) != os.getpid():
            return []
        n = int(count)
    except ValueError:
        return []
    sockets = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + n):
        os.set_inheritable(fd, False)
        sockets.append(socket.socket(fileno=fd))
    return sockets


def describe_socket(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    kind = "udp" if sock.type == socket.SOCK_DGRAM else "tcp"
    return f"{host}#{port}/{kind}"


async def serve_sockets(
    network: Network, sockets: list[socket.socket], handler: MessageHandler, limits: TcpLimits
) -> list[Service]:
    """Services on the activated sockets: for each address its UDP service, then its TCP one.

    A socket is served whatever it is paired with; services are ordered so that UDP/TCP
    pairs on one address sit together, as `start_listeners` orders them.
    """
    serve_udp = getattr(network, "serve_udp_socket", None)
    serve_tcp = getattr(network, "serve_tcp_socket", None)
    if serve_udp is None or serve_tcp is None:
        raise OSError(0, "this network cannot serve inherited sockets")
    ordered = sorted(
        sockets, key=lambda s: (s.getsockname()[:2], 0 if s.type == socket.SOCK_DGRAM else 1)
    )
    services: list[Service] = []
    for sock in ordered:
        sock.setblocking(False)
        if sock.type == socket.SOCK_DGRAM:
            services.append(await serve_udp(sock, handler))
        elif sock.type == socket.SOCK_STREAM:
            services.append(await serve_tcp(sock, handler, limits))
        else:
            raise OSError(0, f"socket {sock.fileno()} is neither UDP nor TCP")
    return services


def notify(state: str) -> bool:
    """sd_notify: send `state` (e.g. READY=1) to the service manager, if it listens."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    if path.startswith("@"):
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(path)
            sock.sendall(state.encode())
    except OSError:
        return False
    return True
