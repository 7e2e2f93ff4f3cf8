"""``UnityVecEnv``: an SB3 ``VecEnv`` over every agent of one behavior in ``n_envs`` players.

Each agent is one of the VecEnv's environments ("slots"; see :mod:`unity_gym.agent_slots`), so
3DBall with 2 players trains on 24 environments. Players step in parallel. A finished episode
gives ``done=True`` with ``infos[i]["terminal_observation"]`` (and
``infos[i]["TimeLimit.truncated"]`` when the player's step limit interrupted it), and the slot's
observation is already the next episode's first one, as SB3 expects. Discrete action masks
reach sb3-contrib's MaskablePPO through ``env_method("action_masks")``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from unity_gym.agent_slots import DEFAULT_MAX_EXCHANGES, BehaviorSlots, SlotStep
from unity_gym.env_group import WorkerSettings, close_all, open_environments
from unity_gym.environment import UnityEnvironment
from unity_gym.exception import UnityEnvironmentException
from unity_gym.spaces import SpaceConverter, VisualDtype


def choose_behavior(env: UnityEnvironment, behavior_name: str | None) -> str:
    """The behavior to expose: the one given, or the scene's only behavior."""
    names = list(env.behavior_specs)
    if behavior_name is not None:
        if behavior_name not in names:
            raise UnityEnvironmentException(
                f"Behavior {behavior_name!r} is not in this scene; its behaviors are: "
                f"{', '.join(names) or 'none'}."
            )
        return behavior_name
    if len(names) != 1:
        raise UnityEnvironmentException(
            f"This scene has {len(names)} behaviors ({', '.join(names) or 'none'}); pass "
            "behavior_name to choose one (or use the PettingZoo adapters for all of them)."
        )
    return names[0]


class AgentSlot:
    """What ``get_attr``/``env_method`` see as one "environment": one agent slot."""

    render_mode = None

    def __init__(self, vec_env: UnityVecEnv, index: int, env: UnityEnvironment) -> None:
        self._vec_env = vec_env
        self.index = index
        self.env = env

    def action_masks(self) -> np.ndarray:
        """Allowed discrete actions of this slot, flat over branches (True = allowed)."""
        return self._vec_env.action_masks()[self.index]

    def __getattr__(self, name: str) -> Any:
        # Anything else is looked up on the slot's player (e.g. behavior_specs, port).
        return getattr(self.env, name)


class UnityVecEnv(VecEnv):
    """SB3 VecEnv over all agents of one behavior across ``n_envs`` player processes.

    :param file_name: Unity build path or ``"builtin:NAME"`` (None = the Editor, one worker).
    :param n_envs: number of player processes (worker ids ``worker_id_start`` onwards).
    :param behavior_name: behavior to train; optional when the scene has only one.
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
        self._settings = WorkerSettings(file_name=file_name, **worker_settings)
        self._n_workers = n_envs
        self._visual_dtype = visual_dtype
        self._max_exchanges = max_exchanges
        self.envs: list[UnityEnvironment] = open_environments(self._settings, n_envs)
        try:
            self._start(behavior_name)
        except BaseException:
            close_all(self.envs)
            raise
        assert self._converter is not None
        super().__init__(
            self._first.dones.size, self._converter.observation_space, self._converter.action_space
        )
        self._actions: Any = None
        self.closed = False

    def _start(self, behavior_name: str | None) -> None:
        self.envs[0].reset()
        self.behavior_name = choose_behavior(self.envs[0], behavior_name)
        self._slots = BehaviorSlots(self.envs, self.behavior_name, self._max_exchanges)
        self._first: SlotStep = self._slots.reset()
        assert self._slots.spec is not None
        self._converter = SpaceConverter.for_behavior(self._slots.spec, self._visual_dtype)
        self._last = self._first
        self._views = [
            AgentSlot(self, i, self.envs[self._slots.worker_of_slot(i)])
            for i in range(self._slots.num_slots)
        ]

    # -- VecEnv API ---------------------------------------------------------------------

    def reset(self) -> VecEnvObs:
        seeds = [s for s in self._seeds if s is not None]
        if seeds:
            self._restart_with_seed(int(seeds[0]))
            self._last = self._first
        else:
            self._last = self._slots.reset()
        self._reset_seeds()
        self._reset_options()
        return self._converter.observations(self._last.obs)

    def _restart_with_seed(self, seed: int) -> None:
        """Unity seeds a player once, at its handshake: a new seed means new players."""
        close_all(self.envs)
        self._settings.seed = seed
        self.envs = open_environments(self._settings, self._n_workers)
        count = self.num_envs
        self._start(self.behavior_name)
        if self._slots.num_slots != count:
            raise UnityEnvironmentException(
                f"After restarting with seed {seed} the players have {self._slots.num_slots} "
                f"agents instead of {count}."
            )

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        step = self._slots.step(self._converter.actions(self._actions))
        self._last = step
        dones = step.dones
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for slot, final in step.final_obs.items():
            infos[slot]["terminal_observation"] = self._single(final)
            infos[slot]["TimeLimit.truncated"] = bool(step.truncated[slot])
        return self._converter.observations(step.obs), step.rewards, dones, infos

    def _single(self, obs: list[np.ndarray]) -> Any:
        batch = self._converter.observations([o[None] for o in obs])
        if isinstance(batch, dict):
            return {k: v[0] for k, v in batch.items()}
        return batch[0]

    def action_masks(self) -> np.ndarray:
        """(num_envs, sum(branches)) allowed actions (True = allowed) for the current step."""
        n = self.num_envs
        mask = self._last.action_mask
        if mask is None:
            return self._converter.flat_action_masks(None, n)
        return ~mask

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            close_all(self.envs)

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self._views[i], attr_name) for i in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        for i in self._indices(indices):
            view = self._views[i]
            target = view.env if hasattr(view.env, attr_name) else view
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


__all__ = ["AgentSlot", "UnityVecEnv", "choose_behavior"]
