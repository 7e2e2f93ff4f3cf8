"""``unity-sb3 translate``: show, per behavior, the SB3 model ``learn`` would build.

Takes the same arguments as ``learn``. It starts the players briefly (the plan depends on each
behavior's observations, actions and number of agents), prints the SB3 class, policy,
constructor arguments, wrappers and every setting that is not honoured exactly, and closes them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cli.command import Command
from cli.config_errors import ConfigError
from cli.curriculum_driver import check_criteria_behaviors
from cli.learn_arguments import add_learn_arguments, resolve_run_options
from cli.sb3_translation import TranslationError, plans_for
from cli.training_config import RunOptions
from cli.training_environment import curriculum_from_options, run_seed, worker_settings
from sb3_ext.curriculum import Curriculum, describe_value
from unity_gym.exception import UnityException
from unity_gym.lockstep_behaviors import LockstepBehaviors


def translate(
    options: RunOptions, log_folder: Path | None = None, curriculum: Curriculum | None = None
) -> list[dict[str, Any]]:
    """The plan of every behavior of the scene ``options`` point at (the curriculum's
    criteria are checked against the scene's behaviors)."""
    if curriculum is None:
        curriculum, _ = curriculum_from_options(options, run_seed(options))
    settings = worker_settings(options, log_folder or Path("."), lambda _: [], curriculum.values())
    if log_folder is None:
        settings.log_folder = None
    lockstep = LockstepBehaviors(settings, int(options.env_settings.num_envs))
    try:
        plans = plans_for(options, lockstep)
        check_criteria_behaviors(curriculum, [entry.name for entry in plans])
        return [{**entry.plan.describe(), "teams": entry.behaviors} for entry in plans]
    finally:
        lockstep.close()


def _as_text(plans: list[dict[str, Any]]) -> str:
    lines: list[str] = []
    for plan in plans:
        lines.append(f"{plan['behavior']}: {plan['class']}({plan['policy']!r}, env, ...)")
        lines.append(f"  agents: {plan['agents']}")
        if len(plan["teams"]) > 1:
            lines.append(f"  teams: {', '.join(plan['teams'])}")
        lines.append(f"  learn(total_timesteps={plan['learn']['total_timesteps']})")
        for key, value in plan["kwargs"].items():
            lines.append(f"  {key} = {json.dumps(value)}")
        if plan["reward_scale"] != 1.0:
            lines.append(f"  rewards scaled by {plan['reward_scale']} (extrinsic strength)")
        if plan["observation_normalization"]:
            lines.append(f"  wrapped in {json.dumps(plan['observation_normalization'])}")
        if plan["entropy_schedule"]:
            lines.append(f"  ent_coef schedule = {json.dumps(plan['entropy_schedule'])}")
        for name, signal in plan["reward_signals"].items():
            lines.append(f"  reward signal {name} = {json.dumps(signal)}")
        if plan["reward_signal_value_heads"]:
            heads = plan["reward_signal_value_heads"]
            lines.append(f"  reward signal value heads = {json.dumps(heads)}")
        if plan["behavioral_cloning"]:
            lines.append(f"  behavioral cloning = {json.dumps(plan['behavioral_cloning'])}")
        if plan["self_play"]:
            lines.append(f"  self-play = {json.dumps(plan['self_play'])}")
        for note in plan["notes"]:
            lines.append(f"  note: {note}")
    return "\n".join(lines)


def _parameters_text(curriculum: Curriculum, notes: list[str]) -> str:
    """The environment parameters as the players will get them, lesson by lesson."""
    if not curriculum.lessons:
        return ""
    lines = ["environment parameters (sent to every player; see docs/curriculum.md):"]
    for parameter, chain in curriculum.lessons.items():
        if len(chain) == 1:
            lines.append(f"  {parameter}: {describe_value(chain[0].value)}")
            continue
        lines.append(f"  {parameter}: {len(chain)} lessons")
        for lesson in chain:
            criteria = lesson.completion_criteria
            until = ""
            if criteria is not None:
                until = f" until {criteria.measure} of {criteria.behavior} > {criteria.threshold}"
                if criteria.min_lesson_length:
                    until += f", after at least {criteria.min_lesson_length} episodes"
                if criteria.require_reset:
                    until += ", then a reset of every player"
            lines.append(f"    {lesson.name}: {describe_value(lesson.value)}{until}")
    lines.extend(f"  note: {note}" for note in notes)
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (text)"
    )
    add_learn_arguments(parser)


def run(args: argparse.Namespace) -> int:
    try:
        options = resolve_run_options(args)
        if not options.env_settings.env_path:
            raise ConfigError(
                "translate needs the scene's behaviors: pass --env (a player build or "
                "builtin:NAME) or set env_settings.env_path in the configuration."
            )
        curriculum, notes = curriculum_from_options(options, run_seed(options))
        plans = translate(options, curriculum=curriculum)
    except (ConfigError, TranslationError, UnityException) as err:
        print(f"unity-sb3 translate: {err}", file=sys.stderr)
        return 1
    if args.format == "json":
        print(json.dumps(plans, indent=2))
    else:
        print(_as_text(plans))
        parameters = _parameters_text(curriculum, notes)
        if parameters:
            print(parameters)
    return 0


COMMAND = Command(
    name="translate",
    help="Print the SB3 class and arguments learn would use for each behavior.",
    add_arguments=add_arguments,
    run=run,
)
