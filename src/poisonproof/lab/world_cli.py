"""`poisonproof lab world up|down`: the lab world as a background process (typer + rich).

Owns: the options of `up` and `down` (`up --signed [--unsigned ZONE]... [--break
ZONE=expired|missing-ds|wrong-key]...` for a signed world), printing where the world is (a
rich table, or JSON with --json), and turning `WorldError`s into one clear message and
exit code 2.
Must never: start or stop servers itself; `poisonproof.lab.world` does.
Also runnable as `python -m poisonproof.lab.world_cli up|down ...`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from poisonproof.lab.signed_world import Breakage, parse_breakage
from poisonproof.lab.world import (
    DEFAULT_ADDRESS_BASE,
    DEFAULT_PORT,
    WorldError,
    default_state_dir,
    world_down,
    world_up,
)

world_app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="The lab world: root, TLDs and zones served by our authoritative servers on "
    "127.0.0.x, for resolvers to iterate through.",
)
out = Console()
err = Console(stderr=True)

StateDir = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="Where the state file, root hints and log live "
        "(default: $XDG_RUNTIME_DIR/poisonproof-world or /tmp/poisonproof-world-$UID).",
    ),
]


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def _print_state(state: dict[str, Any], already_up: bool) -> None:
    verb = "already up" if already_up else "up"
    table = Table(title=f"lab world {verb}: pid {state['pid']}, port {state['port']}")
    table.add_column("server")
    table.add_column("address")
    table.add_column("zones")
    for server in state["servers"]:
        table.add_row(
            server["name"],
            f"{server['address']}#{server['port']}",
            " ".join(z["origin"] for z in server["zones"]),
        )
    out.print(table)
    out.print(f"root servers: {' '.join(state['root_servers'])}", highlight=False)
    out.print(f"root hints:   {state['root_hints']}", highlight=False)
    if state.get("signed"):
        out.print(f"trust anchor: {state['trust_anchor']}", highlight=False)
        out.print(f"  for delv:   {state['trust_anchor_bind']}", highlight=False)
        for zone in state["dnssec"]["zones"]:
            how = f"{zone['algorithm']} {zone['denial']}" if zone["algorithm"] else "unsigned"
            if zone["breakage"]:
                how += f", broken: {zone['breakage']}"
            out.print(f"  {zone['origin']:<18} {how} -> {zone['expected']}", highlight=False)
    out.print(f"state file:   {state['state_file']}", highlight=False)
    out.print(f"log:          {state['log']}", highlight=False)
    down = "poisonproof lab world down"
    if Path(state["state_dir"]) != default_state_dir().absolute():
        down += f" --state-dir {state['state_dir']}"
    out.print(f"stop with:    {down}", highlight=False)


@world_app.command()
def up(
    port: Annotated[
        int, typer.Option(help="The port every server listens on (resolvers use 53).")
    ] = DEFAULT_PORT,
    state_dir: StateDir = None,
    address_base: Annotated[
        str, typer.Option(help="Servers get base + 2, + 3, ... (must stay in 127.0.0.0/8).")
    ] = DEFAULT_ADDRESS_BASE,
    as_json: Annotated[bool, typer.Option("--json", help="Print the state as JSON.")] = False,
    signed: Annotated[
        bool,
        typer.Option(
            "--signed",
            help="Sign every zone (DNSSEC: DS at each parent) and write the root trust anchor.",
        ),
    ] = False,
    unsigned: Annotated[
        list[str] | None,
        typer.Option(
            "--unsigned",
            metavar="ZONE",
            help="Leave ZONE unsigned, with no DS at its parent: insecure (implies --signed; "
            "repeatable).",
        ),
    ] = None,
    breaks: Annotated[
        list[str] | None,
        typer.Option(
            "--break",
            metavar="ZONE=KIND",
            help="Break ZONE's chain of trust: expired (bogus), missing-ds (insecure, not "
            "bogus), wrong-key (bogus) (implies --signed; repeatable).",
        ),
    ] = None,
) -> None:
    """Start the lab world in the background (or show the one already running)."""
    broken: dict[str, Breakage] = {}
    try:
        for text in breaks or []:
            zone, breakage = parse_breakage(text)
            if zone in broken and broken[zone] is not breakage:
                raise ValueError(f"{zone} is broken twice ({broken[zone].value}, {text})")
            broken[zone] = breakage
    except ValueError as error:
        raise _fail(str(error)) from None
    try:
        result = world_up(
            state_dir, port, address_base, signed=signed, unsigned=unsigned or (), broken=broken
        )
    except WorldError as error:
        raise _fail(str(error)) from None
    state = result.state
    if result.already_up and state.get("port") != port:
        err.print(
            f"note: the running world listens on port {state.get('port')}, not {port}; "
            "run `down` first to change it",
            highlight=False,
        )
    wanted_signed = signed or bool(unsigned) or bool(broken)
    if result.already_up and bool(state.get("signed")) != wanted_signed:
        how = "signed" if state.get("signed") else "unsigned"
        err.print(
            f"note: the running world is {how}; run `down` first to change it",
            highlight=False,
        )
    if as_json:
        print(json.dumps({**state, "already_up": result.already_up}, indent=2))
    else:
        _print_state(state, result.already_up)


@world_app.command()
def down(state_dir: StateDir = None) -> None:
    """Stop the lab world started by `up` and remove its state (fine if it is not up)."""
    try:
        result = world_down(state_dir)
    except WorldError as error:
        raise _fail(str(error)) from None
    out.print(result.message, highlight=False)


if __name__ == "__main__":
    world_app()
