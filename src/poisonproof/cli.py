"""The `poisonproof` command line (typer + rich).

Owns: argument parsing, turning bad arguments into clear one-line errors, signal handling
for long-running servers, and printing results.
Must never: contain DNS logic; every command calls into the packages below it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from poisonproof.auth.rrl import ResponseRateLimiter, RrlConfig
from poisonproof.auth.signing import ALGORITHMS, sign_zone_file
from poisonproof.auth.zones import ZoneError
from poisonproof.lab.cli_attack import lab_attack
from poisonproof.lab.cli_flood import lab_flood
from poisonproof.lab.world_cli import world_app
from poisonproof.logsetup import FORMATS, configure
from poisonproof.net.address import parse_address
from poisonproof.net.base import Address, TcpLimits
from poisonproof.net.real import RealNetwork, run
from poisonproof.resolver.cache_file import CacheFileError
from poisonproof.resolver.cache_file import describe as describe_cache_file
from poisonproof.resolver.iterator import TraceEvent
from poisonproof.resolver.shared_answers import SharedAnswers, SharedTableError
from poisonproof.server import systemd
from poisonproof.server.auth_server import AuthServer
from poisonproof.server.dnstap import DnstapError
from poisonproof.server.driver import ExchangeDriver
from poisonproof.server.operations import Operations, OperationsConfig
from poisonproof.server.resolver_server import ResolverServer
from poisonproof.server.settings import Settings, SettingsError
from poisonproof.server.workers import run_workers, serve_args_from

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="A hardened DNS resolver, an authoritative server, and a cache-poisoning lab.",
)
zone_app = typer.Typer(no_args_is_help=True, help="Zone tools: signing.")
app.add_typer(zone_app, name="zone")
cache_app = typer.Typer(no_args_is_help=True, help="Cache files of `serve --cache-file`.")
app.add_typer(cache_app, name="cache")
lab_app = typer.Typer(no_args_is_help=True, help="The poisoning lab: worlds, attackers, trials.")
app.add_typer(lab_app, name="lab")
lab_app.add_typer(world_app, name="world")
lab_app.command("attack")(lab_attack)
lab_app.command("flood")(lab_flood)


@lab_app.command("sweep")
def lab_sweep(
    grid_file: Annotated[Path, typer.Argument(help="The grid (TOML).")],
    workers: Annotated[int | None, typer.Option(help="Local processes (default: CPUs).")] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="Dask scheduler address: run on that cluster instead.")
    ] = None,
) -> None:
    """Every combination of a parameter grid; records appended as trials end (resumable)."""
    from poisonproof.lab.sweep import GridError, load_grid, run_grid

    try:
        grid = load_grid(grid_file)
        ran = run_grid(
            grid, workers, scheduler, lambda done, total: console.print(f"{done}/{total} trials")
        )
    except GridError as error:
        raise _fail(str(error)) from None
    print(f"{ran} trials run over {len(grid.settings)} settings; records: {grid.out}")


@lab_app.command("report")
def lab_report(
    records: Annotated[Path, typer.Argument(help="A JSONL file of trial records.")],
    out: Annotated[
        Path, typer.Option("-o", "--out", help="Directory for the plots and page.")
    ] = Path("report"),
) -> None:
    """PNG plots and a self-contained HTML page from trial records."""
    from poisonproof.lab.report import ReportError, build_report

    try:
        page = build_report(records, out)
    except ReportError as error:
        raise _fail(str(error)) from None
    print(f"report: {page}")


@lab_app.command("ablation")
def lab_ablation(
    trials: Annotated[int, typer.Option(help="Trials per cell.")] = 3,
    budget: Annotated[int, typer.Option(help="Forged replies per trial.")] = 1_000_000,
    markdown_out: Annotated[
        Path | None, typer.Option("--markdown", help="Also write the table as Markdown.")
    ] = None,
    only: Annotated[
        str | None,
        typer.Option(help="Only the rows whose label contains this (e.g. DNSSEC)."),
    ] = None,
) -> None:
    """2008 plus each defense, default minus each defense, and 2008 with DNSSEC
    validation in a signed arena (victim zone signed, then unsigned), against every attack."""
    from poisonproof.lab.ablation import markdown, run_ablation

    logging.getLogger("poisonproof.resolver").setLevel(logging.ERROR)
    table = run_ablation(trials, budget, only=only)
    if not table:
        raise _fail(f"no ablation row's label contains {only!r}")
    command = f"poisonproof lab ablation --trials {trials} --budget {budget}"
    if only is not None:
        command += f" --only {only!r}"
    text = markdown(table, trials, budget, command)
    print(text)
    if markdown_out is not None:
        markdown_out.write_text(text)


console = Console(stderr=True)
log = logging.getLogger("poisonproof.cli")


def _fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code=2)


def _listen_error(error: OSError) -> str:
    text = str(error.strerror or error)
    if error.errno == errno.EACCES:
        text += (
            " (ports below 1024 need root or CAP_NET_BIND_SERVICE; unprivileged users can run"
            " the lab inside a user+network namespace: unshare -rn, then ip link set lo up)"
        )
    return text


def _addresses(specs: list[str]) -> list[Address]:
    try:
        return [parse_address(spec) for spec in specs]
    except ValueError as error:
        raise _fail(f"--listen {error}") from None


async def _serve_until_signalled(
    server: AuthServer | ResolverServer,
    ready_file: Path | None,
    operations: Operations | None = None,
) -> None:
    await server.start()
    if ready_file is not None:
        ready_file.write_text("\n".join(f"{a[0]} {a[1]}" for a in server.addresses[::2]) + "\n")
    systemd.notify("READY=1")
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    reloads: set[asyncio.Task[bool]] = set()

    def reload() -> None:
        if not isinstance(server, AuthServer):
            if operations is not None:
                operations.reload()  # the resolver: settings re-read, the cache kept
            return
        task = asyncio.create_task(server.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    if operations is not None:
        loop.add_signal_handler(signal.SIGUSR1, operations.save_cache)
        loop.add_signal_handler(signal.SIGUSR2, operations.load_cache)
    try:
        await stop.wait()
    finally:
        for signum in (
            signal.SIGTERM,
            signal.SIGINT,
            signal.SIGHUP,
            signal.SIGUSR1,
            signal.SIGUSR2,
        ):
            loop.remove_signal_handler(signum)
        systemd.notify("STOPPING=1")
        await server.stop()


@app.command()
def auth(
    zone: Annotated[
        list[str], typer.Option("--zone", "-z", help="Zone file, or ORIGIN=FILE; repeatable.")
    ],
    listen: Annotated[
        list[str],
        typer.Option("--listen", "-l", help="IP:PORT to serve UDP and TCP on; repeatable."),
    ] = ["127.0.0.1:5300"],  # noqa: B006 - typer reads the default
    rrl: Annotated[
        bool, typer.Option(help="Response rate limiting on UDP (off by default).")
    ] = False,
    rrl_rate: Annotated[float, typer.Option(help="RRL: identical responses/s per /24.")] = 5.0,
    rrl_window: Annotated[float, typer.Option(help="RRL: seconds of debt kept.")] = 15.0,
    rrl_slip: Annotated[
        int, typer.Option(help="RRL: every Nth limited reply goes out truncated.")
    ] = 2,
    tcp_idle_timeout: Annotated[
        float, typer.Option(help="Seconds before an idle TCP connection is closed.")
    ] = 10.0,
    tcp_max_connections: Annotated[int, typer.Option(help="TCP connections served at once.")] = 256,
    ready_file: Annotated[
        Path | None, typer.Option(help="Write the bound addresses here once serving (for scripts).")
    ] = None,
    answer_delay: Annotated[
        float, typer.Option(help="Hold every answer this many seconds (a lab's race window).")
    ] = 0.0,
    query_log: Annotated[
        Path | None, typer.Option(help="Append one JSON line per query received (audits).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Serve zones authoritatively over UDP and TCP. SIGHUP reloads, SIGTERM stops."""
    configure(verbose)
    addresses = _addresses(listen)
    limiter = ResponseRateLimiter(RrlConfig(rrl_rate, rrl_window, rrl_slip)) if rrl else None
    network = RealNetwork()
    try:
        server = AuthServer(
            network,
            zone,
            addresses,
            rrl=limiter,
            tcp_limits=TcpLimits(tcp_idle_timeout, tcp_max_connections),
            answer_delay=answer_delay,
            query_log=query_log.open("a") if query_log is not None else None,
        )
    except (ZoneError, ValueError, OSError) as error:
        raise _fail(str(error)) from None
    try:
        run(_serve_until_signalled(server, ready_file))
    except OSError as error:
        raise _fail(_listen_error(error)) from None


