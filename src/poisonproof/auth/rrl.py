"""Response rate limiting (RRL) for the authoritative server, BIND-style.

Owns: per (client network, response class) credit accounts that refill at a configured
rate and decide, for each UDP response, to send it, drop it, or "slip" it (send a tiny
truncated reply so a real client retries over TCP while a reflected flood gains nothing).
Must never: read the system clock (time comes in as an argument) or see TCP traffic.
"""

from __future__ import annotations

import enum
import ipaddress
from collections import OrderedDict
from dataclasses import dataclass


class Verdict(enum.Enum):
    SEND = "send"
    DROP = "drop"
    SLIP = "slip"


@dataclass(frozen=True)
class RrlConfig:
    responses_per_second: float = 5.0
    """Identical responses per second one client network may receive."""
    window: float = 15.0
    """Seconds of debt an account may build up (BIND's `window`)."""
    slip: int = 2
    """Every `slip`-th limited response is sent truncated; 0 never slips, 1 always."""
    ipv4_prefix: int = 24
    ipv6_prefix: int = 56
    max_accounts: int = 100_000
    """Accounts kept; the least recently used is forgotten beyond this."""


@dataclass
class _Account:
    balance: float
    updated: float
    limited: int = 0


class ResponseRateLimiter:
    """Decides send / drop / slip for each UDP response."""

    def __init__(self, config: RrlConfig = RrlConfig()) -> None:
        self.config = config
        self._accounts: OrderedDict[tuple[str, tuple[object, ...]], _Account] = OrderedDict()
        self.dropped = 0
        self.slipped = 0

    def _network(self, client: str) -> str:
        address = ipaddress.ip_address(client)
        prefix = self.config.ipv4_prefix if address.version == 4 else self.config.ipv6_prefix
        return str(ipaddress.ip_network(f"{client}/{prefix}", strict=False))

    def decide(self, client: str, response_key: tuple[object, ...], now: float) -> Verdict:
        """Charge one response of class `response_key` to `client`'s network at time `now`."""
        rate = self.config.responses_per_second
        key = (self._network(client), response_key)
        account = self._accounts.get(key)
        if account is None:
            account = _Account(balance=rate, updated=now)
            self._accounts[key] = account
            if len(self._accounts) > self.config.max_accounts:
                self._accounts.popitem(last=False)
        else:
            self._accounts.move_to_end(key)
            elapsed = max(0.0, now - account.updated)
            account.balance = min(rate, account.balance + elapsed * rate)
            account.updated = now
        account.balance = max(account.balance - 1.0, -self.config.window * rate)
        if account.balance >= 0:
            return Verdict.SEND
        account.limited += 1
        if self.config.slip and account.limited % self.config.slip == 0:
            self.slipped += 1
            return Verdict.SLIP
        self.dropped += 1
        return Verdict.DROP
