"""Queries waiting on one source port, and which of them a datagram answers.

Owns: the waiter record and the rule shared by every network: a datagram goes to the
first waiting query whose reply filter accepts it; if none does, each waiting query
records why the datagram was not its reply.
Must never: do I/O; the networks hand it datagrams.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from poisonproof.net.base import Address, ReplyFilter


@dataclass
class Waiter:
    reply_filter: ReplyFilter | None
    future: asyncio.Future[tuple[bytes, Address]]


def offer(waiters: list[Waiter], data: bytes, sender: Address) -> bool:
    """Give `data` to the first waiter that accepts it; True if one did."""
    verdicts: list[tuple[ReplyFilter, str]] = []
    for waiter in waiters:
        if waiter.future.done():
            continue
        reason = waiter.reply_filter.check(data, sender) if waiter.reply_filter else None
        if reason is None:
            waiter.future.set_result((data, sender))
            return True
        assert waiter.reply_filter is not None
        verdicts.append((waiter.reply_filter, reason))
    for reply_filter, reason in verdicts:
        reply_filter.reject(reason)
    return False
