"""``UnityVecEnv``: an SB3 ``VecEnv`` over every agent of one behavior in ``n_envs`` players.

Each agent is one of the VecEnv's environments ("slots"; see :mod:`unity_gym.agent_slots`), so
3DBall with 2 players trains on 24 environments. Players step in parallel. A finished episode
gives ``done=True`` with ``infos[i]["terminal_observation"]`` (and
``infos[i]["TimeLimit.truncated"]`` when the player's step limit interrupted it), and the slot's
observation is already the next episode's first one, as SB3 expects. Discrete action masks
reach sb3-contrib's MaskablePPO through ``env_method("action_masks")``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from unity_gym.agent_slots import DEFAULT_MAX_EXCHANGES
from unity_gym.behavior_group import BehaviorBatches, BehaviorGroup, SlotView
from unity_gym.env_group import WorkerSettings, choose_behavior
from unity_gym.environment import UnityEnvironment
from unity_gym.side_channel.environment_parameters_channel import ParameterSampler
from unity_gym.spaces import VisualDtype


class UnityVecEnv(VecEnv):
    """SB3 VecEnv over all agents of one behavior across ``n_envs`` player processes.

    :param file_name: Unity build path or ``"builtin:NAME"`` (None = the Editor, one worker).
    :param n_envs: number of player processes (worker ids ``worker_id_start`` onwards).
    :param behavior_name: behavior to train, full (``3DBall?team=0``) or without the team when
        unambiguous; optional when the scene has only one.
    :param visual_dtype: ``"uint8"`` images in [0, 255] (SB3's CNN default) or ``"float32"``.
    :param max_exchanges: exchanges to wait for a slot's next decision before giving up.
    Other keyword arguments are those of :class:`unity_gym.env_group.WorkerSettings`.
    """

    def __init__(
        self,
        file_name: str | None,
        n_envs: int = 1,
        behavior_name: str | None = None,
        *,
        visual_dtype: VisualDtype = "uint8",
        max_exchanges: int = DEFAULT_MAX_EXCHANGES,
        **worker_settings: Any,
    ) -> None:
        self._attach(
            BehaviorGroup(
                WorkerSettings(file_name=file_name, **worker_settings),
                n_envs,
                behavior_name,
                visual_dtype,
                max_exchanges,
            )
        )

    @classmethod
    def from_batches(cls, batches: BehaviorBatches) -> UnityVecEnv:
        """A VecEnv over batches opened elsewhere, e.g. one behavior of a
        :class:`~unity_gym.lockstep_behaviors.LockstepBehaviors` shared by several learners."""
        env = cls.__new__(cls)
        env._attach(batches)
        return env

    def _attach(self, group: BehaviorBatches) -> None:
        self._group = group
        self.behavior_name = self._group.behavior_name
        self._views = [SlotView(self._group, i) for i in range(self._group.num_slots)]
        converter = self._group.converter
        super().__init__(self._group.num_slots, converter.observation_space, converter.action_space)
        self._actions: Any = None
        self.closed = False

    @property
    def envs(self) -> list[UnityEnvironment]:
        """One low-level environment per player."""
        return self._group.envs

    # -- VecEnv API ---------------------------------------------------------------------

    def reset(self) -> VecEnvObs:
        seeds = [s for s in self._seeds if s is not None]
        step = self._group.reset(int(seeds[0]) if seeds else None)
        self._reset_seeds()
        self._reset_options()
        return self._group.observations(step)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        step = self._group.step(self._actions)
        infos = self._group.step_infos(step)
        return self._group.observations(step), step.rewards, step.dones, infos

    def set_environment_parameters(self, values: Mapping[str, float | ParameterSampler]) -> None:
        """Send environment parameters (constants, or samplers the player draws from at each
        read) to every player: they apply from the next step or reset on (a curriculum's
        lesson change; see :class:`sb3_ext.curriculum.CurriculumCallback`)."""
        self._group.set_environment_parameters(values)

    def action_masks(self) -> np.ndarray:
        """(num_envs, sum(branches)) allowed actions (True = allowed) for the current step."""
        return self._group.action_masks()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._group.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self._views[i], attr_name) for i in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        for i in self._indices(indices):
            view = self._views[i]
            target: Any = view.env if hasattr(view.env, attr_name) else view
            setattr(target, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        return [
            getattr(self._views[i], method_name)(*method_args, **method_kwargs)
            for i in self._indices(indices)
        ]

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None for _ in range(self.num_envs)]

    def _indices(self, indices: VecEnvIndices) -> Iterable[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return indices

    def __del__(self) -> None:
        if not getattr(self, "closed", True):
            self.close()


__all__ = ["UnityVecEnv", "choose_behavior"]
