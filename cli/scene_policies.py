"""Policies that act for one behavior of a scene driven through the low-level API.

Commands that play a scene themselves (``record-demo``, ``match``) give each behavior a
:class:`Policy`: a callable from the behavior's :class:`~unity_gym.base_env.DecisionSteps` to an
:class:`~unity_gym.base_env.ActionTuple`, told by :meth:`Policy.end_episodes` which agents'
episodes ended (recurrent policies restart their memory there, as Unity does). Kinds, chosen by
:func:`policy_for` from a spec string:

- ``FILE.onnx``: an exported model, run with onnxruntime (:class:`OnnxScenePolicy`);
- ``FILE.zip``: an SB3 checkpoint as ``unity-sb3 learn`` saves it, with the VecNormalize
  statistics of the ``.normalizer.npz`` beside it when there is one
  (:class:`cli.sb3_scene_policy.Sb3Policy`, imported only then);
- ``random``: uniform actions, within the action masks (:class:`RandomPolicy`);
- ``heuristic``: the built-in player's scripted policy (:mod:`unity_gym.players.heuristics`).

This module's imports are light (numpy and the protocol): gymnasium, torch and SB3 load when a
``.zip`` is used, onnxruntime when an ``.onnx`` is, so protocol-only installs keep
``record-demo --heuristic``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from unity_gym.base_env import ActionTuple, BehaviorSpec, DecisionSteps

if TYPE_CHECKING:
    from unity_gym.environment import UnityEnvironment
    from unity_gym.players.model_policy import OnnxPolicy

RANDOM = "random"
HEURISTIC = "heuristic"
SPEC_SYNTAX = "FILE.zip (an SB3 checkpoint), FILE.onnx (an exported model), random or heuristic"


class InputError(Exception):
    """Input a scene-playing command cannot use; the message names the value and the fix."""


class Policy(Protocol):
    """Acts for a batch of one behavior's agents."""

    def __call__(self, steps: DecisionSteps) -> ActionTuple: ...

    def end_episodes(self, agent_ids: np.ndarray) -> None:
        """The episodes of ``agent_ids`` ended: their next decision starts a new one."""


class AgentEpisodes:
    """Which agents start a new episode at their next decision (memory kept per agent id)."""

    def __init__(self) -> None:
        self.known: set[int] = set()
        self.ended: set[int] = set()

    def end_episodes(self, agent_ids: np.ndarray) -> None:
        self.ended.update(agent_ids.tolist())

    def starts(self, ids: list[int]) -> np.ndarray:
        """True for agents seen for the first time or whose episode ended since their last
        decision; marks them all as playing on."""
        starts = np.array([a not in self.known or a in self.ended for a in ids], bool)
        self.known.update(ids)
        self.ended.difference_update(ids)
        return starts


class ScriptedPolicy:
    """A stateless function of the decision steps (a built-in player's heuristic)."""

    def __init__(self, act: Callable[[DecisionSteps], ActionTuple]) -> None:
        self.act = act

    def __call__(self, steps: DecisionSteps) -> ActionTuple:
        return self.act(steps)

    def end_episodes(self, agent_ids: np.ndarray) -> None:
        del agent_ids


class RandomPolicy:
    """Uniform actions: continuous in [-1, 1], each discrete branch uniform over the actions
    its mask allows (the first action when it allows none)."""

    def __init__(self, spec: BehaviorSpec, seed: int | None = None) -> None:
        self.spec = spec.action_spec
        self.rng = np.random.default_rng(None if seed is None else seed % 2**32)

    def __call__(self, steps: DecisionSteps) -> ActionTuple:
        n = len(steps)
        actions = self.spec.random_action(n, self.rng)
        if not steps.action_mask or not self.spec.discrete_size:
            return actions
        for branch, forbidden in enumerate(steps.action_mask):
            allowed = ~np.asarray(forbidden, bool)
            # Uniform over the allowed actions: the argmax of random keys where allowed.
            keys = np.where(allowed, self.rng.random(allowed.shape), -1.0)
            actions.discrete[:, branch] = np.where(allowed.any(axis=1), keys.argmax(axis=1), 0)
        return actions

    def end_episodes(self, agent_ids: np.ndarray) -> None:
        del agent_ids


class OnnxScenePolicy:
    """Feeds the low-level API's steps to an :class:`OnnxPolicy`, in the players' formats.

    Agents keep a memory slot by agent id; a new episode starts from zero memory (recurrent
    models), as in Unity.
    """

    def __init__(self, onnx: OnnxPolicy, spec: BehaviorSpec) -> None:
        self.onnx = onnx
        self.spec = spec
        self.slots: dict[int, int] = {}
        self.episodes = AgentEpisodes()

    def end_episodes(self, agent_ids: np.ndarray) -> None:
        self.episodes.end_episodes(agent_ids)

    def __call__(self, steps: DecisionSteps) -> ActionTuple:
        ids = steps.agent_id.tolist()
        new_episode = self.episodes.starts(ids)
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


# -- choosing a policy ------------------------------------------------------------------


