"""``unity-sb3 inspect-model``: the interface of any ML-Agents-style ``.onnx`` model.

Prints inputs, outputs, constants and opset of a model (ours or mlagents-learn's) and, given a
behavior spec — a built-in player's (``--env builtin:NAME``) or a ``.demo`` file's
(``--demo FILE``) — checks that the model fits it; exit code 1 lists the mismatches.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.command import Command
from unity_gym.base_env import BehaviorSpec, matching_behaviors


class InspectError(Exception):
    """A spec source that cannot be used, with what to give instead."""


def builtin_spec(env: str, behavior: str | None) -> BehaviorSpec:
    """The spec of a built-in player's behavior, read from the registry (nothing started)."""
    from unity_gym.players import get_player, list_players

    name = env.removeprefix("builtin:")
    if not env.startswith("builtin:"):
        raise InspectError(
            f"--env {env!r}: only built-in players (builtin:NAME) can be inspected without "
            "running them; for a Unity scene give a .demo file recorded in it with --demo."
        )
    try:
        player = get_player(name)
    except (KeyError, ValueError):
        names = ", ".join(p.name for p in list_players())
        raise InspectError(f"No built-in player {name!r}; there are: {names}.") from None
    tasks = {task.behavior_name: task.behavior_spec for task in player.tasks}
    if behavior is None and len(tasks) == 1:
        return next(iter(tasks.values()))
    matches = matching_behaviors(behavior or "", tasks)
    if len(matches) != 1:
        raise InspectError(f"Choose one of {name}'s behaviors with --behavior: {', '.join(tasks)}.")
    return tasks[matches[0]]


def demo_spec(path: Path) -> BehaviorSpec:
    from unity_gym.demo import load_demonstration

    return load_demonstration(path).behavior_spec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="the .onnx file")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--env", help="check against a built-in player's spec: builtin:NAME")
    source.add_argument("--demo", type=Path, help="check against a .demo file's spec")
    parser.add_argument("--behavior", help="behavior of a multi-behavior built-in player")


def run(args: argparse.Namespace) -> int:
    try:
        from sb3_ext.onnx_interface import check_against_spec, inspect_onnx
    except ImportError:
        print(
            "unity-sb3 inspect-model needs the onnx package: pip install 'unity-sb3[onnx]'.",
            file=sys.stderr,
        )
        return 1
    try:
        if not args.model.is_file():
            raise InspectError(f"{args.model} does not exist.")
        try:
            interface = inspect_onnx(args.model)
        except Exception as err:  # onnx raises several types for truncated or corrupt files
            reason = str(err).strip() or type(err).__name__
            raise InspectError(
                f"{args.model} is not a readable ONNX model ({reason}). "
                "Give an .onnx file exported by unity-sb3 or mlagents-learn; if this one was cut "
                "short or damaged in a copy, copy or export it again."
            ) from None
        spec = None
        if args.env:
            spec = builtin_spec(args.env, args.behavior)
        elif args.demo:
            spec = demo_spec(args.demo)
    except Exception as err:  # onnx and the demo reader raise several types for bad files
        print(f"unity-sb3 inspect-model: {err}", file=sys.stderr)
        return 1
    print(f"{args.model}:")
    for line in interface.describe():
        print(f"  {line}")
    if spec is None:
        return 0
    problems = check_against_spec(interface, spec)
    source = args.env or args.demo
    if problems:
        print(f"Does not fit {source}:")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print(f"Fits {source}.")
    return 0


COMMAND = Command(
    name="inspect-model",
    help="Print an .onnx model's interface and check it against a behavior spec.",
    add_arguments=add_arguments,
    run=run,
)
