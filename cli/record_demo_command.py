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
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cli.command import Command
from unity_gym.base_env import ActionTuple, BehaviorSpec, DecisionSteps, matching_behaviors
from unity_gym.demo_writer import DemoSummary, DemoWriter
from unity_gym.players.model_policy import OnnxPolicy

Policy = Callable[[DecisionSteps], ActionTuple]
PROG = "unity-sb3 record-demo"


class RecordError(Exception):
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
    except RecordError as err:
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

    Raises :class:`RecordError` for unusable input, before anything is started when it can.
    """
    from unity_gym import UnityEnvironment
    from unity_gym.exception import UnityException

    _check_arguments(env, output, episodes, model, heuristic, num_areas)
    player = _builtin_player(env)
    fallback: Policy | None = None
    if player is not None:
        from unity_gym.players.heuristics import HEURISTICS, heuristic_for

        fallback = HEURISTICS.get(player)
        if heuristic:
            try:
                fallback = heuristic_for(player)
            except KeyError as err:
                raise RecordError(f"{env}: {err}.") from None
    elif heuristic:
        raise RecordError(
            f"--heuristic: {env!r} is not a built-in player, and heuristics exist only for "
            "built-in players (builtin:NAME, see `unity-sb3 envs`); drive a Unity build with "
            "a trained model instead (--model FILE.onnx)."
        )
    try:
        unity = UnityEnvironment(env, seed=seed, num_areas=num_areas, no_graphics=True)
    except UnityException as err:
        raise RecordError(f"could not start {env!r}: {err}") from None
    try:
        unity.reset()
        specs = dict(unity.behavior_specs)
        name = _choose_behavior(env, specs, behavior)
        policy = _model_policy(model, specs[name], name) if model is not None else fallback
        assert policy is not None  # --heuristic found one above, or --model was given
        rng = np.random.default_rng(seed)
        with DemoWriter(output, specs[name], behavior_name=name) as writer:
            while writer.episodes_completed < episodes:
                for other, spec in specs.items():
                    decisions, terminals = unity.get_steps(other)
                    drive = policy if other == name else fallback
                    if isinstance(drive, _ModelPolicy):
                        drive.end_episodes(terminals.agent_id)
                    actions = None
                    if len(decisions):
                        actions = (
                            drive(decisions)
                            if drive is not None
                            else spec.action_spec.random_action(len(decisions), rng)
                        )
                        unity.set_actions(other, actions)
                    if other == name:
                        writer.add_steps(decisions, terminals, actions, max_episodes=episodes)
                if writer.episodes_completed < episodes:
                    unity.step()
            summary = writer.close()
    except UnityException as err:
        raise RecordError(f"{env} stopped while recording: {err}") from None
    finally:
        unity.close()
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


def _builtin_player(env: str) -> str | None:
    """The registered name of ``builtin:NAME``; None for a Unity build path."""
    from unity_gym.launcher import builtin_player_name
    from unity_gym.players import UnknownPlayerError, get_player

    name = builtin_player_name(env)
    if name is None:
        if not Path(env).exists():
            raise RecordError(
                f"{env!r} is neither a built-in player (builtin:NAME; `unity-sb3 envs` lists "
                "them) nor an existing Unity build; check the spelling or the path."
            )
        return None
    try:
        return get_player(name).name
    except UnknownPlayerError as err:
        raise RecordError(f"{env!r}: {err} (write it as builtin:NAME).") from None


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


def _model_policy(model: Path, spec: BehaviorSpec, behavior: str) -> Policy:
    """A policy running ``model`` with onnxruntime, after checking it fits ``spec``."""
    try:
        from sb3_ext.onnx_interface import check_against_spec, inspect_onnx
        from unity_gym.players.model_policy import ModelPolicyError
    except ImportError:
        raise RecordError(
            "--model needs the onnx extra (onnx, onnxruntime): pip install 'unity-sb3[onnx]'."
        ) from None
    try:
        problems = check_against_spec(inspect_onnx(model), spec)
    except Exception as err:  # onnx raises several types for files that are not models
        raise RecordError(f"--model {model}: not a readable .onnx model ({err}).") from None
    if problems:
        raise RecordError(
            f"--model {model} does not fit the behavior {behavior} "
            f"({'; '.join(problems)}). Give a model trained for this behavior; "
            f"`unity-sb3 inspect-model {model}` shows what it expects."
        )
    try:
        return _ModelPolicy(OnnxPolicy(model, spec), spec)
    except ModelPolicyError as err:
        raise RecordError(f"--model {model}: {err}") from None


class _ModelPolicy:
    """Feeds the low-level API's steps to an :class:`OnnxPolicy`, in the players' formats.

    Agents keep a memory slot by agent id; :meth:`end_episodes` makes their next decision
    start from zero memory (recurrent models), as a new episode does in Unity.
    """

    def __init__(self, onnx: OnnxPolicy, spec: BehaviorSpec) -> None:
        self.onnx = onnx
        self.spec = spec
        self.slots: dict[int, int] = {}
        self.ended: set[int] = set()

    def end_episodes(self, agent_ids: np.ndarray) -> None:
        self.ended.update(agent_ids.tolist())

    def __call__(self, steps: DecisionSteps) -> ActionTuple:
        ids = steps.agent_id.tolist()
        new_episode = np.array([a not in self.slots or a in self.ended for a in ids], bool)
        self.ended.difference_update(ids)
        agents = np.array([self.slots.setdefault(a, len(self.slots)) for a in ids], np.int64)
        observations = [  # visual: float (k, C, H, W) -> uint8 (k, H, W, C), as players render
            np.moveaxis(np.rint(obs * 255.0).astype(np.uint8), 1, -1) if s.is_visual else obs
            for obs, s in zip(steps.obs, self.spec.observation_specs, strict=True)
        ]
        forbidden = np.concatenate(steps.action_mask, axis=1) if steps.action_mask else None
        continuous, discrete = self.onnx.act(
            observations, forbidden, agents, new_episode, len(self.slots)
        )
        return ActionTuple(continuous=continuous, discrete=discrete)


COMMAND = Command(
    name="record-demo",
    help="Record a Unity-format .demo file while a model or a heuristic plays.",
    description=__doc__.splitlines()[0] if __doc__ else "",
    add_arguments=add_arguments,
    run=run,
)
