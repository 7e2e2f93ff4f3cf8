"""Gymnasium ``VectorEnv`` over every agent of one behavior in ``n_envs`` players.

:class:`UnityVectorEnv` is the adapter; :class:`~unity_gym.behavior_group.BehaviorGroup` is the
core it shares with the other single-behavior adapters: players, slots, spaces and seeding.
Each agent is one sub-environment ("slot"; see :mod:`unity_gym.agent_slots`), so 3DBall with
2 players is a vector of 24. Players step in parallel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from unity_gym.agent_slots import DEFAULT_MAX_EXCHANGES
from unity_gym.behavior_group import BehaviorGroup, SlotView
from unity_gym.env_group import WorkerSettings
from unity_gym.environment import UnityEnvironment
from unity_gym.side_channel.environment_parameters_channel import ParameterSampler
from unity_gym.spaces import VisualDtype


class UnityVectorEnv(VectorEnv[Any, Any, np.ndarray]):
    """Gymnasium VectorEnv over all agents of one behavior across ``n_envs`` player processes.

    ``num_envs`` is the number of agents over all players (3DBall: 12 per player). Autoreset is
    ``AutoresetMode.SAME_STEP``: when a slot's episode ends, :meth:`step` returns that episode's
    reward and ``terminated``/``truncated`` (truncated = the player's step limit interrupted it,
    ML-Agents' ``interrupted``) with the *next* episode's first observation, and puts the final
    observation in ``infos["final_obs"]`` (an object array, ``None`` where no episode ended),
    ``infos["final_info"]`` and the masks ``infos["_final_obs"]``/``infos["_final_info"]``,
    exactly as ``SyncVectorEnv`` does in that mode.

    ``NEXT_STEP`` is not offered: Unity restarts an agent itself and asks for its decision at
    once, so the next episode's first observation already exists when the old one ends. In
    NEXT_STEP the step after an episode end only resets and ignores its action; here that action
    would have to act in the new episode, an action the policy never chose for that observation.

    Discrete behaviors also give ``infos["action_mask"]`` (True = allowed, flat over branches);
    :meth:`action_masks` and ``call("action_masks")`` return the same. ``reset(seed=s)``
    restarts the players (player *i* gets ``s + i``; Unity seeds a player only at its handshake),
    so the same seed gives the same episodes; a list of seeds uses its first entry. The first
    ``reset()`` returns the observations of the reset that opened the players; ``options`` are
    ignored (Unity resets whole scenes, not single agents).

    :param file_name: Unity build path or ``"builtin:NAME"`` (None = the Editor, one player).
    :param n_envs: number of player processes (worker ids ``worker_id_start`` onwards).
    :param behavior_name: behavior to expose, full (``3DBall?team=0``) or without the team when
        unambiguous; optional when the scene has only one.
    :param visual_dtype: ``"uint8"`` images in [0, 255] or ``"float32"`` in [0, 1].
    :param max_exchanges: exchanges to wait for a slot's next decision before giving up.
    Other keyword arguments are those of :class:`unity_gym.env_group.WorkerSettings`.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

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
        settings = WorkerSettings(file_name=file_name, **worker_settings)
        self._group = BehaviorGroup(settings, n_envs, behavior_name, visual_dtype, max_exchanges)
        converter = self._group.converter
        self.behavior_name = self._group.behavior_name
        self.num_envs = self._group.num_slots
        self.single_observation_space = converter.observation_space
        self.single_action_space = converter.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._discrete = converter.behavior_spec.action_spec.discrete_size > 0
        self._views = [SlotView(self._group, i) for i in range(self.num_envs)]

    @property
    def envs(self) -> list[UnityEnvironment]:
        """The players' low-level environments (one per player, not per slot)."""
        return self._group.envs

    @property
    def player_pids(self) -> list[int | None]:
        return self._group.player_pids

    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        if isinstance(seed, Sequence):
            seed = next((s for s in seed if s is not None), None)
        seed = None if seed is None else int(seed)
        super().reset(seed=seed)
        step = self._group.reset(seed)
        return self._group.observations(step), self._mask_info({})

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        step = self._group.step(actions)
        infos: dict[str, Any] = {}
        for slot, final in step.final_obs.items():
            final_obs = self._group.single_observation(final)
            infos = self._add_info(infos, {"final_obs": final_obs, "final_info": {}}, slot)
        obs = self._group.observations(step)
        return obs, step.rewards, step.terminated, step.truncated, self._mask_info(infos)

    def _mask_info(self, infos: dict[str, Any]) -> dict[str, Any]:
        if self._discrete:
            infos["action_mask"] = self.action_masks()
            infos["_action_mask"] = np.ones(self.num_envs, bool)
        return infos

    def action_masks(self) -> np.ndarray:
        """(num_envs, sum(branches)) allowed actions (True = allowed) for the next step."""
        return self._group.action_masks()

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Per slot: its ``action_masks``, else the attribute or method of its player."""
        results = []
        for view in self._views:
            value = getattr(view, name)
            results.append(value(*args, **kwargs) if callable(value) else value)
        return tuple(results)

    def get_attr(self, name: str) -> tuple[Any, ...]:
        return tuple(getattr(view, name) for view in self._views)

    def set_attr(self, name: str, values: list[Any] | tuple[Any, ...] | Any) -> None:
        if not isinstance(values, list | tuple):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"Got {len(values)} values for {self.num_envs} environments.")
        for view, value in zip(self._views, values, strict=True):
            setattr(view.env if hasattr(view.env, name) else view, name, value)

    def set_environment_parameters(self, values: Mapping[str, float | ParameterSampler]) -> None:
        """Send environment parameters (constants, or samplers the player draws from at each
        read) to every player: they apply from the next step or reset on (a curriculum's
        lesson change; see :class:`sb3_ext.curriculum.CurriculumCallback`)."""
        self._group.set_environment_parameters(values)

    def close_extras(self, **kwargs: Any) -> None:
        self._group.close()


__all__ = ["UnityVectorEnv"]
