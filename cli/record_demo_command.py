"""``unity-sb3 record-demo``: record a Unity-format ``.demo`` file while a policy plays.

The environment (a built-in player ``builtin:NAME`` or a Unity build's path) runs through the
low-level API; a trained ``.onnx`` model (``--model``, run with onnxruntime) or the player's
built-in heuristic (``--heuristic``, :mod:`unity_gym.players.heuristics`) chooses the actions
of one behavior, and :class:`unity_gym.demo_writer.DemoWriter` records exactly ``--episodes``
complete episodes of its agents, each episode's records together, as Unity's recorder does.
Other behaviors of the scene (the opposing team in Tennis) are played by the heuristic when
the player has one, else at random.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.command import Command
from cli.scene_policies import (
    InputError,
    Policy,
    RandomPolicy,
    ScriptedPolicy,
    builtin_player,
    onnx_policy,
    open_scene,
)
from unity_gym.base_env import BehaviorSpec, matching_behaviors
from unity_gym.demo_writer import DemoSummary, DemoWriter

PROG = "unity-sb3 record-demo"


class RecordError(InputError):
    """Input the command cannot use; the message says which and what to do instead."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("env", help="builtin:NAME (see `unity-sb3 envs`) or a Unity build's path")
    policy = parser.add_mutually_exclusive_group(required=True)
    policy.add_argument("--model", type=Path, help="an .onnx model that drives the behavior")
    policy.add_argument(
        "--heuristic", action="store_true", help="drive it with the built-in player's heuristic"
    )
    parser.add_argument("--episodes", type=int, required=True, help="complete episodes to record")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the .demo file to write")
    parser.add_argument("--behavior", help="behavior to record (needed when there are several)")
    parser.add_argument("--seed", type=int, default=0, help="environment seed (default 0)")
    parser.add_argument("--num-areas", type=int, default=1, help="training areas (default 1)")


def run(args: argparse.Namespace) -> int:
    try:
        summary, behavior = record(
            args.env,
            args.output,
            args.episodes,
            model=args.model,
            heuristic=args.heuristic,
            behavior=args.behavior,
            seed=args.seed,
            num_areas=args.num_areas,
        )
    except InputError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    print(
        f"Wrote {summary.path}: {summary.number_episodes} episodes, {summary.number_steps} "
        f"steps of {behavior}, mean episode reward {summary.mean_reward:.4f}."
    )
    return 0


def record(
    env: str,
    output: Path,
    episodes: int,
    model: Path | None = None,
    heuristic: bool = False,
    behavior: str | None = None,
    seed: int = 0,
    num_areas: int = 1,
) -> tuple[DemoSummary, str]:
    """Record ``episodes`` complete episodes to ``output``; returns the summary and behavior.

    Raises :class:`~cli.scene_policies.InputError` (:class:`RecordError` among them) for
    unusable input, before anything is started when it can.
    """

    _check_arguments(env, output, episodes, model, heuristic, num_areas)
    player = builtin_player(env)
    scripted = None
    if player is not None:
        from unity_gym.players.heuristics import HEURISTICS, heuristic_for

        scripted = HEURISTICS.get(player)
        if heuristic:
            try:
                scripted = heuristic_for(player)
            except KeyError as err:
                raise RecordError(f"{env}: {err}.") from None
    elif heuristic:
        raise RecordError(
            f"--heuristic: {env!r} is not a built-in player, and heuristics exist only for "
            "built-in players (builtin:NAME, see `unity-sb3 envs`); drive a Unity build with "
            "a trained model instead (--model FILE.onnx)."
        )
    with open_scene(env, seed, num_areas, RecordError, "while recording") as unity:
        specs = dict(unity.behavior_specs)
        name = _choose_behavior(env, specs, behavior)
        # Other behaviors: the heuristic when the player has one, else random actions.
        policies: dict[str, Policy] = {
            other: ScriptedPolicy(scripted) if scripted else RandomPolicy(spec, seed + i)
            for i, (other, spec) in enumerate(specs.items())
        }
        if model is not None:
            policies[name] = onnx_policy(model, specs[name], name, f"--model {model}")
        with DemoWriter(output, specs[name], behavior_name=name) as writer:
            while writer.episodes_completed < episodes:
                for other in specs:
                    decisions, terminals = unity.get_steps(other)
                    policies[other].end_episodes(terminals.agent_id)
                    actions = None
                    if len(decisions):
                        actions = policies[other](decisions)
                        unity.set_actions(other, actions)
                    if other == name:
                        writer.add_steps(decisions, terminals, actions, max_episodes=episodes)
                if writer.episodes_completed < episodes:
                    unity.step()
            summary = writer.close()
    return summary, name


def _check_arguments(
    env: str,
    output: Path,
    episodes: int,
    model: Path | None,
    heuristic: bool,
    num_areas: int,
) -> None:
    if episodes < 1:
        raise RecordError(
            f"--episodes {episodes}: record at least one episode (for example --episodes 20); "
            "only complete episodes are written."
        )
    if num_areas < 1:
        raise RecordError(f"--num-areas {num_areas}: give 1 or more training areas.")
    if output.suffix != ".demo":
        raise RecordError(
            f"-o {output}: the file name must end in .demo (ML-Agents' loaders skip other "
            f"files); for example -o {output.with_suffix('.demo')}."
        )
    if not output.parent.is_dir():
        raise RecordError(
            f"-o {output}: the directory {output.parent} does not exist; create it first."
        )
    if model is not None and not model.is_file():
        raise RecordError(
            f"--model {model}: the file does not exist; give the .onnx file that `unity-sb3 "
            "export` or mlagents-learn wrote (e.g. results/<run-id>/<behavior>.onnx)."
        )
    del env, heuristic  # checked once the player is known


def _choose_behavior(env: str, specs: dict[str, BehaviorSpec], behavior: str | None) -> str:
    if behavior is None:
        if len(specs) == 1:
            return next(iter(specs))
        raise RecordError(
            f"{env} has several behaviors ({', '.join(specs)}); choose the one to record "
            "with --behavior NAME."
        )
    matches = matching_behaviors(behavior, specs)
    if len(matches) != 1:
        raise RecordError(
            f"--behavior {behavior}: {env} has no single behavior of that name; its behaviors "
            f"are {', '.join(specs)}."
        )
    return matches[0]


COMMAND = Command(
    name="record-demo",
    help="Record a Unity-format .demo file while a model or a heuristic plays.",
    description=__doc__.splitlines()[0] if __doc__ else "",
    add_arguments=add_arguments,
    run=run,
)
