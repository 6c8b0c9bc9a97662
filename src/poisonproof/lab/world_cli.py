"""`poisonproof lab world up|down`: the lab world as a background process (typer + rich).

Owns: the options of `up` and `down`, printing where the world is (a rich table, or
JSON with --json), and turning `WorldError`s into one clear message and exit code 2.
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
) -> None:
    """Start the lab world in the background (or show the one already running)."""
    try:
        result = world_up(state_dir, port, address_base)
    except WorldError as error:
        raise _fail(str(error)) from None
    state = result.state
    if result.already_up and state.get("port") != port:
        err.print(
            f"note: the running world listens on port {state.get('port')}, not {port}; "
            "run `down` first to change it",
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
