"""What the PPO and SAC reward-signal callbacks share: signals, stats, observation plumbing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from sb3_ext.reward_signals.base import ObsArray, RewardSignal
from sb3_ext.reward_signals.stats import EXTRINSIC_REWARD_STAT, EpisodeSums, StatsSink


def take_rows(observations: ObsArray, *index: np.ndarray) -> ObsArray:
    """``observations[index]`` (a copy) for an array or each array of a dict."""
    if isinstance(observations, Mapping):
        return {key: np.array(value[index]) for key, value in observations.items()}
    return np.array(observations[index])


def copy_obs(observation: Any) -> Any:
    """A copy of one observation (array or dict of arrays), safe from VecEnv buffer reuse."""
    if isinstance(observation, Mapping):
        return {key: np.array(value) for key, value in observation.items()}
    return np.array(observation)


def set_row(target: ObsArray, row: int, value: Any) -> None:
    """``target[row] = value`` for an array or each array of a dict."""
    if isinstance(target, Mapping):
        for key, array in target.items():
            array[row] = np.asarray(value[key]).reshape(array.shape[1:])
    else:
        target[row] = np.asarray(value).reshape(target.shape[1:])


def next_observations(
    new_obs: ObsArray, dones: np.ndarray, infos: Sequence[dict[str, Any]]
) -> ObsArray:
    """The observations each action led to: ``new_obs``, except the final observation
    (``infos[i]["terminal_observation"]``) where an episode ended and the VecEnv reset."""
    result = take_rows(new_obs, np.arange(len(dones)))
    for env in np.flatnonzero(dones):
        terminal = infos[int(env)].get("terminal_observation")
        if terminal is not None:
            set_row(result, int(env), terminal)
    return result


class RewardSignalsCallbackBase(BaseCallback):
    """Holds the signals and reports ML-Agents' stats through ``stats`` (default: SB3's
    ``logger.record_mean``)."""

    def __init__(
        self,
        signals: Sequence[RewardSignal],
        stats: StatsSink | None = None,
        log_extrinsic: bool = True,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        self.signals: tuple[RewardSignal, ...] = tuple(signals)
        names = [s.name for s in self.signals]
        if len(set(names)) != len(names):
            raise ValueError(f"Each reward signal may appear once, got {names}.")
        self._stats = stats
        self.log_extrinsic = log_extrinsic
        self._extrinsic = EpisodeSums([EXTRINSIC_REWARD_STAT])
        self._intrinsic = EpisodeSums([s.reward_stat for s in self.signals])

    def record(self, key: str, value: float) -> None:
        """Report one value under an ML-Agents stat name."""
        if self._stats is not None:
            self._stats(key, value)
        else:
            self.logger.record_mean(key, value)

    def _track_extrinsic(self) -> None:
        if self.log_extrinsic:
            self._extrinsic.add({EXTRINSIC_REWARD_STAT: np.asarray(self.locals["rewards"])})
            self._extrinsic.finish(np.asarray(self.locals["dones"]), self.record)
