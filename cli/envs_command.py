"""``unity-sb3 envs``: list the built-in stand-in players, their behaviors' specs and the
environment parameters they read."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cli.command import Command
from unity_gym.base_env import ActionSpec
from unity_gym.players import BehaviorInfo, EnvironmentParameterInfo, PlayerInfo, list_players


def describe_actions(spec: ActionSpec) -> str:
    parts = []
    if spec.continuous_size:
        parts.append(f"{spec.continuous_size} continuous")
    if spec.discrete_size:
        parts.append(f"discrete branches {spec.discrete_branches}")
    return " + ".join(parts) or "none"


def _behavior_lines(behavior: BehaviorInfo) -> list[str]:
    lines = [
        f"  behavior {behavior.name}: {behavior.agents_per_area} agent(s) per area, decision "
        f"period {behavior.decision_period}, max step {behavior.max_step or 'unlimited'}"
    ]
    for index, obs in enumerate(behavior.spec.observation_specs):
        kind = "visual, PNG" if obs.is_visual else "vector"
        lines.append(f"    observation {index}: {obs.shape} {kind} ({obs.name})")
    lines.append(f"    actions: {describe_actions(behavior.spec.action_spec)}")
    return lines


def _parameter_lines(parameters: tuple[EnvironmentParameterInfo, ...]) -> list[str]:
    if not parameters:
        return ["  environment parameters: none"]
    return [
        f"  environment parameter {p.name} (default {p.default:g}): {p.description}; "
        f"read at {p.read_at}"
        for p in parameters
    ]


def _as_dict(player: PlayerInfo) -> dict[str, Any]:
    return {
        "name": player.name,
        "description": player.description,
        "behaviors": [
            {
                "name": b.name,
                "agents_per_area": b.agents_per_area,
                "decision_period": b.decision_period,
                "max_step": b.max_step,
                "observations": [
                    {"shape": list(o.shape), "name": o.name, "visual": o.is_visual}
                    for o in b.spec.observation_specs
                ],
                "continuous_actions": b.spec.action_spec.continuous_size,
                "discrete_branches": list(b.spec.action_spec.discrete_branches),
            }
            for b in player.behaviors
        ],
        "environment_parameters": [
            {
                "name": p.name,
                "default": p.default,
                "description": p.description,
                "read_at": p.read_at,
            }
            for p in player.environment_parameters
        ],
    }


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def _run(args: argparse.Namespace) -> int:
    players = list_players()
    if args.json:
        print(json.dumps([_as_dict(p) for p in players], indent=2))
        return 0
    print('Built-in players (UnityEnvironment(file_name="builtin:NAME")):')
    for player in players:
        print(f"\n{player.name} - {player.description}")
        for behavior in player.behaviors:
            print("\n".join(_behavior_lines(behavior)))
        print("\n".join(_parameter_lines(player.environment_parameters)))
    return 0


COMMAND = Command(
    name="envs",
    help="list the built-in stand-in players, their behavior specs and environment parameters",
    add_arguments=_add_arguments,
    run=_run,
)
