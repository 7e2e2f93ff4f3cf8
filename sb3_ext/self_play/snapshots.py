"""Frozen copies of an SB3 policy: the opponents of self-play.

A :class:`PolicySnapshot` is what ML-Agents keeps per snapshot: the policy's weights and,
when observations are normalised (SB3's ``VecNormalize``, ML-Agents' ``normalize``), the
normaliser's statistics at that moment, so an old snapshot sees observations as it did when
it was saved. A :class:`FrozenPolicy` is one copy of the learning policy's network that plays
whichever snapshot it was last given, with sampled (not deterministic) actions, as ML-Agents'
ghosts act.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecNormalize, unwrap_vec_normalize
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs

ObsStatistics = dict[str, RunningMeanStd]  # "" for a non-Dict observation space


@dataclass
class PolicySnapshot:
    """A policy's weights (CPU copies) and its observation statistics, if normalised."""

    weights: dict[str, th.Tensor]
    obs_statistics: ObsStatistics | None = None

    @classmethod
    def of(cls, model: BaseAlgorithm) -> PolicySnapshot:
        """The model's policy as it is now (and its ``VecNormalize`` statistics)."""
        weights = {k: v.detach().cpu().clone() for k, v in model.policy.state_dict().items()}
        return cls(weights, _copy_statistics(_normalizer_of(model)))

    def state_dict(self) -> dict[str, Any]:
        statistics = None
        if self.obs_statistics is not None:
            statistics = {  # tensors, so torch.load(weights_only=True) reads them back
                key: {
                    "mean": th.as_tensor(rms.mean),
                    "var": th.as_tensor(rms.var),
                    "count": float(rms.count),
                }
                for key, rms in self.obs_statistics.items()
            }
        return {"weights": self.weights, "obs_statistics": statistics}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> PolicySnapshot:
        statistics: ObsStatistics | None = None
        if state.get("obs_statistics") is not None:
            statistics = {}
            for key, saved in state["obs_statistics"].items():
                mean, var = np.asarray(saved["mean"]), np.asarray(saved["var"])
                rms = RunningMeanStd(shape=mean.shape)
                rms.mean, rms.var = mean.astype(np.float64), var.astype(np.float64)
                rms.count = float(saved["count"])
                statistics[key] = rms
        return cls(dict(state["weights"]), statistics)


class FrozenPolicy:
    """A copy of ``model``'s policy that acts with the snapshot loaded last.

    :param model: the learning model (its policy is copied once; its ``VecNormalize``, if any,
        gives the clip range and the keys to normalise).
    """

    def __init__(self, model: BaseAlgorithm) -> None:
        self.policy: BasePolicy = copy.deepcopy(model.policy)
        self.policy.set_training_mode(False)
        for parameter in self.policy.parameters():
            parameter.requires_grad_(False)
        self._normalizer = _normalizer_of(model)
        self._statistics: ObsStatistics | None = None
        parameters = inspect.signature(self.policy.predict).parameters
        self._takes_masks = "action_masks" in parameters
        self._recurrent = getattr(self.policy, "lstm_actor", None) is not None
        self._state: Any = None

    def load(self, snapshot: PolicySnapshot) -> None:
        self.policy.load_state_dict(snapshot.weights)
        self._statistics = snapshot.obs_statistics
        self._state = None

    def act(
        self,
        observations: VecEnvObs,
        action_masks: np.ndarray | None = None,
        episode_starts: np.ndarray | None = None,
    ) -> np.ndarray:
        """Sampled actions for a batch of raw observations (normalised as the snapshot saw
        them). ``action_masks`` (True = allowed) reach policies that take them;
        ``episode_starts`` reset a recurrent policy's memory."""
        obs = self._normalize(observations)
        kwargs: dict[str, Any] = {"deterministic": False}
        if self._takes_masks and action_masks is not None:
            kwargs["action_masks"] = action_masks
        if self._recurrent:
            actions, self._state = self.policy.predict(
                obs, state=self._state, episode_start=episode_starts, **kwargs
            )
        else:
            actions, _ = self.policy.predict(obs, **kwargs)
        return np.asarray(actions)

    def _normalize(self, observations: VecEnvObs) -> Any:
        normalizer, statistics = self._normalizer, self._statistics
        if normalizer is None or statistics is None or not normalizer.norm_obs:
            return observations
        if isinstance(observations, dict):
            obs = dict(observations)
            for key in normalizer.norm_obs_keys or list(obs):
                obs[key] = normalizer._normalize_obs(obs[key], statistics[key]).astype(np.float32)
            return obs
        return normalizer._normalize_obs(np.asarray(observations), statistics[""]).astype(
            np.float32
        )


def _normalizer_of(model: BaseAlgorithm) -> VecNormalize | None:
    env = model.get_env()
    return None if env is None else unwrap_vec_normalize(env)


def _copy_statistics(normalizer: VecNormalize | None) -> ObsStatistics | None:
    if normalizer is None or not normalizer.norm_obs:
        return None
    rms = normalizer.obs_rms
    if isinstance(rms, dict):
        return {key: copy.deepcopy(value) for key, value in rms.items()}
    return {"": copy.deepcopy(rms)}