@zone_app.command("sign")
def zone_sign(
    zone_file: Annotated[Path, typer.Argument(help="The unsigned master file.")],
    out: Annotated[
        Path | None, typer.Option(help="Signed file (default: ZONE_FILE.signed).")
    ] = None,
    ds_out: Annotated[
        Path | None, typer.Option(help="DS records for the parent (default: ZONE_FILE.ds).")
    ] = None,
    key_dir: Annotated[
        Path | None,
        typer.Option(help="KSK/ZSK PEM directory (default: keys/ beside the zone); reused."),
    ] = None,
    algorithm: Annotated[
        str, typer.Option(help=f"One of {', '.join(ALGORITHMS)}.")
    ] = "ECDSAP256SHA256",
    nsec3: Annotated[bool, typer.Option(help="Deny existence with NSEC3 instead of NSEC.")] = False,
    nsec3_iterations: Annotated[
        int, typer.Option(help="Extra NSEC3 iterations (RFC 9276: 0).")
    ] = 0,
    nsec3_salt: Annotated[str, typer.Option(help="NSEC3 salt in hex (RFC 9276: none).")] = "",
    nsec3_opt_out: Annotated[
        bool, typer.Option(help="NSEC3 opt-out for insecure delegations.")
    ] = False,
    lifetime_days: Annotated[int, typer.Option(help="Signature validity in days.")] = 30,
) -> None:
    """Sign a zone (KSK + ZSK) and write the DS to hand to the parent."""
    try:
        result = sign_zone_file(
            zone_file,
            out=out,
            ds_out=ds_out,
            key_dir=key_dir,
            algorithm=algorithm.upper(),
            nsec3=nsec3,
            nsec3_iterations=nsec3_iterations,
            nsec3_salt=nsec3_salt,
            nsec3_opt_out=nsec3_opt_out,
            lifetime_days=lifetime_days,
        )
    except (ZoneError, ValueError) as error:
        raise _fail(str(error)) from None
    print(f"signed zone: {result.signed_path}")
    print(f"DS for the parent ({result.ds_path}):")
    for record in result.ds_records:
        print(f"  {record}")
    print(f"key tags: KSK {result.key_tags['ksk']}, ZSK {result.key_tags['zsk']}")


