"""The opt-in operational features of `poisonproof serve` around one `ResolverServer`.

Owns: their lifetime in order: systemd sockets and the cache file before the listeners
start, the metrics endpoint and dnstap tap once the server exists, settings reloads
(SIGHUP), cache saves on request (SIGUSR1) and loads into the running cache (SIGUSR2),
and at stop (after in-flight queries were answered) the cache save, the dnstap STOP frame
and the metrics endpoint's close.
Must never: hold up a query: every feature here is off unless asked for, and the ones on
read counters or copy messages without waiting on them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from poisonproof import __version__
from poisonproof.net.base import Address, Network
from poisonproof.resolver.cache_file import CacheFileError, dump, load
from poisonproof.server import systemd
from poisonproof.server.dnstap import DnstapSink, TappedNetwork, tap_handler
from poisonproof.server.metrics import (
    LatencyHistogram,
    MetricsEndpoint,
    ResolverCollector,
    serve_metrics,
)
from poisonproof.server.reload import apply
from poisonproof.server.resolver_server import ResolverServer
from poisonproof.server.settings import Settings, SettingsError

log = logging.getLogger("poisonproof.server")


@dataclass(frozen=True)
class OperationsConfig:
    metrics: Address | None = None
    dnstap: str | None = None
    """A file path, or `unix:PATH` for a Frame Streams reader's socket."""
    cache_file: Path | None = None
    identity: str = "poisonproof"


class Operations:
    def __init__(
        self,
        server: ResolverServer,
        network: Network,
        config: OperationsConfig,
        settings: Callable[[], Settings] | None = None,
    ) -> None:
        self.server = server
        self.network = network
        self.config = config
        self.settings = settings
        self.metrics: MetricsEndpoint | None = None
        self.dnstap: DnstapSink | None = None
        self._keep_file = False
        """A cache file that failed to load is left as it is, not overwritten at stop."""

    def prepare(self) -> None:
        """Everything that must be in place before the listeners start (raises OSError)."""
        server = self.server
        server.activated = systemd.listen_fds()
        if server.activated:
            log.info(
                "socket activation: %s",
                " ".join(systemd.describe_socket(s) for s in server.activated),
            )
        if self.config.cache_file is not None and self.config.cache_file.exists():
            try:
                result = load(server.resolver.cache, self.config.cache_file)
            except (CacheFileError, OSError, ValueError) as error:
                log.error("cache file not loaded (and left as it is): %s", error)
                self._keep_file = True
            else:
                log.info(
                    "cache file %s: %d entries loaded, %d expired, %d unreadable",
                    self.config.cache_file,
                    result.loaded,
                    result.expired,
                    result.bad_lines,
                )
        if self.config.dnstap is not None:
            self.dnstap = DnstapSink(self.config.dnstap, self.config.identity, __version__)
            tapped = tap_handler(self.dnstap, server.handle)
            server.handle = tapped  # type: ignore[method-assign]
            # every client message through the tap: no batch cache-hit path beside it
            server.handler = lambda: tapped  # type: ignore[method-assign]
            server.driver.network = TappedNetwork(server.driver.network, self.dnstap)  # type: ignore[assignment]
            log.info("dnstap: client and resolver messages to %s", self.config.dnstap)
        if self.config.metrics is not None:
            latency = LatencyHistogram()
            server.observe_latency = latency.observe
            self.metrics = serve_metrics(self.config.metrics, [ResolverCollector(server, latency)])
            host, port = self.metrics.address
            log.info("metrics: http://%s:%d/metrics", host, port)

    def reload(self) -> None:
        """SIGHUP: re-read the settings and swap them in around the same cache."""
        if self.settings is None:
            return
        systemd.notify("RELOADING=1")
        try:
            apply(self.settings(), self.server, self.network.clock)
        except SettingsError as error:
            log.error("reload failed, the old settings stay: %s", error)
        finally:
            systemd.notify("READY=1")

    def save_cache(self) -> None:
        """SIGUSR1 (and stop): write the cache file, when there is one."""
        path = self.config.cache_file
        if path is None:
            log.warning("no --cache-file: nothing to save the cache to")
            return
        try:
            count = dump(self.server.resolver.cache, path)
        except OSError as error:
            log.error("cache file %s not written: %s", path, error.strerror or error)
            return
        log.info("cache file %s: %d entries saved", path, count)

    def load_cache(self) -> None:
        """SIGUSR2: merge the cache file into the running cache (`poisonproof cache load`)."""
        path = self.config.cache_file
        if path is None:
            log.warning("no --cache-file: nothing to load the cache from")
            return
        try:
            result = load(self.server.resolver.cache, path)
        except (CacheFileError, OSError, ValueError) as error:
            log.error("cache file not loaded: %s", error)
            return
        self._keep_file = False
        log.info(
            "cache file %s: %d entries loaded, %d expired, %d unreadable",
            path,
            result.loaded,
            result.expired,
            result.bad_lines,
        )

    def close(self) -> None:
        """After the server stopped: save the cache, finish dnstap, stop the metrics."""
        if self.config.cache_file is not None and not self._keep_file:
            self.save_cache()
        if self.dnstap is not None:
            self.dnstap.close()
        if self.metrics is not None:
            self.metrics.close()
