"""Reporting reward signals under ML-Agents' stat names.

Per finished episode: ``Policy/Extrinsic Reward`` (the reward the algorithm trains on) and
``Policy/{Name} Reward`` per signal (the episode's sum of ``strength * r``); per update: the
signals' losses (``Losses/Curiosity Forward Loss``, ...) averaged over the update's
minibatches. Values go to a sink ``(name, value)``: by default SB3's ``logger.record_mean``,
so they are averaged again over each logging period as ML-Agents averages over a summary.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping

import numpy as np

StatsSink = Callable[[str, float], None]

EXTRINSIC_REWARD_STAT = "Policy/Extrinsic Reward"


class EpisodeSums:
    """Running per-environment sums of named rewards, reported when an episode ends."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = tuple(names)
        self._sums: dict[str, np.ndarray] = {}

    def add(self, rewards: Mapping[str, np.ndarray]) -> None:
        """Add one step's rewards (``[n_envs]`` per name)."""
        for name in self.names:
            step = np.asarray(rewards[name], dtype=np.float64).reshape(-1)
            if name not in self._sums:
                self._sums[name] = np.zeros_like(step)
            self._sums[name] += step

    def finish(self, dones: np.ndarray, sink: StatsSink) -> None:
        """Report and reset the sums of the environments whose episode ended."""
        ended = np.flatnonzero(np.asarray(dones).reshape(-1))
        if ended.size == 0:
            return
        for name, sums in self._sums.items():
            for env in ended:
                sink(name, float(sums[env]))
            sums[ended] = 0.0


class UpdateStats:
    """Stats of one update's minibatches, reported as their means."""

    def __init__(self) -> None:
        self._values: defaultdict[str, list[float]] = defaultdict(list)

    def add(self, stats: Mapping[str, float]) -> None:
        for key, value in stats.items():
            self._values[key].append(float(value))

    def report(self, sink: StatsSink) -> dict[str, float]:
        means = {key: float(np.mean(values)) for key, values in self._values.items()}
        for key, value in means.items():
            sink(key, value)
        self._values.clear()
        return means