def builtin_player(env: str) -> str | None:
    """The registered name of ``builtin:NAME``; None for a Unity build path (which must exist)."""
    from unity_gym.launcher import builtin_player_name
    from unity_gym.players import UnknownPlayerError, get_player

    name = builtin_player_name(env)
    if name is None:
        if not Path(env).exists():
            raise InputError(
                f"{env!r} is neither a built-in player (builtin:NAME; `unity-sb3 envs` lists "
                "them) nor an existing Unity build; check the spelling or the path."
            )
        return None
    try:
        return get_player(name).name
    except UnknownPlayerError as err:
        raise InputError(f"{env!r}: {err} (write it as builtin:NAME).") from None


def check_spec(spec: str, env: str, what: str) -> None:
    """What can be checked of ``spec`` before the scene starts: its form, that its file
    exists, that the scene has a heuristic. ``what`` names the setting in messages."""
    if spec in (RANDOM, HEURISTIC):
        if spec == HEURISTIC:
            _heuristic(env, what)
        return
    path = Path(spec)
    if path.suffix not in (".zip", ".onnx"):
        raise InputError(
            f"{what}: {spec!r} is not a policy; give {SPEC_SYNTAX} (a file's name must end "
            "in .zip or .onnx)."
        )
    if not path.is_file():
        raise InputError(
            f"{what}: the file {spec} does not exist; give an SB3 checkpoint `unity-sb3 learn` "
            "saved (results/<run-id>/<Behavior>/<Behavior>-<step>.zip) or an exported model "
            "(results/<run-id>/<Behavior>.onnx)."
        )


def policy_for(
    spec: str,
    behavior_spec: BehaviorSpec,
    behavior_name: str,
    env_path: str,
    *,
    deterministic: bool = False,
    seed: int | None = None,
    what: str | None = None,
) -> Policy:
    """The policy ``spec`` (``FILE.zip``, ``FILE.onnx``, ``random`` or ``heuristic``) for
    behavior ``behavior_name`` of the scene ``env_path``, checked against ``behavior_spec``.

    ``deterministic`` takes the most likely action instead of sampling (models only); ``seed``
    seeds the random policy and an SB3 model's sampling. Raises :class:`InputError`, whose
    message starts with ``what`` (default ``--policy BEHAVIOR=SPEC``).
    """
    what = what or f"--policy {behavior_name}={spec}"
    check_spec(spec, env_path, what)
    if spec == RANDOM:
        return RandomPolicy(behavior_spec, seed)
    if spec == HEURISTIC:
        return ScriptedPolicy(_heuristic(env_path, what))
    if spec.endswith(".onnx"):
        return onnx_policy(Path(spec), behavior_spec, behavior_name, what, deterministic)
    from cli.sb3_scene_policy import sb3_policy

    return sb3_policy(Path(spec), behavior_spec, behavior_name, what, deterministic, seed)


def _heuristic(env: str, what: str) -> Callable[[DecisionSteps], ActionTuple]:
    from unity_gym.players.heuristics import NoHeuristicError, heuristic_for

    player = builtin_player(env)
    if player is None:
        raise InputError(
            f"{what}: {env!r} is not a built-in player, and heuristics exist only for "
            "built-in players (builtin:NAME, see `unity-sb3 envs`); give a trained model "
            "(FILE.zip or FILE.onnx) or random instead."
        )
    try:
        return heuristic_for(player)
    except NoHeuristicError as err:
        raise InputError(f"{what}: {err}.") from None


def onnx_policy(
    path: Path, spec: BehaviorSpec, behavior: str, what: str, deterministic: bool = True
) -> OnnxScenePolicy:
    """A policy running the .onnx model ``path`` with onnxruntime, after checking it fits."""
    try:
        from sb3_ext.onnx_interface import check_against_spec, inspect_onnx
        from unity_gym.players.model_policy import ModelPolicyError, OnnxPolicy
    except ImportError:
        raise InputError(
            f"{what}: .onnx models need the onnx extra (onnx, onnxruntime): "
            "pip install 'unity-sb3[onnx]'."
        ) from None
    try:
        problems = check_against_spec(inspect_onnx(path), spec)
    except Exception as err:  # onnx raises several types for files that are not models
        raise InputError(f"{what}: not a readable .onnx model ({err}).") from None
    if problems:
        raise InputError(
            f"{what} does not fit the behavior {behavior} ({'; '.join(problems)}). Give a "
            f"model trained for this behavior; `unity-sb3 inspect-model {path}` shows what it "
            "expects."
        )
    try:
        return OnnxScenePolicy(OnnxPolicy(path, spec, deterministic), spec)
    except ModelPolicyError as err:
        raise InputError(f"{what}: {err}") from None


@contextmanager
def open_scene(
    env: str, seed: int, num_areas: int, error: type[InputError], during: str
) -> Iterator[UnityEnvironment]:
    """Start ``env`` without graphics, reset it, and end its player on every way out; Unity's
    failures become ``error`` ("could not start ...", "... stopped ``during``: ...")."""
    from unity_gym import UnityEnvironment
    from unity_gym.exception import UnityException

    try:
        unity = UnityEnvironment(env, seed=seed, num_areas=num_areas, no_graphics=True)
    except UnityException as err:
        raise error(f"could not start {env!r}: {err}") from None
    try:
        unity.reset()
        yield unity
        unity.close()
    except UnityException as err:
        raise error(f"{env} stopped {during}: {err}") from None
    finally:
        unity.terminate()  # nothing after close(); on errors and Ctrl+C, ends the player now


def reason_text(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
