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


class _TransitionFields(NamedTuple):
    """The sampled fields both buffer kinds share, and the environments sampled."""

    envs: np.ndarray
    actions: th.Tensor
    dones: th.Tensor
    rewards: th.Tensor
    action_masks: th.Tensor


class _ActionMaskStorage:
    """What both buffers add to SB3's: the mask array, the mask waiting for the next ``add``,
    and the fields every sample shares. Mixed in before the SB3 buffer class."""

    # Set by SB3's buffers.
    buffer_size: int
    n_envs: int
    pos: int
    action_space: spaces.Space[Any]
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    timeouts: np.ndarray

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        width = sum(action_branches(self.action_space))
        self._action_masks = np.ones((self.buffer_size, self.n_envs, width), dtype=bool)
        self._pending_masks: np.ndarray | None = None

    @property
    def action_masks(self) -> np.ndarray:
        """``[buffer_size, n_envs, sum(branches)]`` stored masks (True = allowed)."""
        return self._action_masks

    def set_next_action_masks(self, masks: np.ndarray | None) -> None:
        """The masks (``[n_envs, sum(branches)]``) of the transitions the next ``add`` stores."""
        self._pending_masks = (
            None if masks is None else np.asarray(masks, dtype=bool).reshape(self.n_envs, -1)
        )

    def add(self, *args: Any, **kwargs: Any) -> None:
        self._action_masks[self.pos] = True if self._pending_masks is None else self._pending_masks
        self._pending_masks = None
        super().add(*args, **kwargs)  # type: ignore[misc]

    def _shared_fields(self, batch_inds: np.ndarray, env: VecNormalize | None) -> _TransitionFields:
        envs = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        dones = self.dones[batch_inds, envs] * (1 - self.timeouts[batch_inds, envs])
        rewards = self.rewards[batch_inds, envs].reshape(-1, 1)
        to_torch = self.to_torch  # type: ignore[attr-defined]
        normalize_reward = self._normalize_reward  # type: ignore[attr-defined]
        return _TransitionFields(
            envs=envs,
            actions=to_torch(self.actions[batch_inds, envs]),
            dones=to_torch(dones.reshape(-1, 1)),
            rewards=to_torch(normalize_reward(rewards, env)),
            action_masks=to_torch(self._action_masks[batch_inds, envs].astype(np.float32)),
        )


class MaskedReplayBuffer(_ActionMaskStorage, ReplayBuffer):
    """SB3's ``ReplayBuffer`` plus the action mask of every transition."""

    def sample(  # type: ignore[override]
        self, batch_size: int, env: VecNormalize | None = None
    ) -> MaskedReplayBufferSamples:
        return super().sample(batch_size, env)  # type: ignore[return-value]

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray, env: VecNormalize | None = None
    ) -> MaskedReplayBufferSamples:
        shared = self._shared_fields(batch_inds, env)
        envs = shared.envs
        if self.optimize_memory_usage:
            next_rows = self.observations[(batch_inds + 1) % self.buffer_size, envs, :]
        else:
            next_rows = self.next_observations[batch_inds, envs, :]
        obs = self._normalize_obs(self.observations[batch_inds, envs], env)
        next_obs = self._normalize_obs(next_rows, env)
        assert isinstance(obs, np.ndarray) and isinstance(next_obs, np.ndarray)
        return MaskedReplayBufferSamples(
            observations=self.to_torch(obs),
            actions=shared.actions,
            next_observations=self.to_torch(next_obs),
            dones=shared.dones,
            rewards=shared.rewards,
            action_masks=shared.action_masks,
        )


class MaskedDictReplayBuffer(_ActionMaskStorage, DictReplayBuffer):
    """SB3's ``DictReplayBuffer`` plus the action mask of every transition."""

    def sample(  # type: ignore[override]
        self, batch_size: int, env: VecNormalize | None = None
    ) -> MaskedDictReplayBufferSamples:
        return super().sample(batch_size, env)  # type: ignore[return-value]

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray, env: VecNormalize | None = None
    ) -> MaskedDictReplayBufferSamples:
        shared = self._shared_fields(batch_inds, env)

        def gather(stored: dict[str, np.ndarray]) -> TensorDict:
            rows = {key: value[batch_inds, shared.envs] for key, value in stored.items()}
            picked = self._normalize_obs(rows, env)
            assert isinstance(picked, dict)
            return {key: self.to_torch(value) for key, value in picked.items()}

        return MaskedDictReplayBufferSamples(
            observations=gather(self.observations),
            actions=shared.actions,
            next_observations=gather(self.next_observations),
            dones=shared.dones,
            rewards=shared.rewards,
            action_masks=shared.action_masks,
        )
