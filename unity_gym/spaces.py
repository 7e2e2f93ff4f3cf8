"""Behavior specs as Gymnasium spaces, and batch conversion both ways.

Every adapter (Gymnasium env, SB3 and Gymnasium vector envs, PettingZoo) describes a behavior
with these spaces and converts with these functions, so they agree on the details:

- observations: a ``Box`` for a behavior with one observation, a ``Dict`` for several (keys are
  the sensor names, ``obs_<i>`` where a name is missing or repeated). Visual observations are
  channel-first ``(C, H, W)`` as ML-Agents delivers them, ``uint8`` in [0, 255] by default (what
  SB3's CNN policies expect) or float32 in [0, 1] with ``visual_dtype="float32"``;
- actions: ``Box(-1, 1)`` for continuous, ``Discrete`` for one branch, ``MultiDiscrete`` for
  several, and for hybrid actions a ``Dict`` with ``"continuous"`` and ``"discrete"``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from gymnasium import spaces

from unity_gym.base_env import ActionSpec, ActionTuple, BehaviorSpec, ObservationSpec

VisualDtype = Literal["uint8", "float32"]
CONTINUOUS_KEY = "continuous"
DISCRETE_KEY = "discrete"


def observation_keys(specs: list[ObservationSpec]) -> list[str]:
    """Dict keys for a behavior's observations: sensor names, else ``obs_<i>``."""
    keys: list[str] = []
    for i, spec in enumerate(specs):
        name = re.sub(r"\s+", "_", spec.name.strip())
        keys.append(name if name and name not in keys else f"obs_{i}")
    return keys


def _observation_box(spec: ObservationSpec, visual_dtype: VisualDtype) -> spaces.Box:
    if spec.is_visual and visual_dtype == "uint8":
        return spaces.Box(0, 255, spec.shape, np.uint8)
    if spec.is_visual:
        return spaces.Box(0.0, 1.0, spec.shape, np.float32)
    return spaces.Box(-np.inf, np.inf, spec.shape, np.float32)


def action_space(action_spec: ActionSpec) -> spaces.Space[Any]:
    continuous = spaces.Box(-1.0, 1.0, (action_spec.continuous_size,), np.float32)
    branches = action_spec.discrete_branches
    discrete: spaces.Space[Any] = (
        spaces.Discrete(branches[0]) if len(branches) == 1 else spaces.MultiDiscrete(list(branches))
    )
    if action_spec.continuous_size and branches:
        return spaces.Dict({CONTINUOUS_KEY: continuous, DISCRETE_KEY: discrete})
    if branches:
        return discrete
    return continuous


@dataclass(frozen=True)
class SpaceConverter:
    """Spaces of one behavior and the conversions between them and the low-level API."""

    behavior_spec: BehaviorSpec
    observation_space: spaces.Space[Any]
    action_space: spaces.Space[Any]
    keys: tuple[str, ...] | None  # Dict observation keys; None for a single Box
    visual_dtype: VisualDtype

    @staticmethod
    def for_behavior(spec: BehaviorSpec, visual_dtype: VisualDtype = "uint8") -> SpaceConverter:
        specs = spec.observation_specs
        if not specs:
            raise ValueError("The behavior has no observations; it cannot be a Gymnasium env.")
        boxes = [_observation_box(s, visual_dtype) for s in specs]
        keys = None
        obs_space: spaces.Space[Any] = boxes[0]
        if len(boxes) > 1:
            keys = tuple(observation_keys(specs))
            obs_space = spaces.Dict(dict(zip(keys, boxes, strict=True)))
        return SpaceConverter(spec, obs_space, action_space(spec.action_spec), keys, visual_dtype)

    @property
    def is_hybrid(self) -> bool:
        a = self.behavior_spec.action_spec
        return a.continuous_size > 0 and a.discrete_size > 0

    # -- observations -------------------------------------------------------------------

    def _convert(self, array: np.ndarray, spec: ObservationSpec) -> np.ndarray:
        if spec.is_visual and self.visual_dtype == "uint8":
            return np.rint(array * 255.0).astype(np.uint8)
        return array

    def observations(self, batch: list[np.ndarray]) -> Any:
        """Batched low-level observations (one array per spec) -> batched space sample."""
        specs = self.behavior_spec.observation_specs
        if self.keys is None:
            return self._convert(batch[0], specs[0])
        return {k: self._convert(o, s) for k, o, s in zip(self.keys, batch, specs, strict=True)}

    # -- actions ------------------------------------------------------------------------

    def actions(self, batch: Any) -> ActionTuple:
        """Batched actions in the action space's layout -> ActionTuple."""
        spec = self.behavior_spec.action_spec
        if self.is_hybrid:
            if not isinstance(batch, Mapping):
                raise TypeError(
                    "Hybrid actions must be a dict with 'continuous' and 'discrete' entries."
                )
            continuous = np.asarray(batch[CONTINUOUS_KEY], np.float32)
            discrete = np.asarray(batch[DISCRETE_KEY], np.int32)
            n = len(continuous)
            return ActionTuple(continuous.reshape(n, -1), discrete.reshape(n, -1))
        array = np.asarray(batch)
        if spec.discrete_size:
            n = array.shape[0] if array.ndim else 1
            return ActionTuple(discrete=array.astype(np.int32).reshape(n, spec.discrete_size))
        array = array.astype(np.float32).reshape(-1, spec.continuous_size)
        return ActionTuple(continuous=np.clip(array, -1.0, 1.0))

    def flat_action_masks(self, masks: list[np.ndarray] | None, n: int) -> np.ndarray:
        """Unity's per-branch masks (True = forbidden) -> (n, sum(branches)) True = allowed.

        The layout sb3-contrib's MaskablePPO and PettingZoo's ``action_mask`` use.
        """
        width = sum(self.behavior_spec.action_spec.discrete_branches)
        if masks is None:
            return np.ones((n, width), dtype=bool)
        return ~np.concatenate(masks, axis=1)
