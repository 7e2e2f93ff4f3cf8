"""``unity-sb3 env-executable NAME PATH``: write a launcher that acts like a Unity player build.

The launcher is a ``#!/bin/sh`` script that runs a built-in player with this interpreter and
passes its arguments through, so anything that starts Unity builds by path (mlagents-learn,
``UnityEnvironment(file_name=PATH)``, scripts) can start a stand-in instead.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

import unity_gym
from cli.command import Command
from unity_gym.players import UnknownPlayerError, get_player

# Finds where the interpreter imports unity_gym from when nothing is added to its path.
_PROBE = "import importlib.util as u; s = u.find_spec('unity_gym'); print(s.origin if s else '')"


def _package_root_if_not_importable() -> Path | None:
    """The folder to put on PYTHONPATH, or None if the interpreter finds this package anyway."""
    ours = Path(unity_gym.__file__).resolve()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _PROBE],
            cwd=Path("/"),
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        found = probe.stdout.strip()
        if found and Path(found).resolve() == ours:
            return None
    except (OSError, subprocess.SubprocessError):
        pass
    return ours.parents[1]


def launcher_script(player_name: str, python_path: Path | None) -> str:
    lines = [
        "#!/bin/sh",
        f"# Stand-in Unity player {player_name!r}, written by `unity-sb3 env-executable`.",
        "# Takes the arguments of a Unity player build (--mlagents-port, -logFile, ...).",
    ]
    if python_path is not None:
        lines.append(f'PYTHONPATH={shlex.quote(str(python_path))}${{PYTHONPATH:+:"$PYTHONPATH"}}')
        lines.append("export PYTHONPATH")
    command = [sys.executable, "-m", "unity_gym.players", player_name]
    lines.append(f'exec {" ".join(shlex.quote(part) for part in command)} "$@"')
    return "\n".join(lines) + "\n"


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="built-in player (see `unity-sb3 envs`)")
    parser.add_argument("path", type=Path, help="file to write (overwritten if it exists)")


def _run(args: argparse.Namespace) -> int:
    prog = "unity-sb3 env-executable"
    try:
        player = get_player(args.name)
    except UnknownPlayerError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    path: Path = args.path
    if path.is_dir():
        print(f"{prog}: error: {path} is a directory; give a file path", file=sys.stderr)
        return 1
    try:
        path.write_text(launcher_script(player.name, _package_root_if_not_importable()))
        path.chmod(0o755)
    except OSError as err:
        print(f"{prog}: error: cannot write {path}: {err.strerror or err}", file=sys.stderr)
        return 1
    print(f"Wrote {path}: runs the built-in player {player.name} like a Unity build.")
    return 0


COMMAND = Command(
    name="env-executable",
    help="write an executable that runs a built-in player like a Unity build",
    description=__doc__.splitlines()[0] if __doc__ else "",
    add_arguments=_add_arguments,
    run=_run,
)
