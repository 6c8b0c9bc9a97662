"""Reloading a running resolver's settings (SIGHUP) without losing what it has learnt.

Owns: building a new resolver from re-read settings around the running one's cache,
aggressive-NSEC denial cache, server knowledge (RTTs, unwanted-reply alarms) and
counters, and putting it and the new access list into the running frontend; queries
already being resolved finish on the resolver they started on.
Must never: rebind listeners (a changed `listen` is reported as needing a restart), or
start serving half-built settings: a setting that fails to build leaves the old ones.
"""

from __future__ import annotations

import logging

from poisonproof.net.base import Clock
from poisonproof.server.resolver_server import ResolverServer
from poisonproof.server.settings import Settings

log = logging.getLogger("poisonproof.server")


def apply(settings: Settings, server: ResolverServer, clock: Clock) -> None:
    """Serve new client queries under `settings`, keeping the cache, knowledge and counters.

    The running `Frontend` object stays (listeners and their fast path hold it); it gets
    the new resolver and access list, and forgets the replies and ACL verdicts it had
    worked out under the old settings. Raises `SettingsError` (nothing changed) when the
    settings do not build.
    """
    running = server.frontend
    old = running.resolver
    built = settings.build(clock, cache=old.cache)
    new = built.resolver
    new.denials = old.denials
    old.infra.unwanted_threshold = new.defenses.unwanted_threshold
    new.infra = old.infra
    new.stats = old.stats
    running.resolver = new
    running.allow = built.allow
    running.udp_payload = built.udp_payload
    running._allowed_memo.clear()  # verdicts of the old access list
    if running.answers is not None:
        running.answers.clear()  # replies rendered under the old settings
    server.resolver = new
    listen = settings.listen_addresses()
    if not server.activated and sorted(listen) != sorted(server.listen):
        log.warning("reload: listen addresses changed; they apply on restart")
    log.info(
        "reloaded: defenses %s, %d cache entries kept", new.defenses.describe(), len(old.cache)
    )
