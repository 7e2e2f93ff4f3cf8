"""Replay buffers that keep each transition's action mask beside it (discrete SAC).

The mask is the one the action was chosen under (the current state's; ML-Agents stores no
next-state mask). :class:`~sb3_ext.algorithms.discrete_sac.DiscreteSAC` hands it over with
:meth:`set_next_action_masks` just before SB3's collection loop calls ``add``; without one,
every action is allowed. Samples carry ``action_masks`` (``[batch, sum(branches)]``, 1 allowed,
0 masked) for the same rows and environments as the other fields.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import TensorDict
from stable_baselines3.common.vec_env import VecNormalize


def action_branches(action_space: spaces.Space[Any]) -> tuple[int, ...]:
    """Branch sizes of a ``Discrete`` (one branch) or ``MultiDiscrete`` action space."""
    if isinstance(action_space, spaces.Discrete):
        starts = [int(action_space.start)]
        branches: tuple[int, ...] = (int(action_space.n),)
    elif isinstance(action_space, spaces.MultiDiscrete) and action_space.nvec.ndim == 1:
        starts = [int(s) for s in np.asarray(action_space.start).reshape(-1)]
        branches = tuple(int(n) for n in action_space.nvec)
    else:
        raise ValueError(
            f"Discrete SAC takes Discrete or one-dimensional MultiDiscrete actions, not "
            f"{action_space}. Use SB3's SAC for Box actions."
        )
    if any(starts):
        raise ValueError(
            f"The action space {action_space} does not start at 0; discrete SAC indexes actions "
            "from 0. Shift the environment's actions (e.g. with a gymnasium ActionWrapper)."
        )
    return branches


class MaskedReplayBufferSamples(NamedTuple):
    observations: th.Tensor
    actions: th.Tensor
    next_observations: th.Tensor
    dones: th.Tensor
    rewards: th.Tensor
    action_masks: th.Tensor


class MaskedDictReplayBufferSamples(NamedTuple):
    observations: TensorDict
    actions: th.Tensor
    next_observations: TensorDict
    dones: th.Tensor
    rewards: th.Tensor
    action_masks: th.Tensor


class _MaskStore:
    """The mask array and the mask waiting for the next ``add``."""

    def __init__(self, buffer_size: int, n_envs: int, action_space: spaces.Space[Any]) -> None:
        width = sum(action_branches(action_space))
        self.masks = np.ones((buffer_size, n_envs, width), dtype=bool)
        self.pending: np.ndarray | None = None

    def set_next(self, masks: np.ndarray | None, n_envs: int) -> None:
        self.pending = None if masks is None else np.asarray(masks, dtype=bool).reshape(n_envs, -1)

    def store(self, pos: int) -> None:
        self.masks[pos] = True if self.pending is None else self.pending
        self.pending = None


class MaskedReplayBuffer(ReplayBuffer):
    """SB3's ``ReplayBuffer`` plus the action mask of every transition."""

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space[Any],
        action_space: spaces.Space[Any],
        device: th.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
    ) -> None:
        super().__init__(
            buffer_size,
            observation_space,
            action_space,
            device=device,
            n_envs=n_envs,
            optimize_memory_usage=optimize_memory_usage,
            handle_timeout_termination=handle_timeout_termination,
        )
        self._masks = _MaskStore(self.buffer_size, self.n_envs, action_space)

    @property
    def action_masks(self) -> np.ndarray:
        """``[buffer_size, n_envs, sum(branches)]`` stored masks (True = allowed)."""
        return self._masks.masks

    def set_next_action_masks(self, masks: np.ndarray | None) -> None:
        """The masks (``[n_envs, sum(branches)]``) of the transitions the next ``add`` stores."""
        self._masks.set_next(masks, self.n_envs)

    def add(
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        self._masks.store(self.pos)
        super().add(obs, next_obs, action, reward, done, infos)

    def sample(  # type: ignore[override]
        self, batch_size: int, env: VecNormalize | None = None
    ) -> MaskedReplayBufferSamples:
        return super().sample(batch_size, env)  # type: ignore[return-value]

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray, env: VecNormalize | None = None
    ) -> MaskedReplayBufferSamples:
        envs = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        if self.optimize_memory_usage:
            next_rows = self.observations[(batch_inds + 1) % self.buffer_size, envs, :]
        else:
            next_rows = self.next_observations[batch_inds, envs, :]
        obs = self._normalize_obs(self.observations[batch_inds, envs], env)
        next_obs = self._normalize_obs(next_rows, env)
        assert isinstance(obs, np.ndarray) and isinstance(next_obs, np.ndarray)
        dones = self.dones[batch_inds, envs] * (1 - self.timeouts[batch_inds, envs])
        rewards = self.rewards[batch_inds, envs].reshape(-1, 1)
        return MaskedReplayBufferSamples(
            observations=self.to_torch(obs),
            actions=self.to_torch(self.actions[batch_inds, envs]),
            next_observations=self.to_torch(next_obs),
            dones=self.to_torch(dones.reshape(-1, 1)),
            rewards=self.to_torch(self._normalize_reward(rewards, env)),
            action_masks=self.to_torch(self.action_masks[batch_inds, envs].astype(np.float32)),
        )


class MaskedDictReplayBuffer(DictReplayBuffer):
    """SB3's ``DictReplayBuffer`` plus the action mask of every transition."""

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Dict,
        action_space: spaces.Space[Any],
        device: th.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
    ) -> None:
        super().__init__(
            buffer_size,
            observation_space,
            action_space,
            device=device,
            n_envs=n_envs,
            optimize_memory_usage=optimize_memory_usage,
            handle_timeout_termination=handle_timeout_termination,
        )
        self._masks = _MaskStore(self.buffer_size, self.n_envs, action_space)

    @property
    def action_masks(self) -> np.ndarray:
        """``[buffer_size, n_envs, sum(branches)]`` stored masks (True = allowed)."""
        return self._masks.masks

    def set_next_action_masks(self, masks: np.ndarray | None) -> None:
        """The masks (``[n_envs, sum(branches)]``) of the transitions the next ``add`` stores."""
        self._masks.set_next(masks, self.n_envs)

    def add(  # type: ignore[override]
        self,
        obs: dict[str, np.ndarray],
        next_obs: dict[str, np.ndarray],
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        self._masks.store(self.pos)
        super().add(obs, next_obs, action, reward, done, infos)

    def sample(  # type: ignore[override]
        self, batch_size: int, env: VecNormalize | None = None
    ) -> MaskedDictReplayBufferSamples:
        return super().sample(batch_size, env)  # type: ignore[return-value]

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray, env: VecNormalize | None = None
    ) -> MaskedDictReplayBufferSamples:
        envs = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))

        def gather(stored: dict[str, np.ndarray]) -> TensorDict:
            picked = self._normalize_obs({k: v[batch_inds, envs] for k, v in stored.items()}, env)
            assert isinstance(picked, dict)
            return {key: self.to_torch(value) for key, value in picked.items()}

        dones = self.dones[batch_inds, envs] * (1 - self.timeouts[batch_inds, envs])
        rewards = self.rewards[batch_inds, envs].reshape(-1, 1)
        return MaskedDictReplayBufferSamples(
            observations=gather(self.observations),
            actions=self.to_torch(self.actions[batch_inds, envs]),
            next_observations=gather(self.next_observations),
            dones=self.to_torch(dones.reshape(-1, 1)),
            rewards=self.to_torch(self._normalize_reward(rewards, env)),
            action_masks=self.to_torch(self.action_masks[batch_inds, envs].astype(np.float32)),
        )
