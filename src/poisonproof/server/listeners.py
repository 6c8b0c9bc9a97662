"""Binding one message handler on UDP and TCP at each listen address.

Owns: starting the pair of services per address (TCP on the port UDP got, so `:0` works),
closing what was started when a later bind fails, and the error text naming the address.
Must never: know what the handler answers.
"""

from __future__ import annotations

from poisonproof.net.base import Address, MessageHandler, Network, Service, TcpLimits


async def start_listeners(
    network: Network, listen: list[Address], handler: MessageHandler, tcp_limits: TcpLimits
) -> list[Service]:
    """UDP then TCP service for each address; raises OSError naming the address that failed."""
    services: list[Service] = []
    try:
        for address in listen:
            udp = await network.serve_udp(address, handler)
            services.append(udp)
            bound = (address[0], udp.address[1])  # TCP on the same port as UDP
            services.append(await network.serve_tcp(bound, handler, tcp_limits))
    except OSError as error:
        for service in services:
            await service.close()
        raise OSError(
            error.errno,
            f"cannot listen on {address[0]}#{address[1]}: {error.strerror or error}",
        ) from None
    return services


def describe(services: list[Service]) -> str:
    """`ip#port ...` of the UDP service of each pair."""
    return " ".join(f"{s.address[0]}#{s.address[1]}" for s in services[::2])