Switch = Annotated[str | None, typer.Option(help="on or off")]
WORKER_CACHES = ("shared", "private")


def _resolver_settings(config: Path | None, **flags: object) -> Settings:
    try:
        return Settings.load(config, flags)
    except SettingsError as error:
        raise _fail(str(error)) from None


@app.command()
def serve(
    listen: Annotated[
        list[str], typer.Option("--listen", "-l", help="IP:PORT or [IPv6]:PORT; repeatable.")
    ] = [],  # noqa: B006
    config: Annotated[Path | None, typer.Option(help="TOML file with the same keys.")] = None,
    root_hints: Annotated[str | None, typer.Option(help="Root hints zone file (labs).")] = None,
    defenses: Annotated[
        str | None, typer.Option(help="Defense preset (default, 2008, no-...).")
    ] = None,
    outgoing_address: Annotated[
        list[str], typer.Option(help="Source IP of upstream queries.")
    ] = [],  # noqa: B006
    forward: Annotated[list[str], typer.Option(help="IP[,IP] or ZONE=IP[,IP]; repeatable.")] = [],  # noqa: B006
    trust_anchor_file: Annotated[str | None, typer.Option(help="DNSSEC trust anchor.")] = None,
    insecure: Annotated[list[str], typer.Option(help="Domain not validated.")] = [],  # noqa: B006
    qname_minimisation: Switch = None,
    ipv4: Switch = None,
    ipv6: Switch = None,
    harden_glue: Switch = None,
    query_localhost: Annotated[
        str | None, typer.Option(help="on: upstream servers on 127/8 may be asked (labs).")
    ] = None,
    min_ttl: Annotated[int | None, typer.Option(help="Lowest TTL kept in the cache.")] = None,
    max_ttl: Annotated[int | None, typer.Option(help="Highest TTL kept in the cache.")] = None,
    port_pool: Annotated[int | None, typer.Option(help="Source ports to use (0: all).")] = None,
    query_port: Annotated[
        int | None, typer.Option(help="Send every upstream query from this one port (labs).")
    ] = None,
    upstream_port: Annotated[int | None, typer.Option(help="Port of upstream servers.")] = None,
    zone_fetch_rate: Annotated[
        int | None,
        typer.Option(help="Upstream queries per second to one zone (0: no limit; 1000)."),
    ] = None,
    allow: Annotated[list[str], typer.Option(help="Client CIDR allowed; repeatable.")] = [],  # noqa: B006
    ready_file: Annotated[
        Path | None, typer.Option(help="Write bound addresses when ready.")
    ] = None,
    metrics: Annotated[
        str | None,
        typer.Option(
            help="Serve Prometheus metrics on http://IP:PORT/metrics (e.g. 127.0.0.1:9167)."
        ),
    ] = None,
    dnstap: Annotated[
        str | None,
        typer.Option(help="dnstap of client and upstream messages to FILE or unix:SOCKET."),
    ] = None,
    cache_file: Annotated[
        Path | None,
        typer.Option(help="Load the cache from FILE at start, save it at stop and on SIGUSR1."),
    ] = None,
    log_format: Annotated[str, typer.Option(help="Log lines as text or json.")] = "text",
    workers: Annotated[
        int, typer.Option(help="Resolver processes sharing each port (SO_REUSEPORT).")
    ] = 1,
    worker_cache: Annotated[
        str,
        typer.Option(
            help="With --workers: shared (replies one worker resolved are answered by all) "
            "or private (each worker resolves every name itself)."
        ),
    ] = "shared",
    shared_cache: Annotated[
        Path | None,
        typer.Option(hidden=True, help="Answer table file shared by workers (set by --workers)."),
    ] = None,
    reuse_port: Annotated[
        bool, typer.Option(help="Set SO_REUSEPORT: other processes may serve the same port.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the recursive resolver. SIGHUP reloads the settings keeping the cache,
    SIGUSR1 saves the cache file, SIGTERM answers in-flight queries and exits 0."""
    if log_format not in FORMATS:
        raise _fail(f"--log-format {log_format!r}: expected one of {', '.join(FORMATS)}")
    configure(verbose, log_format)
    flags: dict[str, object] = dict(
        listen=listen,
        root_hints=root_hints,
        defenses=defenses,
        outgoing_address=outgoing_address,
        forward=forward,
        trust_anchor_file=trust_anchor_file,
        insecure=insecure,
        qname_minimisation=qname_minimisation,
        ipv4=ipv4,
        ipv6=ipv6,
        harden_glue=harden_glue,
        query_localhost=query_localhost,
        min_ttl=min_ttl,
        max_ttl=max_ttl,
        port_pool=port_pool,
        query_port=query_port,
        upstream_port=upstream_port,
        zone_fetch_rate=zone_fetch_rate,
        allow=allow,
    )
    settings = _resolver_settings(config, **flags)
    try:
        metrics_address = parse_address(metrics) if metrics is not None else None
    except ValueError as error:
        raise _fail(f"--metrics {error}") from None
    if workers < 1:
        raise _fail("--workers: expected 1 or more")
    if worker_cache not in WORKER_CACHES:
        raise _fail(f"--worker-cache {worker_cache!r}: expected one of {', '.join(WORKER_CACHES)}")
    if workers > 1:
        if metrics is not None or dnstap is not None:
            # each worker would bind the same metrics port or write the same dnstap file
            raise _fail("--metrics and --dnstap need a single process (no --workers)")
        try:
            listen_addresses = settings.listen_addresses()
        except SettingsError as error:
            raise _fail(str(error)) from None
        serve_args = serve_args_from()
        shared = worker_cache == "shared"
        raise typer.Exit(run_workers(serve_args, workers, listen_addresses, ready_file, shared))
    network = RealNetwork()
    network.reuse_port = reuse_port
    try:
        frontend = settings.build(network.clock)
        server = ResolverServer(network, frontend, settings.listen_addresses())
    except SettingsError as error:
        raise _fail(str(error)) from None
    if shared_cache is not None and frontend.answers is not None:
        try:
            frontend.answers.shared = SharedAnswers.open(shared_cache)
        except SharedTableError as error:
            raise _fail(f"--shared-cache {error}") from None
    operations = Operations(
        server,
        network,
        OperationsConfig(metrics=metrics_address, dnstap=dnstap, cache_file=cache_file),
        settings=lambda: Settings.load(config, flags),
    )
    try:
        operations.prepare()
    except (OSError, DnstapError) as error:
        operations.close()
        raise _fail(str(error)) from None
    try:
        run(_serve_until_signalled(server, ready_file, operations))
    except OSError as error:
        raise _fail(_listen_error(error)) from None
    finally:
        operations.close()


@app.command()
def resolve(
    name: Annotated[str, typer.Argument(help="The name to resolve.")],
    rdtype: Annotated[str, typer.Argument(metavar="TYPE", help="Record type.")] = "A",
    root_hints: Annotated[str | None, typer.Option(help="Root hints zone file (labs).")] = None,
    defenses: Annotated[str | None, typer.Option(help="Defense preset.")] = None,
    query_localhost: Switch = None,
    upstream_port: Annotated[int | None, typer.Option(help="Port of upstream servers.")] = None,
    qname_minimisation: Switch = None,
    config: Annotated[Path | None, typer.Option(help="TOML file with serve's keys.")] = None,
    trust_anchor_file: Annotated[
        str | None, typer.Option(help="DNSSEC trust anchor (DS/DNSKEY lines).")
    ] = None,
    trace: Annotated[
        bool, typer.Option(help="Print every upstream exchange and validation step.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Resolve one name iteratively from the root and print the answer (like dig +trace)."""
    import dns.name
    import dns.rcode
    import dns.rdatatype

    settings = _resolver_settings(
        config,
        root_hints=root_hints,
        defenses=defenses,
        query_localhost=query_localhost,
        upstream_port=upstream_port,
        qname_minimisation=qname_minimisation,
        trust_anchor_file=trust_anchor_file,
    )
    try:
        qname = dns.name.from_text(name)
        qtype = dns.rdatatype.from_text(rdtype)
    except Exception as error:
        raise _fail(f"bad question {name} {rdtype}: {error}") from None
    network = RealNetwork()
    try:
        frontend = settings.build(network.clock)
    except SettingsError as error:
        raise _fail(str(error)) from None
    events: list[TraceEvent] = []
    driver = ExchangeDriver(network)
    answer = run(driver.run(frontend.resolver.resolve(qname, qtype, events)))
    result = {
        "question": f"{qname} {dns.rdatatype.to_text(qtype)}",
        "rcode": dns.rcode.to_text(answer.rcode),
        "answer": [line for r in answer.answer for line in r.to_text().splitlines()],
        "authority": [line for r in answer.authority for line in r.to_text().splitlines()],
        "ede": list(answer.ede) if answer.ede else None,
        "security": answer.security.value,
        "bogus": list(answer.bogus) if answer.bogus else None,
        "upstream_queries": driver.sent,
        "trace": [
            {
                "server": f"{e.server[0]}#{e.server[1]}" if e.server else e.role or None,
                "question": e.question,
                "outcome": e.outcome,
                "scrubbed": [{"record": r, "reason": why} for r, why in e.dropped],
            }
            for e in events
        ],
    }
    if as_json:
        print(json.dumps(result, indent=2))
        return
    if trace:
        for event in events:
            print(event.to_text())
        print()
    print(
        f";; {result['question']}: {result['rcode']}"
        + (f" (EDE {answer.ede[0]}: {answer.ede[1]})" if answer.ede else "")
        + f", DNSSEC {answer.security.value}"
        + (f" (EDE {answer.bogus[0]}: {answer.bogus[1]})" if answer.bogus else "")
    )
    for line in result["answer"] + result["authority"]:
        print(line)
    print(f";; {driver.sent} upstream queries")


@app.command()
def replay(
    paths: Annotated[list[Path], typer.Argument(help="Scenario files or folders of .rpl files.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the simulation.")] = 0,
) -> None:
    """Replay Deckard/testbound scenarios against our resolver on the simulated network."""
    import time

    from poisonproof.replay.corpus import replay as replay_paths

    started = time.perf_counter()
    try:
        results = replay_paths(list(paths), seed)
    except FileNotFoundError as error:
        raise _fail(str(error)) from None
    elapsed = time.perf_counter() - started
    passed = sum(1 for r in results if r.passed)
    if as_json:
        summary = {"scenarios": len(results), "passed": passed, "seconds": round(elapsed, 2)}
        print(json.dumps({"summary": summary, "results": [r.to_json() for r in results]}, indent=2))
    else:
        out = Console(highlight=False)
        for result in results:
            runs = ", ".join(o.label for o in result.outcomes)
            failure = result.first_failure
            if failure is None:
                out.print(f"[green]pass[/] {result.name} ({runs})")
            else:
                detail = escape(f"[{failure.label}] step {failure.step}: {failure.reason}")
                out.print(f"[red]FAIL[/] {result.name} {detail}")
        out.print(f"{passed} of {len(results)} scenarios passed in {elapsed:.1f}s")
    if passed != len(results):
        raise typer.Exit(code=1)


@app.command()
def demo(
    hierarchy: Annotated[
        bool, typer.Option(help="Instead: walk the authoritative lab hierarchy on loopback.")
    ] = False,
    base_port: Annotated[
        int, typer.Option(help="Port of the hierarchy (with --hierarchy).")
    ] = 5300,
    out_dir: Annotated[Path, typer.Option(help="Where the demo writes its records.")] = Path("out"),
) -> None:
    """The Kaminsky lab in one command (simulated network, no root needed)."""
    if hierarchy:
        from poisonproof.demo import run_demo as run_hierarchy

        configure(False)
        with contextlib.suppress(KeyboardInterrupt):
            run(run_hierarchy(base_port))
        return
    from poisonproof.lab.demo import run_demo as run_lab

    run_lab(out_dir)


@app.command()
def audit(
    target: Annotated[
        str,
        typer.Option(
            help="poisonproof, unbound, bind9, knot-resolver, pdns-recursor, dnsmasq (started "
            "in the lab), or IP:PORT of a resolver already running on loopback."
        ),
    ],
    weakened: Annotated[bool, typer.Option(help="Hold the target to one query port.")] = False,
    lookups: Annotated[int, typer.Option(help="Fresh names the target is made to look up.")] = 200,
    rate: Annotated[
        float, typer.Option(help="Attacker rate for the estimate and attacks.")
    ] = 20_000.0,
    window: Annotated[float, typer.Option(help="Race window in seconds.")] = 0.1,
    budget: Annotated[
        int, typer.Option(help="Forged replies per attack on the report card.")
    ] = 200_000,
    attacks: Annotated[bool, typer.Option(help="Run the attacks for the report card.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    html_file: Annotated[Path | None, typer.Option("--html", help="Write an HTML report.")] = None,
    probe_net: Annotated[
        str, typer.Option(help="IP:PORT targets: the probe servers' loopback /16 (127.x).")
    ] = "127.53",
    probe_port: Annotated[int, typer.Option(help="IP:PORT targets: the probe servers' port.")] = 53,
) -> None:
    """Audit a resolver's spoofability: in the real-packet lab (namespaces; root needed), or
    on loopback for IP:PORT (the resolver must reach the probe zone: the error says how)."""
    from poisonproof.lab.audit import main as audit_main

    argv = ["--target", target, "--lookups", str(lookups), "--rate", str(rate)]
    argv += ["--window", str(window), "--budget", str(budget)]
    argv += ["--weakened"] * weakened + ["--no-attacks"] * (not attacks) + ["--json"] * as_json
    if html_file is not None:
        argv += ["--html", str(html_file)]
    argv += ["--probe-net", probe_net, "--probe-port", str(probe_port)]
    code = audit_main(argv)
    if code:
        raise typer.Exit(code)


@cache_app.command("dump")
def cache_dump(
    pid: Annotated[int, typer.Option(help="PID of a `poisonproof serve` with --cache-file.")],
    out: Annotated[Path | None, typer.Option(help="Also copy the written file here.")] = None,
) -> None:
    """Make a running resolver write its cache file now (SIGUSR1) and wait for it."""
    from poisonproof.server.cache_control import CacheControlError
    from poisonproof.server.cache_control import dump as dump_running

    try:
        path = dump_running(pid, out)
    except (CacheControlError, OSError) as error:
        raise _fail(str(error)) from None
    print(path)


@cache_app.command("load")
def cache_load(
    cache_file: Annotated[Path, typer.Argument(help="A file written by a cache dump.")],
    pid: Annotated[int, typer.Option(help="PID of a `poisonproof serve` with --cache-file.")],
) -> None:
    """Merge a cache file into a running resolver's cache (it replaces the server's cache
    file, then SIGUSR2 makes the server load it; expired entries are skipped)."""
    from poisonproof.server.cache_control import CacheControlError
    from poisonproof.server.cache_control import load as load_running

    try:
        load_running(pid, cache_file)
    except (CacheControlError, OSError) as error:
        raise _fail(str(error)) from None


@cache_app.command("show")
def cache_show(
    cache_file: Annotated[Path, typer.Argument(help="A file written by serve --cache-file.")],
) -> None:
    """Print the live entries of a cache file (send SIGUSR1 to serve to write it now)."""
    try:
        lines = describe_cache_file(cache_file, time.time())
    except (CacheFileError, OSError, ValueError) as error:
        raise _fail(str(error)) from None
    for line in lines:
        print(line)


def main() -> None:
    app()
