"""The real-packet lab: the arena's zones served in network namespaces, a real target
resolver, and an attacker sending spoofed datagrams; trial records like the simulated lab's.

Owns: the address plan of the real arena (all inside 10.53.0.0/16, in namespaces the lab
creates), writing the arena's zones with those addresses, starting the authoritative
servers (the victim's hold each answer for the race window: `--answer-delay`, or netem
where the kernel has it), starting a fresh target resolver per trial, running the
attacker (`real_attacker`) in its namespace, and turning its report into a `TrialResult`
with the window source, the measured window and the datagrams the target received.
Must never: touch an address outside the lab's namespaces, or leave a namespace or a
process behind (LabNet tears everything down, also on errors and Ctrl-C).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from poisonproof.lab import arena as sim_arena
from poisonproof.lab.arena import ArenaParams, zone_texts
from poisonproof.lab.attacks import TrialResult
from poisonproof.lab.netns import LabNet
from poisonproof.lab.targets import Target, TargetSpec, udp_counters

ROOT = "10.53.0.4"
TLD = "10.53.0.30"
ATTACKER = "10.53.0.66"
RESOLVER = "10.53.0.53"
CLIENT = "10.53.0.10"
MAIL = "10.53.0.25"
FORWARDER = "10.53.2.1"
PCAP_PACKETS = 200_000
"""A capture stops by itself after this many packets (a flood is millions)."""
FIXED_PORT = 33333
"""The one query port of a weakened target (as the SEED Labs Kaminsky lab sets BIND)."""


def bank_server(index: int) -> str:
    return f"10.53.1.{index + 1}"


def address_map(servers: int) -> dict[str, str]:
    """Simulated arena address -> real lab address."""
    mapping = {
        sim_arena.ROOT_IP: ROOT,
        sim_arena.TLD_IP: TLD,
        sim_arena.ATTACKER_IP: ATTACKER,
        sim_arena.RESOLVER_IP: RESOLVER,
        sim_arena.CLIENT_IP: CLIENT,
        sim_arena.MAIL_IP: MAIL,
        sim_arena.FORWARDER_IP: FORWARDER,
    }
    for index in range(servers):
        mapping[sim_arena.bank_server_ip(index)] = bank_server(index)
    return mapping


def real_zone_texts(params: ArenaParams) -> dict[str, str]:
    texts = zone_texts(params)
    mapping = address_map(params.servers)
    out = {}
    for name, text in texts.items():
        for old, new in sorted(mapping.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(f" {old}\n", f" {new}\n")
        out[name] = text
    return out


@dataclass(frozen=True)
class RealSetting:
    attack: str = "kaminsky"
    """kaminsky, kaminsky-answer, birthday, mail, forwarder or classic (the simulated
    lab's names; `kaminsky-answer` is `kaminsky` with `forgery="answer"`)."""
    target: str = "poisonproof"
    weakened: bool = True
    """Held to one query port (FIXED_PORT): the 2008 vulnerability, for every target."""
    defenses: str = "2008"
    """For the poisonproof target: the defense preset."""
    servers: int = 1
    window: float = 0.1
    ttl: int = 300
    """TTL of the victim zone's records (`classic` gets one try per TTL)."""
    duplicates: int = 100
    """`birthday`: identical questions per attempt."""
    rate: float = 200_000.0
    budget_packets: int = 5_000_000
    budget_seconds: float = 60.0
    tell_port: bool = True
    """The attacker is told the fixed port (False: it learns it through its own zone)."""
    forgery: str = ""
    """`referral` or `answer` (see `real_attacker.AttackerJob.forgery`); empty: `referral`
    against our resolver, `answer` (the SEED Labs reply) against the others."""

    paced: bool = True
    """Spread each window's forged replies evenly at `rate` (False: one burst per window)."""
    stop_at_first_win: bool = False
    """End a trial when the race is first won (measures the race against theory)."""
    pcap_dir: str = ""
    """Capture each trial at the resolver's interface into DIR/trial-SEED.pcap (dumpcap,
    at most `PCAP_PACKETS` packets); empty: no capture."""

    def __post_init__(self) -> None:
        if self.attack not in REAL_ATTACKS:
            raise ValueError(f"attack {self.attack!r}: --mode real runs {', '.join(REAL_ATTACKS)}")

    @property
    def attacker_attack(self) -> str:
        """The attacker's name for it (`kaminsky-answer` is a kaminsky forgery)."""
        return "kaminsky" if self.attack == "kaminsky-answer" else self.attack

    @property
    def forgery_used(self) -> str:
        if self.attack == "kaminsky-answer":
            return "answer"
        return self.forgery or ("referral" if self.target == "poisonproof" else "answer")

    def key(self) -> dict[str, object]:
        return {"mode": "real", **{k: v for k, v in self.__dict__.items()}}


REAL_ATTACKS = ("kaminsky", "kaminsky-answer", "birthday", "mail", "forwarder", "classic")


def auth_argv(
    zones: Sequence[Path], listen: Sequence[str], delay: float = 0.0, log: Path | None = None
) -> list[str]:
    """`poisonproof auth` serving `zones` on each `IP:PORT` of `listen`, each answer held
    `delay` seconds, every query logged to `log`."""
    argv = [sys.executable, "-m", "poisonproof", "auth"]
    for zone in zones:
        argv += ["--zone", str(zone)]
    for address in listen:
        argv += ["--listen", address]
    if delay:
        argv += ["--answer-delay", str(delay)]
    if log is not None:
        argv += ["--query-log", str(log)]
    return argv


def stop_processes(processes: list[subprocess.Popen[bytes]], grace: float = 5.0) -> None:
    """SIGTERM each, wait up to `grace` seconds, SIGKILL what is left; empties the list."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
    processes.clear()


def _hosts(setting: RealSetting) -> dict[str, list[str]]:
    hosts = {
        "root": [ROOT],
        "tld": [TLD],
        "victim": [bank_server(i) for i in range(setting.servers)],
        "attacker": [ATTACKER],
        "resolver": [RESOLVER],
        "client": [CLIENT],
    }
    if setting.attack == "mail":
        hosts["mail"] = [MAIL]
    if setting.attack == "forwarder":
        hosts["forwarder"] = [FORWARDER]
    return hosts


class RealArena:
    """The servers of one real arena, up for as many trials as asked."""

    def __init__(self, setting: RealSetting, workdir: Path) -> None:
        self.setting = setting
        self.workdir = workdir
        self.net = LabNet(_hosts(setting))
        self.processes: list[subprocess.Popen[bytes]] = []
        self.attacker_log = workdir / "attacker-queries.jsonl"
        self.victim_log = workdir / "victim-queries.jsonl"
        self.tld_log = workdir / "tld-queries.jsonl"

    def __enter__(self) -> RealArena:
        self.net.__enter__()
        try:
            self._start_servers()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        stop_processes(self.processes)
        self.net.__exit__(None, None, None)

    @property
    def window_source(self) -> str:
        return "netem" if self.net.netem else "answer-delay"

    def _zone_file(self, name: str, text: str) -> Path:
        path = self.workdir / name
        path.write_text(text)
        return path

    def _auth(
        self,
        host: str,
        zones: Sequence[Path],
        listen: Sequence[str],
        *,
        delay: float = 0.0,
        log: Path | None = None,
    ) -> None:
        argv = auth_argv(zones, [f"{address}:53" for address in listen], delay, log)
        out = (self.workdir / f"{host}.log").open("wb")
        self.processes.append(self.net.popen(host, argv, stdout=out, stderr=subprocess.STDOUT))

    def _start_servers(self) -> None:
        setting = self.setting
        params = ArenaParams(servers=setting.servers, window=setting.window, ttl=setting.ttl)
        texts = real_zone_texts(params)
        files = {name: self._zone_file(name, text) for name, text in texts.items()}
        self._auth("root", [files["root.zone"], files["net.zone"]], [ROOT])
        self._auth("tld", [files["example.zone"]], [TLD], log=self.tld_log)
        delay = 0.0 if self.net.netem else setting.window
        self._auth(
            "victim",
            [files["bank.example.zone"]],
            [bank_server(i) for i in range(setting.servers)],
            delay=delay,
            log=self.victim_log,
        )
        self._auth(
            "attacker",
            [files["attacker.example.zone"], files["fake-bank.example.zone"]],
            [ATTACKER],
            log=self.attacker_log,
        )
        if setting.attack == "forwarder":
            # the company's DNS: the race window is its answer delay, as for the victim
            self._auth("forwarder", [files["corp.example.zone"]], [FORWARDER], delay=delay)
        if setting.attack == "mail":
            argv = [sys.executable, "-m", "poisonproof.lab.real_mail"]
            argv += ["--listen", f"{MAIL}:25", "--resolver", RESOLVER]
            out = (self.workdir / "mail.log").open("wb")
            self.processes.append(
                self.net.popen("mail", argv, stdout=out, stderr=subprocess.STDOUT)
            )
        self.hints = self.workdir / "root.hints"
        self.hints.write_text(
            f". 3600000 IN NS a.root-servers.net.\na.root-servers.net. 3600000 IN A {ROOT}\n"
        )
        for host, address, name in (
            ("client", ROOT, "."),
            ("client", TLD, "example."),
            ("client", bank_server(0), "bank.example."),
            ("client", ATTACKER, "attacker.example."),
            *((("client", FORWARDER, "corp.example."),) if setting.attack == "forwarder" else ()),
        ):
            self._wait_serving(host, address, name)

    def _wait_serving(self, host: str, address: str, zone: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        probe = (
            f"import dns.message, dns.query; q = dns.message.make_query({zone!r}, 'SOA'); "
            f"dns.query.udp(q, {address!r}, timeout=0.5)"
        )
        while time.monotonic() < deadline:
            done = self.net.run(host, [sys.executable, "-c", probe], timeout=5, capture_output=True)
            if done.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"the lab server {address} ({zone}) did not answer within {timeout}s")

    def target(self, trial: int) -> Target:
        setting = self.setting
        spec = TargetSpec(
            name=setting.target,
            weakened=setting.weakened,
            listen=RESOLVER,
            root_hints=self.hints,
            fixed_port=FIXED_PORT if setting.weakened else None,
            defenses=setting.defenses,
            forwarders=((("corp.example", (FORWARDER,)),) if setting.attack == "forwarder" else ()),
            # dnsmasq only forwards: each zone of the arena to its own servers
            forward_zones=(
                ("bank.example", tuple(bank_server(i) for i in range(setting.servers))),
                ("attacker.example", (ATTACKER,)),
                ("example", (TLD,)),
                ("net", (ROOT,)),
            ),
        )
        workdir = self.workdir / f"target-{trial}"
        workdir.mkdir(exist_ok=True)

        def popen(argv: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
            return self.net.popen("resolver", argv, **kwargs)  # type: ignore[arg-type]

        return Target(spec, workdir, popen=popen)

    def _capture(self, seed: int) -> subprocess.Popen[bytes]:
        """dumpcap on the resolver's interface for one trial (bounded by packet count)."""
        directory = Path(self.setting.pcap_dir)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"trial-{seed}.pcap"
        argv = ["dumpcap", "-q", "-i", "eth0", "-P", "-c", str(PCAP_PACKETS)]
        argv += ["-w", str(path)]
        process = self.net.popen(
            "resolver", argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(0.5)  # dumpcap needs a moment before it sees packets
        return process

    def udp_received(self) -> tuple[int, int]:
        """(UDP datagrams delivered to sockets, datagrams dropped for a full receive
        buffer) in the resolver's namespace so far."""
        counters = udp_counters(lambda argv, **kw: self.net.popen("resolver", argv, **kw))
        return counters.get("InDatagrams", 0), counters.get("RcvbufErrors", 0)

    def attacker_job(self, seed: int) -> dict[str, object]:
        """The attacker's job (`real_attacker.AttackerJob` as JSON) for one trial."""
        setting = self.setting
        return {
            "resolver": RESOLVER,
            "victim_servers": [bank_server(i) for i in range(setting.servers)],
            "attacker": ATTACKER,
            "attacker_log": str(self.attacker_log),
            "port": FIXED_PORT if (setting.weakened and setting.tell_port) else None,
            "rate": setting.rate,
            "window": setting.window,
            "budget_packets": setting.budget_packets,
            "budget_seconds": setting.budget_seconds,
            "seed": seed,
            "forgery": setting.forgery_used,
            "attack": setting.attacker_attack,
            "mail": MAIL if setting.attack == "mail" else None,
            "forwarder": FORWARDER if setting.attack == "forwarder" else None,
            "ttl": setting.ttl,
            "duplicates": setting.duplicates,
            "mail_names": sim_arena.MAIL_NAMES,
            "stop_at_first_win": setting.stop_at_first_win,
            "paced": setting.paced,
        }

    def run_trial(self, seed: int) -> TrialResult:
        setting = self.setting
        target = self.target(seed)
        target.start()
        capture = self._capture(seed) if setting.pcap_dir else None
        try:
            before = self.udp_received()
            job = self.attacker_job(seed)
            started = time.monotonic()
            done = self.net.run(
                "attacker",
                [sys.executable, "-m", "poisonproof.lab.real_attacker", json.dumps(job)],
                timeout=setting.budget_seconds + 60,
                capture_output=True,
            )
            wall = time.monotonic() - started
            if done.returncode != 0:
                raise RuntimeError(
                    f"the attacker failed: {done.stderr.decode(errors='replace')[-2000:]}"
                )
            report = json.loads(done.stdout.decode().strip().splitlines()[-1])
            after = self.udp_received()
        finally:
            target.stop()
            if capture is not None:
                capture.terminate()
                try:
                    capture.wait(10)
                except subprocess.TimeoutExpired:
                    capture.kill()
        delivered, dropped = after[0] - before[0], after[1] - before[1]
        rtts = report["trigger_rtts"]
        return TrialResult(
            attack=setting.attack,
            defenses=f"{setting.target}{' (one port)' if setting.weakened else ''}",
            seed=seed,
            success=report["success"],
            attempts=report["attempts"],
            packets=report["packets"],
            sim_time=report["seconds"],
            wall_time=round(wall, 4),
            victim_sees=report["victim_sees"],
            reasons={
                "first_win_attempt": report["first_win_attempt"] or -1,
                "forged_answers_accepted": report["answers_won"],
                "forged_answer_delegation_kept": report["delegation_kept"],
                "udp_delivered_to_target": delivered,
                "udp_dropped_rcvbuf": dropped,
                "spoofer_errors": report["errors"],
            },
            note=json.dumps(
                {
                    "mode": "real",
                    "window_source": self.window_source,
                    "lab_mode": self.net.mode,
                    "measured_window_s": statistics.median(rtts) if rtts else None,
                    "flood_seconds": report["flood_seconds"],
                    "port": report["port"],
                    "port_learned": report["port_learned"],
                    "forgery": setting.forgery_used,
                    "attacker_note": report["note"],
                }
            ),
        )


def run_real_trials(
    setting: RealSetting,
    trials: int,
    first_seed: int = 0,
    on_result: Callable[[TrialResult], None] | None = None,
) -> list[TrialResult]:
    results = []
    with (
        tempfile.TemporaryDirectory(prefix="poisonproof-real-") as tmp,
        RealArena(setting, Path(tmp)) as arena,
    ):
        for seed in range(first_seed, first_seed + trials):
            result = arena.run_trial(seed)
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results
