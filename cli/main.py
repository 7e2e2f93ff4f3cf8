"""Entry point of the ``unity-sb3`` console script.

Subcommands register in :data:`COMMANDS` by name, one-line help and module; each module keeps
its arguments and logic and exposes a ``COMMAND`` (:class:`cli.command.Command`). Only the
module of the command being run is imported, so ``unity-sb3 envs`` does not load torch and a
protocol-only install (no SB3, no pydantic) still runs the commands it needs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

from cli.command import Command
from unity_gym import __version__

# name -> (module holding COMMAND, one-line help shown by ``unity-sb3 --help``)
COMMANDS: dict[str, tuple[str, str]] = {
    "learn": (
        "cli.learn_command",
        "Train the behaviors of a Unity scene (or a built-in player) with SB3.",
    ),
    "translate": (
        "cli.translate_command",
        "Print the SB3 class and arguments learn would use for each behavior.",
    ),
    "upgrade-config": (
        "cli.upgrade_config_command",
        "Convert an old ML-Agents training configuration to the current format.",
    ),
    "export": (
        "cli.export_command",
        "Export a checkpoint of a learn run as an .onnx model for Unity.",
    ),
    "inspect-model": (
        "cli.inspect_model_command",
        "Print an .onnx model's interface and check it against a behavior spec.",
    ),
    "record-demo": (
        "cli.record_demo_command",
        "Record a Unity-format .demo file while a model or a heuristic plays.",
    ),
    "match": (
        "cli.match_command",
        "Play saved policies against each other on a scene and print win/draw/loss.",
    ),
    "envs": ("cli.envs_command", "List the built-in players with their behaviors and specs."),
    "env-executable": (
        "cli.env_executable_command",
        "Write a launcher that starts a built-in player like a Unity player build.",
    ),
}


def load_command(name: str) -> Command:
    """Import the module of subcommand ``name`` and return its ``COMMAND``."""
    command: Command = importlib.import_module(COMMANDS[name][0]).COMMAND
    return command


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``selected``'s arguments are declared (its module is imported)."""
    parser = argparse.ArgumentParser(
        prog="unity-sb3",
        description="Train Unity ML-Agents environments with Stable-Baselines3.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in COMMANDS.items():
        if name != selected:
            subcommands.add_parser(name, help=help_text)
            continue
        command = load_command(name)
        sub = subcommands.add_parser(
            name, help=help_text, description=command.description or command.help
        )
        command.add_arguments(sub)
        sub.set_defaults(run=command.run)
    return parser


def _selected_command(argv: Sequence[str]) -> str | None:
    for argument in argv:
        if argument in COMMANDS:
            return argument
        if not argument.startswith("-"):
            return None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    with _stop_signals():
        try:
            # Importing a command's module (torch, SB3) takes seconds: Ctrl+C or SIGTERM then
            # ends the command quietly; commands install their own handling once they run.
            args = build_parser(_selected_command(arguments)).parse_args(arguments)
            return int(args.run(args))
        except BrokenPipeError:
            # The reader (e.g. `| head`) stopped early; silence the flush at interpreter exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        except KeyboardInterrupt:
            print("unity-sb3: interrupted.", file=sys.stderr)
            return 130


@contextmanager
def _stop_signals() -> Iterator[None]:
    """SIGTERM (``kill``) stops the command as Ctrl+C does (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    raise SystemExit(main())
