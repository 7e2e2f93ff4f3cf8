"""Unity ``.demo`` recordings as expert transitions in a model's own spaces.

GAIL and behavioral cloning compare the policy's experience with an expert's, so the expert's
observations and actions must look exactly like the model's: the same ``Box`` / ``Dict``
layout, ``uint8`` images where the model sees ``uint8`` images, branch indices shifted by a
``Discrete`` space's ``start``. :func:`load_expert_transitions` reads a ``.demo`` file or a
folder of them (:func:`unity_gym.demo.load_demonstration`), pairs each recorded step with the
done that follows it (as ML-Agents' ``demo_to_buffer`` does: ``done`` = the episode ends after
this action) and checks the recording against the model's spaces, naming both when they differ.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces

from sb3_ext.reward_signals.actions import ActionLayout
from sb3_ext.reward_signals.base import ObsArray, Transitions
from unity_gym.demo import Demonstration, load_demonstration
from unity_gym.spaces import SpaceConverter

# What an observation normaliser (e.g. ``VecNormalize.normalize_obs``) looks like.
ObservationTransform = Callable[[Any], Any]


@dataclass(frozen=True)
class ExpertTransitions:
    """An expert's transitions, one row each, in a model's observation and action spaces.

    ``actions``: ``[N, c + k]`` as :class:`~sb3_ext.reward_signals.actions.ActionLayout`
    lays them out (continuous values, then one branch index per branch, offset by the space's
    ``start``); ``dones``: the episode ends after the row's action; ``action_masks``: ``[N,
    sum(branches)]`` True where an action is allowed (SB3's convention), or None;
    ``episode_returns``: the undiscounted reward of each complete recorded episode. For
    replay buffers: ``next_observations`` (the record after each row), ``rewards`` (received
    after the action) and ``truncated`` (the episode ended by its step limit); None where a
    hand-built batch does not need them.
    """

    observations: ObsArray
    actions: np.ndarray
    dones: np.ndarray
    action_masks: np.ndarray | None
    episode_returns: np.ndarray
    source: str = ""
    next_observations: ObsArray | None = None
    rewards: np.ndarray | None = None
    truncated: np.ndarray | None = None

    def __post_init__(self) -> None:
        if len(self) == 0:
            raise ValueError(f"The demonstration {self.source or ''} holds no transitions.")

    def __len__(self) -> int:
        return int(self.dones.shape[0])

    @property
    def mean_episode_return(self) -> float:
        """Mean undiscounted return of the recorded episodes (NaN without a complete one)."""
        return float(np.mean(self.episode_returns)) if len(self.episode_returns) else np.nan

    def rows(self, index: np.ndarray) -> tuple[ObsArray, np.ndarray, np.ndarray]:
        """Observations, actions and dones of the rows ``index`` (copies)."""
        if isinstance(self.observations, Mapping):
            obs: ObsArray = {k: np.array(v[index]) for k, v in self.observations.items()}
        else:
            obs = np.array(self.observations[index])
        return obs, np.array(self.actions[index]), np.array(self.dones[index])

    def batch(
        self,
        index: np.ndarray,
        device: th.device | str = "cpu",
        normalize: ObservationTransform | None = None,
    ) -> Transitions:
        """The rows ``index`` as a :class:`Transitions` batch (with ``dones``); ``normalize``
        maps the observations as the model sees them (e.g. ``VecNormalize.normalize_obs``)."""
        obs, actions, dones = self.rows(index)
        if normalize is not None:
            obs = normalize(obs)
        return Transitions.from_numpy(obs, None, actions, device, dones=dones)

    def sample(
        self,
        batch_size: int,
        device: th.device | str = "cpu",
        normalize: ObservationTransform | None = None,
    ) -> Transitions:
        """``batch_size`` rows drawn with replacement (ML-Agents' ``sample_mini_batch``)."""
        return self.batch(np.random.randint(0, len(self), size=batch_size), device, normalize)


def load_expert_transitions(
    demo_path: str | os.PathLike[str],
    observation_space: spaces.Space[Any],
    action_space: spaces.Space[Any] | ActionLayout,
) -> ExpertTransitions:
    """The transitions of a ``.demo`` file (or folder) for a model with these spaces.

    Raises :class:`~unity_gym.exception.UnityDemoException` for a missing, empty or
    damaged recording and ``ValueError`` when its observations or actions do not fit the
    model, naming both.
    """
    demo = load_demonstration(demo_path)
    source = str(demo_path)
    transitions = demo.transitions()
    observations = _observations(demo, transitions.observations, observation_space, source)
    following = transitions.indices + 1
    next_observations = _observations(
        demo, [o[following] for o in demo.observations], observation_space, source
    )
    layout = action_space if isinstance(action_space, ActionLayout) else None
    if layout is None:
        layout = ActionLayout.from_space(action_space)  # type: ignore[arg-type]
    actions = _actions(
        demo, transitions.continuous_actions, transitions.discrete_actions, layout, source
    )
    masks = None if transitions.action_masks is None else ~transitions.action_masks
    return ExpertTransitions(
        observations=observations,
        actions=actions,
        dones=transitions.dones.astype(bool),
        action_masks=masks,
        episode_returns=_episode_returns(transitions.rewards, transitions.dones),
        source=source,
        next_observations=next_observations,
        rewards=transitions.rewards.astype(np.float32),
        truncated=transitions.interrupted.astype(bool),
    )


def _episode_returns(rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
    ends = np.flatnonzero(dones)
    sums = np.cumsum(rewards, dtype=np.float64)
    totals = sums[ends] - np.concatenate([[0.0], sums[ends[:-1]]]) if ends.size else sums[:0]
    return totals.astype(np.float32)


def _mismatch(source: str, what: str, recorded: str, model: str) -> ValueError:
    return ValueError(
        f"The demonstration {source} does not fit the model: it records {what} {recorded}, "
        f"the model has {model}. Record the demonstration from the same behavior (same "
        "sensors, same action spec), or point demo_path at a recording of this behavior."
    )


def _observations(
    demo: Demonstration,
    arrays: list[np.ndarray],
    space: spaces.Space[Any],
    source: str,
) -> ObsArray:
    boxes = list(space.spaces.values()) if isinstance(space, spaces.Dict) else [space]
    recorded = [tuple(a.shape[1:]) for a in arrays]
    expected = [tuple(getattr(b, "shape", ()) or ()) for b in boxes]
    if recorded != expected or not all(isinstance(b, spaces.Box) for b in boxes):
        raise _mismatch(
            source, "observations of shapes", str(recorded), f"observation space {space}"
        )
    uint8 = any(b.dtype == np.uint8 for b in boxes)
    converter = SpaceConverter.for_behavior(demo.behavior_spec, "uint8" if uint8 else "float32")
    converted = converter.observations(arrays)
    if isinstance(space, spaces.Dict):
        # The recording's sensor order is the model's key order (checked by shape above).
        values = list(converted.values()) if isinstance(converted, Mapping) else [converted]
        return {
            key: np.asarray(value, dtype=box.dtype)
            for key, value, box in zip(space.spaces, values, boxes, strict=True)
        }
    return np.asarray(converted, dtype=space.dtype)


def _actions(
    demo: Demonstration,
    continuous: np.ndarray,
    discrete: np.ndarray,
    layout: ActionLayout,
    source: str,
) -> np.ndarray:
    spec = demo.behavior_spec.action_spec
    if (
        spec.continuous_size != layout.continuous_size
        or tuple(spec.discrete_branches) != layout.discrete_branches
    ):
        raise _mismatch(
            source,
            "actions",
            f"(continuous {spec.continuous_size}, discrete branches "
            f"{list(spec.discrete_branches)})",
            f"actions (continuous {layout.continuous_size}, discrete branches "
            f"{list(layout.discrete_branches)})",
        )
    if not layout.discrete_size:
        return continuous.astype(np.float32)
    indices = discrete.astype(np.int64)
    if layout.discrete_offsets:
        indices = indices + np.asarray(layout.discrete_offsets, dtype=np.int64)
    if not layout.continuous_size:
        return indices
    return np.concatenate([continuous.astype(np.float32), indices.astype(np.float32)], axis=1)
