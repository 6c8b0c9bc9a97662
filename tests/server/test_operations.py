"""`poisonproof serve`'s operations features on a real process on loopback: Prometheus
metrics, JSON logs, the cache file, SIGHUP reload keeping the cache, SIGTERM answering
in-flight queries."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rrset
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port


def world_args(world, tmp_path) -> list[str]:
    return [
        "--root-hints",
        str(world.hints_file(tmp_path)),
        "--upstream-port",
        str(world.port),
        "--query-localhost",
        "on",
    ]


def offline_args(world, tmp_path) -> list[str]:
    """The world's root hints but no reachable upstream: only a cache can answer."""
    return [
        "--root-hints",
        str(world.hints_file(tmp_path)),
        "--upstream-port",
        str(free_port("127.0.0.2")),
        "--query-localhost",
        "on",
    ]


def cache_command(*args: str) -> subprocess.CompletedProcess[str]:
    """`poisonproof cache ARGS...` as a separate process."""
    return subprocess.run(
        [sys.executable, "-m", "poisonproof", "cache", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def ask(server, name: str, rdtype: str = "A", tcp: bool = False) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    if tcp:
        return dns.query.tcp(query, server.host, port=server.port, timeout=10)
    return dns.query.udp(query, server.host, port=server.port, timeout=10)


def wait_for(predicate, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def one(samples, name: str, **labels: str) -> float:
    return samples[name][tuple(sorted(labels.items()))]


def test_metrics_endpoint_counts_queries_hits_rcodes_and_upstream(
    start_resolver_process, world_thread, tmp_path
):
    port = free_port()
    server = start_resolver_process(
        *world_args(world_thread, tmp_path), "--metrics", f"127.0.0.1:{port}"
    )
    before = scrape(port)
    assert one(before, "poisonproof_queries_total") == 0
    assert ask(server, "www.bank.example").rcode() == dns.rcode.NOERROR
    assert ask(server, "www.bank.example").rcode() == dns.rcode.NOERROR  # a cache hit
    assert ask(server, "nope.bank.example").rcode() == dns.rcode.NXDOMAIN
    after = scrape(port)
    assert one(after, "poisonproof_queries_total") == 3
    assert one(after, "poisonproof_cache_hits_total") >= 1
    assert one(after, "poisonproof_cache_misses_total") >= 2
    assert one(after, "poisonproof_upstream_queries_total", protocol="udp") >= 3
    assert one(after, "poisonproof_answer_rcodes_total", rcode="NOERROR") >= 1
    assert one(after, "poisonproof_answer_rcodes_total", rcode="NXDOMAIN") == 1
    assert one(after, "poisonproof_response_time_seconds_count") == 3
    assert one(after, "poisonproof_response_time_seconds_bucket", le="+Inf") == 3
    assert one(after, "poisonproof_response_time_seconds_sum") > 0
    assert one(after, "poisonproof_cache_entries") > 0
    for name in ("unwanted_replies", "case_mismatches", "near_misses", "spoof_alarms"):
        assert one(after, f"poisonproof_{name}_total") == 0
    assert "poisonproof_scrubbed_records_total" in after


def test_json_logs_are_one_object_per_line(start_resolver_process, world_thread, tmp_path):
    server = start_resolver_process(*world_args(world_thread, tmp_path), "--log-format", "json")
    ask(server, "www.bank.example")
    server.stop()
    events = [json.loads(line) for line in server.log.splitlines() if line.strip()]
    assert events and all({"time", "level", "logger", "message"} <= e.keys() for e in events)
    messages = [e["message"] for e in events]
    assert any(m.startswith("ready: resolving on") for m in messages)
    assert any(m.startswith("stopped after 1 client queries") for m in messages)


def test_cache_file_survives_a_restart(start_resolver_process, world_thread, tmp_path):
    cache_file = tmp_path / "cache.jsonl"
    first = start_resolver_process(
        *world_args(world_thread, tmp_path), "--cache-file", str(cache_file)
    )
    assert ask(first, "portal.bank.example").rcode() == dns.rcode.NOERROR
    first.signal(signal.SIGUSR1)  # saved on request ...
    wait_for(lambda: "entries saved" in first.log)
    assert first.stop() == 0  # ... and at stop
    assert "entries saved" in first.log
    shown = cache_command("show", str(cache_file))
    assert shown.returncode == 0, shown.stderr
    assert any(
        line.startswith("www.bank.example. ") and " A 192.0.2.80 ; rank=ANSWER_AUTH" in line
        for line in shown.stdout.splitlines()
    ), shown.stdout
    # the second process has no reachable upstream: only the loaded cache can answer
    second = start_resolver_process(
        *offline_args(world_thread, tmp_path), "--cache-file", str(cache_file)
    )
    assert "entries loaded" in second.log
    reply = ask(second, "portal.bank.example")
    assert reply.rcode() == dns.rcode.NOERROR
    assert [str(r.rdtype.name) for r in reply.answer] == ["CNAME", "CNAME", "A"]
    assert reply.answer[-1][0].address == "192.0.2.80"


def test_sighup_reloads_settings_and_keeps_the_cache(
    start_resolver_process, world_thread, tmp_path
):
    config = tmp_path / "resolver.toml"
    config.write_text('defenses = "default"\n')
    server = start_resolver_process(*world_args(world_thread, tmp_path), "--config", str(config))
    assert ask(server, "www.bank.example").rcode() == dns.rcode.NOERROR
    asked = sum(world_thread.query_counts().values())
    config.write_text('defenses = "no-0x20"\nallow = ["10.0.0.0/8"]\n')
    server.signal(signal.SIGHUP)
    wait_for(lambda: "reloaded:" in server.log)
    assert "reloaded: defenses case_randomization=False" in server.log
    assert ask(server, "www.bank.example").rcode() == dns.rcode.REFUSED  # new ACL in force
    config.write_text('defenses = "no-0x20"\n')
    server.signal(signal.SIGHUP)
    wait_for(lambda: server.log.count("reloaded:") == 2)
    reply = ask(server, "www.bank.example")
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer[0][0].address == "192.0.2.80"
    assert sum(world_thread.query_counts().values()) == asked  # answered from the kept cache
    config.write_text("defenses = [broken\n")
    server.signal(signal.SIGHUP)
    wait_for(lambda: "reload failed" in server.log)
    assert ask(server, "www.bank.example").rcode() == dns.rcode.NOERROR
    assert server.stop() == 0


class SlowRoot:
    """A one-socket 'root server' that answers every A query authoritatively, late."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.queries = 0
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                wire, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            self.queries += 1
            query = dns.message.from_wire(wire)
            reply = dns.message.make_response(query)
            reply.flags |= dns.flags.AA
            name = query.question[0].name
            reply.answer.append(dns.rrset.from_text(name, 60, "IN", "A", "192.0.2.7"))
            threading.Timer(self.delay, self.sock.sendto, (reply.to_wire(), peer)).start()

    def hints(self, path):
        path.write_text(". 3600 IN NS a.root.\na.root. 3600 IN A 127.0.0.1\n")
        return path

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def slow_root():
    root = SlowRoot(delay=1.0)
    yield root
    root.close()


def test_sigterm_answers_queries_in_flight(start_resolver_process, slow_root, tmp_path):
    server = start_resolver_process(
        "--root-hints",
        str(slow_root.hints(tmp_path / "slow.hints")),
        "--upstream-port",
        str(slow_root.port),
        "--query-localhost",
        "on",
        "--qname-minimisation",
        "off",
        "--defenses",
        "no-0x20",
    )
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(10)
    query = dns.message.make_query("slow.example.", "A")
    client.sendto(query.to_wire(), (server.host, server.port))
    stream = socket.create_connection((server.host, server.port), timeout=10)
    tcp_query = dns.message.make_query("slow-tcp.example.", "A")
    tcp_wire = tcp_query.to_wire()
    stream.sendall(len(tcp_wire).to_bytes(2, "big") + tcp_wire)
    wait_for(lambda: slow_root.queries >= 2)  # both resolutions wait on the slow upstream
    server.signal(signal.SIGTERM)
    reply = dns.message.from_wire(client.recv(4096))
    client.close()
    assert reply.id == query.id and reply.rcode() == dns.rcode.NOERROR
    assert reply.answer[0][0].address == "192.0.2.7"
    length = int.from_bytes(stream.recv(2), "big")
    data = b""
    while len(data) < length:
        data += stream.recv(length - len(data))
    stream.close()
    tcp_reply = dns.message.from_wire(data)
    assert tcp_reply.id == tcp_query.id and tcp_reply.answer[0][0].address == "192.0.2.7"
    assert server.proc.wait(10) == 0


def test_cache_dump_and_load_on_running_servers(start_resolver_process, world_thread, tmp_path):
    first = start_resolver_process(
        *world_args(world_thread, tmp_path), "--cache-file", str(tmp_path / "first.jsonl")
    )
    assert ask(first, "portal.bank.example").rcode() == dns.rcode.NOERROR
    dumped = tmp_path / "dumped.jsonl"
    done = cache_command("dump", "--pid", str(first.proc.pid), "--out", str(dumped))
    assert done.returncode == 0, done.stderr
    assert "www.bank.example." in dumped.read_text()
    # a running server with no reachable upstream and an empty cache takes the dump
    second = start_resolver_process(
        *offline_args(world_thread, tmp_path), "--cache-file", str(tmp_path / "second.jsonl")
    )
    loaded = cache_command("load", str(dumped), "--pid", str(second.proc.pid))
    assert loaded.returncode == 0, loaded.stderr
    wait_for(lambda: "entries loaded" in second.log)
    reply = ask(second, "portal.bank.example")
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer[-1][0].address == "192.0.2.80"
    # not a cache file, not a serve process, no cache file: clear errors, nothing signalled
    junk = tmp_path / "junk.txt"
    junk.write_text("hello\n")
    for argv, words in (
        (["load", str(junk), "--pid", str(second.proc.pid)], "not a poisonproof cache file"),
        (["dump", "--pid", str(os.getpid())], "is not `poisonproof serve`"),
    ):
        failed = cache_command(*argv)
        assert failed.returncode != 0 and words in failed.stdout + failed.stderr, failed
